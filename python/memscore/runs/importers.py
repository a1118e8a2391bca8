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
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .._validate import check_int
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
    """A read-only memmap of an ``.npy`` file, or a ValueError naming the file."""
    if not path.is_file():
        raise FileNotFoundError(f"{what}: {path} does not exist")
    try:
        out: np.ndarray = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise ValueError(f"{what}: {path} is not a readable .npy array ({exc})") from exc
    return out


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
    m = _npy(root / f"{masks}.npy", "masks")
    y = _npy(root / f"{outcomes}.npy", "outcomes")
    if m.ndim != 2 or m.dtype != np.bool_:
        raise ValueError(f"masks: expected a 2-D bool array (models, N), got {m.dtype} of shape {m.shape}")
    if y.ndim != 2 or not np.issubdtype(y.dtype, np.floating):
        raise ValueError(f"outcomes: expected a 2-D float array (models, T), got {y.dtype} of shape {y.shape}")
    if y.shape[0] != m.shape[0]:
        raise ValueError(f"{outcomes}.npy has {y.shape[0]} models but {masks}.npy has {m.shape[0]}")
    for spec_path in sorted(root.glob("*.json")):
        _check_spec(spec_path, {masks: m, outcomes: y})
    models = m.shape[0]
    keep = np.ones(models, dtype=bool)
    done_path = root / "_completed.npy"
    if completed_only and done_path.exists():
        done = _npy(done_path, "_completed")
        if done.shape != (models,):
            raise ValueError(f"_completed.npy: expected shape ({models},), got {done.shape}")
        keep = np.asarray(done).astype(bool)
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
            bad_rows = ~np.isfinite(part).all(axis=1)
            if bad_rows.any():
                bad = int(np.flatnonzero(keep)[at + int(np.flatnonzero(bad_rows)[0])])
                raise ValueError(f"{outcomes}.npy: model {bad} has NaN or infinite outcomes")
            out[at : at + k] = part
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
            raise ValueError(f"{self.path}: the file ends at model {at}, before its header's {self.a.shape[0]}")
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
    """Check a datamodels spec (``num_models``, ``schema``) against the arrays it declares."""
    try:
        spec = json.loads(path.read_text())
    except (OSError, ValueError):
        return  # not a spec: other JSON files may sit in the directory
    if not isinstance(spec, dict) or "schema" not in spec or "num_models" not in spec:
        return
    for key, a in arrays.items():
        decl = spec["schema"].get(key)
        if decl is None:
            continue
        want = (int(spec["num_models"]), *(int(d) for d in decl.get("shape", [])))
        if a.shape != want:
            raise ValueError(f"{key}.npy: shape {a.shape} disagrees with {path.name} ({want})")
        dt = decl.get("dtype")
        if dt is not None and hasattr(np, dt) and np.dtype(getattr(np, dt)) != a.dtype:
            raise ValueError(f"{key}.npy: dtype {a.dtype} disagrees with {path.name} ({dt})")


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
    y = np.asarray(labels if labels is not None else _npy(root / "y_train.npy", "labels"), dtype=np.int64)
    exps = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("experiment")]
    if not exps:
        raise FileNotFoundError(f"{root}: no experiment-* directories")
    exps.sort(key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)])
    keeps: list[np.ndarray] = []
    phis: list[F64] = []
    for exp in exps:
        keep = np.asarray(_npy(exp / "keep.npy", "keep"))
        if keep.shape != y.shape:
            raise ValueError(f"{exp / 'keep.npy'}: expected shape {y.shape} (one flag per label), got {keep.shape}")
        files = sorted((exp / "logits").glob("*.npy"))
        if epoch is not None:
            files = [f for f in files if f.stem == f"{epoch:010d}"]
        if not files:
            raise FileNotFoundError(f"{exp}: no logits file" + ("" if epoch is None else f" for epoch {epoch}"))
        z = _npy(files[-1], "logits")
        if z.ndim != 4 or z.shape[0] != y.size or z.shape[1] != 1:
            raise ValueError(
                f"{files[-1]}: expected logits of shape (N={y.size}, 1, augmentations, classes), got {z.shape}"
            )
        n, _, a, c = z.shape
        flat = np.ascontiguousarray(np.asarray(z).reshape(n * a, c))
        phi = logit_confidence(flat, np.repeat(y, a)).reshape(n, a)
        if phis and phi.shape != phis[0].shape:
            raise ValueError(f"{files[-1]}: {a} augmentations, the first experiment has {phis[0].shape[1]}")
        keeps.append(keep.astype(bool))
        phis.append(phi)
    return PackedBits.pack(np.stack(keeps)), np.stack(phis)


def read_trak_scores(save_dir: PathLike, exp_name: str) -> F32:
    """``(T, N)`` TRAK scores of ``TRAKer.finalize_scores(exp_name)``.

    TRAK writes ``<save_dir>/scores/<exp_name>.mmap``: an ``.npy``-format memmap of shape
    ``(train_set_size, num_targets)`` (float16 or float32); ``experiments.json`` records
    ``num_targets``, checked when present.
    """
    root = Path(save_dir)
    s = _npy(root / "scores" / f"{exp_name}.mmap", "TRAK scores")
    if s.ndim != 2:
        raise ValueError(f"TRAK scores: expected (train_set_size, num_targets), got shape {s.shape}")
    meta = root / "experiments.json"
    if meta.exists():
        want = json.loads(meta.read_text()).get(exp_name, {}).get("num_targets")
        if want is not None and int(want) != s.shape[1]:
            raise ValueError(f"TRAK scores: {s.shape[1]} targets, experiments.json says {want}")
    return np.ascontiguousarray(np.asarray(s, dtype=np.float32).T)


def read_dattri_scores(scores: Any) -> F32:
    """``(T, N)`` from a dattri ``attributor.attribute(train, test)`` result.

    dattri returns ``(num_train_samples, num_test_samples)``; give the tensor, an array,
    or the path of a ``.npy`` file or a ``torch.save`` of it.
    """
    if isinstance(scores, (str, os.PathLike)):
        path = Path(scores)
        if path.suffix == ".npy":
            scores = _npy(path, "dattri scores")
        else:
            import torch

            scores = torch.load(path, map_location="cpu", weights_only=True)
    if hasattr(scores, "detach"):
        scores = scores.detach().cpu().float().numpy()
    a = np.asarray(scores, dtype=np.float32)
    if a.ndim != 2:
        raise ValueError(f"dattri scores: expected (num_train, num_test), got shape {a.shape}")
    return np.ascontiguousarray(a.T)


#: safetensors dtype names and their numpy types (BF16 is widened by hand).
_SAFETENSORS = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.uint16}


def read_kronfluence_scores(path: PathLike, key: str = "all_modules") -> F32:
    """``(T, N)`` Kronfluence pairwise scores from ``pairwise_scores.safetensors``.

    Kronfluence saves ``{"all_modules": (n_query, n_train)}`` (or one tensor per module)
    in ``<output_dir>/<analysis>/scores_<name>/pairwise_scores.safetensors``; ``path`` is
    that file or its directory. The safetensors layout (8-byte little-endian header size,
    a JSON header, the raw buffer) is read directly, so neither torch nor safetensors is
    needed.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "pairwise_scores.safetensors"
    with open(p, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(size))
        if key not in header:
            names = sorted(k for k in header if k != "__metadata__")
            raise ValueError(f"{p}: no tensor {key!r} (has {names})")
        info = header[key]
        if info["dtype"] not in _SAFETENSORS or len(info["shape"]) != 2:
            raise ValueError(f"{p}: {key} is {info['dtype']} of shape {info['shape']}; expected a 2-D float tensor")
        begin, end = info["data_offsets"]
        f.seek(8 + size + begin)
        raw = np.frombuffer(f.read(end - begin), dtype=_SAFETENSORS[info["dtype"]])
    if info["dtype"] == "BF16":
        raw = (raw.astype(np.uint32) << 16).view(np.float32)
    return np.ascontiguousarray(raw.reshape(info["shape"]), dtype=np.float32)


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
