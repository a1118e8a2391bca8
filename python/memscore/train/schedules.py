"""Learning-rate schedules, stepped once per batch: the factor that multiplies the base
learning rate at step ``t`` of ``total`` (a ``torch.optim.lr_scheduler.LambdaLR`` applies it),
shared by the ensemble driver and the plain reference loop."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["SCHEDULES", "lr_factor", "make_scheduler"]

#: Schedule names: ``constant``; ``step`` (times ``gamma`` at each epoch of ``step_epochs``);
#: ``cosine`` (cosine decay to 0); ``linear`` (linear decay to 0); ``onecycle`` (linear
#: warm-up over ``warmup`` of the steps, 0.3 unless given, then linear decay to 0). A
#: ``warmup`` fraction > 0 puts a linear warm-up in front of every schedule.
SCHEDULES = ("constant", "step", "cosine", "linear", "onecycle")


def lr_factor(
    schedule: str,
    t: int,
    total: int,
    *,
    steps_per_epoch: int,
    warmup: float = 0.0,
    step_epochs: Sequence[int] = (),
    gamma: float = 0.1,
) -> float:
    """The learning-rate multiplier before optimizer step ``t`` (0-based) of ``total``.

    Parameters
    ----------
    schedule : str
        One of :data:`SCHEDULES`.
    t : int
        Steps taken so far.
    total : int
        Steps of the whole run (epochs x steps per epoch).
    steps_per_epoch : int
        Steps in one epoch (``step`` counts its milestones in epochs).
    warmup : float, default 0.0
        Fraction of ``total`` spent warming up linearly from ``1/W`` to 1 (``W`` warm-up steps).
    step_epochs : sequence of int, default ()
        Epochs after which ``step`` multiplies the rate by ``gamma``.
    gamma : float, default 0.1
        The ``step`` decay factor.

    Returns
    -------
    float

    Examples
    --------
    >>> [round(lr_factor("cosine", t, 4, steps_per_epoch=2), 3) for t in range(4)]
    [1.0, 0.854, 0.5, 0.146]
    >>> [round(lr_factor("onecycle", t, 5, steps_per_epoch=5, warmup=0.4), 3) for t in range(5)]
    [0.5, 1.0, 1.0, 0.667, 0.333]
    """
    w = round(warmup * total)
    up = (t + 1) / w if t < w else 1.0
    s = max(0, t - w) / max(1, total - w)  # progress of the decay phase, in [0, 1)
    if schedule == "constant":
        down = 1.0
    elif schedule == "step":
        down = gamma ** sum(t >= e * steps_per_epoch for e in step_epochs)
    elif schedule == "cosine":
        down = 0.5 * (1.0 + math.cos(math.pi * s))
    elif schedule in ("linear", "onecycle"):
        down = 1.0 - s
    else:
        raise ValueError(f"schedule: expected one of {', '.join(SCHEDULES)}, got {schedule!r}")
    return up * down


def make_scheduler(opt: Any, cfg: Any, steps_per_epoch: int) -> Any:
    """A ``LambdaLR`` over ``opt`` that follows ``cfg.schedule`` (a :class:`TrainConfig`);
    call its ``step()`` after every optimizer step."""
    import torch

    total = cfg.epochs * steps_per_epoch
    warmup = cfg.warmup if cfg.warmup is not None else (0.3 if cfg.schedule == "onecycle" else 0.0)

    def factor(t: int) -> float:
        return lr_factor(
            cfg.schedule, t, total, steps_per_epoch=steps_per_epoch, warmup=warmup,
            step_epochs=cfg.step_epochs, gamma=cfg.gamma,
        )  # fmt: skip

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)
