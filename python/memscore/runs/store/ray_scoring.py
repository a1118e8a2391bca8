"""Scoring a large run store on a Ray cluster, split by run ranges (and top-k influence by
test ranges).

Each task reads one range of runs (a whole number of ``chunk_runs`` chunks) from the
store, which must be on a file system the workers see, and returns the statistics of each
chunk (:class:`~memscore.runs.store.scoring.ScoreScan`); the driver adds them in run
order. The sums are those of the local one-process scan, chunk by chunk in the same
order, and the float shifts are those the local scan takes (the first run's outcomes, of
all runs and of each subset-ratio group), so the results are identical to
:meth:`RunStore.memorization`, :meth:`RunStore.holdout_accuracy` and
:meth:`RunStore.scores` bit for bit.

Top-k influence needs every run's mask for every pair, and its cost grows with runs ×
train × test examples: :func:`influence_topk` splits the *test* examples instead, each
task reading the masks and its test columns and running the same kernel
(:func:`memscore.influence` with ``top_k``); a test example's top k depend on its column
alone, so the concatenated rows equal the local result.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from ...cluster import RayExecutor, check_path_from_worker, run_tasks
from ..bits import PackedBits
from ..scores import influence as _influence
from .format import check_int, outcome_name
from .scan import chunks, load, stack_records
from .scoring import F64, ScoreScan, _outcome
from .store import RunStore

__all__ = ["holdout_accuracy", "influence_topk", "memorization", "scores"]


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


def _prepare(store: RunStore, executor: RayExecutor) -> tuple[Any, list[str]]:
    """The checks before any task (types, cluster, resources, the store as a worker sees
    it), then ``ray`` and the run ids the tasks read (a snapshot: runs added later are not
    scored)."""
    if not isinstance(store, RunStore):
        raise TypeError(f"store: expected a memscore.RunStore, got {type(store).__name__}")
    if not isinstance(executor, RayExecutor):
        raise TypeError(f"executor: expected a memscore.cluster.RayExecutor, got {type(executor).__name__}")
    ray = executor.connect()
    executor.check_resources(ray)
    check_path_from_worker(executor, store.path.resolve() / "runs", write=False)
    store.refresh()
    return ray, store._ids_or_raise()


def _run(
    store: RunStore, kind: str, executor: RayExecutor, chunk_runs: int, *, grouped: bool, total: bool, table: bool
) -> ScoreScan:
    """Every run's statistics, gathered over Ray tasks of whole chunks, added in run order."""
    store._check_score_kind(kind)
    chunk_runs = check_int(chunk_runs, "chunk_runs", 1)
    _, ids = _prepare(store, executor)
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

    args = [(str(store.path.resolve()), r, chunk_runs, kind, flags, shifts) for r in ranges]
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


def _topk_range(
    path: str, ids: list[str], t0: int, t1: int, kind: str, k: int, same_class: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Runs in a worker: top-k influence of test examples ``t0 .. t1 - 1`` (``t0`` a
    multiple of 8, so packed test bits are sliced on whole bytes)."""
    store = RunStore.open(path)
    name = outcome_name("test", kind)
    got = load(store._reader, ids, ["mask_bits", name], unpack=False)
    o = got[name]
    if isinstance(o, PackedBits):
        # t1 is a multiple of 8 or the last column: no bit of another column comes along
        o = PackedBits(np.ascontiguousarray(o.bits[:, t0 // 8 : -(-t1 // 8)]), t1 - t0)
    else:
        o = np.ascontiguousarray(o[:, t0:t1])
    labels: dict[str, Any] = {}
    if same_class:
        assert store.train_labels is not None and store.test_labels is not None
        labels = {"train_labels": store.train_labels, "test_labels": store.test_labels[t0:t1]}
    idx, vals = _influence(got["mask_bits"], o, top_k=k, **labels)
    return np.asarray(idx), np.asarray(vals)


def influence_topk(
    store: RunStore,
    kind: str = "correct",
    *,
    top_k: int,
    executor: RayExecutor,
    same_class: bool = False,
    tests_per_task: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:meth:`RunStore.influence` with ``top_k``, over Ray tasks of test-example ranges;
    identical results. ``store`` must be on a file system every worker sees; ``kind``,
    ``top_k`` and ``same_class`` are those of :meth:`RunStore.influence`.

    Parameters
    ----------
    executor : RayExecutor
        The cluster.
    tests_per_task : int, optional
        Test examples per task, rounded up to a multiple of 8 (default: the test examples
        split over the cluster's CPUs / ``cpus_per_task``).

    Returns
    -------
    (indices, values) : ndarrays, shapes (T, k)

    Raises
    ------
    ValueError, StoreError
        As :meth:`RunStore.influence`.
    memscore.cluster.ClusterError
        The cluster cannot run the tasks, or the workers do not see the store.
    """
    k = check_int(top_k, "top_k", 1)
    ray, ids = _prepare(store, executor)
    t = store.n_test
    if tests_per_task is None:
        slots = max(1, int(ray.cluster_resources().get("CPU", 1) // max(executor.cpus_per_task, 1e-9)))
        tests_per_task = -(-t // slots)
    per = -(-check_int(tests_per_task, "tests_per_task", 1) // 8) * 8
    starts = list(range(0, t, per))
    parts: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(starts)

    def take(i: int, got: tuple[np.ndarray, np.ndarray]) -> float:
        parts[i] = got
        return float(got[0].shape[0])

    args = [(str(store.path.resolve()), ids, s, min(s + per, t), kind, k, same_class) for s in starts]
    run_tasks(executor, _topk_range, args, take, total=t, unit="tests", desc="influence", progress=False)
    done = [p for p in parts if p is not None]
    return np.concatenate([p[0] for p in done]), np.concatenate([p[1] for p in done])
