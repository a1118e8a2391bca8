"""Training-dynamics scores of a run store: EL2N, GraNd, loss, forgetting events and
learning speed, averaged over the in-runs from the snapshots recorded during training.

:class:`SnapshotMethods` is the part of :class:`~memscore.RunStore` that computes them,
streamed over the runs (:class:`SnapshotScan`, sums added in run order).
"""

from __future__ import annotations

import polars as pl

from ...executors import ExecutorLike
from .accumulate import SNAP_OPTIONAL, Accumulator, packed
from .format import Layout
from .reading import ReadMethods
from .scan import SNAP_COLUMNS, RunRecord, SnapshotStats, stack_records
from .tasks import refuse_missing, scan_store

__all__ = ["SnapshotMethods", "SnapshotScan"]


class SnapshotMethods(ReadMethods):
    """Training-dynamics scores (a part of :class:`~memscore.RunStore`)."""

    def snapshot_scores(
        self, *, el2n_epoch: int | None = None, chunk_runs: int = 256, executor: ExecutorLike = None
    ) -> pl.DataFrame:
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
        executor : None, str or memscore.executors.Executor
            Who reads the runs (:func:`memscore.executors.as_executor`): tasks of whole
            chunks, added in run order; identical under every executor. Workers must see
            the store's directory.

        Returns
        -------
        polars.DataFrame

        Raises
        ------
        StoreError
            No runs, runs without train snapshots, or disagreeing epochs.
        ValueError
            ``el2n_epoch`` is not a snapshot epoch.
        TypeError
            ``executor`` names no executor.
        memscore.ClusterError
            The executor's workers cannot run a task or do not see the store.
        """
        proto = SnapshotScan(self._layout, el2n_epoch)
        acc, n = scan_store(self, proto, chunk_runs, executor, desc="snapshot scores")
        refuse_missing(
            "snapshot_scores", acc.missing, n, "train snapshots", "train with snapshot_epochs=... to record them"
        )
        cols = acc.snap.columns()
        return pl.DataFrame(
            [pl.Series(k, cols[k], dtype=pl.Float64) for k in SNAP_COLUMNS]
            + [pl.Series("n_snapshot_runs", acc.snap.n_in)]
        )


class SnapshotScan(Accumulator):
    """Training-dynamics sums over the in-runs (:class:`~.scan.SnapshotStats`); the runs
    without train snapshots are listed instead."""

    names = ("mask_bits",)
    optional = SNAP_OPTIONAL

    def __init__(self, layout: Layout, el2n_epoch: int | None) -> None:
        """An empty scan; EL2N and GraNd taken at ``el2n_epoch`` (default: the first)."""
        self.layout = layout
        self.snap = SnapshotStats(layout.n_train, el2n_epoch)
        self.missing: list[str] = []

    def feed(self, recs: list[RunRecord]) -> None:
        """Add one chunk of records (nothing once a run lacks snapshots)."""
        self.missing.extend(r.run_id for r in recs if not SnapshotStats.has(r))
        if not self.missing:
            self.snap.add(packed(stack_records(self.layout, recs, ["mask_bits"])["mask_bits"]), recs)

    def merge(self, other: SnapshotScan) -> None:
        """Add the sums of ``other`` (later runs)."""
        self.missing.extend(other.missing)
        if not self.missing:
            self.snap.merge(other.snap)
