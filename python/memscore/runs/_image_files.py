"""Readers of the image datasets' files in torchvision's on-disk formats, and their one check.

Every reader ends in :func:`check_examples` (images and labels agree in number, labels are
integers within the declared classes, images have the format's dtype and shape); every
failure is a :class:`~memscore.DatasetError` naming the file, the field, what was expected
and what came. A missing file is a ``FileNotFoundError`` naming it (the caller downloads or
says how to get it). No reader runs code from a file: CIFAR's pickled batches are read by
:class:`BatchUnpickler`, which builds only dicts, lists, bytes, str, numbers and numpy
arrays; MNIST's idx files are parsed here with numpy; SVHN's ``.mat`` files by scipy.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DatasetError

__all__ = ["BatchUnpickler", "check_examples", "read_split", "download_files"]


def _numpy_globals() -> dict[tuple[str, str], Any]:
    """The globals a pickled numpy array names, under numpy 1's and numpy 2's module names."""
    try:  # numpy >= 2
        from numpy._core import multiarray, numeric
    except ImportError:  # pragma: no cover - numpy 1
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    out: dict[tuple[str, str], Any] = {}
    for mod in ("numpy.core", "numpy._core"):
        out[(f"{mod}.multiarray", "_reconstruct")] = multiarray._reconstruct
        out[(f"{mod}.numeric", "_frombuffer")] = numeric._frombuffer  # type: ignore[attr-defined]  # protocol 5
    out[("numpy", "ndarray")] = np.ndarray
    out[("numpy", "dtype")] = np.dtype
    return out


class BatchUnpickler(pickle.Unpickler):
    """An unpickler that builds only what a CIFAR python batch holds.

    Pickle's own types (dict, list, tuple, bytes, str, int, float, bool, None) need no
    global; the globals allowed are exactly those that rebuild a numpy array
    (``numpy.core.multiarray._reconstruct``, ``numpy.ndarray``, ``numpy.dtype``, and
    ``numpy.core.numeric._frombuffer`` for protocol 5, under numpy 1's and numpy 2's module
    names) and ``_codecs.encode`` (how Python 3 writes bytes at protocols 0 to 2). Any other
    global (``os.system``, ``builtins.eval``, a class) and any persistent id is refused with
    a :class:`~memscore.DatasetError` naming the file, before anything is called.
    """

    _ALLOWED: dict[tuple[str, str], Any] | None = None

    def __init__(self, file: io.BufferedIOBase, path: Path) -> None:
        super().__init__(file, encoding="bytes")
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        """The allowed global ``module.name``; anything else is a DatasetError."""
        if BatchUnpickler._ALLOWED is None:
            import codecs

            BatchUnpickler._ALLOWED = {**_numpy_globals(), ("_codecs", "encode"): codecs.encode}
        obj = BatchUnpickler._ALLOWED.get((module, name))
        if obj is None:
            raise DatasetError(
                f"{self.path}: pickle: expected only dicts, lists, bytes, str, numbers and numpy arrays "
                f"(a CIFAR python batch), got a reference to {module}.{name}; refused, nothing was run"
            )
        return obj

    def persistent_load(self, pid: Any) -> Any:
        """Persistent ids are not in the format: refused."""
        raise DatasetError(f"{self.path}: pickle: expected no persistent ids (a CIFAR python batch), got one")


def _open_file(path: Path) -> io.BufferedReader:
    """``path`` opened for reading; missing -> FileNotFoundError, a directory -> DatasetError."""
    if path.is_dir():
        raise DatasetError(f"{path}: expected a file, got a directory")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return open(path, "rb")  # noqa: SIM115 - the caller closes it
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from exc


def _kind(a: np.ndarray) -> str:
    """What an array of labels holds, for messages."""
    names = {"f": "floats", "b": "booleans", "U": "strings", "S": "bytes", "c": "complex numbers"}
    return names.get(a.dtype.kind, f"dtype {a.dtype}")


def _as_int_labels(path: Path | str, field: str, y: Any, whole_floats: bool) -> np.ndarray:
    """``y`` as a 1-D integer array, or a DatasetError naming the first label that is not one."""
    if isinstance(y, np.ndarray) and y.dtype == object and y.ndim == 1:
        y = y.tolist()  # an object array: look at its elements as at a list's
    if isinstance(y, (list, tuple)):  # CIFAR's labels: a list of Python ints
        bad = next((i for i, v in enumerate(y) if isinstance(v, bool) or not isinstance(v, (int, np.integer))), None)
        if bad is not None:
            v = y[bad]
            raise DatasetError(
                f"{path}: {field}: expected integer labels, got {v!r} ({type(v).__name__}) at index {bad}"
            )
    elif not isinstance(y, np.ndarray):
        raise DatasetError(f"{path}: {field}: expected a list or array of integer labels, got a {type(y).__name__}")
    labels = np.asarray(y)
    if labels.dtype == object:  # Python ints beyond int64
        raise DatasetError(f"{path}: {field}: expected integer labels below 2**63, got a larger one")
    if labels.ndim != 1:
        raise DatasetError(f"{path}: {field}: expected one label per image (shape (n,)), got shape {labels.shape}")
    if labels.dtype.kind in "iu":
        return labels
    ok = (
        np.isfinite(labels) & (labels == np.round(labels)) if labels.dtype.kind == "f" else np.zeros(labels.shape, bool)
    )
    if whole_floats and ok.all():
        return labels
    i = int(np.flatnonzero(~ok)[0]) if not ok.all() else 0
    at = f", e.g. {labels[i].item()!r} at index {i}" if labels.size else ""
    raise DatasetError(f"{path}: {field}: expected integer labels, got {_kind(labels)}{at}")


def check_examples(
    x_file: Path | str,
    x: Any,
    y_file: Path | str,
    y: Any,
    *,
    n_classes: int,
    shape: tuple[int, ...],
    dtype: Any = np.uint8,
    x_field: str = "data",
    y_field: str = "labels",
    first_label: int = 0,
    whole_floats: bool = False,
) -> np.ndarray:
    """The one check of what a dataset reader read: returns the labels as int64.

    Parameters
    ----------
    x_file, y_file : Path or str
        The files the images and the labels came from (the same file for CIFAR and SVHN),
        or what made them (a generator's name).
    x : ndarray
        Images, one per row, each of ``shape`` and of ``dtype``.
    y : array-like
        Labels, one per image: integers in ``first_label .. first_label + n_classes - 1``.
    n_classes : int
        The classes the dataset declares.
    shape : tuple of int
        The shape of one image as the format defines it.
    dtype : numpy dtype or None
        The images' dtype as the format defines it (None: any real dtype).
    x_field, y_field : str
        The fields' names in the files, for messages.
    first_label : int, default 0
        The smallest label (SVHN's files count from 1).
    whole_floats : bool, default False
        Accept float labels that are whole numbers (MATLAB stores numbers as doubles).

    Returns
    -------
    ndarray of int64, shape (n,)

    Raises
    ------
    DatasetError
        Naming the file, the field, what was expected and what came.
    """
    if not isinstance(x, np.ndarray):
        raise DatasetError(f"{x_file}: {x_field}: expected a numpy array of images, got a {type(x).__name__}")
    if dtype is not None and x.dtype != np.dtype(dtype):
        raise DatasetError(f"{x_file}: {x_field}: expected {np.dtype(dtype)} images, got dtype {x.dtype}")
    if x.ndim != 1 + len(shape) or x.shape[1:] != shape:
        raise DatasetError(f"{x_file}: {x_field}: expected shape (n, {', '.join(map(str, shape))}), got {x.shape}")
    if x.shape[0] == 0:
        raise DatasetError(f"{x_file}: {x_field}: expected at least one image, got none")
    labels = _as_int_labels(y_file, y_field, y, whole_floats)
    if labels.shape[0] != x.shape[0]:
        other = "" if y_file == x_file else f" in {x_file}"
        raise DatasetError(
            f"{y_file}: {y_field}: expected {x.shape[0]} labels (one per image of {x_field}{other}), "
            f"got {labels.shape[0]}"
        )
    last = first_label + n_classes - 1
    out_of_range = (labels < first_label) | (labels > last)
    if out_of_range.any():
        i = int(np.flatnonzero(out_of_range)[0])
        raise DatasetError(
            f"{y_file}: {y_field}: expected classes in {first_label}..{last}, got {labels[i].item()!r} at index {i} "
            f"({int(out_of_range.sum())} label(s) out of range)"
        )
    return np.asarray(labels, dtype=np.int64)


# -- CIFAR-10 / CIFAR-100: pickled dicts of bytes keys ------------------------------------

_CIFAR = {
    "cifar10": ("cifar-10-batches-py", b"labels", 10),
    "cifar100": ("cifar-100-python", b"fine_labels", 100),
}


def _cifar_batch(path: Path, label_key: bytes, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (n, 3, 32, 32), int64 labels) of one CIFAR python batch."""
    with _open_file(path) as fh:
        try:
            batch = BatchUnpickler(fh, path).load()
        except DatasetError:
            raise
        except Exception as exc:  # any failure of the parse: EOFError, UnpicklingError, ValueError...
            raise DatasetError(
                f"{path}: expected a CIFAR python batch (a pickle), got a file pickle cannot read "
                f"({type(exc).__name__}: {exc})"
            ) from exc
    if not isinstance(batch, dict):
        raise DatasetError(f"{path}: expected a dict (a CIFAR python batch), got a {type(batch).__name__}")
    for key in (b"data", label_key):
        if key not in batch:
            keys = ", ".join(sorted(repr(k) for k in batch)) or "none"
            raise DatasetError(f"{path}: expected the keys b'data' and {label_key!r}, got {keys}")
    field = label_key.decode()
    y = check_examples(
        path, batch[b"data"], path, batch[label_key], n_classes=n_classes, shape=(3 * 32 * 32,), y_field=field
    )
    return np.ascontiguousarray(batch[b"data"].reshape(-1, 3, 32, 32)), y


# -- SVHN: MATLAB files with X (32, 32, 3, n) and y (n, 1), digit 0 labelled 10 ----------


def _svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (n, 3, 32, 32), int64 labels 0..9) of one SVHN ``.mat`` file."""
    from scipy.io import loadmat

    with _open_file(path) as fh:
        try:
            mat = loadmat(fh)
        except Exception as exc:  # MatReadError, ValueError, NotImplementedError (v7.3)...
            raise DatasetError(
                f"{path}: expected a MATLAB .mat file (SVHN's format), got a file scipy cannot read "
                f"({type(exc).__name__}: {exc})"
            ) from exc
    if "X" not in mat or "y" not in mat:
        keys = ", ".join(sorted(k for k in mat if not k.startswith("__"))) or "none"
        raise DatasetError(f"{path}: expected the variables X and y, got {keys}")
    x_raw, y_raw = mat["X"], np.asarray(mat["y"])
    if not isinstance(x_raw, np.ndarray) or x_raw.ndim != 4 or x_raw.shape[:3] != (32, 32, 3):
        got = x_raw.shape if isinstance(x_raw, np.ndarray) else type(x_raw).__name__
        raise DatasetError(f"{path}: X: expected shape (32, 32, 3, n), got {got}")
    if y_raw.ndim == 2 and y_raw.shape[1] == 1:
        y_raw = y_raw[:, 0]
    x = np.transpose(x_raw, (3, 2, 0, 1))
    y = check_examples(
        path, x, path, y_raw, n_classes=10, shape=(3, 32, 32), x_field="X", y_field="y", first_label=1,
        whole_floats=True,
    )  # fmt: skip
    return np.ascontiguousarray(x), y % 10  # the files label digit 0 as 10


# -- MNIST / Fashion-MNIST: idx files ------------------------------------------------------


def _read_idx(path: Path, rank: int) -> np.ndarray:
    """The uint8 array of rank ``rank`` in an idx file (big-endian dims, then the data)."""
    with _open_file(path) as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DatasetError(f"{path}: header: expected an idx file (two zero bytes, a type, a rank), got {data[:4]!r}")
    if data[2] != 0x08:
        raise DatasetError(f"{path}: type: expected 0x08 (uint8), got {data[2]:#04x}")
    if data[3] != rank:
        raise DatasetError(f"{path}: rank: expected {rank}, got {data[3]}")
    start = 4 + 4 * rank
    if len(data) < start:
        raise DatasetError(f"{path}: header: expected {start} bytes, got {len(data)} (truncated)")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", rank, offset=4))
    want, got = int(np.prod(dims)), len(data) - start
    if got != want:
        raise DatasetError(f"{path}: data: expected {want} bytes for shape {dims}, got {got}")
    return np.frombuffer(data, np.uint8, offset=start).reshape(dims)


def _idx_pair(folder: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (n, 1, 28, 28), int64 labels) of an MNIST-style idx pair."""
    x_file, y_file = folder / f"{prefix}-images-idx3-ubyte", folder / f"{prefix}-labels-idx1-ubyte"
    x, y = _read_idx(x_file, 3), _read_idx(y_file, 1)
    labels = check_examples(x_file, x, y_file, y, n_classes=10, shape=(28, 28), x_field="images")
    return np.ascontiguousarray(x[:, None]), labels


_MNIST_FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}


def read_split(name: str, root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (n, C, H, W), int64 labels) of one split of ``name`` from ``root``.

    Raises
    ------
    FileNotFoundError
        A file is missing (naming it).
    DatasetError
        A file is there but is not what its format holds.
    """
    if name in _CIFAR:
        folder, label_key, c = _CIFAR[name]
        if name == "cifar10":
            files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        else:
            files = [split]
        parts = [_cifar_batch(root / folder / f, label_key, c) for f in files]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    if name == "svhn":
        return _svhn_mat(root / f"{split}_32x32.mat")
    return _idx_pair(root / _MNIST_FOLDERS[name] / "raw", "train" if split == "train" else "t10k")


def download_files(name: str, root: Path) -> None:
    """Fetch ``name``'s files into ``root`` with torchvision's download code (needs the network).

    CIFAR's archive and SVHN's files are fetched and checked against their MD5 sums without
    torchvision opening them; MNIST's through its dataset class, which parses the idx files.

    Raises
    ------
    ImportError
        torchvision is not installed.
    FileNotFoundError
        The download failed (the message says so and how to get the files otherwise).
    """
    try:
        from torchvision import datasets as tvd
        from torchvision.datasets.utils import download_and_extract_archive, download_url
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"{name}: download=True needs torchvision: pip install 'memscore[vision]'") from exc
    try:
        if name in _CIFAR:
            cls = tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100
            download_and_extract_archive(cls.url, str(root), filename=cls.filename, md5=cls.tgz_md5)
        elif name == "svhn":
            for split in ("train", "test"):
                url, filename, md5 = tvd.SVHN.split_list[split]
                download_url(url, str(root), filename, md5)
        else:
            mnist = tvd.MNIST if name == "mnist" else tvd.FashionMNIST
            mnist(str(root), train=True, download=True)
    except Exception as exc:  # urllib's URLError is an OSError; a bad checksum a RuntimeError
        raise FileNotFoundError(
            f"{name}: download=True could not download into {root} ({type(exc).__name__}: {exc}), so the "
            f"files are still missing; without a network, copy torchvision's files for {name} there"
        ) from exc
