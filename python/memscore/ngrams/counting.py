"""Counting: one parallel pass of the engine over a corpus for many query n-grams and pairs."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from .. import _core
from .corpus import Corpus
from .queries import QuerySet
from .stats import NgramStats

_T = TypeVar("_T")


def _count(corpus: Corpus, qs: QuerySet, counter: _core.ProgressCounter | None) -> NgramStats:
    """Count every shard of ``corpus`` in one parallel pass (``qs`` already checked
    against it); ``counter`` receives the input bytes consumed as the pass goes."""
    shards = corpus._shards
    sources = corpus.sources()  # before reading: a file changed during the pass will not match
    if corpus.kind == "tokens":
        assert qs._flat is not None and qs._starts is not None
        arg = [(s.name, s.payload[0], s.payload[1]) for s in shards]
        t = _core.ngram_count_tokens(arg, qs._flat, qs._starts, qs._pair_idx, counter)
    elif qs._text is not None:
        assert corpus.normalizer is not None
        targ = [(s.kind, s.payload, s.option) for s in shards]
        t = _core.ngram_count_text(targ, corpus.normalizer._core, qs._text, qs._pair_idx, corpus.skip_errors, counter)
    else:
        # subword normalizer: documents are tokenized by the Rust tokenizers crate in the scan
        sub = corpus.normalizer._subword if corpus.normalizer is not None else None
        assert sub is not None and qs._flat is not None and qs._starts is not None
        targ = [(s.kind, s.payload, s.option) for s in shards]
        t = _core.ngram_count_subword(targ, sub, qs._flat, qs._starts, qs._pair_idx, corpus.skip_errors, counter)
    counts, df, co, nd, nt, ns = t
    q = qs.n_queries
    stats = NgramStats(
        counts=np.asarray(counts[:q]).astype(np.int64),
        doc_freq=np.asarray(df[:q]).astype(np.int64),
        cooccurrence=np.asarray(co).astype(np.int64),
        n_documents=int(nd),
        n_tokens=int(nt),
        n_skipped=int(ns),
        key=qs.key,
        shards=[s.name for s in shards],
        sources=sources,
    )
    # n-grams holding the tokenizer's unknown token would match every unknown word
    stats.counts[qs.unknown_queries] = 0
    stats.doc_freq[qs.unknown_queries] = 0
    stats.cooccurrence[qs.unknown_pairs] = 0
    return stats


def _watch(fn: Callable[[], _T], counter: _core.ProgressCounter, show: Callable[[int], None], every: float = 0.2) -> _T:
    """Run ``fn`` (a count that releases the GIL) in a worker thread and call ``show`` with
    ``counter.value`` every ``every`` seconds until it returns; its result or exception is
    passed on."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    th = threading.Thread(target=target, name="memscore-ngrams", daemon=True)
    th.start()
    while th.is_alive():
        th.join(every)
        show(counter.value)
    if "error" in box:
        raise box["error"]
    show(counter.value)
    result: _T = box["result"]
    return result


# ------------------------------------------------------------------ public functions


def ngram_stats(
    corpus: Corpus,
    queries: QuerySet | Sequence[Any] | npt.NDArray[np.integer[Any]] | None = None,
    pairs: Sequence[tuple[Any, Any]] | None = None,
    *,
    progress: bool = False,
    executor: Any = None,
) -> NgramStats:
    """Occurrence counts and document frequency of ``queries`` and document co-occurrence
    of ``pairs``, in one pass over ``corpus``.

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
        Show a progress bar (tqdm, on stderr) of the input bytes consumed, with their rate
        and an ETA; the count stays one parallel pass.
    executor : memscore.cluster.RayExecutor, optional
        Count on a Ray cluster instead: one task per shard (or ``shards_per_task``
        shards), the prepared queries shared through Ray's object store, the per-shard
        results merged here; the counts equal those of one local pass
        (:func:`memscore.ngrams.ray_count.count_shards`).

    Returns
    -------
    NgramStats
        ``counts`` and ``doc_freq`` per query, ``cooccurrence`` per pair.

    Raises
    ------
    TypeError
        A query of the wrong type for the corpus kind.
    ValueError
        A query that normalizes to zero tokens, or a QuerySet prepared for another corpus.
    memscore.CorpusError
        An unreadable shard.

    Warns
    -----
    UserWarning
        Subword queries holding the tokenizer's unknown token (they count 0; see
        :class:`QuerySet`).
    """
    if isinstance(queries, QuerySet):
        if pairs is not None:
            raise TypeError("ngram_stats: pass pairs to the QuerySet, not next to it")
        qs = queries
    else:
        qs = QuerySet(corpus, queries, pairs)
    if executor is not None:
        from .ray_count import count_shards

        qs.check_corpus(corpus)
        return NgramStats.merge(count_shards(qs, corpus.shards(), executor, progress=progress))
    return qs.count(corpus, progress=progress)


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
