"""Plain numpy reference versions of the data-valuation scores, written from the papers.

Conventions as :mod:`memscore.reference.scores`: ``masks`` is ``(R, N)`` bool, True when
run ``r`` trained on example ``i``; scores are float64, NaN where undefined.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

__all__ = ["banzhaf"]


def banzhaf(masks: npt.ArrayLike, utility: npt.ArrayLike) -> tuple[F64, F64]:
    """Maximum-sample-reuse Banzhaf value and its standard error (Wang & Jia 2023).

    For each example, the mean utility of the runs (subsets) containing it minus the mean
    utility of the runs without it; the standard error is ``sqrt(var_in / n_in + var_out /
    n_out)`` with ddof=1 variances (NaN with fewer than two runs on a side).

    Parameters
    ----------
    masks : array-like of bool, shape (R, N)
    utility : array-like of float, shape (R,)

    Returns
    -------
    (value, stderr) : two ndarrays of float64, shape (N,)
    """
    m = np.asarray(masks, dtype=bool)
    u = np.asarray(utility, dtype=np.float64)
    value = np.full(m.shape[1], np.nan)
    se = np.full(m.shape[1], np.nan)
    for i in range(m.shape[1]):
        a, b = u[m[:, i]], u[~m[:, i]]
        if a.size and b.size:
            value[i] = a.mean() - b.mean()
        if a.size >= 2 and b.size >= 2:
            se[i] = np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    return value, se
