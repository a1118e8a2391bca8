"""Argument checking shared by the public functions.

Everything the Rust core receives passes through here: torch CPU tensors become numpy
views, dtypes and shapes are checked with messages that say what was expected, and the
result is C-contiguous so the core can take it as a flat slice without copying again.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, Union, overload

import numpy as np
import numpy.typing as npt

from . import _core

if TYPE_CHECKING:  # pragma: no cover
    from .runs.bits import PackedBits

#: Bootstrap replicates at most (``n_boot``): each replicate holds a resample of the trials,
#: and a few thousand already give intervals to the third digit.
MAX_BOOT = 100_000

#: An array argument: a numpy array or anything ``numpy.asarray`` takes (nested lists, torch
#: CPU tensors and other objects with ``__array__``).
ArrayLike: TypeAlias = npt.ArrayLike
#: Masks or outcomes of runs: an array, or rows of bits as the run store keeps them.
RunsLike: TypeAlias = Union[npt.ArrayLike, "PackedBits"]


def to_numpy(x: Any, name: str) -> np.ndarray:
    """A numpy view of an array-like (numpy array, torch tensor, nested list).

    Parameters
    ----------
    x : object
        A numpy array, a torch tensor (CPU tensors are shared, others copied to the CPU), or
        anything ``numpy.asarray`` takes.
    name : str
        The argument's name, for messages.

    Returns
    -------
    ndarray

    Raises
    ------
    TypeError
        ``x`` cannot be made an array.

    Examples
    --------
    >>> to_numpy([1, 2], "x")
    array([1, 2])
    """
    if type(x).__module__.startswith("torch"):
        # torch tensors: .numpy() shares memory for CPU tensors; other devices are copied.
        x = x.detach()
        if x.device.type != "cpu":
            x = x.cpu()
        view: np.ndarray = x.numpy()
        return view
    if isinstance(x, np.ndarray):
        return x
    try:
        return np.asarray(x)
    except Exception as exc:  # pragma: no cover - numpy's own message is kept
        raise TypeError(f"{name}: expected an array, got {type(x).__name__}") from exc


def _unpacked(x: Any) -> Any:
    """``x``, with a :class:`PackedBits` unpacked to one bool per element."""
    from .runs.bits import PackedBits

    return x.unpack() if isinstance(x, PackedBits) else x


@overload
def as_mask(x: Any, name: str = ..., ndim: int = ..., *, packed: Literal[False] = ...) -> npt.NDArray[np.bool_]: ...
@overload
def as_mask(x: Any, name: str = ..., ndim: int = ..., *, packed: Literal[True]) -> PackedBits: ...
def as_mask(x: Any, name: str = "masks", ndim: int = 2, *, packed: bool = False) -> Any:
    """A C-contiguous bool array; integer arrays of 0/1 and :class:`PackedBits` are accepted.

    With ``packed=True`` (2-D masks, what the Rust core takes) the result is a
    :class:`PackedBits` instead: arrays are packed once (:meth:`PackedBits.pack`) and a
    :class:`PackedBits` passes through as it is, so no byte-per-bit matrix is ever built.
    """
    from .runs.bits import PackedBits

    if isinstance(x, PackedBits) and packed:
        return x
    a = to_numpy(_unpacked(x), name)
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
    return PackedBits.pack(out) if packed else out


def as_mask_rows(x: Any, name: str = "masks") -> PackedBits | npt.NDArray[np.bool_]:
    """2-D masks as the core's transposing kernels (influence, Banzhaf) take them: a
    :class:`PackedBits` as it is, anything else a C-contiguous bool array read at a byte per
    value (packing it first would be one more pass over the bytes: most of a small-T score).

    Pass the result to the core with :func:`core_masks`.
    """
    from .runs.bits import PackedBits

    return x if isinstance(x, PackedBits) else as_mask(x, name)


def core_masks(m: PackedBits | npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.uint8], bool]:
    """``(array, dense_masks)`` for ``_core.influence_full``: packed rows, or the bool bytes."""
    from .runs.bits import PackedBits

    if isinstance(m, PackedBits):
        return m.bits, False
    return m.view(np.uint8), True


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

    if isinstance(x, PackedBits) and packed:
        return x
    a = to_numpy(_unpacked(x), name)
    if a.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {a.shape}")
    if a.dtype == np.bool_:
        a = np.ascontiguousarray(a)
        return PackedBits.pack(a) if packed else a
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise TypeError(f"{name}: expected a bool or float array, got dtype {a.dtype}")
    a = np.ascontiguousarray(a, dtype=np.float64)
    if not _core.value_range(a)[2]:  # one parallel pass (numpy: a pass and a bool temporary)
        raise ValueError(f"{name}: contains NaN or infinite values")
    return a


def as_labels(x: Any, name: str, n: int) -> npt.NDArray[np.int64]:
    """1-D int64 class labels of length ``n``.

    Parameters
    ----------
    x : array-like of int
        The labels.
    name : str
        The argument's name, for messages.
    n : int
        The length expected.

    Returns
    -------
    ndarray of int64, shape (n,)

    Raises
    ------
    TypeError
        Not integers.
    ValueError
        Not of shape (n,).
    """
    a = to_numpy(x, name)
    if a.ndim != 1 or a.shape[0] != n:
        raise ValueError(f"{name}: expected shape ({n},), got {a.shape}")
    if not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{name}: expected integer class labels, got dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=np.int64)


def check_runs(
    masks: np.ndarray | PackedBits,
    outcomes: np.ndarray | PackedBits,
    outcome_name: str,
    same_cols: bool,
    masks_name: str = "masks",
) -> None:
    """Masks and outcomes must describe the same runs (and examples, for train outcomes).

    Parameters
    ----------
    masks : ndarray or PackedBits, shape (R, N)
        Checked masks.
    outcomes : ndarray or PackedBits, shape (R, N) or (R, T)
        Checked outcomes.
    outcome_name : str
        The outcomes' argument name, for messages.
    same_cols : bool
        Outcomes are of the training examples (N columns), not of test examples.
    masks_name : str, default "masks"
        The masks' argument name, for messages (the user's, e.g. ``multiplicities``).

    Raises
    ------
    ValueError
        No runs, or the shapes disagree.
    """
    if masks.shape[0] == 0:
        raise ValueError(f"{masks_name}: need at least one run (R = 0)")
    if outcomes.shape[0] != masks.shape[0]:
        raise ValueError(
            f"{outcome_name}: has {outcomes.shape[0]} runs but {masks_name} has {masks.shape[0]} "
            "(both are indexed [run, example])"
        )
    if same_cols and outcomes.shape[1] != masks.shape[1]:
        raise ValueError(f"{outcome_name}: has {outcomes.shape[1]} examples but {masks_name} has {masks.shape[1]}")


# ----------------------------------------------------------------------------- scalars
#
# One rule for every public function outside the run store: a value of the wrong *type*
# raises TypeError, a value of the right type but outside what is allowed raises ValueError;
# every message names the argument, says what was expected and shows what came.


def _describe(x: object) -> str:
    """``x`` as it appears in an error message: its repr for scalars, its type otherwise."""
    if x is None or isinstance(x, (bool, int, float, str, np.generic)):
        return repr(x)
    return f"a {type(x).__name__}"


def check_bool(x: object, name: str) -> bool:
    """``x`` as a bool; only ``True`` / ``False`` (and numpy bools) are accepted.

    Parameters
    ----------
    x : object
        The value to check.
    name : str
        The argument's name, used in the error message.

    Returns
    -------
    bool
        ``x`` as a Python bool.

    Raises
    ------
    TypeError
        ``x`` is not a bool (``0`` / ``1`` and strings are refused).

    Examples
    --------
    >>> check_bool(True, "stderr")
    True
    """
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    raise TypeError(f"{name}: expected True or False, got {_describe(x)}")


def check_int(x: object, name: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """``x`` as an int in ``[minimum, maximum]`` (either bound may be None).

    Parameters
    ----------
    x : object
        The value to check: a Python or numpy integer (bools are refused).
    name : str
        The argument's name, used in the error message.
    minimum, maximum : int or None
        Inclusive bounds; None means unbounded.

    Returns
    -------
    int
        ``x`` as a Python int.

    Raises
    ------
    TypeError
        ``x`` is not an integer.
    ValueError
        ``x`` is outside the bounds.

    Examples
    --------
    >>> check_int(3, "k", 1)
    3
    >>> check_int(0, "k", 1)
    Traceback (most recent call last):
    ...
    ValueError: k: expected an integer >= 1, got 0
    """
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer)):
        raise TypeError(f"{name}: expected an integer, got {_describe(x)}")
    v = int(x)
    if (minimum is not None and v < minimum) or (maximum is not None and v > maximum):
        if maximum is None:
            want = f"an integer >= {minimum}"
        elif minimum is None:
            want = f"an integer <= {maximum}"
        else:
            want = f"an integer in {minimum}..{maximum}"
        raise ValueError(f"{name}: expected {want}, got {v}")
    return v


_BYTE_UNITS = {"": 1, "B": 1, "K": 2**10, "KB": 10**3, "KIB": 2**10, "M": 2**20, "MB": 10**6, "MIB": 2**20,
               "G": 2**30, "GB": 10**9, "GIB": 2**30, "T": 2**40, "TB": 10**12, "TIB": 2**40}  # fmt: skip


def check_bytes(x: object, name: str) -> int:
    """A memory size as a positive number of bytes: an integer, or a string such as
    ``"512MiB"``, ``"8GB"`` or ``"2G"`` (binary for K/M/G/T and KiB/..., decimal for KB/...).

    Parameters
    ----------
    x : object
        The size.
    name : str
        The argument's name, used in the error message.

    Returns
    -------
    int
        The size in bytes.

    Raises
    ------
    TypeError
        ``x`` is neither an integer nor a string.
    ValueError
        A string that is not a size, a size below one byte, or one beyond a float's range.

    Examples
    --------
    >>> check_bytes("1.5GiB", "memory"), check_bytes(4096, "memory")
    (1610612736, 4096)
    >>> check_bytes("lots", "memory")
    Traceback (most recent call last):
    ...
    ValueError: memory: expected a size such as 4096, '512MiB' or '8GB', got 'lots'
    """
    import re

    if isinstance(x, str):
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", x)
        unit = m.group(2).upper() if m else ""
        if m is None or unit not in _BYTE_UNITS:
            raise ValueError(f"{name}: expected a size such as 4096, '512MiB' or '8GB', got {x!r}")
        f = float(m.group(1)) * _BYTE_UNITS[unit]
        if not math.isfinite(f):  # int(inf) would raise OverflowError
            shown = x if len(x) <= 40 else f"{x[:20]}...{x[-8:]}"
            raise ValueError(f"{name}: expected a size such as 4096, '512MiB' or '8GB', got {shown!r}: too large")
        v = int(f)
        if v < 1:
            raise ValueError(f"{name}: expected a size of at least one byte, got {x!r}")
        return v
    return check_int(x, name, 1)


def check_float(
    x: object,
    name: str,
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    allow_inf: bool = False,
) -> float:
    """``x`` as a finite float within bounds.

    Parameters
    ----------
    x : object
        The value to check: a Python or numpy real number (bools are refused).
    name : str
        The argument's name, used in the error message.
    minimum, maximum : float or None
        Bounds; None means unbounded.
    low_open, high_open : bool
        Exclude the bound itself (``x > minimum`` rather than ``x >= minimum``).
    allow_inf : bool
        Accept ``inf`` (when the bounds allow it); NaN is always refused.

    Returns
    -------
    float
        ``x`` as a Python float.

    Raises
    ------
    TypeError
        ``x`` is not a real number.
    ValueError
        ``x`` is NaN, infinite (unless allowed) or outside the bounds.

    Examples
    --------
    >>> check_float(0.5, "keep", 0.0, 1.0, low_open=True, high_open=True)
    0.5
    """
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a number, got {_describe(x)}")
    v = float(x)
    ok = not np.isnan(v) and (allow_inf or np.isfinite(v))
    if ok and minimum is not None:
        ok = v > minimum if low_open else v >= minimum
    if ok and maximum is not None:
        ok = v < maximum if high_open else v <= maximum
    if not ok:
        if minimum is not None and maximum is not None:
            want = f"a number in {'(' if low_open else '['}{minimum:g}, {maximum:g}{')' if high_open else ']'}"
        elif minimum is not None:
            want = f"a number {'>' if low_open else '>='} {minimum:g}"
        elif maximum is not None:
            want = f"a number {'<' if high_open else '<='} {maximum:g}"
        else:
            want = "a finite number"
        if allow_inf:
            want += " (inf allowed)"
        raise ValueError(f"{name}: expected {want}, got {x!r}")
    return v


def check_choice(x: object, name: str, choices: Sequence[str]) -> str:
    """``x`` as one of the strings ``choices``.

    Parameters
    ----------
    x : object
        The value to check.
    name : str
        The argument's name, used in the error message.
    choices : sequence of str
        The allowed values.

    Returns
    -------
    str
        ``x``.

    Raises
    ------
    TypeError
        ``x`` is not a string.
    ValueError
        ``x`` is not one of ``choices``.

    Examples
    --------
    >>> check_choice("l2", "metric", ("l2", "ip"))
    'l2'
    """
    if not isinstance(x, str):
        raise TypeError(f"{name}: expected one of {list(choices)}, got {_describe(x)}")
    if x not in choices:
        raise ValueError(f"{name}: expected one of {list(choices)}, got {x!r}")
    return x


def check_optional_int(x: object, name: str, minimum: int | None = None, maximum: int | None = None) -> int | None:
    """``None``, or :func:`check_int` of ``x``.

    Parameters
    ----------
    x : object
        None or the value to check.
    name : str
        The argument's name, for messages.
    minimum, maximum : int or None
        Inclusive bounds.

    Returns
    -------
    int or None

    Raises
    ------
    TypeError, ValueError
        As :func:`check_int`.

    Examples
    --------
    >>> check_optional_int(None, "max_runs", 0) is None
    True
    """
    return None if x is None else check_int(x, name, minimum, maximum)


# ----------------------------------------------------------------------------- arrays


def check_real(a: npt.NDArray[Any], name: str) -> None:
    """Refuse arrays that are not real numbers (strings, complex, objects, datetimes).

    Parameters
    ----------
    a : ndarray
        The array.
    name : str
        The argument's name, for messages.

    Raises
    ------
    TypeError
        ``a`` holds anything but bools, integers or floats.

    Examples
    --------
    >>> check_real(np.array(["1"]), "scores")
    Traceback (most recent call last):
    ...
    TypeError: scores: expected an array of real numbers, got dtype <U1
    """
    if not (a.dtype == np.bool_ or np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise TypeError(f"{name}: expected an array of real numbers, got dtype {a.dtype}")


def check_class_labels(y: npt.NDArray[Any], name: str, n_classes: int | None = None) -> None:
    """Integer class labels in ``0 .. n_classes - 1`` (non-negative when ``n_classes`` is None).

    Parameters
    ----------
    y : ndarray
        The labels.
    name : str
        The argument's name, for messages.
    n_classes : int, optional
        The number of classes.

    Raises
    ------
    TypeError
        ``y`` is not an integer array.
    ValueError
        A label is negative or ``>= n_classes``.

    Examples
    --------
    >>> check_class_labels(np.array([0, 3]), "labels", 3)
    Traceback (most recent call last):
    ...
    ValueError: labels: expected classes in 0..2, got range 0..3
    """
    if y.dtype == np.bool_ or not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"{name}: expected integer class labels, got dtype {y.dtype}")
    if y.size == 0:
        return
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or (n_classes is not None and hi >= n_classes):
        want = "non-negative classes" if n_classes is None else f"classes in 0..{n_classes - 1}"
        raise ValueError(f"{name}: expected {want}, got range {lo}..{hi}")


def check_summable(
    a: npt.NDArray[Any] | PackedBits,
    name: str,
    n_terms: int,
    *,
    squares: bool = False,
    dtype: type[np.floating[Any]] = np.float64,
    over: str = "runs",
) -> None:
    """Refuse float values too large to sum.

    Summing ``n_terms`` of them (or of their squares, after a shift by another value of
    ``a``) would overflow ``dtype`` (float64, or float32 where the core sums in float32)
    and silently turn the estimate into inf, NaN or zero.

    Parameters
    ----------
    a : ndarray or PackedBits
        Outcomes (bool arrays and packed bits always pass).
    name : str
        The argument's name, for messages.
    n_terms : int
        How many values one sum adds up (the number of runs).
    squares : bool, default False
        The estimator also sums squares (standard errors, LiRA's Gaussians).
    dtype : numpy floating type, default float64
        The type the sums are taken in.
    over : str, default "runs"
        What ``n_terms`` counts, for the message.

    Raises
    ------
    ValueError
        ``max |a|`` is too large for the sums the estimator takes.

    Examples
    --------
    >>> check_summable(np.array([1e308, -1e308]), "outcomes", 2)
    Traceback (most recent call last):
    ...
    ValueError: outcomes: values up to 1e+308 in magnitude would overflow float64 ...
    """
    if not isinstance(a, np.ndarray) or a.dtype == np.bool_ or a.size == 0:
        return
    lo, hi, finite = _core.value_range(a) if a.dtype == np.float64 and a.flags.c_contiguous else (0.0, 0.0, False)
    if not finite:  # numpy's two passes (no (R, N) temporary), NaN propagating as before
        lo, hi = float(a.min()), float(a.max())
    big = max(abs(hi), abs(lo))
    top = float(np.finfo(dtype).max)
    # Sums of (a - shift) over n_terms values: each term is at most 2 * big in size.
    limit = top / (2.0 * max(n_terms, 1))
    if squares:
        # and (sum of terms)² in the variance: (n_terms * 2 * big)² must stay finite.
        limit = min(limit, float(np.sqrt(top)) / (2.0 * max(n_terms, 1)))
    if big > limit:
        raise ValueError(
            f"{name}: values up to {big:.3g} in magnitude would overflow {np.dtype(dtype).name} when summed over "
            f"{n_terms} {over}{' and squared' if squares else ''}; expected |{name}| <= {limit:.3g} "
            f"(rescale the {name})"
        )
