"""Query sets: n-grams and n-gram pairs prepared once for the engine (normalized, tokenized,
flattened) and the key that identifies them in a partial result (:class:`QuerySet`)."""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from .. import _core
from .._core import ProgressCounter
from .._progress import ProgressBar
from .arrow_text import BATCHED_KINDS, prefetch, text_batches
from .corpus import Corpus
from .normalizer import Normalizer
from .stats import NgramStats

__all__ = ["ProgressCounter", "QuerySet"]

_T = TypeVar("_T")


def _text_ngrams(norm: Normalizer, items: list[Any], what: str) -> list[list[str]]:
    bad = [i for i, s in enumerate(items) if not isinstance(s, str)]
    if bad:
        raise TypeError(f"{what} {bad[0]}: a text corpus takes str queries, got {type(items[bad[0]]).__name__}")
    toks = norm.batch(items)
    for i, t in enumerate(toks):
        if not t:
            raise ValueError(
                f"{what} {i}: {items[i]!r} normalizes to zero tokens (empty, punctuation or stopwords only)"
            )
    return toks


_U32_MAX = 2**32 - 1


def _token_ngrams_fast(items: list[Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """(flat uint32 ids, lengths) when every item is a non-empty list/tuple of in-range
    ints; None to fall back to the item-by-item checks (which say what is wrong)."""
    try:
        if not all(type(q) in (list, tuple) for q in items):
            return None
        lens = np.fromiter(map(len, items), dtype=np.int64, count=len(items))
        if lens.size and lens.min() == 0:
            return None
        flat = np.array(list(itertools.chain.from_iterable(items)))
    except (TypeError, ValueError):
        return None
    if flat.size == 0:
        return np.zeros(0, np.uint32), lens
    if flat.dtype.kind not in "iu" or flat.min() < 0 or flat.max() > _U32_MAX:
        return None
    return flat.astype(np.uint32), lens


def _token_ngrams(items: list[Any], what: str) -> list[list[int]]:
    out = []
    for i, q in enumerate(items):
        if isinstance(q, np.ndarray):
            if q.size and not np.issubdtype(q.dtype, np.integer):
                raise TypeError(f"{what} {i}: expected int token ids, got dtype {q.dtype}")
            lst = q.reshape(-1).tolist()
        elif isinstance(q, (int, np.integer)) and not isinstance(q, bool):
            lst = [int(q)]
        elif isinstance(q, (list, tuple)):
            lst = list(q)
        else:
            raise TypeError(f"{what} {i}: a token corpus takes sequences of token ids, got {type(q).__name__}")
        if not lst:
            raise ValueError(f"{what} {i}: an n-gram needs at least one token, got none")
        for x in lst:
            if type(x) is not int and (isinstance(x, bool) or not isinstance(x, (int, np.integer))):
                raise TypeError(f"{what} {i}: expected int token ids, got {type(x).__name__} in {q!r}")
        if min(lst) < 0 or max(lst) > _U32_MAX:
            raise ValueError(f"{what} {i}: token ids must be in [0, 4294967295], got {[int(x) for x in lst]}")
        out.append([int(x) for x in lst] if any(type(x) is not int for x in lst) else lst)
    return out


def _split_pairs(pairs: Any) -> tuple[list[Any], list[Any]]:
    items = list(pairs)
    a, b = [], []
    for k, pr in enumerate(items):
        try:
            x, y = pr
        except (TypeError, ValueError):
            raise ValueError(f"pair {k}: expected a pair (a, b), got {pr!r}") from None
        a.append(x)
        b.append(y)
    return a, b


def _key(corpus: Corpus, queries: list[Any], pa: list[Any], pb: list[Any]) -> str:
    desc = {
        "kind": corpus.kind,
        "normalizer": corpus.normalizer.describe() if corpus.normalizer is not None else None,
        "queries": queries,
        "pairs": [pa, pb],
    }
    return hashlib.sha256(json.dumps(desc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _describe_normalizer(corpus: Corpus) -> dict[str, Any] | None:
    return corpus.normalizer.describe() if corpus.normalizer is not None else None


class QuerySet:
    """Query n-grams and n-gram pairs prepared once for one kind of corpus.

    Preparing normalizes (text) or tokenizes (subword) every query once, flattens them for
    the engine and computes :attr:`key`, which identifies the counts a partial result
    holds. Count any corpus of the same kind and normalizer with :meth:`count` — a whole
    corpus, or one shard of it (``corpus.shards()[i]``), to count shards separately and
    :meth:`NgramStats.merge` the results.

    Subword corpora: a query (or pair member) containing a word the tokenizer maps to its
    unknown token (``[UNK]``) would match every unknown word of the corpus; such queries are
    named in a ``UserWarning`` when the set is prepared and **count 0** (occurrences,
    document frequency, and the co-occurrence of every pair they are part of). Their
    indices are in :attr:`unknown_queries` and :attr:`unknown_pairs`.

    Parameters
    ----------
    corpus : Corpus
        A corpus of the kind (and, for text, with the normalizer) the queries are for.
    queries : sequence, optional
        Strings (text corpora) or sequences of token ids (token corpora; a 2-D int array
        gives one n-gram per row); duplicates allowed.
    pairs : sequence of (a, b), optional
        Pairs of n-grams of the same kinds; ``n`` may differ within a pair.

    Raises
    ------
    TypeError
        ``corpus`` is not a :class:`Corpus`, or a query has the wrong type for its kind.
    ValueError
        A query normalizes to zero tokens, is empty, has token ids outside uint32, or a
        pair is not a pair.
    """

    def __init__(
        self,
        corpus: Corpus,
        queries: Sequence[Any] | npt.NDArray[np.integer[Any]] | None = None,
        pairs: Sequence[tuple[Any, Any]] | None = None,
    ) -> None:
        if not isinstance(corpus, Corpus):
            raise TypeError(f"corpus: expected a memscore.ngrams.Corpus, got {type(corpus).__name__}")
        if isinstance(queries, str):
            raise TypeError("queries: expected a list of queries, got a single str")
        if isinstance(queries, np.ndarray) and queries.ndim == 2:
            queries = queries.tolist()  # (Q, n) array of token ids: one n-gram per row
        qs: list[Any] = [] if queries is None else list(queries)
        pa, pb = ([], []) if pairs is None else _split_pairs(pairs)
        q, p = len(qs), len(pa)
        self.kind: str = corpus.kind
        self._normalizer_desc = _describe_normalizer(corpus)
        self.queries: list[Any] = qs
        self.pairs: list[tuple[Any, Any]] = list(zip(pa, pb, strict=True))
        self._pair_idx = (
            np.stack([np.arange(q, q + p), np.arange(q + p, q + 2 * p)], axis=1).astype(np.uint64).reshape(p, 2)
        )
        self._text: list[list[str]] | None = None
        self._flat: npt.NDArray[np.uint32] | None = None
        self._starts: npt.NDArray[np.uint64] | None = None
        self.unknown_queries: npt.NDArray[np.int64] = np.zeros(0, np.int64)
        self.unknown_pairs: npt.NDArray[np.int64] = np.zeros(0, np.int64)
        norm = corpus.normalizer
        subword = corpus.kind == "text" and norm is not None and norm.is_subword
        if corpus.kind == "text" and not subword:
            wn = norm or Normalizer()
            self._text = (
                _text_ngrams(wn, qs, "query")
                + _text_ngrams(wn, pa, "pair (first)")
                + _text_ngrams(wn, pb, "pair (second)")
            )
            self.key: str = _key(corpus, qs, pa, pb)
        elif subword:
            assert norm is not None and norm._subword is not None
            for items, what in ((qs, "query"), (pa, "pair (first)"), (pb, "pair (second)")):
                _text_ngrams(norm, items, what)  # type and emptiness checks
            self._flat, self._starts = norm._subword.batch_ids(qs + pa + pb)
            self.key = _key(corpus, qs, pa, pb)
            self._find_unknown(norm.unknown_token_id, q, p)
        else:
            self._flat, self._starts = _token_query_arrays(qs, pa, pb)
            h = hashlib.sha256(json.dumps({"kind": "tokens", "q": q, "p": p}).encode())
            h.update(self._starts.tobytes())
            h.update(self._flat.tobytes())
            self.key = h.hexdigest()

    def _find_unknown(self, unk: int | None, q: int, p: int) -> None:
        """Mark (and warn about) the n-grams holding the tokenizer's unknown token."""
        if unk is None or self._flat is None or self._starts is None or self._flat.size == 0:
            return
        hit = (self._flat == unk).astype(np.int64)
        per_item = np.add.reduceat(hit, self._starts[:-1].astype(np.intp)) > 0 if hit.size else hit.astype(bool)
        per_item &= np.diff(self._starts) > 0
        self.unknown_queries = np.flatnonzero(per_item[:q]).astype(np.int64)
        self.unknown_pairs = np.flatnonzero(per_item[q : q + p] | per_item[q + p :]).astype(np.int64)
        if self.unknown_queries.size or self.unknown_pairs.size:
            names = [repr(self.queries[i]) for i in self.unknown_queries[:5]]
            names += [repr(self.pairs[i]) for i in self.unknown_pairs[: max(0, 5 - len(names))]]
            more = self.unknown_queries.size + self.unknown_pairs.size - len(names)
            warnings.warn(
                f"{self.unknown_queries.size} queries and {self.unknown_pairs.size} pairs contain words the "
                f"tokenizer maps to its unknown token (id {unk}), which would match every unknown word of the "
                f"corpus; they count 0: {', '.join(names)}" + (f" and {more} more" if more > 0 else ""),
                UserWarning,
                stacklevel=3,
            )

    @property
    def n_queries(self) -> int:
        """Number of query n-grams."""
        return len(self.queries)

    @property
    def n_pairs(self) -> int:
        """Number of pairs."""
        return len(self.pairs)

    def __len__(self) -> int:
        return self.n_queries

    def __repr__(self) -> str:
        return f"QuerySet(kind={self.kind!r}, queries={self.n_queries}, pairs={self.n_pairs}, key={self.key[:12]}…)"

    def check_corpus(self, corpus: Corpus) -> None:
        """Refuse a corpus these queries were not prepared for.

        Parameters
        ----------
        corpus : Corpus
            The corpus to count.

        Raises
        ------
        TypeError
            ``corpus`` is not a :class:`Corpus`.
        ValueError
            Its kind or its normalizer differ from those of the set.
        """
        if not isinstance(corpus, Corpus):
            raise TypeError(f"corpus: expected a memscore.ngrams.Corpus, got {type(corpus).__name__}")
        if corpus.kind != self.kind:
            raise ValueError(f"QuerySet: prepared for a {self.kind} corpus, got a {corpus.kind} corpus")
        if _describe_normalizer(corpus) != self._normalizer_desc:
            raise ValueError("QuerySet: the corpus uses another normalizer than the one the queries were prepared with")

    def count(self, corpus: Corpus, *, progress: bool | ProgressCounter = False) -> NgramStats:
        """Count the queries and pairs in ``corpus`` in one parallel pass.

        Parameters
        ----------
        corpus : Corpus
            A corpus of this set's kind and normalizer: a whole corpus or a subset of its
            shards (``corpus.shards()[i]``, or a sum of them).
        progress : bool or ProgressCounter, default False
            ``True`` shows progress (:mod:`memscore._progress`, on stderr) of the input bytes consumed; a
            :class:`ProgressCounter` receives those bytes instead (share one between
            concurrent counts and poll its ``value``).

        Returns
        -------
        NgramStats
            Counts in the order of the queries and pairs, with :attr:`key` and the shards'
            :meth:`Corpus.sources`.

        Raises
        ------
        ValueError
            The corpus has another kind or normalizer (see :meth:`check_corpus`).
        memscore.CorpusError
            A shard cannot be read or parsed.
        """
        self.check_corpus(corpus)
        if isinstance(progress, ProgressCounter):
            return self._pass(corpus, progress)
        if not isinstance(progress, bool):
            raise TypeError(f"progress: expected a bool or a ProgressCounter, got {type(progress).__name__}")
        return with_bytes_bar(corpus.nbytes, lambda counter: self._pass(corpus, counter), progress)

    def _pass(self, corpus: Corpus, counter: ProgressCounter | None) -> NgramStats:
        """Count every shard of ``corpus`` in one parallel pass of the engine (the corpus
        already checked against this set); ``counter`` receives the input bytes consumed
        as the pass goes. The kernel of :meth:`count` and of the counting tasks."""
        shards = corpus._shards
        sources = corpus.sources()  # before reading: a file changed during the pass will not match
        if corpus.kind == "tokens":
            assert self._flat is not None and self._starts is not None
            arg = [(s.name, *s.token_args()) for s in shards]
            t = _core.ngram_count_tokens(arg, self._flat, self._starts, self._pair_idx, counter)
        else:
            t = self._text_pass(corpus, counter)
        counts, df, co, nd, nt, ns = t
        q = self.n_queries
        stats = NgramStats(
            counts=np.asarray(counts[:q]).astype(np.int64),
            doc_freq=np.asarray(df[:q]).astype(np.int64),
            cooccurrence=np.asarray(co).astype(np.int64),
            n_documents=int(nd),
            n_tokens=int(nt),
            n_skipped=int(ns),
            key=self.key,
            shards=[s.name for s in shards],
            sources=sources,
        )
        # n-grams holding the tokenizer's unknown token would match every unknown word
        stats.counts[self.unknown_queries] = 0
        stats.doc_freq[self.unknown_queries] = 0
        stats.cooccurrence[self.unknown_pairs] = 0
        return stats

    def _text_pass(self, corpus: Corpus, counter: ProgressCounter | None) -> tuple[Any, ...]:
        """The engine's tuple for a text corpus: the shards the engine reads itself (jsonl,
        text files, texts) in one pass, then each columnar shard (Parquet, Arrow, datasets)
        batch by batch, the next batch read meanwhile; the tuples add up (documents never
        span two batches)."""
        norm = corpus.normalizer
        assert norm is not None

        def engine(targ: list[tuple[str, Any, str]]) -> tuple[Any, ...]:
            if self._text is not None:
                return _core.ngram_count_text(targ, norm._core, self._text, self._pair_idx, corpus.skip_errors, counter)
            # subword normalizer: documents are tokenized by the Rust tokenizers crate in the scan
            assert norm._subword is not None and self._flat is not None and self._starts is not None
            return _core.ngram_count_subword(
                targ, norm._subword, self._flat, self._starts, self._pair_idx, corpus.skip_errors, counter
            )

        direct = [s for s in corpus._shards if s.kind not in BATCHED_KINDS]
        batched = [s for s in corpus._shards if s.kind in BATCHED_KINDS]
        total = engine([(s.kind, s.payload, s.option) for s in direct]) if direct or not batched else None
        for s in batched:
            for texts, skipped in prefetch(text_batches(s.kind, s.payload, s.option, corpus.skip_errors, s.name)):
                t = engine([("texts", texts, "")])
                t = (*t[:5], t[5] + skipped)
                total = t if total is None else tuple(a + b for a, b in zip(total, t, strict=True))
        assert total is not None
        return total


def with_bytes_bar(total: int, fn: Callable[[ProgressCounter | None], _T], progress: bool) -> _T:
    """``fn(counter)``: with ``progress``, under the progress display (:mod:`memscore._progress`,
    on stderr) of the ``total`` input bytes that ``counter`` receives from the engine (``fn``
    runs in a worker thread while this one draws); without, ``fn(None)``."""
    if not progress:
        return fn(None)
    counter = ProgressCounter()
    bar = ProgressBar(total, "B", "ngrams", True, unit_scale=True)
    try:
        return _watch(lambda: fn(counter), counter, bar.set)
    finally:
        bar.close()


def _watch(fn: Callable[[], _T], counter: ProgressCounter, show: Callable[[int], None], every: float = 0.2) -> _T:
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


def _token_query_arrays(
    qs: list[Any], pa: list[Any], pb: list[Any]
) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint64]]:
    """Flat uint32 token ids of every n-gram and the start of each (plus the end)."""
    fast = _token_ngrams_fast(qs + pa + pb)
    if fast is not None:
        flat, lens = fast
        starts = np.zeros(len(lens) + 1, dtype=np.uint64)
        np.cumsum(lens, out=starts[1:])
        return flat, starts
    ids = _token_ngrams(qs, "query") + _token_ngrams(pa, "pair (first)") + _token_ngrams(pb, "pair (second)")
    starts = np.zeros(len(ids) + 1, dtype=np.uint64)
    np.cumsum([len(t) for t in ids], out=starts[1:])
    flat = np.fromiter((x for t in ids for x in t), dtype=np.uint32, count=int(starts[-1]))
    return flat, starts
