"""Analyses across runs and model sizes: memorization trajectories, proxy correlations,
and ensemble disagreement as an estimate of test error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import polars as pl

from .._stats import spearman, spearman_pvalue
from .._validate import ArrayLike, check_class_labels, check_float, check_int, to_numpy

if TYPE_CHECKING:  # pragma: no cover
    from .store import RunStore

__all__ = ["trajectories", "proxy_table", "spearman", "disagreement", "Disagreement", "TRAJECTORY_KINDS"]

F64 = npt.NDArray[np.float64]

#: The trajectory classes of :func:`trajectories`.
TRAJECTORY_KINDS = ("flat", "increasing", "decreasing", "cap", "dip", "other")


def trajectories(mem_by_size: Mapping[Any, Any] | Sequence[Any] | np.ndarray, *, tol: float = 0.1) -> pl.DataFrame:
    """Classify each example's memorization across model sizes (Lukasik et al. 2023).

    Each example gets one of :data:`TRAJECTORY_KINDS`:

    * ``flat``: max − min < ``tol``;
    * ``cap``: the maximum lies strictly inside the size range and exceeds the scores of
      both the smallest and the largest model by ``tol`` or more (rises, then falls: what
      Lukasik et al. find for many examples as models grow);
    * ``dip``: the mirror image, an interior minimum ``tol`` below both ends;
    * ``increasing`` / ``decreasing``: otherwise, last − first ≥ ``tol`` / ≤ −``tol``;
    * ``other``: none of the above (non-monotone changes smaller than ``tol`` overall),
      and examples with a NaN score at any size (null trajectory).

    Parameters
    ----------
    mem_by_size : dict, sequence of arrays, or ndarray of shape (S, N)
        Memorization scores ordered from the smallest to the largest model: a dict
        ``{size: (N,) scores}`` (ordered by sorted size), a sequence of (N,) arrays, or an
        (S, N) array; S >= 2.
    tol : float, default 0.1
        The smallest change counted as a change (memorization is in [-1, 1]); > 0.

    Returns
    -------
    polars.DataFrame
        ``index``, ``trajectory`` (str), and one column per size (``mem_<size>``).

    Raises
    ------
    TypeError
        ``tol`` is not a number.
    ValueError
        Fewer than two sizes, arrays of different lengths, ``tol <= 0``.

    Examples
    --------
    >>> import memscore
    >>> memscore.trajectories([[0.0, 0.5], [0.0, 0.9]])["trajectory"].to_list()
    ['flat', 'increasing']
    """
    if isinstance(mem_by_size, Mapping):
        keys = sorted(mem_by_size)
        names = [f"mem_{k}" for k in keys]
        rows = [np.asarray(to_numpy(mem_by_size[k], f"mem_by_size[{k!r}]"), dtype=np.float64) for k in keys]
    else:
        rows = [np.asarray(to_numpy(r, "mem_by_size[]"), dtype=np.float64) for r in mem_by_size]
        names = [f"mem_{i}" for i in range(len(rows))]
    if len(rows) < 2:
        raise ValueError(f"mem_by_size: expected scores for at least 2 model sizes, got {len(rows)}")
    if any(r.ndim != 1 or r.shape != rows[0].shape for r in rows):
        raise ValueError(f"mem_by_size: expected (N,) arrays of one length, got shapes {[r.shape for r in rows]}")
    check_float(tol, "tol", 0.0, low_open=True)
    m = np.stack(rows)  # (S, N)
    first, last = m[0], m[-1]
    hi, lo = m.max(0), m.min(0)
    interior = m[1:-1] if m.shape[0] > 2 else np.full((1, m.shape[1]), np.nan)
    with np.errstate(invalid="ignore"):
        imax = np.nanmax(interior, 0) if m.shape[0] > 2 else np.full(m.shape[1], -np.inf)
        imin = np.nanmin(interior, 0) if m.shape[0] > 2 else np.full(m.shape[1], np.inf)
        kind = np.full(m.shape[1], "other", dtype=object)
        kind[last - first <= -tol] = "decreasing"
        kind[last - first >= tol] = "increasing"
        kind[(imin <= first - tol) & (imin <= last - tol)] = "dip"
        kind[(imax >= first + tol) & (imax >= last + tol)] = "cap"
        kind[hi - lo < tol] = "flat"
    kind[np.isnan(m).any(0)] = None
    cols = [
        pl.Series("index", np.arange(m.shape[1], dtype=np.int64)),
        pl.Series("trajectory", kind.tolist(), dtype=pl.String),
    ]
    cols += [pl.Series(name, row, dtype=pl.Float64) for name, row in zip(names, rows, strict=True)]
    return pl.DataFrame(cols)


# The proxies of proxy_table: (column in store.scores(), description, sign note).
_PROXIES = (
    ("holdout_accuracy", "hold-out accuracy (C-score)"),
    ("el2n", "EL2N (Paul et al. 2021)"),
    ("grand", "GraNd (Paul et al. 2021)"),
    ("loss", "final training loss"),
    ("forgetting_events", "forgetting events (Toneva et al. 2019)"),
    ("never_learned", "never learned (fraction of runs)"),
    ("learning_speed", "learning speed (mean snapshot accuracy)"),
    ("phi_mean_in", "confidence when trained on (mean phi)"),
)


def proxy_table(store: RunStore | pl.DataFrame, *, scores: pl.DataFrame | None = None) -> pl.DataFrame:
    """Spearman correlation between memorization and each cheaper proxy of it.

    Parameters
    ----------
    store : RunStore or polars.DataFrame
        A :class:`~memscore.RunStore`, or a table like ``store.scores()``.
    scores : polars.DataFrame, optional
        A precomputed ``store.scores()`` table (saves a pass over the runs).

    Returns
    -------
    polars.DataFrame
        ``proxy``, ``description``, ``spearman`` (float64), ``p_value`` (float64; NaN
        without scipy) and ``n`` (examples where both are defined); proxies the store does
        not have (no snapshots, say) are left out.

    Raises
    ------
    ValueError
        The table has no ``memorization`` column.

    Examples
    --------
    >>> import polars as pl, memscore
    >>> df = pl.DataFrame({"memorization": [0.1, 0.5, 0.9], "el2n": [0.2, 0.4, 0.8]})
    >>> memscore.proxy_table(df)["spearman"].to_list()
    [1.0]
    """
    if isinstance(store, pl.DataFrame):
        df = store
    else:
        df = scores if scores is not None else store.scores()
    if "memorization" not in df.columns:
        raise ValueError("proxy_table: expected a table with a 'memorization' column (store.scores())")
    mem = df["memorization"].to_numpy().astype(np.float64)
    rows = []
    for col, desc in _PROXIES:
        if col not in df.columns or df[col].null_count() == df.height:
            continue
        vals = df[col].fill_null(np.nan).to_numpy().astype(np.float64)
        if not np.isfinite(vals).any():
            continue  # not recorded (e.g. GraNd without grand=True)
        rho, n = spearman(mem, vals)
        rows.append({"proxy": col, "description": desc, "spearman": rho, "p_value": spearman_pvalue(rho, n), "n": n})
    schema = {
        "proxy": pl.String,
        "description": pl.String,
        "spearman": pl.Float64,
        "p_value": pl.Float64,
        "n": pl.Int64,
    }
    return pl.DataFrame(rows, schema=schema)


@dataclass(frozen=True)
class Disagreement:
    """Ensemble disagreement on test inputs (Jiang, Nagarajan et al. 2022).

    Attributes
    ----------
    disagreement : float
        Mean over test examples of the fraction of pairs of runs that predict different
        classes, the estimate of test error.
    test_error : float
        Mean test error of the runs (NaN without labels).
    gap : float
        ``disagreement - test_error``.
    cace : float
        Class-aggregated calibration error of the ensemble's vote shares (NaN without
        labels); the paper shows ``|gap| <= CACE``.
    per_example : ndarray of float64, shape (T,)
        Disagreement on each test example.
    """

    disagreement: float
    test_error: float
    gap: float
    cace: float
    per_example: F64

    def as_dict(self) -> dict[str, float]:
        """The four headline numbers (JSON-ready).

        Returns
        -------
        dict of str to float
        """
        return {"disagreement": self.disagreement, "test_error": self.test_error, "gap": self.gap, "cace": self.cace}


def disagreement(
    test_predictions: ArrayLike,
    labels: ArrayLike | None = None,
    *,
    n_classes: int | None = None,
    n_bins: int | None = None,
) -> Disagreement:
    """Mean pairwise disagreement between runs on test inputs, beside the actual error.

    The disagreement of runs r ≠ s is P_x[h_r(x) ≠ h_s(x)]; averaged over all pairs it is
    ``1 − Σ_c n_c (n_c − 1) / (R (R − 1))`` per example, with n_c the number of runs
    predicting class c. CACE = Σ_c Σ_bins (|bin| / T) · |mean(1[y = c]) − mean(share_c)|
    over bins of the ensemble's vote share for class c.

    Parameters
    ----------
    test_predictions : array-like, shape (R, T) of int or (R, T, C) of float
        Predicted classes, or logits / probabilities (their argmax is taken, ties toward
        the lower class); R >= 2.
    labels : array-like of int, shape (T,), optional
        True classes in ``[0, n_classes)``; gives ``test_error``, ``gap`` and ``cace``.
    n_classes : int, optional
        Number of classes (default: C of the scores, else inferred from the data).
    n_bins : int, optional
        Bins of vote share for CACE (default: one bin per possible share, ``R + 1``, up to
        20 equal-width bins).

    Returns
    -------
    Disagreement

    Raises
    ------
    TypeError
        Non-integer classes or labels, non-integer ``n_classes`` / ``n_bins``.
    ValueError
        Fewer than 2 runs, no test examples, negative classes, predictions or labels out
        of range for ``n_classes`` (or the C columns of the scores), non-finite scores.

    Examples
    --------
    >>> import numpy as np, memscore
    >>> preds = np.array([[0, 1], [0, 0]])
    >>> memscore.disagreement(preds, np.array([0, 1])).as_dict()["disagreement"]
    0.5
    """
    p = to_numpy(test_predictions, "test_predictions")
    if p.ndim == 3:
        if not np.issubdtype(p.dtype, np.floating):
            raise TypeError(f"test_predictions: expected (R, T, C) float scores, got dtype {p.dtype}")
        if not np.isfinite(p).all():
            raise ValueError("test_predictions: (R, T, C) scores contain NaN or infinite values")
        c_from = p.shape[2]
        p = p.argmax(axis=2)
    elif p.ndim == 2:
        if not np.issubdtype(p.dtype, np.integer):
            raise TypeError(
                f"test_predictions: expected (R, T) integer classes or (R, T, C) scores, got dtype {p.dtype}"
            )
        c_from = None
    else:
        raise ValueError(f"test_predictions: expected shape (R, T) or (R, T, C), got {p.shape}")
    r, t = p.shape
    if r < 2:
        raise ValueError(f"test_predictions: disagreement needs at least 2 runs, got {r}")
    if t == 0:
        raise ValueError("test_predictions: no test examples")
    if p.min() < 0:
        raise ValueError("test_predictions: classes must be non-negative")
    if n_classes is not None:
        check_int(n_classes, "n_classes", 1)
    if n_bins is not None:
        check_int(n_bins, "n_bins", 1)
    c = int(n_classes or c_from or int(p.max()) + 1)
    y = None
    if labels is not None:
        y = np.asarray(to_numpy(labels, "labels"))
        if y.shape != (t,):
            raise ValueError(f"labels: expected shape ({t},) (one class per test example), got {y.shape}")
        # Negative labels would index the last class; labels >= n_classes have no column.
        check_class_labels(y, "labels", None if n_classes is None and c_from is None else c)
        c = max(c, int(y.max()) + 1)
    if int(p.max()) >= c:
        raise ValueError(f"test_predictions: class {int(p.max())} is out of range for n_classes = {c}")
    counts = np.zeros((t, c), dtype=np.int64)
    for row in p:  # R passes of a scatter-add: memory (T, C), not (R, T, C)
        np.add.at(counts, (np.arange(t), row), 1)
    per_ex = 1.0 - (counts * (counts - 1)).sum(1) / (r * (r - 1))
    dis = float(per_ex.mean())
    if y is None:
        nan = float("nan")
        return Disagreement(dis, nan, nan, nan, per_ex)
    err = float((p != y[None, :]).mean())
    share = counts / r  # (T, C)
    bins = n_bins if n_bins is not None else min(r + 1, 20)
    # Shares are multiples of 1/R: with R + 1 bins each possible share has its own bin.
    b = np.minimum((share * bins).astype(np.int64), bins - 1) if bins != r + 1 else counts
    onehot = np.zeros((t, c))
    onehot[np.arange(t), y] = 1.0
    cace = 0.0
    for k in range(c):
        nb = np.bincount(b[:, k], minlength=bins + 1)
        acc = np.bincount(b[:, k], weights=onehot[:, k], minlength=bins + 1)
        conf = np.bincount(b[:, k], weights=share[:, k], minlength=bins + 1)
        used = nb > 0
        cace += float(np.abs(acc[used] - conf[used]).sum()) / t
    return Disagreement(dis, err, dis - err, cace, per_ex)
