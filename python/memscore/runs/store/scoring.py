"""Streamed scores of a run store: memorization, hold-out, influence, LiRA, score tables.

:class:`ScoreMethods` is the part of :class:`~memscore.RunStore` that computes scores. The
streamed ones read every run file once per call (:func:`.scan.scan`) and feed every
statistic the call needs from that one read, ``chunk_runs`` runs at a time; masks and
bool outcomes stay bit-packed (:class:`~memscore.runs.bits.PackedBits`) on their way to
the array-level scores.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from ..._stats import softmax
from ...errors import StoreError
from ..bits import PackedBits
from ..membership import lira as _lira
from ..rmia import rmia as _rmia
from ..rmia import true_class_probability as _true_class_probability
from ..scores import influence as _influence
from ..valuation import banzhaf as _banzhaf
from ..valuation import run_utility as _run_utility
from .format import Layout, check_int, outcome_name
from .reading import ReadMethods
from .scan import SNAP_COLUMNS, GroupedStats, RunRecord, SnapshotStats, Stacked, load, ratio_keys, scan, stack_records

__all__ = ["ScoreMethods"]

F64 = npt.NDArray[np.float64]
_SNAP_OPTIONAL = ("snap_epochs", "snap_train_correct_bits", "snap_train_loss", "snap_train_el2n", "snap_train_grand")


class ScoreMethods(ReadMethods):
    """Scores over the stored runs (a part of :class:`~memscore.RunStore`)."""

    _train_labels: npt.NDArray[np.int64] | None
    _test_labels: npt.NDArray[np.int64] | None

    # ------------------------------------------------------------------ streamed scores

    @staticmethod
    def _check_score_kind(kind: str) -> None:
        if kind not in ("correct", "phi"):
            raise ValueError(f"kind: expected 'correct' or 'phi', got {kind!r}")

    def _outcome_scan(self, kind: str, chunk_runs: int, *, grouped: bool, total: bool) -> GroupedStats:
        """Train-outcome statistics of ``kind``, one read of every run file."""
        self._check_score_kind(kind)
        ids = self._ids_or_raise()
        chunk_runs = check_int(chunk_runs, "chunk_runs", 1)
        acc = ScoreScan(self._layout, kind, grouped=grouped, total=total, table=False)
        scan(self._reader, ids, acc.names, acc.optional, chunk_runs, acc.feed)
        return acc.stats

    def memorization(
        self, kind: str = "correct", *, stderr: bool = False, chunk_runs: int = 256, executor: Any = None
    ) -> F64 | tuple[F64, F64]:
        """Memorization of every training example, streamed over the runs.

        Equals :func:`memscore.memorization` on ``(masks(), outcomes("train", kind))``
        while holding only ``chunk_runs`` runs in memory; each run file is read once.

        Parameters
        ----------
        kind : {"correct", "phi"}
            Bool outcomes or float confidences.
        stderr : bool
            Also return the standard error.
        chunk_runs : int
            Runs loaded at a time.
        executor : memscore.cluster.RayExecutor, optional
            Read the runs in Ray tasks by run range instead (the store on a file system
            the workers see); identical results (:mod:`memscore.runs.store.ray_scoring`).

        Returns
        -------
        ndarray of float64 or (ndarray, ndarray)
            ``(n_train,)``, NaN where undefined; or ``(mem, stderr)``.

        Raises
        ------
        StoreError
            No runs, or a run lacks the outcome or is damaged (named).
        """
        if executor is not None:
            from . import ray_scoring

            return ray_scoring.memorization(self, kind, executor=executor, stderr=stderr, chunk_runs=chunk_runs)  # type: ignore[arg-type]
        stats = self._outcome_scan(kind, chunk_runs, grouped=False, total=True).total()
        mem = stats.memorization()
        return (mem, stats.memorization_stderr()) if stderr else mem

    def holdout_accuracy(self, kind: str = "correct", chunk_runs: int = 256, *, executor: Any = None) -> F64:
        """Hold-out accuracy (C-score), streamed over the runs.

        When the runs carry several distinct subset ratios, the estimate is taken per
        group of runs sharing a ratio and averaged over the groups where it is defined,
        as :func:`memscore.holdout_accuracy` with ``ratios=subset_ratios()``; runs added
        without a ratio form one group of their own.

        Parameters
        ----------
        kind : {"correct", "phi"}
            Outcomes to average.
        chunk_runs : int
            Runs loaded at a time.
        executor : memscore.cluster.RayExecutor, optional
            As :meth:`memorization`.

        Returns
        -------
        ndarray of float64
            ``(n_train,)``, NaN where no run held the example out.

        Raises
        ------
        StoreError
            As :meth:`memorization`.
        """
        if executor is not None:
            from . import ray_scoring

            return ray_scoring.holdout_accuracy(self, kind, executor=executor, chunk_runs=chunk_runs)  # type: ignore[arg-type]
        return self._outcome_scan(kind, chunk_runs, grouped=True, total=False).holdout()

    def influence(
        self,
        kind: str = "correct",
        *,
        top_k: int | None = None,
        same_class: bool = False,
        dtype: Any = np.float32,
        executor: Any = None,
    ) -> Any:
        """Influence of every training example on every test example.

        The pairwise statistic needs all runs at once: this loads all masks and test
        outcomes (bit-packed for bool outcomes: R·(n_train + n_test)/8 bytes; 8·R·n_test
        more for phi) and calls :func:`memscore.influence`.

        Parameters
        ----------
        kind : {"correct", "phi"}
            Test outcomes.
        top_k : int, optional
            Return ``(indices (T, k), values (T, k))`` instead of the (T, N) matrix.
        same_class : bool
            Only pairs with equal labels (needs train and test labels).
        dtype : dtype
            float32 or float64 for the full matrix.
        executor : memscore.cluster.RayExecutor, optional
            With ``top_k``: split the test examples over Ray tasks (the store on a file
            system the workers see); identical results
            (:func:`memscore.runs.store.ray_scoring.influence_topk`).

        Returns
        -------
        ndarray or tuple of ndarray
            As :func:`memscore.influence`.

        Raises
        ------
        ValueError
            No test examples, or ``same_class`` without labels.
        StoreError
            No runs, or a damaged run file.
        """
        self._check_score_kind(kind)
        if self._layout.n_test == 0:
            raise ValueError("influence: this store has no test examples (n_test = 0)")
        labels: dict[str, Any] = {}
        if same_class:
            if self._train_labels is None or self._test_labels is None:
                raise ValueError("same_class=True needs the store's train_labels and test_labels")
            labels = {"train_labels": self._train_labels, "test_labels": self._test_labels}
        if executor is not None:
            if top_k is None:
                raise ValueError("influence: executor= needs top_k (the full matrix is computed here)")
            from . import ray_scoring

            return ray_scoring.influence_topk(self, kind, top_k=top_k, executor=executor, same_class=same_class)  # type: ignore[arg-type]
        name = outcome_name("test", kind)
        got = load(self._reader, self._ids_or_raise(), ["mask_bits", name], unpack=False)
        return _influence(got["mask_bits"], got[name], top_k=top_k, dtype=dtype, **labels)

    def lira(self, *, online: bool = True, fixed_variance: bool = False) -> F64:
        """LiRA membership scores (R, n_train) on the stored train phi.

        Loads all masks (bit-packed) and phi and calls :func:`memscore.lira`; row r scores
        run r (run-id order) with every other run as a shadow.

        Parameters
        ----------
        online, fixed_variance : bool
            As :func:`memscore.lira`.

        Returns
        -------
        ndarray of float64, shape (R, n_train)

        Raises
        ------
        StoreError
            No runs, a run without phi, or a damaged run file.
        """
        got = load(self._reader, self._ids_or_raise(), ["mask_bits", "train_phi"], unpack=False)
        phi = got["train_phi"]
        assert isinstance(phi, np.ndarray)  # float fields come back as arrays, bits as PackedBits
        return _lira(got["mask_bits"], phi, online=online, fixed_variance=fixed_variance)

    def snapshot_scores(self, *, el2n_epoch: int | None = None, chunk_runs: int = 256) -> pl.DataFrame:
        """Per training example, training-dynamics scores averaged over the in-runs.

        Streamed over the runs, each run file read once. Columns (float64, NaN where no
        in-run has the snapshot field):

        * ``el2n``: ‖softmax(z) − onehot(y)‖₂ (Paul et al. 2021) at snapshot epoch
          ``el2n_epoch`` (default: the earliest snapshot);
        * ``grand``: the per-example gradient norm at the same epoch (when recorded);
        * ``loss``: cross-entropy at the last snapshot;
        * ``forgetting_events``: correct → incorrect transitions between consecutive
          snapshots (Toneva et al. 2019);
        * ``never_learned``: fraction of in-runs misclassifying the example at every
          snapshot;
        * ``learning_speed``: mean correctness over the snapshots (a C-score proxy);
        * ``n_snapshot_runs``: number of in-runs averaged (int64).

        Parameters
        ----------
        el2n_epoch : int, optional
            Epoch for ``el2n`` / ``grand``.
        chunk_runs : int
            Runs loaded at a time.

        Returns
        -------
        polars.DataFrame

        Raises
        ------
        StoreError
            No runs, runs without train snapshots, or disagreeing epochs.
        ValueError
            ``el2n_epoch`` is not a snapshot epoch.
        """
        ids = self._ids_or_raise()
        chunk_runs = check_int(chunk_runs, "chunk_runs", 1)
        snap = SnapshotStats(self._layout.n_train, el2n_epoch)
        missing: list[str] = []

        def feed(recs: list[RunRecord]) -> None:
            missing.extend(r.run_id for r in recs if not SnapshotStats.has(r))
            if not missing:
                m = stack_records(self._layout, recs, ["mask_bits"])["mask_bits"]
                snap.add(_packed(m), recs)

        scan(self._reader, ids, ["mask_bits"], _SNAP_OPTIONAL, chunk_runs, feed)
        if missing:
            raise StoreError(
                f"snapshot_scores: {len(missing)} of {len(ids)} runs have no train snapshots "
                f"(first: {missing[0]!r}); train with snapshot_epochs=... to record them"
            )
        cols = snap.columns()
        return pl.DataFrame(
            [pl.Series(k, cols[k], dtype=pl.Float64) for k in SNAP_COLUMNS] + [pl.Series("n_snapshot_runs", snap.n_in)]
        )

    def scores(self, kind: str = "correct", *, chunk_runs: int = 256, executor: Any = None) -> pl.DataFrame:
        """A table with one row per training example, from one read of every run file.

        Memory does not grow with the number of runs (``chunk_runs`` runs at a time).

        Parameters
        ----------
        kind : {"correct", "phi"}
            Outcomes for memorization and hold-out accuracy.
        chunk_runs : int
            Runs loaded at a time.
        executor : memscore.cluster.RayExecutor, optional
            As :meth:`memorization`.

        Returns
        -------
        polars.DataFrame
            Columns: ``index`` (int64), ``label`` (int64, null without labels), ``n_in``,
            ``n_out`` (int64 run counts), ``memorization``, ``memorization_stderr``,
            ``holdout_accuracy`` (float64, from ``kind`` outcomes, grouped by subset
            ratio as in :meth:`holdout_accuracy`), ``phi_mean_in``, ``phi_mean_out``
            (float64 mean train phi; null when some run has no phi), and the
            training-dynamics columns of :meth:`snapshot_scores` (null when some run has
            no snapshots). NaN marks undefined estimates. Save with
            ``store.scores().write_parquet(path)``.

        Raises
        ------
        StoreError
            No runs, a run without ``kind`` outcomes, or a damaged run file (named).
        """
        if executor is not None:
            from . import ray_scoring

            return ray_scoring.scores(self, kind, executor=executor, chunk_runs=chunk_runs)  # type: ignore[arg-type]
        self._check_score_kind(kind)
        ids = self._ids_or_raise()
        chunk_runs = check_int(chunk_runs, "chunk_runs", 1)
        acc = ScoreScan(self._layout, kind, grouped=True, total=True, table=True)
        scan(self._reader, ids, acc.names, acc.optional, chunk_runs, acc.feed)
        return self._scores_table(acc)

    def _scores_table(self, acc: ScoreScan) -> pl.DataFrame:
        """The table of :meth:`scores` from the statistics of every run."""
        stats = acc.stats
        total = stats.total()
        n = self._layout.n_train

        def col(c: str, values: Any) -> pl.Series:
            if values is None:
                return pl.Series(c, [None] * n, dtype=pl.Float64)
            return pl.Series(c, values, dtype=pl.Float64, nan_to_null=False)

        p = acc.phi.total() if acc.has_phi else None
        cols = acc.snap.columns() if acc.has_snap else {}
        label = pl.Series("label", self._train_labels if self._train_labels is not None else [None] * n, dtype=pl.Int64)
        return pl.DataFrame(
            [
                pl.Series("index", np.arange(n, dtype=np.int64)),
                label,
                pl.Series("n_in", total.n_in.astype(np.int64)),
                pl.Series("n_out", total.n_out.astype(np.int64)),
                pl.Series("memorization", total.memorization(), dtype=pl.Float64),
                pl.Series("memorization_stderr", total.memorization_stderr(), dtype=pl.Float64),
                pl.Series("holdout_accuracy", stats.holdout(), dtype=pl.Float64),
                col("phi_mean_in", None if p is None else p.mean_in()),
                col("phi_mean_out", None if p is None else p.mean_out()),
                *[col(c, cols.get(c)) for c in SNAP_COLUMNS],
            ]
        )

    def influence_pairs(
        self, top_k: int = 10, *, same_class: bool = False, kind: str = "correct", executor: Any = None
    ) -> pl.DataFrame:
        """The ``top_k`` most influential training examples of each test example, as a table.

        Parameters
        ----------
        top_k : int
            Pairs per test example.
        same_class : bool
            Only pairs with equal labels.
        kind : {"correct", "phi"}
            Test outcomes.
        executor : memscore.cluster.RayExecutor, optional
            As :meth:`influence`.

        Returns
        -------
        polars.DataFrame
            Columns ``test_index``, ``rank`` (0 = most influential), ``train_index``
            (int64), ``influence`` (float64), ``test_label``, ``train_label`` (int64, null
            without labels). Test examples with fewer than ``top_k`` defined influences get
            fewer rows. Memory as :meth:`influence`. Save with ``.write_parquet(path)``.

        Raises
        ------
        ValueError, StoreError
            As :meth:`influence`.
        """
        idx, val = self.influence(kind, top_k=top_k, same_class=same_class, executor=executor)
        idx = np.asarray(idx, dtype=np.int64)
        t, k = idx.shape
        test_index = np.repeat(np.arange(t, dtype=np.int64), k)
        rank = np.tile(np.arange(k, dtype=np.int64), t)
        train_index = idx.reshape(-1)
        keep = train_index >= 0
        test_index, rank, train_index = test_index[keep], rank[keep], train_index[keep]
        values = np.asarray(val, dtype=np.float64).reshape(-1)[keep]

        def lab(labels: np.ndarray | None, at: np.ndarray, name: str) -> pl.Series:
            if labels is None:
                return pl.Series(name, [None] * at.size, dtype=pl.Int64)
            return pl.Series(name, labels[at], dtype=pl.Int64)

        return pl.DataFrame(
            [
                pl.Series("test_index", test_index),
                pl.Series("rank", rank),
                pl.Series("train_index", train_index),
                pl.Series("influence", values, dtype=pl.Float64),
                lab(self._test_labels, test_index, "test_label"),
                lab(self._train_labels, train_index, "train_label"),
            ]
        )

    # ------------------------------------------------------------------ data valuation

    def run_utility(self, utility: str = "accuracy", *, chunk_runs: int = 256) -> F64:
        """Utility of every run (run-id order) on the store's test examples.

        Parameters
        ----------
        utility : {"accuracy", "margin"}
            Test accuracy (from the stored test correctness) or mean test margin (the mean
            stored test phi, :func:`memscore.logit_confidence`).
        chunk_runs : int
            Runs loaded at a time.

        Returns
        -------
        ndarray of float64, shape (R,)

        Raises
        ------
        ValueError
            An unknown ``utility``, or no test examples.
        StoreError
            No runs, or a run without the test outcome (named).
        """
        if utility not in ("accuracy", "margin"):
            raise ValueError(
                f"utility: expected 'accuracy', 'margin' or an array of one value per run, got {utility!r}"
            )
        if self._layout.n_test == 0:
            raise ValueError("run_utility: this store has no test examples (n_test = 0); pass a utility array")
        name = outcome_name("test", "correct" if utility == "accuracy" else "phi")
        parts: list[F64] = []

        def feed(recs: list[RunRecord]) -> None:
            parts.append(_run_utility(stack_records(self._layout, recs, [name])[name]))

        scan(self._reader, self._ids_or_raise(), [name], (), check_int(chunk_runs, "chunk_runs", 1), feed)
        return np.concatenate(parts)

    def banzhaf(self, utility: Any = "accuracy", *, stderr: bool = False) -> F64 | tuple[F64, F64]:
        """Maximum-sample-reuse Banzhaf value of every training example.

        :func:`memscore.banzhaf` on the stored masks (bit-packed, all runs at once) and a
        utility per run.

        Parameters
        ----------
        utility : {"accuracy", "margin"} or array-like of float, shape (R,)
            A :meth:`run_utility` kind, or one utility per run in run-id order.
        stderr : bool
            Also return the standard error.

        Returns
        -------
        ndarray of float64 or (ndarray, ndarray)
            ``(n_train,)``; NaN where no run held the example in or out.

        Raises
        ------
        ValueError
            As :meth:`run_utility`, or a utility array of the wrong length.
        StoreError
            No runs, or a damaged run file.
        """
        u = self.run_utility(utility) if isinstance(utility, str) else utility
        got = load(self._reader, self._ids_or_raise(), ["mask_bits"], unpack=False)
        return _banzhaf(got["mask_bits"], u, stderr=stderr)

    def rmia(self, *, online: bool = True, gamma: float = 1.0, offline_a: float = 0.3) -> F64:
        """RMIA membership scores (R, n_train), the test split as the population.

        Loads all masks (bit-packed) and the stored train and test phi, turns them into
        probabilities of the true label (:func:`memscore.true_class_probability`) and
        calls :func:`memscore.rmia`; row r scores run r (run-id order) with every other run
        as a reference.

        Parameters
        ----------
        online, gamma, offline_a
            As :func:`memscore.rmia`.

        Returns
        -------
        ndarray of float64, shape (R, n_train)

        Raises
        ------
        ValueError
            No test examples to serve as the population.
        StoreError
            No runs, a run without train or test phi, or a damaged run file.
        """
        if self._layout.n_test == 0:
            raise ValueError("rmia: this store has no test examples (n_test = 0) to serve as the population")
        got = load(self._reader, self._ids_or_raise(), ["mask_bits", "train_phi", "test_phi"], unpack=False)
        p, z = (_true_class_probability(np.asarray(got[k])) for k in ("train_phi", "test_phi"))
        return _rmia(got["mask_bits"], p, z, online=online, gamma=gamma, offline_a=offline_a)

    def data_oob(self, kind: str = "correct", *, chunk_runs: int = 256) -> F64:
        """Data-OOB value of every training example (Kwon & Zou 2023), streamed.

        The mean train outcome of each example over the bootstrap runs that did not draw
        it (out of bag): :func:`memscore.data_oob` on ``(multiplicities(),
        outcomes("train", kind))``, reading each run file once. Needs runs of a bootstrap
        plan (``SubsetPlan(..., bootstrap=True)``), which store their draw counts.

        Parameters
        ----------
        kind : {"correct", "phi"}
            Out-of-bag accuracy (the paper's score) or mean out-of-bag confidence.
        chunk_runs : int
            Runs loaded at a time.

        Returns
        -------
        ndarray of float64, shape (n_train,)
            NaN where every run drew the example.

        Raises
        ------
        StoreError
            No runs, runs without bootstrap multiplicities (named), a run without the
            outcome, or a damaged run file.
        """
        self._check_score_kind(kind)
        ids = self._ids_or_raise()
        name = outcome_name("train", kind)
        stats = GroupedStats(grouped=False, total=True)
        missing: list[str] = []

        def feed(recs: list[RunRecord]) -> None:
            missing.extend(r.run_id for r in recs if "multiplicity" not in r.arrays)
            if not missing:
                got = stack_records(self._layout, recs, ["mask_bits", name])
                stats.add(_packed(got["mask_bits"]), _outcome(got[name]))

        scan(self._reader, ids, ["mask_bits", name], ["multiplicity"], check_int(chunk_runs, "chunk_runs", 1), feed)
        if missing:
            raise StoreError(
                f"data_oob: {len(missing)} of {len(ids)} runs have no bootstrap multiplicities (first: "
                f"{missing[0]!r}); Data-OOB needs runs trained from SubsetPlan(..., bootstrap=True) "
                "(or add_run(..., multiplicity=...))"
            )
        return stats.total().mean_out()

    # ------------------------------------------------------------------ label issues

    def holdout_pred_probs(self, *, chunk_runs: int = 64) -> F64:
        """Out-of-sample predicted probabilities of every training example.

        The softmax of the stored train logits, averaged over the runs that held each
        example out: the subset runs play the folds of K-fold cross-validation, with no
        retraining. Pass straight to ``cleanlab.filter.find_label_issues`` or
        ``cleanlab.rank.get_label_quality_scores`` (rows of NaN dropped first).

        Parameters
        ----------
        chunk_runs : int
            Runs loaded at a time (a chunk holds ``chunk_runs x n_train x C`` logits).

        Returns
        -------
        ndarray of float64, shape (n_train, C)
            Rows sum to 1; NaN rows where no run held the example out.

        Raises
        ------
        StoreError
            No runs, or a run without train logits (stored only with ``keep_logits=True``;
            :func:`memscore.train.train_runs` keeps them by default), named.
        """
        ids = self._ids_or_raise()
        chunk_runs = check_int(chunk_runs, "chunk_runs", 1)
        acc: dict[str, Any] = {"sum": None, "count": np.zeros(self._layout.n_train, dtype=np.int64)}
        missing: list[str] = []

        def feed(recs: list[RunRecord]) -> None:
            missing.extend(r.run_id for r in recs if "train_logits" not in r.arrays)
            if missing:
                return
            got = stack_records(self._layout, recs, ["mask_bits", "train_logits"])
            out = ~_packed(got["mask_bits"]).unpack()
            z = np.asarray(got["train_logits"])
            probs = softmax(z.reshape(-1, z.shape[-1])).reshape(z.shape)
            part = np.einsum("rn,rnc->nc", out.astype(np.float64), probs)
            acc["sum"] = part if acc["sum"] is None else acc["sum"] + part
            acc["count"] += out.sum(axis=0)

        scan(self._reader, ids, ["mask_bits"], ["train_logits"], chunk_runs, feed)
        if missing:
            raise StoreError(
                f"holdout_pred_probs: {len(missing)} of {len(ids)} runs have no train logits "
                f"(first: {missing[0]!r}); add runs with keep_logits=True (train_runs keeps them by default)"
            )
        cnt = acc["count"]
        with np.errstate(invalid="ignore", divide="ignore"):
            probs_out: F64 = np.where(cnt[:, None] > 0, acc["sum"] / np.maximum(cnt, 1)[:, None], np.nan)
        return probs_out


class ScoreScan:
    """The statistics one read of the run files feeds for memorization, hold-out accuracy
    and :meth:`~ScoreMethods.scores`: train outcomes of ``kind`` over all runs and per
    subset ratio, and (``table``) mean train phi and the training-dynamics sums, the latter
    two kept while every run has them.

    :meth:`feed` takes the records of one chunk of runs; :meth:`merge` adds the statistics
    of a later chunk fed elsewhere (a Ray task), giving the same sums as feeding it here
    when the float shifts were seeded (:meth:`GroupedStats.seed_shifts`) as the first runs
    would set them.
    """

    def __init__(self, layout: Layout, kind: str, *, grouped: bool, total: bool, table: bool) -> None:
        """See the class docstring."""
        self.layout, self.kind, self.table = layout, kind, table
        self.name = outcome_name("train", kind)
        self.stats = GroupedStats(grouped=grouped, total=total)
        self.phi = self.stats if kind == "phi" else GroupedStats(grouped=False, total=True)
        self.snap = SnapshotStats(layout.n_train, None)
        self.has_phi = self.has_snap = table

    @property
    def names(self) -> list[str]:
        """Arrays every run must have."""
        return ["mask_bits", self.name]

    @property
    def optional(self) -> tuple[str, ...]:
        """Arrays read when present."""
        if not self.table:
            return ()
        return ("train_phi", *_SNAP_OPTIONAL) if self.kind == "correct" else _SNAP_OPTIONAL

    def feed(self, recs: list[RunRecord]) -> None:
        """Add one chunk of records."""
        got = stack_records(self.layout, recs, self.names)
        m = _packed(got["mask_bits"])
        self.stats.add(m, _outcome(got[self.name]), ratio_keys(r.meta for r in recs))
        if self.phi is not self.stats and self.has_phi:
            self.has_phi = all("train_phi" in r.arrays for r in recs)
            if self.has_phi:
                self.phi.add(m, _outcome(stack_records(self.layout, recs, ["train_phi"])["train_phi"]))
        if self.has_snap:
            self.has_snap = all(SnapshotStats.has(r) for r in recs)
            if self.has_snap:
                self.snap.add(m, recs)

    def merge(self, other: ScoreScan) -> None:
        """Add the statistics of ``other``: later runs, fed with the same shifts."""
        self.stats.merge(other.stats)
        if self.phi is not self.stats and self.has_phi:
            self.has_phi = other.has_phi
            if self.has_phi:
                self.phi.merge(other.phi)
        if self.has_snap:
            self.has_snap = other.has_snap
            if self.has_snap:
                self.snap.merge(other.snap)


def _packed(x: Stacked) -> PackedBits:
    assert isinstance(x, PackedBits)
    return x


def _outcome(x: Stacked) -> PackedBits | F64:
    if isinstance(x, PackedBits):
        return x
    return np.asarray(x, dtype=np.float64)
