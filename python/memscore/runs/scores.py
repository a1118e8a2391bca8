"""Per-example scores across training runs (array level).

Every function takes ``masks`` of shape ``(R, N)`` (``masks[r, i]`` is True when run ``r``
trained on example ``i``) and per-run outcomes, bool (correct or not) or float (any
per-example score such as the probability of the true label), as numpy arrays or torch CPU
tensors. Bool outcomes take the bit-packed popcount path in the Rust core; float outcomes a
masked-sum kernel. Scores come back as float64 and are NaN where the estimate is undefined.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt

from .. import _core
from .._validate import (
    ArrayLike,
    RunsLike,
    as_labels,
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
from .bits import PackedBits

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

__all__ = [
    "OutcomeStats",
    "memorization",
    "influence",
    "holdout_accuracy",
    "logit_confidence",
    "lira",
    "membership_metrics",
    "MembershipMetrics",
    "snapshot_outcomes",
]


def _float_outcomes(o: Any) -> F64:
    """Float64 outcomes from validated outcomes (packed bools or float64)."""
    if isinstance(o, PackedBits):
        return np.unpackbits(o.bits, axis=1, count=o.n).astype(np.float64)
    return np.ascontiguousarray(o, dtype=np.float64)


def _core_outcomes(o: Any) -> Any:
    """What the core takes for validated outcomes: packed bytes, or float64 as they are."""
    return o.bits if isinstance(o, PackedBits) else o


@dataclass
class OutcomeStats:
    """Sufficient statistics of an outcome split by membership, per example.

    Counts of runs that did (``n_in``) and did not (``n_out``) train on each example, and
    sums / sums of squares of ``outcome - shift`` over each group. Statistics of disjoint
    sets of runs add up (``a + b``), which is how a :class:`~memscore.RunStore` streams
    over its runs in chunks.
    """

    n_in: npt.NDArray[np.int64]
    n_out: npt.NDArray[np.int64]
    sum_in: F64
    sum_out: F64
    sumsq_in: F64
    sumsq_out: F64
    shift: F64

    @classmethod
    def from_runs(cls, masks: RunsLike, outcomes: RunsLike, *, shift: ArrayLike | None = None) -> OutcomeStats:
        """Statistics of ``outcomes`` split by ``masks``.

        Parameters
        ----------
        masks : array-like of bool, shape (R, N)
            True where run r trained on example i.
        outcomes : array-like of bool or float, shape (R, N)
            Per-run outcomes.
        shift : array-like of float, shape (N,), optional
            Subtracted before summing, keeping sums of squares well conditioned for float
            outcomes; by default the first run's outcome (0 for bool outcomes). Statistics you
            intend to add must share one shift.

        Returns
        -------
        OutcomeStats

        Raises
        ------
        TypeError
            Wrong dtypes.
        ValueError
            Shapes disagree, NaN / infinite / overflowing outcomes, a shift of the wrong shape.

        Examples
        --------
        >>> import numpy as np
        >>> m = np.array([[1, 0], [0, 1]], dtype=bool)
        >>> a = OutcomeStats.from_runs(m, m, shift=np.zeros(2))
        >>> (a + a).n_in.tolist()
        [2, 2]
        """
        m = as_mask(masks, packed=True)
        o = as_outcomes(outcomes, "outcomes", packed=True)
        check_runs(m, o, "outcomes", same_cols=True)
        check_summable(o, "outcomes", m.shape[0])
        return cls._from_checked(m, o, shift)

    @classmethod
    def _from_checked(cls, m: PackedBits, o: PackedBits | F64, shift: ArrayLike | None = None) -> OutcomeStats:
        """:meth:`from_runs` on arrays already checked by ``as_mask`` / ``as_outcomes``."""
        n = m.shape[1]
        if isinstance(o, PackedBits) and shift is None:
            raw = _core.outcome_sums_bool(m.bits, o.bits, n)
            sh = np.zeros(n)
        else:
            o = _float_outcomes(o)
            sh = o[0].copy() if shift is None else np.ascontiguousarray(to_numpy(shift, "shift"), dtype=np.float64)
            if sh.shape != (n,):
                raise ValueError(f"shift: expected shape ({n},), got {sh.shape}")
            raw = _core.outcome_sums_f64(m.bits, o, n, sh)
        n_in, n_out, s_in, s_out, q_in, q_out = raw
        return cls(n_in.astype(np.int64), n_out.astype(np.int64), s_in, s_out, q_in, q_out, sh)

    def __add__(self, other: OutcomeStats) -> OutcomeStats:
        if self.n_in.shape != other.n_in.shape:
            raise ValueError(f"cannot add statistics of {self.n_in.size} and {other.n_in.size} examples")
        if not np.array_equal(self.shift, other.shift):
            raise ValueError("cannot add statistics computed with different shifts")
        return OutcomeStats(
            self.n_in + other.n_in,
            self.n_out + other.n_out,
            self.sum_in + other.sum_in,
            self.sum_out + other.sum_out,
            self.sumsq_in + other.sumsq_in,
            self.sumsq_out + other.sumsq_out,
            self.shift,
        )

    @staticmethod
    def _mean(s: F64, n: npt.NDArray[np.int64], shift: F64) -> F64:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, s / np.maximum(n, 1) + shift, np.nan)

    def mean_in(self) -> F64:
        """Mean outcome over runs that trained on each example.

        Returns
        -------
        ndarray of float64, shape (N,)
            NaN where no run is on that side.
        """
        return self._mean(self.sum_in, self.n_in, self.shift)

    def mean_out(self) -> F64:
        """Mean outcome over runs that held each example out (hold-out accuracy).

        Returns
        -------
        ndarray of float64, shape (N,)
            NaN where no run is on that side.
        """
        return self._mean(self.sum_out, self.n_out, self.shift)

    def memorization(self) -> F64:
        """``mean_in - mean_out`` (Feldman & Zhang 2020).

        Returns
        -------
        ndarray of float64, shape (N,)
            NaN where either side has no run.
        """
        return self.mean_in() - self.mean_out()

    def memorization_stderr(self) -> F64:
        """``sqrt(s_in²/n_in + s_out²/n_out)`` with ddof=1 variances.

        Computed in the core by the same function as :func:`influence`'s standard errors.

        Returns
        -------
        ndarray of float64, shape (N,)
            NaN where a side has fewer than two runs.
        """
        f = np.float64
        out: F64 = _core.stderr_from_sums(
            np.ascontiguousarray(self.sum_in, dtype=f),
            np.ascontiguousarray(self.sumsq_in, dtype=f),
            self.n_in.astype(f),
            np.ascontiguousarray(self.sum_out, dtype=f),
            np.ascontiguousarray(self.sumsq_out, dtype=f),
            self.n_out.astype(f),
        )
        return out


@overload
def memorization(masks: RunsLike, outcomes: RunsLike, *, stderr: Literal[False] = ...) -> F64: ...
@overload
def memorization(masks: RunsLike, outcomes: RunsLike, *, stderr: Literal[True]) -> tuple[F64, F64]: ...
@overload
def memorization(masks: RunsLike, outcomes: RunsLike, *, stderr: bool) -> F64 | tuple[F64, F64]: ...


def memorization(masks: RunsLike, outcomes: RunsLike, *, stderr: bool = False) -> F64 | tuple[F64, F64]:
    """Memorization score of every training example (Feldman & Zhang 2020).

    ``mem[i] = mean(outcomes[r, i] | masks[r, i]) - mean(outcomes[r, i] | not masks[r, i])``,
    the subsampled estimator over runs trained on random subsets.

    Parameters
    ----------
    masks : array-like of bool, shape (R, N)
        True where run r trained on example i (0/1 integers and :class:`PackedBits` too).
    outcomes : array-like of bool or float, shape (R, N)
        Correct or not, or any per-example score (e.g. the probability of the true label).
    stderr : bool, default False
        Also return the standard error ``sqrt(s_in²/n_in + s_out²/n_out)`` (sample
        variances, ddof=1; NaN with fewer than two runs on a side).

    Returns
    -------
    mem : ndarray of float64, shape (N,)
        NaN where no run held the example in or out.
    (mem, stderr) : tuple of two such arrays
        With ``stderr=True``.

    Raises
    ------
    TypeError
        ``masks`` is not bool / 0-1, ``outcomes`` not bool or numeric, ``stderr`` not a bool.
    ValueError
        Shapes disagree, no runs, NaN / infinite outcomes, or outcomes so large that their
        sums would overflow float64.

    Examples
    --------
    >>> import numpy as np, memscore
    >>> masks = np.array([[1, 0], [0, 1], [1, 1]], dtype=bool)
    >>> correct = np.array([[1, 0], [0, 1], [1, 1]], dtype=bool)
    >>> memscore.memorization(masks, correct)
    array([1., 1.])
    """
    want_se = check_bool(stderr, "stderr")
    m = as_mask(masks, packed=True)
    o = as_outcomes(outcomes, "outcomes", packed=True)
    check_runs(m, o, "outcomes", same_cols=True)
    check_summable(o, "outcomes", m.shape[0], squares=want_se)
    stats = OutcomeStats._from_checked(m, o)
    mem = stats.memorization()
    return (mem, stats.memorization_stderr()) if want_se else mem


def holdout_accuracy(masks: RunsLike, outcomes: RunsLike, *, ratios: ArrayLike | None = None) -> F64:
    """Hold-out accuracy, the C-score estimator of Jiang et al. (2021).

    Mean outcome of example i over the runs that did *not* train on it. With ``ratios``
    giving each run's subset ratio, the estimate is taken within each group of runs
    sharing a ratio and averaged over the groups where it is defined (the C-score as an
    expectation over subset sizes).

    Parameters
    ----------
    masks : array-like of bool, shape (R, N)
        True where run r trained on example i.
    outcomes : array-like of bool or float, shape (R, N)
        Per-run outcomes of the training examples.
    ratios : array-like of float, shape (R,), optional
        The subset ratio of each run.

    Returns
    -------
    ndarray of float64, shape (N,)
        NaN where no run held the example out.

    Raises
    ------
    TypeError
        Wrong dtypes.
    ValueError
        Shapes disagree, NaN / infinite / overflowing outcomes.

    Examples
    --------
    >>> import numpy as np, memscore
    >>> masks = np.array([[1, 0], [0, 1]], dtype=bool)
    >>> memscore.holdout_accuracy(masks, np.array([[1, 1], [0, 1]], dtype=bool))
    array([0., 1.])
    """
    m = as_mask(masks, packed=True)
    o = as_outcomes(outcomes, "outcomes", packed=True)
    check_runs(m, o, "outcomes", same_cols=True)
    check_summable(o, "outcomes", m.shape[0])
    if ratios is None:
        return OutcomeStats._from_checked(m, o).mean_out()
    ra = to_numpy(ratios, "ratios")
    check_real(ra, "ratios")
    r = np.asarray(ra, dtype=np.float64)
    if r.shape != (m.shape[0],):
        raise ValueError(f"ratios: expected one subset ratio per run, shape ({m.shape[0]},), got {r.shape}")
    return mean_over_groups([OutcomeStats._from_checked(m[r == g], o[r == g]).mean_out() for g in np.unique(r)])


def mean_over_groups(per_group: Sequence[F64]) -> F64:
    """Average per-group estimates over the groups where each is defined.

    The C-score as an expectation over subset sizes: :func:`holdout_accuracy` with
    ``ratios`` and :meth:`memscore.RunStore.holdout_accuracy` both reduce their per-ratio
    hold-out means with it.

    Parameters
    ----------
    per_group : sequence of ndarray of float64
        One ``(N,)`` estimate per group, NaN where the group leaves it undefined.

    Returns
    -------
    ndarray of float64
        ``(N,)`` mean over the groups where defined; NaN where no group defines it.

    Raises
    ------
    ValueError
        No groups given.
    """
    if len(per_group) == 0:
        raise ValueError("mean_over_groups: expected at least one group")
    if len(per_group) == 1:
        return per_group[0]
    stacked = np.stack(per_group)
    defined = ~np.isnan(stacked)
    with np.errstate(invalid="ignore"):
        out: F64 = np.where(defined.any(0), np.nansum(stacked, 0) / np.maximum(defined.sum(0), 1), np.nan)
    return out


@overload
def influence(
    masks: RunsLike,
    outcomes: RunsLike,
    *,
    top_k: None = ...,
    stderr: Literal[False] = ...,
    train_labels: ArrayLike | None = ...,
    test_labels: ArrayLike | None = ...,
    dtype: npt.DTypeLike = ...,
) -> npt.NDArray[np.floating[Any]]: ...
@overload
def influence(
    masks: RunsLike,
    outcomes: RunsLike,
    *,
    top_k: None = ...,
    stderr: Literal[True],
    train_labels: ArrayLike | None = ...,
    test_labels: ArrayLike | None = ...,
    dtype: npt.DTypeLike = ...,
) -> tuple[npt.NDArray[np.floating[Any]], npt.NDArray[np.floating[Any]]]: ...
@overload
def influence(
    masks: RunsLike,
    outcomes: RunsLike,
    *,
    top_k: int,
    stderr: Literal[False] = ...,
    train_labels: ArrayLike | None = ...,
    test_labels: ArrayLike | None = ...,
    dtype: npt.DTypeLike = ...,
) -> tuple[I64, F64]: ...
@overload
def influence(
    masks: RunsLike,
    outcomes: RunsLike,
    *,
    top_k: int | None = ...,
    stderr: bool = ...,
    train_labels: ArrayLike | None = ...,
    test_labels: ArrayLike | None = ...,
    dtype: npt.DTypeLike = ...,
) -> npt.NDArray[Any] | tuple[npt.NDArray[Any], npt.NDArray[Any]]: ...


def influence(
    masks: RunsLike,
    outcomes: RunsLike,
    *,
    top_k: int | None = None,
    stderr: bool = False,
    train_labels: ArrayLike | None = None,
    test_labels: ArrayLike | None = None,
    dtype: npt.DTypeLike = np.float32,
) -> npt.NDArray[Any] | tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """Influence of every training example on every test example (Feldman & Zhang 2020).

    ``infl[j, i] = mean(outcomes[r, j] | masks[r, i]) - mean(outcomes[r, j] | not masks[r, i])``.

    Parameters
    ----------
    masks : array-like of bool, shape (R, N)
        True where run r trained on example i.
    outcomes : array-like of bool or float, shape (R, T)
        Outcomes on the test examples.
    top_k : int, optional
        Instead of the full matrix, return ``(indices (T, k) int64, values (T, k)
        float64)``: the k most influential training examples per test example, largest
        first, ties toward the lower index, computed tile by tile without the (T, N)
        matrix. Rows with fewer than k defined values are padded with -1 / NaN. A
        ``top_k`` above N is clamped to N (the result has ``min(top_k, N)`` columns).
    stderr : bool, default False
        Also return the (T, N) standard errors (full matrix only).
    train_labels, test_labels : array-like of int, shapes (N,) and (T,), optional
        Restrict to pairs of the same class, as Feldman & Zhang publish: other pairs are
        NaN (full matrix) or never selected (top-k). Give both or neither.
    dtype : {numpy.float32, numpy.float64}, default float32
        Type of the full matrix (it is T x N).

    Returns
    -------
    infl : ndarray, shape (T, N)
        The full matrix.
    (infl, stderr) : tuple of ndarrays
        With ``stderr=True``.
    (indices, values) : tuple of ndarrays, shapes (T, k)
        With ``top_k``.

    Raises
    ------
    TypeError
        Wrong dtypes, a non-integer ``top_k``, a non-bool ``stderr``, an unsupported ``dtype``.
    ValueError
        Shapes disagree, ``top_k < 1``, ``stderr`` with ``top_k``, only one of the label
        arrays, NaN / infinite / overflowing outcomes.

    Examples
    --------
    >>> import numpy as np, memscore
    >>> masks = np.array([[1, 0], [0, 1]], dtype=bool)
    >>> memscore.influence(masks, np.array([[1.0], [0.0]]))
    array([[ 1., -1.]], dtype=float32)
    """
    want_se = check_bool(stderr, "stderr")
    m = as_mask(masks, packed=True)
    o = as_outcomes(outcomes, "outcomes", packed=True)
    check_runs(m, o, "outcomes", same_cols=False)
    if (train_labels is None) != (test_labels is None):
        raise ValueError("train_labels and test_labels must be given together")
    labels: dict[str, npt.NDArray[np.int64]] = {}
    if train_labels is not None:
        labels = {
            "train_labels": as_labels(train_labels, "train_labels", m.shape[1]),
            "test_labels": as_labels(test_labels, "test_labels", o.shape[1]),
        }
    if top_k is not None:
        if want_se:
            raise ValueError("stderr is available for the full matrix only, not with top_k")
        k = check_int(top_k, "top_k", 1)
        check_summable(o, "outcomes", m.shape[0])
        idx, vals = _core.influence_topk(m.bits, _core_outcomes(o), m.n, o.shape[1], k, **labels)
        return idx, vals
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"dtype: expected float32 or float64, got {dt}")
    check_summable(o, "outcomes", m.shape[0], squares=want_se)
    infl, se = _core.influence_full(
        m.bits, _core_outcomes(o), m.n, o.shape[1], double=dt == np.float64, stderr=want_se, **labels
    )
    return (infl, se) if want_se and se is not None else infl


def logit_confidence(logits: ArrayLike, labels: ArrayLike) -> F64:
    """Logit-scaled confidence ``phi = z_y - logsumexp_{y' != y} z_{y'}``.

    Equal to ``log p_y - log(1 - p_y)`` but computed stably from the logits, so it stays
    finite where ``p_y`` rounds to 1. This is the statistic LiRA models as Gaussian.

    Parameters
    ----------
    logits : array-like of float, shape (..., C)
        Logits, e.g. (R, N, C) for R runs on N examples; C >= 2.
    labels : array-like of int
        Labels in ``[0, C)``, broadcastable to ``logits.shape[:-1]``, e.g. (N,).

    Returns
    -------
    ndarray of float64, shape ``logits.shape[:-1]``

    Raises
    ------
    TypeError
        Non-float logits or non-integer labels.
    ValueError
        NaN / infinite logits, fewer than 2 classes, labels out of range or of a shape that
        does not broadcast.

    Examples
    --------
    >>> import numpy as np, memscore
    >>> memscore.logit_confidence(np.array([[0.0, 0.0]]), np.array([0]))
    array([0.])
    """
    z = to_numpy(logits, "logits")
    if z.ndim < 1:
        raise ValueError("logits: expected an array (..., C)")
    if z.dtype not in (np.float32, np.float64):
        if not np.issubdtype(z.dtype, np.number) or np.issubdtype(z.dtype, np.complexfloating):
            raise TypeError(f"logits: expected a float array, got dtype {z.dtype}")
        z = z.astype(np.float64)
    if not np.isfinite(z).all():
        raise ValueError("logits: contains NaN or infinite values")
    y = to_numpy(labels, "labels")
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"labels: expected integer labels, got dtype {y.dtype}")
    lead = z.shape[:-1]
    try:
        y = np.broadcast_to(y, lead)
    except ValueError:
        raise ValueError(f"labels: shape {y.shape} does not broadcast to logits' leading shape {lead}") from None
    c = z.shape[-1]
    flat = np.ascontiguousarray(z.reshape(-1, c))
    phi = _core.logit_confidence(flat, np.ascontiguousarray(y.reshape(-1), dtype=np.int64))
    out: F64 = phi.reshape(lead)
    return out


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
    phi : array-like of float, shape (R, N)
        Confidences, e.g. from :func:`logit_confidence` (bool is refused: a 0/1 outcome has
        no Gaussian to fit).
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


def snapshot_outcomes(logits: ArrayLike, labels: ArrayLike) -> dict[str, npt.NDArray[Any]]:
    """Per-example outcomes of one model's logits, as :meth:`RunStore.add_run` stores at
    training snapshots.

    Parameters
    ----------
    logits : array-like of float, shape (..., n, C)
        Finite logits (e.g. (S, n, C) for S snapshots of one run).
    labels : array-like of int, shape (n,)
        Class labels in ``[0, C)``.

    Returns
    -------
    dict of str to ndarray, each of shape (..., n)
        ``"correct"`` (bool), ``"loss"`` (float64 cross-entropy) and ``"el2n"`` (float64
        ``‖softmax(z) − onehot(y)‖₂``, Paul et al. 2021).

    Raises
    ------
    TypeError
        Non-numeric logits or non-integer labels.
    ValueError
        Wrong shapes, labels out of range, NaN / infinite logits.

    Examples
    --------
    >>> import numpy as np, memscore
    >>> memscore.snapshot_outcomes(np.array([[2.0, 0.0]]), [0])["correct"]
    array([ True])
    """
    za = to_numpy(logits, "logits")
    check_real(za, "logits")
    z = np.asarray(za, dtype=np.float64)
    if z.ndim < 2:
        raise ValueError(f"logits: expected shape (..., n, C), got {z.shape}")
    n, c = z.shape[-2:]
    y = as_labels(labels, "labels", n)
    if y.size and (y.min() < 0 or y.max() >= c):
        raise ValueError(f"labels: expected classes in 0..{c - 1}, got range {y.min()}..{y.max()}")
    if not np.isfinite(z).all():
        raise ValueError("logits: contains NaN or infinite values")
    zmax = z.max(axis=-1, keepdims=True)
    logp = z - zmax - np.log(np.exp(z - zmax).sum(axis=-1, keepdims=True))
    loss = -np.take_along_axis(logp, np.broadcast_to(y[:, None], z.shape[:-1] + (1,)), axis=-1)[..., 0]
    prob = np.exp(logp)
    onehot = np.zeros_like(prob)
    np.put_along_axis(onehot, np.broadcast_to(y[:, None], z.shape[:-1] + (1,)), 1.0, axis=-1)
    el2n = np.sqrt(((prob - onehot) ** 2).sum(axis=-1))
    correct = z.argmax(axis=-1) == y
    return {"correct": correct, "loss": loss, "el2n": el2n}
