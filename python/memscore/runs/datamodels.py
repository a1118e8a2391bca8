"""Datamodels (Ilyas et al. 2022): a sparse linear model per test example, fitted on the
training runs' masks.

For test example ``t`` the datamodel predicts its outcome in a run from the run's mask:
``outcome[r, t] ≈ bias[t] + masks[r] @ weights[t]``. The weights are the ℓ1-regularized
least-squares fit (the objective of scikit-learn's ``Lasso``, so its ``alpha`` is ``lam``)::

    (1 / 2R) ‖outcomes[:, t] − masks @ w − b‖² + lam[t] ‖w‖₁

λ runs down a geometric path from ``lam_max[t]`` (the smallest λ with all-zero weights)
with warm starts, and each target keeps the λ with the smallest mean squared error on
held-out runs (MadryLab's ``fast_l1`` protocol). The Rust core fits all targets at once
over the bit-packed masks (``memscore_core::runs::lasso``).

Split → task → merge: each target's path is its own (the core fits targets in blocks of
:data:`CORE_BLOCK` that share nothing but the masks), so the targets are split into blocks
whose bounds are multiples of :data:`CORE_BLOCK`, a task (:func:`fit_block`) fits one block
(on an ``executor=``'s workers), and the merge puts each block's rows in place: the result
is bit for bit the one-call fit, whichever executor ran the blocks and however many there
were.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import _core
from .._validate import (
    ArrayLike,
    as_mask,
    as_outcomes,
    check_float,
    check_int,
    check_runs,
    check_summable,
    to_numpy,
)
from ..executors import Executor, ExecutorLike, as_executor
from .bits import PackedBits

__all__ = ["CORE_BLOCK", "ConvergenceWarning", "Datamodels", "datamodels", "fit_block", "split_rows", "target_blocks"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: Targets the Rust core fits together (``memscore_core::runs::lasso::BLOCK``): the early
#: stop on the path (``patience``) is decided per such block, so a split of the targets
#: must fall on its multiples for the blocks to equal the one-call fit.
CORE_BLOCK = 32

#: Upper bounds of the solver settings: points on the λ path and sweeps per λ.
MAX_LAMBDAS = 1000
MAX_ITER = 10**6

#: What one block's fit returns: weights, bias, lam, lam_max, val_mse, sweeps, converged,
#: steps.
BlockFit = tuple[F32, F64, F64, F64, F64, int, npt.NDArray[np.bool_], I64]


class ConvergenceWarning(UserWarning):
    """Some λ of a datamodels path stopped at ``max_iter`` sweeps without meeting ``tol``
    (its weights are the last iterate, not a solution): see ``Datamodels.converged``."""


@dataclass(frozen=True)
class Datamodels:
    """Fitted datamodels for T test examples over N training examples.

    Attributes
    ----------
    weights : ndarray of float32, shape (T, N)
        ``weights[t, i]``: the effect on test example t's outcome of training on example i
        (an attribution matrix, like :func:`memscore.influence`'s).
    bias : ndarray of float64, shape (T,)
        Intercepts: the predicted outcome of a run that trained on nothing.
    lam : ndarray of float64, shape (T,)
        The λ of each target's weights.
    lam_max : ndarray of float64, shape (T,)
        The smallest λ with all-zero weights.
    val_mse : ndarray of float64, shape (T,)
        Mean squared error on the held-out runs (NaN when none were used).
    sweeps : int
        Coordinate-descent sweeps run (summed over blocks of targets).
    converged : ndarray of bool, shape (T, n_lambdas)
        ``converged[t, k]``: step k of target t's λ path met ``tol`` within ``max_iter``
        sweeps. Steps after the path stopped early (``patience``) are True: nothing was
        cut short there.
    steps : ndarray of int64, shape (T,)
        Steps of each target's path that were run (``n_lambdas`` unless ``patience``
        stopped the path).
    """

    weights: F32
    bias: F64
    lam: F64
    lam_max: F64
    val_mse: F64
    sweeps: int
    converged: npt.NDArray[np.bool_]
    steps: I64

    @property
    def all_converged(self) -> bool:
        """Whether every λ of every target's path met ``tol``."""
        return bool(self.converged.all())

    def predict(self, masks: ArrayLike | PackedBits) -> F64:
        """Predicted outcomes ``(R, T)`` of runs with the given ``(R, N)`` masks."""
        m = as_mask(masks)
        if m.shape[1] != self.weights.shape[1]:
            raise ValueError(f"masks: expected {self.weights.shape[1]} columns (training examples), got {m.shape[1]}")
        pred: F64 = m.astype(np.float64) @ self.weights.T.astype(np.float64) + self.bias
        return pred


def split_rows(
    n: int, fraction: float, seed: int, name: str = "fraction"
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(kept, held-out) row indices: ``round(fraction * n)`` rows (at least one) drawn at random.

    ``name`` is the caller's name of ``fraction``, for messages (``val_fraction``).

    Raises
    ------
    ValueError
        Fewer than two rows, or ``fraction`` outside (0, 1).
    """
    frac = check_float(fraction, name, 0.0, 1.0, low_open=True, high_open=True)
    if n < 2:
        raise ValueError(f"need at least two runs to hold some out, got {n}")
    n_out = min(max(1, round(frac * n)), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_out:]).astype(np.int64), np.sort(perm[:n_out]).astype(np.int64)


def _float_outcomes(x: Any, name: str) -> F64:
    """Outcomes as finite float64 (bool correctness becomes 0 / 1) whose sums over the runs
    fit float32, the type the core fits in (larger ones would give inf λ and zero weights)."""
    a = np.ascontiguousarray(as_outcomes(x, name), dtype=np.float64)
    check_summable(a, name, a.shape[0], dtype=np.float32)
    return a


def datamodels(
    masks: ArrayLike | PackedBits,
    outcomes: ArrayLike | PackedBits,
    *,
    lam: float | ArrayLike | None = None,
    val_masks: ArrayLike | PackedBits | None = None,
    val_outcomes: ArrayLike | PackedBits | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    n_lambdas: int = 100,
    lambda_ratio: float = 1e-3,
    tol: float = 1e-4,
    max_iter: int = 1000,
    patience: int | None = 10,
    executor: ExecutorLike = None,
    targets_per_task: int | None = None,
    progress: bool = False,
) -> Datamodels:
    """Fit a datamodel per test example (Ilyas et al. 2022) on the runs' masks.

    Parameters
    ----------
    masks : array-like of bool or PackedBits, shape (R, N)
        True where run r trained on example i.
    outcomes : array-like of float or bool, shape (R, T)
        The outcome of each test example in each run (φ, the margin, or bool correctness).
    lam : float or array-like of float, shape (T,), optional
        Fix λ (> 0, scikit-learn's ``alpha``) for every target or per target. Without it,
        λ is chosen per target on the path by the MSE on held-out runs.
    val_masks, val_outcomes : array-like, shapes (R_v, N) and (R_v, T), optional
        The held-out runs for the choice of λ. Without them (and without ``lam``) a
        ``val_fraction`` of the runs is drawn with ``seed`` and held out.
    val_fraction : float, default 0.1
        Fraction of runs held out when no validation runs are given.
    seed : int, default 0
        Seed of that draw.
    n_lambdas : int, default 100
        Points on the path (geometric from ``lam_max``; to ``lam`` when it is fixed),
        1 to 1000.
    lambda_ratio : float, default 1e-3
        Smallest λ of the path as a fraction of ``lam_max`` (path mode), in (0, 1].
    tol : float, default 1e-4
        A λ is done for a target when no weight moved by more than ``tol`` x its largest
        weight in a sweep, or its duality gap is at most ``tol * ‖y_c‖² / R``
        (scikit-learn's two tests), and the KKT conditions hold for the features left out.
    max_iter : int, default 1000
        Sweeps per λ at most, 1 to 10**6. A λ cut short there is reported in
        ``Datamodels.converged`` and by a :class:`ConvergenceWarning`.
    patience : int or None, default 10
        Without a fixed ``lam``: stop the path of a block of targets once none of them
        improved its held-out MSE for this many consecutive λ (smaller λ only overfit
        further, and cost the most); None runs the whole path.
    executor : None, str or Executor, optional
        Who fits the blocks of targets (:func:`memscore.executors.as_executor`): None /
        ``"local"`` (one task in this process), ``"threads[:N]"``, ``"ray[...]"`` or an
        instance. The weights are the same under every executor, bit for bit.
    targets_per_task : int, optional
        Targets one task fits, rounded up to a multiple of 32 (the core's block).
        Default: one task locally, else the targets spread over the executor's workers.
    progress : bool, default False
        Show a progress bar over the targets.

    Returns
    -------
    Datamodels
        Weights (T, N) float32, bias (T,), the chosen λ, ``lam_max``, the held-out MSE,
        and whether each λ of each target's path converged.

    Warns
    -----
    ConvergenceWarning
        Some λ of some target's path stopped at ``max_iter`` sweeps.

    Raises
    ------
    TypeError
        Wrong dtypes.
    ValueError
        Shapes disagree, NaN / infinite outcomes or outcomes too large for the float32 fit
        (``|outcomes| * R`` beyond about 1.7e38), ``lam <= 0``, too few runs to hold any
        out, settings out of range (``n_lambdas`` above 1000, ``max_iter`` above 10**6).
    memscore.ClusterError
        The executor's workers cannot run a task (or lost one too often).

    Examples
    --------
    >>> import numpy as np, memscore
    >>> rng = np.random.default_rng(0)
    >>> masks = rng.random((200, 10)) < 0.5
    >>> outcomes = 2.0 * masks[:, [3]] + 1.0
    >>> dm = memscore.datamodels(masks, outcomes, lam=1e-3)
    >>> int(np.argmax(dm.weights[0])), round(float(dm.weights[0, 3]), 2), round(float(dm.bias[0]), 2)
    (3, 2.0, 1.0)
    """
    m = as_mask(masks, packed=True)
    y = _float_outcomes(outcomes, "outcomes")
    check_runs(m, y, "outcomes", same_cols=False)
    t = y.shape[1]
    lam_arr = check_lam(lam, t)
    settings = check_settings(n_lambdas, lambda_ratio, tol, max_iter, patience)
    ex = as_executor(executor)
    if (val_masks is None) != (val_outcomes is None):
        raise ValueError("val_masks and val_outcomes must be given together")
    vm: PackedBits | None = None
    vy: F64 | None = None
    rows: npt.NDArray[np.int64] | None = None
    val_rows: npt.NDArray[np.int64] | None = None
    if val_masks is not None:
        vm = as_mask(val_masks, "val_masks", packed=True)
        vy = _float_outcomes(val_outcomes, "val_outcomes")
        check_runs(vm, vy, "val_outcomes", same_cols=False)
        if vm.shape[1] != m.shape[1]:
            raise ValueError(f"val_masks: has {vm.shape[1]} examples but masks has {m.shape[1]}")
        if vy.shape[1] != t:
            raise ValueError(f"val_outcomes: has {vy.shape[1]} test examples but outcomes has {t}")
    elif lam_arr is None:
        keep, held = split_rows(m.shape[0], val_fraction, check_int(seed, "seed"), "val_fraction")
        # The core reads both splits from the one mask matrix by row index: no copy of it.
        rows, val_rows = keep.astype(np.int64), held.astype(np.int64)
    ex.start(gpus=0)  # the fit runs on CPUs whatever gpus_per_task says
    blocks = target_blocks(t, ex, targets_per_task)
    # the masks go to the workers once (Ray's object store), each task gets its columns
    bits, vbits = ex.share(m.bits), (None if vm is None else ex.share(vm.bits))
    fit = FitArgs(lam=lam_arr, rows=rows, val_rows=val_rows, settings=settings, threads=task_threads(ex))
    args = [
        (bits, m.n, _columns(y, t0, t1), vbits, None if vy is None else _columns(vy, t0, t1), fit.block(t0, t1))
        for t0, t1 in blocks
    ]
    done = ex.map(fit_block, args, units=[t1 - t0 for t0, t1 in blocks], **map_kw(progress))
    return merge_blocks(done, blocks, m.n, settings)


# ----------------------------------------------------------------------------- split, task, merge


def check_lam(lam: float | ArrayLike | None, t: int) -> F64 | None:
    """``lam`` as ``(t,)`` positive finite float64 (None stays None).

    Raises
    ------
    TypeError, ValueError
        Not numbers, not one value or ``t``, not positive and finite.
    """
    if lam is None:
        return None
    la = to_numpy(lam, "lam")
    if not (np.issubdtype(la.dtype, np.floating) or np.issubdtype(la.dtype, np.integer)) or la.dtype == np.bool_:
        raise TypeError(f"lam: expected a number or an array of numbers, got dtype {la.dtype}")
    if la.shape not in ((), (t,)):
        raise ValueError(f"lam: expected one value or {t} (one per target), got shape {la.shape}")
    lam_arr = np.ascontiguousarray(np.broadcast_to(la.astype(np.float64), (t,)))
    if not (np.isfinite(lam_arr).all() and (lam_arr > 0).all()):
        raise ValueError(f"lam: expected positive finite values (one, or {t} per target), got {la!r}")
    return lam_arr


def check_settings(
    n_lambdas: int = 100, lambda_ratio: float = 1e-3, tol: float = 1e-4, max_iter: int = 1000, patience: int | None = 10
) -> dict[str, Any]:
    """The solver settings of :func:`datamodels` (same defaults), checked, as the core takes them.

    Raises
    ------
    TypeError, ValueError
        A setting of the wrong type or out of range (the message names it).
    """
    return {
        "n_lambdas": check_int(n_lambdas, "n_lambdas", 1, MAX_LAMBDAS),
        "lambda_ratio": check_float(lambda_ratio, "lambda_ratio", 0.0, 1.0, low_open=True),
        "tol": check_float(tol, "tol", 0.0, low_open=True),
        "max_iter": check_int(max_iter, "max_iter", 1, MAX_ITER),
        "patience": 0 if patience is None else check_int(patience, "patience", 1),
    }


def target_blocks(t: int, executor: Executor, targets_per_task: int | None = None) -> list[tuple[int, int]]:
    """The ``[t0, t1)`` target ranges of the tasks of a fit of ``t`` targets.

    Bounds fall on multiples of :data:`CORE_BLOCK`, so the blocks' fits are the columns
    of the one-call fit whatever the split. Default: one task on a one-worker executor
    (the core already runs its blocks on every thread), else one per worker.

    Raises
    ------
    TypeError, ValueError
        ``targets_per_task`` not an int >= 1.
    """
    n_core = -(-t // CORE_BLOCK)
    if targets_per_task is not None:
        per_task = -(-check_int(targets_per_task, "targets_per_task", 1) // CORE_BLOCK)
    else:
        per_task = -(-n_core // max(1, min(n_core, executor.workers())))
    size = max(1, per_task) * CORE_BLOCK
    return [(t0, min(t0 + size, t)) for t0 in range(0, t, size)] or [(0, 0)]


def task_threads(executor: Executor) -> int | None:
    """The kernel threads of a task: None (this process's pool, shared) in process; on
    a cluster, the task's CPUs (a worker's pool would otherwise take every CPU of its node)."""
    if executor.in_process:
        return None
    return max(1, int(executor.cpus_per_task))


@dataclass(frozen=True)
class FitArgs:
    """What every block's fit shares: the fixed λ (per target, or None), the fitting and
    held-out rows of the masks (or None), the solver settings, the kernel threads."""

    lam: F64 | None
    rows: I64 | None
    val_rows: I64 | None
    settings: dict[str, Any]
    threads: int | None

    def block(self, t0: int, t1: int) -> FitArgs:
        """These arguments for targets ``[t0, t1)`` (the λ of those targets)."""
        lam = None if self.lam is None else np.ascontiguousarray(self.lam[t0:t1])
        return FitArgs(lam=lam, rows=self.rows, val_rows=self.val_rows, settings=self.settings, threads=self.threads)


def fit_block(
    bits: npt.NDArray[np.uint8],
    n: int,
    y: F64,
    val_bits: npt.NDArray[np.uint8] | None,
    val_y: F64 | None,
    fit: FitArgs,
) -> BlockFit:
    """The task: datamodels of one block of targets (trusted, checked inputs).

    Parameters
    ----------
    bits : ndarray of uint8, shape (R, ceil(N / 8))
        Packed masks of every run.
    n : int
        Training examples N.
    y : ndarray of float64, shape (R, t1 - t0)
        The block's outcomes in every run (the rows of ``fit.rows`` / ``fit.val_rows``
        are taken here when the runs are split).
    val_bits, val_y : ndarray, optional
        Separate held-out runs' packed masks and the block's outcomes in them.
    fit : FitArgs
        See :class:`FitArgs` (``lam`` already the block's).

    Returns
    -------
    tuple
        ``(weights, bias, lam, lam_max, val_mse, sweeps, converged, steps)`` of the block.
    """
    if fit.threads is not None and fit.threads != _core.get_num_threads():
        _core.set_num_threads(min(fit.threads, 4 * (os.cpu_count() or 1)))
    if fit.rows is not None and fit.val_rows is not None:
        y, val_y = np.ascontiguousarray(y[fit.rows]), np.ascontiguousarray(y[fit.val_rows])
    w, b, lam, lam_max, mse, sweeps, converged, steps = _core.datamodels_fit(
        bits,
        y,
        n,
        lam=fit.lam,
        val_masks=val_bits,
        val_outcomes=val_y,
        rows=fit.rows,
        val_rows=fit.val_rows,
        **fit.settings,
    )
    return w, b, lam, lam_max, mse, int(sweeps), converged, steps.astype(np.int64)


def merge_blocks(results: Any, blocks: Sequence[tuple[int, int]], n: int, settings: dict[str, Any]) -> Datamodels:
    """The :class:`Datamodels` of every target from ``(i, block fit)`` pairs (any order):
    each block's rows put in place by its target range. Warns (:class:`ConvergenceWarning`)
    when some λ stopped at ``max_iter``."""
    t = blocks[-1][1]
    w = np.zeros((t, n), dtype=np.float32)
    vecs = [np.zeros(t), np.zeros(t), np.zeros(t), np.full(t, np.nan)]
    converged = np.ones((t, settings["n_lambdas"]), dtype=bool)
    steps = np.zeros(t, dtype=np.int64)
    sweeps = [0] * len(blocks)
    for i, (bw, *cols, sw, ok, st) in results:
        t0, t1 = blocks[i]
        w[t0:t1] = bw
        for dst, src in zip(vecs, cols, strict=True):
            dst[t0:t1] = src
        sweeps[i] = sw
        converged[t0:t1], steps[t0:t1] = ok, st
    dm = Datamodels(
        weights=w, bias=vecs[0], lam=vecs[1], lam_max=vecs[2], val_mse=vecs[3], sweeps=sum(sweeps),
        converged=converged, steps=steps,
    )  # fmt: skip
    if not dm.all_converged:
        bad = ~converged.all(axis=1)
        warnings.warn(
            f"datamodels: {int((~converged).sum())} λ steps, of {int(bad.sum())} of {t} targets (first: target "
            f"{int(np.argmax(bad))}), stopped at max_iter={settings['max_iter']} sweeps without meeting "
            f"tol={settings['tol']:g}; their weights are the last iterate (see Datamodels.converged; raise "
            "max_iter or tol)",
            ConvergenceWarning,
            stacklevel=3,
        )
    return dm


def _columns(y: F64, t0: int, t1: int) -> F64:
    """Columns ``[t0, t1)`` of ``y``, contiguous (``y`` itself when that is all of it)."""
    return y if (t0, t1) == (0, y.shape[1]) else np.ascontiguousarray(y[:, t0:t1])


def map_kw(progress: bool) -> dict[str, Any]:
    """The map settings of every datamodels fit: CPU tasks, one bar over the targets."""
    return {"gpus": 0, "desc": "datamodels", "unit": "targets", "progress": progress}
