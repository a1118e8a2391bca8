"""Counting: query n-grams and pairs over a corpus, stated as *split → task → merge* on
an executor (:mod:`memscore.executors`).

- split: the corpus's shards in groups of ``executor.shards_per_task`` (with an executor
  that runs one task at a time in this process, the default, one group of every shard:
  the engine's one parallel pass, as fast as ever);
- task (:func:`_count_task`, top level, what a Ray worker runs): count each piece of its
  group with the prepared :class:`QuerySet` (shared once through
  :meth:`~memscore.executors.Executor.share`), and write its Parquet partial atomically
  under the name the caller chose;
- merge: :meth:`NgramStats.merge` in shard order, so the counts, totals, shard names and
  sources equal those of one pass whoever ran the tasks.

A task whose worker died runs again and counts its shards from the start; its earlier
attempt returned nothing and wrote at most whole partials under the same names, so no
shard is counted twice.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .._core import ProgressCounter
from ..executors import Executor, ExecutorLike, as_executor
from .corpus import Corpus
from .index import CorpusIndex
from .queries import QuerySet, with_bytes_bar
from .stats import NgramStats

__all__ = ["cooccurrence", "count_ngrams", "count_shards", "document_frequency", "ngram_stats"]


def _count_task(
    qs: QuerySet, pieces: list[Corpus], dests: list[str | None], counter: ProgressCounter | None
) -> list[NgramStats]:
    """The task: count each corpus of ``pieces`` in one pass of the engine, write its
    partial where ``dests`` names one (atomically), return the counts in order. The
    caller checked everything (kinds, normalizer, paths)."""
    out = []
    for piece, dest in zip(pieces, dests, strict=True):
        stats = qs._pass(piece, counter)
        if dest is not None:
            stats.write_parquet(dest)
        out.append(stats)
    return out


def _one_task(executor: Executor) -> bool:
    """Whether to count everything in one task: one worker in this process, where one pass
    of the engine (parallel over shards) is fastest. The counts do not depend on it."""
    return executor.in_process and executor.workers() == 1


def count_shards(
    qs: QuerySet,
    shards: Sequence[Corpus],
    executor: ExecutorLike = None,
    *,
    dests: Sequence[str | os.PathLike[str] | None] | None = None,
    progress: bool = False,
) -> list[NgramStats]:
    """Count ``qs`` in each of ``shards`` on ``executor``, one result (and partial) per shard.

    Parameters
    ----------
    qs : QuerySet
        The prepared queries and pairs (shared once with every task).
    shards : sequence of Corpus
        Corpora of the kind and normalizer of ``qs``: usually the one-shard corpora of
        :meth:`Corpus.shards`, each counted in one pass of its own. On an executor that
        does not run in this process, their files must be given by absolute paths on a
        file system the workers see (in-memory shards travel with the task).
    executor : Executor or str, optional
        Who counts (see :func:`memscore.executors.as_executor`): ``shards_per_task`` shards
        per task; the local default counts them all in one task.
    dests : sequence of path or None, optional
        Per shard, the Parquet partial to write (None: not written), atomically. With
        Ray's ``storage="shared"`` the workers write them (the directories must be on a
        file system they see); with ``storage="object"`` this process does.
    progress : bool, default False
        In process: a bar of the input bytes read. On Ray: the executor's bar of the shards
        counted (shards/min, ETA, failed / retried tasks).

    Returns
    -------
    list of NgramStats
        One per shard, in the order of ``shards``.

    Raises
    ------
    TypeError
        ``executor`` is no executor (the message lists the choices).
    ValueError
        A shard of another kind or normalizer, a shard file given by a relative path to
        workers outside this process, ``dests`` of another length or in a missing directory.
    memscore.CorpusError
        A shard cannot be read (raised from its task).
    memscore.ClusterError
        The cluster cannot be reached, lacks the resources of a task, does not see the
        partials' directory, or a task's workers kept dying.

    Examples
    --------
    >>> from memscore.ngrams import Corpus, QuerySet
    >>> corpus = Corpus.from_texts(["the cat sat"]) + Corpus.from_texts(["a cat"])
    >>> qs = QuerySet(corpus, ["cat"])
    >>> [int(s.counts[0]) for s in count_shards(qs, corpus.shards(), "threads:2")]
    [1, 1]
    """
    ex = as_executor(executor)
    shards = list(shards)
    for s in shards:
        qs.check_corpus(s)
    remote = not ex.in_process
    if remote:
        relative = [f for s in shards for sh in s._shards for f in sh.files if not os.path.isabs(f)]
        if relative:  # workers run in other directories
            raise ValueError(
                f"shards: workers outside this process need the shard files by absolute path, got "
                f"{relative[0]!r}; open the corpus from absolute paths"
            )
    targets = [None if d is None else os.path.abspath(d) for d in (dests or [None] * len(shards))]
    if len(targets) != len(shards):
        raise ValueError(f"dests: expected one path per shard ({len(shards)}), got {len(targets)}")
    for parent in sorted({str(Path(t).parent) for t in targets if t is not None}):
        if not Path(parent).is_dir():
            raise ValueError(f"dests: {parent} is not a directory")
    if not shards:
        return []
    ex.start()
    # the workers write the partials where they see this process's files; else this process does
    workers_write = ex.shares_files
    if remote and workers_write:
        for parent in sorted({str(Path(t).parent) for t in targets if t is not None}):
            ex.check_dir(parent, write=True)
    k = len(shards) if _one_task(ex) else ex.shards_per_task
    starts = list(range(0, len(shards), k))
    shared = ex.share(qs)
    task_dests = targets if workers_write else [None] * len(shards)

    def run(counter: ProgressCounter | None) -> list[NgramStats]:
        args = [(shared, shards[s : s + k], task_dests[s : s + k], counter) for s in starts]
        results: list[NgramStats | None] = [None] * len(shards)
        units = [float(len(a[1])) for a in args]
        for i, got in ex.map(
            _count_task, args, units=units, desc="ngrams", unit="shards", progress=remote and progress
        ):
            for j, stats in enumerate(got, starts[i]):
                if not workers_write and targets[j] is not None:
                    stats.write_parquet(targets[j])
                results[j] = stats
        return [r for r in results if r is not None]

    if remote:  # a counter cannot travel to another process: the executor's bar counts shards
        return run(None)
    # in process, the tasks share one counter: a bar of the bytes read, within shards too
    return with_bytes_bar(sum(s.nbytes for s in shards), run, progress)


# ------------------------------------------------------------------ public functions


def ngram_stats(
    corpus: Corpus,
    queries: QuerySet | Sequence[Any] | npt.NDArray[np.integer[Any]] | None = None,
    pairs: Sequence[tuple[Any, Any]] | None = None,
    *,
    progress: bool = False,
    executor: ExecutorLike = None,
    index: CorpusIndex | None = None,
) -> NgramStats:
    """Occurrence counts and document frequency of ``queries`` and document co-occurrence
    of ``pairs``, in one pass over ``corpus`` (or from its :class:`CorpusIndex`).

    Parameters
    ----------
    corpus : Corpus
        The corpus.
    queries : QuerySet or sequence, optional
        Strings (text corpora; normalized by the corpus normalizer) or sequences of token
        ids (token corpora), n >= 1, duplicates allowed; or a prepared :class:`QuerySet`
        (then ``pairs`` must be None: the set holds its pairs).
    pairs : sequence of (a, b), optional
        Pairs of the same kinds; ``n`` may differ within a pair.
    progress : bool, default False
        Show progress on stderr (:mod:`memscore._progress`): in process, of the input bytes consumed,
        with their rate and an ETA; on Ray, of the shards counted.
    executor : Executor or str, optional
        Who counts (:func:`memscore.executors.as_executor`: ``None`` / ``"local"``,
        ``"threads[:N]"``, ``"ray[:ADDRESS]"``, ``"ray://host:port"`` or an instance). The
        default counts every shard in one parallel pass of the engine in this process;
        other executors count groups of ``shards_per_task`` shards as separate tasks (the
        prepared queries shared once, e.g. through Ray's object store) and the results are
        merged in shard order (:func:`count_shards`). The counts are identical either way.
        Ray workers need the shard files by absolute path.
    index : CorpusIndex, optional
        The index of ``corpus`` (:meth:`CorpusIndex.build`): the counts come from it, with
        no pass over the corpus, and are the same. Checked against ``corpus``
        (:meth:`CorpusIndex.check_corpus`).

    Returns
    -------
    NgramStats
        ``counts`` and ``doc_freq`` per query, ``cooccurrence`` per pair.

    Raises
    ------
    TypeError
        A query of the wrong type for the corpus kind, or ``executor`` is no executor (the message lists the choices).
    ValueError
        A query that normalizes to zero tokens, a QuerySet prepared for another corpus, or
        (Ray) a shard file given by a relative path.
    memscore.CorpusError
        An unreadable shard.
    memscore.ClusterError
        The cluster cannot be reached or lacks the resources of a task.
    memscore.IndexMismatchError
        ``index`` was built from another corpus.

    Warns
    -----
    UserWarning
        Subword queries holding the tokenizer's unknown token (they count 0; see
        :class:`QuerySet`).

    Examples
    --------
    >>> from memscore.ngrams import Corpus
    >>> corpus = Corpus.from_texts(["the cat sat on the mat"]) + Corpus.from_texts(["a cat"])
    >>> ngram_stats(corpus, ["cat", "the mat"]).counts.tolist()
    [2, 1]
    >>> ngram_stats(corpus, ["cat", "the mat"], executor="threads:2").counts.tolist()
    [2, 1]
    """
    ex = as_executor(executor)
    if isinstance(queries, QuerySet):
        if pairs is not None:
            raise TypeError("ngram_stats: pass pairs to the QuerySet, not next to it")
        qs = queries
    else:
        qs = QuerySet(corpus, queries, pairs)
    qs.check_corpus(corpus)
    if index is not None:
        if not isinstance(index, CorpusIndex):
            raise TypeError(f"index: expected a memscore.ngrams.CorpusIndex, got {type(index).__name__}")
        return index.stats(qs, corpus)
    # one task of the whole corpus (one pass) where that is fastest; else one piece per shard
    pieces = [corpus] if _one_task(ex) or corpus.n_shards == 0 else corpus.shards()
    parts = count_shards(qs, pieces, ex, progress=progress)
    return parts[0] if len(parts) == 1 else NgramStats.merge(parts)


def count_ngrams(corpus: Corpus, queries: Sequence[Any]) -> npt.NDArray[np.int64]:
    """Occurrences of each query n-gram in ``corpus``.

    Parameters
    ----------
    corpus : Corpus
        The corpus.
    queries : sequence
        As in :func:`ngram_stats`.

    Returns
    -------
    numpy.ndarray
        int64, shape ``(Q,)``.
    """
    return ngram_stats(corpus, queries).counts


def document_frequency(corpus: Corpus, queries: Sequence[Any]) -> npt.NDArray[np.int64]:
    """Number of documents of ``corpus`` containing each query n-gram.

    Parameters
    ----------
    corpus : Corpus
        The corpus.
    queries : sequence
        As in :func:`ngram_stats`.

    Returns
    -------
    numpy.ndarray
        int64, shape ``(Q,)``.
    """
    return ngram_stats(corpus, queries).doc_freq


def cooccurrence(corpus: Corpus, pairs: Sequence[tuple[Any, Any]]) -> npt.NDArray[np.int64]:
    """Number of documents containing both n-grams of each pair.

    Parameters
    ----------
    corpus : Corpus
        The corpus.
    pairs : sequence of (a, b)
        As in :func:`ngram_stats`.

    Returns
    -------
    numpy.ndarray
        int64, shape ``(P,)``.
    """
    return ngram_stats(corpus, None, pairs).cooccurrence
