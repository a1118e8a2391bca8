"""A run's training randomness (batch order, augmentation parameters), drawn on the device.

Every draw is a counter-based hash (SplitMix64's finalizer) of the run's key, the epoch, a
stream and a position: integer arithmetic that gives the same bits on the CPU and on CUDA,
for one run or for a whole ensemble at once. So an ensemble draws a whole epoch of every
member's batch order and augmentation parameters in a few tensor operations on the device,
with no generator per member and no host round trip, and run ``r`` still draws exactly what
it draws when it trains alone (:func:`memscore.reference.train.train_sequential` draws from
the same functions, one run at a time).

A run's key is :func:`memscore.train.models.run_seed` ``(seed, r, 1)``. Streams: 0 orders the
epoch's examples, 1 + k draws the k-th random parameter of an augmentation.
"""

from __future__ import annotations

from typing import Any

from .config import _torch

__all__ = ["draw_bits", "draw_ints", "epoch_order"]

_M64 = (1 << 64) - 1


def _signed(c: int) -> int:
    """The int64 with the bits of the unsigned 64-bit constant ``c``."""
    return c - (1 << 64) if c >= 1 << 63 else c


_GOLDEN = _signed(0x9E3779B97F4A7C15)
_MUL1 = _signed(0xBF58476D1CE4E5B9)
_MUL2 = _signed(0x94D049BB133111EB)
_EPOCH = _signed(0xD1B54A32D192ED03)
_STREAM = _signed(0x8CB92BA72F3D8DD7)


def _shr(z: Any, s: int) -> Any:
    """Logical right shift of int64 bits (torch's ``>>`` is arithmetic on signed integers)."""
    return (z >> s) & ((1 << (64 - s)) - 1)


def _mix(z: Any) -> Any:
    """SplitMix64's finalizer on int64 tensors (wrapping multiplication: the bits of uint64)."""
    z = (z ^ _shr(z, 30)) * _MUL1
    z = (z ^ _shr(z, 27)) * _MUL2
    return z ^ _shr(z, 31)


def draw_bits(keys: Any, epoch: int, n: int, stream: int) -> Any:
    """63 random bits per (run, position): ``(E, n)`` non-negative int64 on ``keys``' device.

    Parameters
    ----------
    keys : torch.Tensor of int64, shape (E,)
        The runs' keys (:func:`~memscore.train.models.run_seed` ``(seed, r, 1)``).
    epoch : int
        The epoch (1-based).
    n : int
        Positions per run.
    stream : int
        Which random stream (0: batch order; 1 + k: an augmentation's k-th parameter).

    Returns
    -------
    torch.Tensor of int64, shape (E, n)
        Equal for a run whatever the other rows are, and on every device.
    """
    torch = _torch()
    salt = _signed((_EPOCH * int(epoch) + _STREAM * int(stream) + _GOLDEN) & _M64)  # wrapped as torch wraps
    base = _mix(keys.to(torch.int64) + salt)  # (E,)
    pos = torch.arange(1, n + 1, dtype=torch.int64, device=keys.device) * _GOLDEN
    return _mix(base[:, None] + pos[None, :]) & ((1 << 63) - 1)


def draw_ints(keys: Any, epoch: int, n: int, stream: int, low: int, high: int) -> Any:
    """Integers uniform in ``low..high`` (inclusive) per (run, position): ``(E, n)`` int64.

    The modulo bias is below ``(high - low + 1) / 2**52``. Parameters as :func:`draw_bits`.
    """
    span = int(high) - int(low) + 1
    return _shr(draw_bits(keys, epoch, n, stream), 11) % span + int(low)


def epoch_order(keys: Any, sizes: Any, epoch: int) -> Any:
    """Each run's order of its examples in an epoch: ``(E, max(sizes))`` positions.

    Row ``e`` starts with a permutation of ``0 .. sizes[e] - 1`` (a run's ``t``-th batch is
    its subset at the next ``batch_size`` of these positions); the rest of the row is padding
    (the positions ``sizes[e] ..`` in order).

    Parameters
    ----------
    keys : torch.Tensor of int64, shape (E,)
        The runs' keys.
    sizes : sequence of int
        Each run's examples per epoch.
    epoch : int
        The epoch (1-based).

    Returns
    -------
    torch.Tensor of int64, shape (E, max(sizes))

    Examples
    --------
    >>> import torch
    >>> order = epoch_order(torch.tensor([7, 8]), [3, 5], 1)
    >>> sorted(order[0, :3].tolist()), order[0, 3:].tolist(), sorted(order[1].tolist())
    ([0, 1, 2], [3, 4], [0, 1, 2, 3, 4])
    """
    torch = _torch()
    sizes = [int(s) for s in sizes]
    n = max(sizes, default=0)
    bits = draw_bits(keys, epoch, n, 0)
    size = torch.tensor(sizes, dtype=torch.int64, device=keys.device)
    pad = torch.arange(n, device=keys.device)[None, :] >= size[:, None]
    # padding sorts last, in order (stable sort); 63-bit keys do not tie in practice, and a
    # tie would still break by position, the same on every device
    bits = torch.where(pad, torch.iinfo(torch.int64).max, bits)
    return torch.sort(bits, dim=1, stable=True).indices
