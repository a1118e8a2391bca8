"""Corpus sources: token arrays, ``.npy`` token shards and Megatron ``.idx``/``.bin``
datasets; jsonl / text files (plain, gz, zst), Parquet and Arrow files, HuggingFace
datasets and in-memory texts; as a list of shards the engine streams."""

from __future__ import annotations

import glob as _glob
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import CorpusError
from ._paths import JSONL_EXT as _JSONL_EXT
from ._paths import TEXT_EXT as _TEXT_EXT
from ._paths import TOKEN_OFFSETS_SUFFIX, PathLike, Paths
from .normalizer import Normalizer

#: What identifies one shard's input in a partial result: see :meth:`Corpus.sources`.
Source = dict[str, Any]


@dataclass(frozen=True)
class _Shard:
    kind: str  # "tokens", "megatron", "texts", "jsonl", "text", "parquet", "arrow", "hf"
    name: str
    payload: Any = field(repr=False)  # (tokens, offsets) | MegatronFiles | list[str] | path | dataset
    option: str = ""  # text field / split
    nbytes: int = 0
    files: tuple[str, ...] = ()  # the files read (token shard and its sidecar, or the text file)

    def source(self, skip_errors: bool) -> Source:
        """The options that change this shard's counts, and the identity (size, mtime) of
        its files; in-memory shards have no files."""
        files = []
        for f in self.files:
            st = os.stat(f)
            files.append({"path": str(Path(f).resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns})
        option_name = {"jsonl": "text_field", "text": "split"}.get(self.kind, "option")
        if self.kind in ("parquet", "arrow", "hf"):
            option_name = "text_field"
        return {
            "shard": self.name,
            "kind": self.kind,
            option_name: self.option,
            "on_error": "skip" if skip_errors else "raise",
            "files": files,
        }

    def token_args(self) -> tuple[Any, Any]:
        """(tokens, document offsets) of a token shard, as the engine reads them."""
        if self.kind == "megatron":
            return self.payload.engine_args()  # type: ignore[no-any-return]
        return self.payload  # type: ignore[no-any-return]


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


def _check_text_options(text_field: str, on_error: str) -> bool:
    """Check the options of a columnar / jsonl text source; return whether to skip bad rows."""
    if not isinstance(text_field, str) or not text_field:
        raise ValueError(f"text_field: expected a non-empty str, got {text_field!r}")
    return _check_on_error(on_error)


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
        raise CorpusError(f"{name}: token ids must fit uint32 (0 .. 4294967295), got values in [{a.min()}, {a.max()}]")
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

    Build one with :meth:`from_tokens`, :meth:`from_token_files`, :meth:`from_megatron`,
    :meth:`from_jsonl`, :meth:`from_parquet`, :meth:`from_arrow`, :meth:`from_hf_dataset`,
    :meth:`from_text_files` or :meth:`from_texts`; combine corpora of one kind with ``+``.
    Corpora pickle (Ray, multiprocessing, joblib): shards are plain data (file paths,
    arrays, texts) and the normalizer pickles as its settings.

    Parameters
    ----------
    shards : list
        Internal shard records (use the constructors).
    kind : {"tokens", "text"}
        What the shards hold.
    normalizer : Normalizer or None
        Text corpora: how text becomes tokens.
    skip_errors : bool, default False
        Skip (and count) malformed lines instead of raising.
    """

    def __init__(
        self,
        shards: list[_Shard],
        kind: Literal["tokens", "text"],
        normalizer: Normalizer | None,
        skip_errors: bool = False,
    ) -> None:
        self._shards = list(shards)
        self.kind = kind
        self.normalizer = normalizer
        self.skip_errors = skip_errors

    # -- constructors

    @classmethod
    def from_tokens(cls, tokens: Any, doc_offsets: Any, *, name: str = "<tokens>") -> Corpus:
        """One shard of token ids: a flat uint16/uint32 array and the start index of each
        document (document ``d`` is ``tokens[doc_offsets[d]:doc_offsets[d+1]]``, the last one
        runs to the end). Offsets must start at 0 and never decrease; equal offsets make
        empty documents. Other integer dtypes are converted to uint32 when they fit.

        Parameters
        ----------
        tokens : array_like
            1-D token ids.
        doc_offsets : array_like
            1-D start index of each document.
        name : str, default "<tokens>"
            The shard's name in results and error messages.

        Returns
        -------
        Corpus
            A one-shard token corpus.

        Raises
        ------
        TypeError
            Non-integer tokens or offsets.
        ValueError
            Arrays that are not 1-D.
        memscore.CorpusError
            Token ids outside uint32, negative offsets (other offset errors are raised
            when counting).
        """
        t = _token_array(tokens, name)
        o = _offsets_array(doc_offsets, name)
        return cls([_Shard("tokens", name, (t, o), "", t.nbytes)], "tokens", None)

    @classmethod
    def from_token_files(cls, paths: Paths) -> Corpus:
        """Token shards stored as ``NAME.npy`` (1-D uint16/uint32) next to
        ``NAME.offsets.npy`` (document start offsets, any integer dtype). Little-endian
        files (tokens, and 32/64-bit offsets) are read by the engine a few MB at a time, so
        memory does not grow with the shard; others are loaded and converted.

        Parameters
        ----------
        paths : path, glob or iterable of paths
            A file, a directory (every ``*.npy`` but the sidecars), a glob, or a list. A
            sidecar named in a list next to its shard is ignored.

        Returns
        -------
        Corpus
            A token corpus, one shard per file.

        Raises
        ------
        memscore.CorpusError
            Missing files or sidecars, a sidecar given as a shard, unreadable files, or
            tokens that are not uint16 / uint32.
        """
        shards = []
        found = _expand(paths, (".npy",), "Corpus.from_token_files")
        names = {q.resolve() for q in found}
        for p in found:
            if p.name.endswith(TOKEN_OFFSETS_SUFFIX):
                main = p.with_name(p.name[: -len(TOKEN_OFFSETS_SUFFIX)] + ".npy")
                if main.resolve() in names:
                    continue  # the sidecar of a shard named in the same list
                raise CorpusError(
                    f"{p}: a document-offsets sidecar, not a token shard; pass {main.name} "
                    "(its sidecar is found next to it)"
                )
            side = p.with_name(p.name[: -len(".npy")] + TOKEN_OFFSETS_SUFFIX)
            if not side.is_file():
                raise CorpusError(f"{p}: missing document-offsets sidecar {side.name}")
            try:
                t = np.load(p, mmap_mode="r", allow_pickle=False)
                o = np.load(side, mmap_mode="r", allow_pickle=False)
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
            shards.append(_Shard("tokens", str(p), (tokens, offs), "", int(t.nbytes), (str(p), str(side))))
        return cls(shards, "tokens", None)

    @classmethod
    def from_megatron(cls, prefix_or_paths: Paths) -> Corpus:
        """Megatron-LM / GPT-NeoX ``MMapIndexedDataset`` files (``PREFIX.idx`` + ``PREFIX.bin``),
        read in place: the engine streams the ``.bin`` a few MB at a time and the index's
        arrays as it goes, so nothing is converted and memory does not grow with the corpus.

        Documents are the index's documents (its document index groups sequences); the
        sequences themselves are the rows :func:`memscore.lm.training_sequences` reads.
        A ``.bin`` stored in numbered parts (``PREFIX-00000-of-00020.bin`` ... as in Pythia's
        preshuffled Pile) is read in place as their concatenation. Every dtype code of the
        format is read (uint8, int8, int16, int32, int64, the float codes, uint16, and the
        uint32 / uint64 codes some forks add); each value must be a token id in
        ``0 .. 2**32 - 1``.

        Parameters
        ----------
        prefix_or_paths : path, glob or iterable of paths
            Dataset prefixes (``DIR/document``), their ``.idx`` or ``.bin`` files, a
            directory (every ``*.idx`` in it) or a glob; one shard per prefix.

        Returns
        -------
        Corpus
            A token corpus, one shard per dataset.

        Raises
        ------
        memscore.CorpusError
            A missing ``.idx`` / ``.bin`` (or part), a wrong magic, an unknown version or
            dtype code, a truncated ``.idx`` or ``.bin``. Damage inside the arrays (a pointer
            that does not follow the sizes, a document index that decreases, sizes that do
            not add up to the ``.bin``, a negative token) is raised, naming the file, by the
            count that meets it.

        Examples
        --------
        >>> import numpy as np, tempfile, pathlib
        >>> from memscore.ngrams import Corpus, count_ngrams
        >>> from memscore.ngrams.megatron import write_megatron
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> prefix = write_megatron(d / "doc", [np.array([5, 6, 7]), np.array([6, 7])], "uint16")
        >>> count_ngrams(Corpus.from_megatron(prefix), [[6, 7], [7, 6]]).tolist()
        [2, 0]
        """
        from .megatron import find_prefixes, open_megatron

        items: list[PathLike] = (
            [prefix_or_paths] if isinstance(prefix_or_paths, (str, os.PathLike)) else list(prefix_or_paths)
        )
        if not items:
            raise ValueError("Corpus.from_megatron: no paths given")
        shards = []
        seen: set[Path] = set()
        for it in items:
            if not isinstance(it, (str, os.PathLike)):
                raise TypeError(f"Corpus.from_megatron: expected paths (str or Path), got {type(it).__name__}")
            for prefix in find_prefixes(it):
                if prefix.resolve() in seen:
                    continue  # PREFIX.idx and PREFIX.bin named together
                seen.add(prefix.resolve())
                mf = open_megatron(prefix)
                shards.append(_Shard("megatron", str(prefix), mf, "", mf.bin_bytes, (mf.idx, *mf.parts)))
        return cls(shards, "tokens", None)

    @classmethod
    def from_jsonl(
        cls,
        paths: Paths,
        text_field: str = "text",
        normalizer: Normalizer | None = None,
        *,
        on_error: Literal["raise", "skip"] = "raise",
    ) -> Corpus:
        """jsonl shards (``.jsonl``, ``.jsonl.gz``, ``.jsonl.zst``), one JSON object per line,
        the document in ``text_field``. Blank lines are ignored. A malformed line, a missing
        or non-string field or invalid UTF-8 raises :class:`memscore.CorpusError` naming file
        and line; with ``on_error="skip"`` such lines are skipped and counted
        (``NgramStats.n_skipped``). A key given twice in one object takes its last value,
        as Python's ``json`` does.

        Parameters
        ----------
        paths : path, glob or iterable of paths
            A file, a directory, a glob, or a list.
        text_field : str, default "text"
            The JSON field holding the document.
        normalizer : Normalizer, optional
            Default: ``Normalizer()``.
        on_error : {"raise", "skip"}, default "raise"
            What a malformed line does.

        Returns
        -------
        Corpus
            A text corpus, one shard per file.

        Raises
        ------
        ValueError
            Empty ``text_field`` or bad ``on_error``.
        TypeError
            ``normalizer`` is not a :class:`Normalizer`.
        memscore.CorpusError
            No matching files.
        """
        skip = _check_text_options(text_field, on_error)
        files = _expand(paths, _JSONL_EXT, "Corpus.from_jsonl")
        shards = [_Shard("jsonl", str(p), str(p), text_field, p.stat().st_size, (str(p),)) for p in files]
        return cls(shards, "text", _as_normalizer(normalizer), skip)

    @classmethod
    def from_parquet(
        cls,
        paths: Paths,
        text_field: str = "text",
        normalizer: Normalizer | None = None,
        *,
        on_error: Literal["raise", "skip"] = "raise",
    ) -> Corpus:
        """Parquet files (FineWeb, Dolma...), one document per row in the string column
        ``text_field``, read one row group at a time (any compression pyarrow reads), so
        memory follows a row group, not the file. Counts equal those of the same texts read
        as jsonl.

        Parameters
        ----------
        paths : path, glob or iterable of paths
            A ``.parquet`` file, a directory, a glob, or a list.
        text_field : str, default "text"
            The column holding the document.
        normalizer : Normalizer, optional
            Default: ``Normalizer()``.
        on_error : {"raise", "skip"}, default "raise"
            What a null text does (skipped ones are counted in ``NgramStats.n_skipped``).

        Returns
        -------
        Corpus
            A text corpus, one shard per file.

        Raises
        ------
        ValueError
            Empty ``text_field`` or bad ``on_error``.
        memscore.CorpusError
            No matching files, a file that is not Parquet, no such column or not strings.
        """
        from .arrow_text import check_parquet

        skip = _check_text_options(text_field, on_error)
        shards = []
        for p in _expand(paths, (".parquet", ".pq"), "Corpus.from_parquet"):
            nbytes = check_parquet(str(p), text_field)
            shards.append(_Shard("parquet", str(p), str(p), text_field, nbytes, (str(p),)))
        return cls(shards, "text", _as_normalizer(normalizer), skip)

    @classmethod
    def from_arrow(
        cls,
        paths: Paths,
        text_field: str = "text",
        normalizer: Normalizer | None = None,
        *,
        on_error: Literal["raise", "skip"] = "raise",
    ) -> Corpus:
        """Arrow IPC files or streams (``.arrow``, as in HuggingFace ``datasets`` caches),
        memory-mapped, one document per row of the string column ``text_field``.

        Parameters
        ----------
        paths : path, glob or iterable of paths
            An ``.arrow`` file, a directory, a glob, or a list.
        text_field, normalizer, on_error
            As in :meth:`from_parquet`.

        Returns
        -------
        Corpus
            A text corpus, one shard per file.

        Raises
        ------
        ValueError, memscore.CorpusError
            As in :meth:`from_parquet`.
        """
        from .arrow_text import arrow_nbytes, check_arrow

        skip = _check_text_options(text_field, on_error)
        shards = []
        for p in _expand(paths, (".arrow",), "Corpus.from_arrow"):
            check_arrow(str(p), text_field)
            shards.append(_Shard("arrow", str(p), str(p), text_field, arrow_nbytes(str(p)), (str(p),)))
        return cls(shards, "text", _as_normalizer(normalizer), skip)

    @classmethod
    def from_hf_dataset(
        cls,
        dataset: Any,
        text_field: str = "text",
        normalizer: Normalizer | None = None,
        *,
        on_error: Literal["raise", "skip"] = "raise",
    ) -> Corpus:
        """A HuggingFace ``datasets`` dataset, one document per row of ``text_field``: a
        loaded ``datasets.Dataset`` (memory-mapped Arrow; its ``select`` / ``shuffle``
        views are respected), an ``IterableDataset`` (streamed), or the folder a
        ``Dataset.save_to_disk`` wrote (loaded where it is counted, so a Ray worker opens
        the files itself). Needs the ``datasets`` package (the ``hf`` extra).

        Parameters
        ----------
        dataset : datasets.Dataset, datasets.IterableDataset or path
            The dataset (one shard), or a ``save_to_disk`` folder.
        text_field, normalizer, on_error
            As in :meth:`from_parquet`.

        Returns
        -------
        Corpus
            A one-shard text corpus.

        Raises
        ------
        TypeError
            ``dataset`` is neither a dataset nor a path (a ``DatasetDict``: pick a split).
        ValueError, memscore.CorpusError
            As in :meth:`from_parquet`; a folder that is no saved dataset.
        """
        from .arrow_text import dataset_files, load_dataset_folder

        skip = _check_text_options(text_field, on_error)
        name = "<hf dataset>"
        if isinstance(dataset, (str, os.PathLike)):
            name = os.fspath(dataset)
            loaded = load_dataset_folder(name)
            payload: Any = str(Path(name).resolve()) if Path(name).is_absolute() else name
        else:
            loaded = payload = dataset
        if hasattr(loaded, "keys") and not hasattr(loaded, "iter"):
            raise TypeError(
                f"dataset: expected a datasets.Dataset or IterableDataset, got a {type(loaded).__name__} "
                f"(pick a split: dataset[{next(iter(loaded.keys()), 'train')!r}])"
            )
        if not hasattr(loaded, "iter"):
            raise TypeError(
                f"dataset: expected a datasets.Dataset, IterableDataset or folder, got {type(loaded).__name__}"
            )
        features = getattr(loaded, "features", None)
        if features is not None:
            if text_field not in features:
                raise CorpusError(f"{name}: no column {text_field!r} (text_field); columns {list(features)}")
            dtype = getattr(features[text_field], "dtype", None)
            if dtype not in ("string", "large_string"):
                raise CorpusError(f"{name}: column {text_field!r} holds {features[text_field]}, expected strings")
        files = dataset_files(payload)
        nbytes = int(getattr(getattr(loaded, "data", None), "nbytes", 0) or 0)
        return cls([_Shard("hf", name, payload, text_field, nbytes, files)], "text", _as_normalizer(normalizer), skip)

    @classmethod
    def from_text_files(
        cls,
        paths: Paths,
        split: Literal["file", "paragraph", "line"] = "file",
        normalizer: Normalizer | None = None,
        *,
        on_error: Literal["raise", "skip"] = "raise",
    ) -> Corpus:
        """UTF-8 text files (optionally ``.gz`` / ``.zst``) cut into documents: the whole file
        (``"file"``), runs of non-blank lines (``"paragraph"``), or each non-blank line
        (``"line"``).

        Parameters
        ----------
        paths : path, glob or iterable of paths
            A file, a directory, a glob, or a list.
        split : {"file", "paragraph", "line"}, default "file"
            How a file is cut into documents.
        normalizer : Normalizer, optional
            Default: ``Normalizer()``.
        on_error : {"raise", "skip"}, default "raise"
            What invalid UTF-8 does.

        Returns
        -------
        Corpus
            A text corpus, one shard per file.

        Raises
        ------
        ValueError
            Bad ``split`` or ``on_error``.
        memscore.CorpusError
            No matching files.
        """
        if split not in ("file", "paragraph", "line"):
            raise ValueError(f"split: expected 'file', 'paragraph' or 'line', got {split!r}")
        skip = _check_on_error(on_error)
        files = _expand(paths, _TEXT_EXT, "Corpus.from_text_files")
        shards = [_Shard("text", str(p), str(p), split, p.stat().st_size, (str(p),)) for p in files]
        return cls(shards, "text", _as_normalizer(normalizer), skip)

    @classmethod
    def from_texts(cls, texts: Sequence[str], normalizer: Normalizer | None = None) -> Corpus:
        """In-memory documents, one string each.

        Parameters
        ----------
        texts : sequence of str
            The documents.
        normalizer : Normalizer, optional
            Default: ``Normalizer()``.

        Returns
        -------
        Corpus
            A one-shard text corpus.

        Raises
        ------
        TypeError
            A single str, or items that are not str.
        """
        if isinstance(texts, str):
            raise TypeError("Corpus.from_texts: expected a sequence of str, got a single str")
        texts = list(texts)
        bad = [t for t in texts if not isinstance(t, str)]
        if bad:
            raise TypeError(f"Corpus.from_texts: expected strings, got {type(bad[0]).__name__}")
        nbytes = sum(
            len(t) if t.isascii() else len(t.encode("utf-8", "surrogatepass")) for t in texts
        )  # UTF-8 bytes, as the engine counts
        return cls([_Shard("texts", "<texts>", texts, "", nbytes)], "text", _as_normalizer(normalizer))

    # -- shards

    @property
    def n_shards(self) -> int:
        """Number of shards."""
        return len(self._shards)

    @property
    def shard_names(self) -> list[str]:
        """A name per shard (the file path for file shards)."""
        return [s.name for s in self._shards]

    @property
    def nbytes(self) -> int:
        """Bytes on disk (files) or in memory (tokens, texts) of all shards."""
        return sum(s.nbytes for s in self._shards)

    def sources(self) -> list[Source]:
        """What each shard's counts depend on besides the queries and the normalizer.

        A partial result records these (:attr:`NgramStats.sources`); a resumed count
        reuses a partial only when they are equal, so a shard that changed on disk or was
        read with other options is counted again.

        Returns
        -------
        list of dict
            Per shard: ``shard`` (its name), ``kind``, the reading option (``text_field``
            for jsonl, ``split`` for text files), ``on_error``, and ``files``: path, size
            and ``mtime_ns`` of every file read (empty for in-memory shards).

        Raises
        ------
        OSError
            A shard's file can no longer be read.
        """
        return [s.source(self.skip_errors) for s in self._shards]

    def shards(self) -> list[Corpus]:
        """One single-shard corpus per shard (to count shards separately and merge).

        Returns
        -------
        list of Corpus
            Corpora of one shard each, with this corpus's kind, normalizer and error policy.
        """
        return [Corpus([s], self.kind, self.normalizer, self.skip_errors) for s in self._shards]

    def __len__(self) -> int:
        return len(self._shards)

    def __add__(self, other: Corpus) -> Corpus:
        if not isinstance(other, Corpus) or other.kind != self.kind:
            return NotImplemented
        if self.kind == "text" and other.normalizer is not None and self.normalizer is not None:
            if self.normalizer.describe() != other.normalizer.describe():
                raise ValueError("Corpus + Corpus: the two corpora use different normalizers")
        return Corpus(self._shards + other._shards, self.kind, self.normalizer, self.skip_errors or other.skip_errors)

    # -- pickling (Ray, multiprocessing, joblib): shards are plain data, the normalizer
    # pickles as its settings

    def __getstate__(self) -> dict[str, Any]:
        return {
            "version": 1,
            "shards": self._shards,
            "kind": self.kind,
            "normalizer": self.normalizer,
            "skip_errors": self.skip_errors,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        if state.get("version") != 1:
            raise ValueError(f"Corpus: cannot unpickle state version {state.get('version')!r}")
        self.__init__(state["shards"], state["kind"], state["normalizer"], state["skip_errors"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"Corpus(kind={self.kind!r}, shards={len(self._shards)}, nbytes={self.nbytes})"


def open_corpus(
    spec: str | os.PathLike[str],
    *,
    text_field: str = "text",
    normalizer: Normalizer | None = None,
    split: Literal["file", "paragraph", "line"] = "file",
    on_error: Literal["raise", "skip"] = "raise",
) -> Corpus:
    """A corpus from a file, directory or glob, its reader chosen by the files' names:
    Megatron datasets (``.idx`` / ``.bin``, or a prefix whose ``.idx`` exists:
    :meth:`Corpus.from_megatron`), token ``.npy`` shards (:meth:`Corpus.from_token_files`),
    Parquet (:meth:`Corpus.from_parquet`), Arrow files or a folder written by
    ``datasets.Dataset.save_to_disk`` (:meth:`Corpus.from_arrow` /
    :meth:`Corpus.from_hf_dataset`), text files (:meth:`Corpus.from_text_files`), else
    jsonl (:meth:`Corpus.from_jsonl`).

    Parameters
    ----------
    spec : str or path
        A file, a directory, a glob or a Megatron prefix.
    text_field : str, default "text"
        The jsonl field / Parquet or Arrow column holding the document.
    normalizer : Normalizer, optional
        For text corpora.
    split : {"file", "paragraph", "line"}, default "file"
        How text files are cut into documents.
    on_error : {"raise", "skip"}, default "raise"
        Malformed jsonl lines / undecodable text / null texts.

    Returns
    -------
    Corpus
    """
    text = os.fspath(spec)
    p = Path(text)
    if p.is_dir() and (p / "state.json").is_file() and (p / "dataset_info.json").is_file():
        return Corpus.from_hf_dataset(p, text_field=text_field, normalizer=normalizer, on_error=on_error)
    names = [q.name for q in p.iterdir()] if p.is_dir() else [text]
    if not p.exists() and not any(ch in text for ch in "*?[") and Path(text + ".idx").is_file():
        names = [text + ".idx"]  # a Megatron prefix
    if any(n.endswith((".idx", ".bin")) for n in names):
        return Corpus.from_megatron(text)
    if any(n.endswith(".npy") for n in names) and not any(".jsonl" in n or n.endswith(".txt") for n in names):
        return Corpus.from_token_files(text)
    if any(n.endswith(".parquet") for n in names):
        return Corpus.from_parquet(text, text_field=text_field, normalizer=normalizer, on_error=on_error)
    if any(n.endswith(".arrow") for n in names):
        return Corpus.from_arrow(text, text_field=text_field, normalizer=normalizer, on_error=on_error)
    if any(n.endswith((".txt", ".txt.gz", ".txt.zst")) for n in names) and not any(".jsonl" in n for n in names):
        return Corpus.from_text_files(text, split=split, normalizer=normalizer, on_error=on_error)
    return Corpus.from_jsonl(text, text_field=text_field, normalizer=normalizer, on_error=on_error)
