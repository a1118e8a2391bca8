"""Reading run files and streaming statistics over them.

:class:`RunReader` opens one run file (without blocking, regular files only), checks its
meta against the manifest and every array it returns against the field table, and turns
any damage into a :class:`~memscore.StoreError` naming the file. :func:`load` stacks the
arrays of many runs. :func:`scan` reads every run file once and feeds all the streamed
statistics a call asks for (:class:`GroupedStats` for memorization / hold-out / phi,
:class:`SnapshotStats` for training dynamics), ``chunk_runs`` runs at a time, so memory
does not grow with the number of runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ...errors import StoreError
from ..bits import PackedBits
from ..scores import FloatRows, OutcomeStats, mean_over_groups
from .format import FIELDS, Layout, run_rel
from .npz import NpzFile

__all__ = ["GroupedStats", "RunReader", "RunRecord", "SnapshotStats", "load", "scan"]

F64 = npt.NDArray[np.float64]
Stacked = np.ndarray | PackedBits
SNAP_COLUMNS = ("el2n", "grand", "loss", "forgetting_events", "never_learned", "learning_speed")


def _damaged(rel: str, exc: BaseException) -> StoreError:
    return StoreError(f"{rel}: damaged run file ({type(exc).__name__}: {exc}); see RunStore.verify()")


@dataclass
class RunRecord:
    """One run as read: its meta and the arrays asked for (raw, checked, not decoded).

    Parameters
    ----------
    run_id : str
        The run's id.
    meta : dict
        The run's JSON record.
    arrays : dict of str to ndarray
        Stored arrays by name; optional ones absent from the file are missing here.
    """

    run_id: str
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


class RunReader:
    """Reads the run files of one store, checked against its manifest.

    Parameters
    ----------
    runs_dir : Path
        The store's ``runs/`` directory.
    layout : Layout
        The manifest's sizes.
    """

    def __init__(self, runs_dir: Path, layout: Layout) -> None:
        """See the class docstring."""
        self.runs_dir = runs_dir
        self.layout = layout

    def path(self, run_id: str) -> Path:
        """The run file of ``run_id``."""
        return self.runs_dir / f"{run_id}.npz"

    def read(self, run_id: str, names: Sequence[str] = (), optional: Sequence[str] = ()) -> RunRecord:
        """Meta and arrays of one run, in one open of its file.

        Parameters
        ----------
        run_id : str
            The run.
        names : sequence of str
            Arrays that must be there.
        optional : sequence of str
            Arrays returned when the run has them.

        Returns
        -------
        RunRecord

        Raises
        ------
        StoreError
            The file is missing, not a regular file, damaged in any way (bad zip, bad CRC,
            unparseable meta), lacks a required array, or disagrees with the manifest
            (sizes, class count, array shapes); the message names the file.
        """
        rel = run_rel(run_id)
        try:
            with NpzFile(self.path(run_id), rel) as z:
                return self._parse(z, run_id, rel, names, optional)
        except (StoreError, MemoryError):
            raise
        except Exception as exc:  # noqa: BLE001 - a damaged zip raises many types
            raise _damaged(rel, exc) from None

    def _parse(self, z: NpzFile, run_id: str, rel: str, names: Sequence[str], optional: Sequence[str]) -> RunRecord:
        members = z.names()
        if "meta.npy" not in members:
            raise StoreError(f"{rel}: damaged run file (no meta array); see RunStore.verify()")
        raw = z.read("meta")
        try:
            meta = json.loads(raw.tobytes().decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise StoreError(f"{rel}: damaged run file (meta is not JSON: {exc})") from None
        if not isinstance(meta, dict):
            raise StoreError(f"{rel}: damaged run file (meta is not a JSON object)")
        ratio = meta.get("subset_ratio")
        if ratio is not None and (isinstance(ratio, bool) or not isinstance(ratio, (int, float))):
            raise StoreError(f"{rel}: damaged run file (subset_ratio {ratio!r} is not a number)")
        why = self.layout.meta_problem(meta)
        if why is not None:
            raise StoreError(f"{rel}: {why}: the run does not belong to this store")
        recorded = meta.get("arrays")
        # A damaged zip directory can rename or hide a member; an optional array that
        # silently went missing would change the scores, so the listing must match meta.
        if isinstance(recorded, list) and set(members) != {f"{a}.npy" for a in recorded} | {"meta.npy"}:
            raise StoreError(
                f"{rel}: damaged run file (its arrays {sorted(members)} do not match those recorded in "
                f"its meta); see RunStore.verify()"
            )
        rec = RunRecord(run_id, meta)
        for name, required in [(n, True) for n in names] + [(n, False) for n in optional]:
            if name in rec.arrays:
                continue
            if f"{name}.npy" not in members:
                if not required:
                    continue
                hint = " (add runs with keep_logits=True to keep logits)" if name.endswith("_logits") else ""
                raise StoreError(f"{rel}: this run has no {name.removesuffix('_bits')}{hint}")
            a = z.read(name)
            f = FIELDS[name]
            why = self.layout.problem(f, a)
            if why is None and f.shape == "nC" and isinstance(meta.get("n_classes"), int):
                if a.shape[1] != meta["n_classes"]:
                    why = f"{name} has {a.shape[1]} classes, the run's meta says {meta['n_classes']}"
            if why is not None:
                raise StoreError(f"{rel}: {why}")
            rec.arrays[name] = a
        return rec


def stack(layout: Layout, name: str, rows: list[np.ndarray], *, unpack: bool = True, decode: bool = True) -> Stacked:
    """Stack one field's rows of several runs (decoded; packed rows kept packed if asked).

    Parameters
    ----------
    layout : Layout
        The store's sizes.
    name : str
        The stored field name.
    rows : list of ndarray
        One checked array per run.
    unpack : bool
        Unpack bit fields to bool; with False a 1-D bit field comes back as
        :class:`PackedBits` and snapshot bits as ``(R, S, ceil(n/8))`` uint8.
    decode : bool
        Widen float fields to their decoded dtype (float64); with False they keep the
        stored dtype (float32), for the sums that widen as they read.

    Returns
    -------
    ndarray or PackedBits

    Raises
    ------
    StoreError
        Runs disagree on the number of snapshots or the logits' class count.
    """
    f = FIELDS[name]
    if not rows:
        e = layout.empty(f, unpack=unpack)
        return PackedBits(e, layout.n_of(f)) if f.packed and not unpack and not f.snapshot else e
    if f.snapshot or f.shape == "nC":
        shapes = {r.shape for r in rows}
        if len(shapes) > 1:
            what = "the number of snapshots" if f.snapshot else "the logits' class count"
            raise StoreError(f"runs disagree on {what} ({name}: shapes {sorted(shapes)})")
    if f.packed and not unpack:
        st = np.stack(rows)
        return st if f.snapshot else PackedBits(st, layout.n_of(f))
    if f.packed:
        return np.stack([layout.decode(f, r) for r in rows])
    if not decode:
        return np.stack(rows)
    return np.stack(rows).astype(f.decoded, copy=False)


def load(reader: RunReader, ids: Sequence[str], names: Sequence[str], *, unpack: bool = True) -> dict[str, Stacked]:
    """Stacked arrays ``(R, ...)`` of the given runs, one open per run file.

    Parameters
    ----------
    reader : RunReader
        The store's reader.
    ids : sequence of str
        Runs, in the order of the result's rows.
    names : sequence of str
        Stored field names, all required.
    unpack : bool
        As in :func:`stack`.

    Returns
    -------
    dict of str to ndarray or PackedBits
    """
    rows: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for rid in ids:
        rec = reader.read(rid, names)
        for n in names:
            rows[n].append(rec.arrays[n])
    return {n: stack(reader.layout, n, rows[n], unpack=unpack) for n in names}


# ----------------------------------------------------------------------------- streamed statistics


class GroupedStats:
    """Train-outcome statistics summed over chunks: over all runs and per subset-ratio group.

    Bool outcomes (:class:`PackedBits`) use shift 0, so per-group statistics add up to
    the total; float outcomes use the first run's outcome as the total's shift and each
    group's first run as that group's shift.

    Parameters
    ----------
    grouped : bool
        Keep per-group statistics (for hold-out accuracy by subset ratio).
    total : bool
        Keep statistics over all runs (for memorization).
    """

    def __init__(self, *, grouped: bool, total: bool = True) -> None:
        """See the class docstring."""
        self._grouped = grouped
        self._want_total = total or not grouped
        self._groups: dict[float, OutcomeStats] = {}
        self._group_shift: dict[float, F64] = {}
        self._total: OutcomeStats | None = None
        self._shift: F64 | None = None
        self._bool = True

    def add(self, masks: PackedBits, outcomes: PackedBits | FloatRows, keys: F64 | None = None) -> None:
        """Add one chunk of runs.

        Parameters
        ----------
        masks : PackedBits
            ``(r, n)`` masks of the chunk.
        outcomes : PackedBits or ndarray of float64 or float32
            ``(r, n)`` bool (packed) or float outcomes, as read from the store (their
            shapes checked by the reader; finiteness is checked on the sums).
        keys : ndarray of float64, optional
            ``(r,)`` group key of each run (its subset ratio; -1 where none); needed
            when ``grouped``.
        """
        is_bool = isinstance(outcomes, PackedBits)
        self._bool = is_bool
        if self._grouped:
            if keys is None:
                raise ValueError("GroupedStats.add: keys are needed for grouped statistics")
            uniq = np.unique(keys)
            for g in uniq.tolist():
                if len(uniq) == 1:
                    mg, og = masks, outcomes
                else:
                    sel = keys == g
                    mg, og = masks[sel], outcomes[sel]
                sh = None
                if not isinstance(og, PackedBits):
                    sh = self._group_shift.setdefault(g, og[0].astype(np.float64, copy=True))
                st = OutcomeStats._from_checked(mg, og, sh)
                prev = self._groups.get(g)
                self._groups[g] = st if prev is None else prev + st
        if self._want_total and not (is_bool and self._grouped):
            sh = None
            if not isinstance(outcomes, PackedBits):
                if self._shift is None:
                    self._shift = outcomes[0].astype(np.float64, copy=True)
                sh = self._shift
            st = OutcomeStats._from_checked(masks, outcomes, sh)
            self._total = st if self._total is None else self._total + st

    def seed_shifts(self, total: F64 | None, groups: Mapping[float, F64]) -> None:
        """Fix the shifts of float outcomes before anything is added: those the first run
        (of all, of each group) would set, so that statistics of later chunks computed
        elsewhere can be merged exactly (:meth:`merge`)."""
        if total is not None:
            self._shift = np.asarray(total, dtype=np.float64)
        for g, sh in groups.items():
            self._group_shift[g] = np.asarray(sh, dtype=np.float64)

    def merge(self, other: GroupedStats) -> None:
        """Add the statistics of ``other`` (later runs, the same shifts): the sums become
        those of adding its chunks here, bit for bit when ``other`` holds one chunk.

        Raises
        ------
        ValueError
            Statistics computed with different shifts.
        """
        for g, st in other._groups.items():
            prev = self._groups.get(g)
            self._groups[g] = st if prev is None else prev + st
            if g in other._group_shift:
                self._group_shift.setdefault(g, other._group_shift[g])
        if other._total is not None:
            self._total = other._total if self._total is None else self._total + other._total
        if self._shift is None:
            self._shift = other._shift
        self._bool = other._bool

    def total(self) -> OutcomeStats:
        """Statistics over all runs added.

        Returns
        -------
        OutcomeStats

        Raises
        ------
        ValueError
            Nothing was added, or totals were not kept.
        """
        if self._bool and self._grouped:
            if not self._groups:
                raise ValueError("GroupedStats.total: no runs were added")
            keys = sorted(self._groups)
            out = self._groups[keys[0]]
            for k in keys[1:]:
                out = out + self._groups[k]
            return out
        if self._total is None:
            raise ValueError("GroupedStats.total: no runs were added (or totals were not kept)")
        return self._total

    def holdout(self) -> F64:
        """Hold-out mean per group of runs sharing a subset ratio, averaged over the groups.

        Returns
        -------
        ndarray of float64
            ``(n,)``; NaN where no group held the example out.

        Raises
        ------
        ValueError
            Nothing was added.
        """
        if not self._groups:
            return self.total().mean_out()
        return mean_over_groups([self._groups[k].mean_out() for k in sorted(self._groups)])


class SnapshotStats:
    """Training-dynamics sums over the in-runs of every example, summed over chunks.

    Float statistics (``loss``, ``el2n``, ``grand``) count only while every run added has
    them; a column some run lacks comes back NaN.

    Parameters
    ----------
    n : int
        Training examples.
    el2n_epoch : int or None
        Epoch at which EL2N and GraNd are taken (default: the first snapshot).
    """

    FLOATS = ("loss", "el2n", "grand")

    def __init__(self, n: int, el2n_epoch: int | None) -> None:
        """See the class docstring."""
        self.n = n
        self.floats = list(self.FLOATS)
        self.el2n_epoch = el2n_epoch
        self.sums = {k: np.zeros(n) for k in SNAP_COLUMNS}
        self.n_in = np.zeros(n, dtype=np.int64)
        self.epochs: npt.NDArray[np.int64] | None = None
        self._at = 0

    @staticmethod
    def has(rec: RunRecord) -> bool:
        """Whether a record carries train snapshots (epochs and correctness)."""
        return "snap_epochs" in rec.arrays and "snap_train_correct_bits" in rec.arrays

    def _check_epochs(self, recs: Sequence[RunRecord]) -> None:
        for r in recs:
            ep = r.arrays["snap_epochs"].astype(np.int64)
            if self.epochs is None:
                self.epochs = ep
                if self.el2n_epoch is not None:
                    hit = np.flatnonzero(ep == self.el2n_epoch)
                    if hit.size == 0:
                        raise ValueError(
                            f"el2n_epoch: expected one of the snapshot epochs {ep.tolist()}, got {self.el2n_epoch}"
                        )
                    self._at = int(hit[0])
            if ep.shape != self.epochs.shape or np.any(ep != self.epochs):
                raise StoreError("runs disagree on their snapshot epochs")
            if r.arrays["snap_train_correct_bits"].shape[0] != ep.size:
                raise StoreError(f"{run_rel(r.run_id)}: snapshot arrays disagree on the number of snapshots")

    def add(self, masks: PackedBits, recs: Sequence[RunRecord]) -> None:
        """Add one chunk of records, all carrying train snapshots (:meth:`has`).

        Parameters
        ----------
        masks : PackedBits
            ``(r, n)`` masks of the chunk.
        recs : sequence of RunRecord
            The chunk's records, in the order of the mask rows.

        Raises
        ------
        StoreError
            Runs disagree on their snapshot epochs.
        ValueError
            ``el2n_epoch`` is not a snapshot epoch.
        """
        self._check_epochs(recs)
        assert self.epochs is not None
        s, n = self.epochs.size, self.n
        c = np.stack([r.arrays["snap_train_correct_bits"] for r in recs])  # (r, S, b), packed rows

        def in_count(bits: npt.NDArray[np.uint8]) -> F64:
            return OutcomeStats.from_runs(masks, PackedBits(np.ascontiguousarray(bits), n)).sum_in

        pad = np.packbits(np.ones(n, dtype=np.bool_))  # ones on real bits, zeros on padding
        first = OutcomeStats.from_runs(masks, PackedBits(np.ascontiguousarray(c[:, 0]), n))
        self.n_in += first.n_in
        speed = first.sum_in.copy()
        for j in range(1, s):
            speed += in_count(c[:, j])
            self.sums["forgetting_events"] += in_count(c[:, j - 1] & ~c[:, j])
        self.sums["learning_speed"] += speed / s
        self.sums["never_learned"] += in_count(~np.bitwise_or.reduce(c, axis=1) & pad)
        self.floats = [k for k in self.floats if all(f"snap_train_{k}" in r.arrays for r in recs)]
        zero = np.zeros(n)
        for k in self.floats:
            at = -1 if k == "loss" else self._at
            v = np.stack([r.arrays[f"snap_train_{k}"][at] for r in recs]).astype(np.float64)
            self.sums[k] += OutcomeStats.from_runs(masks, v, shift=zero).sum_in

    def merge(self, other: SnapshotStats) -> None:
        """Add the sums of ``other`` (later runs): exactly those of adding its records here
        when ``other`` holds one chunk.

        Raises
        ------
        StoreError
            The two disagree on their snapshot epochs.
        """
        if other.epochs is None:
            return
        if self.epochs is None:
            self.epochs, self._at = other.epochs, other._at
        elif other.epochs.shape != self.epochs.shape or np.any(other.epochs != self.epochs):
            raise StoreError("runs disagree on their snapshot epochs")
        self.n_in += other.n_in
        for k in self.sums:
            self.sums[k] += other.sums[k]
        self.floats = [k for k in self.floats if k in other.floats]

    def columns(self) -> dict[str, F64]:
        """Per-example means over the in-runs (NaN where none, or where not recorded).

        Returns
        -------
        dict of str to ndarray of float64
            One ``(n,)`` column per name in ``SNAP_COLUMNS``.
        """
        with np.errstate(invalid="ignore", divide="ignore"):
            cols = {k: np.where(self.n_in > 0, v / self.n_in, np.nan) for k, v in self.sums.items()}
        for k in self.FLOATS:
            if k not in self.floats:
                cols[k] = np.full(self.n, np.nan)
        return cols


def chunks(ids: Sequence[str], chunk_runs: int) -> Iterable[Sequence[str]]:
    """Consecutive slices of at most ``chunk_runs`` ids."""
    for start in range(0, len(ids), chunk_runs):
        yield ids[start : start + chunk_runs]


def scan(
    reader: RunReader,
    ids: Sequence[str],
    names: Sequence[str],
    optional: Sequence[str],
    chunk_runs: int,
    feed: Callable[[list[RunRecord]], None],
) -> None:
    """Read every run file once, ``chunk_runs`` runs at a time, and feed the records.

    Parameters
    ----------
    reader : RunReader
        The store's reader.
    ids : sequence of str
        Runs in order.
    names, optional : sequence of str
        Arrays every run must have / arrays read when present.
    chunk_runs : int
        Runs held at a time.
    feed : callable
        Called with each chunk's records, in order.
    """
    for part in chunks(ids, chunk_runs):
        feed([reader.read(rid, names, optional) for rid in part])


def stack_records(
    layout: Layout, recs: Sequence[RunRecord], names: Iterable[str], *, decode: bool = True
) -> dict[str, Stacked]:
    """The named fields of a chunk of records, stacked, bits kept packed (floats as stored
    with ``decode=False``)."""
    return {n: stack(layout, n, [r.arrays[n] for r in recs], unpack=False, decode=decode) for n in names}


def ratio_keys(metas: Iterable[Mapping[str, Any]]) -> F64:
    """Group key of each run: its subset ratio, -1 where none was recorded."""
    return np.array([-1.0 if m.get("subset_ratio") is None else float(m["subset_ratio"]) for m in metas])
