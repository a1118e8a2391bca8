"""Plain numpy / pure-Python references for exact kNN and ResMem, written from the formulas.

- :func:`knn`: brute-force distances (float64 by default) and a stable sort, so ties go to
  the lower key index. Queries are processed in chunks to bound memory.
- :func:`knn_pure`: the same with Python loops (the "pure Python" benchmark baseline).
- :func:`resmem_residuals` / :func:`resmem_predict`: ResMem (Yang et al. 2023) as
  ``softmax(z / T) + Σ_j w_j r_j`` with ``r_i = onehot(y_i) − softmax(z_i / T)`` and
  ``w = softmax(−d / σ)`` over the k neighbours.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

__all__ = ["knn", "knn_pure", "pairwise", "resmem_predict", "resmem_residuals", "softmax"]


def _unit(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    out: np.ndarray = np.divide(x, n, out=np.zeros_like(x), where=n > 0)
    return out


def pairwise(queries: np.ndarray, keys: np.ndarray, metric: str = "l2") -> np.ndarray:
    """``(Q, N)`` matrix of distances (l2: squared, ip: products, cosine: ``1 − cos``).

    Parameters
    ----------
    queries : ndarray, shape (Q, d)
    keys : ndarray, shape (N, d)
    metric : {"l2", "ip", "cosine"}, default "l2"

    Returns
    -------
    ndarray, shape (Q, N)

    Raises
    ------
    ValueError
        An unknown metric.
    """
    out: np.ndarray
    if metric == "l2":
        d = (queries**2).sum(1)[:, None] - 2.0 * queries @ keys.T + (keys**2).sum(1)[None, :]
        out = np.maximum(d, 0.0)
        return out
    if metric == "ip":
        out = queries @ keys.T
        return out
    if metric == "cosine":
        out = 1.0 - _unit(queries) @ _unit(keys).T
        return out
    raise ValueError(f"metric: expected 'l2', 'ip' or 'cosine', got {metric!r}")


def knn(
    queries: np.ndarray, keys: np.ndarray, k: int, metric: str = "l2", *, dtype: type = np.float64, chunk: int = 256
) -> tuple[np.ndarray, I64]:
    """Exact kNN by brute force, nearest first.

    Ties break toward the lower index (stable sort). For ``ip`` the largest product comes
    first.

    Parameters
    ----------
    queries : ndarray, shape (Q, d)
    keys : ndarray, shape (N, d)
    k : int
        Neighbours per query.
    metric : {"l2", "ip", "cosine"}, default "l2"
    dtype : type, default numpy.float64
        Precision of the distance computation (float64: the test yardstick; float32: the
        fair numpy baseline for benchmarks).
    chunk : int, default 256
        Queries per block.

    Returns
    -------
    distances : ndarray, shape (Q, k)
    indices : ndarray of int64, shape (Q, k)
    """
    q: np.ndarray = np.asarray(queries, dtype=dtype)
    x: np.ndarray = np.asarray(keys, dtype=dtype)
    if not 1 <= k <= x.shape[0]:
        raise ValueError(f"k: expected 1 <= k <= {x.shape[0]}, got {k}")
    dist: np.ndarray = np.empty((q.shape[0], k), dtype=dtype)
    idx = np.empty((q.shape[0], k), dtype=np.int64)
    for s in range(0, q.shape[0], chunk):
        d = pairwise(q[s : s + chunk], x, metric)
        key = -d if metric == "ip" else d
        if k < x.shape[0]:
            # Candidates: everything not worse than the k-th value (keeps all ties).
            kth = np.partition(key, k - 1, axis=1)[:, k - 1 : k]
            for r in range(key.shape[0]):
                cand = np.flatnonzero(key[r] <= kth[r])
                order = cand[np.argsort(key[r, cand], kind="stable")][:k]
                idx[s + r] = order
                dist[s + r] = d[r, order]
        else:
            order = np.argsort(key, axis=1, kind="stable")
            idx[s : s + chunk] = order
            dist[s : s + chunk] = np.take_along_axis(d, order, axis=1)
    return dist, idx


def knn_pure(queries: list[list[float]], keys: list[list[float]], k: int) -> tuple[list[list[float]], list[list[int]]]:
    """Squared-L2 kNN with Python loops: the slow baseline of the benchmark.

    Parameters
    ----------
    queries, keys : list of list of float
    k : int

    Returns
    -------
    distances : list of list of float
    indices : list of list of int
    """
    dists, idxs = [], []
    for q in queries:
        row = []
        for j, x in enumerate(keys):
            s = 0.0
            for a, b in zip(q, x, strict=True):
                s += (a - b) * (a - b)
            row.append((s, j))
        row.sort()
        dists.append([d for d, _ in row[:k]])
        idxs.append([j for _, j in row[:k]])
    return dists, idxs


def softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax.

    Parameters
    ----------
    z : ndarray
    axis : int, default -1

    Returns
    -------
    ndarray of float64
    """
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    out: np.ndarray = e / e.sum(axis=axis, keepdims=True)
    return out


def resmem_residuals(labels: np.ndarray, logits: np.ndarray, temperature: float = 1.0) -> F64:
    """``r_i = onehot(y_i) − softmax(z_i / T)`` (classification residuals, rows sum to 0).

    Parameters
    ----------
    labels : ndarray of int, shape (N,)
    logits : ndarray, shape (N, C)
    temperature : float, default 1.0

    Returns
    -------
    ndarray of float64, shape (N, C)
    """
    p = softmax(np.asarray(logits, dtype=np.float64) / temperature)
    r = -p
    r[np.arange(len(labels)), labels] += 1.0
    return r


def resmem_predict(
    base: np.ndarray, residuals: np.ndarray, distances: np.ndarray, indices: np.ndarray, sigma: float
) -> F64:
    """``base + Σ_j w_j r_{idx_j}`` with ``w = softmax(−d / σ)`` over each row's neighbours.

    ``sigma = inf`` gives uniform weights; zero neighbours (``indices`` of width 0) give
    ``base``.

    Parameters
    ----------
    base : ndarray, shape (M, C)
    residuals : ndarray, shape (N, C)
    distances : ndarray, shape (M, k)
    indices : ndarray of int, shape (M, k)
    sigma : float

    Returns
    -------
    ndarray of float64, shape (M, C)
    """
    base = np.asarray(base, dtype=np.float64)
    if indices.shape[1] == 0:
        same: npt.NDArray[np.float64] = base.copy()
        return same
    d = np.asarray(distances, dtype=np.float64)
    w = np.full(d.shape, 1.0 / d.shape[1]) if math.isinf(sigma) else softmax(-d / sigma, axis=1)
    out: npt.NDArray[np.float64] = base + np.einsum("qk,qkc->qc", w, residuals[indices])
    return out
