"""Per-example scores across training runs (array level).

Every function takes ``masks`` of shape ``(R, N)`` (``masks[r, i]`` is True when run ``r``
trained on example ``i``) and per-run outcomes, bool (correct or not) or float (any
per-example score such as the probability of the true label), as numpy arrays or torch CPU
tensors. Bool outcomes take the bit-packed popcount path in the Rust core; float outcomes a
masked-sum kernel. Scores come back as float64 and are NaN where the estimate is undefined.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import _core
from .._validate import as_labels, as_mask, as_outcomes, check_runs, to_numpy
from .bits import PackedBits

F64 = npt.NDArray[np.float64]

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
    def from_runs(cls, masks: Any, outcomes: Any, *, shift: Any = None) -> OutcomeStats:
        """Statistics of ``outcomes`` (R, N) split by ``masks`` (R, N).

        ``shift`` (N,) is subtracted before summing, keeping sums of squares well
        conditioned for float outcomes; by default the first run's outcome. Statistics
        you intend to add must share one shift.
        """
        m = as_mask(masks, packed=True)
        o = as_outcomes(outcomes, "outcomes", packed=True)
        check_runs(m, o, "outcomes", same_cols=True)
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

    @staticmethod
    def _var(s: F64, q: F64, n: npt.NDArray[np.int64]) -> F64:
        # Sample variance (ddof=1) from shifted sums; NaN below two runs.
        with np.errstate(invalid="ignore", divide="ignore"):
            nf = n.astype(np.float64)
            v = (q - s * s / np.maximum(nf, 1)) / (nf - 1)
        return np.where(n >= 2, np.maximum(v, 0.0), np.nan)

    def mean_in(self) -> F64:
        """Mean outcome over runs that trained on each example."""
        return self._mean(self.sum_in, self.n_in, self.shift)

    def mean_out(self) -> F64:
        """Mean outcome over runs that held each example out (hold-out accuracy)."""
        return self._mean(self.sum_out, self.n_out, self.shift)

    def memorization(self) -> F64:
        """``mean_in - mean_out`` (Feldman & Zhang 2020)."""
        return self.mean_in() - self.mean_out()

    def memorization_stderr(self) -> F64:
        """``sqrt(s_in²/n_in + s_out²/n_out)`` with ddof=1 variances."""
        v_in = self._var(self.sum_in, self.sumsq_in, self.n_in)
        v_out = self._var(self.sum_out, self.sumsq_out, self.n_out)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.sqrt(v_in / self.n_in + v_out / self.n_out)


def memorization(masks: Any, outcomes: Any, *, stderr: bool = False) -> F64 | tuple[F64, F64]:
    """Memorization score of every training example (Feldman & Zhang 2020).

    ``mem[i] = mean(outcomes[r, i] | masks[r, i]) - mean(outcomes[r, i] | not masks[r, i])``,
    the subsampled estimator over runs trained on random subsets.

    Args:
        masks: (R, N) bool, True where run r trained on example i.
        outcomes: (R, N) bool (correct or not) or float (e.g. probability of the true label).
        stderr: also return the standard error ``sqrt(s_in²/n_in + s_out²/n_out)``
            (sample variances, ddof=1; NaN with fewer than two runs on a side).

    Returns:
        (N,) float64, NaN where no run held the example in or out; or ``(mem, stderr)``.

    >>> import numpy as np, memscore
    >>> masks = np.array([[1, 0], [0, 1], [1, 1]], dtype=bool)
    >>> correct = np.array([[1, 0], [0, 1], [1, 1]], dtype=bool)
    >>> memscore.memorization(masks, correct)
    array([1., 1.])
    """
    stats = OutcomeStats.from_runs(masks, outcomes)
    mem = stats.memorization()
    return (mem, stats.memorization_stderr()) if stderr else mem


def holdout_accuracy(masks: Any, outcomes: Any, *, ratios: Any = None) -> F64:
    """Hold-out accuracy, the C-score estimator of Jiang et al. (2021).

    Mean outcome of example i over the runs that did *not* train on it. With ``ratios``
    (R,) giving each run's subset ratio, the estimate is taken within each group of runs
    sharing a ratio and averaged over the groups where it is defined (the C-score as an
    expectation over subset sizes).

    Returns:
        (N,) float64, NaN where no run held the example out.
    """
    m = as_mask(masks, packed=True)
    o = as_outcomes(outcomes, "outcomes", packed=True)
    check_runs(m, o, "outcomes", same_cols=True)
    if ratios is None:
        return OutcomeStats.from_runs(m, o).mean_out()
    r = np.asarray(to_numpy(ratios, "ratios"), dtype=np.float64)
    if r.shape != (m.shape[0],):
        raise ValueError(f"ratios: expected one subset ratio per run, shape ({m.shape[0]},), got {r.shape}")
    per_group = np.stack([OutcomeStats.from_runs(m[r == g], o[r == g]).mean_out() for g in np.unique(r)])
    defined = ~np.isnan(per_group)
    with np.errstate(invalid="ignore"):
        return np.where(defined.any(0), np.nansum(per_group, 0) / np.maximum(defined.sum(0), 1), np.nan)


def influence(
    masks: Any,
    outcomes: Any,
    *,
    top_k: int | None = None,
    stderr: bool = False,
    train_labels: Any = None,
    test_labels: Any = None,
    dtype: Any = np.float32,
) -> Any:
    """Influence of every training example on every test example (Feldman & Zhang 2020).

    ``infl[j, i] = mean(outcomes[r, j] | masks[r, i]) - mean(outcomes[r, j] | not masks[r, i])``.

    Args:
        masks: (R, N) bool, True where run r trained on example i.
        outcomes: (R, T) bool or float outcomes on the test examples.
        top_k: instead of the full matrix, return ``(indices (T, k) int64, values (T, k)
            float64)``: the k most influential training examples per test example, largest
            first, ties toward the lower index, computed tile by tile without the (T, N)
            matrix. Rows with fewer than k defined values are padded with -1 / NaN. A
            ``top_k`` above N is clamped to N (the result has ``min(top_k, N)`` columns).
        stderr: also return the (T, N) standard errors (full matrix only).
        train_labels, test_labels: restrict to pairs of the same class, as Feldman & Zhang
            publish: other pairs are NaN (full matrix) or never selected (top-k).
        dtype: float32 (default; the matrix is T x N) or float64.

    Returns:
        (T, N) array, ``(infl, stderr)``, or ``(indices, values)`` with ``top_k``.
    """
    m = as_mask(masks, packed=True)
    o = as_outcomes(outcomes, "outcomes", packed=True)
    check_runs(m, o, "outcomes", same_cols=False)
    if (train_labels is None) != (test_labels is None):
        raise ValueError("train_labels and test_labels must be given together")
    labels: dict[str, Any] = {}
    if train_labels is not None:
        labels = {
            "train_labels": as_labels(train_labels, "train_labels", m.shape[1]),
            "test_labels": as_labels(test_labels, "test_labels", o.shape[1]),
        }
    if top_k is not None:
        if stderr:
            raise ValueError("stderr is available for the full matrix only, not with top_k")
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
            raise ValueError(f"top_k: expected a positive integer, got {top_k!r}")
        return _core.influence_topk(m.bits, _core_outcomes(o), m.n, o.shape[1], int(top_k), **labels)
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"dtype: expected float32 or float64, got {dt}")
    infl, se = _core.influence_full(
        m.bits, _core_outcomes(o), m.n, o.shape[1], double=dt == np.float64, stderr=stderr, **labels
    )
    return (infl, se) if stderr else infl


def logit_confidence(logits: Any, labels: Any) -> F64:
    """Logit-scaled confidence ``phi = z_y - logsumexp_{y' != y} z_{y'}``.

    Equal to ``log p_y - log(1 - p_y)`` but computed stably from the logits, so it stays
    finite where ``p_y`` rounds to 1. This is the statistic LiRA models as Gaussian.

    Args:
        logits: (..., C) float logits, e.g. (R, N, C) for R runs on N examples.
        labels: integer labels broadcastable to ``logits.shape[:-1]``, e.g. (N,).

    Returns:
        float64 array of shape ``logits.shape[:-1]``.
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
    return phi.reshape(lead)


def lira(masks: Any, phi: Any, *, online: bool = True, fixed_variance: bool = False) -> F64:
    """LiRA membership scores (Carlini et al. 2022), higher = more likely a member.

    Every run in turn is the target; its shadow models are all *other* runs (exact
    leave-one-out: the target never shadows itself). For example i, ``mu`` is the median
    and ``sigma`` the population standard deviation of ``phi`` over the shadows that did
    (in) or did not (out) train on i, with sigma floored at 1e-12.

    - online: ``log N(phi; mu_in, sigma_in) - log N(phi; mu_out, sigma_out)``;
    - offline (``online=False``): ``log Phi((phi - mu_out) / sigma_out)``;
    - ``fixed_variance``: one sigma per side and target, pooled over all examples
      (``sqrt(sum_i SS_i / sum_i n_i)``, within-example population variance).

    Args:
        masks: (R, N) bool membership of each run.
        phi: (R, N) float confidences, e.g. from :func:`logit_confidence`.

    Returns:
        (R, N) float64; NaN where a needed side has no shadow run.
    """
    m = as_mask(masks, packed=True)
    p = as_outcomes(phi, "phi")
    check_runs(m, p, "phi", same_cols=True)
    p = np.ascontiguousarray(p, dtype=np.float64)
    return _core.lira_scores(m.bits, p, m.n, online=online, fixed_variance=fixed_variance)


@dataclass(frozen=True)
class MembershipMetrics:
    """How well membership scores separate members from non-members."""

    auc: float
    tpr_at_fpr: dict[float, float]
    fpr: F64
    tpr: F64

    def as_dict(self) -> dict[str, float]:
        out = {"auc": self.auc}
        out.update({f"tpr_at_fpr_{f:g}": v for f, v in self.tpr_at_fpr.items()})
        return out


def membership_metrics(
    scores: Any, masks: Any, *, fpr_levels: tuple[float, ...] = (0.001, 0.01, 0.1)
) -> MembershipMetrics:
    """ROC AUC and TPR at low FPR of membership scores (the LiRA evaluation).

    Every (run, example) pair is one trial: a member when ``masks`` is True. NaN scores
    are dropped. AUC counts ties as one half; TPR at FPR f is the largest TPR among ROC
    points whose FPR is at most f.
    """
    s = np.asarray(to_numpy(scores, "scores"), dtype=np.float64).ravel()
    m = as_mask(masks, ndim=np.ndim(to_numpy(masks, "masks"))).ravel()
    if s.shape != m.shape:
        raise ValueError(f"scores and masks must have the same shape, got {np.shape(scores)} and {np.shape(masks)}")
    keep = ~np.isnan(s)
    s, m = s[keep], m[keep]
    n_pos, n_neg = int(m.sum()), int((~m).sum())
    if n_pos == 0 or n_neg == 0:
        nan = float("nan")
        return MembershipMetrics(nan, {f: nan for f in fpr_levels}, np.array([0.0]), np.array([0.0]))
    order = np.argsort(-s, kind="stable")
    s, m = s[order], m[order]
    # One ROC point per distinct threshold (the last index of each run of equal scores).
    last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]
    tp = np.cumsum(m)[last]
    fp = np.cumsum(~m)[last]
    tpr = np.r_[0.0, tp / n_pos]
    fpr = np.r_[0.0, fp / n_neg]
    auc = float(np.trapezoid(tpr, fpr)) if hasattr(np, "trapezoid") else float(np.trapz(tpr, fpr))
    rates = {f: float(tpr[fpr <= f].max()) for f in fpr_levels}
    return MembershipMetrics(auc, rates, fpr, tpr)


def snapshot_outcomes(logits: Any, labels: Any) -> dict[str, np.ndarray]:
    """Per-example outcomes of one model's logits, as :meth:`RunStore.add_run` stores at
    training snapshots.

    Args:
        logits: (..., n, C) finite logits (e.g. (S, n, C) for S snapshots of one run).
        labels: (n,) class labels.

    Returns:
        ``{"correct": bool, "loss": float64 cross-entropy, "el2n": float64
        ‖softmax(z) − onehot(y)‖₂ (Paul et al. 2021)}``, each of shape (..., n).
    """
    z = np.asarray(to_numpy(logits, "logits"), dtype=np.float64)
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
