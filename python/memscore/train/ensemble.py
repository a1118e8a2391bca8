"""Many models trained as one: stacked parameters, one vmapped forward/backward pass, one
optimizer over the stacked tensors; and the outcomes recorded at snapshots."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    pass
from .config import TrainConfig, _torch

__all__ = ["autocast", "snapshot_outcomes_torch"]


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


class _Ensemble:
    """``E`` models with stacked parameters and buffers (``torch.func.stack_module_state``),
    trained as one vmapped model by one ``torch.optim`` optimizer over the stacked tensors
    (fused where the device has the kernel): elementwise updates of a stacked tensor are
    per-member updates, and every member steps at every step (runs are grouped by step
    count). Buffers are batched along the member axis too, so BatchNorm's running statistics
    update in place per member inside ``vmap``, as a single model's do. Steps run the model in
    train mode; outcomes, snapshots and GraNd in eval mode (running statistics)."""

    def __init__(self, models: Sequence[Any], cfg: TrainConfig, device: Any, steps_per_epoch: int) -> None:
        torch = _torch()
        from torch.func import functional_call, stack_module_state

        from .schedules import make_scheduler

        self.E = len(models)
        self.cfg = cfg
        self.diverged: dict[int, tuple[int, int]] = {}  # run -> (epoch, step): set by the training loop
        self.device = device
        params, buffers = stack_module_state([m.to(device) for m in models])
        self.names = list(params)
        self.params = [params[k].detach().clone().requires_grad_(True) for k in self.names]
        self.buffers = {k: v.detach().clone() for k, v in buffers.items()}
        self.base = models[0].to("meta")

        def f(p: Sequence[Any], b: dict[str, Any], x: Any) -> Any:
            return functional_call(self.base, ({**dict(zip(self.names, p, strict=True)), **b}), (x,))

        self._f = f
        self.vm_batch = torch.func.vmap(f, in_dims=(0, 0, 0), randomness="different")
        self.vm_shared = torch.func.vmap(f, in_dims=(0, 0, None), randomness="different")
        # The training forward, compiled when asked: the same computation (BatchNorm's in-place
        # buffer updates included), fused by inductor; shapes are static (a smaller last batch
        # compiles once more), the backward runs through AOTAutograd's compiled graph.
        self.train_forward = torch.compile(self.vm_batch, dynamic=False) if cfg.compile else self.vm_batch
        # Elementwise updates of the stacked tensors are per-member updates. The fused kernel
        # does one pass over a few large tensors (per-member tensors would be ~20x slower).
        self.opt = _make_optimizer(self.params, cfg, fused=True)
        self.sched = make_scheduler(self.opt, cfg, steps_per_epoch)
        self.scaler = torch.amp.GradScaler(device.type) if cfg.precision == "fp16" else None

    def forward_train(self, x: Any) -> Any:
        """(E, b, C) logits of every member on its own batch ``x[e]``, in train mode (BatchNorm
        uses batch statistics and updates each member's running statistics)."""
        torch = _torch()
        self.base.train()
        with autocast(self.cfg, self.device):
            if not self.cfg.compile:
                return self.train_forward(self.params, self.buffers, x)
            # Each ensemble's module is a guard of its compiled graph, so every ensemble traces
            # anew; without a higher limit dynamo would silently run every ensemble after the
            # 8th of a process eagerly.
            with torch._dynamo.config.patch(recompile_limit=2**20, accumulated_recompile_limit=2**20):
                return self.train_forward(self.params, self.buffers, x)

    def step(self, loss: Any, dead: Any = None) -> None:
        """Backward of the summed per-member ``loss`` and one optimizer step of every member
        (per-member gradient clipping; the schedule advances by one step). ``dead`` (E,)
        marks diverged members: with fp16's gradient scaler their gradients are zeroed, so
        that their NaNs do not make the scaler skip every member's step."""
        torch = _torch()
        scaled = self.scaler.scale(loss) if self.scaler is not None else loss
        grads = torch.autograd.grad(scaled, self.params)
        with torch.no_grad():
            for p, g in zip(self.params, grads, strict=True):
                if dead is not None and self.scaler is not None:
                    g = torch.where(dead.view(-1, *([1] * (g.ndim - 1))), 0.0, g)
                # vmap's weight gradients come transposed; the fused kernels need p's layout
                p.grad = g.contiguous()
            if self.scaler is not None:
                self.scaler.unscale_(self.opt)
            if self.cfg.grad_clip is not None:
                # each member's global norm, as torch.nn.utils.clip_grad_norm_ computes it
                norm = sum(p.grad.flatten(1).float().pow(2).sum(1) for p in self.params).sqrt()
                coef = (self.cfg.grad_clip / (norm + 1e-6)).clamp(max=1.0)
                for p in self.params:
                    p.grad.mul_(coef.view(-1, *([1] * (p.ndim - 1))).to(p.grad.dtype))
            if self.scaler is not None:
                self.scaler.step(self.opt)
                self.scaler.update()
            else:
                self.opt.step()
            for p in self.params:
                p.grad = None
        self.sched.step()

    def logits(self, chunks: Any) -> Any:
        """(E, n, C) eval-mode logits of every member on the shared float input ``chunks``."""
        torch = _torch()
        self.base.eval()
        with torch.no_grad(), autocast(self.cfg, self.device):
            p = [q.detach() for q in self.params]
            out = torch.cat([self.vm_shared(p, self.buffers, x).float() for x in chunks], dim=1)
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
