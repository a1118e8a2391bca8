"""Bootstrap intervals of membership metrics (ROC AUC, TPR at a fixed FPR).

A membership evaluation pools trials ``(run r, example i)``; two sources of chance make
its numbers move:

- **examples**: which examples the study drew. The ``"examples"`` interval resamples
  examples with replacement and keeps every run's trial of a drawn example together (a
  whole column of the ``(R, N)`` scores), so examples that are easy in every run count as
  one draw, not R.
- **runs**: which training runs (targets) were trained. The ``"runs"`` interval resamples
  runs with replacement, each with all its examples (a whole row).

Both are percentile intervals of ``n_boot`` bootstrap replicates. They are vectorized: the
trials are sorted by score once, and replicate b is the same ROC with every trial weighted
by how often its example (or run) was drawn, so ties, the ROC points and the AUC trapezoid
are exactly those of :func:`memscore.membership_metrics` on the resampled trials. A
replicate that lost every member or every non-member is left out of the quantiles (NaN when
all are).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

__all__ = ["UNITS", "bootstrap_metrics"]

#: What an interval resamples, in the order they are reported.
UNITS = ("examples", "runs")

#: Trials x replicates held in memory at once (float64 cumulative sums): 32 MB.
_CHUNK = 4_000_000


def bootstrap_metrics(
    sorted_members: npt.NDArray[np.bool_],
    last: I64,
    unit_of_trial: I64,
    n_units: int,
    levels: tuple[float, ...],
    *,
    ci: float,
    n_boot: int,
    rng: np.random.Generator,
) -> tuple[tuple[float, float], dict[float, tuple[float, float]]]:
    """Percentile intervals of the AUC and of TPR at each FPR level.

    Parameters
    ----------
    sorted_members : ndarray of bool, shape (n,)
        Membership of the trials, sorted by score descending (NaN scores already dropped).
    last : ndarray of int64
        Index of the last trial of each run of equal scores (one ROC point each).
    unit_of_trial : ndarray of int64, shape (n,)
        The unit (example or run, ``0..n_units-1``) each sorted trial belongs to.
    n_units : int
        Units resampled (all of them, even those whose trials are all NaN, so that a
        replicate draws as many units as the study had).
    levels : tuple of float
        FPR levels.
    ci : float
        Coverage of the interval, in (0, 1).
    n_boot : int
        Bootstrap replicates.
    rng : numpy.random.Generator

    Returns
    -------
    (lo, hi) of the AUC, and ``{level: (lo, hi)}`` of TPR at each FPR level.
    """
    aucs = np.empty(n_boot)
    rates = np.empty((len(levels), n_boot))
    for start, stop in _chunks(n_boot, sorted_members.size):
        b = stop - start
        # how often each unit is drawn in each replicate (n_units draws with replacement);
        # a trial weighs what its unit does. Integer counts: the cumulative sums are exact.
        draws = rng.integers(0, n_units, (b, n_units)) + (np.arange(b) * n_units)[:, None]
        counts = np.bincount(draws.ravel(), minlength=b * n_units).reshape(b, n_units).astype(np.int32)
        w = counts[:, unit_of_trial]
        tp = np.cumsum(w * sorted_members, axis=1, dtype=np.int64)[:, last]
        fp = np.cumsum(w, axis=1, dtype=np.int64)[:, last] - tp
        n_pos, n_neg = tp[:, -1:], fp[:, -1:]
        ok = (n_pos[:, 0] > 0) & (n_neg[:, 0] > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            tpr = np.hstack([np.zeros((b, 1)), tp / n_pos])
            fpr = np.hstack([np.zeros((b, 1)), fp / n_neg])
        auc = np.sum(np.diff(fpr, axis=1) * (tpr[:, 1:] + tpr[:, :-1]) / 2.0, axis=1)
        aucs[start:stop] = np.where(ok, auc, np.nan)
        for j, f in enumerate(levels):
            # FPR and TPR rise together along the curve: the largest TPR with FPR <= f is
            # the one at the last such point
            at = np.maximum((fpr <= f).sum(axis=1) - 1, 0)
            rates[j, start:stop] = np.where(ok, tpr[np.arange(b), at], np.nan)
    q = ((1.0 - ci) / 2.0, (1.0 + ci) / 2.0)
    return _quantiles(aucs, q), {f: _quantiles(rates[j], q) for j, f in enumerate(levels)}


def _chunks(n_boot: int, n_trials: int) -> Iterator[tuple[int, int]]:
    """Replicate ranges whose weight matrices stay under ``_CHUNK`` entries."""
    step = max(1, _CHUNK // max(1, n_trials))
    for start in range(0, n_boot, step):
        yield start, min(start + step, n_boot)


def _quantiles(values: F64, q: tuple[float, float]) -> tuple[float, float]:
    """The ``q`` quantiles of the finite replicates (NaN, NaN when there is none)."""
    v = values[np.isfinite(values)]
    if v.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(v, q)
    return float(lo), float(hi)
