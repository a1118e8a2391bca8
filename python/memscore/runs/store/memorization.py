"""Memorization, hold-out accuracy, the scores table and hold-out predicted probabilities
of a run store: the in/out means of Feldman & Zhang, streamed over the runs.

:class:`MemorizationMethods` is the part of :class:`~memscore.RunStore` that computes
them. Each reads every run file once per call and feeds every statistic the call needs
from that read, ``chunk_runs`` runs at a time (:class:`~.accumulate.ScoreScan`), on any
executor (:mod:`.tasks`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from ..._stats import softmax
from ...executors import ExecutorLike
from .accumulate import F64, Accumulator, ScoreScan, check_kind, packed
from .format import Layout
from .reading import ReadMethods
from .scan import SNAP_COLUMNS, RunRecord, stack_records
from .tasks import refuse_missing, scan_store

__all__ = ["MemorizationMethods"]


class MemorizationMethods(ReadMethods):
    """Memorization and hold-out scores over the stored runs (a part of
    :class:`~memscore.RunStore`)."""

    _train_labels: npt.NDArray[np.int64] | None

    def _outcome_scan(
        self, kind: str, chunk_runs: int, executor: ExecutorLike, *, grouped: bool, total: bool, table: bool
    ) -> ScoreScan:
        """Train-outcome statistics of ``kind``, one read of every run file."""
        check_kind(kind)
        proto = ScoreScan(self._layout, kind, grouped=grouped, total=total, table=table)
        return scan_store(self, proto, chunk_runs, executor, desc="scoring")[0]

    def memorization(
        self, kind: str = "correct", *, stderr: bool = False, chunk_runs: int = 256, executor: ExecutorLike = None
    ) -> F64 | tuple[F64, F64]:
        """Memorization of every training example, streamed over the runs.

        Equals :func:`memscore.memorization` on ``(masks(), outcomes("train", kind))``
        while holding only ``chunk_runs`` runs in memory (per task); each run file is read
        once.

        Parameters
        ----------
        kind : {"correct", "phi"}
            Bool outcomes or float confidences.
        stderr : bool
            Also return the standard error.
        chunk_runs : int
            Runs loaded at a time.
        executor : None, str or memscore.executors.Executor
            Who reads the runs (:func:`memscore.executors.as_executor`: ``"local"``, the
            default, ``"threads[:N]"``, ``"ray[:ADDRESS]"`` or an instance): tasks of whole
            chunks (``runs_per_task`` of the executor), added in run order, so the result
            is identical under every executor. Workers must see the store's directory.

        Returns
        -------
        ndarray of float64 or (ndarray, ndarray)
            ``(n_train,)``, NaN where undefined; or ``(mem, stderr)``.

        Raises
        ------
        StoreError
            No runs, or a run lacks the outcome or is damaged (named).
        TypeError
            ``executor`` names no executor.
        memscore.ClusterError
            The executor's workers cannot run a task or do not see the store.

        Examples
        --------
        >>> import memscore, tempfile
        >>> s = memscore.RunStore.create(tempfile.mkdtemp() + "/s", n_train=2)
        >>> _ = s.add_run([1, 0], train_correct=[1, 0]); _ = s.add_run([0, 1], train_correct=[0, 1])
        >>> s.memorization(executor="threads:2")
        array([1., 1.])
        """
        stats = self._outcome_scan(kind, chunk_runs, executor, grouped=False, total=True, table=False).stats.total()
        mem = stats.memorization()
        return (mem, stats.memorization_stderr()) if stderr else mem

    def holdout_accuracy(self, kind: str = "correct", chunk_runs: int = 256, *, executor: ExecutorLike = None) -> F64:
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
        executor : None, str or memscore.executors.Executor
            As :meth:`memorization`.

        Returns
        -------
        ndarray of float64
            ``(n_train,)``, NaN where no run held the example out.

        Raises
        ------
        StoreError, TypeError, memscore.ClusterError
            As :meth:`memorization`.
        """
        return self._outcome_scan(kind, chunk_runs, executor, grouped=True, total=False, table=False).stats.holdout()

    def scores(self, kind: str = "correct", *, chunk_runs: int = 256, executor: ExecutorLike = None) -> pl.DataFrame:
        """A table with one row per training example, from one read of every run file.

        Memory does not grow with the number of runs (``chunk_runs`` runs at a time).

        Parameters
        ----------
        kind : {"correct", "phi"}
            Outcomes for memorization and hold-out accuracy.
        chunk_runs : int
            Runs loaded at a time.
        executor : None, str or memscore.executors.Executor
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
        StoreError, TypeError, memscore.ClusterError
            As :meth:`memorization`.
        """
        acc = self._outcome_scan(kind, chunk_runs, executor, grouped=True, total=True, table=True)
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

    # ------------------------------------------------------------------ label issues

    def holdout_pred_probs(self, *, chunk_runs: int = 64, executor: ExecutorLike = None) -> F64:
        """Out-of-sample predicted probabilities of every training example.

        The softmax of the stored train logits, averaged over the runs that held each
        example out: the subset runs play the folds of K-fold cross-validation, with no
        retraining. Pass straight to ``cleanlab.filter.find_label_issues`` or
        ``cleanlab.rank.get_label_quality_scores`` (rows of NaN dropped first).

        Parameters
        ----------
        chunk_runs : int
            Runs loaded at a time (a chunk holds ``chunk_runs x n_train x C`` logits).
        executor : None, str or memscore.executors.Executor
            As :meth:`memorization`.

        Returns
        -------
        ndarray of float64, shape (n_train, C)
            Rows sum to 1; NaN rows where no run held the example out.

        Raises
        ------
        StoreError
            No runs, or a run without train logits (stored only with ``keep_logits=True``;
            :func:`memscore.train.train_runs` keeps them by default), named.
        TypeError, memscore.ClusterError
            As :meth:`memorization`.
        """
        acc, n = scan_store(self, PredProbsScan(self._layout), chunk_runs, executor, desc="hold-out probabilities")
        hint = "add runs with keep_logits=True (train_runs keeps them by default)"
        refuse_missing("holdout_pred_probs", acc.missing, n, "train logits", hint)
        cnt = acc.count
        with np.errstate(invalid="ignore", divide="ignore"):
            probs_out: F64 = np.where(cnt[:, None] > 0, acc.sum / np.maximum(cnt, 1)[:, None], np.nan)
        return probs_out


class PredProbsScan(Accumulator):
    """Sums of the softmax of the train logits over the runs holding each example out,
    and their counts; the runs without logits are listed instead."""

    names = ("mask_bits",)
    optional = ("train_logits",)

    def __init__(self, layout: Layout) -> None:
        """An empty scan of a store of this ``layout``."""
        self.layout = layout
        self.sum: Any = None
        self.count = np.zeros(layout.n_train, dtype=np.int64)
        self.missing: list[str] = []

    def feed(self, recs: list[RunRecord]) -> None:
        """Add one chunk of records (nothing once a run lacks logits)."""
        self.missing.extend(r.run_id for r in recs if "train_logits" not in r.arrays)
        if self.missing:
            return
        got = stack_records(self.layout, recs, ["mask_bits", "train_logits"])
        out = ~packed(got["mask_bits"]).unpack()
        z = np.asarray(got["train_logits"])
        probs = softmax(z.reshape(-1, z.shape[-1])).reshape(z.shape)
        part = np.einsum("rn,rnc->nc", out.astype(np.float64), probs)
        self.sum = part if self.sum is None else self.sum + part
        self.count += out.sum(axis=0)

    def merge(self, other: PredProbsScan) -> None:
        """Add the sums of ``other`` (later runs)."""
        self.missing.extend(other.missing)
        if self.missing or other.sum is None:
            return
        self.sum = other.sum if self.sum is None else self.sum + other.sum
        self.count += other.count
