"""Are there enough runs? The reliability of a store's scores and the forecast of the runs
a target needs (:mod:`memscore.runs.reliability`, :mod:`memscore.runs.forecast`).

:class:`ReliabilityMethods` is the part of :class:`~memscore.RunStore` that reads the
arrays the scores need once (masks, outcomes, φ, draw counts, subset ratios, the
ground-truth wrong labels of an embedded dataset) and hands them to the array-level
functions, which score halves and sub-samples of the runs on the executor.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from ...executors import ExecutorLike
from ..forecast import Pilot, Target, parse_targets
from ..reliability import SCORES, RunArrays, check_scores
from ..reliability import reliability as _reliability
from .reading import ReadMethods

__all__ = ["ReliabilityMethods"]


class ReliabilityMethods(ReadMethods):
    """Reliability, pilots and forecasts of the stored runs' scores (a part of
    :class:`~memscore.RunStore`)."""

    _manifest: dict[str, Any]

    def run_arrays(
        self,
        scores: Sequence[str] | str,
        *,
        run_ids: Sequence[str] | None = None,
        kind: str = "correct",
        corrupted: Any = None,
    ) -> RunArrays:
        """The arrays ``scores`` need, of ``run_ids`` (default: every run, run-id order).

        ``corrupted`` (bool per training example: a wrong label) defaults to the ground
        truth of the embedded dataset the store was trained on (its ``metadata``), when
        there is one.

        Raises
        ------
        ValueError
            An unknown score, a bad ``kind``, a ``corrupted`` of the wrong length.
        StoreError, RunNotFoundError
            No runs, an unknown run id, a run lacking a field a score needs.
        """
        names = check_scores(scores)
        if kind not in ("correct", "phi"):
            raise ValueError(f"kind: expected 'correct' or 'phi', got {kind!r}")
        ids = self._ids_or_raise()
        rows = None
        if run_ids is not None:
            where = {rid: i for i, rid in enumerate(ids)}
            for rid in run_ids:
                self._check_exists(rid)
            rows = np.array([where[rid] for rid in run_ids], dtype=np.int64)
        needs = {f for n in names for f in SCORES[n].needs}
        got: dict[str, Any] = {"masks": self.masks()}
        for f in sorted(needs):
            if f in ("train", "test"):
                got[f] = self.outcomes(f, kind)
            elif f in ("train_phi", "test_phi"):
                got[f] = self.outcomes(f.split("_")[0], "phi")
            elif f == "multiplicities":
                got[f] = self.multiplicities()
        ratios = self.subset_ratios()
        if np.unique(ratios[np.isfinite(ratios)]).size > 1:  # several ratios: hold-out averages over them
            got["ratios"] = np.where(np.isfinite(ratios), ratios, -1.0)  # runs without one: a group of their own
        if rows is not None:
            got = {k: v[rows] for k, v in got.items()}
        got["corrupted"] = self._corrupted(corrupted)
        return RunArrays(**got)

    def _corrupted(self, corrupted: Any) -> npt.NDArray[np.bool_] | None:
        """``corrupted`` checked, or the embedded dataset's ground truth (None without one)."""
        n = self._layout.n_train
        if corrupted is not None:
            c = np.asarray(corrupted)
            if c.shape != (n,) or c.dtype != np.bool_:
                raise ValueError(f"corrupted: expected a bool array of shape ({n},), got {c.dtype} {c.shape}")
            return c
        meta = self._manifest.get("metadata")
        spec = meta.get("dataset") if isinstance(meta, dict) else None
        from ..datasets import DATASETS, load_dataset

        if not isinstance(spec, dict) or spec.get("name") not in DATASETS:
            return None
        task = load_dataset(spec["name"], **{k: v for k, v in spec.items() if k != "name"})
        return task.corrupted if task.corrupted.shape == (n,) else None

    def reliability(
        self,
        scores: Sequence[str] | str = ("memorization", "holdout"),
        *,
        splits: int = 10,
        seed: int = 0,
        run_ids: Sequence[str] | None = None,
        kind: str = "correct",
        corrupted: Any = None,
        executor: ExecutorLike = None,
        **options: Any,
    ) -> pl.DataFrame:
        """How reliable each score is with the runs at hand (:func:`memscore.runs.reliability.reliability`).

        Parameters
        ----------
        scores : str or sequence of str, default ("memorization", "holdout")
            Names among ``memorization``, ``holdout``, ``influence``, ``influence_topk``,
            ``lira``, ``rmia``, ``banzhaf``, ``data_oob``, ``datamodels``, ``lds``.
        splits, seed : int
            Random splits of the runs into halves, and their seed.
        run_ids : sequence of str, optional
            Use these runs only.
        kind : {"correct", "phi"}, default "correct"
            The outcomes of memorization, hold-out, influence, Banzhaf and Data-OOB.
        corrupted : array-like of bool, optional
            Wrong labels: memorization is then also scored as their detector (default: the
            ground truth of an embedded dataset named in the store's metadata).
        executor : None, str or memscore.executors.Executor
            Who runs the tasks; identical results under every executor.
        **options
            ``top_k``, ``influence_k``, ``n_boot``, ``confidence``, ``fpr_levels``, ``lam``.

        Returns
        -------
        polars.DataFrame
            Columns ``score``, ``statistic``, ``value``, ``runs``, ``low``, ``high``.

        Raises
        ------
        ValueError
            An unknown score or option, fewer than 4 runs.
        StoreError
            No runs, or a run lacking a field a score needs.

        Examples
        --------
        >>> import numpy as np, memscore, tempfile
        >>> s = memscore.RunStore.create(tempfile.mkdtemp() + "/s", n_train=30)
        >>> rng = np.random.default_rng(0)
        >>> for m in rng.random((16, 30)) < 0.5:
        ...     _ = s.add_run(m, train_correct=m | (rng.random(30) < 0.5))
        >>> t = s.reliability("memorization", splits=3)
        >>> sorted(set(t["statistic"]))[:2]
        ['half_correlation', 'median_stderr']
        """
        data = self.run_arrays(scores, run_ids=run_ids, kind=kind, corrupted=corrupted)
        return _reliability(data, scores, splits=splits, seed=seed, executor=executor, **options)

    def target_values(
        self,
        targets: str | Target | Iterable[str | Target],
        *,
        splits: int = 10,
        seed: int = 0,
        kind: str = "correct",
        executor: ExecutorLike = None,
    ) -> list[tuple[Target, float, bool]]:
        """Each target with the value its statistic has now and whether it holds.

        Statistics that are not detector intervals skip the bootstrap. With fewer than 4
        runs nothing can be measured: every value is NaN (no target holds).

        Raises
        ------
        ValueError, TypeError, StoreError
            As :meth:`forecast`.
        """
        ts = parse_targets(targets)
        if len(self._ids) < 4:
            return [(t, float("nan"), False) for t in ts]
        out = []
        for t in ts:
            opts = t.options()
            if "auc" not in t.statistic and "tpr@" not in t.statistic:
                opts["n_boot"] = 0
            table = self.reliability(t.score, splits=splits, seed=seed, kind=kind, executor=executor, **opts)
            row = table.filter((pl.col("score") == t.score) & (pl.col("statistic") == t.statistic))
            value = float(row["value"][0]) if row.height else float("nan")
            out.append((t, value, t.holds(value)))
        return out

    def seconds_per_run(self) -> tuple[float | None, str | None]:
        """(median training seconds per run, device) as the trainer recorded them in the
        runs' metadata (``train_seconds``, ``device``); (None, None) when none did.

        Raises
        ------
        StoreError
            A damaged run file.
        """
        secs, devices = [], []
        for rid in self._ids:
            meta = self.run_metadata(rid)
            if isinstance(meta.get("train_seconds"), (int, float)):
                secs.append(float(meta["train_seconds"]))
                devices.append(str(meta.get("device", "")))
        if not secs:
            return None, None
        return float(np.median(secs)), max(set(devices), key=devices.count) or None

    def pilot(
        self,
        scores: Sequence[str] | str,
        *,
        run_ids: Sequence[str] | None = None,
        kind: str = "correct",
        corrupted: Any = None,
        executor: ExecutorLike = None,
        **options: Any,
    ) -> Pilot:
        """The stored runs as a pilot (:meth:`memscore.runs.forecast.Pilot.measure`), with
        the seconds per run they recorded.

        Raises
        ------
        ValueError, StoreError
            As :meth:`reliability`, or fewer than 8 runs.
        """
        data = self.run_arrays(scores, run_ids=run_ids, kind=kind, corrupted=corrupted)
        spr, device = self.seconds_per_run()
        return Pilot.measure(data, scores, seconds_per_run=spr, device=device, executor=executor, **options)

    def forecast(
        self,
        targets: str | Target | Iterable[str | Target],
        *,
        splits: int = 10,
        seed: int = 0,
        run_ids: Sequence[str] | None = None,
        kind: str = "correct",
        executor: ExecutorLike = None,
        **options: Any,
    ) -> pl.DataFrame:
        """The runs each target needs, forecast from the stored runs as a pilot.

        Parameters
        ----------
        targets : str, Target or iterable of them
            ``"score:statistic>=value"`` / ``"<=value"`` (:class:`memscore.runs.forecast.Target`),
            e.g. ``"memorization:reliability>=0.99"``, ``"memorization:stderr<=0.02"``,
            ``"memorization:top100_overlap>=0.8"``, ``"lira:tpr@0.001_width<=0.01"``.
        splits, seed, run_ids, kind, executor, **options
            As :meth:`reliability` (``fractions``, ``tolerance`` of the pilot too).

        Returns
        -------
        polars.DataFrame
            As :meth:`memscore.runs.forecast.Pilot.forecast`: ``runs`` (needed) with
            ``runs_low`` / ``runs_high``, the law and whether it fits the pilot, the wall
            time and GPU-hours.

        Raises
        ------
        ValueError, TypeError
            A target that does not parse, an unknown score; as :meth:`pilot`.
        StoreError
            As :meth:`reliability`.
        """
        ts = parse_targets(targets)
        spr, device = self.seconds_per_run()
        parts = []
        done: dict[tuple[Any, ...], Pilot] = {}
        for t in ts:  # one pilot per score and the options its statistic needs
            opts = {**options, **t.options()}
            key = (t.score, tuple(sorted((k, str(v)) for k, v in opts.items())))
            if key not in done:
                data = self.run_arrays(t.score, run_ids=run_ids, kind=kind)
                done[key] = Pilot.measure(
                    data, t.score, splits=splits, seed=seed, seconds_per_run=spr, device=device,
                    executor=executor, **opts,
                )  # fmt: skip
            parts.append(done[key].forecast(t))
        return pl.concat(parts)
