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
from ..train.augment import resolve_augment
from ..train.config import _as_xy
from ..train.models import epoch_batches, init_model, run_seed
from ..train.plan import SubsetPlan
from ..train.schedules import lr_factor


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
    schedule: str = "constant",
    warmup: float | None = None,
    step_epochs: Sequence[int] = (),
    gamma: float = 0.1,
    label_smoothing: float = 0.0,
    nesterov: bool = False,
    grad_clip: float | None = None,
    augment: Any = None,
    normalize: tuple[Sequence[float], Sequence[float]] | None = None,
    return_state: bool = False,
) -> dict[int, Any]:
    """Train runs of ``plan`` one after the other, with a plain ``torch.optim`` loop.

    The loop a user would write: ``model.train()`` for the steps, ``model.eval()`` for the
    outputs; each batch augmented with the run's own generator, then scaled (uint8 / 255)
    and normalized; ``torch.nn.utils.clip_grad_norm_``; the schedule stepped per batch.

    Parameters
    ----------
    model_fn, train, test, plan, epochs, batch_size, lr, optimizer, momentum, weight_decay, seed
        As :func:`memscore.train.train_runs` takes them.
    runs : sequence of int, optional
        Which runs of the plan (default: all).
    schedule, warmup, step_epochs, gamma, label_smoothing, nesterov, grad_clip, augment, normalize
        As :func:`memscore.train.train_runs` takes them.
    return_state : bool, default False
        Also return each trained model's ``state_dict`` (parameters and buffers).

    Returns
    -------
    dict of int to tuple
        ``{r: (train_logits, test_logits)}``, or ``{r: (train_logits, test_logits, state)}``
        with ``return_state``.
    """
    torch = require_torch("memscore.reference.train")

    x_tr, y_tr = _as_xy(train, "train")
    x_te = _as_xy(test, "test")[0] if test is not None else None
    aug, _ = resolve_augment(augment)

    def as_input(xb: Any) -> Any:
        if xb.dtype == torch.uint8:
            xb = xb.float() / 255.0
        if normalize is not None:
            view = (-1,) + (1,) * (xb.ndim - 2)
            mean, std = (torch.as_tensor(v, dtype=torch.float32).view(view) for v in normalize)
            xb = (xb - mean) / std
        return xb

    out: dict[int, Any] = {}
    for r in range(plan.n_runs) if runs is None else runs:
        model = init_model(model_fn, seed, r)
        params = list(model.parameters())
        if optimizer == "sgd":
            opt: Any = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
        elif optimizer == "adam":
            opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
        elif optimizer == "adamw":
            opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        else:
            raise ValueError(f"optimizer: expected 'sgd', 'adam' or 'adamw', got {optimizer!r}")
        rng = np.random.default_rng(run_seed(seed, r, 1))
        gen = torch.Generator().manual_seed(run_seed(seed, r, 2))
        subset = np.flatnonzero(plan.masks[r])
        if plan.multiplicities is not None:  # a bootstrap run: example i, w_ri times per epoch
            subset = np.repeat(np.arange(plan.n_examples), plan.multiplicities[r])
        steps_per_epoch = -(-subset.size // batch_size)
        total = epochs * steps_per_epoch
        w = warmup if warmup is not None else (0.3 if schedule == "onecycle" else 0.0)
        model.train()
        t = 0
        for _ in range(epochs):
            for b in epoch_batches(subset, batch_size, rng):
                for group in opt.param_groups:  # the schedule, stepped per batch
                    group["lr"] = lr * lr_factor(
                        schedule, t, total, steps_per_epoch=steps_per_epoch, warmup=w, step_epochs=step_epochs,
                        gamma=gamma,
                    )  # fmt: skip
                t += 1
                xb = x_tr[torch.from_numpy(b)]
                if aug is not None:
                    xb = aug(xb, gen)
                loss = torch.nn.functional.cross_entropy(
                    model(as_input(xb)), y_tr[torch.from_numpy(b)], label_smoothing=label_smoothing
                )
                opt.zero_grad()
                loss.backward()
                if grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(params, grad_clip)
                opt.step()
        model.eval()
        with torch.no_grad():
            res = (model(as_input(x_tr)).numpy(), None if x_te is None else model(as_input(x_te)).numpy())
        out[r] = (*res, {k: v.detach().clone() for k, v in model.state_dict().items()}) if return_state else res
    return out
