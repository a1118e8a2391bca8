"""One ensemble of runs trained as one model: the data as the ensemble reads it
(:class:`_Data`, :class:`_Epochs`), the training loop (:func:`_fit_group`) and what every run
records (:func:`_run_records`).

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
from .checks import _batch_dependent
from .config import TrainConfig, _torch
from .distill import Distillation, distill_loss
from .ensemble import _Ensemble, snapshot_outcomes_torch
from .inputs import DeviceInputs
from .models import init_model, run_seed
from .plan import SubsetPlan
from .randomness import epoch_order

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


class _Epochs:
    """Every member's batches, an epoch at a time, built where the inputs are (the device,
    when they are held there): one draw per epoch of all members' orders and augmentation
    parameters (:mod:`memscore.train.randomness`), then index slices per step, with no host
    round trip. A smaller last batch is padded with example 0 at weight 0 (to the full batch
    when compiled and the model does not mix a batch's examples, so that shapes stay static)."""

    def __init__(self, runs: list[int], plan: SubsetPlan, cfg: TrainConfig, data: _Data, dev: Any, pad: bool) -> None:
        torch = _torch()
        subsets = [plan.epoch_examples(r) for r in runs]  # a bootstrap draw k times appears k times
        self.sizes = [int(s.size) for s in subsets]
        b = self.b = cfg.batch_size
        self.steps = -(-self.sizes[0] // b)
        if any(-(-n // b) != self.steps for n in self.sizes):  # pragma: no cover - train_runs groups by steps
            raise AssertionError("ensemble members must take the same number of steps per epoch")
        self.where = data.x.device if data.x.on_device else torch.device("cpu")
        self.keys = torch.tensor([run_seed(cfg.seed, r, 1) for r in runs], dtype=torch.int64, device=self.where)
        span = self.steps * b
        table = np.zeros((len(runs), span), dtype=np.int64)
        for e, s in enumerate(subsets):
            table[e, : s.size] = s
        self.table = torch.from_numpy(table).to(self.where)
        weight = (np.arange(span)[None, :] < np.array(self.sizes)[:, None]).astype(np.float32)
        self.weight = torch.from_numpy(weight).to(dev)
        self.total = self.weight.view(len(runs), self.steps, b).sum(2)  # (E, steps) real examples
        # each step's batch width (host ints: known without asking the device)
        self.width = [b if pad else min(b, max(n - t * b for n in self.sizes)) for t in range(self.steps)]
        self.data = data
        self.gens = [torch.Generator().manual_seed(run_seed(cfg.seed, r, 2)) for r in runs]  # a user's callable

    def epoch(self, epoch: int) -> tuple[Any, dict[str, Any] | None]:
        """The epoch's (E, steps * b) example indices and built-in augmentation parameters."""
        torch = _torch()
        order = epoch_order(self.keys, self.sizes, epoch)
        idx = torch.zeros_like(self.table)
        idx[:, : order.shape[1]] = self.table.gather(1, order)
        aug = self.data.aug
        drawn = None
        if isinstance(aug, Augmentation):
            drawn = {k: v.to(self.weight.device, non_blocking=True)
                     for k, v in aug.draw_epoch(self.keys, epoch, idx.shape[1]).items()}  # fmt: skip
        return idx, drawn

    def batch(self, idx: Any, drawn: dict[str, Any] | None, t: int) -> tuple[Any, Any, Any, Any, Any]:
        """Step ``t``'s float inputs (E, w, ...), labels, weights, real-example counts and
        example indices."""
        lo = t * self.b
        sl = slice(lo, lo + self.width[t])
        it = idx[:, sl]
        data = self.data
        xb = data.x.raw(it)
        if drawn is not None:
            xb = data.aug.apply(xb, {k: v[:, sl] for k, v in drawn.items()})
        elif data.aug is not None:  # a user's callable: each member's real rows, its own generator
            xb = xb.clone()
            for e, g in enumerate(self.gens):
                k = min(self.b, self.sizes[e] - lo)
                xb[e, :k] = data.aug(xb[e, :k], g)
        yb = data.y[it.to(data.y.device, non_blocking=True)]
        return data.x.to_float(xb), yb, self.weight[:, sl], self.total[:, t], it


def _loss_fn(
    cfg: TrainConfig, yb: Any, wb: Any, total: Any, teacher: Any = None, distill: Distillation | None = None
) -> Callable[[Any, slice], Any]:
    """Each member's loss: the mean over its real examples (padding weighs 0) of the
    cross-entropy, or with ``teacher`` logits (E, b, C) of ``distill``'s blend."""
    torch = _torch()

    def loss(logits: Any, members: slice) -> Any:
        if teacher is not None and distill is not None:
            per = distill_loss(
                logits, teacher[members], yb[members], alpha=distill.alpha, temperature=distill.temperature,
                label_smoothing=cfg.label_smoothing,
            )  # fmt: skip
        else:
            per = torch.nn.functional.cross_entropy(
                logits.flatten(0, 1), yb[members].flatten(), reduction="none", label_smoothing=cfg.label_smoothing
            ).view(logits.shape[0], -1)
        return (per * wb[members]).sum(1) / total[members]

    return loss


class _Teacher:
    """The teacher logits of each step's batches: gathered on the device from stored logits
    (per member from a teacher store, shared from an array), or a teacher module's outputs
    on the same augmented batch the students see."""

    def __init__(self, distill: Distillation | None, plan: SubsetPlan, runs: list[int], dev: Any) -> None:
        self.distill = distill if distill is not None and distill.alpha > 0 else None  # alpha 0: the plain runs
        self.stored: Any = None
        self.module: Any = None
        if self.distill is None:
            return
        if self.distill.kind == "module":
            self.module = self.distill.module_on(dev)
        else:
            self.stored = self.distill.logits_for(plan, runs, dev)  # (E, n, C) or (n, C)

    def active(self, epoch: int) -> bool:
        """Whether epoch ``epoch`` (1-based) trains on the distillation loss."""
        return self.distill is not None and epoch > self.distill.start_epoch

    def logits(self, idx: Any, xb: Any) -> Any:
        """(E, b, C) teacher logits of the batch: examples ``idx`` (E, b), float inputs ``xb``."""
        torch = _torch()
        if self.module is not None:
            with torch.no_grad():
                z = self.module(xb.flatten(0, 1)).float()
            return z.view(*xb.shape[:2], -1)
        it = idx.to(self.stored.device, non_blocking=True)
        if self.stored.ndim == 2:
            return self.stored[it]
        return self.stored[torch.arange(it.shape[0], device=it.device)[:, None], it]


def _fit_group(
    model_fn: Callable[[], Any],
    runs: list[int],
    plan: SubsetPlan,
    cfg: TrainConfig,
    data: _Data,
    dev: Any,
    advance: Callable[[float], None] | None = None,
    strategy: str = "vmap",
    chunk: int = 4096,
    distill: Distillation | None = None,
) -> tuple[_Ensemble, dict[str, Any], dict[str, Any]]:
    """Train the runs ``runs`` as one ensemble; returns it with the snapshots' outcomes
    ((E, S, n) CPU tensors by name) and the final eval logits the last snapshot computed (by
    split; empty when the last epoch is not a snapshot). ``ens.diverged`` maps the runs
    whose loss turned non-finite to the (1-based) epoch and step where it did first (their
    groupmates train on unaffected). ``advance(runs)`` is told the runs done (fractional:
    per epoch) as they progress. The step loop never waits for the device: the outcomes
    stay there until the end. ``distill`` trains the members on a teacher's soft labels
    (:mod:`memscore.train.distill`)."""
    torch = _torch()
    E = len(runs)
    models = [init_model(model_fn, cfg.seed, r) for r in runs]
    epochs = _Epochs(runs, plan, cfg, data, dev, pad=cfg.compile and not _batch_dependent(models[0]))
    ens = _Ensemble(models, cfg, dev, epochs.steps, strategy)
    teacher = _Teacher(distill, plan, runs, dev)
    snaps: dict[str, list[Any]] = {}
    last: dict[str, Any] = {}

    def snapshot(final: bool) -> None:
        for split, x, y in (("train", data.x, data.y), ("test", data.x_test, data.y_test)):
            if x is None:
                continue
            z = ens.logits(x.chunks(chunk))
            if final:
                last[split] = z
            for k, v in snapshot_outcomes_torch(z, y).items():
                snaps.setdefault(f"{split}_{k}", []).append(v)
        if cfg.grand:
            snaps.setdefault("train_grand", []).append(ens.grad_norms(data.x.chunks(ens.grad_chunk()), data.y))

    if 0 in cfg.snapshot_epochs:
        snapshot(cfg.epochs == 0)
    # the first step (0-based, over all epochs) at which each member diverged, -1 while it has
    # not: kept on the device (no synchronization per step), read once at the end. A member
    # diverges when its loss turns NaN or infinite; under fp16 such a step is an overflow the
    # member skips (GradScaler's rule), and it diverges when it skipped a whole epoch.
    diverged_at = torch.full((E,), -1, dtype=torch.int64, device=dev)
    skipped = torch.zeros(E, dtype=torch.int64, device=dev)
    step = 0
    for epoch in range(1, cfg.epochs + 1):
        idx, drawn = epochs.epoch(epoch)
        distilling = teacher.active(epoch)
        for t in range(epochs.steps):
            xb, yb, wb, total, it = epochs.batch(idx, drawn, t)
            tb = teacher.logits(it, xb) if distilling else None
            loss = ens.train_step(xb, _loss_fn(cfg, yb, wb, total, tb, teacher.distill), dead=diverged_at >= 0)
            if ens.scaler is None:
                diverged_at = torch.where(~torch.isfinite(loss) & (diverged_at < 0), step, diverged_at)
            else:
                skipped += ~ens.stepped
            step += 1
        if ens.scaler is not None:
            diverged_at = torch.where((skipped >= epochs.steps) & (diverged_at < 0), step - 1, diverged_at)
            skipped.zero_()
        if advance is not None:
            advance(E / cfg.epochs)
        if epoch in cfg.snapshot_epochs:
            snapshot(epoch == cfg.epochs)
    at = diverged_at.cpu().tolist()
    found = {r: divmod(t, epochs.steps) for r, t in zip(runs, at, strict=True) if t >= 0}
    ens.diverged = {r: (e + 1, k + 1) for r, (e, k) in found.items()}
    stacked = {k: torch.stack(v, dim=1).cpu() for k, v in snaps.items()}  # (E, S, n)
    return ens, stacked, last


def _run_records(
    model_fn: Callable[[], Any],
    runs: list[int],
    plan: SubsetPlan,
    cfg: TrainConfig,
    data: _Data,
    dev: Any,
    keep_logits: bool,
    advance: Callable[[float], None] | None = None,
    strategy: str = "vmap",
    chunk: int = 4096,
    distill: Distillation | None = None,
) -> tuple[list[dict[str, Any]], dict[str, tuple[int, int]]]:
    """Train ``runs`` as one ensemble (``strategy``; eval passes ``chunk`` examples at a
    time); per run that trained to a finite loss, the arguments of :meth:`RunStore.add_run
    <memscore.RunStore.add_run>` that record it; and the diverged runs' (epoch, step) by
    run id."""
    t0 = time.perf_counter()
    ens, snaps, last = _fit_group(model_fn, runs, plan, cfg, data, dev, advance, strategy, chunk, distill)
    diverged = ens.diverged
    # the last snapshot's logits when it was taken after the last epoch: not computed twice
    z_tr = (last["train"] if "train" in last else ens.logits(data.x.chunks(chunk))).cpu().numpy()
    z_te = None
    if data.x_test is not None:
        z_te = (last["test"] if "test" in last else ens.logits(data.x_test.chunks(chunk))).cpu().numpy()
    stacked = {k: v.numpy() for k, v in snaps.items()}  # (E, S, n)
    views: dict[str, Any] = {"train": None, "test": None}
    for split, x, y in (("train", data.x, data.y), ("test", data.x_test, data.y_test)):
        if data.views and x is not None:
            lab = y.cpu().numpy()
            views[split] = np.stack(
                [logit_confidence(ens.logits(x.chunks(chunk, v)).cpu().numpy(), lab) for v in data.views], axis=-1
            )  # (E, n, K)
    # the ensemble's training time shared by its runs: what a forecast prices runs at
    seconds = (time.perf_counter() - t0) / len(runs)
    meta = cfg.as_dict() | {
        "augment": data.aug_name,
        "query_views": len(data.views),
        "train_seconds": seconds,
        "device": str(dev),
        "strategy": strategy,
        "ensemble_size": len(runs),
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
                metadata={**meta, "run": r, **_distill_record(distill, plan.run_ids[r])},
                keep_logits=keep_logits,
                snapshots=snap,
                train_phi_views=None if views["train"] is None else views["train"][e],
                test_phi_views=None if views["test"] is None else views["test"][e],
                multiplicity=None if plan.multiplicities is None else plan.multiplicities[r],
            )
        )
    return out, {plan.run_ids[r]: at for r, at in diverged.items()}


def _distill_record(distill: Distillation | None, run_id: str) -> dict[str, Any]:
    """What a distilled run's metadata records under ``"distill"`` (its teacher run too)."""
    if distill is None:
        return {}
    rec = distill.describe()
    if distill.kind == "store":
        rec["teacher"]["run_id"] = run_id
    return {"distill": rec}
