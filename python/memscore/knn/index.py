"""Exact k-nearest-neighbour search (brute force in the Rust core).

Candidates are found with blocked float32 matrix products (``‖x‖² − 2 q·x`` with
precomputed key norms) reduced by a fused per-query top-k, so the ``(Q, N)`` distance
matrix is never held in memory. Results are exact — equal to a float64 brute force on the
float32 inputs — sorted nearest first, ties broken toward the lower key index:

- for ``"l2"`` keys and queries are centred on the keys' mean (computed in float64) when
  the data share a large offset, so values ≈ 100 that differ by ≈ 0.01 do not cancel to
  noise (translation does not change L2 neighbours);
- each query's candidates are re-ranked with distances recomputed in float64 from the
  original vectors, and an error bound certifies that no other key can be nearer; a query
  that cannot be certified is scanned again, exactly, in float64;
- the distances returned are these true distances (as float32).

Metrics:

- ``"l2"``: squared Euclidean distance ``Σ (q − x)²``, smallest first;
- ``"ip"``: inner product, **largest** first (the "distance" returned is the product);
- ``"cosine"``: cosine distance ``1 − cos(q, x)`` in ``[0, 2]``, smallest first; an
  all-zero vector has similarity 0 with everything.

Inputs whose squared norms or products would overflow float32 are refused
(``ValueError``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from .. import _core
from .._validate import ArrayLike, check_choice, to_numpy

__all__ = ["KnnIndex", "knn", "METRICS"]

METRICS = ("l2", "ip", "cosine")

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


def _check_metric(metric: Any) -> str:
    return check_choice(metric, "metric", METRICS)


def _check_threads(threads: Any) -> int | None:
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)):
        raise TypeError(f"threads: expected None or an int, got {type(threads).__name__}")
    if threads < 1:
        raise ValueError(f"threads: expected None or an int >= 1, got {threads}")
    return int(threads)


def as_vectors(
    x: Any, name: str, *, allow_f16: bool = False, check_finite: bool = True
) -> npt.NDArray[np.floating[Any]]:
    """A C-contiguous, finite, non-empty 2-D float32 array (float16 kept if allowed).

    Parameters
    ----------
    x : array_like
        numpy array, torch CPU tensor or nested sequence of shape ``(rows, dim)``.
    name : str
        Argument name used in error messages.
    allow_f16 : bool, default False
        Keep float16 input as float16 instead of converting it.
    check_finite : bool, default True
        Refuse NaN / infinite values here; False leaves that check to the Rust core (the
        one-shot search finds them in its pass over the keys, saving a pass).

    Returns
    -------
    numpy.ndarray
        float32 (or float16) ``(rows, dim)``, C-contiguous.

    Raises
    ------
    TypeError
        Not a floating-point array.
    ValueError
        Not 2-D, empty, or holding NaN / infinite values.
    """
    a = to_numpy(x, name)
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (rows, dim), got shape {a.shape}")
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.floating):
        raise TypeError(f"{name}: expected a float32 array (float16/float64 accepted), got dtype {a.dtype}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{name}: expected a non-empty array, got shape {a.shape}")
    if a.dtype == np.float16 and allow_f16:
        a = np.ascontiguousarray(a)
    elif a.dtype.itemsize > 8:
        raise TypeError(f"{name}: expected float16, float32 or float64, got dtype {a.dtype}")
    else:
        a = np.ascontiguousarray(a, dtype=np.float32)
    if check_finite and not np.isfinite(a).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return a


def _check_k(k: Any, n: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k: expected an int, got {type(k).__name__}")
    if not 1 <= k <= n:
        raise ValueError(f"k: expected 1 <= k <= number of keys ({n}), got {k}")
    return int(k)


class KnnIndex:
    """A reusable exact kNN index: key layout, norms and centre are prepared once.

    Parameters
    ----------
    keys : array_like
        ``(N, d)`` float32 array or torch CPU tensor (float64 is converted; float16 is
        stored as float16, half the memory, and widened block by block while searching).
    metric : {"l2", "ip", "cosine"}, default "l2"
        ``"l2"`` (squared Euclidean), ``"ip"`` (inner product, largest first) or
        ``"cosine"`` (``1 − cos``).
    threads : int, optional
        Threads for building the index (default: memscore's pool).

    Raises
    ------
    TypeError
        ``keys`` is not a float array, or ``threads`` is not an int.
    ValueError
        Bad shape, NaN / infinite values, unknown metric, ``threads < 1``, or keys whose
        squared norms would overflow float32.

    Examples
    --------
    >>> index = KnnIndex(np.eye(3, dtype=np.float32))
    >>> index.search(np.array([[0.9, 0.1, 0.0]], dtype=np.float32), 2)[1]
    array([[0, 1]])
    """

    def __init__(self, keys: ArrayLike, metric: str = "l2", *, threads: int | None = None) -> None:
        self._prepare(keys, metric, threads, "keys")

    @classmethod
    def _of(cls, keys: ArrayLike, metric: str, name: str, threads: int | None = None) -> KnnIndex:
        """An index over ``keys``, whose errors name them as the caller's argument ``name``
        (``train`` for :func:`memscore.knn_shapley`)."""
        index = cls.__new__(cls)
        index._prepare(keys, metric, threads, name)
        return index

    def _prepare(self, keys: ArrayLike, metric: str, threads: int | None, name: str) -> None:
        """Check ``keys`` (named ``name`` in messages), the metric and threads; build."""
        metric = _check_metric(metric)
        src = to_numpy(keys, name)
        a = as_vectors(src, name, allow_f16=True)
        t = _check_threads(threads)
        if metric == "cosine" and np.may_share_memory(a, src):
            # See `_build`: keep our own, so that changes the caller makes to its array
            # later cannot change the unpickled index.
            a = a.copy()
        self._build(a, metric, t)

    def _build(self, a: np.ndarray, metric: str, threads: int | None) -> None:
        """Prepare the core index over the checked keys ``a`` (float32 or float16)."""
        # Pickling rebuilds the index from its keys. The core keeps its own copy, exactly
        # the keys for l2 and ip, so it gives them back then; cosine keys are stored as
        # unit rows, so those indexes keep the keys given (a private, read-only array).
        self._keys: np.ndarray | None = None
        if metric == "cosine":
            a.flags.writeable = False
            self._keys = a
        self._threads = threads
        if a.dtype == np.float16:
            self._core = _core.KnnIndexCore(a.view(np.uint16), metric, f16_bits=True, threads=threads)
        else:
            self._core = _core.KnnIndexCore(a, metric, threads=threads)

    # The Rust index cannot be pickled; its constructor inputs can, and rebuild it exactly
    # (for multiprocessing, joblib and Ray).
    def __getstate__(self) -> dict[str, Any]:
        keys = self._keys
        if keys is None:
            keys = self._core.keys()
            if self._core.is_f16:
                keys = keys.view(np.float16)
        return {"keys": keys, "metric": self.metric, "threads": self._threads}

    def __setstate__(self, state: dict[str, Any]) -> None:
        keys = np.array(state["keys"])  # unpickled arrays may be read-only views of the pickle
        self._build(keys, _check_metric(state["metric"]), _check_threads(state["threads"]))

    @property
    def ntotal(self) -> int:
        """Number of keys."""
        return int(self._core.ntotal)

    @property
    def dim(self) -> int:
        """Dimension of the keys."""
        return int(self._core.dim)

    @property
    def metric(self) -> str:
        """The metric searched with."""
        return str(self._core.metric)

    @property
    def dtype(self) -> np.dtype[Any]:
        """Storage type of the keys (float32 or float16)."""
        return np.dtype(np.float16 if self._core.is_f16 else np.float32)

    def __len__(self) -> int:
        return self.ntotal

    def __repr__(self) -> str:
        return f"KnnIndex(ntotal={self.ntotal}, dim={self.dim}, metric={self.metric!r}, dtype={self.dtype})"

    def search(self, queries: ArrayLike, k: int, *, threads: int | None = None) -> tuple[F32, I64]:
        """The ``k`` nearest keys of each query.

        Parameters
        ----------
        queries : array_like
            ``(Q, d)`` float array or torch CPU tensor (converted to float32).
        k : int
            Number of neighbours, ``1 <= k <= ntotal``.
        threads : int, optional
            ``None`` runs on memscore's pool (:func:`memscore.set_num_threads`); an int
            runs this call on a temporary pool of that many threads.

        Returns
        -------
        distances : numpy.ndarray
            ``(Q, k)`` float32, the true distances (see the module notes), nearest first.
        indices : numpy.ndarray
            ``(Q, k)`` int64 key indices.

        Raises
        ------
        TypeError
            ``queries`` is not a float array, ``k`` or ``threads`` not an int.
        ValueError
            Bad shape or dimension, NaN / infinite values, ``k`` out of range, or
            distances that would overflow float32.
        """
        q = as_vectors(queries, "queries")
        if q.shape[1] != self.dim:
            raise ValueError(f"queries: expected dimension {self.dim} (that of the keys), got {q.shape[1]}")
        k = _check_k(k, self.ntotal)
        return self._core.search(q, k, threads=_check_threads(threads))


def knn(
    queries: ArrayLike, keys: ArrayLike, k: int, *, metric: str = "l2", threads: int | None = None
) -> tuple[F32, I64]:
    """Exact ``k`` nearest neighbours of ``queries`` among ``keys``.

    Build a :class:`KnnIndex` instead when searching the same keys more than once.

    Parameters
    ----------
    queries : array_like
        ``(Q, d)`` float array or torch CPU tensor.
    keys : array_like
        ``(N, d)`` float array or torch CPU tensor (float16 kept as float16).
    k : int
        Number of neighbours, ``1 <= k <= N``.
    metric : {"l2", "ip", "cosine"}, default "l2"
        See :class:`KnnIndex`.
    threads : int, optional
        See :meth:`KnnIndex.search`.

    Returns
    -------
    distances : numpy.ndarray
        ``(Q, k)`` float32, nearest first, ties toward the lower index.
    indices : numpy.ndarray
        ``(Q, k)`` int64.

    Raises
    ------
    TypeError, ValueError
        As :class:`KnnIndex` and :meth:`KnnIndex.search`.

    Examples
    --------
    >>> d, i = knn(np.zeros((1, 2), np.float32), np.array([[1, 0], [0, 0.5]], np.float32), 1)
    >>> (float(d[0, 0]), int(i[0, 0]))
    (0.25, 1)
    """
    metric = _check_metric(metric)
    qa = as_vectors(queries, "queries")
    # float32 keys are searched where they lie: no copy, and the core's norm pass refuses
    # NaN / infinite values (float64 keys are converted, float16 ones go through an index).
    ka = as_vectors(keys, "keys", allow_f16=True, check_finite=False)
    t = _check_threads(threads)
    if qa.shape[1] != ka.shape[1]:
        raise ValueError(f"queries and keys: dimensions differ ({qa.shape[1]} vs {ka.shape[1]})")
    if ka.dtype == np.float16:
        if not np.isfinite(ka).all():
            raise ValueError("keys: contains NaN or infinite values")
        return KnnIndex(ka, metric, threads=t).search(qa, k, threads=t)
    k = _check_k(k, ka.shape[0])
    return _core.knn(qa, ka, k, metric, threads=t)
