"""Knowledge distillation in the run engine: students trained on a teacher's soft labels.

Each member's loss is Hinton et al.'s blend,

    (1 - alpha) * CE(label) + alpha * tau**2 * KL(softmax(t / tau) || softmax(s / tau)),

where ``s`` are the student's logits and ``t`` the teacher's for the same example; the CE
term keeps ``label_smoothing``. Before ``start_epoch`` (epochs ``1 .. start_epoch``) the
loss is the plain CE (Nagarajan et al. 2023 switch to distillation mid-training).

The teacher is one of:

- a :class:`~memscore.RunStore` of teacher runs over the same examples: student run ``r``
  learns from the teacher run with the same run id, which must have been trained on the same
  subset (same mask) and stored with logits. This is the setting in which a student's
  memorization is defined (the teacher never saw the examples the student did not see).
- an ``(n_train, C)`` array of logits: one teacher for every student (e.g. a model trained
  on all the data).
- a ``torch.nn.Module``, run in eval mode on the device, on the same augmented batch the
  student sees. The training runs a copy of it (:meth:`Distillation.module_on`): the
  module given is not moved to the device nor switched to eval mode.

Stored logits (a store or an array) are the teacher's outputs on the **unaugmented**
inputs: an augmented batch is matched with the soft labels of its original examples. A
module follows the augmentation.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validate import check_float, check_int
from ..errors import StoreError
from .config import _torch

__all__ = ["Distillation", "distill_loss"]


@dataclass(frozen=True)
class Distillation:
    """How students learn from a teacher (see the module docstring); ``train_runs(distill=)``.

    Parameters
    ----------
    teacher : RunStore, array of shape (n_train, C), or torch.nn.Module
        The teacher: runs paired by run id, one set of logits, or a model.
    alpha : float, default 0.5
        Weight of the distillation term, in [0, 1] (0: the plain runs).
    temperature : float, default 4.0
        Softmax temperature tau > 0 of both distributions; the term is scaled by tau**2.
    start_epoch : int, default 0
        Epochs of plain cross-entropy before the distillation loss starts (0 .. epochs).

    Raises
    ------
    ValueError
        ``alpha`` outside [0, 1], ``temperature`` not a finite number > 0, ``start_epoch`` < 0,
        or a logits array that is not 2-D, not finite, or beyond float32's range.
    TypeError
        A teacher of another type.

    Examples
    --------
    >>> import numpy as np
    >>> Distillation(np.zeros((4, 3)), alpha=0.3, temperature=2.0).describe()["alpha"]
    0.3
    """

    teacher: Any
    alpha: float = 0.5
    temperature: float = 4.0
    start_epoch: int = 0

    def __post_init__(self) -> None:
        from ..runs.store import RunStore

        object.__setattr__(self, "alpha", check_float(self.alpha, "alpha", 0.0, 1.0))
        tau = check_float(self.temperature, "temperature")
        if not (math.isfinite(tau) and tau > 0):
            raise ValueError(f"temperature: expected a finite number > 0, got {self.temperature!r}")
        object.__setattr__(self, "temperature", tau)
        object.__setattr__(self, "start_epoch", check_int(self.start_epoch, "start_epoch", 0))
        t = self.teacher
        if isinstance(t, RunStore):
            return
        torch = _torch()
        if isinstance(t, torch.nn.Module):
            return
        if isinstance(t, (np.ndarray, torch.Tensor)) or hasattr(t, "__array__"):
            z = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
            if z.ndim != 2 or not np.issubdtype(z.dtype, np.number) or np.iscomplexobj(z):
                raise ValueError(
                    f"teacher: expected (n_train, C) real logits, got an array of shape {z.shape} {z.dtype}"
                )
            bad = ~np.isfinite(z)
            if bad.any():
                i, c = (int(v) for v in np.argwhere(bad)[0])
                raise ValueError(
                    f"teacher: the logits hold NaN or inf ({int(bad.sum())} values; first at example {i}, class {c})"
                )
            # the students train in float32: a finite float64 beyond its range would become inf
            with np.errstate(over="ignore"):
                z32 = np.ascontiguousarray(z, dtype=np.float32)
            big = ~np.isfinite(z32)
            if big.any():
                i, c = (int(v) for v in np.argwhere(big)[0])
                raise ValueError(
                    f"teacher: expected logits within float32's range (|z| <= {float(np.finfo(np.float32).max):.4g}), "
                    f"got {int(big.sum())} beyond it; first at example {i}, class {c}: {float(z[i, c])!r}"
                )
            object.__setattr__(self, "teacher", z32)
            return
        raise TypeError(
            f"teacher: expected a memscore.RunStore, an (n_train, C) logits array or a torch.nn.Module, "
            f"got {type(t).__name__}"
        )

    @property
    def kind(self) -> str:
        """``"store"``, ``"logits"`` or ``"module"``."""
        from ..runs.store import RunStore

        if isinstance(self.teacher, RunStore):
            return "store"
        return "logits" if isinstance(self.teacher, np.ndarray) else "module"

    def describe(self) -> dict[str, Any]:
        """What a run's metadata and the store's settings record: the teacher (its store's
        path, or a content hash of its logits or of its module's state) and the settings."""
        t = self.teacher
        if self.kind == "store":
            who: dict[str, Any] = {"store": str(t.path.resolve())}
        elif self.kind == "logits":
            who = {"logits_sha256": hashlib.sha256(t.tobytes()).hexdigest(), "shape": list(t.shape)}
        else:
            h = hashlib.sha256()
            for k, v in sorted(t.state_dict().items()):
                h.update(k.encode())
                h.update(v.detach().cpu().contiguous().numpy().tobytes())
            who = {"module_sha256": h.hexdigest(), "class": f"{type(t).__module__}.{type(t).__qualname__}"}
        return {"teacher": who, "alpha": self.alpha, "temperature": self.temperature, "start_epoch": self.start_epoch}

    def check(self, *, n_train: int, n_classes: int, labels: Any, epochs: int) -> None:
        """The teacher fits the student's examples and class count, and ``start_epoch`` the
        epochs (before any training).

        Raises
        ------
        ValueError, StoreError
            What does not fit, named.
        """
        check_int(self.start_epoch, "start_epoch", 0, epochs)
        if self.kind == "logits":
            if self.teacher.shape != (n_train, n_classes):
                raise ValueError(
                    f"teacher: expected logits of shape ({n_train}, {n_classes}) (the store's examples and classes), "
                    f"got {self.teacher.shape}"
                )
        elif self.kind == "store":
            t = self.teacher
            if t.n_train != n_train:
                raise StoreError(f"teacher: {t.path} holds {t.n_train} training examples, the student's data {n_train}")
            if t.n_classes is not None and t.n_classes != n_classes:
                raise StoreError(f"teacher: {t.path} has {t.n_classes} classes, the student's store {n_classes}")
            if t.train_labels is not None and not np.array_equal(t.train_labels, np.asarray(labels)):
                raise StoreError(f"teacher: {t.path} was trained on other labels than the student's data")

    def check_runs(self, plan: Any, runs: list[int]) -> None:
        """With a teacher store: each student run has its teacher run (same run id), trained on
        the same subset and stored with logits.

        Raises
        ------
        ValueError
            A teacher run missing, trained on another subset, or without logits.
        """
        if self.kind != "store":
            return
        t = self.teacher
        have = set(t.refresh())
        for r in runs:
            rid = plan.run_ids[r]
            if rid not in have:
                raise ValueError(
                    f"teacher: {t.path} has no run {rid} (student run {rid} learns from the teacher run with its id)"
                )
            if not np.array_equal(t.mask(rid), plan.masks[r]):
                raise ValueError(f"teacher: run {rid} of {t.path} was trained on another subset than student run {rid}")
            if "train_logits" not in t.run_info(rid).get("fields", {}):
                raise ValueError(
                    f"teacher: run {rid} of {t.path} was stored without logits (train with keep_logits=True)"
                )

    def module_on(self, device: Any) -> Any:
        """A module teacher as the students' ensemble runs it: a copy (``copy.deepcopy``) on
        ``device``, in eval mode, its parameters without gradients. The user's module is
        neither moved nor switched to eval mode (a move and a move back would race when
        several ensembles train at once on threads, and would leave the module moved if the
        training failed); each ensemble holds its own copy while it trains."""
        import copy

        if self.kind != "module":
            raise ValueError(f"module_on: the teacher is {self.kind}, not a module")
        module = copy.deepcopy(self.teacher).to(device).eval()
        module.requires_grad_(False)
        return module

    def logits_for(self, plan: Any, runs: list[int], device: Any) -> Any:
        """The stored teacher logits the members of ``runs`` learn from, on ``device``:
        ``(E, n_train, C)`` from a store, ``(n_train, C)`` from an array (shared), None for
        a module."""
        torch = _torch()
        if self.kind == "store":
            z = self.teacher.outcomes("train", "logits", runs=[plan.run_ids[r] for r in runs])
            return torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32)).to(device)
        if self.kind == "logits":
            return torch.from_numpy(self.teacher).to(device)
        return None


def distill_loss(
    student: Any, teacher: Any, labels: Any, *, alpha: float, temperature: float, label_smoothing: float
) -> Any:
    """Per-example distillation loss ``(1 - alpha) * CE + alpha * tau**2 * KL(p_t || p_s)``.

    Parameters
    ----------
    student, teacher : torch.Tensor, shape (..., C)
        Logits (float32).
    labels : torch.Tensor of int64, shape (...)
        Labels.
    alpha, temperature, label_smoothing : float
        As :class:`Distillation` and ``train_runs`` take them.

    Returns
    -------
    torch.Tensor, shape (...)
    """
    torch = _torch()
    f = torch.nn.functional
    ce = f.cross_entropy(student.flatten(0, -2), labels.flatten(), reduction="none", label_smoothing=label_smoothing)
    log_s = f.log_softmax(student / temperature, dim=-1)
    log_t = f.log_softmax(teacher / temperature, dim=-1)
    kl = f.kl_div(log_s, log_t, reduction="none", log_target=True).sum(-1)
    return (1.0 - alpha) * ce.view(labels.shape) + (alpha * temperature * temperature) * kl
