"""Plain numpy reference of RMIA (Zarifzadeh et al. 2024) with leave-one-out references.

Written from the paper's definition, one target run at a time, with the reference means
taken afresh over the other runs (no sums reused).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

__all__ = ["rmia"]


def rmia(
    masks: npt.ArrayLike,
    probs: npt.ArrayLike,
    population: npt.ArrayLike,
    *,
    online: bool = True,
    gamma: float = 1.0,
    offline_a: float = 0.3,
) -> F64:
    """RMIA scores ``(R, N)``: the fraction of population z with ``LR(x, z) >= gamma``.

    ``LR(x, z) = (p_t(x) / Pr(x)) / (p_t(z) / Pr(z))`` compared as ``ratio(x) >= gamma *
    ratio(z)``; ``Pr`` is the mean over the references (online) or ``((1 + a) mean_out +
    1 - a) / 2`` over the references holding the example out (offline). NaN ratios of z are
    dropped; NaN where the target has no usable reference.

    Parameters
    ----------
    masks : array-like of bool, shape (R, N)
    probs : array-like of float, shape (R, N)
    population : array-like of float, shape (R, Z)
    online : bool
    gamma : float
    offline_a : float

    Returns
    -------
    ndarray of float64, shape (R, N)
    """
    m = np.asarray(masks, dtype=bool)
    p = np.asarray(probs, dtype=np.float64)
    z = np.asarray(population, dtype=np.float64)
    r, n = m.shape

    def marginal(mean: F64) -> F64:
        return mean if online else ((1 + offline_a) * mean + (1 - offline_a)) / 2

    out = np.full((r, n), np.nan)
    for t in range(r):
        others = np.arange(r) != t
        if not others.any():
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio_z = z[t] / marginal(z[others].mean(axis=0))
            ratio_z = ratio_z[~np.isnan(ratio_z)]
            if online:
                mean_x = p[others].mean(axis=0)
            else:
                use = others[:, None] & ~m
                cnt = use.sum(axis=0)
                mean_x = np.where(cnt > 0, (p * use).sum(axis=0) / np.maximum(cnt, 1), np.nan)
            ratio_x = p[t] / marginal(mean_x)
        if ratio_z.size == 0:
            continue
        dominated = (ratio_x[:, None] >= gamma * ratio_z[None, :]).mean(axis=1)
        out[t] = np.where(np.isnan(ratio_x), np.nan, dominated)
    return out
