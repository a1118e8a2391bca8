"""Point-removal curves: the standard evaluation of a data valuation (Ghorbani & Zou 2019;
Kwon & Zou 2023; OpenDataVal).

Remove the highest- (or lowest-) valued fraction x of the training examples, retrain on
the rest, and measure test accuracy against x. A valuation that finds the useful examples
makes accuracy fall fast when the highest-valued go first; one that finds harmful
examples (wrong labels) makes it rise when the lowest-valued go first. ``"random"``
removal is the baseline.

Every point of every curve is a few runs of the training driver on one store: each
(valuation, order, fraction) is a fixed training subset, the runs of the store's plan
(:meth:`memscore.train.SubsetPlan.from_masks`), so the whole curve trains as vmapped
ensembles, resumes like any other plan, and points that remove the same examples (x = 0)
are trained once.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from .._io import atomic_write
from .._validate import check_choice, check_float, check_int, to_numpy
from ..errors import StoreError
from .store import RunStore

__all__ = ["REMOVAL_FILE", "REMOVAL_ORDERS", "removal_curve", "removal_order", "write_removal_curve"]

REMOVAL_ORDERS = ("highest", "lowest", "random")
"""Which examples go first: the highest-valued, the lowest-valued, or a random order."""

REMOVAL_FILE = "removal.parquet"
"""The file name ``memscore report`` looks for in a store directory."""


def removal_order(values: Any, order: str, *, seed: int = 0) -> npt.NDArray[np.int64]:
    """The order in which a removal curve removes the training examples.

    Parameters
    ----------
    values : array-like of float, shape (N,)
        One value (or score) per training example; NaN is removed last in every order.
    order : {"highest", "lowest", "random"}
        Highest values first, lowest first, or a seeded random permutation.
    seed : int, default 0
        Seed of the random order.

    Returns
    -------
    ndarray of int64, shape (N,)
        Example indices, first removed first (ties in index order).

    Raises
    ------
    TypeError
        Values that are not real numbers.
    ValueError
        Not 1-D, or an unknown order.

    Examples
    --------
    >>> import numpy as np
    >>> removal_order(np.array([0.2, np.nan, 0.9, 0.2]), "highest").tolist()
    [2, 0, 3, 1]
    >>> removal_order(np.array([0.2, np.nan, 0.9, 0.2]), "lowest").tolist()
    [0, 3, 2, 1]
    """
    check_choice(order, "order", REMOVAL_ORDERS)
    v = to_numpy(values, "values")
    if v.dtype == np.bool_ or not (np.issubdtype(v.dtype, np.floating) or np.issubdtype(v.dtype, np.integer)):
        raise TypeError(f"values: expected one real number per training example, got dtype {v.dtype}")
    if v.ndim != 1:
        raise ValueError(f"values: expected a 1-D array (one value per training example), got shape {v.shape}")
    v = v.astype(np.float64)
    if order == "random":
        return np.random.default_rng(seed).permutation(v.size).astype(np.int64)
    key = np.where(np.isnan(v), np.inf, -v if order == "highest" else v)
    return np.argsort(key, kind="stable").astype(np.int64)


def removal_curve(
    values: Any,
    model_fn: Callable[[], Any],
    train: Any,
    test: Any,
    *,
    fractions: Sequence[float] = (0.0, 0.1, 0.2, 0.3, 0.4),
    orders: Sequence[str] = ("highest", "lowest"),
    runs: int = 3,
    store_path: str | os.PathLike[str] | None = None,
    seed: int = 0,
    **train_kwargs: Any,
) -> pl.DataFrame:
    """Test accuracy after removing the highest- or lowest-valued fractions of the training set.

    Parameters
    ----------
    values : array-like of float, shape (N,), or mapping of str to such arrays
        The valuation(s) to evaluate (a Banzhaf value, Data-OOB, KNN-Shapley, memorization,
        any per-example score); a mapping gives one curve per name, all trained together.
    model_fn : callable
        Builds a fresh ``torch.nn.Module`` (as :func:`memscore.train.train_runs`).
    train, test : tuple of arrays / tensors, or torch Dataset
        ``(inputs, labels)``: the N training examples the values are about, and the test
        set that measures accuracy (required).
    fractions : sequence of float, default (0, 0.1, 0.2, 0.3, 0.4)
        Fractions removed, each in [0, 1) (``round(x * N)`` examples, at least one kept).
    orders : sequence of {"highest", "lowest", "random"}, default ("highest", "lowest")
        Which examples go first (see :func:`removal_order`).
    runs : int, default 3
        Training runs per point (different initializations and batch orders).
    store_path : str or os.PathLike, optional
        The run store holding the curve's runs (created if missing; a store of the same
        curve is resumed). Default: a temporary store, deleted afterwards.
    seed : int, default 0
        Seed of the runs (and of the ``"random"`` order).
    **train_kwargs
        Passed to :func:`memscore.train.train_runs` (``epochs``, ``batch_size``, ``lr``
        are required there; ``progress``, ``ensemble``, ``device``, ...).

    Returns
    -------
    polars.DataFrame
        One row per (valuation, order, fraction): ``valuation`` (str; ``"value"`` for a
        single array), ``order`` (str), ``fraction`` (float64), ``removed`` (int64),
        ``runs`` (int64), ``test_accuracy`` (float64, the mean over the runs) and
        ``test_accuracy_std`` (float64, ddof=1; NaN with one run).

    Raises
    ------
    TypeError, ValueError
        Values of the wrong length or type, fractions outside [0, 1), an unknown order,
        ``test`` missing, or what :func:`memscore.train.train_runs` refuses.
    StoreError
        ``store_path`` holds runs of another curve.

    Examples
    --------
    >>> from memscore.datasets import modular_arithmetic
    >>> from memscore.train import mlp
    >>> d = modular_arithmetic(p=7, seed=0)
    >>> curve = removal_curve(d.corrupted.astype(float), lambda: mlp(d.n_features, d.n_classes, width=8),
    ...                       (d.x_train, d.y_train), (d.x_test, d.y_test), fractions=[0, 0.1], runs=2,
    ...                       epochs=2, batch_size=8, lr=0.05, progress=False)  # doctest: +SKIP
    >>> curve.columns  # doctest: +SKIP
    ['valuation', 'order', 'fraction', 'removed', 'runs', 'test_accuracy', 'test_accuracy_std']
    """
    from ..train import SubsetPlan, create_store, train_runs
    from ..train.config import _as_xy

    if test is None:
        raise ValueError("test: a removal curve measures test accuracy; pass (inputs, labels) of a test set")
    named = dict(values) if isinstance(values, Mapping) else {"value": values}
    if not named:
        raise ValueError("values: expected at least one valuation, got an empty mapping")
    n = int(_as_xy(train, "train")[1].shape[0])
    fr = [check_float(x, "fractions[]", 0.0, 1.0, high_open=True) for x in fractions]
    if not fr:
        raise ValueError("fractions: expected at least one fraction")
    ords = [check_choice(o, "orders[]", REMOVAL_ORDERS) for o in orders]
    if not ords:
        raise ValueError(f"orders: expected at least one of {list(REMOVAL_ORDERS)}")
    runs = check_int(runs, "runs", 1)
    seed = check_int(seed, "seed", 0)

    points: list[tuple[str, str, float, int]] = []
    rows: dict[bytes, int] = {}  # a training subset -> its index among the distinct subsets
    subsets: list[npt.NDArray[np.bool_]] = []
    which: list[int] = []
    for name, v in named.items():
        if to_numpy(v, f"values[{name!r}]").shape != (n,):
            raise ValueError(f"values[{name!r}]: expected one value per training example, shape ({n},)")
        for o in ords:
            ranked = removal_order(v, o, seed=seed)
            for x in fr:
                k = min(int(round(x * n)), n - 1)
                keep = np.ones(n, dtype=np.bool_)
                keep[ranked[:k]] = False
                which.append(rows.setdefault(keep.tobytes(), len(subsets)))
                if which[-1] == len(subsets):
                    subsets.append(keep)
                points.append((str(name), o, float(x), k))
    # run j * runs + t is the t-th run on distinct subset j
    plan = SubsetPlan.from_masks(np.repeat(np.array(subsets), runs, axis=0), seed=seed)
    with tempfile.TemporaryDirectory(prefix="memscore-removal-") as tmp:
        path = Path(store_path) if store_path is not None else Path(tmp) / "store"
        store = RunStore.open(path) if (path / "manifest.json").is_file() else create_store(path, train, test)
        try:
            train_runs(model_fn, train, test, plan, store, seed=seed, **train_kwargs)
        except StoreError as exc:
            raise StoreError(f"{exc} (store_path holds runs of another removal curve)") from exc
        store.refresh()
        mine = set(plan.run_ids)
        ids = [rid for rid in store.run_ids() if rid in mine]
        if ids != plan.run_ids:  # pragma: no cover - train_runs trains every run of the plan
            raise StoreError(f"{path}: {len(plan.run_ids) - len(ids)} runs of the curve are missing")
        acc = store.outcomes("test", "correct").mean(axis=1)[[store.run_ids().index(r) for r in plan.run_ids]]
    per = acc.reshape(len(subsets), runs)
    mean = per.mean(axis=1)
    std = per.std(axis=1, ddof=1) if runs > 1 else np.full(len(subsets), np.nan)
    return pl.DataFrame(
        {
            "valuation": [p[0] for p in points],
            "order": [p[1] for p in points],
            "fraction": [p[2] for p in points],
            "removed": [p[3] for p in points],
            "runs": [runs] * len(points),
            "test_accuracy": mean[which],
            "test_accuracy_std": std[which],
        },
        schema={
            "valuation": pl.String,
            "order": pl.String,
            "fraction": pl.Float64,
            "removed": pl.Int64,
            "runs": pl.Int64,
            "test_accuracy": pl.Float64,
            "test_accuracy_std": pl.Float64,
        },
    )


def write_removal_curve(table: pl.DataFrame, store: RunStore | str | os.PathLike[str]) -> Path:
    """Write a :func:`removal_curve` table into a store's directory (atomically), where
    ``memscore report`` plots it.

    Parameters
    ----------
    table : polars.DataFrame
        A :func:`removal_curve` result.
    store : RunStore or path
        The store (or any directory) whose report shows the curve.

    Returns
    -------
    pathlib.Path
        ``<store>/removal.parquet``.

    Raises
    ------
    TypeError
        ``table`` is not a DataFrame.
    ValueError
        ``table`` lacks the columns the plot needs.
    """
    if not isinstance(table, pl.DataFrame):
        raise TypeError(f"table: expected a polars.DataFrame from removal_curve, got {type(table).__name__}")
    need = {"valuation", "order", "fraction", "test_accuracy"}
    if not need <= set(table.columns):
        raise ValueError(f"table: expected the columns of removal_curve, missing {sorted(need - set(table.columns))}")
    path = (store.path if isinstance(store, RunStore) else Path(store)) / REMOVAL_FILE
    atomic_write(path, lambda f: table.write_parquet(f))
    return path
