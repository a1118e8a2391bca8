"""Plain numpy reference versions of the run-score kernels, written from the formulas.

These are the yardstick the Rust kernels are tested against and the "numpy reference"
baseline in the benchmarks: clear, vectorized over examples, no cleverness.

Conventions (see DESIGN.md): ``masks`` is ``(R, N)`` bool, ``masks[r, i]`` True when run
``r`` trained on example ``i``; outcomes are ``(R, N)`` (train examples) or ``(R, T)``
(test examples), bool or float; scores are float64; undefined estimates are NaN.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: Lower bound on every LiRA standard deviation, so a constant side does not divide by 0.
SIGMA_FLOOR: float = 1e-12

#: The FPR levels reported by :func:`membership_metrics`.
FPR_LEVELS: tuple[float, ...] = (0.001, 0.01, 0.1)

__all__ = [
    "FPR_LEVELS",
    "SIGMA_FLOOR",
    "holdout_accuracy",
    "influence",
    "influence_topk",
    "lira",
    "logit_confidence",
    "membership_metrics",
    "memorization",
]


# --------------------------------------------------------------------------- helpers


def _masks(masks: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    m = np.asarray(masks)
    if m.ndim != 2:
        raise ValueError(f"masks: expected a 2-D (R, N) array, got shape {m.shape}")
    return m.astype(bool, copy=False)


def _outcomes(outcomes: npt.ArrayLike, runs: int, cols: int | None, name: str = "outcomes") -> F64:
    o = np.asarray(outcomes, dtype=np.float64)
    if o.ndim != 2 or o.shape[0] != runs or (cols is not None and o.shape[1] != cols):
        want = f"({runs}, {cols if cols is not None else 'T'})"
        raise ValueError(f"{name}: expected shape {want}, got {o.shape}")
    return o


def _safe_div(num: npt.NDArray[Any], den: npt.ArrayLike, defined: npt.ArrayLike) -> npt.NDArray[Any]:
    """``num / den`` where ``defined``, NaN elsewhere, without divide warnings."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(defined, num / den, np.nan)


def _stderr_from_sums(s_in: F64, q_in: F64, n_in: F64, s_out: F64, q_out: F64, n_out: F64) -> F64:
    """``sqrt(s_in²/n_in + s_out²/n_out)`` from sums ``s`` and sums of squares ``q``.

    ``s²`` is the sample variance (ddof=1), ``(q - s²/n) / (n - 1)``; NaN where a side
    has fewer than two runs.
    """
    var_in = _safe_div(q_in - s_in * s_in / np.maximum(n_in, 1), n_in - 1, n_in >= 2)
    var_out = _safe_div(q_out - s_out * s_out / np.maximum(n_out, 1), n_out - 1, n_out >= 2)
    # Rounding can push a zero variance a hair below 0.
    var_in, var_out = np.maximum(var_in, 0.0), np.maximum(var_out, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        se: F64 = np.sqrt(var_in / n_in + var_out / n_out)
    return se


# --------------------------------------------------------------------------- memorization


def memorization(masks: npt.ArrayLike, outcomes: npt.ArrayLike, *, stderr: bool = False) -> F64 | tuple[F64, F64]:
    """Memorization score (Feldman & Zhang 2020, subsampled estimator).

    ``mem[i] = mean_{r: masks[r,i]} outcomes[r,i] - mean_{r: not masks[r,i]} outcomes[r,i]``

    With ``stderr=True`` also returns ``se[i] = sqrt(s_in²/n_in + s_out²/n_out)`` with
    sample variances (ddof=1).

    Parameters
    ----------
    masks : array-like of bool, shape (R, N)
    outcomes : array-like of bool or float, shape (R, N)
    stderr : bool, default False

    Returns
    -------
    result
        (N,) float64, NaN where ``n_in == 0`` or ``n_out == 0``; ``se`` is NaN where a
        side has fewer than two runs. Or ``(mem, se)``.
    """
    m = _masks(masks)
    o = _outcomes(outcomes, m.shape[0], m.shape[1])
    inside = m.astype(np.float64)
    outside = 1.0 - inside
    n_in = inside.sum(axis=0)
    n_out = outside.sum(axis=0)

    mean_in = _safe_div((o * inside).sum(axis=0), n_in, n_in > 0)
    mean_out = _safe_div((o * outside).sum(axis=0), n_out, n_out > 0)
    mem: F64 = mean_in - mean_out
    if not stderr:
        return mem

    # Sample variances from deviations around each group's own mean (two-pass, stable).
    dev_in = np.where(m, o - mean_in, 0.0)
    dev_out = np.where(~m, o - mean_out, 0.0)
    var_in = _safe_div((dev_in**2).sum(axis=0), n_in - 1, n_in >= 2)
    var_out = _safe_div((dev_out**2).sum(axis=0), n_out - 1, n_out >= 2)
    se = np.sqrt(var_in / np.maximum(n_in, 1) + var_out / np.maximum(n_out, 1))
    return mem, se


# --------------------------------------------------------------------------- influence


def _label_mismatch(
    train_labels: npt.ArrayLike | None, test_labels: npt.ArrayLike | None, n: int, t: int
) -> npt.NDArray[np.bool_] | None:
    """(T, N) True where ``train_labels[i] != test_labels[j]``; None without labels."""
    if train_labels is None and test_labels is None:
        return None
    if train_labels is None or test_labels is None:
        raise ValueError("train_labels and test_labels must be given together")
    a = np.asarray(train_labels)
    b = np.asarray(test_labels)
    if a.shape != (n,) or b.shape != (t,):
        raise ValueError(f"labels: expected train ({n},) and test ({t},), got {a.shape} and {b.shape}")
    if not (np.issubdtype(a.dtype, np.integer) and np.issubdtype(b.dtype, np.integer)):
        raise TypeError(f"labels: expected integer arrays, got {a.dtype} and {b.dtype}")
    mismatch: npt.NDArray[np.bool_] = b[:, None] != a[None, :]
    return mismatch


def influence(
    masks: npt.ArrayLike,
    outcomes_test: npt.ArrayLike,
    *,
    train_labels: npt.ArrayLike | None = None,
    test_labels: npt.ArrayLike | None = None,
    stderr: bool = False,
    dtype: npt.DTypeLike = np.float64,
) -> npt.NDArray[np.floating[Any]] | tuple[npt.NDArray[np.floating[Any]], F64]:
    """Influence of training example i on test example j (Feldman & Zhang 2020).

    ``infl[j, i] = mean_{r: masks[r,i]} O[r,j] - mean_{r: not masks[r,i]} O[r,j]``

    computed as two GEMMs in ``dtype``: ``S_in = O.T @ M`` and ``S_out = O.T @ (1 - M)``,
    divided column-wise by ``n_in = M.sum(0)`` and ``n_out = R - n_in``.

    Parameters
    ----------
    masks
        (R, N) bool.
    outcomes_test
        (R, T) bool or float outcomes on the test examples.
    train_labels, test_labels
        (N,) and (T,) int; pairs of different class are NaN.
    stderr
        also return the (T, N) standard error ``sqrt(s_in²/n_in + s_out²/n_out)``
        (ddof=1, NaN with fewer than two runs on a side), from float64 GEMMs on
        ``O`` and ``O**2``.
    dtype
        float dtype of the GEMMs and of the result (float64 or float32).

    Returns
    -------
    result
        (T, N) array of ``dtype``, NaN where ``n_in`` or ``n_out`` is 0; or ``(infl, se)``.
    """
    m = _masks(masks)
    r, n = m.shape
    o = _outcomes(outcomes_test, r, None, "outcomes_test")
    t = o.shape[1]
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise TypeError(f"dtype: expected a float dtype, got {dt}")

    mf = m.astype(dt)
    of = o.astype(dt)
    n_in = m.sum(axis=0).astype(dt)
    n_out = (r - m.sum(axis=0)).astype(dt)
    s_in = of.T @ mf  # (T, N)
    s_out = of.T @ (1 - mf)  # (T, N)
    mean_in = _safe_div(s_in, n_in, n_in > 0)
    mean_out = _safe_div(s_out, n_out, n_out > 0)
    infl: npt.NDArray[np.floating[Any]] = (mean_in - mean_out).astype(dt, copy=False)

    mismatch = _label_mismatch(train_labels, test_labels, n, t)
    if mismatch is not None:
        infl[mismatch] = np.nan
    if not stderr:
        return infl

    # Sums and sums of squares in float64; centering each test column first keeps
    # q - s²/n well conditioned and changes neither the means' difference nor variances.
    oc = o - o.mean(axis=0)
    m64 = m.astype(np.float64)
    n_in64, n_out64 = m64.sum(axis=0), r - m64.sum(axis=0)
    se = _stderr_from_sums(oc.T @ m64, (oc**2).T @ m64, n_in64, oc.T @ (1.0 - m64), (oc**2).T @ (1.0 - m64), n_out64)
    if mismatch is not None:
        se[mismatch] = np.nan
    return infl, se


def influence_topk(
    masks: npt.ArrayLike,
    outcomes_test: npt.ArrayLike,
    k: int,
    *,
    train_labels: npt.ArrayLike | None = None,
    test_labels: npt.ArrayLike | None = None,
) -> tuple[I64, F64]:
    """The k most influential training examples for every test example.

    Per test row j of :func:`influence` (float64): the k largest defined values, ordered
    by value descending then train index ascending (ties toward the lower index). NaN
    entries are never selected; rows with fewer than k defined values are padded with
    index -1 and value NaN.

    Parameters
    ----------
    masks : array-like of bool, shape (R, N)
    outcomes_test : array-like of bool or float, shape (R, T)
    k : int
    train_labels, test_labels : array-like of int, optional
        Restrict to same-class pairs.

    Returns
    -------
    result
        ``(indices (T, k) int64, values (T, k) float64)``.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"k: expected a non-negative integer, got {k!r}")
    infl = influence(masks, outcomes_test, train_labels=train_labels, test_labels=test_labels, dtype=np.float64)
    assert isinstance(infl, np.ndarray)
    t, n = infl.shape
    # lexsort: last key is primary. -infl ascending = value descending, NaN sorts last;
    # equal values fall back to the train index ascending.
    index = np.broadcast_to(np.arange(n, dtype=np.int64), (t, n))
    order = np.lexsort((index, -infl), axis=-1)[:, :k]
    values: F64 = np.take_along_axis(infl, order, axis=1).astype(np.float64, copy=False)
    indices = np.where(np.isnan(values), -1, order).astype(np.int64)

    pad = k - order.shape[1]  # k > N
    if pad > 0:
        indices = np.hstack([indices, np.full((t, pad), -1, dtype=np.int64)])
        values = np.hstack([values, np.full((t, pad), np.nan)])
    return indices, values


# --------------------------------------------------------------------------- hold-out / C-score


def holdout_accuracy(masks: npt.ArrayLike, outcomes: npt.ArrayLike, *, ratios: npt.ArrayLike | None = None) -> F64:
    """Hold-out accuracy, the C-score estimator (Jiang et al. 2021).

    ``acc[i] = mean_{r: not masks[r,i]} outcomes[r,i]``.

    With ``ratios`` (R,) (the subset ratio of each run), the hold-out accuracy is taken
    within each group of runs sharing a ratio and averaged over the groups where it is
    defined: ``C[i] = mean_g acc_g[i]``.

    Parameters
    ----------
    masks : array-like of bool, shape (R, N)
    outcomes : array-like of bool or float, shape (R, N)
    ratios : array-like of float, shape (R,), optional

    Returns
    -------
    result
        (N,) float64, NaN where no run (in any group) held example i out.
    """
    m = _masks(masks)
    o = _outcomes(outcomes, m.shape[0], m.shape[1])
    outside = ~m

    def one_group(sel: npt.NDArray[np.bool_]) -> F64:
        held = outside[sel]
        n_out = held.sum(axis=0)
        return _safe_div(np.where(held, o[sel], 0.0).sum(axis=0), n_out, n_out > 0)

    if ratios is None:
        return one_group(np.ones(m.shape[0], dtype=bool))
    rat = np.asarray(ratios, dtype=np.float64)
    if rat.shape != (m.shape[0],):
        raise ValueError(f"ratios: expected shape ({m.shape[0]},), got {rat.shape}")
    per_group = np.stack([one_group(rat == g) for g in np.unique(rat)])  # (G, N)
    defined = ~np.isnan(per_group)
    n_def = defined.sum(axis=0)
    return _safe_div(np.where(defined, per_group, 0.0).sum(axis=0), n_def, n_def > 0)


# --------------------------------------------------------------------------- LiRA


def logit_confidence(logits: npt.ArrayLike, labels: npt.ArrayLike) -> F64:
    """Logit-scaled confidence ``phi = z_y - logsumexp_{y' != y} z_{y'}`` (Carlini et al. 2022).

    Equals ``log(p_y / (1 - p_y))`` with ``p = softmax(z)``, computed stably by subtracting
    the maximum of the other logits. ``phi = +inf`` when every other logit is -inf (or
    there is no other class).

    Parameters
    ----------
    logits
        (..., C) float.
    labels
        integer labels broadcastable to ``logits.shape[:-1]``.

    Returns
    -------
    result
        float64 array of shape ``logits.shape[:-1]``.
    """
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim < 1:
        raise ValueError("logits: expected an array of shape (..., C)")
    y = np.asarray(labels)
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"labels: expected integers, got dtype {y.dtype}")
    c = z.shape[-1]
    y = np.broadcast_to(y, z.shape[:-1]).astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= c):
        raise ValueError(f"labels: expected values in [0, {c}), got range [{y.min()}, {y.max()}]")

    z_y = np.take_along_axis(z, y[..., None], axis=-1)[..., 0]
    others = z.copy()
    np.put_along_axis(others, y[..., None], -np.inf, axis=-1)
    top = others.max(axis=-1, initial=-np.inf)  # max of the other logits
    shift = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        lse = shift + np.log(np.exp(others - shift[..., None]).sum(axis=-1))
        phi = z_y - lse
    return np.where(top == -np.inf, np.inf, phi)


def _nan_stats(values: F64) -> tuple[F64, F64, F64, F64]:
    """Per-column median, mean, population std and count of the non-NaN entries."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns -> NaN
        med = np.nanmedian(values, axis=0)
        mean = np.nanmean(values, axis=0)
        std = np.nanstd(values, axis=0, ddof=0)
    count = (~np.isnan(values)).sum(axis=0).astype(np.float64)
    return med, mean, std, count


def _pooled_sigma(values: F64, mean: F64, count: F64) -> float:
    """``sqrt(sum_i sum_v (v - mean_i)² / sum_i n_i)`` over the non-NaN entries; NaN if none."""
    total = count.sum()
    if total == 0:
        return float("nan")
    ss = np.nansum((values - mean) ** 2)
    return float(np.sqrt(ss / total))


def lira(
    masks: npt.ArrayLike,
    phi: npt.ArrayLike,
    *,
    online: bool = True,
    fixed_variance: bool = False,
    targets: Iterable[int] | None = None,
) -> F64:
    """LiRA membership scores (Carlini et al. 2022) with leave-one-out shadows.

    For every target run r the shadows are all runs ``s != r``. For example i,
    ``IN_i = {phi[s,i] : masks[s,i]}``, ``OUT_i = {phi[s,i] : not masks[s,i]}``;
    ``mu`` is the median, ``sigma`` the population std (ddof=0), floored at
    :data:`SIGMA_FLOOR`.

    - online: ``log N(phi[r,i]; mu_in, s_in) - log N(phi[r,i]; mu_out, s_out)``
      ``= ln s_out - ln s_in - z_in²/2 + z_out²/2``; NaN if IN or OUT is empty.
    - offline: ``log Phi((phi[r,i] - mu_out) / s_out)``; NaN if OUT is empty.
    - fixed_variance: one sigma per target and side, pooled over examples:
      ``sigma_in(r) = sqrt(sum_i sum_{v in IN_i} (v - mean(IN_i))² / sum_i |IN_i|)``.

    Parameters
    ----------
    masks
        (R, N) bool.
    phi
        (R, N) finite float confidences (e.g. :func:`logit_confidence`), or (R, N, K):
        K views per example (augmented queries), each with its own Gaussians, their
        scores summed.
    targets
        score only these target runs (rows, in this order; the benchmark
        times a subset of targets and scales). Default: every run.

    Returns
    -------
    result
        (R, N) float64 (or (len(targets), N)), higher = more likely a member.
    """
    if np.ndim(phi) == 3:
        # augmented queries: independent per-view Gaussians, log-likelihood ratios summed
        views = np.asarray(phi, dtype=np.float64)
        return sum(
            (lira(masks, views[:, :, k], online=online, fixed_variance=fixed_variance, targets=targets)
             for k in range(views.shape[2])),
            np.zeros(()),
        )  # fmt: skip
    m = _masks(masks)
    p = _outcomes(phi, m.shape[0], m.shape[1], name="phi")
    if not online:
        from scipy.special import log_ndtr  # type: ignore[import-untyped, unused-ignore]
    runs = m.shape[0]
    rows = list(range(runs)) if targets is None else [int(t) for t in targets]
    scores = np.full((len(rows), m.shape[1]), np.nan)

    for row, r in enumerate(rows):
        shadow = np.arange(runs) != r
        ps, ms = p[shadow], m[shadow]
        x = p[r]
        in_vals = np.where(ms, ps, np.nan)  # (R-1, N), NaN = not in this side
        out_vals = np.where(~ms, ps, np.nan)
        mu_in, mean_in, sd_in, n_in = _nan_stats(in_vals)
        mu_out, mean_out, sd_out, n_out = _nan_stats(out_vals)
        if fixed_variance:
            sd_in = np.full_like(x, _pooled_sigma(in_vals, mean_in, n_in))
            sd_out = np.full_like(x, _pooled_sigma(out_vals, mean_out, n_out))
        sd_in = np.maximum(sd_in, SIGMA_FLOOR)
        sd_out = np.maximum(sd_out, SIGMA_FLOOR)

        z_out = (x - mu_out) / sd_out
        if online:
            z_in = (x - mu_in) / sd_in
            s = np.log(sd_out) - np.log(sd_in) - 0.5 * z_in**2 + 0.5 * z_out**2
            scores[row] = np.where((n_in > 0) & (n_out > 0), s, np.nan)
        else:
            scores[row] = np.where(n_out > 0, log_ndtr(z_out), np.nan)
    return scores


# --------------------------------------------------------------------------- evaluation


def membership_metrics(scores: npt.ArrayLike, masks: npt.ArrayLike) -> dict[str, float]:
    """ROC AUC and TPR at low FPR of membership scores (the LiRA evaluation).

    Both arrays are flattened; entries with a NaN score are dropped; members are
    ``masks == True``.

    - ``auc``: Mann-Whitney ``P(score_member > score_nonmember) + P(tie) / 2``, from
      mid-ranks: ``(sum of member ranks - n_pos (n_pos + 1) / 2) / (n_pos n_neg)``.
    - ROC: one point per distinct threshold t (predict member when ``score >= t``), plus
      (0, 0). ``tpr_at_fpr_f`` is the largest TPR among points with FPR <= f.

    All values are NaN when either class is empty.

    Parameters
    ----------
    scores : array-like of float
    masks : array-like of bool, same shape

    Returns
    -------
    result
        dict with keys ``auc``, ``tpr_at_fpr_0.001``, ``tpr_at_fpr_0.01``, ``tpr_at_fpr_0.1``.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    pos = np.asarray(masks).astype(bool).ravel()
    if s.shape != pos.shape:
        raise ValueError(f"scores and masks must have the same size, got {s.size} and {pos.size}")
    keep = ~np.isnan(s)
    s, pos = s[keep], pos[keep]
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    keys = ["auc"] + [f"tpr_at_fpr_{f:g}" for f in FPR_LEVELS]
    if n_pos == 0 or n_neg == 0:
        return {key: float("nan") for key in keys}

    # Mid-ranks (1-based; tied scores share the mean of their ranks).
    uniq, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    first_rank = np.cumsum(counts) - counts + 1
    mid_rank = first_rank + (counts - 1) / 2.0
    ranks = mid_rank[inverse]
    auc = (ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)

    # ROC: thresholds = distinct scores, descending; count scores >= t on each side.
    thresholds = uniq[::-1]
    pos_sorted, neg_sorted = np.sort(s[pos]), np.sort(s[~pos])
    tp = n_pos - np.searchsorted(pos_sorted, thresholds, side="left")
    fp = n_neg - np.searchsorted(neg_sorted, thresholds, side="left")
    tpr = np.r_[0.0, tp / n_pos]
    fpr = np.r_[0.0, fp / n_neg]

    out = {"auc": float(auc)}
    for f, key in zip(FPR_LEVELS, keys[1:], strict=True):
        out[key] = float(tpr[fpr <= f].max())
    return out
