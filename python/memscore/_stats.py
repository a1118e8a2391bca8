"""Statistics every engine shares: ranks with ties, Spearman's rank correlation and its
p-value, and the softmax. One implementation each (the run scores, the proxies, ResMem and
the task-gram metrics all call these)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ._validate import ArrayLike, check_real, to_numpy

__all__ = ["log_softmax", "rankdata", "softmax", "spearman", "spearman_pvalue"]

F64 = npt.NDArray[np.float64]


def log_softmax(z: npt.ArrayLike, axis: int = -1) -> F64:
    """``z - logsumexp(z)`` along ``axis`` in float64, shifted by the maximum so that no
    finite logit overflows (a slice of only ``-inf`` stays ``-inf``).

    Examples
    --------
    >>> log_softmax([0.0, 0.0]).round(4).tolist()
    [-0.6931, -0.6931]
    """
    x = np.asarray(z, dtype=np.float64)
    m = x.max(axis=axis, keepdims=True)
    shifted = x - np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        out: F64 = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    return out


def softmax(z: npt.ArrayLike, axis: int = -1) -> F64:
    """``exp(z) / sum(exp(z))`` along ``axis`` in float64, shifted by the maximum so that
    no finite logit overflows; a slice of only ``-inf`` (no valid entry) gets all zeros.

    Examples
    --------
    >>> softmax([[0.0, 0.0], [1000.0, 0.0]]).round(3).tolist()
    [[0.5, 0.5], [1.0, 0.0]]
    >>> softmax([[-np.inf, -np.inf]]).tolist()
    [[0.0, 0.0]]
    """
    x = np.asarray(z, dtype=np.float64)
    m = x.max(axis=axis, keepdims=True)
    e = np.exp(x - np.where(np.isfinite(m), m, 0.0))
    s = e.sum(axis=axis, keepdims=True)
    out: F64 = np.divide(e, s, out=np.zeros_like(e), where=s > 0)
    return out


def rankdata(a: F64) -> F64:
    """Ranks 1..n with ties given their average rank."""
    order = np.argsort(a, kind="stable")
    s = a[order]
    ranks = np.empty(a.size)
    # Boundaries of runs of equal values in sorted order.
    start = np.r_[0, np.flatnonzero(np.diff(s)) + 1]
    end = np.r_[start[1:], a.size]
    avg = (start + end + 1) / 2.0
    ranks[order] = np.repeat(avg, end - start)
    return ranks


def spearman(a: ArrayLike, b: ArrayLike) -> tuple[float, int]:
    """Spearman's rank correlation of ``a`` and ``b`` over pairs where both are finite.

    Ties take average ranks. This is memscore's one Spearman: :func:`proxy_table` and the
    task-gram metrics use it.

    Parameters
    ----------
    a, b : array-like of real numbers, same size
        Flattened before ranking.

    Returns
    -------
    rho : float
        NaN with fewer than two finite pairs or a constant input.
    n : int
        Number of pairs where both values are finite.

    Raises
    ------
    TypeError
        Non-numeric input.
    ValueError
        ``a`` and ``b`` differ in size.

    Examples
    --------
    >>> import memscore
    >>> memscore.spearman([1, 2, 3, float("nan")], [10, 30, 20, 0])
    (0.5, 3)
    """
    xa, ya = to_numpy(a, "a"), to_numpy(b, "b")
    check_real(xa, "a")
    check_real(ya, "b")
    x = np.asarray(xa, dtype=np.float64).ravel()
    y = np.asarray(ya, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"spearman: a and b must have the same length, got {x.size} and {y.size}")
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = int(x.size)
    if n < 2:
        return float("nan"), n
    rx, ry = rankdata(x), rankdata(y)
    rx -= rx.mean()
    ry -= ry.mean()
    den = np.sqrt((rx * rx).sum() * (ry * ry).sum())
    return (float((rx * ry).sum() / den) if den > 0 else float("nan")), n


def spearman_pvalue(rho: float, n: int) -> float:
    """Two-sided p-value of Spearman's rho (t approximation, as ``scipy.stats.spearmanr``).

    Parameters
    ----------
    rho : float
        The correlation, from :func:`spearman`.
    n : int
        The number of pairs it used.

    Returns
    -------
    float
        NaN when ``rho`` is NaN, ``n < 3``, or scipy is not installed.

    Examples
    --------
    >>> spearman_pvalue(1.0, 10)
    0.0
    """
    if not np.isfinite(rho) or n < 3:
        return float("nan")
    try:
        from scipy.stats import t as student_t
    except ImportError:  # p-values need scipy; the correlations themselves do not
        return float("nan")
    if abs(rho) >= 1.0:
        return 0.0
    tstat = rho * np.sqrt((n - 2) / (1.0 - rho * rho))
    return float(2 * student_t.sf(abs(tstat), n - 2))
