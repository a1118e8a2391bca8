"""Counting: one parallel pass of the engine over a corpus for many query n-grams and pairs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import _core
from .corpus import Corpus, _Shard
from .queries import _prepare, _Prepared
from .stats import NgramStats


def _tuple_stats(t: tuple[Any, ...], key: str, shards: list[str], q: int) -> NgramStats:
    """Results of the core: counts of every n-gram (queries, then pair members), kept for
    the first ``q`` (the queries)."""
    counts, df, co, nd, nt, ns = t
    return NgramStats(
        counts=np.asarray(counts[:q]).astype(np.int64),
        doc_freq=np.asarray(df[:q]).astype(np.int64),
        cooccurrence=np.asarray(co).astype(np.int64),
        n_documents=int(nd),
        n_tokens=int(nt),
        n_skipped=int(ns),
        key=key,
        shards=shards,
    )


def _count_shards(corpus: Corpus, shards: list[_Shard], prep: _Prepared, counter: Any = None) -> NgramStats:
    """Count ``shards`` in one parallel pass; ``counter`` (a ``_core.ProgressCounter``)
    receives the input bytes consumed as the pass goes."""
    names = [s.name for s in shards]
    if corpus.kind == "tokens":
        assert prep.flat is not None and prep.starts is not None
        arg = [(s.name, s.payload[0], s.payload[1]) for s in shards]
        t = _core.ngram_count_tokens(arg, prep.flat, prep.starts, prep.pair_idx, counter)
    elif prep.text is not None:
        assert corpus.normalizer is not None
        targ = [(s.kind, s.payload, s.option) for s in shards]
        t = _core.ngram_count_text(targ, corpus.normalizer._core, prep.text, prep.pair_idx, corpus.skip_errors, counter)
    else:
        # subword normalizer: documents are tokenized by the Rust tokenizers crate in the scan
        assert corpus.normalizer is not None and prep.flat is not None and prep.starts is not None
        targ = [(s.kind, s.payload, s.option) for s in shards]
        t = _core.ngram_count_subword(
            targ, corpus.normalizer._subword, prep.flat, prep.starts, prep.pair_idx, corpus.skip_errors, counter
        )
    return _tuple_stats(t, prep.key, names, prep.q)


# ------------------------------------------------------------------ public functions


def ngram_stats(
    corpus: Corpus,
    queries: Sequence[Any] | None = None,
    pairs: Sequence[tuple[Any, Any]] | None = None,
    *,
    progress: bool = False,
) -> NgramStats:
    """Occurrence counts and document frequency of ``queries`` and document co-occurrence
    of ``pairs``, in one pass over ``corpus``.

    ``queries``: strings (text corpora; normalized by the corpus normalizer) or sequences of
    token ids (token corpora), n >= 1, duplicates allowed. ``pairs``: ``(a, b)`` of the same
    kinds; ``n`` may differ within a pair. A query that normalizes to zero tokens raises
    ``ValueError``; an unreadable shard raises :class:`memscore.CorpusError`.
    ``progress=True`` shows a progress bar (tqdm, on stderr) of the input bytes consumed,
    with their rate and an ETA; the count stays one parallel pass.
    """
    prep = _prepare(corpus, queries, pairs)
    shards = corpus._shards
    if not progress:
        return _count_shards(corpus, shards, prep)
    from tqdm.auto import tqdm

    counter = _core.ProgressCounter()
    with tqdm(total=corpus.nbytes, unit="B", unit_scale=True, desc="ngrams") as bar:

        def show(done: int) -> None:
            bar.update(min(done, bar.total) - bar.n)

        return _watch(lambda: _count_shards(corpus, shards, prep, counter), counter, show)


def _watch(fn: Any, counter: Any, show: Any, every: float = 0.2) -> Any:
    """Run ``fn`` (a count that releases the GIL) in a worker thread and call ``show`` with
    ``counter.value`` every ``every`` seconds until it returns; its result or exception is
    passed on."""
    import threading

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
    return box["result"]


def count_ngrams(corpus: Corpus, queries: Sequence[Any]) -> npt.NDArray[np.int64]:
    """Occurrences of each query n-gram in ``corpus`` (int64, shape ``(Q,)``)."""
    return ngram_stats(corpus, queries).counts


def document_frequency(corpus: Corpus, queries: Sequence[Any]) -> npt.NDArray[np.int64]:
    """Number of documents of ``corpus`` containing each query n-gram (int64, ``(Q,)``)."""
    return ngram_stats(corpus, queries).doc_freq


def cooccurrence(corpus: Corpus, pairs: Sequence[tuple[Any, Any]]) -> npt.NDArray[np.int64]:
    """Number of documents containing both n-grams of each pair (int64, ``(P,)``)."""
    return ngram_stats(corpus, None, pairs).cooccurrence


def query_key(
    corpus: Corpus, queries: Sequence[Any] | None = None, pairs: Sequence[tuple[Any, Any]] | None = None
) -> str:
    """The key a partial result of these queries and pairs on this kind of corpus carries."""
    return _prepare(corpus, queries, pairs).key
