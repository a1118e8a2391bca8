"""Bit-packed run matrices: masks and bool outcomes at one bit per (run, example).

A :class:`PackedBits` holds an ``(R, n)`` bool matrix as ``np.packbits(matrix, axis=1)``:
``(R, ceil(n / 8))`` uint8, the first column in the most significant bit of byte 0, padding
bits past ``n`` zero. It is the layout of the run store's ``*_bits`` arrays, so a store hands
its rows to the Rust core as they are on disk, and the core packs them into its own column
words without ever holding one byte per bit. Every array-level score accepts a
:class:`PackedBits` wherever it takes bool masks or bool outcomes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import _core

__all__ = ["PackedBits"]


def n_bytes(n: int) -> int:
    """Bytes of one packed row of ``n`` bits."""
    return (n + 7) // 8


@dataclass(frozen=True)
class PackedBits:
    """An ``(R, n)`` bool matrix packed along rows (``np.packbits(matrix, axis=1)``).

    Parameters
    ----------
    bits : ndarray of uint8, shape (R, ceil(n / 8))
        The packed rows, C-contiguous.
    n : int
        Number of columns (bits per row); the padding bits of the last byte are zero.
    """

    bits: npt.NDArray[np.uint8]
    n: int

    def __post_init__(self) -> None:
        b = self.bits
        if not isinstance(b, np.ndarray) or b.dtype != np.uint8 or b.ndim != 2:
            got = f"{b.dtype} array of shape {b.shape}" if isinstance(b, np.ndarray) else type(b).__name__
            raise TypeError(f"PackedBits.bits: expected a 2-D uint8 array, got {got}")
        if isinstance(self.n, bool) or not isinstance(self.n, (int, np.integer)) or self.n < 0:
            raise ValueError(f"PackedBits.n: expected an int >= 0, got {self.n!r}")
        if b.shape[1] != n_bytes(int(self.n)):
            raise ValueError(f"PackedBits: {self.n} bits per row take {n_bytes(int(self.n))} bytes, got {b.shape[1]}")
        if self.n % 8 and b.shape[0] and np.any(b[:, -1] & np.uint8((1 << (8 - self.n % 8)) - 1)):
            raise ValueError("PackedBits: padding bits past n must be zero")
        if not b.flags.c_contiguous:
            object.__setattr__(self, "bits", np.ascontiguousarray(b))
        object.__setattr__(self, "n", int(self.n))

    @classmethod
    def pack(cls, matrix: Any) -> PackedBits:
        """Pack an ``(R, n)`` bool matrix (as ``np.packbits(matrix, axis=1)``, on memscore's
        threads: numpy packs on one, and packing is most of a small-T score's time)."""
        m = np.asarray(matrix)
        if m.ndim != 2 or m.dtype != np.bool_:
            raise TypeError(f"PackedBits.pack: expected a 2-D bool array, got {m.dtype} of shape {m.shape}")
        return cls(_core.pack_rows(np.ascontiguousarray(m).view(np.uint8)), m.shape[1])

    @property
    def shape(self) -> tuple[int, int]:
        """``(R, n)``, the shape of the unpacked matrix."""
        return (int(self.bits.shape[0]), self.n)

    def unpack(self) -> npt.NDArray[np.bool_]:
        """The ``(R, n)`` bool matrix (one byte per bit)."""
        return np.unpackbits(self.bits, axis=1, count=self.n).astype(np.bool_)

    def __getitem__(self, rows: Any) -> PackedBits:
        """A subset of the rows (``bits[rows]``), still packed."""
        sel = self.bits[rows]
        if sel.ndim != 2:
            raise IndexError("PackedBits: index rows with a slice, an index array or a bool mask")
        return PackedBits(np.ascontiguousarray(sel), self.n)
