"""Plain numpy reference versions of the data-valuation scores, written from the papers.

Conventions as :mod:`memscore.reference.scores`: ``masks`` is ``(R, N)`` bool, True when
run ``r`` trained on example ``i``; scores are float64, NaN where undefined.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .knn import knn

F64 = npt.NDArray[np.float64]

__all__ = ["banzhaf", "data_oob", "knn_shapley"]


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


def knn_shapley(
    train: npt.ArrayLike,
    train_labels: npt.ArrayLike,
    test: npt.ArrayLike,
    test_labels: npt.ArrayLike,
    k: int,
    metric: str = "l2",
) -> F64:
    """Exact KNN-Shapley values (Jia et al. 2019, Theorem 1), mean over test points.

    Per test point, with the training points sorted by distance (float64, ties toward the
    lower index) and ``m_i = 1[label of the i-th nearest == test label]``:
    ``s_N = m_N / max(N, k)`` (Theorem 1 has ``1 / N`` for ``k <= N``; with ``k > N``
    the farthest point always counts, ``1 / k``) and ``s_i = s_{i+1} + (m_i - m_{i+1}) / k * min(k, i) / i``.

    Parameters
    ----------
    train : array-like, shape (N, d)
    train_labels : array-like of int, shape (N,)
    test : array-like, shape (T, d)
    test_labels : array-like of int, shape (T,)
    k : int
    metric : {"l2", "ip", "cosine"}

    Returns
    -------
    ndarray of float64, shape (N,)
    """
    x = np.asarray(train, dtype=np.float32)
    y = np.asarray(train_labels)
    q = np.asarray(test, dtype=np.float32)
    yq = np.asarray(test_labels)
    n = x.shape[0]
    _, order = knn(q, x, n, metric)
    values = np.zeros(n)
    for t in range(q.shape[0]):
        m = (y[order[t]] == yq[t]).astype(np.float64)
        s = np.zeros(n)
        s[n - 1] = m[n - 1] / max(n, k)
        for i in range(n - 2, -1, -1):  # 0-based position i is rank i + 1
            s[i] = s[i + 1] + (m[i] - m[i + 1]) / k * min(k, i + 1) / (i + 1)
        values[order[t]] += s
    out: F64 = values / q.shape[0]
    return out


def data_oob(multiplicities: npt.ArrayLike, outcomes: npt.ArrayLike) -> F64:
    """Data-OOB (Kwon & Zou 2023, eq. 3): the out-of-bag score of every example.

    ``psi_i = sum_b 1[w_bi = 0] T(y_i, f_b(x_i)) / sum_b 1[w_bi = 0]``, with ``w_bi`` the
    number of times bootstrap sample b drew example i and ``T`` the outcome (correctness).

    Parameters
    ----------
    multiplicities : array-like of int, shape (R, N)
    outcomes : array-like of bool or float, shape (R, N)

    Returns
    -------
    ndarray of float64, shape (N,)
        NaN where every run drew the example.
    """
    w = np.asarray(multiplicities)
    t = np.asarray(outcomes, dtype=np.float64)
    out = np.full(w.shape[1], np.nan)
    for i in range(w.shape[1]):
        num = den = 0.0
        for b in range(w.shape[0]):
            if w[b, i] == 0:
                num += t[b, i]
                den += 1.0
        if den > 0:
            out[i] = num / den
    return out
