"""Label issues from one run store: every detector's ranking of the training examples.

Each method turns what the store holds into an *issue score*, higher = more likely a wrong
label, so that all methods rank the same way:

===================== ======================================= ================================
method                issue score                             needs
===================== ======================================= ================================
``memorization``      memorization (Feldman & Zhang 2020)     train correctness
``holdout_accuracy``  1 - hold-out accuracy (C-score)         train correctness
``el2n``              EL2N at the earliest snapshot           train snapshots
``forgetting_events`` forgetting events (Toneva et al. 2019)  train snapshots
``banzhaf``           minus the Banzhaf value (test accuracy) test correctness
``data_oob``          1 - Data-OOB (out-of-bag accuracy)      bootstrap runs (multiplicities)
``self_confidence``   1 - cleanlab's self-confidence          train logits (``cleanlab``)
``confident_learning`` cleanlab's ``find_label_issues`` flag,  train logits (``cleanlab``)
                      ranked by 1 - self-confidence
``knn_shapley``       minus the KNN-Shapley value             ``knn_features=(train, test)``
                                                              and test labels
===================== ======================================= ================================

The store keeps no input features, so ``knn_shapley`` takes them as an argument (raw
inputs or :func:`memscore.extract_embeddings`; the test split is the validation set). The
cleanlab methods run on :meth:`~memscore.RunStore.holdout_pred_probs`, out-of-sample
probabilities from the runs that held each example out. A method whose data the store
lacks raises a :class:`~memscore.StoreError` naming what is missing; nothing is faked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from .._validate import _describe, check_choice, check_int, to_numpy
from ..errors import StoreError
from .store import RunStore

F64 = npt.NDArray[np.float64]

__all__ = ["LABEL_ISSUE_METHODS", "label_issues"]


def _cleanlab() -> Any:
    try:
        import cleanlab.filter
        import cleanlab.rank
    except ImportError as exc:
        raise ImportError("this method needs cleanlab: pip install 'memscore[cleanlab]'") from exc
    return cleanlab


def _labels(store: RunStore) -> npt.NDArray[np.int64]:
    if store.train_labels is None:
        raise StoreError(
            f"{store.path}: label issues need the store's train_labels (RunStore.create(train_labels=...))"
        )
    return store.train_labels


def _holdout(store: RunStore) -> tuple[npt.NDArray[np.int64], F64, npt.NDArray[np.bool_]]:
    """Labels, hold-out probabilities and the rows where they are defined."""
    y = _labels(store)
    probs = store.holdout_pred_probs()
    ok = np.asarray(~np.isnan(probs).any(axis=1), dtype=bool)
    if probs.shape[1] < 2:
        raise ValueError(f"cleanlab methods need at least two classes, the store's logits have {probs.shape[1]}")
    return y, probs, ok


def _self_confidence(store: RunStore) -> F64:
    cl = _cleanlab()
    y, probs, ok = _holdout(store)
    out = np.full(y.size, np.nan)
    if ok.any():
        q = cl.rank.get_label_quality_scores(y[ok], probs[ok], method="self_confidence")
        out[ok] = 1.0 - np.asarray(q, dtype=np.float64)
    return out


def _confident_learning(store: RunStore) -> F64:
    """1 + (1 - self-confidence) for flagged examples, 1 - self-confidence otherwise: flagged first."""
    cl = _cleanlab()
    y, probs, ok = _holdout(store)
    out = np.full(y.size, np.nan)
    if ok.any():
        # n_jobs=1: cleanlab's default forks a process pool, and forking a process that
        # runs threads (Ray's, torch's, memscore's pool) can deadlock the children; the
        # work is a few array passes, no reason to fork for it
        flagged = np.asarray(cl.filter.find_label_issues(y[ok], probs[ok], n_jobs=1), dtype=bool)
        q = np.asarray(cl.rank.get_label_quality_scores(y[ok], probs[ok], method="self_confidence"), dtype=np.float64)
        out[ok] = (1.0 - q) + flagged
    return out


def _snapshot(column: str) -> Callable[[RunStore], F64]:
    def score(store: RunStore) -> F64:
        return np.asarray(store.snapshot_scores()[column].to_numpy(), dtype=np.float64)

    return score


def _memorization(store: RunStore) -> F64:
    out = store.memorization()
    assert isinstance(out, np.ndarray)
    return out


def _holdout_accuracy(store: RunStore) -> F64:
    return 1.0 - store.holdout_accuracy()


def _banzhaf(store: RunStore) -> F64:
    v = store.banzhaf()
    assert isinstance(v, np.ndarray)
    return -v


def _bootstrap(store: RunStore) -> bool:
    """Whether the store's first run is a bootstrap run (has draw counts)."""
    ids = store.run_ids()
    return bool(ids) and store.multiplicity(ids[0]) is not None


def _data_oob(store: RunStore) -> F64:
    return 1.0 - store.data_oob()


def _knn_shapley(store: RunStore, features: Any, k: int) -> F64:
    from ..knn.index import KnnIndex
    from ..knn.shapley import knn_shapley

    if features is None:
        raise ValueError(
            "knn_shapley: the store keeps no input features; pass knn_features=(train, test), "
            "raw inputs or memscore.extract_embeddings of the store's train and test examples"
        )
    if store.test_labels is None:
        raise StoreError(f"{store.path}: knn_shapley needs the store's test_labels (the validation set)")
    if not isinstance(features, (tuple, list)) or len(features) != 2:
        raise TypeError(f"knn_features: expected a pair (train, test) of feature arrays, got {_describe(features)}")
    train, test = features
    # the labels are the store's: a length that disagrees is the features' fault
    for part, x, n in (("train", train, store.n_train), ("test", test, store.n_test)):
        shape = (x.ntotal, x.dim) if isinstance(x, KnnIndex) else to_numpy(x, "knn_features").shape
        if not shape or shape[0] != n:
            raise ValueError(
                f"knn_features: expected {part} features with one row per {part} example of the store "
                f"({n}), got shape {shape}"
            )
    return -knn_shapley(train, _labels(store), test, store.test_labels, k=k)


_METHODS: dict[str, Callable[[RunStore], F64]] = {
    "memorization": _memorization,
    "holdout_accuracy": _holdout_accuracy,
    "el2n": _snapshot("el2n"),
    "forgetting_events": _snapshot("forgetting_events"),
    "banzhaf": _banzhaf,
    "data_oob": _data_oob,
    "self_confidence": _self_confidence,
    "confident_learning": _confident_learning,
}

LABEL_ISSUE_METHODS: tuple[str, ...] = (*_METHODS, "knn_shapley")
"""The methods :func:`label_issues` knows, in its default order."""


def _method_names(method: object) -> list[str]:
    """``method`` (a name or a sequence of names) as a list; each name is checked later."""
    if isinstance(method, str):
        return [method]
    if not isinstance(method, Sequence):
        raise TypeError(
            f"method: expected a method name or a sequence of them (one of {list(LABEL_ISSUE_METHODS)}), "
            f"got {_describe(method)}"
        )
    return list(method)


def label_issues(
    store: RunStore,
    method: str | Sequence[str] = "memorization",
    *,
    knn_features: tuple[Any, Any] | None = None,
    knn_k: int = 5,
) -> pl.DataFrame:
    """Rank the training examples of a store by how likely their label is wrong.

    Parameters
    ----------
    store : RunStore
        A store with train labels and the data each method needs (see the module table).
    method : str or sequence of str, default "memorization"
        One or more of :data:`LABEL_ISSUE_METHODS`; ``"all"`` for every one
        (``knn_shapley`` only when ``knn_features`` is given, ``data_oob`` only on a
        store of bootstrap runs).
    knn_features : (array_like, array_like), optional
        ``(train, test)`` features of the store's examples, ``(n_train, d)`` and
        ``(n_test, d)``, for ``knn_shapley``.
    knn_k : int, default 5
        Neighbours of the K-NN classifier of ``knn_shapley``.

    Returns
    -------
    polars.DataFrame
        Columns ``index``, ``label`` (int64) and one float64 issue score per method
        (higher = more likely a label issue; NaN where undefined), sorted by the first
        method's score, largest first, NaN last.

    Raises
    ------
    TypeError
        ``method`` is neither a name nor a sequence of names, ``knn_features`` not a pair.
    ValueError
        An unknown method, a cleanlab method on fewer than two classes, ``knn_shapley``
        without ``knn_features`` or with features of the wrong length (``knn_features``
        is named, not the store's labels).
    StoreError
        The store lacks the labels or the data a method needs (the message says which).
    ImportError
        A cleanlab method without cleanlab installed (``pip install 'memscore[cleanlab]'``).
    """
    if not isinstance(store, RunStore):
        raise TypeError(f"store: expected a RunStore, got {type(store).__name__}")
    names = _method_names(method)
    if names == ["all"]:
        names = [m for m in LABEL_ISSUE_METHODS if m != "knn_shapley" or knn_features is not None]
        if not _bootstrap(store):
            names.remove("data_oob")
    if not names:
        raise ValueError(f"method: expected at least one of {list(LABEL_ISSUE_METHODS)}")
    for m in names:
        check_choice(m, "method", LABEL_ISSUE_METHODS)
    y = _labels(store)
    kk = check_int(knn_k, "knn_k", 1)

    def score(m: str) -> F64:
        return _knn_shapley(store, knn_features, kk) if m == "knn_shapley" else _METHODS[m](store)

    cols = [pl.Series(m, score(m), dtype=pl.Float64, nan_to_null=False) for m in dict.fromkeys(names)]
    table = pl.DataFrame([pl.Series("index", np.arange(y.size, dtype=np.int64)), pl.Series("label", y), *cols])
    # NaN sorts above every number in polars: rank it as null (last), ties in index order.
    return table.sort(pl.col(names[0]).fill_nan(None), descending=True, nulls_last=True, maintain_order=True)
