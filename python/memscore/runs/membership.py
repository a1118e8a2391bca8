"""Membership inference from the runs: LiRA scores (Carlini et al. 2022) and the metrics of
an attack (AUC, TPR at low FPR)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import _core
from .._validate import (
    ArrayLike,
    RunsLike,
    as_mask,
    as_outcomes,
    check_bool,
    check_float,
    check_real,
    check_runs,
    check_summable,
    to_numpy,
)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

__all__ = ["MembershipMetrics", "lira", "membership_metrics"]


def lira(masks: RunsLike, phi: ArrayLike, *, online: bool = True, fixed_variance: bool = False) -> F64:
    """LiRA membership scores (Carlini et al. 2022), higher = more likely a member.

    Every run in turn is the target; its shadow models are all *other* runs (exact
    leave-one-out: the target never shadows itself). For example i, ``mu`` is the median
    and ``sigma`` the population standard deviation of ``phi`` over the shadows that did
    (in) or did not (out) train on i, with sigma floored at 1e-12.

    - online: ``log N(phi; mu_in, sigma_in) - log N(phi; mu_out, sigma_out)``;
    - offline (``online=False``): ``log Phi((phi - mu_out) / sigma_out)``;
    - ``fixed_variance``: one sigma per side and target, pooled over all examples
      (``sqrt(sum_i SS_i / sum_i n_i)``, within-example population variance).

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

    Returns
    -------
    ndarray of float64, shape (R, N)
        NaN where a needed side has no shadow run.

    Raises
    ------
    TypeError
        Bool or non-numeric ``phi``; non-bool flags.
    ValueError
        Shapes disagree; NaN, infinite or overflowing ``phi``.

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
        total = lira(masks, views[0], online=online, fixed_variance=fixed_variance)
        for v in views[1:]:
            total += lira(masks, v, online=online, fixed_variance=fixed_variance)
        return total
    on = check_bool(online, "online")
    fixed = check_bool(fixed_variance, "fixed_variance")
    m = as_mask(masks, packed=True)
    p = as_outcomes(phi, "phi")
    if p.dtype == np.bool_:
        raise TypeError("phi: expected float confidences (e.g. from logit_confidence), got dtype bool")
    check_runs(m, p, "phi", same_cols=True)
    check_summable(p, "phi", m.shape[0], squares=True)
    out: F64 = _core.lira_scores(
        m.bits, np.ascontiguousarray(p, dtype=np.float64), m.n, online=on, fixed_variance=fixed
    )
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
    """

    auc: float
    tpr_at_fpr: dict[float, float]
    fpr: F64
    tpr: F64

    def as_dict(self) -> dict[str, float]:
        """``{"auc": ..., "tpr_at_fpr_<level>": ...}`` (JSON-ready).

        Returns
        -------
        dict of str to float
        """
        out = {"auc": self.auc}
        out.update({f"tpr_at_fpr_{f:g}": v for f, v in self.tpr_at_fpr.items()})
        return out


def membership_metrics(
    scores: ArrayLike, masks: RunsLike, *, fpr_levels: tuple[float, ...] = (0.001, 0.01, 0.1)
) -> MembershipMetrics:
    """ROC AUC and TPR at low FPR of membership scores (the LiRA evaluation).

    Every (run, example) pair is one trial: a member when ``masks`` is True. NaN scores
    are dropped. AUC counts ties as one half; TPR at FPR f is the largest TPR among ROC
    points whose FPR is at most f.

    Parameters
    ----------
    scores : array-like of real numbers
        Membership scores, higher = more likely a member (any shape).
    masks : array-like of bool, same shape as ``scores``
        True for members.
    fpr_levels : tuple of float, default (0.001, 0.01, 0.1)
        FPR levels for ``tpr_at_fpr``, each in [0, 1].

    Returns
    -------
    MembershipMetrics

    Raises
    ------
    TypeError
        ``scores`` are not real numbers (strings, complex, objects), ``masks`` not bool.
    ValueError
        Shapes differ; a level outside [0, 1].

    Examples
    --------
    >>> import numpy as np, memscore
    >>> memscore.membership_metrics(np.array([0.9, 0.1]), np.array([True, False])).auc
    1.0
    """
    sa = to_numpy(scores, "scores")
    check_real(sa, "scores")
    levels = tuple(check_float(f, "fpr_levels[]", 0.0, 1.0) for f in fpr_levels)
    s = np.asarray(sa, dtype=np.float64).ravel()
    m = as_mask(masks, ndim=np.ndim(to_numpy(masks, "masks"))).ravel()
    if s.shape != m.shape:
        raise ValueError(f"scores and masks must have the same shape, got {np.shape(scores)} and {np.shape(masks)}")
    keep = ~np.isnan(s)
    s, m = s[keep], m[keep]
    n_pos, n_neg = int(m.sum()), int((~m).sum())
    if n_pos == 0 or n_neg == 0:
        nan = float("nan")
        return MembershipMetrics(nan, {f: nan for f in levels}, np.array([0.0]), np.array([0.0]))
    order = np.argsort(-s, kind="stable")
    s, m = s[order], m[order]
    # One ROC point per distinct threshold (the last index of each run of equal scores).
    last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]
    tp = np.cumsum(m)[last]
    fp = np.cumsum(~m)[last]
    tpr = np.r_[0.0, tp / n_pos]
    fpr = np.r_[0.0, fp / n_neg]
    # Trapezoid rule, written out (np.trapz is gone in numpy 2, np.trapezoid new in it).
    auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))
    rates = {f: float(tpr[fpr <= f].max()) for f in levels}
    return MembershipMetrics(auc, rates, fpr, tpr)
