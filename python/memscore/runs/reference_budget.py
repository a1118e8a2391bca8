"""The reference-budget curve: how LiRA and RMIA improve with the number of reference runs.

Figures that do not reproduce across papers and tools often differ in how many reference
(shadow) models were used. :func:`reference_budget` scores the same runs with k = 1, 2, 4,
... references per example (:mod:`memscore.runs.references`: seeded and nested, the same
for every score) and with all of them, and gives each score's membership metrics with
their bootstrap intervals (:func:`memscore.membership_metrics`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from .._validate import ArrayLike, RunsLike, as_mask, check_bool, check_choice, check_float, check_int
from .membership import lira, membership_metrics
from .references import max_references
from .rmia import rmia

__all__ = ["SCORES", "reference_budget"]

#: The scores that use reference runs.
SCORES = ("lira", "rmia")


def reference_budget(
    masks: RunsLike,
    *,
    phi: ArrayLike | None = None,
    probs: ArrayLike | None = None,
    population: ArrayLike | None = None,
    scores: Sequence[str] = SCORES,
    ks: Sequence[int | Literal["all"]] | None = None,
    online: bool = True,
    seed: int = 0,
    ci: float | None = 0.95,
    n_boot: int = 1000,
    fpr_levels: tuple[float, ...] = (0.01, 0.001, 0.0001),
) -> pl.DataFrame:
    """Membership metrics of LiRA and RMIA with k reference runs per example, for each k.

    Parameters
    ----------
    masks : array-like of bool, shape (R, N)
        Membership of each run.
    phi : array-like of float, shape (R, N), optional
        Confidences for LiRA (needed when ``scores`` has ``"lira"``).
    probs, population : array-like of float, shapes (R, N) and (R, Z), optional
        Probabilities of the true label of the training examples and of population
        examples no run trained on, for RMIA (needed when ``scores`` has ``"rmia"``).
    scores : sequence of {"lira", "rmia"}, default both
    ks : sequence of int or "all", optional
        Reference budgets: k out-runs per example (online also k in-runs), ``"all"`` for
        every other run (the plain :func:`memscore.lira` / :func:`memscore.rmia`). Default:
        1, 2, 4, ... up to the largest budget every example allows, then ``"all"``.
    online : bool, default True
        Online scores (references on both sides) or offline (out-runs only).
    seed : int, default 0
        Which runs are the references, and the bootstrap.
    ci : float or None, default 0.95
        Coverage of the bootstrap intervals (None: points only).
    n_boot : int, default 1000
        Bootstrap replicates.
    fpr_levels : tuple of float, default (0.01, 0.001, 0.0001)

    Returns
    -------
    polars.DataFrame
        One row per score and budget: ``score``, ``k`` (null for all references), then the
        columns of :meth:`MembershipMetrics.as_dict` (``auc``, ``tpr_at_fpr_<level>``, and
        with ``ci`` their ``_examples_lo`` / ``_examples_hi`` / ``_runs_lo`` / ``_runs_hi``
        intervals).

    Raises
    ------
    ValueError
        An unknown score, a missing input for a score, a budget below 1, or a budget
        larger than some example allows (the message names the example and its counts).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> masks = np.argsort(rng.random((8, 40)), axis=0) < 4  # every example in 4 of 8 runs
    >>> phi = rng.normal(size=(8, 40)) + 2 * masks
    >>> t = reference_budget(masks, phi=phi, scores=["lira"], ci=None)
    >>> t["k"].to_list()
    [1, 2, 3, None]
    >>> bool(t["auc"][-1] > 0.8)
    True
    """
    names = [check_choice(s, "scores[]", SCORES) for s in scores]
    if not names:
        raise ValueError("scores: expected at least one of 'lira', 'rmia', got none")
    on = check_bool(online, "online")
    sd = check_int(seed, "seed", 0)
    if ci is not None:
        check_float(ci, "ci", 0.0, 1.0, low_open=True, high_open=True)
    m = as_mask(masks)
    if "lira" in names and phi is None:
        raise ValueError("phi: needed for the 'lira' score, got None")
    if "rmia" in names and (probs is None or population is None):
        raise ValueError("probs, population: both needed for the 'rmia' score")
    largest, _, _ = max_references(m, on)
    budgets = _budgets(ks, largest)
    rows: list[dict[str, Any]] = []
    for name in names:
        for k in budgets:
            got = _scores(name, m, k, phi=phi, probs=probs, population=population, online=on, seed=sd)
            metrics = membership_metrics(got, m, fpr_levels=fpr_levels, ci=ci, n_boot=n_boot, seed=sd)
            rows.append({"score": name, "k": k, **metrics.as_dict()})
    return pl.DataFrame(rows, schema_overrides={"k": pl.Int64}, infer_schema_length=None)


def _budgets(ks: Sequence[int | Literal["all"]] | None, largest: int) -> list[int | None]:
    """The budgets to score (None = every reference)."""
    if ks is None:
        out: list[int | None] = []
        k = 1
        while k < largest:
            out.append(k)
            k *= 2
        if largest >= 1:
            out.append(largest)
        return [*out, None]
    return [None if k == "all" else check_int(k, "ks[]", 1) for k in ks]


def _scores(
    name: str,
    masks: npt.NDArray[np.bool_],
    k: int | None,
    *,
    phi: ArrayLike | None,
    probs: ArrayLike | None,
    population: ArrayLike | None,
    online: bool,
    seed: int,
) -> npt.NDArray[np.float64]:
    if name == "lira":
        assert phi is not None
        return lira(masks, phi, online=online, references=k, seed=seed)
    assert probs is not None and population is not None
    return rmia(masks, probs, population, online=online, references=k, seed=seed)
