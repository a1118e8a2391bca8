"""ResMem: residual memorization on top of a trained model (Yang et al. 2023).

"Learn what you can and memorize the rest": given a base model's embeddings and logits on
its training set, ResMem stores the residuals

    r_i = onehot(y_i) − softmax(z_i / T)            (classification)
    r_i = y_i − f(x_i)                               (regression)

and predicts, for a new input with embedding ``e`` and base output ``z``,

    softmax(z / T) + Σ_{j ∈ kNN(e)} w_j r_j,    w = softmax(−d_j / σ) over the k neighbours

(regression: ``f(x) + Σ_j w_j r_j``). Neighbours are found in embedding space by the exact
Rust engine (:func:`memscore.knn`, ``backend="exact"``) or by an approximate faiss index
(``backend="faiss"``: HNSW, IVF, any ``faiss.index_factory`` string).

Limits: ``k = 0`` returns the base model's prediction unchanged; ``sigma = inf`` weights
the k neighbours uniformly; ``sigma → 0`` puts all weight on the nearest one. Residual rows
sum to zero and the weights sum to one, so each predicted row still sums to one, but an
entry can leave ``[0, 1]``: ``predict_proba`` returns corrected scores, not clipped
probabilities (its argmax is ResMem's prediction).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from .. import errors
from .._stats import softmax
from .._validate import ArrayLike, check_bool, check_choice, check_class_labels, check_float, check_int, to_numpy
from .index import METRICS, KnnIndex, as_vectors

__all__ = ["ResMem", "tune_resmem"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

_CHUNK = 4096  # query rows per kNN + residual-gather step (bounds the (rows, k, C) temporary)


def _unit(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    out: np.ndarray = np.divide(x, n, out=np.zeros_like(x), where=n > 0)
    return out


def _weights(dist: np.ndarray, sigma: float, valid: np.ndarray | None = None) -> F64:
    """softmax(−d / σ) per row (uniform for σ = inf); invalid slots get weight 0."""
    d = np.asarray(dist, dtype=np.float64)
    if math.isinf(sigma):
        logits = np.zeros_like(d)
    else:
        logits = -d / sigma
    if valid is not None:
        logits = np.where(valid, logits, -np.inf)
    return softmax(logits, axis=1)


class ResMem:
    """kNN regression on a base model's residuals, added back to its predictions.

    Parameters
    ----------
    k:
        Number of neighbours (``0`` = the base model alone).
    sigma:
        Temperature of the distance weights ``softmax(−d / σ)``; ``> 0``, ``inf`` for
        uniform weights. Distances are those of ``metric`` (squared Euclidean for ``l2``).
    temperature:
        ``T`` in ``softmax(z / T)`` for the base probabilities and the residuals.
    metric:
        ``"l2"``, ``"cosine"`` (distance ``1 − cos``) or ``"ip"`` (distance ``−⟨q, x⟩``).
    normalize:
        L2-normalize the embeddings before the search (then ``l2`` distance is
        ``2 − 2 cos``).
    backend:
        ``"exact"`` (memscore's Rust engine) or ``"faiss"`` (approximate, faiss-cpu).
    mode:
        ``"classification"`` (``fit`` takes class labels and logits) or ``"regression"``
        (``fit`` takes targets and base predictions, shape ``(N,)`` or ``(N, D)``).
    faiss_index:
        A ``faiss.index_factory`` string, e.g. ``"HNSW32"``, ``"IVF1024,Flat"``, ``"Flat"``.
    faiss_params:
        Search-time parameters set with ``faiss.ParameterSpace``, e.g.
        ``{"efSearch": 128}`` (HNSW) or ``{"nprobe": 32}`` (IVF).
    threads:
        Threads of the exact search (``None``: memscore's pool).
    """

    def __init__(
        self,
        k: int = 10,
        sigma: float = 1.0,
        temperature: float = 1.0,
        metric: str = "l2",
        normalize: bool = True,
        backend: str = "exact",
        mode: str = "classification",
        faiss_index: str = "HNSW32",
        faiss_params: dict[str, Any] | None = None,
        threads: int | None = None,
    ) -> None:
        self.k = k
        self.sigma = sigma
        self.temperature = temperature
        self.metric = metric
        self.normalize = normalize
        self.backend = backend
        self.mode = mode
        self.faiss_index = faiss_index
        self.faiss_params = faiss_params
        self.threads = threads

    # ------------------------------------------------------------------ sklearn API

    _PARAMS = (
        "k",
        "sigma",
        "temperature",
        "metric",
        "normalize",
        "backend",
        "mode",
        "faiss_index",
        "faiss_params",
        "threads",
    )

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor parameters (scikit-learn convention).

        Parameters
        ----------
        deep : bool, default True
            Accepted for scikit-learn compatibility (ResMem has no sub-estimators).

        Returns
        -------
        dict of str to object
        """
        return {p: getattr(self, p) for p in self._PARAMS}

    def set_params(self, **params: Any) -> ResMem:
        """Set constructor parameters.

        ``k``, ``sigma``, ``threads`` and ``faiss_params`` apply without refitting (``k`` up to
        the fitted number of examples); other changes need ``fit`` again.

        Parameters
        ----------
        **params
            Constructor parameters.

        Returns
        -------
        ResMem
            ``self``.

        Raises
        ------
        ValueError
            An unknown parameter.
        """
        for name, value in params.items():
            if name not in self._PARAMS:
                raise ValueError(f"set_params: unknown parameter {name!r}; expected one of {self._PARAMS}")
            setattr(self, name, value)
            if name not in ("k", "sigma", "threads", "faiss_params"):
                self._fitted = False
        if "faiss_params" in params and getattr(self, "_index", None) is not None and self.backend == "faiss":
            self._apply_faiss_params()
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{p}={getattr(self, p)!r}" for p in self._PARAMS)
        return f"ResMem({args})"

    # ------------------------------------------------------------------ checks

    def _check_params(self) -> None:
        check_int(self.k, "k", 0)
        check_float(self.sigma, "sigma", 0.0, low_open=True, allow_inf=True)
        check_float(self.temperature, "temperature", 0.0, low_open=True)
        check_choice(self.metric, "metric", METRICS)
        check_bool(self.normalize, "normalize")
        check_choice(self.backend, "backend", ("exact", "faiss"))
        check_choice(self.mode, "mode", ("classification", "regression"))
        if not isinstance(self.faiss_index, str):
            raise TypeError(
                f"faiss_index: expected a faiss.index_factory string, got a {type(self.faiss_index).__name__}"
            )
        if self.faiss_params is not None and not isinstance(self.faiss_params, dict):
            raise TypeError(f"faiss_params: expected None or a dict, got a {type(self.faiss_params).__name__}")
        if self.threads is not None:
            check_int(self.threads, "threads", 1)

    def _embeddings(self, x: Any, name: str) -> np.ndarray:
        a = as_vectors(x, name)
        return _unit(a) if self.normalize else a

    def _logits(self, z: Any, name: str, n: int, classes: int | None) -> F64:
        a = to_numpy(z, name)
        if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.floating):
            raise TypeError(f"{name}: expected a float array, got dtype {a.dtype}")
        if a.ndim != 2 or a.shape[0] != n:
            raise ValueError(f"{name}: expected shape ({n}, C) matching the {n} embeddings, got {a.shape}")
        if a.shape[1] == 0:
            raise ValueError(f"{name}: expected at least one class column, got shape {a.shape}")
        if classes is not None and a.shape[1] != classes:
            raise ValueError(f"{name}: the model was fitted with {classes} classes, got {a.shape[1]} columns")
        a = np.asarray(a, dtype=np.float64)
        if not np.isfinite(a).all():
            raise ValueError(f"{name}: contains NaN or infinite values")
        return a

    def _targets(self, y: Any, name: str, n: int, width: int | None) -> F64:
        a = to_numpy(y, name)
        if a.dtype == np.bool_ or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
            raise TypeError(f"{name}: expected a numeric array, got dtype {a.dtype}")
        if a.ndim == 1:
            a = a[:, None]
        if a.ndim != 2 or a.shape[0] != n:
            raise ValueError(f"{name}: expected shape ({n},) or ({n}, D), got {to_numpy(y, name).shape}")
        if width is not None and a.shape[1] != width:
            raise ValueError(f"{name}: expected {width} output columns, got {a.shape[1]}")
        a = np.asarray(a, dtype=np.float64)
        if not np.isfinite(a).all():
            raise ValueError(f"{name}: contains NaN or infinite values")
        return a

    def _base(self, logits: F64) -> F64:
        if self.mode == "classification":
            return softmax(logits / float(self.temperature))
        return logits

    # ------------------------------------------------------------------ fit / predict

    def fit(self, train_embeddings: ArrayLike, train_labels: ArrayLike, train_logits: ArrayLike) -> ResMem:
        """Store the training residuals and index the training embeddings.

        Parameters
        ----------
        train_embeddings : array-like of float, shape (N, d)
            Embeddings of the training examples (e.g. from :func:`extract_embeddings`).
        train_labels : array-like
            Classification: (N,) integer classes in ``[0, C)``. Regression: the targets,
            (N,) or (N, D).
        train_logits : array-like of float
            Classification: the base model's (N, C) logits. Regression: its predictions, the
            shape of ``train_labels``.

        Returns
        -------
        ResMem
            ``self``, fitted.

        Raises
        ------
        TypeError
            A parameter or an array of the wrong type.
        ValueError
            A parameter out of range, shapes that disagree, labels out of range, NaN values.

        Examples
        --------
        >>> import numpy as np
        >>> e = np.eye(3, dtype=np.float32)
        >>> m = ResMem(k=1).fit(e, np.array([0, 1, 2]), np.zeros((3, 3)))
        >>> m.predict(e, np.zeros((3, 3))).tolist()
        [0, 1, 2]
        """
        self._check_params()
        e = self._embeddings(train_embeddings, "train_embeddings")
        n = e.shape[0]
        if self.k > n:
            raise ValueError(f"k: expected k <= number of training examples ({n}), got {self.k}")
        if self.mode == "classification":
            z = self._logits(train_logits, "train_logits", n, None)
            c = z.shape[1]
            y = to_numpy(train_labels, "train_labels")
            if y.ndim != 1 or y.shape[0] != n:
                raise ValueError(f"train_labels: expected shape ({n},), got {y.shape}")
            if not np.issubdtype(y.dtype, np.integer):
                raise TypeError(f"train_labels: expected integer class labels, got dtype {y.dtype}")
            if y.size and (y.min() < 0 or y.max() >= c):
                raise ValueError(
                    f"train_labels: expected classes in [0, {c}) to match the {c} logit columns, "
                    f"got values in [{y.min()}, {y.max()}]"
                )
            residuals = -self._base(z)
            residuals[np.arange(n), y.astype(np.int64)] += 1.0
        else:
            y = self._targets(train_labels, "train_labels", n, None)
            f = self._targets(train_logits, "train_logits", n, y.shape[1])
            residuals = y - f
            self._squeeze = np.ndim(to_numpy(train_labels, "train_labels")) == 1
        self.residuals_ = residuals
        self.n_outputs_ = residuals.shape[1]
        self.n_train_ = n
        self.dim_ = e.shape[1]
        self._build(e)
        self._fitted = True
        return self

    def _build(self, e: np.ndarray) -> None:
        if self.backend == "exact":
            self._index: Any = KnnIndex(e, self.metric, threads=self.threads)
            return
        try:
            import faiss
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("backend='faiss' needs faiss-cpu (pip install 'memscore[knn]')") from exc
        x = _unit(e) if self.metric == "cosine" else e
        x = np.ascontiguousarray(x, dtype=np.float32)
        mt = faiss.METRIC_L2 if self.metric == "l2" else faiss.METRIC_INNER_PRODUCT
        try:
            index = faiss.index_factory(x.shape[1], self.faiss_index, mt)
        except Exception as exc:
            raise ValueError(f"faiss_index: faiss cannot build {self.faiss_index!r}: {exc}") from exc
        if not index.is_trained:
            index.train(x)
        index.add(x)
        self._index = index
        self._apply_faiss_params()

    # A fitted ResMem pickles its residuals and its index: the exact index as its keys
    # (KnnIndex rebuilds itself), a faiss index through faiss.serialize_index.
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        index = state.get("_index")
        if index is not None and not isinstance(index, KnnIndex):
            import faiss

            state["_index"] = ("faiss-serialized", faiss.serialize_index(index))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        index = state.get("_index")
        if isinstance(index, tuple) and index and index[0] == "faiss-serialized":
            import faiss

            state = {**state, "_index": faiss.deserialize_index(index[1])}
        self.__dict__.update(state)
        if isinstance(index, tuple) and self.faiss_params:
            self._apply_faiss_params()

    def _apply_faiss_params(self) -> None:
        import faiss

        ps = faiss.ParameterSpace()
        for name, value in (self.faiss_params or {}).items():
            try:
                ps.set_index_parameter(self._index, name, value)
            except Exception as exc:
                raise ValueError(f"faiss_params: cannot set {name}={value!r} on {self.faiss_index!r}: {exc}") from exc

    def _require_fitted(self) -> None:
        if not getattr(self, "_fitted", False):
            raise errors.NotFittedError(
                "This ResMem instance is not fitted yet: call fit(...) first (or again after changing parameters)"
            )

    def kneighbors(self, embeddings: ArrayLike, k: int | None = None) -> tuple[F64, I64]:
        """The nearest training examples of ``embeddings``.

        Parameters
        ----------
        embeddings : array-like of float, shape (M, d)
            Query embeddings.
        k : int, optional
            Neighbours (default: the fitted ``k``), ``0 <= k <= N``.

        Returns
        -------
        distances : ndarray of float64, shape (M, k)
            Following ``metric``: squared L2, ``1 − cos`` or ``−⟨q, x⟩``, nearest first.
        indices : ndarray of int64, shape (M, k)
            ``-1`` marks a slot an approximate faiss index left empty.

        Raises
        ------
        NotFittedError
            Before ``fit``.
        ValueError
            Wrong dimension, ``k`` out of range.
        """
        self._require_fitted()
        k = self.k if k is None else k
        e = self._embeddings(embeddings, "embeddings")
        if e.shape[1] != self.dim_:
            raise ValueError(f"embeddings: expected dimension {self.dim_} (as in fit), got {e.shape[1]}")
        if not 0 <= k <= self.n_train_:
            raise ValueError(f"k: expected 0 <= k <= number of training examples ({self.n_train_}), got {k}")
        return self._search(e, k)

    def _search(self, e: np.ndarray, k: int) -> tuple[F64, I64]:
        """Neighbours of already checked (and normalized) embeddings."""
        if k == 0:
            return np.zeros((e.shape[0], 0)), np.zeros((e.shape[0], 0), dtype=np.int64)
        if self.backend == "exact":
            d, i = self._index.search(e, k, threads=self.threads)
            d = d.astype(np.float64)
            return (-d if self.metric == "ip" else d), i
        x = np.ascontiguousarray(_unit(e) if self.metric == "cosine" else e, dtype=np.float32)
        d, i = self._index.search(x, k)
        d = d.astype(np.float64)
        if self.metric == "ip":
            d = -d
        elif self.metric == "cosine":
            d = 1.0 - d
        return d, i.astype(np.int64)

    def _correct(self, base: F64, dist: np.ndarray, idx: np.ndarray, k: int, sigma: float) -> F64:
        if k == 0:
            same: F64 = base.copy()
            return same
        d, i = dist[:, :k], idx[:, :k]
        valid = i >= 0
        w = _weights(d, sigma, None if valid.all() else valid)
        r = self.residuals_[np.where(valid, i, 0)]
        out: F64 = base + np.einsum("qk,qkc->qc", w, r)
        return out

    def _predict_raw(self, embeddings: Any, logits: Any) -> F64:
        self._require_fitted()
        self._check_params()
        ea = self._embeddings(embeddings, "embeddings")
        n = ea.shape[0]
        if self.mode == "classification":
            base = self._base(self._logits(logits, "logits", n, self.n_outputs_))
        else:
            base = self._targets(logits, "logits", n, self.n_outputs_)
        if self.k > self.n_train_:
            raise ValueError(f"k: expected k <= number of training examples ({self.n_train_}), got {self.k}")
        out = np.empty_like(base)
        if ea.shape[1] != self.dim_:
            raise ValueError(f"embeddings: expected dimension {self.dim_} (as in fit), got {ea.shape[1]}")
        for s in range(0, n, _CHUNK):
            d, i = self._search(ea[s : s + _CHUNK], self.k)
            out[s : s + _CHUNK] = self._correct(base[s : s + _CHUNK], d, i, self.k, float(self.sigma))
        return out

    def predict_proba(self, embeddings: ArrayLike, logits: ArrayLike) -> F64:
        """``softmax(z / T) + Σ_j w_j r_j`` (classification).

        Rows sum to one; entries may leave ``[0, 1]`` (see the module notes).

        Parameters
        ----------
        embeddings : array-like of float, shape (M, d)
            Embeddings of the inputs.
        logits : array-like of float, shape (M, C)
            The base model's logits on them.

        Returns
        -------
        ndarray of float64, shape (M, C)

        Raises
        ------
        NotFittedError
            Before ``fit``.
        ValueError
            In regression mode; shapes that disagree with the fit.
        """
        if self.mode != "classification":
            raise ValueError("predict_proba: only in mode='classification'; use predict")
        return self._predict_raw(embeddings, logits)

    def predict(self, embeddings: ArrayLike, logits: ArrayLike) -> np.ndarray:
        """Class labels (argmax of :meth:`predict_proba`) or regression values.

        Parameters
        ----------
        embeddings : array-like of float, shape (M, d)
            Embeddings of the inputs.
        logits : array-like of float
            The base model's (M, C) logits, or (regression) its (M,) / (M, D) predictions.

        Returns
        -------
        ndarray
            (M,) int64 classes, or float64 values of the targets' shape.

        Raises
        ------
        NotFittedError
            Before ``fit``.
        """
        out = self._predict_raw(embeddings, logits)
        if self.mode == "classification":
            labels: I64 = out.argmax(axis=1).astype(np.int64)
            return labels
        values: F64 = out[:, 0] if getattr(self, "_squeeze", False) else out
        return values

    def score(self, embeddings: ArrayLike, logits: ArrayLike, labels: ArrayLike) -> float:
        """Accuracy (classification) or the coefficient of determination R² (regression).

        Parameters
        ----------
        embeddings : array-like of float, shape (M, d)
            Embeddings of the inputs.
        logits : array-like of float
            The base model's logits or predictions on them.
        labels : array-like
            True classes or targets.

        Returns
        -------
        float
            R² is NaN for constant targets.

        Raises
        ------
        NotFittedError
            Before ``fit``.
        """
        pred = self.predict(embeddings, logits)
        y = to_numpy(labels, "labels")
        if y.shape[0] != pred.shape[0]:
            raise ValueError(f"labels: expected {pred.shape[0]} rows, got {y.shape[0]}")
        if self.mode == "classification":
            return float((pred == y).mean())
        y = np.asarray(y, dtype=np.float64).reshape(pred.shape)
        ss_res = ((y - pred) ** 2).sum()
        ss_tot = ((y - y.mean(axis=0)) ** 2).sum()
        return float(1.0 - ss_res / ss_tot) if ss_tot > 0 else float("nan")

    # helper for tune_resmem: neighbours once, every (k, σ) from them
    def _grid(
        self, embeddings: Any, logits: Any, labels: Any, ks: Sequence[int], sigmas: Sequence[float]
    ) -> list[dict[str, Any]]:
        self._require_fitted()
        e = self._embeddings(embeddings, "val_embeddings")
        n = e.shape[0]
        base = self._base(self._logits(logits, "val_logits", n, self.n_outputs_))
        y = to_numpy(labels, "val_labels")
        if y.shape != (n,):
            raise ValueError(f"val_labels: expected shape ({n},), got {y.shape}")
        check_class_labels(y, "val_labels", self.n_outputs_)
        if e.shape[1] != self.dim_:
            raise ValueError(f"val_embeddings: expected dimension {self.dim_} (as in fit), got {e.shape[1]}")
        d, i = self._search(e, max(ks))
        rows = []
        for k, sigma in itertools.product(ks, sigmas):
            if k == 0 and sigma != sigmas[0]:
                continue
            pred = self._correct(base, d, i, k, sigma).argmax(axis=1)
            rows.append(
                {"k": int(k), "sigma": float(sigma) if k else float("nan"), "accuracy": float((pred == y).mean())}
            )
        return rows


def tune_resmem(
    train_embeddings: ArrayLike,
    train_labels: ArrayLike,
    train_logits: ArrayLike,
    val_embeddings: ArrayLike,
    val_labels: ArrayLike,
    val_logits: ArrayLike,
    *,
    ks: Iterable[int] = (0, 1, 2, 5, 10, 20, 50),
    sigmas: Iterable[float] | None = None,
    **params: Any,
) -> tuple[dict[str, float], pl.DataFrame]:
    """Pick ``k`` and ``sigma`` for classification by accuracy on a validation split.

    Fits :class:`ResMem` once (other constructor arguments go in ``params``), searches the
    validation embeddings once for ``max(ks)`` neighbours and scores every ``(k, σ)``
    pair from those neighbours (``k = 0``: the base model). Ties go to the smaller ``k``,
    then the smaller ``σ``.

    Parameters
    ----------
    train_embeddings, train_labels, train_logits : array-like
        As :meth:`ResMem.fit` takes them.
    val_embeddings : array-like of float, shape (M, d)
        Validation embeddings.
    val_labels : array-like of int, shape (M,)
        Validation classes, in ``[0, C)``.
    val_logits : array-like of float, shape (M, C)
        The base model's validation logits.
    ks : iterable of int, default (0, 1, 2, 5, 10, 20, 50)
        Candidate ``k`` values, each >= 0.
    sigmas : iterable of float, optional
        Candidate ``sigma`` values, each > 0 (``inf`` allowed). Default:
        ``m · (0.01, 0.03, 0.1, 0.3, 1, 3)`` and ``inf``, where ``m`` is the median distance
        to the nearest training neighbour of the validation points.
    **params
        Other :class:`ResMem` constructor arguments.

    Returns
    -------
    best : dict
        ``k``, ``sigma`` and ``accuracy`` of the best pair.
    table : polars.DataFrame
        Columns ``k``, ``sigma``, ``accuracy``, one row per pair.

    Raises
    ------
    TypeError
        Non-integer ``ks``, non-numeric ``sigmas``, arrays of the wrong type.
    ValueError
        Empty ``ks`` / ``sigmas``, values out of range, labels out of range, regression mode.
    """
    ks = sorted({check_int(k, "ks[]", 0) for k in ks})
    if not ks:
        raise ValueError("ks: expected at least one k >= 0, got an empty sequence")
    model = ResMem(k=max(ks), **{p: v for p, v in params.items() if p not in ("k", "sigma")})
    if params.get("mode", "classification") != "classification":
        raise ValueError("tune_resmem: classification only (mode='classification')")
    model.fit(train_embeddings, train_labels, train_logits)
    if sigmas is None:
        if max(ks) > 0:
            d1, _ = model.kneighbors(val_embeddings, 1)
            scale = float(np.median(d1[:, 0]))
            if not scale > 0:
                scale = float(np.mean(np.abs(d1))) or 1.0
        else:
            scale = 1.0
        sigmas = [scale * f for f in (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)] + [math.inf]
    sig = [check_float(s, "sigmas[]", 0.0, low_open=True, allow_inf=True) for s in sigmas]
    if not sig:
        raise ValueError("sigmas: expected at least one sigma > 0, got an empty sequence")
    rows = model._grid(val_embeddings, val_logits, val_labels, ks, sig)
    best = max(rows, key=lambda r: (r["accuracy"], -r["k"], -(r["sigma"] if r["k"] else 0.0)))
    table = pl.DataFrame(rows, schema={"k": pl.Int64, "sigma": pl.Float64, "accuracy": pl.Float64})
    if best["k"] == 0:
        best = {**best, "sigma": sig[0]}
    return best, table
