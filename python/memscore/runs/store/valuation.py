"""Data valuation on a run store's runs: run utilities, Banzhaf values and Data-OOB.

:class:`ValuationMethods` is the part of :class:`~memscore.RunStore` that computes them.
A run's utility is a map over runs (tasks of run ranges compute it); the Banzhaf value
needs the utilities of all runs against every mask, so the tasks read the masks and
utilities of their runs and the driver runs the kernel of :func:`memscore.banzhaf` once.
Data-OOB is a sum over runs (:class:`OutOfBagScan`), added in run order.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ...executors import ExecutorLike
from ..valuation import banzhaf as _banzhaf
from ..valuation import run_utility as _run_utility
from .accumulate import F64, Accumulator, RowScan, check_kind, outcome, packed
from .format import Layout, outcome_name
from .reading import ReadMethods
from .scan import GroupedStats, RunRecord, Stacked, stack_records
from .tasks import read_rows, refuse_missing, scan_store

__all__ = ["OutOfBagScan", "ValuationMethods", "utility_of"]

UTILITIES = ("accuracy", "margin")


def utility_of(test_outcomes: Stacked) -> Stacked:
    """The utility of each run of a chunk from its stacked test outcomes."""
    return _run_utility(test_outcomes)


class ValuationMethods(ReadMethods):
    """Data values of the training examples (a part of :class:`~memscore.RunStore`)."""

    def _utility_field(self, utility: str) -> str:
        """The stored test outcome a utility kind averages."""
        if utility not in UTILITIES:
            raise ValueError(
                f"utility: expected 'accuracy', 'margin' or an array of one value per run, got {utility!r}"
            )
        if self._layout.n_test == 0:
            raise ValueError("run_utility: this store has no test examples (n_test = 0); pass a utility array")
        return outcome_name("test", "correct" if utility == "accuracy" else "phi")

    def run_utility(self, utility: str = "accuracy", *, chunk_runs: int = 256, executor: ExecutorLike = None) -> F64:
        """Utility of every run (run-id order) on the store's test examples.

        Parameters
        ----------
        utility : {"accuracy", "margin"}
            Test accuracy (from the stored test correctness) or mean test margin (the mean
            stored test phi, :func:`memscore.logit_confidence`).
        chunk_runs : int
            Runs loaded at a time.
        executor : None, str or memscore.executors.Executor
            Who reads the runs (:func:`memscore.executors.as_executor`): tasks of run
            ranges, concatenated in run order; identical under every executor. Workers
            must see the store's directory.

        Returns
        -------
        ndarray of float64, shape (R,)

        Raises
        ------
        ValueError
            An unknown ``utility``, or no test examples.
        StoreError
            No runs, or a run without the test outcome (named).
        TypeError
            ``executor`` names no executor.
        memscore.ClusterError
            The executor's workers cannot run a task or do not see the store.
        """
        name = self._utility_field(utility)
        got, _ = scan_store(
            self, RowScan(self._layout, [name], {name: utility_of}), chunk_runs, executor, desc="utility"
        )
        return np.asarray(got.rows(name), dtype=np.float64)

    def banzhaf(
        self, utility: Any = "accuracy", *, stderr: bool = False, executor: ExecutorLike = None
    ) -> F64 | tuple[F64, F64]:
        """Maximum-sample-reuse Banzhaf value of every training example.

        :func:`memscore.banzhaf` on the stored masks (bit-packed, all runs at once) and a
        utility per run. Each run file is read once: the masks and (for a utility kind)
        the run utilities come from the same read.

        Parameters
        ----------
        utility : {"accuracy", "margin"} or array-like of float, shape (R,)
            A :meth:`run_utility` kind, or one utility per run in run-id order.
        stderr : bool
            Also return the standard error.
        executor : None, str or memscore.executors.Executor
            Who reads the runs (and computes their utilities), by run ranges; the values
            are computed here from all of them: identical under every executor.

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
        TypeError, memscore.ClusterError
            As :meth:`run_utility`.
        """
        if isinstance(utility, str):
            name = self._utility_field(utility)
            got = read_rows(self, ["mask_bits", name], {name: utility_of}, executor)
            u: Any = got.rows(name)
        else:
            got = read_rows(self, ["mask_bits"], {}, executor)
            u = utility
        return _banzhaf(got.rows("mask_bits"), u, stderr=stderr)

    def data_oob(self, kind: str = "correct", *, chunk_runs: int = 256, executor: ExecutorLike = None) -> F64:
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
        executor : None, str or memscore.executors.Executor
            As :meth:`run_utility` (the sums are added in run order).

        Returns
        -------
        ndarray of float64, shape (n_train,)
            NaN where every run drew the example.

        Raises
        ------
        StoreError
            No runs, runs without bootstrap multiplicities (named), a run without the
            outcome, or a damaged run file.
        TypeError, memscore.ClusterError
            As :meth:`run_utility`.
        """
        check_kind(kind)
        acc, n = scan_store(self, OutOfBagScan(self._layout, kind), chunk_runs, executor, desc="Data-OOB")
        hint = "Data-OOB needs runs trained from SubsetPlan(..., bootstrap=True) (or add_run(..., multiplicity=...))"
        refuse_missing("data_oob", acc.missing, n, "bootstrap multiplicities", hint)
        return acc.stats.total().mean_out()


class OutOfBagScan(Accumulator):
    """Train-outcome sums over the runs that did not draw each example; the runs without
    multiplicities (not bootstrap runs) are listed instead."""

    def __init__(self, layout: Layout, kind: str) -> None:
        """An empty scan of ``kind`` outcomes."""
        self.layout, self.kind = layout, kind
        self.name = outcome_name("train", kind)
        self.names = ["mask_bits", self.name]
        self.optional = ["multiplicity"]
        self.stats = GroupedStats(grouped=False, total=True)
        self.missing: list[str] = []

    def feed(self, recs: list[RunRecord]) -> None:
        """Add one chunk of records (nothing once a run lacks multiplicities)."""
        self.missing.extend(r.run_id for r in recs if "multiplicity" not in r.arrays)
        if not self.missing:
            got = stack_records(self.layout, recs, self.names)
            self.stats.add(packed(got["mask_bits"]), outcome(got[self.name]))

    def merge(self, other: OutOfBagScan) -> None:
        """Add the sums of ``other`` (later runs)."""
        self.missing.extend(other.missing)
        if not self.missing:
            self.stats.merge(other.stats)

    def shift_needs(self) -> tuple[str, bool] | None:
        """The first run's phi for float outcomes."""
        return (self.name, False) if self.kind == "phi" else None

    def seed(self, total: F64 | None, groups: Mapping[float, F64]) -> None:
        """Fix the shift of the float sums."""
        self.stats.seed_shifts(total, {})
