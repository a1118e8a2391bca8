"""Many models trained as one: stacked parameters, one vmapped forward/backward pass, one
optimizer over the stacked tensors; and the outcomes recorded at snapshots."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .config import TrainConfig, _torch

__all__ = ["STRATEGIES", "autocast", "snapshot_outcomes_torch"]


def snapshot_outcomes_torch(logits: Any, labels: Any) -> dict[str, Any]:
    """Per-example correctness, cross-entropy and EL2N of logits, as tensors.

    The torch twin of :func:`memscore.snapshot_outcomes`, used on the device while training.

    Parameters
    ----------
    logits : torch.Tensor, shape (..., n, C)
        Logits.
    labels : torch.Tensor of int64, shape (n,)
        Class labels.

    Returns
    -------
    dict of str to torch.Tensor, each of shape (..., n)
        ``"correct"`` (bool), ``"loss"`` and ``"el2n"`` (float64).
    """
    torch = _torch()
    logp = torch.log_softmax(logits.double(), dim=-1)
    lab = labels.expand(logits.shape[:-1])
    loss = -logp.gather(-1, lab.unsqueeze(-1)).squeeze(-1)
    onehot = torch.nn.functional.one_hot(lab, logits.shape[-1]).to(logp.dtype)
    el2n = torch.linalg.vector_norm(logp.exp() - onehot, dim=-1)
    # argmax ties toward the lower class, as the store does with numpy
    correct = logits.argmax(-1) == lab
    return {"correct": correct, "loss": loss, "el2n": el2n}


def _make_optimizer(params: Sequence[Any], cfg: TrainConfig, fused: bool) -> Any:
    """The ``torch.optim`` optimizer ``cfg`` names, over ``params`` (fused when asked and the
    device has the kernel). The plain reference loop builds its optimizer here too."""
    torch = _torch()
    kw: dict[str, Any] = {"lr": cfg.lr, "weight_decay": cfg.weight_decay}
    if cfg.optimizer == "sgd":
        cls = torch.optim.SGD
        kw.update(momentum=cfg.momentum, nesterov=cfg.nesterov)
    else:
        cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
        kw.update(betas=cfg.betas, eps=cfg.eps)
    if fused:
        try:
            return cls(params, fused=True, **kw)
        except (RuntimeError, ValueError, TypeError):  # no fused kernel for this device
            pass
    return cls(params, **kw)


def autocast(cfg: TrainConfig, device: Any) -> Any:
    """The forward pass's autocast context: ``cfg.precision`` on CUDA, nothing for fp32."""
    import contextlib

    torch = _torch()
    if cfg.precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if cfg.precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


#: The ways an ensemble trains its members (``train_runs(strategy=)``): ``"vmap"``, one
#: ``torch.func.vmap`` over every member (convolutions become grouped convolutions), and
#: ``"loop"``, each member's own forward and backward in turn (the plain model's kernels;
#: one member's activations alive at a time). Both update the stacked parameters with one
#: optimizer step, and train the same runs.
STRATEGIES = ("vmap", "loop")

_COMPILED: dict[tuple[Any, ...], tuple[Any, list[str], Any]] = {}
"""Compiled training forwards by (architecture, strategy, device type): every ensemble of a
process with the same architecture reuses one base module and one compiled function, so
dynamo's guards hold and nothing recompiles per ensemble."""


def _architecture(model: Any) -> tuple[Any, ...]:
    """What makes two models the same graph: class, ``repr`` and every tensor's shape and dtype."""
    return (type(model), repr(model), tuple((k, tuple(v.shape), v.dtype) for k, v in model.state_dict().items()))


class _MemberScaler:
    """fp16 loss scaling per member: ``torch.amp.GradScaler``'s rule (start at 2**16, halve
    and skip the step on an overflow, double after 2,000 clean steps) with one scale and
    one overflow flag per member, on the device, so one member's overflow skips only its
    own step."""

    GROWTH_INTERVAL = 2000

    def __init__(self, E: int, device: Any) -> None:
        torch = _torch()
        self.scale = torch.full((E,), 2.0**16, dtype=torch.float32, device=device)
        self.tracker = torch.zeros(E, dtype=torch.int32, device=device)

    def inverse(self) -> Any:
        """(E,) 1 / scale, as GradScaler computes it (in float64, then float32)."""
        return self.scale.double().reciprocal().float()

    def update(self, ok: Any) -> None:
        """Advance every member's scale: ``ok`` (E,) marks the members whose step ran."""
        torch = _torch()
        tracker = torch.where(ok, self.tracker + 1, 0)
        grow = tracker >= self.GROWTH_INTERVAL
        self.scale = torch.where(ok, torch.where(grow, self.scale * 2.0, self.scale), self.scale * 0.5)
        self.tracker = torch.where(grow, 0, tracker).to(torch.int32)


def _lead(t: Any, ndim: int) -> Any:
    """(E,) ``t`` shaped to broadcast over a stacked tensor of ``ndim`` dimensions."""
    return t.view(-1, *([1] * (ndim - 1)))


class _Ensemble:
    """``E`` models with stacked parameters and buffers (``torch.func.stack_module_state``),
    trained by one ``torch.optim`` optimizer over the stacked tensors (fused where the
    device has the kernel): elementwise updates of a stacked tensor are per-member updates,
    and every member steps at every step (runs are grouped by step count). The forward and
    backward run as one vmapped model or member by member (``strategy``, :data:`STRATEGIES`).
    Buffers are stacked along the member axis too, so BatchNorm's running statistics update
    in place per member, as a single model's do. Steps run the model in train mode;
    outcomes, snapshots and GraNd in eval mode (running statistics)."""

    def __init__(
        self, models: Sequence[Any], cfg: TrainConfig, device: Any, steps_per_epoch: int, strategy: str = "vmap"
    ) -> None:
        torch = _torch()
        from torch.func import functional_call, stack_module_state

        from .schedules import make_scheduler

        if strategy not in STRATEGIES:
            raise ValueError(f"strategy: expected one of {', '.join(STRATEGIES)}, got {strategy!r}")
        self.E = len(models)
        self.cfg = cfg
        self.strategy = strategy
        self.diverged: dict[int, tuple[int, int]] = {}  # run -> (epoch, step): set by the training loop
        self.device = device
        key = (_architecture(models[0]), strategy, device.type)
        params, buffers = stack_module_state([m.to(device) for m in models])
        self.params = [params[k].detach().clone().requires_grad_(True) for k in params]
        self.buffers = {k: v.detach().clone() for k, v in buffers.items()}
        cached = _COMPILED.get(key) if cfg.compile else None
        if cached is not None:
            self.base, self.names, self.train_forward = cached
        else:
            self.base, self.names = models[0].to("meta"), list(params)
        names, base = self.names, self.base

        def f(p: Sequence[Any], b: dict[str, Any], x: Any) -> Any:
            return functional_call(base, ({**dict(zip(names, p, strict=True)), **b}), (x,))

        self._f = f
        self.vm_batch = torch.func.vmap(f, in_dims=(0, 0, 0), randomness="different")
        self.vm_shared = torch.func.vmap(f, in_dims=(0, 0, None), randomness="different")
        if cached is None:
            forward = self.vm_batch if strategy == "vmap" else f
            if cfg.compile:
                # the same computation (BatchNorm's in-place buffer updates included), fused by
                # inductor, the backward through AOTAutograd's graph; on CUDA with CUDA graphs
                # ("reduce-overhead"), which removes the per-kernel launch cost
                mode = "reduce-overhead" if device.type == "cuda" else "default"
                forward = torch.compile(forward, dynamic=False, mode=mode)
                _COMPILED[key] = (self.base, self.names, forward)
            self.train_forward = forward
        # Elementwise updates of the stacked tensors are per-member updates. The fused kernel
        # does one pass over a few large tensors (per-member tensors would be ~20x slower).
        self.opt = _make_optimizer(self.params, cfg, fused=True)
        self.sched = make_scheduler(self.opt, cfg, steps_per_epoch)
        self.scaler = _MemberScaler(self.E, device) if cfg.precision == "fp16" else None
        self.stepped: Any = None  # fp16: (E,) which members' last step ran (not skipped)
        self._grads: list[Any] | None = None  # the loop's per-member gradients, stacked

    def _run(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` under the autocast of the precision (and, compiled, dynamo's limits)."""
        torch = _torch()
        with autocast(self.cfg, self.device):
            if not self.cfg.compile:
                return fn(*args)
            # Ensembles of another size and a BatchNorm model's shorter last batch trace anew;
            # without a higher limit dynamo would silently run them eagerly after the 8th.
            with torch._dynamo.config.patch(recompile_limit=2**20, accumulated_recompile_limit=2**20):
                return fn(*args)

    def forward_train(self, x: Any) -> Any:
        """(E, b, C) logits of every member on its own batch ``x[e]``, in train mode (BatchNorm
        uses batch statistics and updates each member's running statistics)."""
        self.base.train()
        if self.strategy == "vmap":
            return self._run(self.train_forward, self.params, self.buffers, x)
        views = [p.unbind(0) for p in self.params]
        bufs = {k: v.unbind(0) for k, v in self.buffers.items()}
        return _torch().stack(
            [self._run(self.train_forward, [v[e] for v in views], {k: b[e] for k, b in bufs.items()}, x[e])
             for e in range(self.E)]
        )  # fmt: skip

    def train_step(self, x: Any, loss_fn: Callable[[Any, slice], Any], dead: Any = None) -> Any:
        """One training step of every member on its own batch ``x[e]``.

        ``loss_fn(logits, members)`` gives the losses (len,) of the members ``members`` (a
        slice) from their float32 logits (len, b, C). Returns the (E,) losses, detached.
        ``dead`` (E,) marks diverged members (their steps are skipped under fp16)."""
        torch = _torch()
        scale = self.scaler.scale if self.scaler is not None else None
        if self.strategy == "vmap":
            loss = loss_fn(self.forward_train(x).float(), slice(None))
            grads = list(torch.autograd.grad((loss * scale).sum() if scale is not None else loss.sum(), self.params))
        else:
            # member by member: one member's graph alive at a time; the gradients with respect
            # to its slices of the stacked parameters land in stacked gradient buffers
            if self._grads is None:
                self._grads = [torch.zeros_like(p) for p in self.params]
            self.base.train()
            views = [p.unbind(0) for p in self.params]
            bufs = {k: v.unbind(0) for k, v in self.buffers.items()}
            losses = []
            for e in range(self.E):
                mine = [v[e] for v in views]
                z = self._run(self.train_forward, mine, {k: b[e] for k, b in bufs.items()}, x[e])
                le = loss_fn(z.float().unsqueeze(0), slice(e, e + 1))
                gs = torch.autograd.grad(le[0] * scale[e] if scale is not None else le[0], mine, allow_unused=True)
                for buf, g in zip(self._grads, gs, strict=True):
                    if g is None:
                        buf[e].zero_()
                    else:
                        buf[e].copy_(g)
                losses.append(le.detach())
            loss, grads = torch.cat(losses), self._grads
        self._update(grads, dead)
        return loss.detach()

    def _update(self, grads: list[Any], dead: Any) -> None:
        """One optimizer step of every member from its gradients (per-member unscaling,
        overflow skipping and clipping); the schedule advances by one step."""
        torch = _torch()
        with torch.no_grad():
            ok = None
            if self.scaler is not None:
                inv = self.scaler.inverse()
                grads = [g * _lead(inv, g.ndim) for g in grads]
                ok = torch.stack([g.flatten(1).isfinite().all(1) for g in grads]).all(0)
                if dead is not None:
                    ok = ok & ~dead
                # a skipped member's gradients are zeroed, so that its infs do not reach the
                # fused kernel; its parameters and optimizer state are restored after the step
                grads = [torch.where(_lead(ok, g.ndim), g, 0.0) for g in grads]
            for p, g in zip(self.params, grads, strict=True):
                p.grad = g.contiguous()  # vmap's weight gradients come transposed; fused kernels need p's layout
            if self.cfg.grad_clip is not None:
                # each member's global norm, as torch.nn.utils.clip_grad_norm_ computes it
                norm = sum(p.grad.flatten(1).float().pow(2).sum(1) for p in self.params).sqrt()
                coef = (self.cfg.grad_clip / (norm + 1e-6)).clamp(max=1.0)
                for p in self.params:
                    p.grad.mul_(_lead(coef, p.ndim).to(p.grad.dtype))
            saved = [None if t is None else t.clone() for t in self._state()] if ok is not None else None
            self.opt.step()
            if self.scaler is not None and ok is not None and saved is not None:
                for t, before in zip(self._state(), saved, strict=True):
                    if t is not None:
                        t.copy_(torch.where(_lead(ok, t.ndim), t, before if before is not None else 0.0))
                self.scaler.update(ok)
                self.stepped = ok
            for p in self.params:
                p.grad = None
        self.sched.step()

    def _state(self) -> list[Any]:
        """Every stacked tensor a step changes, live: the parameters, then the optimizer's
        per-member state (``None`` where the optimizer has not made it yet: its value before
        is zero). Adam's step count is one per tensor, not per member: a member's skipped
        fp16 step still counts in its bias correction (docs/training.md)."""
        out: list[Any] = [p.detach() for p in self.params]
        for p in self.params:
            for name in ("momentum_buffer", "exp_avg", "exp_avg_sq"):
                out.append(self.opt.state.get(p, {}).get(name))
        return out

    def logits(self, chunks: Any) -> Any:
        """(E, n, C) eval-mode logits of every member on the shared float input ``chunks``."""
        torch = _torch()
        self.base.eval()
        with torch.no_grad(), autocast(self.cfg, self.device):
            p = [q.detach() for q in self.params]
            if self.strategy == "vmap":
                out = torch.cat([self.vm_shared(p, self.buffers, x).float() for x in chunks], dim=1)
            else:
                mine = [[q[e] for q in p] for e in range(self.E)]
                bufs = [{k: v[e] for k, v in self.buffers.items()} for e in range(self.E)]
                out = torch.cat(
                    [torch.stack([self._f(mine[e], bufs[e], x).float() for e in range(self.E)]) for x in chunks], dim=1
                )
        self.base.train()
        return out

    def grad_norms(self, chunks: Any, y: Any) -> Any:
        """(E, n) per-example gradient norm of the cross-entropy (GraNd, Paul et al. 2021), in
        eval mode; ``chunks`` yields the float inputs in order, ``y`` holds all labels."""
        torch = _torch()
        from torch.func import grad, vmap

        def loss1(p: Sequence[Any], b: dict[str, Any], xi: Any, yi: Any) -> Any:
            z = self._f(p, b, xi.unsqueeze(0))
            return torch.nn.functional.cross_entropy(z, yi.unsqueeze(0))

        per_ex = vmap(grad(loss1), in_dims=(None, None, 0, 0))
        per_member = vmap(per_ex, in_dims=(0, 0, None, None))
        p = [q.detach() for q in self.params]
        out = []
        i = 0
        self.base.eval()
        for xc in chunks:
            gs = per_member(p, self.buffers, xc, y[i : i + xc.shape[0]])
            i += xc.shape[0]
            sq = sum(g.flatten(2).pow(2).sum(-1) for g in gs)
            out.append(sq.sqrt())
        self.base.train()
        return torch.cat(out, dim=1)

    def grad_chunk(self) -> int:
        """Examples per GraNd chunk: ~128 MiB of float32 per-example gradients."""
        n_params = sum(int(q[0].numel()) for q in self.params)
        return max(1, int(2**25 // max(1, self.E * n_params)))
