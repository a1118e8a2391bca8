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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import _core
from .._validate import ArrayLike, as_mask, as_outcomes, check_float, check_int, check_runs, to_numpy
from .bits import PackedBits

__all__ = ["Datamodels", "datamodels", "split_rows"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


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
    """

    weights: F32
    bias: F64
    lam: F64
    lam_max: F64
    val_mse: F64
    sweeps: int

    def predict(self, masks: ArrayLike | PackedBits) -> F64:
        """Predicted outcomes ``(R, T)`` of runs with the given ``(R, N)`` masks."""
        m = as_mask(masks)
        if m.shape[1] != self.weights.shape[1]:
            raise ValueError(f"masks: expected {self.weights.shape[1]} columns (training examples), got {m.shape[1]}")
        pred: F64 = m.astype(np.float64) @ self.weights.T.astype(np.float64) + self.bias
        return pred


def split_rows(n: int, fraction: float, seed: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(kept, held-out) row indices: ``round(fraction * n)`` rows (at least one) drawn at random.

    Raises
    ------
    ValueError
        Fewer than two rows, or ``fraction`` outside (0, 1).
    """
    frac = check_float(fraction, "fraction", 0.0, 1.0, low_open=True, high_open=True)
    if n < 2:
        raise ValueError(f"need at least two runs to hold some out, got {n}")
    n_out = min(max(1, round(frac * n)), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_out:]).astype(np.int64), np.sort(perm[:n_out]).astype(np.int64)


def _float_outcomes(x: Any, name: str) -> F64:
    """Outcomes as finite float64 (bool correctness becomes 0 / 1)."""
    a = as_outcomes(x, name)
    return np.ascontiguousarray(a, dtype=np.float64)


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
        Points on the path (geometric from ``lam_max``; to ``lam`` when it is fixed).
    lambda_ratio : float, default 1e-3
        Smallest λ of the path as a fraction of ``lam_max`` (path mode), in (0, 1].
    tol : float, default 1e-4
        A λ is done when no weight moved by more than ``tol`` x the largest weight of its
        target in a sweep (and the KKT conditions hold for the features left out).
    max_iter : int, default 1000
        Sweeps per λ at most.
    patience : int or None, default 10
        Without a fixed ``lam``: stop the path of a block of targets once none of them
        improved its held-out MSE for this many consecutive λ (smaller λ only overfit
        further, and cost the most); None runs the whole path.

    Returns
    -------
    Datamodels
        Weights (T, N) float32, bias (T,), the chosen λ, ``lam_max``, the held-out MSE.

    Raises
    ------
    TypeError
        Wrong dtypes.
    ValueError
        Shapes disagree, NaN / infinite outcomes, ``lam <= 0``, too few runs to hold any out,
        settings out of range.

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
    lam_arr: F64 | None = None
    if lam is not None:
        la = to_numpy(lam, "lam")
        if not (np.issubdtype(la.dtype, np.floating) or np.issubdtype(la.dtype, np.integer)) or la.dtype == np.bool_:
            raise TypeError(f"lam: expected a number or an array of numbers, got dtype {la.dtype}")
        if la.shape not in ((), (t,)):
            raise ValueError(f"lam: expected one value or {t} (one per target), got shape {la.shape}")
        lam_arr = np.ascontiguousarray(np.broadcast_to(la.astype(np.float64), (t,)))
        if not (np.isfinite(lam_arr).all() and (lam_arr > 0).all()):
            raise ValueError(f"lam: expected positive finite values (one, or {t} per target), got {la!r}")
    settings: dict[str, Any] = {
        "n_lambdas": check_int(n_lambdas, "n_lambdas", 1),
        "lambda_ratio": check_float(lambda_ratio, "lambda_ratio", 0.0, 1.0, low_open=True),
        "tol": check_float(tol, "tol", 0.0, low_open=True),
        "max_iter": check_int(max_iter, "max_iter", 1),
        "patience": 0 if patience is None else check_int(patience, "patience", 1),
    }
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
        keep, held = split_rows(m.shape[0], val_fraction, check_int(seed, "seed"))
        # The core reads both splits from the one mask matrix by row index: no copy of it.
        rows, val_rows = keep.astype(np.int64), held.astype(np.int64)
        y, vy = np.ascontiguousarray(y[keep]), np.ascontiguousarray(y[held])
    w, b, lam_out, lam_max, mse, sweeps = _core.datamodels_fit(
        m.bits,
        y,
        m.n,
        lam=lam_arr,
        val_masks=None if vm is None else vm.bits,
        val_outcomes=vy,
        rows=rows,
        val_rows=val_rows,
        **settings,
    )
    return Datamodels(weights=w, bias=b, lam=lam_out, lam_max=lam_max, val_mse=mse, sweeps=int(sweeps))
