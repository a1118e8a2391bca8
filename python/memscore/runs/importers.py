"""Read the runs and attribution scores other projects publish, in their own layouts.

- :func:`read_datamodels_release`: a MadryLab ``datamodels`` store directory (one ``.npy``
  memmap per logged key, ``(num_models, ...)``, plus ``_completed.npy``; the release of
  CIFAR-10 datamodels has ``masks`` ``(models, 50000)`` bool and ``margins``
  ``(models, 10000)`` float16). The masks are streamed in chunks and bit-packed: only the
  packed masks (one bit per entry), the chosen outcome columns and one chunk are ever in
  memory (the whole CIFAR-10 release: 1.9 GB of packed masks, 0.6 GB for 500 targets).
- :func:`read_lira_experiments`: a ``tensorflow/privacy`` ``mi_lira_2021`` log directory
  (``y_train.npy`` and ``experiment-*/`` each with ``keep.npy`` ``(N,)`` and
  ``logits/<epoch:010d>.npy`` ``(N, 1, augmentations, classes)``).
- :func:`read_trak_scores`, :func:`read_dattri_scores`, :func:`read_kronfluence_scores`:
  attribution matrices, returned as ``(T, N)`` (test, train) for :func:`memscore.lds`.

:func:`import_runs` writes masks and outcomes read by any of these into a
:class:`~memscore.RunStore`.
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .._validate import check_int
from ..errors import ImportFileError
from .bits import PackedBits
from .outcomes import logit_confidence

if TYPE_CHECKING:  # pragma: no cover
    from .store import RunStore

__all__ = [
    "import_runs",
    "read_datamodels_release",
    "read_dattri_scores",
    "read_kronfluence_scores",
    "read_lira_experiments",
    "read_trak_scores",
]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
PathLike = str | os.PathLike[str]


def _npy(path: Path, what: str) -> np.ndarray:
    """A read-only memmap of an ``.npy`` file, or an :class:`ImportFileError` naming the file."""
    if not path.is_file():
        raise FileNotFoundError(f"{what}: {path} does not exist")
    try:
        out: np.ndarray = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ImportFileError(f"{path}: expected a readable .npy array ({what}), got: {exc}") from exc
    if not isinstance(out, np.ndarray):  # an .npz archive
        raise ImportFileError(f"{path}: expected a .npy array ({what}), got {type(out).__name__}")
    return out


def _bad(src: Path | str, msg: str, kind: type[Exception] = ValueError) -> Exception:
    """The error for ``src``: an :class:`ImportFileError` naming a file, else ``kind``
    naming the argument."""
    return ImportFileError(f"{src}: {msg}") if isinstance(src, Path) else kind(f"{src}: {msg}")


def _check_real(a: np.ndarray, src: Path | str) -> None:
    """Refuse complex, string, object... arrays (a cast would drop the imaginary part)."""
    if not (a.dtype == np.bool_ or np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise _bad(src, f"expected real numbers, got dtype {a.dtype}", TypeError)


def _as_f32(a: npt.ArrayLike, src: Path | str) -> F32:
    """``a`` as float32, refusing NaN, infinities and values beyond float32's range (which
    the cast would turn into inf)."""
    a = np.asarray(a)
    _check_real(a, src)
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.asarray(a, dtype=np.float32)
    if not np.isfinite(out).all():
        if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
            raise _bad(src, "expected finite values, got NaN or infinite ones")
        big = float(np.abs(a.astype(np.float64)).max())
        raise _bad(src, f"values up to {big:.3g} in magnitude do not fit float32 (max {np.finfo(np.float32).max:.3g})")
    return out


def _flags(a: np.ndarray, src: Path | str) -> npt.NDArray[np.bool_]:
    """Bool flags from a bool array or one that holds exactly 0 and 1."""
    a = np.asarray(a)
    if a.dtype == np.bool_:
        return a
    _check_real(a, src)
    if a.size and not np.isin(a, (0, 1)).all():
        bad = a[~np.isin(a, (0, 1))].flat[0]
        raise _bad(src, f"expected bool flags (or exactly 0/1), got {a.dtype} holding {bad!r}")
    return a.astype(bool)


def _int_labels(a: npt.ArrayLike, src: Path | str) -> npt.NDArray[np.int64]:
    """Integer labels; float labels must be integral (never truncated)."""
    a = np.asarray(a)
    if a.dtype == np.bool_:
        raise _bad(src, "expected integer labels, got dtype bool", TypeError)
    _check_real(a, src)
    if np.issubdtype(a.dtype, np.floating):
        ok = np.isfinite(a) & (a == np.round(a)) & (np.abs(a) < 2.0**53)
        if not ok.all():
            raise _bad(src, f"expected integer labels, got {a.dtype} holding {a[~ok].flat[0]!r}")
    return a.astype(np.int64)


def _load_json(path: Path, what: str) -> Any:
    """The JSON in ``path``, or an :class:`ImportFileError` naming it."""
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ImportFileError(f"{path}: expected a JSON {what}, got: {exc}") from exc


def read_datamodels_release(
    directory: PathLike,
    *,
    masks: str = "masks",
    outcomes: str = "margins",
    completed_only: bool = True,
    targets: npt.ArrayLike | slice | None = None,
    chunk_runs: int = 4096,
) -> tuple[PackedBits, F32]:
    """Masks and outcomes of a MadryLab datamodels store directory.

    Parameters
    ----------
    directory : str or os.PathLike
        Holds ``<masks>.npy`` ``(models, N)`` bool, ``<outcomes>.npy`` ``(models, T)``
        (any float dtype), optionally ``_completed.npy`` ``(models,)`` and the spec JSON
        the store was made from (any ``*.json`` with ``num_models`` and ``schema``), which
        is checked against the arrays.
    masks, outcomes : str
        The keys (file stems) of the masks and the outcomes.
    completed_only : bool, default True
        Keep only the models marked in ``_completed.npy`` (when it exists): a store whose
        workers did not all finish has zero rows for the others.
    targets : slice or array-like of int, optional
        The outcome columns (test examples) to read, e.g. ``slice(0, 500)``; all by default.
        Datamodels are fitted a block of targets at a time, and the whole CIFAR-10
        release's outcomes as float32 would take 12 GB.
    chunk_runs : int, default 4096
        Rows read and packed at a time.

    Returns
    -------
    masks : PackedBits, shape (R, N)
    outcomes : ndarray of float32, shape (R, T) (T: the chosen targets)

    Raises
    ------
    FileNotFoundError
        A file is missing.
    ValueError
        Files of different model counts, non-bool masks, non-finite outcomes of a completed
        model, a spec that disagrees with a file's shape or dtype, targets out of range.

    Examples
    --------
    >>> import memscore  # doctest: +SKIP
    >>> masks, margins = memscore.runs.importers.read_datamodels_release(
    ...     "cifar10_datamodels/", targets=slice(0, 500))  # doctest: +SKIP
    >>> dm = memscore.datamodels(masks, margins, val_fraction=0.05)  # doctest: +SKIP
    """
    root = Path(directory)
    chunk = check_int(chunk_runs, "chunk_runs", 1)
    m_path, y_path = root / f"{masks}.npy", root / f"{outcomes}.npy"
    m = _npy(m_path, "masks")
    y = _npy(y_path, "outcomes")
    if m.ndim != 2 or m.dtype != np.bool_:
        raise ImportFileError(f"{m_path}: expected a 2-D bool array (models, N), got {m.dtype} of shape {m.shape}")
    if y.ndim != 2 or not np.issubdtype(y.dtype, np.floating):
        raise ImportFileError(f"{y_path}: expected a 2-D float array (models, T), got {y.dtype} of shape {y.shape}")
    if y.shape[0] != m.shape[0]:
        raise ImportFileError(f"{y_path}: expected {m.shape[0]} models (as {m_path.name}), got {y.shape[0]}")
    for spec_path in sorted(root.glob("*.json")):
        _check_spec(spec_path, {masks: m, outcomes: y})
    models = m.shape[0]
    keep = np.ones(models, dtype=bool)
    done_path = root / "_completed.npy"
    if completed_only and done_path.exists():
        done = _npy(done_path, "_completed")
        if done.shape != (models,):
            raise ImportFileError(f"{done_path}: expected shape ({models},), got {done.shape}")
        keep = _flags(np.asarray(done), done_path)
    cols = _columns(targets, y.shape[1])
    n_keep = int(keep.sum())
    bits = np.empty((n_keep, (m.shape[1] + 7) // 8), dtype=np.uint8)
    out = np.empty((n_keep, cols.size), dtype=np.float32)
    at = 0
    with _RowReader(m) as read_m, _RowReader(y) as read_y:
        for s in range(0, models, chunk):
            e = min(s + chunk, models)
            sel = keep[s:e]
            k = int(sel.sum())
            if k == 0:
                continue
            bits[at : at + k] = np.packbits(read_m(s, e)[sel], axis=1)
            part = read_y(s, e)[sel][:, cols]
            with np.errstate(over="ignore"):
                out[at : at + k] = part
            # Checked after the cast: float64 outcomes beyond float32's range turned to inf.
            bad_rows = ~np.isfinite(out[at : at + k]).all(axis=1)
            if bad_rows.any():
                first = int(np.flatnonzero(bad_rows)[0])
                bad = int(np.flatnonzero(keep)[at + first])
                why = "NaN or infinite" if not np.isfinite(part[first]).all() else "beyond float32's range"
                raise ImportFileError(f"{y_path}: model {bad} has {why} outcomes (expected finite float32 values)")
            at += k
    return PackedBits(bits, int(m.shape[1])), out


class _RowReader:
    """Rows ``[s, e)`` of a C-ordered ``.npy`` memmap read with plain file reads into a fresh
    buffer: the file's pages are never mapped into the process, so a scan of a 21 GB release
    leaves the resident memory at the buffers' size (a memmap slice would keep every page it
    touched mapped). Other layouts are sliced from the memmap."""

    def __init__(self, a: np.ndarray) -> None:
        self.a = a
        self.path: str | None = getattr(a, "filename", None) if a.flags.c_contiguous else None
        self.offset = int(getattr(a, "offset", 0))
        self.f: io.BufferedReader | None = None if self.path is None else open(self.path, "rb")  # noqa: SIM115
        self.row_bytes = a.dtype.itemsize * int(np.prod(a.shape[1:], dtype=np.int64))

    def __enter__(self) -> _RowReader:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.f is not None:
            self.f.close()

    def __call__(self, s: int, e: int) -> np.ndarray:
        if self.f is None:
            return np.asarray(self.a[s:e])
        buf = np.empty((e - s, *self.a.shape[1:]), dtype=self.a.dtype)
        self.f.seek(self.offset + s * self.row_bytes)
        got = self.f.readinto(buf.data.cast("B"))
        if got != buf.nbytes:
            at = s + got // self.row_bytes
            raise ImportFileError(f"{self.path}: the file ends at model {at}, before its header's {self.a.shape[0]}")
        return buf


def _columns(targets: npt.ArrayLike | slice | None, t: int) -> npt.NDArray[np.intp]:
    """The outcome column indices ``targets`` names, checked against ``t`` columns."""
    if targets is None:
        return np.arange(t)
    if isinstance(targets, slice):
        return np.arange(t)[targets]
    idx = np.asarray(targets)
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"targets: expected a slice or a 1-D array of column indices, got {idx.dtype} {idx.shape}")
    if idx.size and (idx.min() < -t or idx.max() >= t):
        raise ValueError(f"targets: indices must lie in [0, {t}), got {idx.min()}..{idx.max()}")
    return idx.astype(np.intp)


def _check_spec(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Check a datamodels spec (``num_models``, ``schema``) against the arrays it declares.

    Other JSON files may sit in the directory: a file that is not JSON and does not
    mention ``num_models`` and ``schema`` is skipped; one that does (a truncated spec) or
    whose ``num_models`` / ``schema`` are malformed is an :class:`ImportFileError`.
    """
    try:
        raw = path.read_bytes()
    except OSError:
        return
    try:
        spec = json.loads(raw)
    except ValueError as exc:
        if b'"num_models"' in raw and b'"schema"' in raw:
            raise ImportFileError(f"{path}: expected a JSON datamodels spec, got: {exc}") from exc
        return  # not a spec
    if not isinstance(spec, dict) or "schema" not in spec or "num_models" not in spec:
        return
    schema, num = spec["schema"], spec["num_models"]
    if not isinstance(schema, dict) or isinstance(num, bool) or not isinstance(num, int) or num < 0:
        raise ImportFileError(
            f"{path}: expected num_models a non-negative int and schema an object, "
            f"got {type(num).__name__} {num!r} and {type(schema).__name__}"
        )
    for key, a in arrays.items():
        decl = schema.get(key)
        if decl is None:
            continue
        shape, dt = (decl.get("shape", []), decl.get("dtype")) if isinstance(decl, dict) else (None, None)
        if (
            not isinstance(shape, list)
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
            or (dt is not None and not isinstance(dt, str))
        ):
            raise ImportFileError(
                f"{path}: schema[{key!r}]: expected {{'shape': [int, ...], 'dtype': str}}, got {decl!r}"
            )
        want = (num, *shape)
        if a.shape != want:
            raise ImportFileError(f"{key}.npy: shape {a.shape} disagrees with {path.name} ({want})")
        if dt is not None:
            try:
                want_dt = np.dtype(getattr(np, dt)) if hasattr(np, dt) else np.dtype(dt)
            except TypeError as exc:
                raise ImportFileError(f"{path}: schema[{key!r}]: expected a numpy dtype name, got {dt!r}") from exc
            if want_dt != a.dtype:
                raise ImportFileError(f"{key}.npy: dtype {a.dtype} disagrees with {path.name} ({dt})")


def read_lira_experiments(
    logdir: PathLike, *, epoch: int | None = None, labels: npt.ArrayLike | None = None
) -> tuple[PackedBits, F64]:
    """Masks and per-augmentation φ of the runs in a ``mi_lira_2021`` log directory.

    Parameters
    ----------
    logdir : str or os.PathLike
        Holds ``experiment-*/keep.npy`` and ``experiment-*/logits/<epoch:010d>.npy``
        (``(N, 1, A, C)`` as ``inference.py`` writes them), and ``y_train.npy``.
    epoch : int, optional
        Which logits file; default: each experiment's latest.
    labels : array-like of int, shape (N,), optional
        Instead of ``y_train.npy``.

    Returns
    -------
    masks : PackedBits, shape (R, N)
        ``keep.npy`` of each experiment, in experiment order (``experiment-<id>_<n>``
        sorted by id).
    phi : ndarray of float64, shape (R, N, A)
        ``log p_y − log(1 − p_y)`` per augmentation (``score.py``'s score, computed as
        :func:`memscore.logit_confidence`).

    Raises
    ------
    FileNotFoundError
        No experiments, or an experiment without ``keep.npy`` or logits.
    ValueError
        Shapes that disagree between experiments, with the labels, or a logits file that
        is not ``(N, 1, A, C)``.
    """
    root = Path(logdir)
    if labels is not None:
        y = _int_labels(labels, "labels")
    else:
        y = _int_labels(_npy(root / "y_train.npy", "labels"), root / "y_train.npy")
    if y.ndim != 1:
        raise _bad("labels" if labels is not None else root / "y_train.npy", f"expected shape (N,), got {y.shape}")
    exps = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("experiment")]
    if not exps:
        raise FileNotFoundError(f"{root}: no experiment-* directories")
    exps.sort(key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)])
    keeps: list[np.ndarray] = []
    phis: list[F64] = []
    for exp in exps:
        keep = np.asarray(_npy(exp / "keep.npy", "keep"))
        if keep.shape != y.shape:
            raise ImportFileError(
                f"{exp / 'keep.npy'}: expected shape {y.shape} (one flag per label), got {keep.shape}"
            )
        keep = _flags(keep, exp / "keep.npy")
        files = sorted((exp / "logits").glob("*.npy"))
        if epoch is not None:
            files = [f for f in files if f.stem == f"{epoch:010d}"]
        if not files:
            raise FileNotFoundError(f"{exp}: no logits file" + ("" if epoch is None else f" for epoch {epoch}"))
        z = _npy(files[-1], "logits")
        if z.ndim != 4 or z.shape[0] != y.size or z.shape[1] != 1:
            raise ImportFileError(
                f"{files[-1]}: expected logits of shape (N={y.size}, 1, augmentations, classes), got {z.shape}"
            )
        n, _, a, c = z.shape
        _check_real(z, files[-1])
        if z.dtype == np.bool_ or np.issubdtype(z.dtype, np.integer):
            raise ImportFileError(f"{files[-1]}: expected float logits, got dtype {z.dtype}")
        flat = np.ascontiguousarray(np.asarray(z).reshape(n * a, c))
        if not np.isfinite(flat).all():
            raise ImportFileError(f"{files[-1]}: expected finite logits, got NaN or infinite values")
        try:
            phi = logit_confidence(flat, np.repeat(y, a)).reshape(n, a)
        except (TypeError, ValueError) as exc:  # labels beyond the logits' classes
            raise ImportFileError(f"{files[-1]}: {exc}") from exc
        if phis and phi.shape != phis[0].shape:
            raise ImportFileError(f"{files[-1]}: {a} augmentations, the first experiment has {phis[0].shape[1]}")
        keeps.append(keep)
        phis.append(phi)
    return PackedBits.pack(np.stack(keeps)), np.stack(phis)


def read_trak_scores(save_dir: PathLike, exp_name: str) -> F32:
    """``(T, N)`` TRAK scores of ``TRAKer.finalize_scores(exp_name)``.

    TRAK writes ``<save_dir>/scores/<exp_name>.mmap``: an ``.npy``-format memmap of shape
    ``(train_set_size, num_targets)`` (float16 or float32); ``experiments.json`` records
    ``num_targets``, checked when present.
    """
    root = Path(save_dir)
    path = root / "scores" / f"{exp_name}.mmap"
    s = _npy(path, "TRAK scores")
    if s.ndim != 2:
        raise ImportFileError(f"{path}: expected TRAK scores (train_set_size, num_targets), got shape {s.shape}")
    meta = root / "experiments.json"
    if meta.exists():
        exps = _load_json(meta, "object of experiments")
        entry = exps.get(exp_name, {}) if isinstance(exps, dict) else None
        want = entry.get("num_targets") if isinstance(entry, dict) else None
        if not isinstance(entry, dict) or not (want is None or (isinstance(want, int) and not isinstance(want, bool))):
            raise ImportFileError(
                f"{meta}: expected {{{exp_name!r}: {{'num_targets': int, ...}}, ...}}, got {str(exps)[:200]}"
            )
        if want is not None and want != s.shape[1]:
            raise ImportFileError(f"{path}: {s.shape[1]} targets, {meta.name} says {want}")
    return np.ascontiguousarray(_as_f32(s, path).T)


def read_dattri_scores(scores: Any) -> F32:
    """``(T, N)`` from a dattri ``attributor.attribute(train, test)`` result.

    dattri returns ``(num_train_samples, num_test_samples)``; give the tensor, an array,
    or the path of a ``.npy`` file or a ``torch.save`` of it (loaded with
    ``weights_only=True``: a file that holds code is refused).

    Raises
    ------
    ImportFileError
        A file that is not a saved array or tensor, or holds complex, non-finite or
        beyond-float32 values, or not 2-D.
    TypeError, ValueError
        The same for an array or tensor given directly (named ``scores``).
    """
    src: Path | str = "scores"
    if isinstance(scores, (str, os.PathLike)):
        src = path = Path(scores)
        if path.suffix == ".npy":
            scores = _npy(path, "dattri scores")
        else:
            import pickle

            import torch

            if not path.is_file():
                raise FileNotFoundError(f"dattri scores: {path} does not exist")
            try:
                scores = torch.load(path, map_location="cpu", weights_only=True)
            except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as exc:
                why = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
                raise ImportFileError(
                    f"{path}: expected a torch.save of a tensor, got an unreadable file ({why})"
                ) from exc
            if not isinstance(scores, (torch.Tensor, np.ndarray)):
                raise ImportFileError(f"{path}: expected a torch.save of a tensor, got {type(scores).__name__}")
    if hasattr(scores, "detach"):
        t = scores.detach().cpu()
        if t.is_complex():
            raise _bad(src, f"expected real numbers, got dtype {t.dtype}", TypeError)
        scores = t.numpy() if t.dtype.is_floating_point and t.itemsize == 8 else t.float().numpy()
    a = _as_f32(scores, src)
    if a.ndim != 2:
        raise _bad(src, f"expected dattri scores (num_train, num_test), got shape {a.shape}")
    return np.ascontiguousarray(a.T)


#: safetensors dtype names and their numpy types (BF16 is widened by hand).
_SAFETENSORS = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.uint16}


#: safetensors' own cap on the JSON header (100 MB).
_MAX_HEADER = 100_000_000


def read_kronfluence_scores(path: PathLike, key: str = "all_modules") -> F32:
    """``(T, N)`` Kronfluence pairwise scores from ``pairwise_scores.safetensors``.

    Kronfluence saves ``{"all_modules": (n_query, n_train)}`` (or one tensor per module)
    in ``<output_dir>/<analysis>/scores_<name>/pairwise_scores.safetensors``; ``path`` is
    that file or its directory. The safetensors layout (8-byte little-endian header size,
    a JSON header, the raw buffer) is read directly, so neither torch nor safetensors is
    needed. Every declared size and offset is checked against the file's real size before
    anything is read.

    Raises
    ------
    ImportFileError
        A header that is not JSON or not the layout above, sizes or offsets beyond the
        file, a tensor that is not a 2-D F64/F32/F16/BF16 of the declared byte count,
        non-finite values or values beyond float32's range.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "pairwise_scores.safetensors"
    if not p.is_file():
        raise FileNotFoundError(f"Kronfluence scores: {p} does not exist")
    with open(p, "rb") as f:
        total = os.fstat(f.fileno()).st_size
        head = f.read(8)
        if len(head) != 8:
            raise ImportFileError(f"{p}: expected an 8-byte header size, got a {total}-byte file")
        size = int.from_bytes(head, "little")
        if size > min(total - 8, _MAX_HEADER):
            raise ImportFileError(
                f"{p}: the header declares {size} bytes, the file has {total - 8} after the size "
                f"(and safetensors allows at most {_MAX_HEADER})"
            )
        try:
            header = json.loads(f.read(size))
        except ValueError as exc:
            raise ImportFileError(f"{p}: expected a JSON safetensors header, got: {exc}") from exc
        if not isinstance(header, dict):
            raise ImportFileError(f"{p}: expected a JSON object header, got {type(header).__name__}")
        if key not in header:
            names = sorted(k for k in header if k != "__metadata__")
            raise ImportFileError(f"{p}: no tensor {key!r} (has {names})")
        info = header[key]
        dtype = info.get("dtype") if isinstance(info, dict) else None
        shape = info.get("shape") if isinstance(info, dict) else None
        offs = info.get("data_offsets") if isinstance(info, dict) else None

        def ints(v: object, n: int) -> bool:
            return (
                isinstance(v, list)
                and len(v) == n
                and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in v)
            )

        if dtype not in _SAFETENSORS or not ints(shape, 2) or not ints(offs, 2):
            raise ImportFileError(
                f"{p}: {key}: expected a 2-D float tensor (dtype one of {sorted(_SAFETENSORS)}, shape [T, N], "
                f"data_offsets [begin, end]), got {str(info)[:200]}"
            )
        assert isinstance(shape, list) and isinstance(offs, list) and isinstance(dtype, str)
        begin, end = offs
        itemsize = np.dtype(_SAFETENSORS[dtype]).itemsize
        want = shape[0] * shape[1] * itemsize
        if end < begin or end - begin != want:
            raise ImportFileError(
                f"{p}: {key}: data_offsets {offs} span {end - begin} bytes, shape {shape} of {dtype} needs {want}"
            )
        if 8 + size + end > total:
            raise ImportFileError(f"{p}: {key}: data ends at byte {8 + size + end}, the file has {total}")
        f.seek(8 + size + begin)
        raw = np.frombuffer(f.read(end - begin), dtype=_SAFETENSORS[dtype])
    if dtype == "BF16":
        raw = (raw.astype(np.uint32) << 16).view(np.float32)
    return np.ascontiguousarray(_as_f32(raw.reshape(shape), p))


def import_runs(
    store: RunStore,
    masks: PackedBits,
    test_phi: npt.ArrayLike | None = None,
    *,
    train_phi: npt.ArrayLike | None = None,
    run_id_prefix: str = "imported",
) -> list[str]:
    """Add runs read by the functions above to a store, one run file each.

    Parameters
    ----------
    store : RunStore
        Created for ``masks.n`` training examples (and ``test_phi``'s test examples).
    masks : PackedBits, shape (R, N)
    test_phi, train_phi : array-like, shapes (R, T) and (R, N), optional
        Outcomes (a LiRA ``(R, N, A)`` φ is averaged over its augmentations first). Read
        a run at a time: a memmap (e.g. a release's ``margins.npy`` opened with
        ``np.load(..., mmap_mode="r")``) is streamed, never converted whole.

    Returns
    -------
    list of str
        The run ids, ``<prefix>-<r:06d>``.
    """
    te = None if test_phi is None else np.asanyarray(test_phi)
    tr = None if train_phi is None else np.asanyarray(train_phi)
    for name, a in (("test_phi", te), ("train_phi", tr)):
        if a is not None and a.shape[0] != masks.shape[0]:
            raise ValueError(f"{name}: expected {masks.shape[0]} runs (as masks), got {a.shape[0]}")

    def row_of(a: np.ndarray | None, r: int) -> F64 | None:
        if a is None:
            return None
        v = np.asarray(a[r], dtype=np.float64)
        return v.mean(axis=1) if v.ndim == 2 else v  # (N, A) views: their mean

    ids = []
    for r in range(masks.shape[0]):
        row = np.unpackbits(masks.bits[r], count=masks.n).astype(bool)
        ids.append(
            store.add_run(row, test_phi=row_of(te, r), train_phi=row_of(tr, r), run_id=f"{run_id_prefix}-{r:06d}")
        )
    return ids
