"""Training sequences for memorization measurements: windows of ``length`` tokens drawn
from a token corpus, and how often each occurs in the whole corpus.

Windows never cross a document boundary. :func:`sample_sequences` draws window start
positions uniformly over all valid positions of all documents (without replacement), so a
sequence duplicated many times is drawn proportionally more often, as in Carlini et al.
2023; ``stratify=True`` instead draws a larger uniform pool, counts it, and takes the same
number of sequences from each log2 duplicate-count bin, so rare high-duplication bins get
enough samples. Duplicate counts come from the exact n-gram engine through
:func:`duplicate_counts` (one pass over every shard, overlapping occurrences counted).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .._validate import check_int
from ..executors import ExecutorLike
from ..ngrams.corpus import Corpus
from ..ngrams.counting import ngram_stats
from ..ngrams.index import CorpusIndex

__all__ = [
    "FewerSequencesWarning",
    "SampledSequences",
    "duplicate_counts",
    "log2_bin",
    "sample_sequences",
    "token_shard_arrays",
]


class FewerSequencesWarning(UserWarning):
    """:func:`sample_sequences` returns fewer windows than asked for (the corpus, or the
    stratified pool, holds fewer); the message names both numbers."""


@dataclass
class SampledSequences:
    """Windows drawn by :func:`sample_sequences`.

    Attributes
    ----------
    tokens : numpy.ndarray
        ``(N, length)`` int64 token ids.
    shard : numpy.ndarray
        int64 index of each window's shard in the corpus.
    position : numpy.ndarray
        int64 index of its first token in the shard's flat token array.
    counts : numpy.ndarray
        int64 occurrences of the window in the whole corpus (>= 1).
    """

    tokens: npt.NDArray[np.int64]
    shard: npt.NDArray[np.int64]
    position: npt.NDArray[np.int64]
    counts: npt.NDArray[np.int64]


def token_shard_arrays(corpus: Corpus) -> list[tuple[npt.NDArray[Any], npt.NDArray[np.int64]]]:
    """(tokens, document offsets) of each shard of a token corpus; files are memory-mapped.

    Parameters
    ----------
    corpus : Corpus
        A token corpus (:meth:`Corpus.from_tokens` / :meth:`Corpus.from_token_files` /
        :meth:`Corpus.from_megatron`: its ``.bin`` memory-mapped, in parts as one array).

    Returns
    -------
    list of (numpy.ndarray, numpy.ndarray)

    Raises
    ------
    ValueError
        A text corpus.
    """
    if corpus.kind != "tokens":
        raise ValueError(
            "corpus: expected a token corpus (Corpus.from_tokens / from_token_files, tokenized with the "
            f"model's tokenizer), got a {corpus.kind} corpus"
        )
    out = []
    for s in corpus._shards:
        if s.kind == "megatron":  # the .bin (parts) memory-mapped, the documents' first tokens
            out.append((s.payload.tokens(), s.payload.doc_starts()))
            continue
        if s.files:  # token file + sidecar
            tokens = np.load(s.files[0], mmap_mode="r", allow_pickle=False)
            offsets = np.asarray(np.load(s.files[1], mmap_mode="r", allow_pickle=False), dtype=np.int64)
        else:
            tokens, offsets = s.payload[0], np.asarray(s.payload[1], dtype=np.int64)
        out.append((tokens, offsets))
    return out


def _window_starts(n_tokens: int, offsets: npt.NDArray[np.int64], length: int) -> tuple[Any, Any]:
    """Per document with room for a window: its first valid start and how many starts."""
    ends = np.append(offsets[1:], n_tokens)
    room = ends - offsets - length + 1
    keep = room > 0
    return offsets[keep], room[keep]


def duplicate_counts(
    corpus: Corpus,
    tokens: npt.NDArray[np.int64],
    *,
    progress: bool = False,
    executor: ExecutorLike = None,
    index: CorpusIndex | None = None,
) -> npt.NDArray[np.int64]:
    """Occurrences in ``corpus`` of each row of ``tokens`` (the one counting call of the
    memorization measurements, on ``executor``'s workers: :func:`ngram_stats`).

    Parameters
    ----------
    corpus : Corpus
        A token corpus.
    tokens : numpy.ndarray
        ``(N, L)`` token ids.
    progress : bool, default False
        Show the counting pass's progress bar.
    executor : Executor or str, optional
        Who counts the shards (:func:`memscore.executors.as_executor`; default: one pass in
        this process).
    index : CorpusIndex, optional
        The corpus's index: the counts come from it (no pass over the corpus), equal.

    Returns
    -------
    numpy.ndarray
        int64, shape ``(N,)``.
    """
    if tokens.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    return ngram_stats(corpus, [row for row in tokens], progress=progress, executor=executor, index=index).counts


def log2_bin(counts: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Bin ``b`` of each count: ``2**b <= count < 2**(b+1)`` (counts >= 1).

    Parameters
    ----------
    counts : numpy.ndarray
        int64, >= 1.

    Returns
    -------
    numpy.ndarray
        int64.
    """
    c = np.asarray(counts, dtype=np.int64)
    if c.size and c.min() < 1:
        raise ValueError(f"counts: expected values >= 1, got {int(c.min())}")
    return np.floor(np.log2(np.maximum(c, 1))).astype(np.int64)


def _uniform(shards: list[tuple[Any, Any]], length: int, n: int, rng: np.random.Generator) -> tuple[Any, Any, Any]:
    """``n`` distinct window positions drawn uniformly over all shards (fewer when fewer
    exist). Shards are visited one at a time, so memory follows the largest shard's document
    count, not the corpus's."""
    totals = [int(_window_starts(int(t.shape[0]), o, length)[1].sum()) for t, o in shards]
    total = sum(totals)
    if total == 0:
        raise ValueError(f"corpus: no document has {length} tokens (k + m); nothing to sample")
    flat = np.sort(rng.choice(total, size=min(n, total), replace=False))
    bounds = np.cumsum([0, *totals])
    tokens, shard, pos = [], [], []
    for i, (t, o) in enumerate(shards):
        sel = flat[(flat >= bounds[i]) & (flat < bounds[i + 1])] - bounds[i]
        if sel.size == 0:
            continue
        first, room = _window_starts(int(t.shape[0]), o, length)
        cum = np.cumsum(room)
        doc = np.searchsorted(cum, sel, side="right")  # the document holding each drawn window
        p = (first[doc] + sel - (cum[doc] - room[doc])).astype(np.int64)
        idx = p[:, None] + np.arange(length)[None, :]
        tokens.append(np.asarray(t[idx.ravel()], dtype=np.int64).reshape(sel.size, length))
        shard.append(np.full(sel.size, i, dtype=np.int64))
        pos.append(p)
    return np.concatenate(tokens), np.concatenate(shard), np.concatenate(pos)


def sample_sequences(
    corpus: Corpus,
    n: int,
    length: int,
    *,
    stratify: bool = False,
    pool: int | None = None,
    seed: int = 0,
    progress: bool = False,
    executor: ExecutorLike = None,
    index: CorpusIndex | None = None,
) -> SampledSequences:
    """Draw ``n`` token windows of ``length`` tokens from a token corpus and count them.

    Parameters
    ----------
    corpus : Corpus
        A token corpus in the model's tokenization.
    n : int
        Windows wanted (>= 1); fewer, with a :class:`FewerSequencesWarning` naming both
        numbers, when the corpus (or the stratified ``pool``) has fewer.
    length : int
        Tokens per window (``k + m``, >= 1).
    stratify : bool, default False
        Equal numbers per log2 duplicate-count bin from a uniform pool of ``pool`` windows
        (bins with fewer windows give all they have).
    pool : int, optional
        Pool size for ``stratify`` (default ``20 * n``).
    seed : int, default 0
        Seeds the draw.
    progress : bool, default False
        Progress bar of the counting pass.
    executor : Executor or str, optional
        Who counts the windows' duplicates over the corpus shards
        (:func:`memscore.executors.as_executor`; default: one pass in this process). The
        draw itself is cheap and stays in this process.
    index : CorpusIndex, optional
        The corpus's index (:class:`memscore.ngrams.CorpusIndex`): the duplicate counts
        come from it instead of a pass over the corpus, with the same values.

    Returns
    -------
    SampledSequences

    Raises
    ------
    ValueError
        A text corpus, bad sizes, or no document of ``length`` tokens.

    Warns
    -----
    FewerSequencesWarning
        Fewer than ``n`` windows come back.
    """
    check_int(n, "n", 1)
    check_int(length, "length", 1)
    check_int(seed, "seed", 0)
    if pool is not None:
        check_int(pool, "pool", 1)
    shards = token_shard_arrays(corpus)
    rng = np.random.default_rng(seed)
    draw = (pool if pool is not None else 20 * n) if stratify else n
    tokens, shard, pos = _uniform(shards, length, draw, rng)
    counts = duplicate_counts(corpus, tokens, progress=progress, executor=executor, index=index)
    if stratify and tokens.shape[0] > n:
        bins = log2_bin(counts)
        labels = np.unique(bins)
        # share n over the bins; a bin with fewer windows than its share gives them all and
        # the rest goes to the others
        take: dict[int, int] = {}
        left, todo = n, sorted(labels.tolist(), key=lambda b: int((bins == b).sum()))
        for j, b in enumerate(todo):
            have = int((bins == b).sum())
            take[b] = min(have, left // (len(todo) - j))
            left -= take[b]
        chosen = np.concatenate([rng.choice(np.flatnonzero(bins == b), size=take[b], replace=False) for b in todo])
        chosen.sort()
        tokens, shard, pos, counts = tokens[chosen], shard[chosen], pos[chosen], counts[chosen]
    if tokens.shape[0] < n:
        why = (
            f"the stratified pool holds {tokens.shape[0]} (pool={draw})"
            if stratify and draw < n and tokens.shape[0] == draw
            else f"the corpus has only {tokens.shape[0]} window positions of {length} tokens"
        )
        warnings.warn(
            f"sample_sequences: asked for n={n} windows, returning {tokens.shape[0]}: {why}",
            FewerSequencesWarning,
            stacklevel=2,
        )
    return SampledSequences(tokens=tokens, shard=shard, position=pos, counts=counts)
