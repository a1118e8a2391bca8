"""Per-run data augmentation on the device.

An augmentation is a callable ``augment(x, generator) -> x`` on one run's batch: it draws
its randomness from ``generator`` (a CPU ``torch.Generator`` seeded by ``(seed, run index)``)
and keeps the batch's shape and dtype. The built-ins (:class:`Augmentation`) declare their
random parameters as integer ranges and split the call into a draw and :meth:`apply`
(elementwise over the examples): the ensemble draws a whole epoch of every member's
parameters at once on the device (:meth:`Augmentation.draw_epoch`, counter-based:
:mod:`memscore.train.randomness`) and then augments all members' batches in one tensor
operation; a run's draws, hence the run, do not depend on the ensemble it was trained in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._validate import check_int
from .config import _torch
from .randomness import draw_ints

__all__ = ["AUGMENTATIONS", "QUERY_VIEWS", "Augmentation", "CropFlip", "Shift", "query_views", "resolve_augment"]


class Augmentation:
    """Base of the built-in augmentations: ``aug(x, g) == aug.apply(x, aug.draw(len(x), g))``,
    where :meth:`apply` may also take a stack of several runs' batches (leading dims).

    A subclass sets :attr:`ranges`, its random parameters as inclusive integer ranges, and
    :meth:`apply`; training draws the parameters with :meth:`draw_epoch`."""

    name = "augmentation"
    #: Each random parameter's inclusive integer range, by name (in draw order).
    ranges: dict[str, tuple[int, int]] = {}

    def draw(self, n: int, generator: Any) -> dict[str, Any]:
        """Random parameters for ``n`` examples, drawn from ``generator`` (CPU tensors)."""
        torch = _torch()
        return {k: torch.randint(lo, hi + 1, (n,), generator=generator) for k, (lo, hi) in self.ranges.items()}

    def draw_epoch(self, keys: Any, epoch: int, n: int) -> dict[str, Any]:
        """Every run's parameters for the ``n`` positions of an epoch's order, on ``keys``'
        device: ``(E, n)`` int64 each (counter-based, :func:`~memscore.train.randomness.draw_ints`,
        streams 1, 2, ... in :attr:`ranges` order). Position ``j`` is the ``j``-th example the
        run sees in the epoch."""
        return {k: draw_ints(keys, epoch, n, 1 + i, lo, hi) for i, (k, (lo, hi)) in enumerate(self.ranges.items())}

    def apply(self, x: Any, params: dict[str, Any]) -> Any:  # pragma: no cover - abstract
        """Augment ``x`` (shape ``(..., n, *example)``) with parameters of shape ``(..., n)``."""
        raise NotImplementedError

    def __call__(self, x: Any, generator: Any) -> Any:
        return self.apply(x, {k: v.to(x.device) for k, v in self.draw(int(x.shape[0]), generator).items()})


class CropFlip(Augmentation):
    """The CIFAR recipe: zero-pad each image by ``pad`` pixels, crop a random HxW window,
    flip horizontally with probability 1/2. Images are ``(..., C, H, W)``."""

    name = "crop-flip"

    def __init__(self, pad: int = 4) -> None:
        self.pad = check_int(pad, "pad", 0)
        self.ranges = {"dy": (0, 2 * self.pad), "dx": (0, 2 * self.pad), "flip": (0, 1)}

    def apply(self, x: Any, params: dict[str, Any]) -> Any:
        torch = _torch()
        if x.ndim < 4:
            raise ValueError(f"crop-flip: expected images of shape (n, C, H, W), got {tuple(x.shape)}")
        lead, (c, h, w) = x.shape[:-3], x.shape[-3:]
        p = self.pad
        xp = torch.nn.functional.pad(x.reshape(-1, c, h, w), (p, p, p, p))
        dy, dx, flip = (params[k].reshape(-1).to(x.device) for k in ("dy", "dx", "flip"))
        flip = flip.bool()
        cols = torch.arange(w, device=x.device)
        cols = torch.where(flip[:, None], w - 1 - cols, cols) + dx[:, None]  # (B, W)
        rows = torch.arange(h, device=x.device) + dy[:, None]  # (B, H)
        b = torch.arange(xp.shape[0], device=x.device)
        out = xp[b[:, None, None, None], torch.arange(c, device=x.device)[None, :, None, None],
                 rows[:, None, :, None], cols[:, None, None, :]]  # fmt: skip
        return out.reshape(*lead, c, h, w)


class Shift(Augmentation):
    """Random circular shifts of 1-D signals by up to ``max_shift`` positions either way
    (MNIST-1D's augmentation). Signals are ``(..., L)`` or ``(..., C, L)``: the last axis."""

    name = "shift"

    def __init__(self, max_shift: int = 4) -> None:
        self.max_shift = check_int(max_shift, "max_shift", 0)
        self.ranges = {"shift": (-self.max_shift, self.max_shift)}

    def apply(self, x: Any, params: dict[str, Any]) -> Any:
        torch = _torch()
        n_lead = params["shift"].ndim  # the (runs, examples) axes
        length = x.shape[-1]
        pos = (torch.arange(length, device=x.device) - params["shift"].to(x.device)[..., None]) % length
        pos = pos.reshape(*pos.shape[:n_lead], *([1] * (x.ndim - n_lead - 1)), length).expand(x.shape)
        return torch.gather(x, -1, pos)


#: The built-in augmentations by name.
AUGMENTATIONS: dict[str, Callable[[], Augmentation]] = {"crop-flip": CropFlip, "shift": Shift}


def resolve_augment(augment: Any) -> tuple[Callable[[Any, Any], Any] | None, str]:
    """``(callable or None, name)`` for ``augment``: None / ``"none"``, a built-in's name, or
    a callable ``(x, generator) -> x``."""
    if augment is None or augment == "none":
        return None, "none"
    if isinstance(augment, str):
        if augment not in AUGMENTATIONS:
            raise ValueError(
                f"augment: expected one of none, {', '.join(AUGMENTATIONS)} or a callable, got {augment!r}"
            )
        return AUGMENTATIONS[augment](), augment
    if isinstance(augment, Augmentation):
        return augment, augment.name
    if callable(augment):
        return augment, getattr(augment, "__name__", type(augment).__name__)
    raise TypeError(f"augment: expected a name or a callable (x, generator) -> x, got {type(augment).__name__}")


def _fixed(aug: Augmentation, **params: Any) -> Callable[[Any], Any]:
    """A deterministic view: ``aug`` with the same parameters for every example."""

    def view(x: Any) -> Any:
        torch = _torch()
        n = int(x.shape[0])
        return aug.apply(x, {k: torch.full((n,), v, dtype=torch.bool if isinstance(v, bool) else torch.int64)
                             for k, v in params.items()})  # fmt: skip

    return view


def _mirror_shift(pad: int) -> list[Callable[[Any], Any]]:
    """Identity first, then every flip x translation by (-pad, 0, pad)^2 of images: 18 views."""
    cf = CropFlip(pad)
    views = [_fixed(cf, dy=pad + sy, dx=pad + sx, flip=f) for f in (False, True) for sy in (0, -pad, pad)
             for sx in (0, -pad, pad)]  # fmt: skip
    return views


#: LiRA's query views by name (Carlini et al. 2022 query each target model on several
#: augmentations of an example): ``mirror`` = identity + horizontal flip (K = 2, any input:
#: the last axis is reversed), ``mirror-shift`` = images flipped or not x translated by
#: -4/0/+4 pixels in each direction (K = 18), ``shift`` = 1-D signals shifted by -4..4 (K = 9).
#: The first view is always the identity.
QUERY_VIEWS: dict[str, Callable[[], list[Callable[[Any], Any]]]] = {
    "mirror": lambda: [lambda x: x, lambda x: x.flip(-1)],
    "mirror-shift": lambda: _mirror_shift(4),
    "shift": lambda: [_fixed(Shift(4), shift=s) for s in (0, -4, -3, -2, -1, 1, 2, 3, 4)],
}


def query_views(spec: Any) -> list[Callable[[Any], Any]]:
    """The query views ``spec`` names (:data:`QUERY_VIEWS`), or a sequence of callables
    ``x -> x`` given as they are; ``[]`` for None."""
    if spec is None:
        return []
    if isinstance(spec, str):
        if spec not in QUERY_VIEWS:
            raise ValueError(
                f"query_augment: expected one of {', '.join(QUERY_VIEWS)} or a list of callables, got {spec!r}"
            )
        return QUERY_VIEWS[spec]()
    views = list(spec) if hasattr(spec, "__iter__") else None
    if not views or not all(callable(v) for v in views):
        raise TypeError(f"query_augment: expected a name or a non-empty list of callables x -> x, got {spec!r}")
    return views
