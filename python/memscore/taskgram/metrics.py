"""Distributional memorization and generalization (Wang et al. 2024).

Given, per example, the task-gram log-probability log p_TG and the LM log-probability log p_LM:

- **distributional memorization** = Spearman's rank correlation ρ(p_TG, p_LM): how closely the
  LM's preferences follow the pretraining co-occurrence statistics;
- **distributional generalization** = the Kendall-τ distance (1 − τ_b) / 2 between the two
  rankings, in [0, 1]: the fraction of discordant example pairs (ties counted half).

Both come with scipy's two-sided p-value for "no association" (for the distance, the p-value of
τ itself). scipy is imported lazily: install it with ``pip install "memscore[taskgram]"`` (or
``memscore[dev]``). Pairs where either value is NaN or infinite are left out.

A correlation that cannot be computed (fewer than 3 finite examples, or one side the same for
every example: a corpus where no input n-gram occurs gives a constant log p_TG) is NaN and
comes with an :class:`UndefinedCorrelationWarning` that says why (and, from
:func:`distributional_table`, names the group: task, model, n).
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import numpy as np
import polars as pl

from .._stats import spearman, spearman_pvalue

__all__ = [
    "Correlation",
    "UndefinedCorrelationWarning",
    "distributional_generalization",
    "distributional_memorization",
    "distributional_table",
]


class Correlation(NamedTuple):
    """A statistic, its two-sided p-value and the number of (finite) examples it used."""

    statistic: float
    pvalue: float
    n: int


class UndefinedCorrelationWarning(UserWarning):
    """A correlation is NaN because it cannot be computed; the message says why."""


def _stats() -> Any:
    try:
        from scipy import stats
    except ImportError as e:  # pragma: no cover - scipy is in the dev extra
        raise ImportError(
            'distributional metrics need scipy: pip install "memscore[taskgram]" (or pip install scipy)'
        ) from e
    return stats


def _finite_pair(p_tg: Any, p_lm: Any) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(p_tg, dtype=np.float64)
    b = np.asarray(p_lm, dtype=np.float64)
    if a.ndim != 1 or b.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"p_tg, p_lm: expected two 1-d arrays of equal length, got shapes {a.shape} and {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep]


def _undefined(a: np.ndarray, b: np.ndarray, total: int) -> str:
    """Why no rank correlation of the finite pairs ``a``, ``b`` (of ``total``) exists ("" if it does)."""
    if a.size < 3:
        return f"only {a.size} of {total} examples have a finite log p_TG and log p_LM (3 are needed)"
    for name, v in (("log p_TG", a), ("log p_LM", b)):
        if np.ptp(v) == 0:
            return f"{name} is the same ({v[0]:.4g}) for all {v.size} examples, so there is no ranking to compare"
    return ""


def _undefined_warning(what: str, why: str) -> None:
    warnings.warn(f"{what}: NaN because {why}", UndefinedCorrelationWarning, stacklevel=3)


def _memorization(a: np.ndarray, b: np.ndarray) -> Correlation:
    _stats()  # the p-value needs scipy: say so here rather than return a NaN p-value
    rho, n = spearman(a, b)  # memscore's one Spearman (memscore.spearman), scipy's p-value
    return Correlation(rho, spearman_pvalue(rho, n), n)


def _generalization(a: np.ndarray, b: np.ndarray) -> Correlation:
    r = _stats().kendalltau(a, b)
    return Correlation(float((1.0 - r.statistic) / 2.0), float(r.pvalue), int(a.size))


def distributional_memorization(p_tg: Any, p_lm: Any) -> Correlation:
    """Spearman ρ between task-gram and LM (log-)probabilities, with its p-value.

    Ranks are invariant to the log, so probabilities or log-probabilities give the same ρ.
    Pairs where either value is NaN or infinite are left out.

    Parameters
    ----------
    p_tg, p_lm : array-like of float, shape (n,)
        Task-gram and LM (log-)probabilities per example.

    Returns
    -------
    Correlation
        ``(statistic, pvalue, n)``; NaN with fewer than 3 finite pairs or a constant input.

    Warns
    -----
    UndefinedCorrelationWarning
        When the statistic is NaN, saying why.

    Raises
    ------
    ValueError
        Inputs of different shapes or not 1-D.
    ImportError
        scipy is not installed (for the p-value).

    Examples
    --------
    >>> distributional_memorization([1, 2, 3, 4], [1, 3, 2, 4]).statistic
    0.8
    """
    a, b = _finite_pair(p_tg, p_lm)
    why = _undefined(a, b, int(np.size(p_tg)))
    if why:
        _undefined_warning("distributional_memorization", why)
        return Correlation(float("nan"), float("nan"), int(a.size))
    return _memorization(a, b)


def distributional_generalization(p_tg: Any, p_lm: Any) -> Correlation:
    """Kendall-τ distance (1 − τ_b) / 2 between task-gram and LM rankings, with τ's p-value.

    0 = the LM orders examples exactly as the task-gram model does; 1 = exactly reversed;
    about 1/2 = unrelated.

    Parameters
    ----------
    p_tg, p_lm : array-like of float, shape (n,)
        Task-gram and LM (log-)probabilities per example.

    Returns
    -------
    Correlation
        ``(statistic, pvalue, n)``; NaN with fewer than 3 finite pairs or a constant input.

    Warns
    -----
    UndefinedCorrelationWarning
        When the statistic is NaN, saying why.

    Raises
    ------
    ValueError
        Inputs of different shapes or not 1-D.
    ImportError
        scipy is not installed.

    Examples
    --------
    >>> distributional_generalization([1, 2, 3], [3, 2, 1]).statistic
    1.0
    """
    a, b = _finite_pair(p_tg, p_lm)
    why = _undefined(a, b, int(np.size(p_tg)))
    if why:
        _undefined_warning("distributional_generalization", why)
        return Correlation(float("nan"), float("nan"), int(a.size))
    return _generalization(a, b)


def distributional_table(
    scores: pl.DataFrame,
    by: tuple[str, ...] | list[str] = ("task", "model"),
    tg: str = "logp_tg",
    lm: str = "logp_lm",
) -> pl.DataFrame:
    """Distributional memorization and generalization per group.

    Parameters
    ----------
    scores : polars.DataFrame
        One row per example with the columns ``by``, ``tg`` and ``lm``.
    by : sequence of str, default ("task", "model")
        Grouping columns.
    tg, lm : str
        The task-gram and LM log-probability columns.

    Returns
    -------
    polars.DataFrame
        One row per group: the ``by`` columns, ``n_examples`` (finite pairs used),
        ``memorization_rho``, ``memorization_p``, ``generalization_tau_dist``,
        ``generalization_p``.

    Warns
    -----
    UndefinedCorrelationWarning
        Once per group whose statistics are NaN, naming the group and saying why.

    Raises
    ------
    ValueError
        A column is missing.
    """
    keys = list(by)
    missing = [c for c in [*keys, tg, lm] if c not in scores.columns]
    if missing:
        raise ValueError(f"scores: missing columns {missing}, got {scores.columns}")
    rows = []
    for group_key, g in scores.group_by(keys, maintain_order=True):
        a, b = _finite_pair(g[tg].to_numpy(), g[lm].to_numpy())
        why = _undefined(a, b, g.height)
        if why:
            group = ", ".join(f"{k}={v!r}" for k, v in zip(keys, group_key, strict=True))
            _undefined_warning(f"{group}: memorization and generalization", why)
            mem = gen = Correlation(float("nan"), float("nan"), int(a.size))
        else:
            mem, gen = _memorization(a, b), _generalization(a, b)
        rows.append(
            {
                **dict(zip(keys, group_key, strict=True)),
                "n_examples": mem.n,
                "memorization_rho": mem.statistic,
                "memorization_p": mem.pvalue,
                "generalization_tau_dist": gen.statistic,
                "generalization_p": gen.pvalue,
            }
        )
    schema = {k: scores.schema[k] for k in keys} | {
        "n_examples": pl.Int64,
        "memorization_rho": pl.Float64,
        "memorization_p": pl.Float64,
        "generalization_tau_dist": pl.Float64,
        "generalization_p": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema)
