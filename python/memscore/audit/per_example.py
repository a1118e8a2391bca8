"""An ε lower bound per example, from many runs: each example's in-runs and out-runs are its trials."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from .._validate import as_mask, check_choice, check_int, check_real, to_numpy
from .bounds import (
    DIRECTIONS,
    METHODS,
    AuditResult,
    _best_of,
    _check_delta_alpha,
    _check_threshold,
    _signs,
    _split,
)

__all__ = ["per_example_epsilon"]


def per_example_epsilon(
    scores: npt.ArrayLike,
    masks: npt.ArrayLike,
    *,
    delta: float = 0.0,
    alpha: float = 0.05,
    threshold: Any = None,
    method: str = "clopper-pearson",
    direction: str = "greater",
    seed: int = 0,
) -> pl.DataFrame:
    """:func:`~memscore.audit.epsilon_lower_bound` for every example, its runs as the trials.

    Column i of ``scores`` holds the score of example i under each run, ``masks`` whether
    the run trained on it. Each example's bound holds with probability ≥ 1 - ``alpha`` on
    its own (not simultaneously over the examples: about ``alpha`` of N examples can exceed
    their true ε). NaN scores (a score undefined for that run, as LiRA's where an example
    lacks shadows) are dropped; ``n_in`` and ``n_out`` count the trials kept. A split
    (the default) draws example i's halves with ``numpy.random.default_rng([seed, i])``.

    Parameters
    ----------
    scores : array-like of real numbers, shape (R, N)
        Per-run membership scores, higher = more likely a member (LiRA's, RMIA's, or φ).
    masks : array-like of bool, shape (R, N)
        ``masks[r, i]``: run r trained on example i.
    delta, alpha, threshold, method, direction, seed
        As :func:`~memscore.audit.epsilon_lower_bound` (a threshold or grid applies to
        every example).

    Returns
    -------
    polars.DataFrame
        One row per example: ``index``, ``epsilon``, ``threshold``, ``direction``,
        ``fpr``, ``fnr``, ``fpr_upper``, ``fnr_upper``, ``n_in``, ``n_out`` and, for
        ``method="gdp"``, ``mu``. Rates are those of the trials the bound was computed on
        (half of them for a split); an example without trials has epsilon 0.

    Raises
    ------
    TypeError, ValueError
        As :func:`~memscore.audit.epsilon_lower_bound`; shapes that differ; infinite scores.

    Examples
    --------
    >>> import numpy as np
    >>> from memscore.audit import per_example_epsilon
    >>> rng = np.random.default_rng(0)
    >>> masks = rng.random((64, 3)) < 0.5
    >>> scores = rng.normal(size=(64, 3)) + np.where(masks, [0.0, 3.0, 9.0], 0.0)
    >>> per_example_epsilon(scores, masks, threshold=1.5)["epsilon"].round(2).to_list()
    [0.0, 1.41, 2.18]
    """
    sa = to_numpy(scores, "scores")
    check_real(sa, "scores")
    if sa.ndim != 2:
        raise ValueError(f"scores: expected an (R, N) array of per-run scores, got shape {sa.shape}")
    s = np.asarray(sa, dtype=np.float64)
    mk = as_mask(masks, "masks", ndim=2)
    if mk.shape != s.shape:
        raise ValueError(f"masks: expected shape {s.shape} as scores, got {mk.shape}")
    if np.isinf(s).any():
        raise ValueError("scores: contains infinite values")
    d, a = _check_delta_alpha(delta, alpha)
    meth = check_choice(method, "method", METHODS)
    if meth == "gdp" and d == 0.0:
        raise ValueError("delta: method='gdp' needs delta > 0, got 0.0")
    signs = _signs(check_choice(direction, "direction", DIRECTIONS))
    sd = check_int(seed, "seed", 0)
    choice, grid = _check_threshold(threshold)
    rows: list[AuditResult | None] = []
    for i in range(s.shape[1]):
        keep = ~np.isnan(s[:, i])
        x, m = s[keep, i], mk[keep, i]
        if x.size == 0:
            rows.append(None)
        elif choice == "split":
            rows.append(_split(x, m, d, a, meth, signs, [sd, i]))
        else:
            assert grid is not None
            rows.append(_best_of(x, m, grid, d, a, meth, signs, choice))
    return _table(rows, mk, ~np.isnan(s), meth)


def _table(
    rows: list[AuditResult | None], masks: npt.NDArray[np.bool_], kept: npt.NDArray[np.bool_], method: str
) -> pl.DataFrame:
    nan = float("nan")

    def col(name: str, missing: Any) -> list[Any]:
        return [missing if r is None else getattr(r, name) for r in rows]

    data: dict[str, Any] = {
        "index": pl.Series("index", np.arange(len(rows), dtype=np.int64)),
        "epsilon": pl.Series("epsilon", col("epsilon", 0.0), dtype=pl.Float64),
        "threshold": pl.Series("threshold", col("threshold", nan), dtype=pl.Float64, nan_to_null=False),
        "direction": pl.Series("direction", col("direction", None), dtype=pl.String),
    }
    for name in ("fpr", "fnr", "fpr_upper", "fnr_upper"):
        data[name] = pl.Series(name, col(name, nan), dtype=pl.Float64, nan_to_null=False)
    data["n_in"] = pl.Series("n_in", (masks & kept).sum(axis=0).astype(np.int64))
    data["n_out"] = pl.Series("n_out", (~masks & kept).sum(axis=0).astype(np.int64))
    if method == "gdp":
        data["mu"] = pl.Series("mu", col("mu", 0.0), dtype=pl.Float64)
    return pl.DataFrame(data)
