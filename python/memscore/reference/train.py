"""The plain training loop: one model at a time, ``torch.optim``, the same runs as
:func:`memscore.train.train_runs` (same initialization, same minibatches, same steps).

It is the reference the tests compare the vmapped ensemble with, and the baseline of
``benches/bench_train.py``. Needs torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .._torch import require_torch
from ..runs.train.config import _as_xy
from ..runs.train.models import epoch_batches, init_model, run_seed
from ..runs.train.plan import SubsetPlan


def train_sequential(
    model_fn: Callable[[], Any],
    train: Any,
    test: Any,
    plan: SubsetPlan,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    optimizer: str = "sgd",
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    seed: int = 0,
    runs: Sequence[int] | None = None,
) -> dict[int, tuple[np.ndarray, np.ndarray | None]]:
    """Train runs of ``plan`` one after the other, with a plain ``torch.optim`` loop.

    Parameters
    ----------
    model_fn, train, test, plan, epochs, batch_size, lr, optimizer, momentum, weight_decay, seed
        As :func:`memscore.train.train_runs` takes them.
    runs : sequence of int, optional
        Which runs of the plan (default: all).

    Returns
    -------
    dict of int to (ndarray, ndarray or None)
        ``{r: (train_logits, test_logits)}``.
    """
    torch = require_torch("memscore.reference.train")

    x_tr, y_tr = _as_xy(train, "train")
    x_te = _as_xy(test, "test")[0] if test is not None else None
    out: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
    for r in range(plan.n_runs) if runs is None else runs:
        model = init_model(model_fn, seed, r)
        params = list(model.parameters())
        if optimizer == "sgd":
            opt: Any = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
        elif optimizer == "adam":
            opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
        elif optimizer == "adamw":
            opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        else:
            raise ValueError(f"optimizer: expected 'sgd', 'adam' or 'adamw', got {optimizer!r}")
        rng = np.random.default_rng(run_seed(seed, r, 1))
        subset = np.flatnonzero(plan.masks[r])
        for _ in range(epochs):
            for b in epoch_batches(subset, batch_size, rng):
                bt = torch.from_numpy(b)
                loss = torch.nn.functional.cross_entropy(model(x_tr[bt]), y_tr[bt])
                opt.zero_grad()
                loss.backward()
                opt.step()
        with torch.no_grad():
            out[r] = (model(x_tr).numpy(), None if x_te is None else model(x_te).numpy())
    return out
