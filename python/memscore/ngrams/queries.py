"""Query sets: n-grams and n-gram pairs prepared once for the engine (normalized, tokenized,
flattened) and the key that identifies them in a partial result."""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from .corpus import Corpus
from .normalizer import Normalizer


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


@dataclass
class _Prepared:
    key: str
    q: int
    p: int
    text: list[list[str]] | None
    flat: np.ndarray | None
    starts: np.ndarray | None
    pair_idx: np.ndarray


def _prepare(corpus: Corpus, queries: Any, pairs: Any) -> _Prepared:
    if not isinstance(corpus, Corpus):
        raise TypeError(f"corpus: expected a memscore.ngrams.Corpus, got {type(corpus).__name__}")
    if isinstance(queries, np.ndarray) and queries.ndim == 2:
        queries = queries.tolist()  # (Q, n) array of token ids: one n-gram per row
    qs = [] if queries is None else list(queries)
    if isinstance(queries, str):
        raise TypeError("queries: expected a list of queries, got a single str")
    pa, pb = ([], []) if pairs is None else _split_pairs(pairs)
    q, p = len(qs), len(pa)
    pair_idx = np.stack([np.arange(q, q + p), np.arange(q + p, q + 2 * p)], axis=1).astype(np.uint64).reshape(p, 2)
    subword = corpus.kind == "text" and corpus.normalizer is not None and corpus.normalizer.is_subword
    if corpus.kind == "text" and not subword:
        norm = corpus.normalizer or Normalizer()
        toks = (
            _text_ngrams(norm, qs, "query")
            + _text_ngrams(norm, pa, "pair (first)")
            + _text_ngrams(norm, pb, "pair (second)")
        )
        return _Prepared(_key(corpus, qs, pa, pb), q, p, toks, None, None, pair_idx)
    if subword:
        assert corpus.normalizer is not None
        for items, what in ((qs, "query"), (pa, "pair (first)"), (pb, "pair (second)")):
            _text_ngrams(corpus.normalizer, items, what)  # type and emptiness checks
        flat, starts = corpus.normalizer._subword.batch_ids(qs + pa + pb)
        return _Prepared(_key(corpus, qs, pa, pb), q, p, None, flat, starts, pair_idx)
    fast = _token_ngrams_fast(qs + pa + pb)
    if fast is not None:
        flat, lens = fast
        starts = np.zeros(len(lens) + 1, dtype=np.uint64)
        np.cumsum(lens, out=starts[1:])
    else:
        ids = _token_ngrams(qs, "query") + _token_ngrams(pa, "pair (first)") + _token_ngrams(pb, "pair (second)")
        starts = np.zeros(len(ids) + 1, dtype=np.uint64)
        np.cumsum([len(t) for t in ids], out=starts[1:])
        flat = np.fromiter((x for t in ids for x in t), dtype=np.uint32, count=int(starts[-1]))
    h = hashlib.sha256(json.dumps({"kind": "tokens", "q": q, "p": p}).encode())
    h.update(starts.tobytes())
    h.update(flat.tobytes())
    key = h.hexdigest()
    return _Prepared(key, q, p, None, flat, starts, pair_idx)
