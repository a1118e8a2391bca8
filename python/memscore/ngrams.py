"""Corpus n-gram counting: occurrences, document frequency and document co-occurrence.

A :class:`Corpus` is a list of shards (token arrays, token ``.npy`` files, jsonl files,
text files, in-memory texts). :func:`ngram_stats` streams every shard once, in parallel on
memscore's thread pool with the GIL released, and counts many query n-grams and n-gram
pairs at a time:

- ``counts[q]``: occurrences of query n-gram ``q`` (overlapping occurrences count);
- ``doc_freq[q]``: documents containing ``q`` at least once;
- ``cooccurrence[p]``: documents containing both n-grams of pair ``p`` (they may have
  different lengths; a pair of an n-gram with itself counts the documents containing it).

N-grams never span two documents. Text corpora and text queries go through the same
:class:`Normalizer`, so ``"The Cat!"`` as a query matches ``the cat`` in the corpus.
Counts of separate shards add up: :meth:`NgramStats.merge` sums partial results, which
:meth:`NgramStats.write_parquet` stores as Parquet.
"""

from __future__ import annotations

import glob as _glob
import hashlib
import itertools
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import numpy as np
import numpy.typing as npt

from . import _core
from ._io import atomic_write
from .errors import CorpusError

__all__ = [
    "ENGLISH_STOPWORDS",
    "Corpus",
    "NgramStats",
    "Normalizer",
    "TOKEN_OFFSETS_SUFFIX",
    "cooccurrence",
    "count_ngrams",
    "document_frequency",
    "ngram_stats",
]

#: The English stopword list shipped with memscore (normalized form: lowercase, no
#: apostrophes). Written for memscore, Apache-2.0; see ``stopwords_en.txt`` in the core crate.
ENGLISH_STOPWORDS: frozenset[str] = frozenset(_core.english_stopword_list())

#: Sidecar of a token shard ``NAME.npy``: ``NAME.offsets.npy``, the start index of each document.
TOKEN_OFFSETS_SUFFIX = ".offsets.npy"

PathLike = Union[str, "os.PathLike[str]"]
Paths = Union[PathLike, Iterable[PathLike]]

_JSONL_EXT = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".jsonl.zstd", ".ndjson", ".json.gz", ".json")
_TEXT_EXT = (".txt", ".txt.gz", ".txt.zst", ".txt.zstd", ".text", ".md")


# ------------------------------------------------------------------ normalizer


class Normalizer:
    """Text -> tokens, identical for corpus text and query text.

    Word mode (default), in this order: split on whitespace (the characters Python's
    ``str.split()`` splits on); with ``strip_punctuation`` delete every character whose
    Unicode general category is punctuation (P*) or symbol (S*) — deleted, not replaced by a
    space, so ``"don't" -> "dont"``, ``"well-known" -> "wellknown"``, ``"$5" -> "5"``; with
    ``lowercase`` apply Unicode lowercase (``str.lower()``); drop empty words; drop
    stopwords (``None``, ``"english"`` for :data:`ENGLISH_STOPWORDS`, or your own words,
    which are normalized the same way).

    Subword mode (:meth:`from_tokenizer`): the tokens of a HuggingFace ``tokenizer.json``.
    """

    def __init__(
        self,
        lowercase: bool = True,
        strip_punctuation: bool = True,
        stopwords: None | str | Iterable[str] = None,
    ) -> None:
        for name, v in (("lowercase", lowercase), ("strip_punctuation", strip_punctuation)):
            if not isinstance(v, bool):
                raise TypeError(f"Normalizer: {name} must be a bool, got {type(v).__name__}")
        if stopwords is None:
            words: list[str] = []
        elif isinstance(stopwords, str):
            if stopwords != "english":
                raise ValueError(
                    f"Normalizer: stopwords must be None, 'english' or an iterable of str, got {stopwords!r}"
                )
            words = sorted(ENGLISH_STOPWORDS)
        else:
            words = list(stopwords)
            bad = [w for w in words if not isinstance(w, str)]
            if bad:
                raise TypeError(f"Normalizer: stopwords must be strings, got {type(bad[0]).__name__}")
        self.lowercase = lowercase
        self.strip_punctuation = strip_punctuation
        self._stop_arg = None if stopwords is None else ("english" if isinstance(stopwords, str) else "custom")
        self._core = _core.NormalizerCore(lowercase, strip_punctuation, words)
        self._subword: Any = None  # _core.SubwordCore, for from_tokenizer
        self._tokenizer_path: str | None = None

    @classmethod
    def from_tokenizer(cls, path: PathLike) -> "Normalizer":
        """Subword tokens of a HuggingFace ``tokenizer.json`` (no special tokens added).

        The file is loaded by the Rust ``tokenizers`` crate inside memscore's extension (no
        Python package needed); corpora with this normalizer are tokenized document by
        document inside the parallel counting pass, and queries are n-grams of its tokens.
        """
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"Normalizer.from_tokenizer: no tokenizer file at {p}")
        self = cls(lowercase=False, strip_punctuation=False)
        try:
            self._subword = _core.SubwordCore(str(p))
        except ValueError as exc:
            raise ValueError(f"Normalizer.from_tokenizer: {exc}") from exc
        self._tokenizer_path = str(p.resolve())
        return self

    @property
    def is_subword(self) -> bool:
        """True for a tokenizer.json normalizer."""
        return self._subword is not None

    @property
    def stopwords(self) -> frozenset[str]:
        """The (normalized) stopwords removed from the token stream."""
        return frozenset(self._core.stopwords())

    def __call__(self, text: str) -> list[str]:
        """Normalized tokens of ``text``, in order."""
        if not isinstance(text, str):
            raise TypeError(f"Normalizer: expected a str, got {type(text).__name__}")
        if self._subword is not None:
            return self._subword.tokens(text)
        return self._core.normalize(text)

    def batch(self, texts: Sequence[str]) -> list[list[str]]:
        """Normalized tokens of each text (in parallel, GIL released)."""
        texts = list(texts)
        bad = [t for t in texts if not isinstance(t, str)]
        if bad:
            raise TypeError(f"Normalizer.batch: expected strings, got {type(bad[0]).__name__}")
        if self._subword is not None:
            return self._subword.batch_tokens(texts)
        return self._core.batch(texts)

    def describe(self) -> dict[str, Any]:
        """The settings, as plain data (part of the key of a partial result)."""
        if self._subword is not None:
            with open(self._tokenizer_path or "", "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            return {"tokenizer_sha256": digest}
        return {
            "lowercase": self.lowercase,
            "strip_punctuation": self.strip_punctuation,
            "stopwords": sorted(self.stopwords),
        }

    def __repr__(self) -> str:
        if self._subword is not None:
            return f"Normalizer.from_tokenizer({self._tokenizer_path!r})"
        stop = "None" if self._stop_arg is None else ("'english'" if self._stop_arg == "english" else f"<{len(self.stopwords)} words>")
        return f"Normalizer(lowercase={self.lowercase}, strip_punctuation={self.strip_punctuation}, stopwords={stop})"


# ------------------------------------------------------------------ corpus


@dataclass(frozen=True)
class _Shard:
    kind: str  # "tokens", "texts", "jsonl", "text"
    name: str
    payload: Any = field(repr=False)  # (tokens, offsets) | list[str] | path
    option: str = ""  # text field / split
    nbytes: int = 0


def _expand(paths: Paths, exts: tuple[str, ...], what: str) -> list[Path]:
    items: list[PathLike]
    if isinstance(paths, (str, os.PathLike)):
        items = [paths]
    else:
        items = list(paths)
    out: list[Path] = []
    for it in items:
        if not isinstance(it, (str, os.PathLike)):
            raise TypeError(f"{what}: expected paths (str or Path), got {type(it).__name__}")
        s = os.fspath(it)
        p = Path(s)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.is_file() and q.name.endswith(exts))
            found = [q for q in found if not q.name.endswith(TOKEN_OFFSETS_SUFFIX)]
            if not found:
                raise CorpusError(f"{what}: no files ending in {', '.join(exts)} in directory {p}")
            out.extend(found)
        elif any(ch in s for ch in "*?["):
            found = sorted(Path(q) for q in _glob.glob(s, recursive=True) if Path(q).is_file())
            found = [q for q in found if not q.name.endswith(TOKEN_OFFSETS_SUFFIX)]
            if not found:
                raise CorpusError(f"{what}: no file matches {s!r}")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise CorpusError(f"{what}: {p}: no such file or directory")
    if not out:
        raise ValueError(f"{what}: no paths given")
    return out


def _check_on_error(on_error: str) -> bool:
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error: expected 'raise' or 'skip', got {on_error!r}")
    return on_error == "skip"


def _as_normalizer(normalizer: Normalizer | None) -> Normalizer:
    if normalizer is None:
        return Normalizer()
    if not isinstance(normalizer, Normalizer):
        raise TypeError(f"normalizer: expected a memscore.ngrams.Normalizer, got {type(normalizer).__name__}")
    return normalizer


def _streamable(a: Any, kinds: str, sizes: tuple[int, ...]) -> bool:
    """A memory-mapped 1-D little-endian array of these kinds and item sizes: the engine
    can read its file directly."""
    return (
        isinstance(a, np.memmap)
        and a.ndim == 1
        and a.dtype.kind in kinds
        and a.dtype.itemsize in sizes
        and a.dtype.newbyteorder("<") == a.dtype
    )


def _token_array(tokens: Any, name: str) -> np.ndarray:
    a = np.asarray(tokens)
    if a.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D token array, got shape {a.shape}")
    if a.dtype in (np.uint16, np.uint32):
        return a if a.flags.c_contiguous else np.ascontiguousarray(a)
    if a.size == 0 and a.dtype == np.float64:  # np.asarray([])
        return np.zeros(0, dtype=np.uint32)
    if not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{name}: expected uint16 or uint32 token ids, got dtype {a.dtype}")
    if a.size and (a.min() < 0 or a.max() > np.iinfo(np.uint32).max):
        raise CorpusError(
            f"{name}: token ids must fit uint32 (0 .. 4294967295), got values in [{a.min()}, {a.max()}]"
        )
    return np.ascontiguousarray(a, dtype=np.uint32)


def _offsets_array(offsets: Any, name: str) -> np.ndarray:
    a = np.asarray(offsets)
    if a.ndim != 1:
        raise ValueError(f"{name}: expected 1-D document offsets, got shape {a.shape}")
    if a.size == 0:
        return np.zeros(0, dtype=np.uint64)
    if not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{name}: expected integer document offsets, got dtype {a.dtype}")
    if a.min() < 0:
        raise CorpusError(f"{name}: document offsets must not be negative, got {a.min()}")
    return np.ascontiguousarray(a, dtype=np.uint64)


class Corpus:
    """A list of shards, all tokens (``kind == "tokens"``) or all text (``kind == "text"``).

    Build one with :meth:`from_tokens`, :meth:`from_token_files`, :meth:`from_jsonl`,
    :meth:`from_text_files` or :meth:`from_texts`; combine corpora of one kind with ``+``.
    """

    def __init__(self, shards: list[_Shard], kind: Literal["tokens", "text"], normalizer: Normalizer | None, skip_errors: bool = False) -> None:
        self._shards = list(shards)
        self.kind = kind
        self.normalizer = normalizer
        self.skip_errors = skip_errors

    # -- constructors

    @classmethod
    def from_tokens(cls, tokens: Any, doc_offsets: Any, *, name: str = "<tokens>") -> "Corpus":
        """One shard of token ids: a flat uint16/uint32 array and the start index of each
        document (document ``d`` is ``tokens[doc_offsets[d]:doc_offsets[d+1]]``, the last one
        runs to the end). Offsets must start at 0 and never decrease; equal offsets make
        empty documents. Other integer dtypes are converted to uint32 when they fit."""
        t = _token_array(tokens, name)
        o = _offsets_array(doc_offsets, name)
        return cls([_Shard("tokens", name, (t, o), "", t.nbytes)], "tokens", None)

    @classmethod
    def from_token_files(cls, paths: Paths) -> "Corpus":
        """Token shards stored as ``NAME.npy`` (1-D uint16/uint32) next to
        ``NAME.offsets.npy`` (document start offsets, any integer dtype). Little-endian
        files (tokens, and 32/64-bit offsets) are read by the engine a few MB at a time, so
        memory does not grow with the shard; others are loaded and converted.
        ``paths``: a file, a directory (every ``*.npy`` but the sidecars), a glob, or a list."""
        shards = []
        for p in _expand(paths, (".npy",), "Corpus.from_token_files"):
            if p.name.endswith(TOKEN_OFFSETS_SUFFIX):
                continue  # a sidecar, named in a list or matched by a glob
            side = p.with_name(p.name[: -len(".npy")] + TOKEN_OFFSETS_SUFFIX)
            if not side.is_file():
                raise CorpusError(f"{p}: missing document-offsets sidecar {side.name}")
            try:
                t = np.load(p, mmap_mode="r")
                o = np.load(side, mmap_mode="r")
            except Exception as exc:
                raise CorpusError(f"{p}: cannot read token shard: {exc}") from exc
            if t.dtype.kind != "u" or t.dtype.itemsize not in (2, 4):
                raise CorpusError(f"{p}: expected uint16 or uint32 tokens, got {t.dtype}")
            if _streamable(t, "u", (2, 4)) and _streamable(o, "iu", (4, 8)):
                # little-endian bodies: the engine reads both files piece by piece, so
                # memory grows with neither the tokens nor the documents
                tokens: Any = (str(p), int(t.offset), t.dtype.itemsize, int(t.shape[0]))
                offs: Any = (str(side), int(o.offset), o.dtype.itemsize, o.dtype.kind == "i", int(o.shape[0]))
            else:
                offs = _offsets_array(np.asarray(o), str(side))
                if _streamable(t, "u", (2, 4)):
                    tokens = (str(p), int(t.offset), t.dtype.itemsize, int(t.shape[0]))
                else:
                    tokens = _token_array(np.asarray(t), str(p))
            shards.append(_Shard("tokens", str(p), (tokens, offs), "", int(t.nbytes)))
        return cls(shards, "tokens", None)

    @classmethod
    def from_jsonl(
        cls,
        paths: Paths,
        text_field: str = "text",
        normalizer: Normalizer | None = None,
        *,
        on_error: Literal["raise", "skip"] = "raise",
    ) -> "Corpus":
        """jsonl shards (``.jsonl``, ``.jsonl.gz``, ``.jsonl.zst``), one JSON object per line,
        the document in ``text_field``. Blank lines are ignored. A malformed line, a missing
        or non-string field or invalid UTF-8 raises :class:`memscore.CorpusError` naming file
        and line; with ``on_error="skip"`` such lines are skipped and counted
        (``NgramStats.n_skipped``). ``paths``: a file, a directory, a glob, or a list."""
        if not isinstance(text_field, str) or not text_field:
            raise ValueError(f"text_field: expected a non-empty str, got {text_field!r}")
        skip = _check_on_error(on_error)
        files = _expand(paths, _JSONL_EXT, "Corpus.from_jsonl")
        shards = [_Shard("jsonl", str(p), str(p), text_field, p.stat().st_size) for p in files]
        return cls(shards, "text", _as_normalizer(normalizer), skip)

    @classmethod
    def from_text_files(
        cls,
        paths: Paths,
        split: Literal["file", "paragraph", "line"] = "file",
        normalizer: Normalizer | None = None,
        *,
        on_error: Literal["raise", "skip"] = "raise",
    ) -> "Corpus":
        """UTF-8 text files (optionally ``.gz`` / ``.zst``) cut into documents: the whole file
        (``"file"``), runs of non-blank lines (``"paragraph"``), or each non-blank line
        (``"line"``)."""
        if split not in ("file", "paragraph", "line"):
            raise ValueError(f"split: expected 'file', 'paragraph' or 'line', got {split!r}")
        skip = _check_on_error(on_error)
        files = _expand(paths, _TEXT_EXT, "Corpus.from_text_files")
        shards = [_Shard("text", str(p), str(p), split, p.stat().st_size) for p in files]
        return cls(shards, "text", _as_normalizer(normalizer), skip)

    @classmethod
    def from_texts(cls, texts: Sequence[str], normalizer: Normalizer | None = None) -> "Corpus":
        """In-memory documents, one string each."""
        if isinstance(texts, str):
            raise TypeError("Corpus.from_texts: expected a sequence of str, got a single str")
        texts = list(texts)
        bad = [t for t in texts if not isinstance(t, str)]
        if bad:
            raise TypeError(f"Corpus.from_texts: expected strings, got {type(bad[0]).__name__}")
        nbytes = sum(len(t) if t.isascii() else len(t.encode("utf-8", "surrogatepass")) for t in texts)  # UTF-8 bytes, as the engine counts
        return cls([_Shard("texts", "<texts>", texts, "", nbytes)], "text", _as_normalizer(normalizer))

    # -- shards

    @property
    def n_shards(self) -> int:
        return len(self._shards)

    @property
    def shard_names(self) -> list[str]:
        """A name per shard (the file path for file shards)."""
        return [s.name for s in self._shards]

    @property
    def nbytes(self) -> int:
        """Bytes on disk (files) or in memory (tokens, texts) of all shards."""
        return sum(s.nbytes for s in self._shards)

    def shards(self) -> list["Corpus"]:
        """One single-shard corpus per shard (to count shards separately and merge)."""
        return [Corpus([s], self.kind, self.normalizer, self.skip_errors) for s in self._shards]

    def __len__(self) -> int:
        return len(self._shards)

    def __add__(self, other: "Corpus") -> "Corpus":
        if not isinstance(other, Corpus) or other.kind != self.kind:
            return NotImplemented
        if self.kind == "text" and other.normalizer is not None and self.normalizer is not None:
            if self.normalizer.describe() != other.normalizer.describe():
                raise ValueError("Corpus + Corpus: the two corpora use different normalizers")
        return Corpus(self._shards + other._shards, self.kind, self.normalizer, self.skip_errors or other.skip_errors)

    def __repr__(self) -> str:
        return f"Corpus(kind={self.kind!r}, shards={len(self._shards)}, nbytes={self.nbytes})"


# ------------------------------------------------------------------ results


@dataclass
class NgramStats:
    """Counts of one pass: arrays in the order of the queries / pairs given."""

    counts: npt.NDArray[np.int64]
    doc_freq: npt.NDArray[np.int64]
    cooccurrence: npt.NDArray[np.int64]
    n_documents: int
    n_tokens: int
    n_skipped: int = 0
    key: str = ""
    shards: list[str] = field(default_factory=list)

    @classmethod
    def merge(cls, parts: Sequence["NgramStats"]) -> "NgramStats":
        """Sum partial results of the same queries and pairs (refuses mismatched keys)."""
        parts = list(parts)
        if not parts:
            raise ValueError("NgramStats.merge: need at least one partial result")
        first = parts[0]
        for k, p in enumerate(parts[1:], 1):
            if p.key != first.key:
                raise ValueError(
                    f"NgramStats.merge: part {k} counts other queries/pairs (key {p.key[:12]}…) "
                    f"than part 0 (key {first.key[:12]}…)"
                )
            if p.counts.shape != first.counts.shape or p.cooccurrence.shape != first.cooccurrence.shape:
                raise ValueError(f"NgramStats.merge: part {k} has other array shapes than part 0")
        return cls(
            counts=np.asarray(np.sum([p.counts for p in parts], axis=0, dtype=np.int64)).reshape(first.counts.shape),
            doc_freq=np.asarray(np.sum([p.doc_freq for p in parts], axis=0, dtype=np.int64)).reshape(first.doc_freq.shape),
            cooccurrence=np.asarray(np.sum([p.cooccurrence for p in parts], axis=0, dtype=np.int64)).reshape(first.cooccurrence.shape),
            n_documents=sum(p.n_documents for p in parts),
            n_tokens=sum(p.n_tokens for p in parts),
            n_skipped=sum(p.n_skipped for p in parts),
            key=first.key,
            shards=[s for p in parts for s in p.shards],
        )

    def __add__(self, other: "NgramStats") -> "NgramStats":
        return NgramStats.merge([self, other])

    def write_parquet(self, path: PathLike) -> None:
        """Write as Parquet, atomically (temporary file, fsync, rename). See README
        "Partial results" for the layout."""
        import polars as pl

        q, p = len(self.counts), len(self.cooccurrence)
        df = pl.DataFrame(
            {
                "kind": ["query"] * q + ["pair"] * p,
                "index": np.concatenate([np.arange(q), np.arange(p)]).astype(np.int64),
                "count": pl.Series(list(self.counts) + [None] * p, dtype=pl.Int64),
                "doc_freq": pl.Series(list(self.doc_freq) + [None] * p, dtype=pl.Int64),
                "cooccurrence": pl.Series([None] * q + list(self.cooccurrence), dtype=pl.Int64),
            }
        )
        meta = {
            "memscore.ngrams.format": "1",
            "memscore.ngrams.key": self.key,
            "memscore.ngrams.n_documents": str(self.n_documents),
            "memscore.ngrams.n_tokens": str(self.n_tokens),
            "memscore.ngrams.n_skipped": str(self.n_skipped),
            "memscore.ngrams.n_queries": str(q),
            "memscore.ngrams.n_pairs": str(p),
            "memscore.ngrams.shards": json.dumps(self.shards),
        }
        atomic_write(Path(path), lambda f: df.write_parquet(f, metadata=meta))

    @classmethod
    def read_parquet(cls, path: PathLike) -> "NgramStats":
        """Read a file written by :meth:`write_parquet`."""
        import polars as pl

        try:
            meta = pl.read_parquet_metadata(os.fspath(path))
            df = pl.read_parquet(os.fspath(path))
        except Exception as exc:
            raise CorpusError(f"{path}: cannot read partial n-gram result: {exc}") from exc
        if meta.get("memscore.ngrams.format") != "1":
            raise CorpusError(f"{path}: not a memscore n-gram partial result (format key missing)")
        q = df.filter(pl.col("kind") == "query").sort("index")
        p = df.filter(pl.col("kind") == "pair").sort("index")
        return cls(
            counts=q["count"].to_numpy().astype(np.int64),
            doc_freq=q["doc_freq"].to_numpy().astype(np.int64),
            cooccurrence=p["cooccurrence"].to_numpy().astype(np.int64),
            n_documents=int(meta["memscore.ngrams.n_documents"]),
            n_tokens=int(meta["memscore.ngrams.n_tokens"]),
            n_skipped=int(meta.get("memscore.ngrams.n_skipped", "0")),
            key=meta["memscore.ngrams.key"],
            shards=json.loads(meta.get("memscore.ngrams.shards", "[]")),
        )


# ------------------------------------------------------------------ queries


def _text_ngrams(norm: Normalizer, items: list[Any], what: str) -> list[list[str]]:
    bad = [i for i, s in enumerate(items) if not isinstance(s, str)]
    if bad:
        raise TypeError(
            f"{what} {bad[0]}: a text corpus takes str queries, got {type(items[bad[0]]).__name__}"
        )
    toks = norm.batch(items)
    for i, t in enumerate(toks):
        if not t:
            raise ValueError(f"{what} {i}: {items[i]!r} normalizes to zero tokens (empty, punctuation or stopwords only)")
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
        toks = _text_ngrams(norm, qs, "query") + _text_ngrams(norm, pa, "pair (first)") + _text_ngrams(norm, pb, "pair (second)")
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


def query_key(corpus: Corpus, queries: Sequence[Any] | None = None, pairs: Sequence[tuple[Any, Any]] | None = None) -> str:
    """The key a partial result of these queries and pairs on this kind of corpus carries."""
    return _prepare(corpus, queries, pairs).key
