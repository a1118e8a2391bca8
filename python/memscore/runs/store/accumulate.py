"""What a store scan accumulates over chunks of runs.

An :class:`Accumulator` is fed the records of one chunk of runs at a time
(:meth:`~Accumulator.feed`) and adds the statistics of later runs fed elsewhere
(:meth:`~Accumulator.merge`): merging the accumulator of one chunk gives exactly the sums
of feeding that chunk here, which is what lets :mod:`.tasks` spread a scan over tasks and
still return the one-process result bit for bit.

- :class:`ScoreScan`: train outcomes over all runs and per subset ratio, mean train phi
  and the training-dynamics sums (memorization, hold-out accuracy, the scores table);
- :class:`RowScan`: fields of every run kept, possibly mapped run by run (the scores that
  need every run at once: LiRA, RMIA, Banzhaf, run utilities).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..bits import PackedBits
from ..scores import FloatRows
from .format import Layout, outcome_name
from .scan import GroupedStats, RunReader, RunRecord, SnapshotStats, Stacked, ratio_keys, stack_records

__all__ = ["Accumulator", "RowScan", "ScoreScan", "check_kind", "first_outcome"]

F64 = npt.NDArray[np.float64]
SNAP_OPTIONAL = ("snap_epochs", "snap_train_correct_bits", "snap_train_loss", "snap_train_el2n", "snap_train_grand")


def check_kind(kind: str) -> None:
    """Refuse an outcome kind other than ``"correct"`` or ``"phi"``."""
    if kind not in ("correct", "phi"):
        raise ValueError(f"kind: expected 'correct' or 'phi', got {kind!r}")


class Accumulator:
    """Statistics of chunks of runs (the base of every scan's accumulator).

    Subclasses set :attr:`names` (arrays every run must have) and :attr:`optional`
    (arrays read when present) and define :meth:`feed` and :meth:`merge`.
    """

    names: Sequence[str] = ()
    optional: Sequence[str] = ()

    def feed(self, recs: list[RunRecord]) -> None:
        """Add one chunk of records, in run order."""
        raise NotImplementedError

    def merge(self, other: Any) -> None:
        """Add the statistics of ``other`` (later runs, fed from a copy of the same empty
        accumulator): exactly those of feeding its chunk here."""
        raise NotImplementedError

    def shift_needs(self) -> tuple[str, bool] | None:
        """The float outcome whose first run's value the sums are shifted by, and whether
        per subset-ratio group too; None when no sum is shifted."""
        return None

    def seed(self, total: F64 | None, groups: Mapping[float, F64]) -> None:
        """Fix the shifts before anything is fed (see :meth:`shift_needs`)."""


def first_outcome(reader: RunReader, run_id: str, name: str) -> F64 | None:
    """The float outcome ``name`` of one run as the scans shift by it (None when the run
    has none)."""
    rec = reader.read(run_id, (), (name,))
    if name not in rec.arrays:
        return None
    row: F64 = np.asarray(outcome(stack_records(reader.layout, [rec], [name])[name]))[0].copy()
    return row


class ScoreScan(Accumulator):
    """The statistics one read of the run files feeds for memorization, hold-out accuracy
    and the scores table: train outcomes of ``kind`` over all runs and per subset ratio,
    and (``table``) mean train phi and the training-dynamics sums, the latter two kept
    while every run has them.

    Parameters
    ----------
    layout : Layout
        The store's sizes.
    kind : {"correct", "phi"}
        The train outcome.
    grouped, total : bool
        Keep per-ratio-group statistics (hold-out accuracy) / statistics over all runs.
    table : bool
        Also mean train phi and the snapshot sums.
    """

    def __init__(self, layout: Layout, kind: str, *, grouped: bool, total: bool, table: bool) -> None:
        """See the class docstring."""
        self.layout, self.kind, self.table, self.grouped = layout, kind, table, grouped
        self.name = outcome_name("train", kind)
        self.stats = GroupedStats(grouped=grouped, total=total)
        self.phi = self.stats if kind == "phi" else GroupedStats(grouped=False, total=True)
        self.snap = SnapshotStats(layout.n_train, None)
        self.has_phi = self.has_snap = table

    @property
    def names(self) -> list[str]:  # type: ignore[override]
        """Arrays every run must have."""
        return ["mask_bits", self.name]

    @property
    def optional(self) -> tuple[str, ...]:  # type: ignore[override]
        """Arrays read when present."""
        if not self.table:
            return ()
        return ("train_phi", *SNAP_OPTIONAL) if self.kind == "correct" else SNAP_OPTIONAL

    def feed(self, recs: list[RunRecord]) -> None:
        """Add one chunk of records."""
        # Float outcomes stay as stored (float32): the sums widen them as they read.
        got = stack_records(self.layout, recs, self.names, decode=False)
        m = packed(got["mask_bits"])
        self.stats.add(m, outcome(got[self.name]), ratio_keys(r.meta for r in recs))
        if self.phi is not self.stats and self.has_phi:
            self.has_phi = all("train_phi" in r.arrays for r in recs)
            if self.has_phi:
                self.phi.add(m, outcome(stack_records(self.layout, recs, ["train_phi"], decode=False)["train_phi"]))
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

    def shift_needs(self) -> tuple[str, bool] | None:
        """Train phi (grouped when the outcome is phi and groups are kept), or nothing."""
        if self.kind == "phi":
            return "train_phi", self.grouped
        return ("train_phi", False) if self.table else None

    def seed(self, total: F64 | None, groups: Mapping[float, F64]) -> None:
        """Fix the shifts of the phi statistics."""
        if self.phi is self.stats:
            self.stats.seed_shifts(total, groups)
        else:
            self.phi.seed_shifts(total, {})


class RowScan(Accumulator):
    """Fields of every run, stacked chunk by chunk, bits kept packed; ``maps`` turns a
    field's chunk into what is kept (run by run, e.g. a run's utility).

    Parameters
    ----------
    layout : Layout
        The store's sizes.
    names : sequence of str
        Fields every run must have.
    maps : mapping of str to callable, optional
        Per field, a top-level function of the stacked chunk (rows stay runs).
    """

    def __init__(
        self, layout: Layout, names: Sequence[str], maps: Mapping[str, Callable[[Stacked], Stacked]] | None = None
    ) -> None:
        """See the class docstring."""
        self.layout = layout
        self.names = list(names)
        self.maps = dict(maps or {})
        self.parts: dict[str, list[Stacked]] = {n: [] for n in self.names}

    def feed(self, recs: list[RunRecord]) -> None:
        """Keep one chunk of records."""
        got = stack_records(self.layout, recs, self.names)
        for n in self.names:
            self.parts[n].append(self.maps[n](got[n]) if n in self.maps else got[n])

    def merge(self, other: RowScan) -> None:
        """Keep the chunks of ``other`` after these."""
        for n in self.names:
            self.parts[n].extend(other.parts[n])

    def rows(self, name: str) -> Stacked:
        """Field ``name`` of every run fed, rows in run order."""
        parts = self.parts[name]
        if len(parts) == 1:
            return parts[0]
        if isinstance(parts[0], PackedBits):
            return PackedBits(np.concatenate([packed(p).bits for p in parts]), parts[0].n)
        return np.concatenate([np.asarray(p) for p in parts])


def packed(x: Stacked) -> PackedBits:
    """A stacked bit field (kept packed)."""
    assert isinstance(x, PackedBits)
    return x


def outcome(x: Stacked) -> PackedBits | FloatRows:
    """A stacked outcome: packed bits, or floats (float32 kept as stored, else float64)."""
    if isinstance(x, PackedBits):
        return x
    if x.dtype == np.float32:
        return x
    return np.asarray(x, dtype=np.float64)
