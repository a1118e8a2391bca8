"""A corpus index: suffix arrays over a token corpus (or a text corpus through its subword
tokenizer), built once, that answer exact n-gram queries in milliseconds
(:class:`CorpusIndex`).

The streaming engine (:func:`memscore.ngrams.ngram_stats`) reads the whole corpus for
every batch of queries; the index reads it once to build, then answers each count with two
binary searches. Both give the same numbers: n-grams never span two documents.

Layout of an index directory (open formats, little-endian, no headers):

- ``manifest.json``: format and version, the corpus (kind, shard names, sources, checksum)
  and one entry per part (see below); written last, atomically: an index without it is
  not built (yet).
- per part ``P`` (one per shard, or several per shard under a memory cap):
  ``P.tokens`` (the part's documents as uint16 or uint32 ids, one separator token between
  two documents), ``P.sa`` (the suffix array: ``n_tokens`` pointers into ``P.tokens``,
  ``sa_width`` bytes each, as few as the part needs), ``P.docs`` (uint64 start of each
  document in ``P.tokens``) and ``P.json`` (the part's manifest entry, written when its
  files are complete: a rebuild skips parts that have it).
- ``vocab.json`` (word corpora only): the word of each token id.

The build runs one task per part on an executor (:mod:`memscore.executors`): split (plan
the parts: whole documents, each within the memory cap) -> task (:func:`_build_task`,
which writes one part atomically) -> merge (the manifest, in corpus order).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from .. import _core
from .._io import atomic_write, write_json
from ..errors import CorpusError, CorpusIndexError, IndexMismatchError
from ..executors import ExecutorLike, as_executor
from ._documents import documents
from .arrow_text import BATCHED_KINDS, text_batches
from .corpus import Corpus, _Shard
from .megatron import MegatronFiles
from .normalizer import Normalizer
from .queries import QuerySet, _token_query_arrays
from .stats import NgramStats

__all__ = ["CorpusIndex", "InfgramProb"]

FORMAT = "memscore-corpus-index"
VERSION = 1
MANIFEST = "manifest.json"
#: A word corpus's vocabulary: a JSON list, the word of each token id.
VOCAB = "vocab.json"
_NO_LIMIT = 2**63 - 1


# ------------------------------------------------------------------ shards as arrays


def _shard_arrays(shard: _Shard) -> tuple[np.ndarray, npt.NDArray[np.uint64]]:
    """(tokens, document offsets) of a token shard: token files memory-mapped, offsets
    as uint64."""
    if shard.kind == "megatron":
        return _megatron_arrays(shard.payload)
    if shard.kind != "tokens":  # a source this module does not read yet: say so, never guess
        raise CorpusIndexError(f"{shard.name}: shards of kind {shard.kind!r} cannot be indexed yet")
    tokens, offs = shard.payload
    if isinstance(tokens, tuple):  # (path, byte offset, itemsize, n) of a little-endian file
        path, at, size, n = tokens
        tokens = np.memmap(path, dtype=f"<u{size}", mode="r", offset=at, shape=(n,)) if n else np.zeros(0, f"<u{size}")
    if isinstance(offs, tuple):  # (path, byte offset, width, signed, n)
        path, at, width, signed, n = offs
        dt = f"<{'i' if signed else 'u'}{width}"
        raw: np.ndarray = (
            np.asarray(np.memmap(path, dtype=dt, mode="r", offset=at, shape=(n,))) if n else np.zeros(0, dt)
        )
        if raw.size and signed and raw.min() < 0:
            raise CorpusError(f"{shard.name}: document offsets must not be negative, got {raw.min()}")
        offs = raw.astype(np.uint64)
    return tokens, np.ascontiguousarray(offs, dtype=np.uint64)


def _shard_documents(shard: _Shard, skip_errors: bool) -> Iterator[str]:
    if shard.kind == "texts":
        return iter(shard.payload)
    if shard.kind in BATCHED_KINDS:  # Parquet, Arrow, datasets: batch by batch
        batches = text_batches(shard.kind, shard.payload, shard.option, skip_errors, shard.name)
        return (t for texts, _ in batches for t in texts)
    return documents(Path(shard.payload), shard.option if shard.kind == "jsonl" else "text", skip_errors=skip_errors)


def _megatron_arrays(mf: MegatronFiles) -> tuple[np.ndarray, npt.NDArray[np.uint64]]:
    """(tokens, document starts) of a Megatron dataset: a whole uint16 / uint32 ``.bin``
    memory-mapped; a ``.bin`` in parts or of another dtype read into memory as uint32 (its
    values checked to be token ids)."""
    tokens = mf.tokens()
    if not (isinstance(tokens, np.ndarray) and tokens.dtype.kind == "u" and tokens.dtype.itemsize in (2, 4)):
        raw = b"".join(Path(p).read_bytes() for p in mf.parts)
        values = np.frombuffer(raw, dtype=np.dtype(mf.dtype).newbyteorder("<"), count=mf.n_tokens)
        if values.size and (values.min() < 0 or values.max() > 2**32 - 1 or (values % 1 != 0).any()):
            raise CorpusError(f"{mf.parts[0]}: holds values that are no token ids ({values.min()}..{values.max()})")
        tokens = values.astype(np.uint16 if values.size == 0 or values.max() < 2**16 else np.uint32)
    return tokens, np.ascontiguousarray(mf.doc_starts(), dtype=np.uint64)


def _text_arrays(
    shard: _Shard, normalizer: Normalizer, skip_errors: bool, vocab: dict[str, int] | None = None
) -> tuple[np.ndarray, npt.NDArray[np.uint64]]:
    """(token ids, document offsets) of a text shard, tokenized a thousand documents at a
    time by the corpus's subword normalizer, or normalized into words numbered by
    ``vocab``."""
    sub = normalizer._subword
    docs = _shard_documents(shard, skip_errors)
    pieces: list[np.ndarray] = []
    lengths: list[np.ndarray] = []
    while batch := list(itertools.islice(docs, 1000)):
        if sub is not None:
            flat, starts = sub.batch_ids(batch)
            pieces.append(flat)
            lengths.append(np.diff(starts.astype(np.int64)))
        else:  # words: ids from the index's vocabulary (every word of the corpus is in it)
            assert vocab is not None
            words = normalizer.batch(batch)
            pieces.append(np.fromiter((vocab[w] for ws in words for w in ws), dtype=np.uint32))
            lengths.append(np.array([len(ws) for ws in words], dtype=np.int64))
    size = sub.vocab_size if sub is not None else len(vocab or ())
    dtype = np.uint16 if size <= 2**16 - 1 else np.uint32
    tokens = np.concatenate(pieces).astype(dtype) if pieces else np.zeros(0, dtype)
    lens = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
    offsets = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.uint64) if len(lens) else np.zeros(0, np.uint64)
    return tokens, offsets


def _arrays(corpus: Corpus, vocab: dict[str, int] | None = None) -> tuple[np.ndarray, npt.NDArray[np.uint64]]:
    """(tokens, document offsets) of a one-shard corpus (``vocab``: of a word corpus)."""
    shard = corpus._shards[0]
    if corpus.kind == "tokens":
        return _shard_arrays(shard)
    assert corpus.normalizer is not None
    return _text_arrays(shard, corpus.normalizer, corpus.skip_errors, vocab)


def _words_task(corpus: Corpus) -> list[str]:
    """The task of a word corpus's first pass: the distinct words of one shard, sorted."""
    assert corpus.normalizer is not None
    seen: set[str] = set()
    docs = _shard_documents(corpus._shards[0], corpus.skip_errors)
    while batch := list(itertools.islice(docs, 1000)):
        for ws in corpus.normalizer.batch(batch):
            seen.update(ws)
    return sorted(seen)


def _is_words(corpus: Corpus) -> bool:
    return corpus.kind == "text" and corpus.normalizer is not None and not corpus.normalizer.is_subword


def _check_corpus(corpus: Any) -> Corpus:
    """A corpus the index can be built from: token ids, or text through a subword tokenizer."""
    if not isinstance(corpus, Corpus):
        raise TypeError(f"corpus: expected a memscore.ngrams.Corpus, got {type(corpus).__name__}")
    if corpus.kind == "text":
        for sh in corpus._shards:
            if sh.kind == "text" and sh.option != "file":
                raise ValueError(
                    f"corpus: text files are indexed one document per file (split='file'), got split="
                    f"{sh.option!r} for {sh.name}; tokenize them first (memscore.lm.tokenize_corpus)"
                )
    return corpus


def _normalizer_desc(corpus: Corpus) -> dict[str, Any] | None:
    return corpus.normalizer.describe() if corpus.kind == "text" and corpus.normalizer is not None else None


# ------------------------------------------------------------------ the build: split -> task -> merge


@dataclass(frozen=True)
class _PartPlan:
    """One part to build: documents ``[doc_start, doc_end)`` of shard ``shard``."""

    name: str
    shard: int
    doc_start: int
    doc_end: int
    token_start: int
    token_end: int


def _plan_shard(
    shard: int, n_tokens: int, offsets: npt.NDArray[np.uint64], width: int, cap: int | None
) -> list[_PartPlan]:
    """Cut a shard into parts of whole documents whose build fits ``cap`` bytes."""
    n_docs = len(offsets)
    if n_docs == 0 and n_tokens > 0:
        raise CorpusError(f"shard {shard}: {n_tokens} tokens but no document offsets")
    if n_docs and (offsets[0] != 0 or (np.diff(offsets.astype(np.int64)) < 0).any() or int(offsets[-1]) > n_tokens):
        raise CorpusError(
            f"shard {shard}: document offsets must start at 0, never decrease and stay within the {n_tokens} tokens"
        )
    name = f"part-{shard:05d}-{{:05d}}"
    if cap is None or _core.sa_peak_bytes(n_tokens, n_docs, width) <= cap:
        return [_PartPlan(name.format(0), shard, 0, n_docs, 0, n_tokens)]
    # tokens + separators a part may hold: peak_bytes is linear in them
    base = _core.sa_peak_bytes(0, 1, width)
    room = 0
    for n in (1 << 20, 1 << 32):  # suffix arrays of 2^31 positions or more take 8-byte pointers
        per = _core.sa_peak_bytes(n, 1, width) - base  # bytes of n tokens
        room = max(0, cap - base) * n // per
        if room < 2**31 - 1:
            break
    ends = np.append(offsets[1:], np.uint64(n_tokens)).astype(np.int64)
    # position of each document's end in the text with separators, from the part's first document
    text_end = ends + np.arange(n_docs, dtype=np.int64)
    plans: list[_PartPlan] = []
    d = 0
    while d < n_docs:
        base = int(offsets[d]) + d
        e = int(np.searchsorted(text_end, base + room, side="right"))
        if e <= d:
            raise ValueError(
                f"memory: document {d} of shard {shard} has {int(ends[d] - offsets[d])} tokens, more than a build "
                f"within memory={cap} bytes holds ({room} tokens); raise memory"
            )
        plans.append(_PartPlan(name.format(len(plans)), shard, d, e, int(offsets[d]), int(ends[e - 1])))
        d = e
    return plans


def _part_input(
    corpus: Corpus, plan: _PartPlan, vocab: dict[str, int] | None = None
) -> tuple[np.ndarray, npt.NDArray[np.uint64]]:
    """The tokens and rebased document offsets of one planned part (``doc_end < 0``: the
    whole shard, for text shards, whose size is known once tokenized)."""
    tokens, offsets = _arrays(corpus, vocab)
    if plan.doc_end < 0:
        return tokens, offsets
    part_offsets = offsets[plan.doc_start : plan.doc_end] - np.uint64(plan.token_start)
    return tokens[plan.token_start : plan.token_end], np.ascontiguousarray(part_offsets)


def _build_task(
    corpus: Corpus, plan: _PartPlan, directory: str, source: dict[str, Any], vocab: dict[str, int] | None
) -> dict[str, Any]:
    """The task: build one part (files written atomically by the core), then its entry
    ``P.json``; return the entry. ``corpus`` holds the part's shard only; ``vocab`` numbers
    the words of a word corpus."""
    tokens, offsets = _part_input(corpus, plan, vocab)
    content = _core.sa_content_checksum(tokens, offsets)
    prefix = os.path.join(directory, plan.name)
    text_len, n_tokens, n_docs, tw, sw, sep, (c_tok, c_sa, c_docs) = _core.sa_build_part(tokens, offsets, prefix)
    entry = {
        "file": plan.name,
        "shard": plan.shard,
        "doc_start": plan.doc_start,
        "doc_end": plan.doc_end if plan.doc_end >= 0 else int(len(offsets)),
        "token_start": plan.token_start,
        "text_len": int(text_len),
        "n_tokens": int(n_tokens),
        "n_docs": int(n_docs),
        "token_width": int(tw),
        "sa_width": int(sw),
        "separator": int(sep),
        "checksums": {"tokens": f"{c_tok:016x}", "sa": f"{c_sa:016x}", "docs": f"{c_docs:016x}"},
        "content_checksum": f"{content:016x}",
        "source": source,
    }
    write_json(prefix + ".json", entry)
    return entry


def _done(
    directory: Path, plan: _PartPlan, corpus: Corpus, source: dict[str, Any], vocab: dict[str, int] | None
) -> dict[str, Any] | None:
    """The entry of a part built earlier from the same input, or None (resume)."""
    path = directory / f"{plan.name}.json"
    try:
        entry: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    same = (
        entry.get("source") == source
        and (entry.get("doc_start"), entry.get("token_start")) == (plan.doc_start, plan.token_start)
        and (plan.doc_end < 0 or entry.get("doc_end") == plan.doc_end)
        and all((directory / f"{plan.name}{ext}").is_file() for ext in (".tokens", ".sa", ".docs"))
    )
    if same and not source["files"]:  # in memory: no file identity, compare the content
        tokens, offsets = _part_input(corpus, plan, vocab)
        same = entry.get("content_checksum") == f"{_core.sa_content_checksum(tokens, offsets):016x}"
    return entry if same else None


def _corpus_checksum(parts: list[dict[str, Any]]) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(f"{p['shard']}:{p['doc_start']}:{p['doc_end']}:{p['content_checksum']};".encode())
    return h.hexdigest()


# ------------------------------------------------------------------ queries: arguments


def _ngram(q: Any, what: str) -> list[int]:
    """One n-gram of token ids, checked."""
    if isinstance(q, np.ndarray):
        if q.ndim != 1 or (q.size and not np.issubdtype(q.dtype, np.integer)):
            raise TypeError(f"{what}: expected a 1-D sequence of int token ids, got an array of {q.dtype} {q.shape}")
        q = q.tolist()
    if isinstance(q, (str, bytes)) or not isinstance(q, Sequence):
        raise TypeError(f"{what}: expected a sequence of int token ids, got {type(q).__name__}")
    out = []
    for x in q:
        if isinstance(x, bool) or not isinstance(x, (int, np.integer)):
            raise TypeError(f"{what}: expected int token ids, got {type(x).__name__}")
        if not 0 <= int(x) <= 2**32 - 1:
            raise ValueError(f"{what}: token ids must be in [0, 4294967295], got {int(x)}")
        out.append(int(x))
    return out


def _texts(texts: Any, what: str) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint64], list[int]]:
    """Flat ids and starts of token texts (empty texts allowed)."""
    items = [texts] if isinstance(texts, np.ndarray) and texts.ndim == 1 else list(texts)
    seqs = [_ngram(t, f"{what} {i}") for i, t in enumerate(items)]
    lens = [len(s) for s in seqs]
    starts = np.zeros(len(seqs), dtype=np.uint64)
    if seqs:
        np.cumsum(lens[:-1], out=starts[1:])
    flat = np.fromiter((x for s in seqs for x in s), dtype=np.uint32, count=sum(lens))
    return flat, starts, lens


@dataclass(frozen=True)
class InfgramProb:
    """An ∞-gram probability: ``prob = count / total``, from the longest suffix of the
    context (``suffix_len`` tokens) that is followed by a token somewhere in the corpus."""

    prob: float
    count: int
    total: int
    suffix_len: int


# ------------------------------------------------------------------ the index


class CorpusIndex:
    """Suffix arrays over a token corpus: exact n-gram counts, positions, next-token
    distributions, ∞-gram probabilities, longest matches and maximal matching spans.

    Build one with :meth:`build`, open it again with :meth:`open`. The files are
    memory-mapped: opening is cheap, queries read only what they touch, and the operating
    system's page cache keeps what is used. Answers are exact and equal those of the
    streaming engine (:func:`memscore.ngrams.ngram_stats`): n-grams never span documents.

    Documents are numbered across the corpus in shard order (``doc_id``); positions also
    give the shard and the offset in the shard's tokens.

    Examples
    --------
    >>> import tempfile
    >>> from memscore.ngrams import Corpus, CorpusIndex
    >>> corpus = Corpus.from_tokens([1, 2, 3, 1, 2, 1, 2, 3], [0, 3, 5])
    >>> idx = CorpusIndex.build(corpus, tempfile.mkdtemp())
    >>> idx.count([[1, 2], [1, 2, 3], [3, 1]]).tolist()
    [3, 2, 0]
    >>> idx.longest_match([2, 3, 1, 2]).tolist()
    [2, 1, 3, 2]
    """

    def __init__(self, path: Path, manifest: dict[str, Any], core: Any, vocab: list[str] | None = None) -> None:
        self.path = path
        self._manifest = manifest
        self._core = core
        #: A word corpus's vocabulary: the word of each token id (None for token ids).
        self.vocab = vocab
        self._word_ids = None if vocab is None else {w: i for i, w in enumerate(vocab)}
        self._token_dtype = np.uint16 if all(p["token_width"] == 2 for p in manifest["parts"]) else np.uint32

    # -- build and open

    @classmethod
    def build(
        cls,
        corpus: Corpus,
        path: str | os.PathLike[str],
        *,
        executor: ExecutorLike = None,
        memory: int | None = None,
        verify: bool = True,
    ) -> CorpusIndex:
        """Build the index of ``corpus`` in the directory ``path`` and open it.

        Each shard becomes one part, or several parts of whole documents when ``memory``
        is given and the shard's build would not fit in it. Parts are built as separate
        tasks on ``executor`` and written atomically; a part already built from the same
        input (same file size and mtime, or same content for in-memory shards) is kept, so
        an interrupted build resumes where it stopped. The manifest is written last.

        Parameters
        ----------
        corpus : Corpus
            A token corpus (uint16 or uint32 ids; ``.npy`` shards, arrays, Megatron
            datasets), or a text corpus (in-memory texts, jsonl, whole text files:
            ``split="file"``, Parquet, Arrow, datasets), tokenized in the task by its
            normalizer, one part per shard (``memory`` does not cut them; their tokens are
            held in memory): a subword normalizer gives the tokenizer's ids, word
            normalization ids of one vocabulary of the corpus's words (a first pass over
            every shard; :attr:`vocab`).
        path : str or path
            The index directory (created if missing).
        executor : Executor or str, optional
            Who builds the parts (:func:`memscore.executors.as_executor`); Ray workers
            need the shard files by absolute path and ``path`` on a file system they share.
        memory : int, optional
            Bytes the builds running at once may hold: a part's build holds about 6 bytes
            a token (u16 ids; 12 for u32), and in-process executors run
            ``executor.workers()`` of them at once. Default: one part per shard.
        verify : bool, default True
            Check the checksums of the files when opening the result.

        Returns
        -------
        CorpusIndex
            The opened index.

        Raises
        ------
        TypeError
            ``corpus`` is not a :class:`Corpus`.
        ValueError
            Text files split by line or paragraph, a bad ``memory``, or a document longer
            than ``memory`` allows.
        memscore.CorpusError
            A shard cannot be read, or its document offsets are invalid.
        MemoryError
            A part's build does not fit in memory (pass ``memory`` to cut shards).
        """
        corpus = _check_corpus(corpus)
        if memory is not None and (isinstance(memory, bool) or not isinstance(memory, int) or memory <= 0):
            raise ValueError(f"memory: expected a positive number of bytes, got {memory!r}")
        ex = as_executor(executor)
        if not ex.in_process:
            relative = [f for sh in corpus._shards for f in sh.files if not os.path.isabs(f)]
            if relative:  # workers run in other directories
                raise ValueError(
                    f"corpus: workers outside this process need the shard files by absolute path, got {relative[0]!r}"
                )
        directory = Path(path).absolute()
        directory.mkdir(parents=True, exist_ok=True)
        (directory / MANIFEST).unlink(missing_ok=True)  # the index is incomplete until the new manifest lands
        cap = None if memory is None else memory // (ex.workers() if ex.in_process else 1)
        norm = _normalizer_desc(corpus)
        shards = corpus.shards()
        vocab: dict[str, int] | None = None
        vocab_sha = None
        if _is_words(corpus):
            # words get ids from one vocabulary over every shard (a first pass), sorted, so
            # the ids do not depend on who read which shard first
            ex.start()
            words: set[str] = set()
            for _, ws in ex.map(_words_task, [(sh,) for sh in shards], desc="vocabulary", unit="shards"):
                words.update(ws)
            vocab = {w: i for i, w in enumerate(sorted(words))}
            data = json.dumps(sorted(words), ensure_ascii=False).encode("utf-8")
            vocab_sha = hashlib.sha256(data).hexdigest()
            atomic_write(directory / VOCAB, lambda f: f.write(data))
        sources = [{**src, "normalizer": norm, "vocab": vocab_sha} for src in corpus.sources()]
        plans: list[_PartPlan] = []
        for i, sh in enumerate(shards):
            if corpus.kind == "text":  # one part: its size is known once tokenized, in the task
                plans.append(_PartPlan(f"part-{i:05d}-00000", i, 0, -1, 0, -1))
                continue
            tokens, offsets = _shard_arrays(sh._shards[0])
            plans.extend(_plan_shard(i, len(tokens), offsets, tokens.dtype.itemsize, cap))
        entries: list[dict[str, Any] | None] = [
            _done(directory, p, shards[p.shard], sources[p.shard], vocab) for p in plans
        ]
        todo = [k for k, e in enumerate(entries) if e is None]
        if todo:
            if not ex.in_process:
                ex.check_dir(str(directory), write=True)
            ex.start()
            shared_vocab = ex.share(vocab)
            args = [
                (ex.share(shards[plans[k].shard]), plans[k], str(directory), sources[plans[k].shard], shared_vocab)
                for k in todo
            ]
            units = [float(max(1, plans[k].token_end - plans[k].token_start)) for k in todo]
            for i, entry in ex.map(_build_task, args, units=units, desc="index", unit="tokens"):
                entries[todo[i]] = entry
        parts = [e for e in entries if e is not None]
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "memscore_version": _core.__version__,
            "corpus": {
                "kind": corpus.kind,
                "n_shards": corpus.n_shards,
                "shards": corpus.shard_names,
                "normalizer": norm,
                "vocab_sha256": vocab_sha,
                "sources": corpus.sources(),
                "checksum": _corpus_checksum(parts),
            },
            "n_tokens": sum(p["n_tokens"] for p in parts),
            "n_docs": sum(p["n_docs"] for p in parts),
            "parts": [{k: v for k, v in p.items() if k != "source"} for p in parts],
        }
        write_json(directory / MANIFEST, manifest)
        return cls.open(directory, verify=verify)

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, corpus: Corpus | None = None, verify: bool = True) -> CorpusIndex:
        """Open the index in ``path`` (memory-mapped).

        Parameters
        ----------
        path : str or path
            The index directory.
        corpus : Corpus, optional
            The corpus the index should be of: checked with :meth:`check_corpus`.
        verify : bool, default True
            Check every file against the checksums of the manifest (reads the whole index
            once). Without it only sizes and document starts are checked, and a damaged
            byte in a suffix array could change an answer.

        Returns
        -------
        CorpusIndex

        Raises
        ------
        memscore.CorpusIndexError
            No manifest, a manifest of another format or version, a missing or damaged part
            file (sizes, document starts, checksums).
        memscore.IndexMismatchError
            ``corpus`` is not the corpus the index was built from.
        """
        directory = Path(path)
        mpath = directory / MANIFEST
        try:
            manifest = json.loads(mpath.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CorpusIndexError(
                f"{mpath}: no manifest; {directory} is no corpus index, or its build did not finish "
                "(CorpusIndex.build resumes it)"
            ) from None
        except (OSError, ValueError) as exc:
            raise CorpusIndexError(f"{mpath}: cannot read the manifest ({exc})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise CorpusIndexError(
                f"{mpath}: expected format {FORMAT!r}, got {manifest.get('format') if isinstance(manifest, dict) else manifest!r}"
            )
        if manifest.get("version") != VERSION:
            raise CorpusIndexError(f"{mpath}: expected version {VERSION}, got {manifest.get('version')!r}")
        try:
            specs = []
            doc_base = 0
            for p in manifest["parts"]:
                c = p["checksums"]
                name = str(p["file"])
                if os.sep in name or name.startswith("."):
                    raise ValueError(f"part file {name!r} is not a plain name")
                specs.append(
                    (
                        str(directory / name),
                        int(p["shard"]),
                        doc_base,
                        int(p["token_start"]),
                        int(p["text_len"]),
                        int(p["n_tokens"]),
                        int(p["n_docs"]),
                        int(p["token_width"]),
                        int(p["sa_width"]),
                        int(p["separator"]),
                        (int(c["tokens"], 16), int(c["sa"], 16), int(c["docs"], 16)),
                    )
                )
                doc_base += int(p["n_docs"])
            if doc_base != manifest["n_docs"] or sum(s[5] for s in specs) != manifest["n_tokens"]:
                raise ValueError("n_docs / n_tokens differ from the sum over the parts")
        except (KeyError, TypeError, ValueError) as exc:
            raise CorpusIndexError(f"{mpath}: malformed manifest ({exc})") from None
        vocab = None
        if manifest["corpus"].get("vocab_sha256"):
            vpath = directory / VOCAB
            try:
                raw = vpath.read_bytes()
            except OSError as exc:
                raise CorpusIndexError(f"{vpath}: cannot read the vocabulary ({exc})") from None
            if hashlib.sha256(raw).hexdigest() != manifest["corpus"]["vocab_sha256"]:
                raise CorpusIndexError(f"{vpath}: checksum differs from the manifest's: the file is damaged")
            vocab = json.loads(raw)
        core = _core.SuffixIndexCore(specs, verify)
        idx = cls(directory, manifest, core, vocab)
        if corpus is not None:
            idx.check_corpus(corpus)
        return idx

    def check_corpus(self, corpus: Corpus, *, content: bool = False) -> None:
        """Check that the index was built from ``corpus``.

        Compares the shards (names, count), the files' size and mtime, and the content
        checksum of in-memory shards (and, with ``content``, of file shards too: reads
        them).

        Parameters
        ----------
        corpus : Corpus
            The corpus.
        content : bool, default False
            Also checksum the tokens of file shards.

        Raises
        ------
        memscore.IndexMismatchError
            The corpus differs from the one in the manifest (the message says where).
        """
        corpus = _check_corpus(corpus)
        want = self._manifest["corpus"]
        where = f"corpus index {self.path}"
        if corpus.shard_names != want["shards"]:
            raise IndexMismatchError(
                f"{where}: built from shards {want['shards'][:3]}{'...' if len(want['shards']) > 3 else ''}, "
                f"got {corpus.shard_names[:3]}{'...' if corpus.n_shards > 3 else ''}"
            )
        if corpus.kind != want.get("kind", "tokens") or _normalizer_desc(corpus) != want.get("normalizer"):
            raise IndexMismatchError(f"{where}: built from a {want.get('kind')} corpus with another tokenization")
        sources = corpus.sources()
        for i, (got, had) in enumerate(zip(sources, want["sources"], strict=True)):
            if got["files"] != had["files"]:
                raise IndexMismatchError(f"{where}: shard {i} ({got['shard']}) changed on disk since the build")
        shards = corpus.shards()
        cache: dict[int, tuple[np.ndarray, npt.NDArray[np.uint64]]] = {}
        for p in self._manifest["parts"]:
            if sources[p["shard"]]["files"] and not content:
                continue
            plan = _PartPlan(p["file"], p["shard"], p["doc_start"], p["doc_end"], p["token_start"], 0)
            if plan.shard not in cache:
                try:
                    cache = {plan.shard: _arrays(shards[plan.shard], self._word_ids)}  # a shard's parts are consecutive
                except KeyError as exc:  # a word the indexed corpus does not have
                    raise IndexMismatchError(
                        f"{where}: shard {plan.shard} holds the word {exc}, absent from the index"
                    ) from None
            tokens, offsets = cache[plan.shard]
            end = int(offsets[plan.doc_end]) if plan.doc_end < len(offsets) else len(tokens)
            got_sum = _core.sa_content_checksum(
                tokens[plan.token_start : end],
                np.ascontiguousarray(offsets[plan.doc_start : plan.doc_end] - np.uint64(plan.token_start)),
            )
            if f"{got_sum:016x}" != p["content_checksum"] or plan.doc_end - plan.doc_start != p["n_docs"]:
                raise IndexMismatchError(
                    f"{where}: shard {plan.shard} ({want['shards'][plan.shard]}) holds other tokens than the index"
                )
        if corpus.kind == "tokens" and sum(len(_shard_arrays(s._shards[0])[1]) for s in shards) != self.n_docs:
            raise IndexMismatchError(f"{where}: the corpus has another number of documents than the index")

    # -- what it is

    @property
    def manifest(self) -> dict[str, Any]:
        """A copy of the manifest."""
        out: dict[str, Any] = json.loads(json.dumps(self._manifest))
        return out

    @property
    def n_tokens(self) -> int:
        """Corpus tokens indexed."""
        return int(self._core.n_tokens)

    @property
    def n_docs(self) -> int:
        """Documents indexed."""
        return int(self._core.n_docs)

    @property
    def nbytes(self) -> int:
        """Bytes of the index files on disk."""
        return sum(
            (self.path / f"{p['file']}{ext}").stat().st_size
            for p in self._manifest["parts"]
            for ext in (".tokens", ".sa", ".docs")
        )

    def __repr__(self) -> str:
        return f"CorpusIndex({str(self.path)!r}, n_tokens={self.n_tokens}, n_docs={self.n_docs}, parts={len(self._manifest['parts'])})"

    # -- queries

    def stats(self, qs: QuerySet, corpus: Corpus) -> NgramStats:
        """The :class:`NgramStats` of a prepared query set, as a pass of the streaming
        engine over ``corpus`` would count them (``ngram_stats(..., index=)``).

        Parameters
        ----------
        qs : QuerySet
            Queries and pairs prepared for ``corpus``.
        corpus : Corpus
            The corpus of this index (checked: :meth:`check_corpus`).

        Returns
        -------
        NgramStats
            Counts, document frequencies and co-occurrences (co-occurrence intersects the
            documents of the two n-grams: it reads every occurrence of both).
        """
        self.check_corpus(corpus)
        qs.check_corpus(corpus)
        unknown_q, unknown_p = qs.unknown_queries, qs.unknown_pairs
        if qs._text is not None:  # words: ids from the index's vocabulary; an unknown word never occurs
            ids = self._word_ids or {}
            grams = [[ids.get(w, -1) for w in g] for g in qs._text]
            absent = np.array([min(g) < 0 for g in grams], dtype=bool)
            lens = np.array([len(g) for g in grams], dtype=np.int64)
            full = np.concatenate([[0], np.cumsum(lens)]).astype(np.uint64)
            flat = np.fromiter((max(x, 0) for g in grams for x in g), dtype=np.uint32, count=int(lens.sum()))
            unknown_q = np.flatnonzero(absent[: qs.n_queries])
            pa = qs._pair_idx
            unknown_p = np.flatnonzero(absent[pa[:, 0].astype(np.int64)] | absent[pa[:, 1].astype(np.int64)])
        else:
            assert qs._flat is not None and qs._starts is not None
            flat, full = qs._flat, qs._starts
        q = qs.n_queries
        qflat, qstarts = flat[: int(full[q])], full[:q]
        counts = np.asarray(self._core.count(qflat, qstarts), dtype=np.int64)
        df = np.asarray(self._core.doc_freq(qflat, qstarts), dtype=np.int64)
        co = np.zeros(qs.n_pairs, dtype=np.int64)
        for k, (a, b) in enumerate(qs._pair_idx.tolist()):
            da = self._core.doc_ids(flat[int(full[a]) : int(full[a + 1])].tolist())
            db = self._core.doc_ids(flat[int(full[b]) : int(full[b + 1])].tolist())
            co[k] = len(np.intersect1d(da, db, assume_unique=True))
        stats = NgramStats(
            counts=counts,
            doc_freq=df,
            cooccurrence=co,
            n_documents=self.n_docs,
            n_tokens=self.n_tokens,
            key=qs.key,
            shards=corpus.shard_names,
            sources=corpus.sources(),
        )
        stats.counts[unknown_q] = 0
        stats.doc_freq[unknown_q] = 0
        stats.cooccurrence[unknown_p] = 0
        return stats

    def count(self, queries: Sequence[Any] | npt.NDArray[np.integer[Any]]) -> npt.NDArray[np.int64]:
        """Occurrences of each query n-gram (overlapping occurrences count).

        Parameters
        ----------
        queries : sequence of sequences of int, or 2-D int array
            Token-id n-grams, n >= 1 (one per row of an array).

        Returns
        -------
        numpy.ndarray
            int64, shape ``(Q,)``.

        Raises
        ------
        TypeError, ValueError
            A query that is not a non-empty sequence of token ids in ``[0, 2**32)``.
        """
        flat, starts = self._queries(queries)
        out: npt.NDArray[np.int64] = self._core.count(flat, starts)
        return out

    def doc_freq(self, queries: Sequence[Any] | npt.NDArray[np.integer[Any]]) -> npt.NDArray[np.int64]:
        """Documents containing each query n-gram (reads every occurrence: slow for very
        frequent n-grams).

        Parameters
        ----------
        queries : sequence of sequences of int, or 2-D int array
            As in :meth:`count`.

        Returns
        -------
        numpy.ndarray
            int64, shape ``(Q,)``.
        """
        flat, starts = self._queries(queries)
        out: npt.NDArray[np.int64] = self._core.doc_freq(flat, starts)
        return out

    def doc_ids(self, ngram: Sequence[int]) -> npt.NDArray[np.int64]:
        """The documents containing ``ngram``, sorted.

        Parameters
        ----------
        ngram : sequence of int
            Token ids.

        Returns
        -------
        numpy.ndarray
            int64 document ids.
        """
        return np.asarray(self._core.doc_ids(self._one(ngram, "ngram")), dtype=np.int64)

    def _queries(self, queries: Any) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint64]]:
        if isinstance(queries, (str, bytes)):
            raise TypeError("queries: expected a list of token-id n-grams, got a str")
        if isinstance(queries, np.ndarray):
            if queries.ndim != 2:
                raise ValueError(f"queries: expected a 2-D array (one n-gram per row), got shape {queries.shape}")
            queries = queries.tolist()
        flat, starts = _token_query_arrays(list(queries), [], [])
        return flat, starts[:-1]

    def _one(self, ngram: Any, what: str, *, empty: bool = False) -> list[int]:
        q = _ngram(ngram, what)
        if not q and not empty:
            raise ValueError(f"{what}: an n-gram needs at least one token, got none")
        return q

    def positions(self, ngram: Sequence[int], *, limit: int | None = None) -> pl.DataFrame:
        """Where ``ngram`` occurs.

        Parameters
        ----------
        ngram : sequence of int
            Token ids, n >= 1.
        limit : int, optional
            At most this many occurrences (the first ones in suffix-array order, part by
            part); default: all.

        Returns
        -------
        polars.DataFrame
            Columns ``doc_id`` (corpus numbering), ``offset`` (token offset in the
            document), ``shard`` and ``shard_offset`` (token offset in the shard's tokens),
            int64, sorted by document and offset.
        """
        q = self._one(ngram, "ngram")
        lim = _NO_LIMIT if limit is None else _positive(limit, "limit", zero=True)
        doc, off, shard, soff = self._core.positions(q, lim)
        return _occurrences(doc, off, shard, soff)

    def document(self, doc_id: int) -> npt.NDArray[np.unsignedinteger[Any]]:
        """The tokens of document ``doc_id`` (corpus numbering).

        Parameters
        ----------
        doc_id : int
            ``0 <= doc_id < n_docs``.

        Returns
        -------
        numpy.ndarray
            uint16 (every part holds 2-byte ids) or uint32 token ids.

        Raises
        ------
        ValueError
            ``doc_id`` out of range.
        """
        if isinstance(doc_id, bool) or not isinstance(doc_id, (int, np.integer)) or not 0 <= doc_id < self.n_docs:
            raise ValueError(f"doc_id: expected an int in [0, {self.n_docs}), got {doc_id!r}")
        out: npt.NDArray[np.unsignedinteger[Any]] = self._core.document(int(doc_id)).astype(self._token_dtype)
        return out

    def next_tokens(self, prefix: Sequence[int]) -> pl.DataFrame:
        """The tokens that follow ``prefix`` within a document, with their counts.

        Parameters
        ----------
        prefix : sequence of int
            Token ids; empty gives the unigram counts.

        Returns
        -------
        polars.DataFrame
            Columns ``token`` and ``count`` (int64), by token id. The counts add up to
            the occurrences of ``prefix`` that a token follows (not those ending a document).
        """
        toks, counts = self._core.next_tokens(self._one(prefix, "prefix", empty=True))
        return pl.DataFrame({"token": toks.astype(np.int64), "count": counts})

    def infgram_prob(self, context: Sequence[int], token: int) -> InfgramProb:
        """The ∞-gram probability of ``token`` after ``context`` (Liu et al. 2024).

        The longest suffix of ``context`` that some token follows in the corpus (within a
        document) gives ``prob = count(suffix + token) / total``, where ``total`` counts
        the occurrences of the suffix followed by a token, so the probabilities of every
        token add up to 1. An empty suffix gives the unigram frequency.

        Parameters
        ----------
        context : sequence of int
            Token ids (may be empty).
        token : int
            The next token.

        Returns
        -------
        InfgramProb
            ``prob`` (NaN for an empty corpus), ``count``, ``total``, ``suffix_len``.
        """
        ctx = self._one(context, "context", empty=True)
        (tok,) = _ngram([token], "token")
        count, total, k = self._core.infgram(ctx, tok)
        return InfgramProb(count / total if total else math.nan, int(count), int(total), int(k))

    def longest_match(self, tokens: Sequence[int]) -> npt.NDArray[np.int64]:
        """For each position of ``tokens``, the length of the longest n-gram starting there
        that occurs in the corpus (infini-gram's ``creativity``).

        Parameters
        ----------
        tokens : sequence of int
            A token text (may be empty).

        Returns
        -------
        numpy.ndarray
            int64, one length per token.
        """
        return self.longest_matches([tokens])[0]

    def longest_matches(self, texts: Sequence[Sequence[int]]) -> list[npt.NDArray[np.int64]]:
        """:meth:`longest_match` of many texts, in parallel.

        Parameters
        ----------
        texts : sequence of sequences of int
            Token texts.

        Returns
        -------
        list of numpy.ndarray
            One int64 array per text.
        """
        flat, starts, lens = _texts(texts, "text")
        lm = self._core.longest_match(flat, starts).astype(np.int64)
        return np.split(lm, np.cumsum(lens[:-1])) if lens else []

    def spans(
        self,
        tokens: Sequence[int],
        *,
        min_len: int = 1,
        max_count: int | None = None,
        n_docs: int = 3,
    ) -> pl.DataFrame:
        """The maximal matching spans of ``tokens``: the n-grams ``tokens[start:end]`` that
        occur in the corpus and cannot be extended left or right and still occur
        (OLMoTrace's span step, without its reranking).

        Parameters
        ----------
        tokens : sequence of int
            A token text.
        min_len : int, default 1
            Keep spans at least this long.
        max_count : int, optional
            Keep spans that occur at most this often (common phrases out).
        n_docs : int, default 3
            Occurrences listed per span.

        Returns
        -------
        polars.DataFrame
            One row per span, by start: ``start``, ``end``, ``length``, ``count`` (int64),
            ``doc_ids`` and ``offsets`` (lists of int64: up to ``n_docs`` occurrences).
        """
        q = self._one(tokens, "tokens", empty=True)
        ml = _positive(min_len, "min_len")
        mc = _NO_LIMIT if max_count is None else _positive(max_count, "max_count", zero=True)
        nd = _positive(n_docs, "n_docs", zero=True)
        starts, ends, counts, which, (doc, off, _, _) = self._core.spans(q, ml, mc, nd)
        k = len(starts)
        doc_lists: list[list[int]] = [[] for _ in range(k)]
        off_lists: list[list[int]] = [[] for _ in range(k)]
        for w, d, o in zip(which.tolist(), doc.tolist(), off.tolist(), strict=True):
            doc_lists[w].append(d)
            off_lists[w].append(o)
        return pl.DataFrame(
            {
                "start": starts.astype(np.int64),
                "end": ends.astype(np.int64),
                "length": (ends - starts).astype(np.int64),
                "count": counts,
                "doc_ids": pl.Series(doc_lists, dtype=pl.List(pl.Int64)),
                "offsets": pl.Series(off_lists, dtype=pl.List(pl.Int64)),
            }
        )

    def novelty(self, tokens: Sequence[int], n: int) -> npt.NDArray[np.float64]:
        """The share of the k-grams of ``tokens`` absent from the corpus, for k = 1..n.

        Parameters
        ----------
        tokens : sequence of int
            A token text.
        n : int
            The largest k.

        Returns
        -------
        numpy.ndarray
            float64 ``(n,)``: entry ``k - 1`` for k-grams; NaN where the text has no k-gram.
        """
        nn = _positive(n, "n")
        return novelty_from_matches(self.longest_match(tokens), nn)


def novelty_from_matches(lm: npt.NDArray[np.int64], n: int) -> npt.NDArray[np.float64]:
    """n-novelty from the longest match at each position: the k-gram at ``i`` occurs in
    the corpus exactly when ``lm[i] >= k``.

    Parameters
    ----------
    lm : numpy.ndarray
        Longest match lengths (:meth:`CorpusIndex.longest_match`).
    n : int
        The largest k.

    Returns
    -------
    numpy.ndarray
        float64 ``(n,)``.
    """
    out = np.full(n, np.nan)
    L = len(lm)
    for k in range(1, min(n, L) + 1):
        out[k - 1] = float(np.mean(lm[: L - k + 1] < k))
    return out


def covered_by_matches(lm: npt.NDArray[np.int64], min_len: int) -> npt.NDArray[np.bool_]:
    """Which tokens lie in a corpus match of at least ``min_len`` tokens: token ``i`` does
    when some ``j <= i`` has ``lm[j] >= min_len`` and ``j + lm[j] > i`` (the union of the
    maximal spans at least ``min_len`` long).

    Parameters
    ----------
    lm : numpy.ndarray
        Longest match lengths (:meth:`CorpusIndex.longest_match`).
    min_len : int
        The shortest match that counts.

    Returns
    -------
    numpy.ndarray
        bool, one per token.
    """
    lm = np.asarray(lm, dtype=np.int64)
    pos = np.arange(len(lm), dtype=np.int64)
    ends = np.where(lm >= min_len, pos + lm, 0)
    out: npt.NDArray[np.bool_] = np.maximum.accumulate(ends) > pos if len(lm) else np.zeros(0, dtype=bool)
    return out


def _positive(x: Any, name: str, *, zero: bool = False) -> int:
    lo = 0 if zero else 1
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < lo:
        raise ValueError(f"{name}: expected an int >= {lo}, got {x!r}")
    return int(x)


def _occurrences(doc: Any, off: Any, shard: Any, soff: Any) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "doc_id": doc.astype(np.int64),
            "offset": off.astype(np.int64),
            "shard": shard.astype(np.int64),
            "shard_offset": soff.astype(np.int64),
        }
    )
