"""Megatron / GPT-NeoX ``MMapIndexedDataset`` files, read in place: the ``.idx`` header, the
``.bin`` (whole, or in the numbered parts Pythia's preshuffled Pile ships), and sequence
rows by index.

The ``.idx`` layout (little-endian): the magic ``MMIDIDX\\x00\\x00``, a u64 version (1),
a u8 dtype code, a u64 sequence count ``n``, a u64 document-index length ``m``, then
``sizes`` (``n`` int32: tokens per sequence), ``pointers`` (``n`` int64: byte offset of each
sequence in the ``.bin``) and the document index (``m`` int64: the first sequence of each
document, then ``n``). Sequences are the rows a training run reads (Pythia: 2,049 tokens
each, 1,024 per step); documents group consecutive sequences.

Opening checks what is cheap (magic, version, dtype code, the ``.idx`` size the counts
imply, the ``.bin`` size a whole number of tokens); the arrays are checked by the n-gram
engine as it streams them (:mod:`memscore_core::ngram::token_file`) and row by row by
:meth:`MegatronFiles.rows`, so a damaged file gives a :class:`~memscore.CorpusError`
naming it, never a wrong count.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import CorpusError

__all__ = ["DTYPE_CODES", "HEADER_BYTES", "MAGIC", "MegatronFiles", "PartedTokens", "find_prefixes", "open_megatron"]

MAGIC = b"MMIDIDX\x00\x00"
HEADER_BYTES = 34
#: Megatron-LM / GPT-NeoX dtype codes; 9 and 10 are the uint32 / uint64 codes some forks
#: (PaddleNLP) add. Codes 6 and 7 are floats whose width differs between implementations
#: (fairseq and GPT-NeoX: both float64; Megatron-LM core: 6 float64, 7 float32): it is
#: taken from the ``.bin`` size.
DTYPE_CODES: dict[int, str] = {
    1: "uint8",
    2: "int8",
    3: "int16",
    4: "int32",
    5: "int64",
    6: "float",
    7: "float",
    8: "uint16",
    9: "uint32",
    10: "uint64",
}
_PART = re.compile(r"^(?P<stem>.+)-(?P<k>\d+)-of-(?P<n>\d+)\.bin$")


def _strip(path: Path) -> Path:
    """The prefix of a ``.idx`` / ``.bin`` path (the path itself otherwise)."""
    if path.suffix in (".idx", ".bin"):
        m = _PART.match(path.name)
        return path.with_name(m["stem"]) if m else path.with_suffix("")
    return path


def find_prefixes(spec: str | os.PathLike[str]) -> list[Path]:
    """The dataset prefixes named by ``spec``: a prefix (``DIR/document``), its ``.idx`` or a
    ``.bin`` (part), a directory (every ``*.idx`` in it) or a glob of any of these.

    Raises
    ------
    memscore.CorpusError
        Nothing found.
    """
    s = os.fspath(spec)
    p = Path(s)
    if p.is_dir():
        found = sorted(q.with_suffix("") for q in p.glob("*.idx") if q.is_file())
        if not found:
            raise CorpusError(f"Corpus.from_megatron: no .idx file in directory {p}")
        return found
    if any(ch in s for ch in "*?["):
        import glob

        prefixes = sorted({_strip(Path(q)) for q in glob.glob(s) if Path(q).suffix in (".idx", ".bin")})
        if not prefixes:
            raise CorpusError(f"Corpus.from_megatron: no .idx / .bin file matches {s!r}")
        return prefixes
    prefix = _strip(p)
    if not prefix.with_name(prefix.name + ".idx").is_file():
        raise CorpusError(
            f"Corpus.from_megatron: {prefix}.idx: no such file (expected a dataset prefix PREFIX with "
            "PREFIX.idx and PREFIX.bin, or PREFIX-00000-of-000NN.bin parts, next to each other)"
        )
    return [prefix]


def _bin_parts(prefix: Path) -> list[Path]:
    """``PREFIX.bin``, or its numbered parts ``PREFIX-00000-of-000NN.bin`` ... in order
    (Pythia numbers 21 parts 0..20 "of-00020"; 0..N-1 "of-N" works too).

    Raises
    ------
    memscore.CorpusError
        No ``.bin``, both a whole file and parts, or a missing / extra part.
    """
    whole = prefix.with_name(prefix.name + ".bin")
    found: dict[int, tuple[int, Path]] = {}
    if prefix.parent.is_dir():
        for q in prefix.parent.iterdir():
            m = _PART.match(q.name)
            if m and m["stem"] == prefix.name and q.is_file():
                found[int(m["k"])] = (int(m["n"]), q)
    if whole.is_file():
        if found:
            raise CorpusError(f"{whole}: both the whole .bin and numbered parts of it are present; keep one")
        return [whole]
    if not found:
        raise CorpusError(f"{whole}: no such file, and no parts {prefix.name}-00000-of-NNNNN.bin next to it")
    totals = {n for n, _ in found.values()}
    if len(totals) != 1:
        raise CorpusError(f"{prefix}: .bin parts disagree on their count ('-of-' {sorted(totals)})")
    (n,) = totals
    last = max(found)
    missing = [k for k in range(last + 1) if k not in found]
    if missing or last not in (n - 1, n):
        want = f"0..{n - 1} or 0..{n}"
        gap = f"missing part {missing[0]}" if missing else f"the last part is {last}"
        raise CorpusError(f"{prefix}: .bin parts -of-{n:05d} must be numbered {want}; {gap}")
    return [found[k][1] for k in range(last + 1)]


@dataclass(frozen=True)
class MegatronFiles:
    """One Megatron dataset: its ``.idx``, the ``.bin`` part(s), and what the header says.

    Attributes
    ----------
    idx : str
        The index file.
    parts : tuple of str
        The ``.bin`` file, or its parts in order (read as their concatenation).
    dtype : str
        numpy name of the token type.
    n_seqs : int
        Sequences (rows).
    n_docs : int
        Documents.
    n_tokens : int
        Tokens in the ``.bin``.
    bin_bytes : int
        Bytes of the ``.bin`` (all parts).
    """

    idx: str
    parts: tuple[str, ...]
    dtype: str
    n_seqs: int
    n_docs: int
    n_tokens: int
    bin_bytes: int

    @property
    def width(self) -> int:
        """Bytes per token."""
        return np.dtype(self.dtype).itemsize

    def _array(self, start: int, dtype: str, count: int) -> npt.NDArray[Any]:
        if count == 0:
            return np.zeros(0, dtype=dtype)
        return np.memmap(self.idx, dtype=np.dtype(dtype).newbyteorder("<"), mode="r", offset=start, shape=(count,))

    def sizes(self) -> npt.NDArray[np.int32]:
        """Tokens per sequence (memory-mapped)."""
        return self._array(HEADER_BYTES, "int32", self.n_seqs)

    def pointers(self) -> npt.NDArray[np.int64]:
        """Byte offset of each sequence in the ``.bin`` (memory-mapped)."""
        return self._array(HEADER_BYTES + 4 * self.n_seqs, "int64", self.n_seqs)

    def doc_index(self) -> npt.NDArray[np.int64]:
        """First sequence of each document, then the sequence count (memory-mapped)."""
        return self._array(HEADER_BYTES + 12 * self.n_seqs, "int64", self.n_docs + 1)

    def read_bytes(self, at: int, n: int) -> bytes:
        """Bytes ``at:at+n`` of the ``.bin`` (across parts)."""
        out = bytearray()
        start = 0
        for part in self.parts:
            size = os.path.getsize(part)
            lo, hi = max(at, start), min(at + n, start + size)
            if lo < hi:
                with open(part, "rb") as f:
                    f.seek(lo - start)
                    out += f.read(hi - lo)
            start += size
        if len(out) != n:
            raise CorpusError(f"{self.parts[-1]}: truncated: no bytes {at}..{at + n} in the .bin")
        return bytes(out)

    def rows(self, rows: npt.NDArray[np.int64]) -> list[npt.NDArray[np.int64]]:
        """The token ids of sequences ``rows``, each checked against the ``.bin``.

        Raises
        ------
        IndexError
            A row outside ``0 .. n_seqs - 1``.
        memscore.CorpusError
            A negative size, a pointer that is not on a token or runs past the ``.bin``,
            or a value that is no token id.
        """
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= self.n_seqs):
            bad = int(rows.min() if rows.min() < 0 else rows.max())
            raise IndexError(f"rows: row {bad} is outside the {self.n_seqs} sequences of {self.idx}")
        sizes, pointers = self.sizes(), self.pointers()
        w = self.width
        dt = np.dtype(self.dtype).newbyteorder("<")
        out = []
        for r in rows.tolist():
            size, ptr = int(sizes[r]), int(pointers[r])
            if size < 0 or ptr < 0 or ptr % w or ptr + size * w > self.bin_bytes:
                raise CorpusError(
                    f"{self.idx}: sequence {r} (size {size}, pointer {ptr}) does not fit the {self.bin_bytes}-byte "
                    f".bin of {w}-byte tokens: a damaged index or a mismatched .bin"
                )
            a = np.frombuffer(self.read_bytes(ptr, size * w), dtype=dt)
            if a.size and (a.min() < 0 or a.max() > np.iinfo(np.uint32).max or (dt.kind == "f" and (a % 1).any())):
                raise CorpusError(
                    f"{self.parts[0]}: sequence {r} holds values that are no token ids ({a.min()}..{a.max()})"
                )
            out.append(a.astype(np.int64))
        return out

    def tokens(self) -> Any:
        """All tokens as one 1-D array-like, memory-mapped: a ``numpy.memmap`` of a whole
        ``.bin``, a :class:`PartedTokens` over parts (integer-array indexing, ``shape``)."""
        dt = np.dtype(self.dtype).newbyteorder("<")
        if len(self.parts) == 1:
            if self.n_tokens == 0:
                return np.zeros(0, dtype=dt)
            return np.memmap(self.parts[0], dtype=dt, mode="r", shape=(self.n_tokens,))
        return PartedTokens(self.parts, dt, self.n_tokens)

    def doc_starts(self) -> npt.NDArray[np.int64]:
        """The first token of every document (in memory: 8 bytes per document)."""
        first = np.asarray(self.doc_index()[:-1], dtype=np.int64)
        if not self.n_seqs:
            return np.zeros(first.size, dtype=np.int64)
        ptr = np.asarray(self.pointers()[np.minimum(first, self.n_seqs - 1)], dtype=np.int64) // self.width
        return np.where(first < self.n_seqs, ptr, self.n_tokens)

    def engine_args(self) -> tuple[tuple[list[str], int, str, int], tuple[str, str, int, int, int]]:
        """(tokens, offsets) as the engine reads them (:func:`memscore._core.ngram_count_tokens`)."""
        return (list(self.parts), 0, self.dtype, self.n_tokens), (
            "megatron",
            self.idx,
            self.n_seqs,
            self.n_docs + 1,
            self.width,
        )


class PartedTokens:
    """The tokens of a ``.bin`` stored in parts, indexed as one array without joining the
    files: each part is memory-mapped as bytes (a token may straddle two parts)."""

    def __init__(self, parts: tuple[str, ...], dtype: np.dtype[Any], n_tokens: int) -> None:
        self.dtype = dtype
        self.shape = (n_tokens,)
        self._maps = [
            np.memmap(p, dtype=np.uint8, mode="r") if os.path.getsize(p) else np.zeros(0, np.uint8) for p in parts
        ]
        self._starts = np.cumsum([0] + [m.size for m in self._maps])

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> npt.NDArray[Any]:
        idx = np.asarray(index, dtype=np.int64)
        if idx.ndim == 0 or idx.dtype.kind not in "iu":
            raise TypeError("PartedTokens: index with an integer array")
        if idx.size and (idx.min() < 0 or idx.max() >= self.shape[0]):
            raise IndexError(f"PartedTokens: index outside 0..{self.shape[0] - 1}")
        w = self.dtype.itemsize
        pos = (idx.ravel()[:, None] * w + np.arange(w)[None, :]).ravel()
        part = np.searchsorted(self._starts, pos, side="right") - 1
        out = np.empty(pos.size, dtype=np.uint8)
        for k in np.unique(part).tolist():
            sel = part == k
            out[sel] = self._maps[k][pos[sel] - self._starts[k]]
        return out.view(self.dtype).reshape(idx.shape)


def open_megatron(prefix: str | os.PathLike[str]) -> MegatronFiles:
    """Read and check the header of ``PREFIX.idx`` and find its ``.bin`` (or parts).

    Raises
    ------
    memscore.CorpusError
        A missing file, a wrong magic or version, an unknown dtype code, an ``.idx`` whose
        size is not what its counts imply, a ``.bin`` that is not a whole number of tokens.
    """
    p = Path(prefix)
    idx = p.with_name(p.name + ".idx")
    try:
        with open(idx, "rb") as f:
            head = f.read(HEADER_BYTES)
        size = idx.stat().st_size
    except OSError as exc:
        raise CorpusError(f"{idx}: cannot read: {exc}") from exc
    if head[:9] != MAGIC[: len(head[:9])] or not head:
        raise CorpusError(f"{idx}: not a Megatron MMapIndexedDataset index (magic {head[:9]!r}, expected {MAGIC!r})")
    if len(head) < HEADER_BYTES:
        raise CorpusError(f"{idx}: truncated: {len(head)} bytes, the header alone has {HEADER_BYTES}")
    version = int.from_bytes(head[9:17], "little")
    if version != 1:
        raise CorpusError(f"{idx}: unknown index version {version} (this reader knows version 1)")
    code = head[17]
    if code not in DTYPE_CODES:
        raise CorpusError(f"{idx}: unknown dtype code {code} (known: {sorted(DTYPE_CODES)})")
    n_seqs = int.from_bytes(head[18:26], "little")
    n_entries = int.from_bytes(head[26:34], "little")
    want = HEADER_BYTES + 12 * n_seqs + 8 * n_entries
    if size != want:
        state = "truncated" if size < want else "longer than its header says"
        raise CorpusError(
            f"{idx}: {state}: {n_seqs} sequences and {n_entries} document-index entries need {want} bytes, "
            f"the file has {size}"
        )
    if n_entries < 1:
        raise CorpusError(f"{idx}: the document index is empty (it must hold at least the entry 0)")
    parts = _bin_parts(p)
    bin_bytes = sum(q.stat().st_size for q in parts)
    dtype = DTYPE_CODES[code]
    if dtype == "float":
        # the width of a float code differs between implementations: the .bin size says it
        total = (
            int(np.memmap(idx, dtype="<i4", mode="r", offset=HEADER_BYTES, shape=(n_seqs,)).sum(dtype=np.int64))
            if n_seqs
            else 0
        )
        dtype = "float32" if total and bin_bytes == 4 * total else "float64"
    w = np.dtype(dtype).itemsize
    if bin_bytes % w:
        raise CorpusError(
            f"{parts[-1]}: truncated: {bin_bytes} bytes of .bin is not a whole number of {w}-byte {dtype} tokens"
        )
    return MegatronFiles(
        idx=str(idx),
        parts=tuple(str(q) for q in parts),
        dtype=dtype,
        n_seqs=n_seqs,
        n_docs=n_entries - 1,
        n_tokens=bin_bytes // w,
        bin_bytes=bin_bytes,
    )


def _write_slice(body: bytes, at: int, n: int, f: Any) -> None:
    f.write(body[at : at + n])


#: The code each dtype is written with (floats as Megatron-LM core numbers them).
_WRITE_CODES = {"uint8": 1, "int8": 2, "int16": 3, "int32": 4, "int64": 5, "float64": 6, "float32": 7, "uint16": 8}


def write_megatron(
    prefix: str | os.PathLike[str],
    sequences: Any,
    dtype: str = "uint16",
    *,
    doc_index: Any = None,
    parts: int = 1,
) -> Path:
    """Write ``PREFIX.idx`` and ``PREFIX.bin`` (or ``parts`` numbered parts of it, cut at
    byte boundaries as Pythia's release is) holding ``sequences``: small datasets for tests
    and examples, in the layout the module docstring gives. Files are written atomically.

    Parameters
    ----------
    prefix : path
        The dataset prefix.
    sequences : sequence of 1-D integer arrays
        The rows, in order.
    dtype : str, default "uint16"
        A numpy name with a Megatron code: uint8, int8, int16, int32, int64, float32,
        float64, uint16.
    doc_index : sequence of int, optional
        First sequence of each document, then ``len(sequences)``; default: one document per
        sequence.
    parts : int, default 1
        ``1`` writes ``PREFIX.bin``; more writes ``PREFIX-00000-of-NNNNN.bin`` ... with
        ``NNNNN = parts - 1``, as Pythia numbers them.

    Returns
    -------
    pathlib.Path
        The prefix.

    Raises
    ------
    ValueError
        An unknown dtype, ``parts < 1``, or values the dtype cannot hold.
    """
    from .._io import atomic_write

    if dtype not in _WRITE_CODES:
        raise ValueError(f"dtype: expected one of {sorted(_WRITE_CODES)}, got {dtype!r}")
    if not isinstance(parts, int) or parts < 1:
        raise ValueError(f"parts: expected an int >= 1, got {parts!r}")
    dt = np.dtype(dtype).newbyteorder("<")
    rows = [np.asarray(r) for r in sequences]
    flat = np.concatenate(rows) if rows else np.zeros(0, dtype=dt)
    body_arr = flat.astype(dt)
    if not np.array_equal(body_arr, flat):
        raise ValueError(f"sequences: values that {dtype} cannot hold")
    sizes = np.fromiter((r.size for r in rows), dtype="<i4", count=len(rows))
    pointers = (np.concatenate([[0], np.cumsum(sizes[:-1], dtype=np.int64)]) * dt.itemsize).astype("<i8")
    docs = np.arange(len(rows) + 1) if doc_index is None else np.asarray(doc_index)
    docs = docs.astype("<i8")
    head = MAGIC + (1).to_bytes(8, "little") + bytes([_WRITE_CODES[dtype]])
    head += len(rows).to_bytes(8, "little") + docs.size.to_bytes(8, "little")
    body = body_arr.tobytes()
    p = Path(prefix)
    p.parent.mkdir(parents=True, exist_ok=True)
    if not rows:
        pointers = np.zeros(0, dtype="<i8")
    atomic_write(
        p.with_name(p.name + ".idx"), lambda f: f.write(head + sizes.tobytes() + pointers.tobytes() + docs.tobytes())
    )
    if parts == 1:
        atomic_write(p.with_name(p.name + ".bin"), lambda f: f.write(body))
    else:
        per = -(-len(body) // parts)
        for k in range(parts):
            atomic_write(
                p.with_name(f"{p.name}-{k:05d}-of-{parts - 1:05d}.bin"), partial(_write_slice, body, k * per, per)
            )
    return p
