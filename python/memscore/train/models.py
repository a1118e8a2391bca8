"""Models the driver trains out of the box (:func:`mlp`), and each run's own randomness:
its initialization and minibatch order depend on ``(seed, run index)`` only."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from .._validate import check_choice, check_int

if TYPE_CHECKING:  # pragma: no cover
    import torch
from .config import _torch

__all__ = ["init_model", "mlp", "run_seed"]

_SEED_LOCK = threading.Lock()


def mlp(
    in_features: int, n_classes: int, width: int = 512, depth: int = 1, activation: str = "square"
) -> torch.nn.Module:
    """A fully connected network: ``depth`` hidden layers of ``width`` units.

    ``activation="square"`` (x²) is the quadratic MLP of Gromov (2023), which learns
    modular arithmetic from one-hot inputs in a few hundred steps; ``"relu"`` and
    ``"gelu"`` are the usual choices elsewhere.

    Parameters
    ----------
    in_features : int
        Input dimension, >= 1.
    n_classes : int
        Output logits, >= 2.
    width : int, default 512
        Units per hidden layer, >= 1.
    depth : int, default 1
        Hidden layers, >= 0 (0 = a linear model).
    activation : {"square", "relu", "gelu"}, default "square"
        The hidden activation.

    Returns
    -------
    torch.nn.Sequential

    Raises
    ------
    TypeError
        A non-integer size or a non-string activation.
    ValueError
        A size below its minimum or an unknown activation.
    ImportError
        torch is not installed.

    Examples
    --------
    >>> from memscore.train import mlp
    >>> mlp(4, 3, width=8)
    Sequential(
      (0): Linear(in_features=4, out_features=8, bias=True)
      (1): Square()
      (2): Linear(in_features=8, out_features=3, bias=True)
    )
    """
    check_choice(activation, "activation", ("gelu", "relu", "square"))
    in_features = check_int(in_features, "in_features", 1)
    n_classes = check_int(n_classes, "n_classes", 2)
    width = check_int(width, "width", 1)
    depth = check_int(depth, "depth", 0)
    nn = _torch().nn

    class Square(nn.Module):  # type: ignore[misc,name-defined]  # torch is Any here (lazy import)
        def forward(self, x: Any) -> Any:
            return x * x

    acts: dict[str, Callable[[], Any]] = {"square": Square, "relu": nn.ReLU, "gelu": nn.GELU}
    layers: list[Any] = []
    d = int(in_features)
    for _ in range(int(depth)):
        layers += [nn.Linear(d, int(width)), acts[activation]()]
        d = int(width)
    layers.append(nn.Linear(d, int(n_classes)))
    model: torch.nn.Module = nn.Sequential(*layers)
    return model


def run_seed(seed: int, r: int, stream: int) -> int:
    """A 63-bit seed for run ``r``: stream 0 initializes the model, 1 orders its batches.

    Parameters
    ----------
    seed : int
        The plan's seed.
    r : int
        The run's index in the plan.
    stream : int
        Which random stream of the run.

    Returns
    -------
    int

    Examples
    --------
    >>> run_seed(0, 3, 1) == run_seed(0, 3, 1) != run_seed(0, 4, 1)
    True
    """
    return int(
        np.random.SeedSequence([int(seed), int(r), int(stream)]).generate_state(2, dtype=np.uint64)[0] >> np.uint64(1)
    )


def init_model(model_fn: Callable[[], Any], seed: int, r: int) -> Any:
    """``model_fn()`` under run ``r``'s own torch seed, leaving the global RNG untouched.

    Parameters
    ----------
    model_fn : callable
        Builds the model.
    seed : int
        The plan's seed.
    r : int
        The run's index.

    Returns
    -------
    torch.nn.Module
        What ``model_fn`` returns.

    Raises
    ------
    TypeError
        ``model_fn`` returned something other than a ``torch.nn.Module``.
    """
    torch = _torch()
    # the global RNG is seeded for the call: one thread at a time (ThreadExecutor)
    with _SEED_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(run_seed(seed, r, 0))
        model = model_fn()
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model_fn: expected it to return a torch.nn.Module, got {type(model).__name__}")
    return model


def param_dtype(model: Any) -> Any:
    """The dtype of ``model``'s first floating parameter (float32 when it has none): the
    dtype floating inputs are cast to."""
    torch = _torch()
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32
