"""Counting a sharded corpus on a Ray cluster: one task per shard (or per group of
``shards_per_task`` shards), the prepared :class:`QuerySet` put once in Ray's object store
and shared by every task.

A task counts each of its shards on its own (:meth:`QuerySet.count` of a one-shard corpus)
and returns the per-shard :class:`NgramStats`; given partial-result paths, it also writes
each shard's Parquet partial (atomically, under the name the caller chose). Shard results
are merged in shard order by :meth:`NgramStats.merge`, so the counts, totals, shard names
and sources equal those of one single-process pass. A task whose worker died is run again
and its shards are counted again from the start; its earlier attempt returned nothing and
wrote at most whole partials under the same names, so no shard is counted twice.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..cluster import RayExecutor, run_tasks
from .corpus import Corpus
from .queries import QuerySet
from .stats import NgramStats

__all__ = ["count_shards"]


def _count_group(qs: QuerySet, shards: list[Corpus], dests: list[str | None]) -> list[NgramStats]:
    """Runs in a worker: count each shard, write its partial when a path is given."""
    out = []
    for shard, dest in zip(shards, dests, strict=True):
        stats = qs.count(shard)
        if dest is not None:
            stats.write_parquet(dest)
        out.append(stats)
    return out


def count_shards(
    qs: QuerySet,
    shards: Sequence[Corpus],
    executor: RayExecutor,
    *,
    dests: Sequence[str | os.PathLike[str] | None] | None = None,
    progress: bool = False,
) -> list[NgramStats]:
    """Count ``qs`` in every shard on the Ray cluster of ``executor``.

    Parameters
    ----------
    qs : QuerySet
        The prepared queries and pairs (put once in the object store).
    shards : sequence of Corpus
        One-shard corpora (:meth:`Corpus.shards`) of the kind and normalizer of ``qs``.
    executor : RayExecutor
        The cluster and the resources of a task (``shards_per_task`` shards each).
    dests : sequence of path or None, optional
        Per shard, the Parquet partial the worker writes (None: not written). The paths
        must be on a file system the workers see.

    The shard files must be given by absolute paths on a file system the workers see
    (in-memory shards travel with the task).
    progress : bool, default False
        A progress bar of the shards counted (shards/min, ETA, failed / retried tasks).

    Returns
    -------
    list of NgramStats
        One per shard, in the order of ``shards``.

    Raises
    ------
    ValueError
        A shard of another kind or normalizer, a shard file given by a relative path, or
        ``dests`` of another length.
    memscore.CorpusError
        A shard cannot be read (raised from the worker).
    memscore.cluster.ClusterError
        The cluster cannot be reached, lacks the resources of a task, or a task's
        workers kept dying.
    """
    shards = list(shards)
    for s in shards:
        qs.check_corpus(s)
    relative = [f for s in shards for sh in s._shards for f in sh.files if not os.path.isabs(f)]
    if relative:  # workers run in other directories
        raise ValueError(
            f"shards: Ray workers need the shard files by absolute path, got {relative[0]!r}; "
            "open the corpus from absolute paths"
        )
    # absolute, for workers that run in other directories
    targets = [None if d is None else os.path.abspath(d) for d in (dests or [None] * len(shards))]
    if len(targets) != len(shards):
        raise ValueError(f"dests: expected one path per shard ({len(shards)}), got {len(targets)}")
    for t in targets:
        if t is not None and not Path(t).parent.is_dir():
            raise ValueError(f"dests: {Path(t).parent} is not a directory")
    if not shards:
        return []
    ray = executor.connect()
    executor.check_resources(ray)
    results: list[NgramStats | None] = [None] * len(shards)
    k = executor.shards_per_task
    starts = list(range(0, len(shards), k))
    qs_ref = ray.put(qs)
    args = [(qs_ref, shards[s : s + k], targets[s : s + k]) for s in starts]

    def take(i: int, got: list[NgramStats]) -> float:
        results[starts[i] : starts[i] + len(got)] = got
        return float(len(got))

    run_tasks(executor, _count_group, args, take, total=len(shards), unit="shards", desc="ngrams", progress=progress)
    assert all(r is not None for r in results)
    return [r for r in results if r is not None]
