"""Exact KNN-Shapley values (Jia et al. 2019) on the exact kNN engine.

The Shapley value of each training point for a K-nearest-neighbour classifier has a closed
form: per test point, sort the training points by distance and run one recursion from the
farthest to the nearest (``s(a_N) = m_N / max(N, K)``, ``s(a_i) = s(a_{i+1}) + (m_i - m_{i+1}) /
K * min(K, i) / i`` with ``m_i`` whether the i-th nearest has the test point's label). The
value is the mean over test points. The ordering is the one memscore's exact search gives
at ``k = N`` (exact float64 distances, ties toward the lower index), taken straight from the
distances by a radix sort, test points in parallel, inside the Rust core.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .. import _core
from .._validate import ArrayLike, as_labels, check_int
from .index import KnnIndex, _check_threads, as_vectors

F64 = npt.NDArray[np.float64]

#: The largest ``k`` (the core counts neighbours in 64 bits).
MAX_K = 2**63 - 1

__all__ = ["knn_shapley"]


def knn_shapley(
    train: ArrayLike | KnnIndex,
    train_labels: ArrayLike,
    test: ArrayLike,
    test_labels: ArrayLike,
    *,
    k: int = 5,
    metric: str = "l2",
    threads: int | None = None,
) -> F64:
    """Exact KNN-Shapley value of every training point (Jia et al. 2019).

    The Shapley value for the utility of a K-NN classifier (the fraction of the K nearest
    training points that carry the test point's label), averaged over the test points.
    Low or negative values point at mislabeled or unhelpful training points.

    Parameters
    ----------
    train : array_like or KnnIndex
        ``(N, d)`` training features or embeddings (:func:`memscore.extract_embeddings`),
        or an index built over them (its metric is used).
    train_labels : array_like of int, shape (N,)
    test : array_like
        ``(T, d)`` test (validation) points, T >= 1.
    test_labels : array_like of int, shape (T,)
    k : int, default 5
        Neighbours of the classifier, 1 to 2**63 - 1 (``k >= N`` is allowed: every point
        counts).
    metric : {"l2", "ip", "cosine"}, default "l2"
        Distance for an array ``train``.
    threads : int, optional
        Threads for this call (default: memscore's pool).

    Returns
    -------
    ndarray of float64, shape (N,)
        Values; they add up to the mean utility of the whole training set.

    Raises
    ------
    TypeError
        Non-float features, non-integer labels or ``k``.
    ValueError
        Shapes or dimensions disagree, NaN / infinite features, ``k`` out of range.

    Examples
    --------
    >>> import numpy as np, memscore
    >>> x = np.array([[0.0], [1.0], [5.0]], dtype=np.float32)
    >>> memscore.knn_shapley(x, [0, 1, 1], np.array([[0.2]], dtype=np.float32), [0], k=1)
    array([1., 0., 0.])
    """
    index = train if isinstance(train, KnnIndex) else KnnIndex._of(train, metric, "train")
    kk = check_int(k, "k", 1, MAX_K)
    q = as_vectors(test, "test")
    if q.shape[1] != index.dim:
        raise ValueError(f"test: expected dimension {index.dim} (that of the training points), got {q.shape[1]}")
    yk = as_labels(train_labels, "train_labels", index.ntotal)
    yq = as_labels(test_labels, "test_labels", q.shape[0])
    out: F64 = _core.knn_shapley(index._core, q, yk, yq, kk, threads=_check_threads(threads))
    return out
