"""Pure-Python reference of the corpus n-gram engine, written for clarity.

Normalization uses Python's own ``str.split`` / ``unicodedata.category`` / ``str.lower``
(the Rust normalizer must agree with it); counting is plain loops over lists of tokens.
Nothing here imports the compiled module. Also the "pure Python" benchmark baseline.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

__all__ = [
    "cooccurrence",
    "count_ngrams",
    "document_frequency",
    "infgram_prob",
    "jsonl_texts",
    "longest_match",
    "maximal_spans",
    "next_tokens",
    "normalize",
    "novelty",
    "positions",
    "punct_ranges",
    "stats",
]


def normalize(
    text: str, lowercase: bool = True, strip_punctuation: bool = True, stopwords: Iterable[str] = ()
) -> list[str]:
    """Split on whitespace, delete P*/S* characters, lowercase, drop empty words and stopwords.

    Parameters
    ----------
    text : str
    lowercase, strip_punctuation : bool, default True
    stopwords : iterable of str, default ()

    Returns
    -------
    list of str
    """
    stop = set(stopwords)
    out = []
    for word in text.split():
        if strip_punctuation:
            word = "".join(c for c in word if unicodedata.category(c)[0] not in "PS")
        if lowercase:
            word = word.lower()
        if word and word not in stop:
            out.append(word)
    return out


def punct_ranges() -> list[tuple[int, int]]:
    """Inclusive code-point ranges of categories P* and S* (how the Rust table was made).

    Returns
    -------
    list of (int, int)
    """
    ranges, start = [], None
    for cp in range(0x110000):
        strip = unicodedata.category(chr(cp))[0] in "PS"
        if strip and start is None:
            start = cp
        if not strip and start is not None:
            ranges.append((start, cp - 1))
            start = None
    if start is not None:
        ranges.append((start, 0x10FFFF))
    return ranges


def _occurrences(doc: Sequence[Hashable], gram: Sequence[Hashable]) -> int:
    n = len(gram)
    found = 0
    for i in range(len(doc) - n + 1):
        if list(doc[i : i + n]) == list(gram):
            found += 1
    return found


def count_ngrams(docs: Sequence[Sequence[Hashable]], queries: Sequence[Sequence[Hashable]]) -> list[int]:
    """Occurrences (overlapping ones too) of each query inside single documents.

    Parameters
    ----------
    docs : sequence of sequence of hashable
        Tokenized documents.
    queries : sequence of sequence of hashable
        The n-grams.

    Returns
    -------
    list of int
    """
    return [sum(_occurrences(d, q) for d in docs) for q in queries]


def document_frequency(docs: Sequence[Sequence[Hashable]], queries: Sequence[Sequence[Hashable]]) -> list[int]:
    """Number of documents containing each query at least once.

    Parameters
    ----------
    docs : sequence of sequence of hashable
        Tokenized documents.
    queries : sequence of sequence of hashable
        The n-grams.

    Returns
    -------
    list of int
    """
    return [sum(1 for d in docs if _occurrences(d, q) > 0) for q in queries]


def cooccurrence(
    docs: Sequence[Sequence[Hashable]], pairs: Sequence[tuple[Sequence[Hashable], Sequence[Hashable]]]
) -> list[int]:
    """Number of documents containing both n-grams of each pair.

    Parameters
    ----------
    docs : sequence of sequence of hashable
        Tokenized documents.
    pairs : sequence of (n-gram, n-gram)

    Returns
    -------
    list of int
    """
    return [sum(1 for d in docs if _occurrences(d, a) > 0 and _occurrences(d, b) > 0) for a, b in pairs]


def stats(
    docs: Sequence[Sequence[Hashable]],
    queries: Sequence[Sequence[Hashable]],
    pairs: Sequence[tuple[Sequence[Hashable], Sequence[Hashable]]] = (),
) -> dict[str, Any]:
    """All three at once, by a single pass over the documents with dictionaries.

    The benchmark baseline: every n-gram of every document up to the longest query.

    Parameters
    ----------
    docs : sequence of sequence of hashable
    queries : sequence of n-grams
    pairs : sequence of (n-gram, n-gram), default ()

    Returns
    -------
    dict
        ``counts``, ``doc_freq`` and ``cooccurrence`` lists and ``n_documents``.
    """
    qset = {tuple(q) for q in queries} | {tuple(a) for a, _ in pairs} | {tuple(b) for _, b in pairs}
    pairs_by_first: dict[tuple[Hashable, ...], list[tuple[int, tuple[Hashable, ...]]]] = {}
    for k, (a, b) in enumerate(pairs):
        pairs_by_first.setdefault(tuple(a), []).append((k, tuple(b)))
    max_n = max((len(q) for q in qset), default=0)
    counts: dict[tuple[Hashable, ...], int] = {}
    df: dict[tuple[Hashable, ...], int] = {}
    co = [0] * len(pairs)
    for doc in docs:
        seen = set()
        for i in range(len(doc)):
            for n in range(1, max_n + 1):
                if i + n > len(doc):
                    break
                g = tuple(doc[i : i + n])
                if g in qset:
                    counts[g] = counts.get(g, 0) + 1
                    seen.add(g)
        for g in seen:
            df[g] = df.get(g, 0) + 1
        for a in seen:
            for k, b in pairs_by_first.get(a, ()):
                if b in seen:
                    co[k] += 1
    return {
        "counts": [counts.get(tuple(q), 0) for q in queries],
        "doc_freq": [df.get(tuple(q), 0) for q in queries],
        "cooccurrence": co,
        "n_documents": len(docs),
    }


def jsonl_texts(lines: Iterable[str], field: str = "text") -> list[str]:
    """The text field of each non-blank jsonl line.

    Parameters
    ----------
    lines : iterable of str
    field : str, default "text"

    Returns
    -------
    list of str
    """
    return [json.loads(line)[field] for line in lines if line.strip()]


# ------------------------------------------------------------------ corpus-index queries


def positions(docs: Sequence[Sequence[int]], gram: Sequence[int]) -> list[tuple[int, int]]:
    """Every ``(document, offset)`` where ``gram`` starts, in corpus order.

    Parameters
    ----------
    docs : sequence of sequence of int
        Token documents.
    gram : sequence of int
        The n-gram (n >= 1).

    Returns
    -------
    list of (int, int)
    """
    n = len(gram)
    return [(d, i) for d, doc in enumerate(docs) for i in range(len(doc) - n + 1) if list(doc[i : i + n]) == list(gram)]


def next_tokens(docs: Sequence[Sequence[int]], prefix: Sequence[int]) -> dict[int, int]:
    """How often each token follows ``prefix`` inside a document.

    Parameters
    ----------
    docs : sequence of sequence of int
        Token documents.
    prefix : sequence of int
        The prefix (may be empty: every token counts).

    Returns
    -------
    dict of int to int
    """
    n = len(prefix)
    out: dict[int, int] = {}
    for doc in docs:
        for i in range(len(doc) - n):
            if list(doc[i : i + n]) == list(prefix):
                out[doc[i + n]] = out.get(doc[i + n], 0) + 1
    return out


def infgram_prob(docs: Sequence[Sequence[int]], context: Sequence[int], token: int) -> tuple[int, int, int]:
    """The ∞-gram estimate: the longest suffix of ``context`` that some token follows in a
    document, and ``(count of that suffix followed by token, occurrences of the suffix
    followed by any token, suffix length)``.

    Parameters
    ----------
    docs : sequence of sequence of int
        Token documents.
    context : sequence of int
        The context.
    token : int
        The next token.

    Returns
    -------
    (int, int, int)
    """
    for k in range(len(context), -1, -1):
        nxt = next_tokens(docs, list(context[len(context) - k :]))
        total = sum(nxt.values())
        if total > 0 or k == 0:
            return nxt.get(token, 0), total, k
    raise AssertionError("unreachable")


def longest_match(docs: Sequence[Sequence[int]], tokens: Sequence[int]) -> list[int]:
    """For each position ``i``, the largest ``l`` such that ``tokens[i:i+l]`` occurs inside
    a document.

    Parameters
    ----------
    docs : sequence of sequence of int
        Token documents.
    tokens : sequence of int
        The text.

    Returns
    -------
    list of int
    """
    out = []
    for i in range(len(tokens)):
        best = 0
        for doc in docs:
            for j in range(len(doc)):
                length = 0
                while i + length < len(tokens) and j + length < len(doc) and doc[j + length] == tokens[i + length]:
                    length += 1
                best = max(best, length)
        out.append(best)
    return out


def maximal_spans(
    docs: Sequence[Sequence[int]], tokens: Sequence[int], min_len: int = 1, max_count: int | None = None
) -> list[tuple[int, int, int]]:
    """The spans ``tokens[a:b]`` that occur in a document while neither ``tokens[a-1:b]``
    nor ``tokens[a:b+1]`` does, at least ``min_len`` long and occurring at most
    ``max_count`` times: ``(a, b, count)`` by start.

    Parameters
    ----------
    docs : sequence of sequence of int
        Token documents.
    tokens : sequence of int
        The text.
    min_len : int, default 1
    max_count : int, optional

    Returns
    -------
    list of (int, int, int)
    """

    def occurs(a: int, b: int) -> bool:
        return count_ngrams(docs, [list(tokens[a:b])])[0] > 0

    out = []
    n = len(tokens)
    for a in range(n):
        for b in range(a + 1, n + 1):
            if not occurs(a, b):
                continue
            if (a > 0 and occurs(a - 1, b)) or (b < n and occurs(a, b + 1)):
                continue
            c = count_ngrams(docs, [list(tokens[a:b])])[0]
            if b - a >= min_len and (max_count is None or c <= max_count):
                out.append((a, b, c))
    return out


def novelty(docs: Sequence[Sequence[int]], tokens: Sequence[int], n: int) -> list[float]:
    """For k = 1..n, the share of the k-grams of ``tokens`` (one per start) that occur in
    no document; NaN when the text has no k-gram.

    Parameters
    ----------
    docs : sequence of sequence of int
        Token documents.
    tokens : sequence of int
        The text.
    n : int
        The largest k.

    Returns
    -------
    list of float
    """
    out = []
    for k in range(1, n + 1):
        grams = [list(tokens[i : i + k]) for i in range(len(tokens) - k + 1)]
        if not grams:
            out.append(float("nan"))
            continue
        absent = sum(1 for g in grams if count_ngrams(docs, [g])[0] == 0)
        out.append(absent / len(grams))
    return out
