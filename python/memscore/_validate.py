"""Argument checking shared by the public functions.

Everything the Rust core receives passes through here: torch CPU tensors become numpy
views, dtypes and shapes are checked with messages that say what was expected, and the
result is C-contiguous so the core can take it as a flat slice without copying again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from .runs.bits import PackedBits


def to_numpy(x: Any, name: str) -> np.ndarray:
    """A numpy view of an array-like (numpy array, torch tensor, nested list)."""
    if type(x).__module__.startswith("torch"):
        # torch tensors: .numpy() shares memory for CPU tensors; other devices are copied.
        x = x.detach()
        if x.device.type != "cpu":
            x = x.cpu()
        return x.numpy()
    if isinstance(x, np.ndarray):
        return x
    try:
        return np.asarray(x)
    except Exception as exc:  # pragma: no cover - numpy's own message is kept
        raise TypeError(f"{name}: expected an array, got {type(x).__name__}") from exc


@overload
def as_mask(x: Any, name: str = ..., ndim: int = ..., *, packed: Literal[False] = ...) -> npt.NDArray[np.bool_]: ...
@overload
def as_mask(x: Any, name: str = ..., ndim: int = ..., *, packed: Literal[True]) -> PackedBits: ...
def as_mask(x: Any, name: str = "masks", ndim: int = 2, *, packed: bool = False) -> Any:
    """A C-contiguous bool array; integer arrays of 0/1 and :class:`PackedBits` are accepted.

    With ``packed=True`` (2-D masks, what the Rust core takes) the result is a
    :class:`PackedBits` instead: arrays are packed once (``np.packbits(a, axis=1)``) and a
    :class:`PackedBits` passes through as it is, so no byte-per-bit matrix is ever built.
    """
    from .runs.bits import PackedBits

    if isinstance(x, PackedBits):
        if packed:
            return x
        x = x.unpack()  # the caller wants one bool per element
    a = to_numpy(x, name)
    if a.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {a.shape}")
    if a.dtype == np.bool_:
        out = np.ascontiguousarray(a)
    elif np.issubdtype(a.dtype, np.integer):
        if a.size and not np.isin(a, (0, 1)).all():
            raise ValueError(f"{name}: an integer mask must hold only 0 and 1")
        out = np.ascontiguousarray(a.astype(np.bool_))
    else:
        raise TypeError(f"{name}: expected a bool array (True = trained on), got dtype {a.dtype}")
    return PackedBits(np.packbits(out, axis=1), out.shape[1]) if packed else out


@overload
def as_outcomes(x: Any, name: str, ndim: int = ..., *, packed: Literal[False] = ...) -> np.ndarray: ...
@overload
def as_outcomes(
    x: Any, name: str, ndim: int = ..., *, packed: Literal[True]
) -> PackedBits | npt.NDArray[np.float64]: ...
def as_outcomes(x: Any, name: str, ndim: int = 2, *, packed: bool = False) -> Any:
    """Outcomes: bool stays bool (the bit-packed path); numbers become finite float64.

    With ``packed=True`` bool outcomes come back as a :class:`PackedBits` (packed once, or
    passed through as they are), float outcomes as float64 arrays.
    """
    from .runs.bits import PackedBits

    if isinstance(x, PackedBits):
        if packed:
            return x
        x = x.unpack()  # the caller wants one bool per element
    a = to_numpy(x, name)
    if a.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {a.shape}")
    if a.dtype == np.bool_:
        a = np.ascontiguousarray(a)
        return PackedBits(np.packbits(a, axis=1), a.shape[1]) if packed else a
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise TypeError(f"{name}: expected a bool or float array, got dtype {a.dtype}")
    a = np.ascontiguousarray(a, dtype=np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return a


def as_labels(x: Any, name: str, n: int) -> npt.NDArray[np.int64]:
    """1-D int64 class labels of length ``n``."""
    a = to_numpy(x, name)
    if a.ndim != 1 or a.shape[0] != n:
        raise ValueError(f"{name}: expected shape ({n},), got {a.shape}")
    if not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{name}: expected integer class labels, got dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=np.int64)


def check_runs(masks: Any, outcomes: Any, outcome_name: str, same_cols: bool) -> None:
    """Masks and outcomes (arrays or PackedBits) must describe the same runs (and examples, for train
    outcomes)."""
    if masks.shape[0] == 0:
        raise ValueError("masks: need at least one run (R = 0)")
    if outcomes.shape[0] != masks.shape[0]:
        raise ValueError(
            f"{outcome_name}: has {outcomes.shape[0]} runs but masks has {masks.shape[0]} "
            "(both are indexed [run, example])"
        )
    if same_cols and outcomes.shape[1] != masks.shape[1]:
        raise ValueError(f"{outcome_name}: has {outcomes.shape[1]} examples but masks has {masks.shape[1]}")
