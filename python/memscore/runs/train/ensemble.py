"""Many models trained as one: stacked parameters, one vmapped forward/backward pass, one
optimizer over the stacked tensors; and the outcomes recorded at snapshots."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    pass
from .config import TrainConfig, _torch

__all__ = ["snapshot_outcomes_torch"]


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


def _no_grad(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run a method under ``torch.no_grad()`` (torch is imported lazily)."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _torch().no_grad():
            return fn(*args, **kwargs)

    wrapper.__doc__ = fn.__doc__
    return wrapper


class _Ensemble:
    """``E`` models with stacked parameters (``torch.func.stack_module_state``), trained as
    one vmapped model by one ``torch.optim`` optimizer over the stacked tensors (fused
    where the device has the kernel): elementwise updates of a stacked tensor are per-member
    updates, and every member steps at every step (runs are grouped by step count)."""

    def __init__(self, models: Sequence[Any], cfg: TrainConfig, device: Any) -> None:
        torch = _torch()
        from torch.func import functional_call, stack_module_state

        self.E = len(models)
        params, buffers = stack_module_state([m.to(device) for m in models])
        self.names = list(params)
        self.params = [params[k].detach().clone().requires_grad_(True) for k in self.names]
        self.buffers = {k: v.detach().clone() for k, v in buffers.items()}
        base = models[0].to("meta")

        def f(p: Sequence[Any], b: dict[str, Any], x: Any) -> Any:
            return functional_call(base, ({**dict(zip(self.names, p, strict=True)), **b}), (x,))

        self._f = f
        self.vm_batch = torch.func.vmap(f, in_dims=(0, 0, 0), randomness="different")
        self.vm_shared = torch.func.vmap(f, in_dims=(0, 0, None), randomness="different")
        kw: dict[str, Any] = {"lr": cfg.lr, "weight_decay": cfg.weight_decay}
        if cfg.optimizer == "sgd":
            cls, kw["momentum"] = torch.optim.SGD, cfg.momentum
        else:
            cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
            kw.update(betas=cfg.betas, eps=cfg.eps)
        # Elementwise updates of the stacked tensors are per-member updates. The fused kernel
        # does one pass over a few large tensors (per-member tensors would be ~20x slower).
        try:
            self.opt = cls(self.params, fused=True, **kw)
        except (RuntimeError, ValueError, TypeError):  # no fused kernel for this device
            self.opt = cls(self.params, **kw)

    @_no_grad
    def step(self, grads: Sequence[Any]) -> None:
        """One optimizer step of every member."""
        for p, g in zip(self.params, grads, strict=True):
            # vmap's weight gradients come transposed; the fused kernels need p's layout
            p.grad = g.contiguous()
        self.opt.step()
        for p in self.params:
            p.grad = None

    def logits(self, x: Any, chunk: int = 4096) -> Any:
        """(E, n, C) logits of every member on the shared inputs ``x``."""
        torch = _torch()
        with torch.no_grad():
            p = [q.detach() for q in self.params]
            return torch.cat(
                [self.vm_shared(p, self.buffers, x[i : i + chunk]) for i in range(0, x.shape[0], chunk)], dim=1
            )

    def grad_norms(self, x: Any, y: Any) -> Any:
        """(E, n) per-example gradient norm of the cross-entropy (GraNd, Paul et al. 2021)."""
        torch = _torch()
        from torch.func import grad, vmap

        def loss1(p: Sequence[Any], b: dict[str, Any], xi: Any, yi: Any) -> Any:
            z = self._f(p, b, xi.unsqueeze(0))
            return torch.nn.functional.cross_entropy(z, yi.unsqueeze(0))

        per_ex = vmap(grad(loss1), in_dims=(None, None, 0, 0))
        per_member = vmap(per_ex, in_dims=(0, 0, None, None))
        n_params = sum(int(q[0].numel()) for q in self.params)
        chunk = max(1, int(2**25 // max(1, self.E * n_params)))  # ~128 MiB of float32 gradients
        p = [q.detach() for q in self.params]
        out = []
        for i in range(0, x.shape[0], chunk):
            gs = per_member(p, self.buffers, x[i : i + chunk], y[i : i + chunk])
            sq = sum(g.flatten(2).pow(2).sum(-1) for g in gs)
            out.append(sq.sqrt())
        return torch.cat(out, dim=1)
