"""One ensemble of runs trained as one vmapped model: the data as the ensemble reads it
(:class:`_Data`), the training loop (:func:`_fit_group`) and what every run records
(:func:`_run_records`).

Run ``r`` of a plan is reproducible on its own: its initialization and its minibatch
order come from the seed and ``r`` only, never from the ensemble it was grouped in.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..runs.outcomes import logit_confidence
from .augment import Augmentation
from .config import TrainConfig, _torch
from .ensemble import _Ensemble, snapshot_outcomes_torch
from .inputs import DeviceInputs
from .models import epoch_batches, init_model, run_seed
from .plan import SubsetPlan

__all__: list[str] = []


class _Data:
    """The training data as the groups use it."""

    def __init__(
        self,
        x: DeviceInputs,
        y: Any,
        x_test: DeviceInputs | None,
        y_test: Any,
        aug: Any,
        aug_name: str,
        views: Sequence[Callable[[Any], Any]] = (),
    ) -> None:
        self.x, self.y, self.x_test, self.y_test = x, y, x_test, y_test
        self.aug, self.aug_name, self.views = aug, aug_name, list(views)

    def augmented(self, xb: Any, real: list[int], gens: list[Any]) -> Any:
        """Member ``e``'s first ``real[e]`` examples of ``xb`` (E, b, ...) augmented with its
        own generator; padding rows stay as they are (their loss weight is 0)."""
        torch = _torch()
        aug, b = self.aug, xb.shape[1]
        if aug is None:
            return xb
        if isinstance(aug, Augmentation):
            draws = [aug.draw(k, g) for k, g in zip(real, gens, strict=True)]
            params = {
                key: torch.stack([torch.cat([d[key], d[key].new_zeros(b - d[key].shape[0])]) for d in draws]).to(
                    xb.device
                )
                for key in draws[0]
            }
            return aug.apply(xb, params)
        out = xb.clone()
        for e, (k, g) in enumerate(zip(real, gens, strict=True)):
            out[e, :k] = aug(xb[e, :k], g)
        return out


def _fit_group(
    model_fn: Callable[[], Any],
    runs: list[int],
    plan: SubsetPlan,
    cfg: TrainConfig,
    data: _Data,
    dev: Any,
    advance: Callable[[float], None] | None = None,
) -> tuple[_Ensemble, dict[str, list[Any]]]:
    """Train the runs ``runs`` as one ensemble; returns it with the snapshots' outcomes.
    ``ens.diverged`` maps the runs whose loss turned non-finite to the (1-based) epoch and
    step where it did first (their groupmates train on unaffected). ``advance(runs)`` is told the runs
    done (fractional: per epoch) as they progress."""
    torch = _torch()
    E = len(runs)
    subsets = [plan.epoch_examples(r) for r in runs]  # a bootstrap draw k times appears k times
    steps_per_epoch = -(-int(subsets[0].size) // cfg.batch_size)
    ens = _Ensemble([init_model(model_fn, cfg.seed, r) for r in runs], cfg, dev, steps_per_epoch)
    rngs = [np.random.default_rng(run_seed(cfg.seed, r, 1)) for r in runs]
    gens = [torch.Generator().manual_seed(run_seed(cfg.seed, r, 2)) for r in runs]
    snaps: dict[str, list[Any]] = {}
    chunk = 4096

    def snapshot() -> None:
        for split, x, y in (("train", data.x, data.y), ("test", data.x_test, data.y_test)):
            if x is None:
                continue
            out = snapshot_outcomes_torch(ens.logits(x.chunks(chunk)), y)
            for k, v in out.items():
                snaps.setdefault(f"{split}_{k}", []).append(v.cpu())
        if cfg.grand:
            snaps.setdefault("train_grand", []).append(ens.grad_norms(data.x.chunks(ens.grad_chunk()), data.y).cpu())

    if 0 in cfg.snapshot_epochs:
        snapshot()
    # the first step (0-based, over all epochs) at which each member's loss was not finite,
    # -1 while it is: kept on the device (no synchronization per step), read once at the end
    diverged_at = torch.full((E,), -1, dtype=torch.int64, device=dev)
    step = 0
    for epoch in range(1, cfg.epochs + 1):
        batches = [epoch_batches(s, cfg.batch_size, rng) for s, rng in zip(subsets, rngs, strict=True)]
        if any(len(b) != steps_per_epoch for b in batches):  # pragma: no cover - train_runs groups by step count
            raise AssertionError("ensemble members must take the same number of steps per epoch")
        for t in range(steps_per_epoch):
            # every member's batch at once; a smaller last batch is padded with example 0, weight 0
            real = [int(b[t].size) for b in batches]
            width = max(real)
            idx = np.zeros((E, width), dtype=np.int64)
            w = np.zeros((E, width), dtype=np.float32)
            for e, b in enumerate(batches):
                idx[e, : real[e]] = b[t]
                w[e, : real[e]] = 1.0
            it, wt = torch.from_numpy(idx), torch.from_numpy(w).to(dev)
            xb = data.x.to_float(data.augmented(data.x.raw(it), real, gens))
            logits = ens.forward_train(xb).float()
            per = torch.nn.functional.cross_entropy(
                logits.flatten(0, 1), data.y[it.to(dev)].flatten(), reduction="none",
                label_smoothing=cfg.label_smoothing,
            ).view(E, -1)  # fmt: skip
            # Each member's loss is the mean over its real batch.
            loss = (per * wt).sum(1) / wt.sum(1)
            bad = ~torch.isfinite(loss.detach())
            diverged_at = torch.where(bad & (diverged_at < 0), step, diverged_at)
            ens.step(loss.sum(), dead=diverged_at >= 0)
            step += 1
        if advance is not None:
            advance(E / cfg.epochs)
        if epoch in cfg.snapshot_epochs:
            snapshot()
    at = diverged_at.cpu().tolist()
    diverged = {r: divmod(t, steps_per_epoch) for r, t in zip(runs, at, strict=True) if t >= 0}
    ens.diverged = {r: (e + 1, k + 1) for r, (e, k) in diverged.items()}
    return ens, snaps


def _run_records(
    model_fn: Callable[[], Any],
    runs: list[int],
    plan: SubsetPlan,
    cfg: TrainConfig,
    data: _Data,
    dev: Any,
    keep_logits: bool,
    advance: Callable[[float], None] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, tuple[int, int]]]:
    """Train ``runs`` as one ensemble; per run that trained to a finite loss, the arguments
    of :meth:`RunStore.add_run <memscore.RunStore.add_run>` that record it; and the
    diverged runs' (epoch, step) by run id."""
    torch = _torch()
    t0 = time.perf_counter()
    ens, snaps = _fit_group(model_fn, runs, plan, cfg, data, dev, advance)
    diverged = ens.diverged
    z_tr = ens.logits(data.x.chunks(4096)).cpu().numpy()
    z_te = ens.logits(data.x_test.chunks(4096)).cpu().numpy() if data.x_test is not None else None
    stacked = {k: torch.stack(v, dim=1).numpy() for k, v in snaps.items()}  # (E, S, n)
    views: dict[str, Any] = {"train": None, "test": None}
    for split, x, y in (("train", data.x, data.y), ("test", data.x_test, data.y_test)):
        if data.views and x is not None:
            lab = y.cpu().numpy()
            views[split] = np.stack(
                [logit_confidence(ens.logits(x.chunks(4096, v)).cpu().numpy(), lab) for v in data.views], axis=-1
            )  # (E, n, K)
    # the ensemble's training time shared by its runs: what a forecast prices runs at
    seconds = (time.perf_counter() - t0) / len(runs)
    meta = cfg.as_dict() | {
        "augment": data.aug_name,
        "query_views": len(data.views),
        "train_seconds": seconds,
        "device": str(dev),
    }
    out = []
    for e, r in enumerate(runs):
        if r in diverged:
            continue
        snap = None
        if stacked:
            snap = {"epochs": np.array(cfg.snapshot_epochs)} | {k: v[e] for k, v in stacked.items()}
        out.append(
            dict(
                mask=plan.masks[r],
                train_logits=z_tr[e],
                test_logits=None if z_te is None else z_te[e],
                subset_ratio=float(plan.subset_ratios[r]),
                run_id=plan.run_ids[r],
                metadata={**meta, "run": r},
                keep_logits=keep_logits,
                snapshots=snap,
                train_phi_views=None if views["train"] is None else views["train"][e],
                test_phi_views=None if views["test"] is None else views["test"][e],
                multiplicity=None if plan.multiplicities is None else plan.multiplicities[r],
            )
        )
    return out, {plan.run_ids[r]: at for r, at in diverged.items()}
