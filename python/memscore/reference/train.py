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
from ..train.augment import Augmentation, resolve_augment
from ..train.config import _as_xy
from ..train.models import init_model, run_seed
from ..train.plan import SubsetPlan
from ..train.randomness import epoch_order
from ..train.schedules import lr_factor


def splitmix_bits(keys: Any, epoch: int, n: int, stream: int) -> Any:
    """:func:`memscore.train.randomness.draw_bits` in numpy's uint64 arithmetic: SplitMix64's
    finalizer of ``key + salt(epoch, stream)``, then of that plus ``(j + 1) * golden`` for
    the positions ``j < n``, keeping 63 bits. ``(E, n)`` int64."""
    u = np.uint64

    def mix(z: Any) -> Any:
        z = (z ^ (z >> u(30))) * u(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> u(27))) * u(0x94D049BB133111EB)
        return z ^ (z >> u(31))

    golden = 0x9E3779B97F4A7C15
    salt = u((0xD1B54A32D192ED03 * int(epoch) + 0x8CB92BA72F3D8DD7 * int(stream) + golden) % 2**64)
    with np.errstate(over="ignore"):
        base = mix(np.asarray(keys, dtype=np.int64).astype(np.uint64) + salt)
        pos = np.arange(1, n + 1, dtype=np.uint64) * u(golden)
        return (mix(base[:, None] + pos[None, :]) & u(2**63 - 1)).astype(np.int64)


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
    device: Any = "cpu",
    precision: str = "fp32",
    distill: Any = None,
) -> dict[int, Any]:
    """Train runs of ``plan`` one after the other, with a plain ``torch.optim`` loop.

    The loop a user would write: ``model.train()`` for the steps, ``model.eval()`` for the
    outputs; each batch augmented with the run's own draws, then scaled (uint8 / 255)
    and normalized; ``torch.nn.utils.clip_grad_norm_``; the schedule stepped per batch;
    mixed precision with ``torch.autocast`` and, for fp16, ``torch.amp.GradScaler``. The
    run's batch order and a built-in augmentation's parameters come from
    :mod:`memscore.train.randomness` (a user's augmentation callable from the run's own
    ``torch.Generator``), as the ensemble's do.

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
    device : str or torch.device, default "cpu"
        Where the model trains (the plain loop on the ensemble's own device).
    precision : {"fp32", "bf16", "fp16"}, default "fp32"
        Autocast precision (fp16 with one ``GradScaler`` per run).
    distill : memscore.train.Distillation, optional
        Learn from a teacher: from epoch ``start_epoch + 1`` on, each batch's loss is
        ``(1 - alpha) * CE + alpha * tau**2 * KL(softmax(t / tau) || softmax(s / tau))``,
        averaged over the batch, with ``t`` the teacher's logits: run ``r``'s own teacher
        run of a store, the rows of a logits array (both of the unaugmented examples), or
        a module's outputs on the augmented batch.

    Returns
    -------
    dict of int to tuple
        ``{r: (train_logits, test_logits)}`` (float32 numpy, on the CPU), or
        ``{r: (train_logits, test_logits, state)}`` with ``return_state``.
    """
    import contextlib
    import copy

    torch = require_torch("memscore.reference.train")
    dev = torch.device(device)
    x_tr, y_tr = _as_xy(train, "train")
    x_tr, y_tr = x_tr.to(dev), y_tr.to(dev)
    x_te = _as_xy(test, "test")[0].to(dev) if test is not None else None
    aug, _ = resolve_augment(augment)

    def autocast() -> Any:
        if precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(dev.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)

    def as_input(xb: Any) -> Any:
        if xb.dtype == torch.uint8:
            xb = xb.float() / 255.0
        if normalize is not None:
            view = (-1,) + (1,) * (xb.ndim - 2)
            mean, std = (torch.as_tensor(v, dtype=torch.float32, device=dev).view(view) for v in normalize)
            xb = (xb - mean) / std
        return xb

    # a module teacher runs as a copy on the device, in eval mode: the user's module is not moved
    # nor switched to eval mode
    t_module: Any = None
    if distill is not None and distill.kind == "module":
        t_module = copy.deepcopy(distill.teacher).to(dev).eval()
    out: dict[int, Any] = {}
    for r in range(plan.n_runs) if runs is None else runs:
        model = init_model(model_fn, seed, r).to(dev)
        params = list(model.parameters())
        if optimizer == "sgd":
            opt: Any = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
        elif optimizer == "adam":
            opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
        elif optimizer == "adamw":
            opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        else:
            raise ValueError(f"optimizer: expected 'sgd', 'adam' or 'adamw', got {optimizer!r}")
        teacher = None  # the stored logits this run learns from, (n, C)
        if distill is not None and distill.kind == "store":
            teacher = torch.from_numpy(distill.teacher.outcomes("train", "logits", runs=[plan.run_ids[r]])[0]).to(dev)
        elif distill is not None and distill.kind == "logits":
            teacher = torch.from_numpy(distill.teacher).to(dev)
        key = torch.tensor([run_seed(seed, r, 1)], device=dev)  # batch order, built-in augmentations
        gen = torch.Generator().manual_seed(run_seed(seed, r, 2))  # a user's augmentation callable
        scaler = torch.amp.GradScaler(dev.type) if precision == "fp16" else None
        subset = torch.from_numpy(plan.epoch_examples(r)).to(dev)  # bootstrap: example i, w_ri times
        steps_per_epoch = -(-subset.numel() // batch_size)
        total = epochs * steps_per_epoch
        w = warmup if warmup is not None else (0.3 if schedule == "onecycle" else 0.0)
        model.train()
        t = 0
        for epoch in range(1, epochs + 1):
            perm = subset[epoch_order(key, [subset.numel()], epoch)[0]]
            drawn = aug.draw_epoch(key, epoch, subset.numel()) if isinstance(aug, Augmentation) else None
            for i in range(0, subset.numel(), batch_size):
                b = perm[i : i + batch_size]
                for group in opt.param_groups:  # the schedule, stepped per batch
                    group["lr"] = lr * lr_factor(
                        schedule, t, total, steps_per_epoch=steps_per_epoch, warmup=w, step_epochs=step_epochs,
                        gamma=gamma,
                    )  # fmt: skip
                t += 1
                xb = x_tr[b]
                if drawn is not None and isinstance(aug, Augmentation):
                    xb = aug.apply(xb, {k: v[0, i : i + b.numel()] for k, v in drawn.items()})
                elif aug is not None:
                    xb = aug(xb, gen)
                with autocast():
                    z = model(as_input(xb)).float()
                if distill is not None and distill.alpha > 0 and epoch > distill.start_epoch:
                    if teacher is not None:
                        t_logits = teacher[b]
                    else:  # a module: its outputs on the same augmented batch
                        with torch.no_grad():
                            t_logits = t_module(as_input(xb)).float()
                    # Hinton et al.'s blend, written out: KL(p_t || p_s) = sum p_t (log p_t - log p_s)
                    tau, a = distill.temperature, distill.alpha
                    log_pt = torch.log_softmax(t_logits / tau, dim=-1)
                    kl = (log_pt.exp() * (log_pt - torch.log_softmax(z / tau, dim=-1))).sum(-1).mean()
                    ce = torch.nn.functional.cross_entropy(z, y_tr[b], label_smoothing=label_smoothing)
                    loss = (1 - a) * ce + a * tau * tau * kl
                else:
                    loss = torch.nn.functional.cross_entropy(z, y_tr[b], label_smoothing=label_smoothing)
                opt.zero_grad()
                if scaler is None:
                    loss.backward()
                else:
                    scaler.scale(loss).backward()
                    scaler.unscale_(opt)
                if grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(params, grad_clip)
                if scaler is None:
                    opt.step()
                else:
                    scaler.step(opt)  # skipped when this run's gradients overflowed
                    scaler.update()
        model.eval()
        with torch.no_grad(), autocast():
            res = (
                model(as_input(x_tr)).float().cpu().numpy(),
                None if x_te is None else model(as_input(x_te)).float().cpu().numpy(),
            )
        out[r] = (*res, {k: v.detach().clone() for k, v in model.state_dict().items()}) if return_state else res
    return out
