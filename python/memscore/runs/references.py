"""A budget of k reference runs per example for LiRA and RMIA.

:func:`memscore.lira` and :func:`memscore.rmia` use every other run as a reference (a
shadow model) of a target. With ``references=k`` they use, for each target run t and each
example i, exactly k runs other than t that held i out (and, online, k runs that trained on
it): the "number of reference models" of Carlini et al. 2022 (Fig. 9) and Zarifzadeh et al.
2024, per example, so no example is scored from fewer references than asked. Asking for
more than an example has is a ``ValueError`` naming the example and the numbers, never a
silently smaller budget.

Which runs (seeded, reproducible, nested): ``rng = numpy.random.default_rng(seed)`` draws
one key per (run, example), ``u = rng.random((R, N))``, then one key per run,
``v = rng.random(R)``. Example i's references for target t are the k runs s != t with the
smallest ``u[s, i]`` among those that held i out (and among those that trained on it). A
smaller budget's references are a subset of a larger one's, so a budget curve is read
along one sequence of nested reference sets. RMIA's population examples are out of every
run; their references are the runs s != t with the smallest ``v[s]``, as many as each
example has (k offline, 2k online).

The kernels are reused unchanged: for target t the chosen references are gathered, column
by column, into a small matrix with the target's row, and that row of the kernel's result
is kept (the kernels treat columns independently, and every row of the small matrix is a
genuine run's value for that example). RMIA's target is row 0 (its population rows follow
the same rows); LiRA's sits among its references in run order, as in the full score,
since LiRA sums each side in row order.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]

__all__ = ["max_references", "reference_keys", "score_with_references"]

#: A kernel on the gathered matrices: (masks, per-example values, population or None) ->
#: (rows, N) scores, one row per gathered run.
Kernel = Callable[[Mask, npt.NDArray[np.float64], "npt.NDArray[np.float64] | None"], F64]


def reference_keys(shape: tuple[int, int], seed: int) -> tuple[F64, F64]:
    """The keys that order the candidate references: ``u`` (R, N) and ``v`` (R,)."""
    rng = np.random.default_rng(seed)
    u = rng.random(shape)
    v = rng.random(shape[0])
    return u, v


def max_references(masks: Mask, online: bool) -> tuple[int, int, str]:
    """The largest budget every (target, example) pair allows, the example that limits it
    and a description of that example's runs.

    A target that trained on example i leaves the n_out(i) runs that held i out; one that
    held i out leaves n_out(i) - 1 (the least over targets, when any target held i out).
    Online the same goes for the runs that trained on i.
    """
    r = masks.shape[0]
    n_in = masks.sum(axis=0).astype(np.int64)
    n_out = r - n_in
    least_out = np.where(n_out > 0, n_out - 1, r - 1)  # with n_out == 0 no target holds i out
    least_in = np.where(n_in > 0, n_in - 1, r - 1)
    least = np.minimum(least_out, least_in) if online else least_out
    if least.size == 0:
        return r - 1, -1, ""
    i = int(np.argmin(least))
    what = f"it is held out by {int(n_out[i])} and trained on by {int(n_in[i])} of the {r} runs"
    return int(least[i]), i, what


def score_with_references(
    kernel: Kernel,
    masks: Mask,
    values: npt.NDArray[np.float64],
    population: npt.NDArray[np.float64] | None,
    k: int,
    *,
    online: bool,
    seed: int,
    name: str,
) -> F64:
    """Scores ``(R, N)`` with ``k`` references per example and side (see the module).

    Raises
    ------
    ValueError
        ``k`` exceeds what some example allows (names the example and its counts).
    """
    r, n = masks.shape
    allowed, worst, what = max_references(masks, online)
    side = "out-runs and k in-runs" if online else "out-runs"
    if k > allowed:
        raise ValueError(
            f"references: {name} asked for k = {k} reference {side} per example (besides the target), but "
            f"example {worst} has only {allowed} for some target ({what}); use references <= {allowed}"
        )
    u, v = reference_keys((r, n), seed)
    cols = np.arange(n)
    out = np.empty((r, n))
    # Per side, each column's k + 1 smallest keys once: the k smallest of the rows other than
    # a target t are those, less t where t is among the first k (keys are distinct floats).
    sides = [_ranked(np.where(~masks, u, np.inf), k)]
    if online:
        sides.append(_ranked(np.where(masks, u, np.inf), k))
    for t in range(r):
        chosen = [_without(top, t, k) for top in sides]
        refs = np.sort(np.concatenate(chosen), axis=0)  # each column's references in run order
        if population is None:
            # The target among its references in run order, as in the full score: LiRA
            # sums each side in row order, so a budget of every run gives that score bit
            # for bit. Its row differs per column.
            rows = np.sort(np.vstack([np.full((1, n), t), refs]), axis=0)
            at = (refs < t).sum(axis=0)
            out[t] = kernel(masks[rows, cols], values[rows, cols], None)[at, cols]
            continue
        rows = np.vstack([np.full((1, n), t), refs])
        v_t = v.copy()
        v_t[t] = np.inf
        pop_runs = np.sort(np.argsort(v_t, kind="stable")[: refs.shape[0]])
        out[t] = kernel(masks[rows, cols], values[rows, cols], population[np.r_[t, pop_runs]])[0]
    return out


def _ranked(keys: F64, k: int) -> I64:
    """Per column, the rows of the ``k + 1`` smallest keys in increasing key order, shape
    ``(min(k + 1, R), N)``."""
    r = keys.shape[0]
    m = min(k + 1, r)
    part = np.argpartition(keys, m - 1, axis=0)[:m] if m < r else np.tile(np.arange(r)[:, None], (1, keys.shape[1]))
    order = np.argsort(np.take_along_axis(keys, part, axis=0), axis=0, kind="stable")
    ranked: I64 = np.take_along_axis(part, order, axis=0).astype(np.int64)
    return ranked


def _without(ranked: I64, t: int, k: int) -> I64:
    """Per column, the k rows other than ``t`` with the smallest keys, shape (k, N), from
    :func:`_ranked`'s ``k + 1``: the first k, with t (if there) replaced by the (k+1)-th."""
    if k == 0:
        return np.empty((0, ranked.shape[1]), dtype=np.int64)
    first: I64 = ranked[:k].copy()
    hit = first == t
    if hit.any():
        first[hit] = np.broadcast_to(ranked[min(k, ranked.shape[0] - 1)], first.shape)[hit]
    return first
