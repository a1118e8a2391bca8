"""The run store's on-disk layout: names, the manifest, and the one table of run-file fields.

Every rule about what a run file holds lives in :data:`FIELDS` (name, stored dtype, shape
rule, packed or not, value rule, per split) and the :class:`Layout` that applies it to one
store's sizes. Writing (:mod:`.write`), reading and decoding (:mod:`.scan`), the shapes of
empty results and :func:`~.verify.verify_store` all ask the table; none spells the rules
out again. The format itself is described in the package docstring (:mod:`memscore.runs.store`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Union

import numpy as np
import numpy.typing as npt

from ..._io import _fsync_dir, _write_tmp
from ...errors import StoreError

__all__ = [
    "FIELDS",
    "FORMAT",
    "MANIFEST",
    "RUNS_DIR",
    "RUN_FORMAT",
    "VERSION",
    "Field",
    "Layout",
]

FORMAT = "memscore-runstore"
VERSION = 1
RUN_FORMAT = "memscore-run"
MANIFEST = "manifest.json"
RUNS_DIR = "runs"
SPLITS = ("train", "test")
# What outcomes() serves per split, and the per-snapshot statistics a run may carry.
KINDS = ("correct", "phi", "logits", "pred", "phi_views")
SNAP_KINDS = ("correct", "loss", "el2n", "grand")

RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
INT64_MAX = int(np.iinfo(np.int64).max)

PathLike = Union[str, "os.PathLike[str]"]


# ----------------------------------------------------------------------------- the field table


@dataclass(frozen=True)
class Field:
    """One array a run file may hold.

    Parameters
    ----------
    name : str
        The array's name in the ``.npz`` (``train_correct_bits``, ``snap_epochs``, ...).
    split : {"train", "test"} or None
        Whose examples it covers; None for ``snap_epochs``.
    dtype : numpy.dtype
        The stored dtype (what :meth:`~memscore.RunStore.verify` insists on).
    shape : str
        Shape rule over ``n`` (examples of the split), ``b`` (``ceil(n / 8)`` bytes),
        ``S`` (snapshots), ``C`` (classes) and ``K`` (query views): one of ``"n"``, ``"b"``,
        ``"nC"``, ``"S"``, ``"Sn"``, ``"Sb"``, ``"nK"``.
    packed : bool
        Bool values stored as ``np.packbits`` rows (decoded to bool).
    decoded : numpy.dtype
        The dtype reads return after decoding.
    values : str or None
        Value rule that :meth:`~memscore.RunStore.verify` checks: ``"finite"``,
        ``"nonneg"``, ``"increasing"`` or None.
    """

    name: str
    split: str | None
    dtype: np.dtype[Any]
    shape: str
    packed: bool
    decoded: np.dtype[Any]
    values: str | None

    @property
    def field(self) -> str:
        """The name recorded in the run's meta ``fields`` (``_bits`` dropped)."""
        return self.name.removesuffix("_bits")

    @property
    def snapshot(self) -> bool:
        """Whether it is one row per training snapshot."""
        return self.shape.startswith("S")


def _table() -> dict[str, Field]:
    u8, i32, i64, f32, f64, b = (np.dtype(t) for t in (np.uint8, np.int32, np.int64, np.float32, np.float64, np.bool_))
    rows = [
        Field("mask_bits", "train", u8, "b", True, b, None),
        Field("snap_epochs", None, i64, "S", False, i64, "increasing"),
    ]
    for sp in SPLITS:
        rows += [
            Field(f"{sp}_correct_bits", sp, u8, "b", True, b, None),
            Field(f"{sp}_phi", sp, f32, "n", False, f64, "finite"),
            Field(f"{sp}_pred", sp, i32, "n", False, i64, "nonneg"),
            Field(f"{sp}_logits", sp, f32, "nC", False, f32, None),
            Field(f"snap_{sp}_correct_bits", sp, u8, "Sb", True, b, None),
        ]
        rows += [Field(f"snap_{sp}_{k}", sp, f32, "Sn", False, f64, "finite") for k in SNAP_KINDS[1:]]
    # LiRA's augmented queries: the confidence on K views of every example (K free per run)
    rows += [Field(f"{sp}_phi_views", sp, f32, "nK", False, f64, "finite") for sp in SPLITS]
    # Bootstrap runs (Data-OOB): how often the run drew each training example (mask = > 0)
    rows += [Field("multiplicity", "train", np.dtype(np.uint16), "n", False, i64, "nonneg")]
    return {f.name: f for f in rows}


FIELDS: Mapping[str, Field] = _table()
"""Every array a run file may hold, by stored name (``meta`` aside: UTF-8 JSON bytes)."""


def outcome_name(split: str, kind: str) -> str:
    """Stored name of a split's outcome of ``kind`` (``correct`` is bit-packed)."""
    return f"{split}_correct_bits" if kind == "correct" else f"{split}_{kind}"


def snapshot_name(split: str, kind: str) -> str:
    """Stored name of a split's snapshot statistic ``kind``."""
    return f"snap_{split}_{kind}" + ("_bits" if kind == "correct" else "")


def n_bytes(n: int) -> int:
    """Bytes of ``n`` packed bits."""
    return (n + 7) // 8


@dataclass(frozen=True)
class Layout:
    """The field table applied to one store's sizes (from its manifest).

    Parameters
    ----------
    n_train, n_test : int
        Examples per split.
    n_classes : int or None
        Class count fixed by the manifest, or None.
    """

    n_train: int
    n_test: int
    n_classes: int | None

    def n_of(self, f: Field) -> int:
        """Examples the field covers (0 for ``snap_epochs``)."""
        return 0 if f.split is None else (self.n_train if f.split == "train" else self.n_test)

    def shape(self, f: Field, s: int | None = None, c: int | None = None) -> tuple[int | None, ...]:
        """The expected shape; None for a free ``S`` / ``C``."""
        n = self.n_of(f)
        dims = {"n": n, "b": n_bytes(n), "S": s, "C": c if c is not None else self.n_classes, "K": None}
        return tuple(dims[ch] for ch in f.shape)

    def want(self, f: Field) -> str:
        """The expected shape and dtype in words, e.g. ``"(5,) uint8"``."""
        dims = self.shape(f)
        names = [str(d) if d is not None else ch for d, ch in zip(dims, f.shape, strict=True)]
        return f"({', '.join(names)}{',' if len(names) == 1 else ''}) {f.dtype}"

    def problem(self, f: Field, a: np.ndarray, *, strict: bool = False) -> str | None:
        """What is wrong with array ``a`` stored as field ``f``, or None.

        Parameters
        ----------
        f : Field
            The field it is stored as.
        a : numpy.ndarray
            The array as loaded.
        strict : bool
            Also insist on the exact stored dtype and the field's value rule (what
            :meth:`~memscore.RunStore.verify` checks); reads only check what decoding
            relies on (shape and dtype kind).

        Returns
        -------
        str or None
            ``"<name> has shape ... expected ..."`` or a value complaint; None when fine.
        """
        exp = self.shape(f)
        ok_shape = a.ndim == len(exp) and all(e is None or e == g for e, g in zip(exp, a.shape, strict=False))
        if strict:
            ok_dtype = a.dtype == f.dtype
        else:
            ok_dtype = a.dtype == f.dtype if f.packed else a.dtype.kind in ("iu" if f.dtype.kind in "iu" else "f")
        if not (ok_shape and ok_dtype) or (f.shape == "S" and a.size == 0):
            return f"{f.name} has shape {a.shape} {a.dtype}, expected {self.want(f)}"
        if strict and f.values is not None:
            bad = (
                (f.values == "finite" and not bool(np.isfinite(a).all()))
                or (f.values == "nonneg" and bool((a < 0).any()))
                or (f.values == "increasing" and not bool(np.all(np.diff(a) > 0)))
            )
            if bad:
                return f"{f.name} has shape {a.shape} {a.dtype}, expected {self.want(f)} ({f.values} values)"
        return None

    def encode(self, f: Field, value: np.ndarray) -> np.ndarray:
        """A validated value as stored: bools packed along the last axis, else the stored dtype.

        Parameters
        ----------
        f : Field
            The field.
        value : numpy.ndarray
            Bool values for a packed field, numbers otherwise, already of the right shape.

        Returns
        -------
        numpy.ndarray
            C-contiguous, of dtype ``f.dtype``.
        """
        if f.packed:
            return np.packbits(np.asarray(value, dtype=np.bool_), axis=-1)
        return np.ascontiguousarray(value, dtype=f.dtype)

    def decode(self, f: Field, a: np.ndarray, *, unpack: bool = True) -> np.ndarray:
        """One run's array as reads return it (packed bits unpacked unless ``unpack=False``)."""
        if f.packed:
            if not unpack:
                return a
            return np.unpackbits(a, axis=-1, count=self.n_of(f)).astype(np.bool_)
        return a.astype(f.decoded, copy=False)

    def empty(self, f: Field, *, unpack: bool = True) -> np.ndarray:
        """The stacked result over zero runs."""
        n = self.n_of(f)
        width = n if unpack or not f.packed else n_bytes(n)
        dtype = f.decoded if unpack or not f.packed else f.dtype
        if f.shape == "S":
            return np.zeros((0, 0), dtype=dtype)
        if f.snapshot:
            return np.zeros((0, 0, width), dtype=dtype)
        if f.shape == "nC":
            return np.zeros((0, n, self.n_classes or 0), dtype=dtype)
        return np.zeros((0, width), dtype=dtype)

    def meta_problem(self, meta: Mapping[str, Any]) -> str | None:
        """How a run's meta disagrees with the manifest (sizes, class count), or None."""
        for key, want in (("n_train", self.n_train), ("n_test", self.n_test)):
            if meta.get(key) != want:
                return f"{key} {meta.get(key)!r} does not match the manifest ({want})"
        nc = meta.get("n_classes")
        if self.n_classes is not None and nc is not None and nc != self.n_classes:
            return f"n_classes {nc!r} does not match the manifest ({self.n_classes})"
        return None


# ----------------------------------------------------------------------------- small helpers


def now() -> str:
    """The current UTC time, ISO 8601 with microseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def json_bytes(obj: Any) -> bytes:
    """Indented, key-sorted UTF-8 JSON with a trailing newline (NaN refused)."""
    return (json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n").encode("utf-8")


def digest(arrays: Mapping[str, np.ndarray]) -> str:
    """Hex sha256 of the bytes of every array but ``meta``, in sorted name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        if name != "meta":
            h.update(np.ascontiguousarray(arrays[name]).tobytes())
    return h.hexdigest()


def check_json(obj: Any, name: str) -> dict[str, Any]:
    """A JSON-round-tripped copy of a dict (None -> {}).

    Raises
    ------
    TypeError
        Not a dict, or not JSON-serializable.
    """
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise TypeError(f"{name}: expected a dict (JSON object), got {type(obj).__name__}")
    try:
        out: dict[str, Any] = json.loads(json.dumps(obj, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: expected a JSON-serializable dict ({exc})") from None
    return out


def check_run_id(run_id: Any) -> str:
    """A valid run id.

    Raises
    ------
    TypeError
        Not a str.
    ValueError
        Not matching ``[A-Za-z0-9][A-Za-z0-9_.-]*``.
    """
    if not isinstance(run_id, str):
        raise TypeError(f"run_id: expected a str, got {type(run_id).__name__}")
    if not RUN_ID.fullmatch(run_id):
        raise ValueError(
            f"run_id: expected letters, digits, '_', '.', '-' starting with a letter or digit "
            f"(pattern [A-Za-z0-9][A-Za-z0-9_.-]*), got {run_id!r}"
        )
    return run_id


def run_rel(run_id: str) -> str:
    """A run file's path relative to the store, as messages name it."""
    return f"{RUNS_DIR}/{run_id}.npz"


def read_regular(path: Path, what: str | None = None) -> bytes:
    """All bytes of ``path``, opened without blocking; only a regular file is read.

    Parameters
    ----------
    path : Path
        The file.
    what : str, optional
        How messages name it (default: the path).

    Returns
    -------
    bytes
        The contents.

    Raises
    ------
    FileNotFoundError
        It does not exist.
    StoreError
        It is not a regular file (a FIFO, a device, a directory), or cannot be read.
    """
    name = what or str(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise StoreError(f"{name}: cannot open ({exc})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise StoreError(f"{name}: not a regular file (refused; a run file must be a plain file)")
        chunks = []
        while True:
            b = os.read(fd, max(st.st_size, 1 << 16))
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)
    except OSError as exc:
        raise StoreError(f"{name}: cannot read ({exc})") from None
    finally:
        os.close(fd)


def atomic_create(path: Path, write: Callable[[IO[bytes]], Any]) -> bool:
    """Write ``path`` atomically and exclusively.

    Parameters
    ----------
    path : Path
        The final name.
    write : callable
        ``write(fileobj)`` writes the bytes to a temporary file beside ``path``.

    Returns
    -------
    bool
        False (and nothing written) when ``path`` already exists.

    Raises
    ------
    StoreError
        The file system refused the hard link that publishes the file.
    """
    tmp = _write_tmp(path.parent, path.suffix, write)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError as exc:
        # Publishing by hard link is what keeps concurrent writers from overwriting each
        # other; a file system without links cannot host a store safely.
        raise StoreError(f"cannot publish {path}: the file system refused a hard link ({exc})") from exc
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return True


# ----------------------------------------------------------------------------- the manifest


def new_manifest(
    n_train: int, n_test: int, n_classes: int | None, has_train: bool, has_test: bool, metadata: dict[str, Any]
) -> dict[str, Any]:
    """The manifest of a new store."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "n_train": n_train,
        "n_test": n_test,
        "n_classes": n_classes,
        "has_train_labels": has_train,
        "has_test_labels": has_test,
        "metadata": metadata,
        "created": now(),
    }


def read_manifest(root: Path) -> tuple[dict[str, Any], dict[str, npt.NDArray[np.int64] | None]]:
    """The manifest and labels of the store at ``root``, checked.

    Returns
    -------
    (dict, dict)
        The manifest (``metadata`` defaulted to {}), and ``{"train_labels", "test_labels"}``
        int64 arrays or None.

    Raises
    ------
    StoreError
        No manifest, an unparseable one, another format or version, bad sizes, or a
        missing / malformed labels file.
    """
    mpath = root / MANIFEST
    try:
        raw = read_regular(mpath)
    except FileNotFoundError:
        raise StoreError(f"{root}: not a run store (no {MANIFEST}); create one with RunStore.create") from None
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise StoreError(f"{mpath}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        got = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise StoreError(f"{mpath}: expected format {FORMAT!r}, got {got!r}")
    if manifest.get("version") != VERSION:
        raise StoreError(
            f"{mpath}: store format version {manifest.get('version')!r} is not supported "
            f"(this memscore reads version {VERSION})"
        )
    for key, lo in (("n_train", 1), ("n_test", 0)):
        v = manifest.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise StoreError(f"{mpath}: expected {key} to be an int >= {lo}, got {v!r}")
    nc = manifest.get("n_classes")
    if nc is not None and (isinstance(nc, bool) or not isinstance(nc, int) or nc < 2):
        raise StoreError(f"{mpath}: expected n_classes to be null or an int >= 2, got {nc!r}")
    manifest.setdefault("n_classes", None)
    manifest.setdefault("metadata", {})
    labels: dict[str, npt.NDArray[np.int64] | None] = {}
    for split in SPLITS:
        n = manifest[f"n_{split}"]
        name = f"{split}_labels"
        if not manifest.get(f"has_{name}"):
            labels[name] = None
            continue
        lpath = root / f"{name}.npy"
        try:
            a = np.load(io.BytesIO(read_regular(lpath)), allow_pickle=False)
        except StoreError:
            raise
        except Exception as exc:  # noqa: BLE001 - any damage becomes a StoreError naming the file
            if isinstance(exc, MemoryError):
                raise
            raise StoreError(f"{lpath}: cannot load ({type(exc).__name__}: {exc})") from None
        if a.shape != (n,) or not np.issubdtype(a.dtype, np.integer):
            raise StoreError(f"{lpath}: expected ({n},) integer labels, got {a.shape} {a.dtype}")
        labels[name] = np.ascontiguousarray(a, dtype=np.int64)
    return manifest, labels
