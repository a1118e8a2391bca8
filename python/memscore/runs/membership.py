"""Membership inference from the runs: LiRA scores (Carlini et al. 2022) and the metrics of
an attack (AUC, TPR at low FPR)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import _core
from .._validate import (
    MAX_BOOT,
    ArrayLike,
    RunsLike,
    as_mask,
    as_outcomes,
    check_bool,
    check_float,
    check_int,
    check_real,
    check_runs,
    check_summable,
    to_numpy,
)
from .membership_intervals import UNITS, bootstrap_metrics
from .references import score_with_references

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

__all__ = ["MembershipMetrics", "lira", "membership_metrics"]


def lira(
    masks: RunsLike,
    phi: ArrayLike,
    *,
    online: bool = True,
    fixed_variance: bool = False,
    references: int | None = None,
    seed: int = 0,
) -> F64:
    """LiRA membership scores (Carlini et al. 2022), higher = more likely a member.

    Every run in turn is the target; its shadow models are all *other* runs (exact
    leave-one-out: the target never shadows itself). For example i, ``mu`` is the median
    and ``sigma`` the population standard deviation of ``phi`` over the shadows that did
    (in) or did not (out) train on i, with sigma floored at 1e-12.

    - online: ``log N(phi; mu_in, sigma_in) - log N(phi; mu_out, sigma_out)``;
    - offline (``online=False``): ``log Phi((phi - mu_out) / sigma_out)``;
    - ``fixed_variance``: one sigma per side and target, pooled over all examples
      (``sqrt(sum_i SS_i / sum_i n_i)``, within-example population variance).

    With ``references=k`` the shadows of each target and example are k seeded runs that
    held it out (and online k that trained on it) instead of all other runs
    (:mod:`memscore.runs.references`); fixed variance then pools over those.

    Parameters
    ----------
    masks : array-like of bool, shape (R, N)
        Membership of each run.
    phi : array-like of float, shape (R, N) or (R, N, K)
        Confidences, e.g. from :func:`logit_confidence` (bool is refused: a 0/1 outcome has
        no Gaussian to fit). With K views per example (augmented queries: the example
        flipped, shifted, ...), each view gets its own Gaussians and the score is the sum
        of the K per-view scores.
    online : bool, default True
        Fit both the in and the out distribution (else only out).
    fixed_variance : bool, default False
        Pool sigma over examples.
    references : int, optional
        Shadow runs per example and side (>= 1); None (default): every other run.
    seed : int, default 0
        Which runs serve as the ``references`` (ignored without them).

    Returns
    -------
    ndarray of float64, shape (R, N)
        NaN where a needed side has no shadow run.

    Raises
    ------
    TypeError
        Bool or non-numeric ``phi``; non-bool flags.
    ValueError
        Shapes disagree; NaN, infinite or overflowing ``phi``; ``references`` larger than
        some example's runs on a side allow (the message names the example and counts).

    Examples
    --------
    >>> import numpy as np, memscore
    >>> masks = np.array([[1, 0], [0, 1], [1, 0], [0, 1]], dtype=bool)
    >>> memscore.lira(masks, np.where(masks, 2.0, -2.0), online=False).shape
    (4, 2)
    """
    views = _phi_views(phi)
    if views is not None:
        # Augmented queries (Carlini et al. 2022, Sec. 5.3): one Gaussian pair per view; the
        # views' log-likelihood ratios (offline: log-probabilities) add up.
        # The same seed gives every view the same references.
        kw: dict[str, Any] = {
            "online": online,
            "fixed_variance": fixed_variance,
            "references": references,
            "seed": seed,
        }
        total = lira(masks, views[0], **kw)
        for v in views[1:]:
            total += lira(masks, v, **kw)
        return total
    on = check_bool(online, "online")
    fixed = check_bool(fixed_variance, "fixed_variance")
    m = as_mask(masks, packed=True)
    p = as_outcomes(phi, "phi")
    if p.dtype == np.bool_:
        raise TypeError("phi: expected float confidences (e.g. from logit_confidence), got dtype bool")
    check_runs(m, p, "phi", same_cols=True)
    check_summable(p, "phi", m.shape[0], squares=True)
    values = np.ascontiguousarray(p, dtype=np.float64)
    if references is not None:
        k = check_int(references, "references", 1)

        def kernel(vm: npt.NDArray[np.bool_], vp: F64, _: F64 | None) -> F64:
            bits = as_mask(vm, packed=True)
            got: F64 = _core.lira_scores(bits.bits, np.ascontiguousarray(vp), bits.n, online=on, fixed_variance=fixed)
            return got

        sd = check_int(seed, "seed", 0)
        return score_with_references(kernel, m.unpack(), values, None, k, online=on, seed=sd, name="lira")
    out: F64 = _core.lira_scores(m.bits, values, m.n, online=on, fixed_variance=fixed)
    return out


def _phi_views(phi: ArrayLike) -> list[Any] | None:
    """The K (R, N) views of a 3-D ``phi``; None for anything else (checked as 2-D)."""
    a: Any = phi
    if isinstance(phi, (list, tuple)):
        try:
            a = np.asarray(phi, dtype=np.float64)
        except (TypeError, ValueError):
            return None  # reported by the 2-D checks
    if getattr(a, "ndim", None) != 3:
        return None
    k = int(a.shape[2])
    if k == 0:
        raise ValueError("phi: expected (R, N) or (R, N, K) confidences with K >= 1 views, got K = 0")
    return [a[:, :, i] for i in range(k)]


@dataclass(frozen=True)
class MembershipMetrics:
    """How well membership scores separate members from non-members.

    Attributes
    ----------
    auc : float
        ROC AUC (ties count one half); NaN without both members and non-members.
    tpr_at_fpr : dict of float to float
        The largest TPR among ROC points whose FPR is at most each level.
    fpr, tpr : ndarray of float64
        The ROC curve, from (0, 0) to (1, 1).
    ci : float or None
        Coverage of :attr:`intervals` (None: no intervals were asked for).
    intervals : dict
        ``intervals[unit][metric] = (lo, hi)``: bootstrap percentile intervals, ``unit``
        ``"examples"`` (examples resampled, each with all its runs) or ``"runs"`` (runs
        resampled, each with all its examples; only for 2-D scores), ``metric`` ``"auc"``
        or ``"tpr_at_fpr_<level>"``. Empty when ``ci`` is None.
    """

    auc: float
    tpr_at_fpr: dict[float, float]
    fpr: F64
    tpr: F64
    ci: float | None = None
    intervals: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, float]:
        """``{"auc": ..., "tpr_at_fpr_<level>": ...}`` (JSON-ready), and with intervals
        ``"<metric>_<unit>_lo"`` / ``"<metric>_<unit>_hi"`` beside each.

        Returns
        -------
        dict of str to float
        """
        out = {"auc": self.auc}
        out.update({f"tpr_at_fpr_{f:g}": v for f, v in self.tpr_at_fpr.items()})
        for unit, metrics in self.intervals.items():
            for name, (lo, hi) in metrics.items():
                out[f"{name}_{unit}_lo"] = lo
                out[f"{name}_{unit}_hi"] = hi
        return out


def membership_metrics(
    scores: ArrayLike,
    masks: RunsLike,
    *,
    fpr_levels: tuple[float, ...] = (0.001, 0.01, 0.1),
    ci: float | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> MembershipMetrics:
    """ROC AUC and TPR at low FPR of membership scores (the LiRA evaluation), with
    bootstrap intervals on request.

    Every (run, example) pair is one trial: a member when ``masks`` is True. NaN scores
    are dropped. AUC counts ties as one half; TPR at FPR f is the largest TPR among ROC
    points whose FPR is at most f.

    With ``ci``, :attr:`MembershipMetrics.intervals` holds percentile intervals of every
    metric from ``n_boot`` seeded bootstrap replicates (:mod:`memscore.runs.membership_intervals`):

    - ``"examples"`` resamples examples with replacement, every run's trial of a drawn
      example together (for 2-D ``(R, N)`` scores the columns; for 1-D scores each entry is
      an example): the chance in which examples were studied;
    - ``"runs"`` (2-D or higher scores only, axis 0 the runs) resamples runs with
      replacement, each with all its examples: the chance in which models were trained.

    A TPR at an FPR level below ``1 / n_non-members`` rests on the few highest-scoring
    non-members; its interval is only as good as that tail (give the level enough trials).

    Parameters
    ----------
    scores : array-like of real numbers
        Membership scores, higher = more likely a member (any shape).
    masks : array-like of bool, same shape as ``scores``
        True for members.
    fpr_levels : tuple of float, default (0.001, 0.01, 0.1)
        FPR levels for ``tpr_at_fpr``, each in [0, 1].
    ci : float, optional
        Coverage of the bootstrap intervals, in (0, 1) (e.g. 0.95); None (default): none.
    n_boot : int, default 1000
        Bootstrap replicates (1 to 100,000), used with ``ci``.
    seed : int, default 0
        Seed of the bootstrap.

    Returns
    -------
    MembershipMetrics

    Raises
    ------
    TypeError
        ``scores`` are not real numbers (strings, complex, objects), ``masks`` not bool.
    ValueError
        Shapes differ; a level outside [0, 1]; ``ci`` outside (0, 1); ``n_boot < 1``.

    Examples
    --------
    >>> import numpy as np, memscore
    >>> memscore.membership_metrics(np.array([0.9, 0.1]), np.array([True, False])).auc
    1.0
    >>> rng = np.random.default_rng(0)
    >>> members = rng.random((8, 50)) < 0.5
    >>> m = memscore.membership_metrics(members + rng.normal(size=(8, 50)), members, ci=0.9, n_boot=200)
    >>> lo, hi = m.intervals["runs"]["auc"]
    >>> bool(lo < m.auc < hi)
    True
    """
    sa = to_numpy(scores, "scores")
    check_real(sa, "scores")
    levels = tuple(check_float(f, "fpr_levels[]", 0.0, 1.0) for f in fpr_levels)
    level = None if ci is None else check_float(ci, "ci", 0.0, 1.0, low_open=True, high_open=True)
    boots = check_int(n_boot, "n_boot", 1, MAX_BOOT)
    check_int(seed, "seed", 0)
    shape = np.shape(sa)
    s = np.asarray(sa, dtype=np.float64).ravel()
    m = as_mask(masks, ndim=np.ndim(to_numpy(masks, "masks"))).ravel()
    if s.shape != m.shape:
        raise ValueError(f"scores and masks must have the same shape, got {np.shape(scores)} and {np.shape(masks)}")
    keep = ~np.isnan(s)
    s, m = s[keep], m[keep]
    trials = np.flatnonzero(keep)
    n_pos, n_neg = int(m.sum()), int((~m).sum())
    if n_pos == 0 or n_neg == 0:
        nan = float("nan")
        empty = {f: nan for f in levels}
        if level is None:
            return MembershipMetrics(nan, empty, np.array([0.0]), np.array([0.0]))
        none = {unit: {k: (nan, nan) for k in _metric_names(levels)} for unit in _units(shape)}
        return MembershipMetrics(nan, empty, np.array([0.0]), np.array([0.0]), level, none)
    order = np.argsort(-s, kind="stable")
    s, m, trials = s[order], m[order], trials[order]
    # One ROC point per distinct threshold (the last index of each run of equal scores).
    # (`!=`, not np.diff: inf − inf is NaN, which would split a tie of infinite scores)
    last = np.r_[np.nonzero(s[1:] != s[:-1])[0], s.size - 1]
    tp = np.cumsum(m)[last]
    fp = np.cumsum(~m)[last]
    tpr = np.r_[0.0, tp / n_pos]
    fpr = np.r_[0.0, fp / n_neg]
    # Trapezoid rule, written out (np.trapz is gone in numpy 2, np.trapezoid new in it).
    auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))
    rates = {f: float(tpr[fpr <= f].max()) for f in levels}
    if level is None:
        return MembershipMetrics(auc, rates, fpr, tpr)
    rng = np.random.default_rng(seed)
    intervals = {}
    for unit in _units(shape):
        # trial t of the raveled scores is run t // n_cols, example t % n_cols (1-D: example t)
        n_cols = int(np.prod(shape[1:])) if len(shape) >= 2 else keep.size
        unit_of = trials % n_cols if unit == "examples" else trials // n_cols
        n_units = n_cols if unit == "examples" else int(shape[0])
        auc_ci, rate_ci = bootstrap_metrics(m, last, unit_of, n_units, levels, ci=level, n_boot=boots, rng=rng)
        names = _metric_names(levels)
        intervals[unit] = dict(zip(names, [auc_ci, *(rate_ci[f] for f in levels)], strict=True))
    return MembershipMetrics(auc, rates, fpr, tpr, level, intervals)


def _units(shape: tuple[int, ...]) -> tuple[str, ...]:
    """The intervals scores of this shape get: runs need a run axis."""
    return UNITS if len(shape) >= 2 else UNITS[:1]


def _metric_names(levels: tuple[float, ...]) -> list[str]:
    return ["auc", *(f"tpr_at_fpr_{f:g}" for f in levels)]
