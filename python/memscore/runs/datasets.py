"""Small embedded datasets with known memorization targets (no download).

Each function returns a :class:`TaskData` of numpy arrays: float32 inputs, int64 labels,
and the ground-truth ``corrupted`` mask of training examples whose label was replaced by a
wrong one. Corrupted labels cannot be predicted from the other examples, so a model fits
them only by memorizing them: a good memorization score ranks them first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .._validate import check_bool, check_choice, check_float, check_int
from ._image_files import check_examples, download_files, read_split

__all__ = [
    "TaskData", "modular_arithmetic", "digits", "mnist1d", "image_dataset", "IMAGE_DATASETS", "DATASETS", "load_dataset",
]  # fmt: skip

_OPS = {
    "add": lambda a, b, p: (a + b) % p,
    "sub": lambda a, b, p: (a - b) % p,
    "mul": lambda a, b, p: (a * b) % p,
}


@dataclass(frozen=True)
class TaskData:
    """A classification task with a train / test split and known label corruption.

    Attributes
    ----------
    name : str
        Short description.
    x_train, x_test : ndarray of float32, shape (n, d)
        Inputs.
    y_train : ndarray of int64, shape (n_train,)
        Training labels *after* corruption (what models see).
    y_test : ndarray of int64, shape (n_test,)
        Clean test labels.
    clean_train : ndarray of int64, shape (n_train,)
        Training labels before corruption.
    corrupted : ndarray of bool, shape (n_train,)
        True where ``y_train != clean_train``.
    n_classes : int
        Number of classes.
    info : dict
        Extra description (JSON-serializable), e.g. the (a, b) pairs.
    """

    name: str
    x_train: npt.NDArray[np.float32]
    y_train: npt.NDArray[np.int64]
    x_test: npt.NDArray[np.float32]
    y_test: npt.NDArray[np.int64]
    clean_train: npt.NDArray[np.int64]
    corrupted: npt.NDArray[np.bool_]
    n_classes: int
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_train(self) -> int:
        """Number of training examples."""
        return int(self.y_train.shape[0])

    @property
    def n_test(self) -> int:
        """Number of test examples."""
        return int(self.y_test.shape[0])

    @property
    def n_features(self) -> int:
        """Input dimension."""
        return int(self.x_train.shape[1])

    def __repr__(self) -> str:
        return (
            f"TaskData({self.name!r}, n_train={self.n_train}, n_test={self.n_test}, "
            f"n_features={self.n_features}, n_classes={self.n_classes}, corrupted={int(self.corrupted.sum())})"
        )


def _check_fraction(x: float, name: str, *, open_low: bool = False, open_high: bool = False) -> float:
    return check_float(x, name, 0.0, 1.0, low_open=open_low, high_open=open_high)


def _corrupt(
    labels: np.ndarray, n_classes: int, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Replace round(fraction * n) labels, chosen uniformly, by a uniformly drawn *wrong* class."""
    n = labels.shape[0]
    k = int(round(fraction * n))
    idx = rng.choice(n, size=k, replace=False)
    noisy = labels.copy()
    # An offset in 1..C-1 always gives a different class.
    noisy[idx] = (labels[idx] + rng.integers(1, n_classes, size=k)) % n_classes
    corrupted = np.zeros(n, dtype=np.bool_)
    corrupted[idx] = True
    return noisy, corrupted


def modular_arithmetic(
    p: int = 97, op: str = "add", train_fraction: float = 0.5, corrupt: float = 0.1, seed: int = 0
) -> TaskData:
    """All pairs ``(a, b)`` of ``0..p-1`` labelled ``(a op b) mod p``, with corrupted training labels.

    Inputs are the concatenated one-hot codes of ``a`` and ``b`` (``2p`` features). A random
    ``train_fraction`` of the ``p²`` pairs is the training set; ``corrupt`` of the training
    labels are replaced by a uniformly drawn wrong class. Test labels are clean. This is the
    setting of Doshi et al. (2024), "To grok or not to grok", where networks memorize the
    corrupted labels yet generalize on the rest.

    Parameters
    ----------
    p : int, default 97
        Modulus, at least 2.
    op : {"add", "sub", "mul"}, default "add"
        The operation.
    train_fraction : float, default 0.5
        Fraction of pairs in the training set, in (0, 1).
    corrupt : float, default 0.1
        Fraction of training labels corrupted, in [0, 1].
    seed : int, default 0
        Seed of the split and the corruption.

    Returns
    -------
    TaskData

    Raises
    ------
    TypeError
        A value of the wrong type.
    ValueError
        A value out of range.

    Examples
    --------
    >>> d = modular_arithmetic(p=7, seed=1)
    >>> d.x_train.shape[1], d.n_classes
    (14, 7)
    """
    p = check_int(p, "p", 2)
    check_choice(op, "op", sorted(_OPS))
    train_fraction = _check_fraction(train_fraction, "train_fraction", open_low=True, open_high=True)
    corrupt = _check_fraction(corrupt, "corrupt")
    rng = np.random.default_rng(seed)
    a, b = np.divmod(np.arange(p * p, dtype=np.int64), p)
    y = _OPS[op](a, b, p).astype(np.int64)
    x = np.zeros((p * p, 2 * p), dtype=np.float32)
    x[np.arange(p * p), a] = 1.0
    x[np.arange(p * p), p + b] = 1.0
    perm = rng.permutation(p * p)
    n_train = min(max(int(round(train_fraction * p * p)), 1), p * p - 1)
    tr, te = np.sort(perm[:n_train]), np.sort(perm[n_train:])
    noisy, corrupted = _corrupt(y[tr], p, corrupt, rng)
    return TaskData(
        name=f"modular {op} mod {p}",
        x_train=x[tr],
        y_train=noisy,
        x_test=x[te],
        y_test=y[te],
        clean_train=y[tr],
        corrupted=corrupted,
        n_classes=p,
        info={
            "p": p,
            "op": op,
            "train_pairs": np.stack([a[tr], b[tr]], 1).tolist(),
            "test_pairs": np.stack([a[te], b[te]], 1).tolist(),
        },
    )


def digits(label_noise: float = 0.1, *, test_fraction: float = 0.3, seed: int = 0) -> TaskData:
    """scikit-learn's bundled 8×8 handwritten digits (1,797 images, no download) with flipped labels.

    Pixels are scaled to [0, 1] (64 features). A stratified random ``test_fraction`` is held
    out with clean labels; ``label_noise`` of the training labels are flipped to a uniformly
    drawn wrong digit. Needs scikit-learn (``pip install scikit-learn``).

    Parameters
    ----------
    label_noise : float, default 0.1
        Fraction of training labels flipped, in [0, 1].
    test_fraction : float, default 0.3
        Fraction of each digit held out, in (0, 1).
    seed : int, default 0
        Seed of the split and the noise.

    Returns
    -------
    TaskData

    Raises
    ------
    TypeError, ValueError
        A value of the wrong type, or out of range.
    ImportError
        scikit-learn is not installed.

    Examples
    --------
    >>> digits(seed=1).n_classes  # doctest: +SKIP
    10
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("memscore.datasets.digits needs scikit-learn: pip install scikit-learn") from exc
    label_noise = _check_fraction(label_noise, "label_noise")
    test_fraction = _check_fraction(test_fraction, "test_fraction", open_low=True, open_high=True)
    bunch = load_digits()
    x = (np.asarray(bunch.data, dtype=np.float32) / 16.0).astype(np.float32)
    src = "sklearn.datasets.load_digits"
    y = check_examples(src, x, src, np.asarray(bunch.target), n_classes=10, shape=(64,), dtype=None, y_field="target")
    rng = np.random.default_rng(seed)
    test = np.zeros(y.shape[0], dtype=np.bool_)
    for c in range(10):  # stratified split: the same test fraction of every digit
        idx = np.flatnonzero(y == c)
        test[rng.choice(idx, size=int(round(test_fraction * idx.size)), replace=False)] = True
    tr, te = np.flatnonzero(~test), np.flatnonzero(test)
    noisy, corrupted = _corrupt(y[tr], 10, label_noise, rng)
    return TaskData(
        name="digits",
        x_train=x[tr],
        y_train=noisy,
        x_test=x[te],
        y_test=y[te],
        clean_train=y[tr],
        corrupted=corrupted,
        n_classes=10,
        info={"train_index": tr.tolist(), "test_index": te.tolist()},
    )


def mnist1d(n_samples: int = 5000, label_noise: float = 0.1, *, test_fraction: float = 0.2, seed: int = 0) -> TaskData:
    """MNIST-1D (Greydanus & Kobak 2024): 40-sample 1-D signals of 10 digit templates,
    generated procedurally by the ``mnist1d`` package (no download), with flipped labels.

    A small benchmark on which convolutional networks beat MLPs and that trains in seconds on
    a CPU; ``label_noise`` of the training labels are flipped to a uniformly drawn wrong digit.
    Needs ``mnist1d`` (the ``vision`` extra).

    Parameters
    ----------
    n_samples : int, default 5000
        Examples generated (train + test; the package's default is 5,000), >= 20.
    label_noise : float, default 0.1
        Fraction of training labels flipped, in [0, 1].
    test_fraction : float, default 0.2
        Fraction held out with clean labels, in (0, 1).
    seed : int, default 0
        Seed of the generator, the split and the noise.

    Returns
    -------
    TaskData
        Inputs of shape (n, 40), float32, standardized by the package.

    Raises
    ------
    TypeError, ValueError
        A value of the wrong type, or out of range.
    ImportError
        ``mnist1d`` is not installed.

    Examples
    --------
    >>> mnist1d(200, seed=0).x_train.shape  # doctest: +SKIP
    (160, 40)
    """
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("memscore.datasets.mnist1d needs mnist1d: pip install 'memscore[vision]'") from exc
    n_samples = check_int(n_samples, "n_samples", 20)
    label_noise = _check_fraction(label_noise, "label_noise")
    test_fraction = _check_fraction(test_fraction, "test_fraction", open_low=True, open_high=True)
    seed = check_int(seed, "seed", 0)
    args = get_dataset_args()
    args.num_samples, args.train_split, args.seed = n_samples, 1.0 - test_fraction, seed
    import random

    # the package seeds numpy's and Python's global generators: leave the caller's alone
    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    try:
        d = make_dataset(args)
    finally:
        np.random.set_state(np_state)  # noqa: NPY002
        random.setstate(py_state)
    src = "mnist1d.data.make_dataset"
    x_tr, x_te = np.asarray(d["x"], dtype=np.float32), np.asarray(d["x_test"], dtype=np.float32)
    y_tr = check_examples(src, x_tr, src, d["y"], n_classes=10, shape=(40,), dtype=None, x_field="x", y_field="y")
    y_te = check_examples(
        src, x_te, src, d["y_test"], n_classes=10, shape=(40,), dtype=None, x_field="x_test", y_field="y_test"
    )
    noisy, corrupted = _corrupt(y_tr, 10, label_noise, np.random.default_rng(seed))
    return TaskData(
        name="mnist1d",
        x_train=x_tr,
        y_train=noisy,
        x_test=x_te,
        y_test=y_te,
        clean_train=y_tr,
        corrupted=corrupted,
        n_classes=10,
        info={"n_samples": n_samples, "generator": "mnist1d"},
    )


#: The image datasets :func:`image_dataset` reads, with their classes.
IMAGE_DATASETS = {"cifar10": 10, "cifar100": 100, "mnist": 10, "fashion-mnist": 10, "svhn": 10}


def image_dataset(name: str, root: Any, *, label_noise: float = 0.0, download: bool = False, seed: int = 0) -> TaskData:
    """CIFAR-10, CIFAR-100, MNIST, Fashion-MNIST or SVHN from torchvision's files, as uint8 images.

    The files are the ones torchvision downloads (``download=True`` fetches them with
    torchvision's download code): CIFAR's pickled batches, MNIST's idx files, SVHN's ``.mat``
    files. Reading them runs no code from them: CIFAR's pickles are read by an unpickler that
    builds only dicts, lists, bytes, str, numbers and numpy arrays, and every file passes one
    check (as many labels as images, integer labels of the dataset's classes, images of the
    format's dtype and shape) or is refused with a :class:`~memscore.DatasetError` naming the
    file and the field (see ``docs/formats.md``). Images come as uint8 ``(n, C, H, W)``: the
    training driver keeps them as uint8 on the device and scales each batch (pass
    ``normalize=d.info["normalize"]`` to :func:`memscore.train.train_runs` for per-channel
    standardization). ``label_noise`` of the training labels are flipped to a uniformly drawn
    wrong class, with the ground truth in ``corrupted``. SVHN needs scipy; ``download=True``
    needs torchvision (the ``vision`` extra) and the network.

    Parameters
    ----------
    name : {"cifar10", "cifar100", "mnist", "fashion-mnist", "svhn"}
        The dataset.
    root : str or os.PathLike
        Directory holding (or receiving) torchvision's files.
    label_noise : float, default 0.0
        Fraction of training labels flipped, in [0, 1].
    download : bool, default False
        When a file is missing, download the dataset with torchvision, then read it.
    seed : int, default 0
        Seed of the label noise.

    Returns
    -------
    TaskData
        ``x_train`` / ``x_test`` uint8 (n, C, H, W); ``info["normalize"]`` the training set's
        per-channel (mean, std) on the [0, 1] scale.

    Raises
    ------
    FileNotFoundError
        A file is missing and ``download`` is False, or the download failed (the message
        says which, and names the file).
    DatasetError
        A file is there but is not what its format holds (naming the file and the field).
    TypeError, ValueError
        An argument of the wrong type, an unknown name, or a value out of range.
    ImportError
        ``download=True`` without torchvision, or SVHN without scipy.
    """
    check_choice(name, "dataset", sorted(IMAGE_DATASETS))
    label_noise = _check_fraction(label_noise, "label_noise")
    seed = check_int(seed, "seed", 0)
    download = check_bool(download, "download")
    root = Path(root)
    try:
        splits = [read_split(name, root, split) for split in ("train", "test")]
    except FileNotFoundError as exc:
        if not download:
            raise FileNotFoundError(
                f"{name}: torchvision's files are not in {root} ({exc}); pass download=True, or copy them there"
            ) from exc
        download_files(name, root)
        try:
            splits = [read_split(name, root, split) for split in ("train", "test")]
        except FileNotFoundError as again:
            raise FileNotFoundError(
                f"{name}: download=True fetched torchvision's files into {root}, but one is still missing ({again})"
            ) from again
    (x_tr, y_tr), (x_te, y_te) = splits
    c = IMAGE_DATASETS[name]
    noisy, corrupted = _corrupt(y_tr, c, label_noise, np.random.default_rng(seed))
    scaled = x_tr.reshape(x_tr.shape[0], x_tr.shape[1], -1) / 255.0
    normalize = (scaled.mean(axis=(0, 2)).tolist(), scaled.std(axis=(0, 2)).tolist())
    return TaskData(
        name=name, x_train=x_tr, y_train=noisy, x_test=x_te, y_test=y_te, clean_train=y_tr,
        corrupted=corrupted, n_classes=c, info={"root": str(root), "normalize": normalize},
    )  # fmt: skip


#: The embedded datasets by the name a store's ``metadata["dataset"]["name"]`` and the
#: command line's ``--dataset`` use.
DATASETS: dict[str, Callable[..., TaskData]] = {"modular": modular_arithmetic, "digits": digits, "mnist1d": mnist1d}


def load_dataset(name: str, **kwargs: Any) -> TaskData:
    """An embedded dataset by name: the one dispatch the command line and the reports use.

    Parameters
    ----------
    name : {"modular", "digits"}
        :func:`modular_arithmetic` or :func:`digits`.
    **kwargs
        Passed to that function.

    Returns
    -------
    TaskData

    Raises
    ------
    TypeError
        ``name`` is not a string, or an argument the function does not take.
    ValueError
        An unknown ``name``, or an argument out of range.

    Examples
    --------
    >>> load_dataset("modular", p=5, seed=0).n_classes
    5
    """
    check_choice(name, "dataset", sorted(DATASETS))
    return DATASETS[name](**kwargs)
