"""The linear datamodeling score (LDS, Park et al. 2023): how well an attribution predicts
the outcomes of models trained on held-out subsets.

For test example ``t`` and held-out subsets ``S_1 .. S_M`` (masks of evaluation runs), the
attribution's prediction for subset ``S_m`` is ``Σ_{i ∈ S_m} attributions[t, i]``; the
LDS of ``t`` is the Spearman correlation over ``m`` between these predictions and the
outcomes actually observed. The score is the mean over test examples, with a bootstrap
confidence interval over test examples. Any ``(T, N)`` attribution works: memscore's
influence, datamodel weights, or scores imported from TRAK, dattri or Kronfluence.

Split → task → merge: the correlations are computed over a fixed grid of
:data:`TARGET_CHUNK` test examples and the bootstrap draws a fixed grid of
:data:`BOOT_CHUNK` resamples, chunk ``c`` from its own stream of the one ``seed``
(``SeedSequence(seed, spawn_key=(c,))``); a task takes a range of chunks (on an
``executor=``'s workers) and the merge concatenates them in chunk order, so the score is
the same under every executor and for any number of tasks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .._stats import spearman
from .._validate import (
    MAX_BOOT,
    ArrayLike,
    as_mask,
    as_outcomes,
    check_float,
    check_int,
    check_real,
    check_runs,
    check_summable,
    to_numpy,
)
from ..executors import Executor, ExecutorLike, as_executor
from .bits import PackedBits

__all__ = ["BOOT_CHUNK", "LDS", "TARGET_CHUNK", "boot_means", "correlations", "group_runs", "lds"]

F64 = npt.NDArray[np.float64]

#: Subsets needed for a Spearman correlation that can be other than ±1.
MIN_SUBSETS = 3

#: Test examples whose predictions are one matrix product (the grid tasks split on).
TARGET_CHUNK = 256

#: Bootstrap resamples drawn from one stream of the seed (the grid tasks split on).
BOOT_CHUNK = 100


@dataclass(frozen=True)
class LDS:
    """A linear datamodeling score.

    Attributes
    ----------
    mean : float
        Mean over the test examples where the correlation is defined.
    ci : tuple of float
        Bootstrap (over test examples) percentile interval of ``mean``.
    per_target : ndarray of float64, shape (T,)
        Each test example's Spearman correlation; NaN where the predictions or the
        outcomes are constant over the subsets.
    n_subsets : int
        Held-out subsets (after averaging the runs of a group).
    """

    mean: float
    ci: tuple[float, float]
    per_target: F64
    n_subsets: int


def group_runs(masks: npt.NDArray[np.bool_], outcomes: F64, groups: ArrayLike) -> tuple[npt.NDArray[np.bool_], F64]:
    """(masks, outcomes) with the runs of each group (same subset) merged: one mask per
    group, the outcomes averaged, groups in order of first appearance.

    Raises
    ------
    ValueError
        ``groups`` is not one label per run, or two runs of a group trained on different
        subsets.
    """
    g = to_numpy(groups, "groups")
    if g.shape != (masks.shape[0],):
        raise ValueError(f"groups: expected one label per run, shape ({masks.shape[0]},), got {g.shape}")
    _, first, inverse = np.unique(g, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # label index -> output position
    pos = np.empty_like(order)
    pos[order] = np.arange(order.size)
    slot = pos[inverse.ravel()]
    merged = masks[first[order]]
    if not (masks == merged[slot]).all():
        bad = int(np.flatnonzero((masks != merged[slot]).any(axis=1))[0])
        raise ValueError(f"groups: run {bad} is in group {g[bad]!r} but trained on a different subset than its group")
    sums = np.zeros((order.size, outcomes.shape[1]))
    np.add.at(sums, slot, outcomes)
    counts = np.bincount(slot, minlength=order.size).astype(np.float64)
    return merged, sums / counts[:, None]


def lds(
    attributions: ArrayLike,
    masks: ArrayLike | PackedBits,
    outcomes: ArrayLike | PackedBits,
    *,
    groups: ArrayLike | None = None,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    executor: ExecutorLike = None,
) -> LDS:
    """Linear datamodeling score of an attribution on held-out runs (Park et al. 2023).

    Parameters
    ----------
    attributions : array-like of float, shape (T, N)
        ``attributions[t, i]``: the effect of training example i on test example t. NaN
        entries (no estimate, e.g. an influence restricted to same-class pairs) count as 0;
        infinite entries, and values so large that a subset's sum would overflow float64,
        are refused.
    masks : array-like of bool or PackedBits, shape (M, N)
        The subsets of the evaluation runs (not the runs the attribution was fitted on).
    outcomes : array-like of float or bool, shape (M, T)
        The outcome of each test example in each evaluation run.
    groups : array-like, shape (M,), optional
        A label per run: runs with the same label trained on the same subset (different
        seeds) and their outcomes are averaged first, as Park et al. do.
    n_boot : int, default 1000
        Bootstrap resamples of the test examples for the interval (0: no interval, NaN).
    confidence : float, default 0.95
        Coverage of the interval.
    seed : int, default 0
        Seed of the bootstrap (resample chunk ``c`` draws from
        ``SeedSequence(seed, spawn_key=(c,))``).
    executor : None, str or Executor, optional
        Who computes the correlations and the resamples
        (:func:`memscore.executors.as_executor`); the score is the same under every
        executor.

    Returns
    -------
    LDS
        The mean, its interval, the per-test-example correlations, the subset count.

    Raises
    ------
    TypeError
        Wrong dtypes.
    ValueError
        ``attributions`` is not (T, N) for the masks' N and the outcomes' T or holds
        infinite or overflowing values, fewer than three subsets, NaN outcomes, runs of a group with different masks, a negative
        ``seed``.
    memscore.ClusterError
        The executor's workers cannot run a task.

    Examples
    --------
    >>> import numpy as np, memscore
    >>> rng = np.random.default_rng(0)
    >>> masks = rng.random((20, 6)) < 0.5
    >>> w = rng.normal(size=(2, 6))
    >>> memscore.lds(w, masks, masks @ w.T).mean
    1.0
    """
    a = to_numpy(attributions, "attributions")
    check_real(a, "attributions")
    m = as_mask(masks)
    y = np.asarray(as_outcomes(outcomes, "outcomes"), dtype=np.float64)
    check_runs(m, y, "outcomes", same_cols=False)
    if a.ndim != 2 or a.shape != (y.shape[1], m.shape[1]):
        raise ValueError(
            f"attributions: expected shape (T, N) = ({y.shape[1]}, {m.shape[1]}) from outcomes and masks, got {a.shape}"
        )
    if np.isinf(a).any():
        raise ValueError("attributions: expected finite numbers (NaN counts as 0), got infinite values")
    # a subset's prediction sums up to N attributions (float64 in correlations)
    att = np.nan_to_num(np.asarray(a, dtype=np.float64), nan=0.0)
    check_summable(att, "attributions", a.shape[1], over="examples")
    n_boot = check_int(n_boot, "n_boot", 0, MAX_BOOT)
    seed = check_int(seed, "seed", 0)
    level = check_float(confidence, "confidence", 0.0, 1.0, low_open=True, high_open=True)
    if groups is not None:
        m, y = group_runs(m, y, groups)
    if m.shape[0] < MIN_SUBSETS:
        raise ValueError(f"lds needs at least {MIN_SUBSETS} held-out subsets for a rank correlation, got {m.shape[0]}")
    ex = as_executor(executor)
    ex.start(gpus=0)  # CPU tasks whatever gpus_per_task says
    t = y.shape[1]
    masks_f = ex.share(m.astype(np.float64))
    blocks = _task_ranges(-(-t // TARGET_CHUNK), ex, TARGET_CHUNK, t)
    args = [(masks_f, att[t0:t1], np.ascontiguousarray(y[:, t0:t1])) for t0, t1 in blocks]
    parts = dict(ex.map(correlations, args, gpus=0, desc="lds"))
    per = np.concatenate([parts[i] for i in range(len(blocks))])
    ok = per[np.isfinite(per)]
    mean = float(ok.mean()) if ok.size else float("nan")
    lo = hi = float("nan")
    if ok.size and n_boot:
        shared = ex.share(ok)
        ranges = _task_ranges(-(-n_boot // BOOT_CHUNK), ex, 1, -(-n_boot // BOOT_CHUNK))
        got = dict(ex.map(boot_means, [(shared, seed, c0, c1, n_boot) for c0, c1 in ranges], gpus=0, desc="lds"))
        boots = np.concatenate([got[i] for i in range(len(ranges))])
        lo, hi = (float(v) for v in np.quantile(boots, [(1 - level) / 2, (1 + level) / 2]))
    return LDS(mean=mean, ci=(lo, hi), per_target=per, n_subsets=int(m.shape[0]))


def correlations(masks: F64, attributions: F64, outcomes: F64) -> F64:
    """The task of the correlations: the Spearman correlation per test example of a block
    (whole :data:`TARGET_CHUNK` chunks from the block's start), one chunk's predictions
    ``masks @ attributions.T`` at a time.

    Parameters
    ----------
    masks : ndarray of float64, shape (M, N)
        The subsets, as 0 / 1.
    attributions : ndarray of float64, shape (t, N)
        The block's attributions (NaN already 0).
    outcomes : ndarray of float64, shape (M, t)
        The block's outcomes per subset.

    Returns
    -------
    ndarray of float64, shape (t,)
    """
    out = np.empty(attributions.shape[0])
    for c0 in range(0, attributions.shape[0], TARGET_CHUNK):
        pred = masks @ attributions[c0 : c0 + TARGET_CHUNK].T
        for k in range(pred.shape[1]):
            out[c0 + k] = spearman(pred[:, k], outcomes[:, c0 + k])[0]
    return out


def boot_means(ok: F64, seed: int, c0: int, c1: int, n_boot: int) -> F64:
    """The task of the bootstrap: the means of resample chunks ``[c0, c1)`` (of
    :data:`BOOT_CHUNK` resamples of ``ok``, the last chunk cut at ``n_boot``), chunk ``c``
    drawn from ``SeedSequence(seed, spawn_key=(c,))``."""
    out = []
    for c in range(c0, c1):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(c,)))
        size = min(BOOT_CHUNK, n_boot - c * BOOT_CHUNK)
        out.append(ok[rng.integers(0, ok.size, (size, ok.size))].mean(axis=1))
    return np.concatenate(out)


def _task_ranges(n_chunks: int, executor: Executor, chunk: int, end: int) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges of whole chunks (of ``chunk`` units, the last cut at
    ``end``): one per worker of ``executor`` (one in all on a one-worker executor)."""
    per = -(-n_chunks // max(1, min(n_chunks, executor.workers())))
    size = max(1, per) * chunk
    return [(s, min(s + size, end)) for s in range(0, end, size)] or [(0, 0)]
