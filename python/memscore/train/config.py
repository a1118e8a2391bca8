"""Training settings (:class:`TrainConfig`) and the training data as tensors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .._torch import require_torch
from .._validate import check_bool, check_choice, check_float, check_int

if TYPE_CHECKING:  # pragma: no cover
    pass

__all__ = ["TrainConfig"]

_OPTIMIZERS = ("sgd", "adam", "adamw")
_PRECISIONS = ("fp32", "bf16", "fp16")


def _torch() -> Any:
    """torch, imported on first use (the ``train`` extra)."""
    return require_torch("memscore.train")


def _is_oom(exc: BaseException) -> bool:
    """Whether ``exc`` is the device (or the host) running out of memory."""
    torch = _torch()
    if isinstance(exc, getattr(torch, "OutOfMemoryError", ())):
        return True
    msg = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(
        s in msg for s in ("out of memory", "not enough memory", "can't allocate memory")
    )


def _as_xy(data: Any, name: str) -> tuple[Any, Any]:
    """(inputs float tensor, labels int64 tensor) from a pair of arrays/tensors or a Dataset."""
    torch = _torch()
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = data
    elif hasattr(data, "__len__") and hasattr(data, "__getitem__"):
        # A map-style torch Dataset of (input, label) items: materialize it once; the
        # whole set lives on the device so that every member can draw its own batches.
        if len(data) == 0:
            raise ValueError(f"{name}: the dataset is empty")
        items = [data[i] for i in range(len(data))]
        if not all(isinstance(it, (tuple, list)) and len(it) == 2 for it in items[:1]):
            raise TypeError(f"{name}: expected a Dataset of (input, label) pairs")
        x = torch.stack([torch.as_tensor(it[0]) for it in items])
        # labels as they come (0-d tensors and numpy scalars unwrapped): a float label is
        # checked below, never truncated
        y = np.asarray([it[1].item() if hasattr(it[1], "item") else it[1] for it in items])
    else:
        raise TypeError(
            f"{name}: expected (inputs, labels) arrays/tensors or a torch Dataset, got {type(data).__name__}"
        )
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    if not isinstance(y, torch.Tensor):
        y = np.asarray(y)
        if y.dtype.kind not in "biuf":  # strings, objects: torch would fail with no name
            raise TypeError(f"{name}: expected 1-D integer class labels, got a {y.dtype} array")
        y = torch.as_tensor(y)
    # uint8 images stay uint8 (4x smaller on the device); they are scaled per batch
    if not torch.is_floating_point(x) and x.dtype != torch.uint8:
        x = x.float()
    y = _integer_labels(y, name)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{name}: {x.shape[0]} inputs but {y.shape[0]} labels")
    if x.shape[0] == 0:
        raise ValueError(f"{name}: no examples")
    if x.dtype != torch.uint8 and not torch.isfinite(x).all():
        raise ValueError(f"{name}: inputs contain NaN or infinite values")
    return x, y


def _integer_labels(y: Any, name: str) -> Any:
    """``y`` as int64 class labels: integers, or floats that are whole (``2.0``); a float
    label that is not whole, NaN or infinite is an error naming the split and the index
    (never truncated)."""
    torch = _torch()
    if y.ndim != 1 or y.dtype == torch.bool or y.dtype.is_complex:
        raise TypeError(f"{name}: expected 1-D integer class labels, got shape {tuple(y.shape)} {y.dtype}")
    if y.dtype.is_floating_point:
        bad = ~torch.isfinite(y) | (y != torch.round(y)) | (y.abs() >= 2**62)
        if bool(bad.any()):
            i = int(torch.nonzero(bad)[0, 0])
            raise ValueError(
                f"{name}: expected integer class labels, got {float(y[i])!r} at index {i} "
                f"({int(bad.sum())} non-integer label(s) in all)"
            )
    return y.long()


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters shared by every run (kept in each run's metadata).

    Parameters
    ----------
    epochs : int
        Passes over each run's subset, >= 1.
    batch_size : int
        Minibatch size, >= 1.
    lr : float
        Learning rate, > 0.
    optimizer : {"sgd", "adam", "adamw"}, default "sgd"
        As in ``torch.optim``.
    momentum : float, default 0.9
        SGD momentum, >= 0.
    weight_decay : float, default 0.0
        >= 0.
    betas : tuple of two floats, default (0.9, 0.999)
        Adam / AdamW betas, each in [0, 1).
    eps : float, default 1e-8
        Adam / AdamW epsilon, >= 0.
    snapshot_epochs : tuple of int, default ()
        Increasing epochs in ``0..epochs`` after which outcomes are recorded.
    grand : bool, default False
        Record per-example gradient norms at the snapshots.
    seed : int, default 0
        Seed of the runs.
    schedule : str, default "constant"
        Learning-rate schedule stepped per batch, one of
        :data:`memscore.train.schedules.SCHEDULES`.
    warmup : float, optional
        Fraction of the steps spent in a linear warm-up (default 0, or 0.3 for ``onecycle``).
    step_epochs : tuple of int, default ()
        Epochs after which the ``step`` schedule multiplies the rate by ``gamma``.
    gamma : float, default 0.1
        The ``step`` schedule's factor, in (0, 1].
    label_smoothing : float, default 0.0
        As in ``torch.nn.functional.cross_entropy``, in [0, 1).
    nesterov : bool, default False
        Nesterov momentum (SGD with momentum > 0).
    grad_clip : float, optional
        Clip each run's gradient to this global L2 norm (``torch.nn.utils.clip_grad_norm_``).
    precision : {"fp32", "bf16", "fp16"}, default "fp32"
        Autocast precision of the forward pass (fp16 with a loss scale per member).
    compile : bool, default False
        Compile the ensemble's vmapped training forward with ``torch.compile`` (the same runs
        to float tolerance; one compilation per ensemble and batch shape, which on a CPU takes
        tens of seconds and needs a C++ compiler).

    Raises
    ------
    TypeError
        A value of the wrong type.
    ValueError
        A value out of range.

    Examples
    --------
    >>> from memscore.train import TrainConfig
    >>> TrainConfig(epochs=2, batch_size=32, lr=0.1).as_dict()["optimizer"]
    'sgd'
    """

    epochs: int
    batch_size: int
    lr: float
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    snapshot_epochs: tuple[int, ...] = ()
    grand: bool = False
    seed: int = 0
    schedule: str = "constant"
    warmup: float | None = None
    step_epochs: tuple[int, ...] = ()
    gamma: float = 0.1
    label_smoothing: float = 0.0
    nesterov: bool = False
    grad_clip: float | None = None
    precision: str = "fp32"
    compile: bool = False

    def __post_init__(self) -> None:
        from .schedules import SCHEDULES

        check_choice(self.schedule, "schedule", SCHEDULES)
        if self.warmup is not None:
            check_float(self.warmup, "warmup", 0.0, 1.0, high_open=True)
        check_float(self.gamma, "gamma", 0.0, 1.0, low_open=True)
        check_float(self.label_smoothing, "label_smoothing", 0.0, 1.0, high_open=True)
        check_bool(self.nesterov, "nesterov")
        if self.nesterov and (self.optimizer != "sgd" or self.momentum <= 0):
            raise ValueError("nesterov: needs optimizer='sgd' with momentum > 0")
        if self.grad_clip is not None:
            check_float(self.grad_clip, "grad_clip", 0.0, low_open=True)
        check_choice(self.precision, "precision", _PRECISIONS)
        check_bool(self.compile, "compile")
        if isinstance(self.step_epochs, (str, bytes)) or not hasattr(self.step_epochs, "__iter__"):
            raise TypeError(f"step_epochs: expected a sequence of integers, got {self.step_epochs!r}")
        steps = tuple(check_int(e, "step_epochs[]", 1) for e in self.step_epochs)
        if any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
            raise ValueError(f"step_epochs: expected increasing epochs, got {list(steps)}")
        object.__setattr__(self, "step_epochs", steps)
        check_int(self.epochs, "epochs", 1)
        check_int(self.batch_size, "batch_size", 1)
        check_choice(self.optimizer, "optimizer", _OPTIMIZERS)
        check_float(self.lr, "lr", 0.0, low_open=True)
        for name in ("momentum", "weight_decay", "eps"):
            check_float(getattr(self, name), name, 0.0)
        if not isinstance(self.betas, (tuple, list)) or len(self.betas) != 2:
            raise TypeError(f"betas: expected a pair of floats, got {self.betas!r}")
        for b in self.betas:
            check_float(b, "betas[]", 0.0, 1.0, high_open=True)
        check_bool(self.grand, "grand")
        check_int(self.seed, "seed", 0)
        if isinstance(self.snapshot_epochs, (str, bytes)) or not hasattr(self.snapshot_epochs, "__iter__"):
            raise TypeError(f"snapshot_epochs: expected a sequence of integers, got {self.snapshot_epochs!r}")
        snaps = tuple(check_int(e, "snapshot_epochs[]") for e in self.snapshot_epochs)
        if any(b <= a for a, b in zip(snaps, snaps[1:], strict=False)) or any(e < 0 or e > self.epochs for e in snaps):
            raise ValueError(
                f"snapshot_epochs: expected increasing epochs in 0..{self.epochs}, got {list(self.snapshot_epochs)}"
            )
        object.__setattr__(self, "snapshot_epochs", snaps)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready description (each run's metadata).

        Returns
        -------
        dict of str to object
        """
        return {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "optimizer": self.optimizer,
            "momentum": self.momentum,
            "weight_decay": self.weight_decay,
            "betas": list(self.betas),
            "eps": self.eps,
            "snapshot_epochs": list(self.snapshot_epochs),
            "grand": self.grand,
            "seed": self.seed,
            "schedule": self.schedule,
            "warmup": self.warmup,
            "step_epochs": list(self.step_epochs),
            "gamma": self.gamma,
            "label_smoothing": self.label_smoothing,
            "nesterov": self.nesterov,
            "grad_clip": self.grad_clip,
            "precision": self.precision,
            "compile": self.compile,
        }
