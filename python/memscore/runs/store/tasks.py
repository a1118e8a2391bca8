"""Store scans on the executor seam: *split → task → merge*.

Every scan of a :class:`~memscore.RunStore` states its work the same way:

- **split**: the run ids (the store object's snapshot) into ranges of whole
  ``chunk_runs`` chunks (:func:`run_ranges`), or, for influence, the test examples into
  ranges of whole bytes of packed bits (:func:`column_ranges`);
- **task**: a top-level function that opens the store by path (:class:`StoreRef`, only
  its ``runs/`` directory and sizes: no manifest read, no listing) and reads its range.
  :func:`scan_runs` feeds an :class:`~.accumulate.Accumulator` chunk by chunk;
- **merge**: in run order (never in arrival order), whichever executor ran the tasks.

A task that folded several chunks into one accumulator would add its float sums in
another order than the one-process scan, so a task returns one accumulator per chunk and
the driver adds them in run order: ``((a + c1) + c2) + ...`` as the one-process scan does.
When the whole store is one task (the default of an executor that runs one task at a
time, :class:`~memscore.executors.LocalExecutor`), the task folds every chunk itself: that
is the one-process scan, with no extra read and no extra memory. Float outcomes are summed
around a shift (the first run's outcome, of all runs and of each subset-ratio group); with
several tasks the driver reads those runs first and seeds every task's accumulator with
them (:func:`seed_shifts`), so the sums are those of the one-process scan, bit for bit.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from ..._validate import check_int
from ...errors import StoreError
from ...executors import Executor, ExecutorLike, as_executor
from .accumulate import F64, Accumulator, RowScan, first_outcome
from .format import RUNS_DIR, Layout
from .scan import RunReader, Stacked, ratio_keys, scan

__all__ = [
    "ScanSource",
    "StoreRef",
    "column_ranges",
    "gather",
    "in_order",
    "read_rows",
    "refuse_missing",
    "run_ranges",
    "scan_runs",
    "scan_store",
    "start_scan",
]


class ScanSource(Protocol):
    """What the scans read of a store (a :class:`~memscore.RunStore`)."""

    _path: Path
    _layout: Layout

    def _ids_or_raise(self) -> list[str]: ...


A = TypeVar("A", bound=Accumulator)
T = TypeVar("T")

# A task of a streamed scan holds one accumulator per chunk until it returns: at most
# this many chunks per task unless the executor's runs_per_task asks for more.
_MAX_CHUNKS_PER_TASK = 8


@dataclass(frozen=True)
class StoreRef:
    """What a task needs to read a store: the path of its ``runs/`` directory and its
    sizes (picklable; a worker opens the run files itself).

    Parameters
    ----------
    runs_dir : str
        Absolute path of ``<store>/runs``.
    layout : Layout
        The manifest's sizes.
    """

    runs_dir: str
    layout: Layout

    def reader(self) -> RunReader:
        """A reader of the store's run files."""
        return RunReader(Path(self.runs_dir), self.layout)


def start_scan(path: Path, layout: Layout, executor: ExecutorLike) -> tuple[Executor, StoreRef]:
    """Resolve ``executor``, make it ready (connect, resources) and check that its tasks
    see the store's ``runs/`` directory, before any task.

    Raises
    ------
    TypeError
        ``executor`` names no executor (the message lists the choices).
    memscore.ClusterError
        The cluster cannot run a task, or its workers do not see the store.
    """
    ex = as_executor(executor)
    ex.start()
    runs = path.resolve() / RUNS_DIR
    ex.check_dir(runs, write=False)  # in process: one stat; on Ray: asked from a worker
    return ex, StoreRef(str(runs), layout)


def run_ranges(ids: list[str], chunk_runs: int, executor: Executor, *, streamed: bool = True) -> list[list[str]]:
    """The runs each task reads, in run order: whole ``chunk_runs`` chunks.

    ``runs_per_task`` of the executor (rounded up to whole chunks) when set; else one
    range when the executor runs one task at a time, and otherwise about one range per
    worker (at most 8 chunks when ``streamed``, since such a task keeps one accumulator
    per chunk). The result never depends on this split.
    """
    per = executor.runs_per_task
    if per is None:
        workers = executor.workers()
        if workers == 1:
            return [ids]
        per = -(-len(ids) // workers)
        if streamed:
            per = min(per, _MAX_CHUNKS_PER_TASK * chunk_runs)
    per = -(-per // chunk_runs) * chunk_runs
    return [ids[s : s + per] for s in range(0, len(ids), per)]


def column_ranges(n_test: int, executor: Executor) -> list[tuple[int, int]]:
    """Test-example ranges ``[t0, t1)`` of the influence tasks: one per worker, each
    starting on a multiple of 8 so that packed test bits are sliced on whole bytes."""
    workers = executor.workers()
    if workers == 1:
        return [(0, n_test)]
    per = -(-n_test // workers)
    per = -(-per // 8) * 8
    return [(s, min(s + per, n_test)) for s in range(0, n_test, per)]


def in_order(results: Iterable[tuple[int, T]]) -> Iterator[T]:
    """The values of ``(index, value)`` pairs arriving in any order, yielded in index
    order (later ones wait for the earlier ones)."""
    waiting: dict[int, T] = {}
    nxt = 0
    for i, value in results:
        waiting[i] = value
        while nxt in waiting:
            yield waiting.pop(nxt)
            nxt += 1


# ----------------------------------------------------------------------------- tasks


def scan_runs(ref: StoreRef, ids: Sequence[str], chunk_runs: int, proto: A, fold: bool) -> list[A]:
    """Task: read runs ``ids`` chunk by chunk and feed copies of ``proto``.

    Parameters
    ----------
    ref : StoreRef
        The store.
    ids : sequence of str
        The task's runs, in run order.
    chunk_runs : int
        Runs per chunk.
    proto : Accumulator
        An empty accumulator (its float shifts seeded when several tasks share the runs);
        not changed.
    fold : bool
        Feed every chunk into one accumulator (the task holds all the store's runs) rather
        than one per chunk.

    Returns
    -------
    list of Accumulator
        One per chunk in run order, or one in all with ``fold``.
    """
    out: list[A] = []

    def feed(recs: list[Any]) -> None:
        if not out or not fold:
            out.append(copy.deepcopy(proto))
        out[-1].feed(recs)

    scan(ref.reader(), ids, proto.names, proto.optional, chunk_runs, feed)
    return out


def ratio_keys_of(ref: StoreRef, ids: Sequence[str]) -> F64:
    """Task: the subset-ratio group key of each run (-1 where none), from the runs' meta."""
    reader = ref.reader()
    return ratio_keys(reader.read(rid).meta for rid in ids)


# ----------------------------------------------------------------------------- driver


def seed_shifts(executor: Executor, ref: StoreRef, ranges: list[list[str]], proto: Accumulator) -> None:
    """Fix the float shifts of ``proto`` as the one-process scan would set them: the
    outcome of the first run and, grouped, of each subset-ratio group's first run (the
    groups read from the runs' meta over the same ranges)."""
    need = proto.shift_needs()
    if need is None:
        return
    name, grouped = need
    reader = ref.reader()
    ids = [rid for r in ranges for rid in r]
    groups: dict[float, F64 | None] = {}
    if grouped:
        parts = in_order(executor.map(ratio_keys_of, [(ref, r) for r in ranges], desc="subset ratios"))
        keys = np.concatenate(list(parts))
        for g in np.unique(keys).tolist():
            groups[g] = first_outcome(reader, ids[int(np.argmax(keys == g))], name)
    proto.seed(first_outcome(reader, ids[0], name), {g: s for g, s in groups.items() if s is not None})


def gather(
    executor: Executor,
    ref: StoreRef,
    ids: list[str],
    proto: A,
    chunk_runs: int,
    *,
    desc: str,
    streamed: bool = True,
) -> A:
    """Split ``ids`` into tasks of :func:`scan_runs`, run them on ``executor`` and add
    their accumulators into a copy of ``proto`` in run order.

    Parameters
    ----------
    executor : Executor
        Started (:func:`start_scan`).
    ref : StoreRef
        The store.
    ids : list of str
        Every run of the scan, in run order.
    proto : Accumulator
        Empty; not changed.
    chunk_runs : int
        Runs per chunk.
    desc : str
        What the tasks compute (progress bar, errors).
    streamed : bool
        The accumulator's memory does not grow with the runs (see :func:`run_ranges`).

    Returns
    -------
    Accumulator
        The statistics of every run, identical to one accumulator fed every chunk in order.
    """
    ranges = run_ranges(ids, chunk_runs, executor, streamed=streamed)
    fold = len(ranges) == 1
    proto = copy.deepcopy(proto)
    if not fold:
        seed_shifts(executor, ref, ranges, proto)
    shared = executor.share(proto)
    args = [(ref, r, chunk_runs, shared, fold) for r in ranges]
    acc = copy.deepcopy(proto)
    for parts in in_order(executor.map(scan_runs, args, units=[len(r) for r in ranges], desc=desc, unit="runs")):
        for part in parts:
            acc.merge(part)
    return acc


def scan_store(
    store: ScanSource,
    proto: A,
    chunk_runs: int,
    executor: ExecutorLike,
    *,
    desc: str,
    streamed: bool = True,
) -> tuple[A, int]:
    """One scan of every run of ``store`` (its snapshot of the run list): check the
    arguments, start the executor (:func:`start_scan`) and :func:`gather`.

    Returns
    -------
    (Accumulator, int)
        The statistics of every run, and the number of runs scanned.

    Raises
    ------
    StoreError
        No runs, or a run file without a required field or damaged (named).
    TypeError, ValueError
        ``chunk_runs`` is not an integer >= 1; ``executor`` names no executor.
    memscore.ClusterError
        As :func:`start_scan`.
    """
    ids = store._ids_or_raise()
    chunk_runs = check_int(chunk_runs, "chunk_runs", 1)
    ex, ref = start_scan(store._path, store._layout, executor)
    return gather(ex, ref, ids, proto, chunk_runs, desc=desc, streamed=streamed), len(ids)


def refuse_missing(method: str, missing: Sequence[str], n_runs: int, what: str, hint: str) -> None:
    """Raise a StoreError when some runs lack what ``method`` needs (``missing``, their
    ids in run order).

    Raises
    ------
    StoreError
        ``missing`` is not empty; the message counts and names them and says how to fix.
    """
    if missing:
        raise StoreError(f"{method}: {len(missing)} of {n_runs} runs have no {what} (first: {missing[0]!r}); {hint}")


def read_rows(
    store: ScanSource, names: list[str], maps: Mapping[str, Callable[[Stacked], Stacked]], executor: ExecutorLike
) -> RowScan:
    """Fields ``names`` of every run of ``store`` (run-id order), read by tasks of run
    ranges, ``maps`` applied in the tasks (:class:`~.accumulate.RowScan`).

    Raises
    ------
    StoreError
        No runs, a run without one of the fields, or a damaged run file.
    TypeError, memscore.ClusterError
        As :func:`start_scan`.
    """
    # the chunks only bound what a task stacks at once: the rows do not depend on them
    rows, _ = scan_store(store, RowScan(store._layout, names, maps), 256, executor, desc="reading runs", streamed=False)
    return rows
