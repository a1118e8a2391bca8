"""Scoring a large run store on a Ray cluster, split by run ranges.

Each task reads one range of runs (a whole number of ``chunk_runs`` chunks) from the
store, which must be on a file system the workers see, and returns the statistics of each
chunk (:class:`~memscore.runs.store.scoring.ScoreScan`); the driver adds them in run
order. The sums are those of the local one-process scan, chunk by chunk in the same
order, and the float shifts are those the local scan takes (the first run's outcomes, of
all runs and of each subset-ratio group), so the results are identical to
:meth:`RunStore.memorization`, :meth:`RunStore.holdout_accuracy` and
:meth:`RunStore.scores` bit for bit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from ...cluster import RayExecutor, check_path_from_worker, run_tasks
from .format import check_int
from .scan import chunks, stack_records
from .scoring import F64, ScoreScan, _outcome
from .store import RunStore

__all__ = ["holdout_accuracy", "memorization", "scores"]


def _scan_range(
    path: str, ids: list[str], chunk_runs: int, kind: str, flags: dict[str, bool], shifts: dict[str, Any]
) -> list[ScoreScan]:
    """Runs in a worker: the statistics of each chunk of ``ids``."""
    store = RunStore.open(path)
    out = []
    for part in chunks(ids, chunk_runs):
        acc = _new_scan(store, kind, flags, shifts)
        acc.feed([store._reader.read(rid, acc.names, acc.optional) for rid in part])
        out.append(acc)
    return out


def _new_scan(store: RunStore, kind: str, flags: dict[str, bool], shifts: dict[str, Any]) -> ScoreScan:
    acc = ScoreScan(store._layout, kind, **flags)
    acc.stats.seed_shifts(shifts["total"], shifts["groups"])
    if acc.phi is not acc.stats:
        acc.phi.seed_shifts(shifts["phi"], {})
    return acc


def _first_outcome(store: RunStore, run_id: str, name: str) -> F64 | None:
    """The float outcome ``name`` of one run as the local scan shifts by it (None when
    the run has none)."""
    rec = store._reader.read(run_id, (), (name,))
    if name not in rec.arrays:
        return None
    row: F64 = np.asarray(_outcome(stack_records(store._layout, [rec], [name])[name]), dtype=np.float64)[0].copy()
    return row


def _shifts(store: RunStore, ids: list[str], kind: str, grouped: bool, table: bool) -> dict[str, Any]:
    """The float shifts the local scan takes: the first run's outcome for the totals and,
    grouped, the first run of each subset-ratio group's (read from the runs' meta)."""
    out: dict[str, Any] = {"total": None, "groups": {}, "phi": None}
    if kind == "phi":
        out["total"] = _first_outcome(store, ids[0], "train_phi")
        if grouped:
            ratios = store.subset_ratios()
            keys = np.where(np.isnan(ratios), -1.0, ratios)
            for g in np.unique(keys).tolist():
                out["groups"][g] = _first_outcome(store, ids[int(np.argmax(keys == g))], "train_phi")
    elif table:
        out["phi"] = _first_outcome(store, ids[0], "train_phi")
    return out


def _run(
    store: RunStore, kind: str, executor: RayExecutor, chunk_runs: int, *, grouped: bool, total: bool, table: bool
) -> ScoreScan:
    """Every run's statistics, gathered over Ray tasks of whole chunks, added in run order."""
    if not isinstance(store, RunStore):
        raise TypeError(f"store: expected a memscore.RunStore, got {type(store).__name__}")
    if not isinstance(executor, RayExecutor):
        raise TypeError(f"executor: expected a memscore.cluster.RayExecutor, got {type(executor).__name__}")
    store._check_score_kind(kind)
    chunk_runs = check_int(chunk_runs, "chunk_runs", 1)
    ray = executor.connect()
    executor.check_resources(ray)
    check_path_from_worker(executor, store.path / "runs", write=False)
    store.refresh()
    ids = store._ids_or_raise()
    flags = {"grouped": grouped, "total": total, "table": table}
    shifts = _shifts(store, ids, kind, grouped, table)
    # a task reads a whole number of chunks: runs_per_task rounded up to chunk_runs
    per_task = -(-(executor.runs_per_task or 8 * chunk_runs) // chunk_runs) * chunk_runs
    ranges = [ids[s : s + per_task] for s in range(0, len(ids), per_task)]
    done: dict[int, list[ScoreScan]] = {}
    acc = _new_scan(store, kind, flags, shifts)
    state = {"next": 0}

    def take(i: int, parts: list[ScoreScan]) -> float:
        done[i] = parts
        while state["next"] in done:  # add in run order; later ranges wait their turn
            for part in done.pop(state["next"]):
                acc.merge(part)
            state["next"] += 1
        return float(len(ranges[i]))

    args = [(str(store.path), r, chunk_runs, kind, flags, shifts) for r in ranges]
    run_tasks(executor, _scan_range, args, take, total=len(ids), unit="runs", desc="scoring", progress=False)
    return acc


def memorization(
    store: RunStore, kind: str = "correct", *, executor: RayExecutor, stderr: bool = False, chunk_runs: int = 256
) -> F64 | tuple[F64, F64]:
    """:meth:`RunStore.memorization` over Ray tasks of run ranges; identical results.

    Parameters
    ----------
    store : RunStore
        On a file system every worker sees.
    kind, stderr, chunk_runs
        As :meth:`RunStore.memorization`.
    executor : RayExecutor
        The cluster; a task reads ``runs_per_task`` runs (default ``8 * chunk_runs``).

    Returns
    -------
    ndarray of float64 or (ndarray, ndarray)

    Raises
    ------
    StoreError, ValueError
        As :meth:`RunStore.memorization`.
    memscore.cluster.ClusterError
        The cluster cannot run the tasks, or the workers do not see the store.
    """
    stats = _run(store, kind, executor, chunk_runs, grouped=False, total=True, table=False).stats.total()
    mem = stats.memorization()
    return (mem, stats.memorization_stderr()) if stderr else mem


def holdout_accuracy(store: RunStore, kind: str = "correct", *, executor: RayExecutor, chunk_runs: int = 256) -> F64:
    """:meth:`RunStore.holdout_accuracy` over Ray tasks of run ranges; identical results.

    Parameters and errors as :func:`memorization`.
    """
    return _run(store, kind, executor, chunk_runs, grouped=True, total=False, table=False).stats.holdout()


def scores(store: RunStore, kind: str = "correct", *, executor: RayExecutor, chunk_runs: int = 256) -> pl.DataFrame:
    """:meth:`RunStore.scores` over Ray tasks of run ranges; an identical table.

    Parameters and errors as :func:`memorization`.
    """
    acc = _run(store, kind, executor, chunk_runs, grouped=True, total=True, table=True)
    return store._scores_table(acc)
