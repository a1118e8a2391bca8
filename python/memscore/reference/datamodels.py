"""Reference datamodels and LDS: scikit-learn's ``Lasso`` per target and scipy's Spearman.

Datamodels (Ilyas et al. 2022) per test example ``t``: minimize
``(1 / 2R) ‖y_t − X w − b‖² + lam ‖w‖₁`` over ``w`` and ``b``, with ``X`` the ``(R, N)``
0/1 masks. This is exactly scikit-learn's ``Lasso`` objective with ``alpha = lam`` and
``fit_intercept=True``. ``lam_max = max_j |X_cⱼᵀ y_c| / R`` (``X_c``, ``y_c`` centered)
is the smallest λ at which every weight is zero.

LDS (Park et al. 2023): per test example, the Spearman correlation over held-out subsets
between the summed attributions of each subset and the outcome observed when training on
it; the score is the mean over test examples.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

__all__ = ["lam_max", "datamodels_lasso", "lds"]


def lam_max(masks: npt.NDArray[np.bool_], outcomes: F64) -> F64:
    """``(T,)`` the smallest λ with all-zero weights, per target."""
    x = masks.astype(np.float64)
    xc = x - x.mean(axis=0)
    yc = outcomes - outcomes.mean(axis=0)
    out: F64 = np.abs(xc.T @ yc).max(axis=0) / x.shape[0]
    return out


def datamodels_lasso(
    masks: npt.NDArray[np.bool_],
    outcomes: F64,
    *,
    lam: float | F64 | None = None,
    val_masks: npt.NDArray[np.bool_] | None = None,
    val_outcomes: F64 | None = None,
    n_lambdas: int = 100,
    lambda_ratio: float = 1e-3,
    tol: float = 1e-4,
    max_iter: int = 1000,
    targets: Any = None,
) -> tuple[F64, F64, F64]:
    """(weights (T, N), bias (T,), λ (T,)) from one scikit-learn ``Lasso`` per target.

    With ``lam`` the fit at that λ; otherwise the path ``lam_max · ratio^(k / (K − 1))``
    with warm starts, each target keeping the λ of the smallest MSE on the validation runs.
    ``targets`` restricts the fit to those columns of ``outcomes`` (for timing slices).
    """
    from sklearn.linear_model import Lasso

    x = masks.astype(np.float64)
    cols = np.arange(outcomes.shape[1]) if targets is None else np.asarray(targets)
    lmax = lam_max(masks, outcomes[:, cols])
    weights = np.zeros((cols.size, x.shape[1]))
    bias = np.zeros(cols.size)
    chosen = np.zeros(cols.size)
    xv = None if val_masks is None else val_masks.astype(np.float64)
    for i, t in enumerate(cols):
        y = outcomes[:, t]
        if lam is not None:
            lt = float(np.broadcast_to(np.asarray(lam, dtype=np.float64), outcomes.shape[1:])[t])
            path = [lt] if lt >= lmax[i] else list(lmax[i] * (lt / lmax[i]) ** np.linspace(0, 1, n_lambdas))
        else:
            path = list(lmax[i] * lambda_ratio ** np.linspace(0, 1, n_lambdas))
        model = Lasso(alpha=path[0], tol=tol, max_iter=max_iter, warm_start=True, selection="cyclic")
        best = np.inf
        for a in path:
            if a <= 0:  # a constant target: lam_max = 0, the fit is its mean
                weights[i], bias[i], chosen[i] = 0.0, y.mean(), 0.0
                break
            model.set_params(alpha=a)
            model.fit(x, y)
            if lam is None:
                assert xv is not None and val_outcomes is not None
                mse = float(np.mean((val_outcomes[:, t] - xv @ model.coef_ - model.intercept_) ** 2))
                if mse < best:
                    best = mse
                    weights[i], bias[i], chosen[i] = model.coef_, model.intercept_, a
            else:
                weights[i], bias[i], chosen[i] = model.coef_, model.intercept_, a
    return weights, bias, chosen


def lds(attributions: F64, masks: npt.NDArray[np.bool_], outcomes: F64) -> F64:
    """``(T,)`` per-test-example LDS: Spearman (scipy, average ranks for ties) between
    ``masks @ attributions[t]`` and ``outcomes[:, t]`` over the ``M`` subsets."""
    from scipy.stats import spearmanr

    pred = masks.astype(np.float64) @ attributions.T
    out = np.full(attributions.shape[0], np.nan)
    for t in range(attributions.shape[0]):
        if np.ptp(pred[:, t]) > 0 and np.ptp(outcomes[:, t]) > 0:
            out[t] = spearmanr(pred[:, t], outcomes[:, t]).statistic
    return out
