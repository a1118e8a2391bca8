"""An ε lower bound from one training run (Steinke, Nasr & Jagielski 2023).

m canaries are each included in the training set independently with probability ½. After
training, the auditor guesses "in" for the ``k_pos`` canaries with the highest scores, "out"
for the ``k_neg`` lowest, and abstains on the rest: r = k_pos + k_neg guesses, v of them
correct. Were the algorithm ε-DP, the number of correct guesses would be stochastically
dominated by Binomial(r, e^ε / (1 + e^ε)) (their Theorem 3.1); with (ε, δ)-DP a term
``2 m δ max_{1≤i≤v} P[v > V ≥ v - i] / i`` (V that binomial) is added to the tail. The
bound is the largest ε whose tail probability at v is at most α.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .._validate import check_int
from ._scipy import scipy_stats
from .bounds import _check_delta_alpha, _check_trials

__all__ = ["OneRunResult", "one_run_epsilon", "one_run_pvalue"]

#: Points of the scan that finds the first ε whose p-value exceeds α when δ > 0.
_SCAN = 256


@dataclass(frozen=True)
class OneRunResult:
    """A one-run audit's ε lower bound and the guesses that gave it.

    Attributes
    ----------
    epsilon : float
        The lower bound on ε (≥ 0), holding with probability ≥ 1 - alpha.
    correct : int
        v, the correct guesses.
    guesses : int
        r = k_pos + k_neg.
    m : int
        The canaries.
    k_pos, k_neg : int
        The "in" and "out" guesses.
    alpha, delta : float
        The confidence parameter and the δ of the bound.
    """

    epsilon: float
    correct: int
    guesses: int
    m: int
    k_pos: int
    k_neg: int
    alpha: float
    delta: float

    def as_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready.

        Returns
        -------
        dict of str to object
        """
        return dataclasses.asdict(self)


def one_run_epsilon(
    scores: npt.ArrayLike,
    included: npt.ArrayLike,
    *,
    k_pos: int,
    k_neg: int = 0,
    delta: float = 0.0,
    alpha: float = 0.05,
) -> OneRunResult:
    """The one-run audit's ε lower bound (Steinke, Nasr & Jagielski 2023).

    The canaries must have been included independently, each with probability ½, and the
    scores must not depend on which were included other than through the trained model.
    Guesses: "in" for the ``k_pos`` highest scores, "out" for the ``k_neg`` lowest (among
    equal scores the lower index ranks higher, so no canary gets both guesses); ``k_pos`` and ``k_neg`` must be fixed before looking at the
    results (choosing them by the bound they give voids it).

    With ``delta = 0`` the bound solves ``P[Binomial(r, q) ≥ v] = α`` for q exactly (it is
    the Beta(v, r - v + 1) quantile at α) and returns ``log(q / (1 - q))``. With ``delta > 0``
    the tail gains the theorem's δ term, no longer monotone in ε in general: the bound is
    the first ε at which the p-value exceeds α (a scan of 256 points below the δ = 0 bound,
    then Brent's method to 1e-9), so every smaller ε is rejected.

    Parameters
    ----------
    scores : array-like of real numbers, shape (m,)
        One score per canary, higher = more likely included.
    included : array-like of bool, shape (m,)
        Whether each canary was in the training set.
    k_pos : int
        "In" guesses, ``0 ≤ k_pos ≤ m``.
    k_neg : int, default 0
        "Out" guesses, ``k_pos + k_neg ≤ m``.
    delta : float, default 0.0
        δ in [0, 1).
    alpha : float, default 0.05
        The bound fails with probability at most ``alpha``, in (0, 1).

    Returns
    -------
    OneRunResult

    Raises
    ------
    TypeError
        Scores that are not real numbers, ``included`` not bool, counts not integers.
    ValueError
        No canaries, shapes that differ, NaN or infinite scores, ``k_pos + k_neg > m``,
        ``alpha`` or ``delta`` out of range.

    Examples
    --------
    >>> import numpy as np
    >>> from memscore.audit import one_run_epsilon
    >>> rng = np.random.default_rng(0)
    >>> inc = rng.random(1000) < 0.5
    >>> scores = rng.normal(size=1000) + 3.0 * inc
    >>> r = one_run_epsilon(scores, inc, k_pos=100, k_neg=100)
    >>> r.correct, r.guesses, round(r.epsilon, 3)
    (200, 200, 4.194)
    """
    s, inc = _check_trials(scores, included, "included")
    n = s.size
    kp = check_int(k_pos, "k_pos", 0, n)
    kn = check_int(k_neg, "k_neg", 0, n)
    if kp + kn > n:
        raise ValueError(f"k_pos + k_neg: expected at most the {n} canaries, got {kp} + {kn} = {kp + kn}")
    d, a = _check_delta_alpha(delta, alpha)
    v = _correct(s, inc, kp, kn)
    eps = _epsilon(n, kp + kn, v, d, a)
    return OneRunResult(eps, v, kp + kn, n, kp, kn, a, d)


def _correct(s: npt.NDArray[np.float64], inc: npt.NDArray[np.bool_], kp: int, kn: int) -> int:
    # One ranking, highest first, equal scores by index: the "in" and "out" guesses come from
    # its two ends, so they never share a canary, even among ties.
    order = np.argsort(-s, kind="stable")
    top, bottom = order[:kp], order[order.size - kn :]
    return int(inc[top].sum() + (~inc[bottom]).sum())


def one_run_pvalue(m: int, r: int, v: int, epsilon: float, delta: float = 0.0) -> float:
    """The probability of ≥ v correct guesses of r under (ε, δ)-DP with m canaries (Theorem 3.1).

    ``P[V ≥ v] + 2 m δ max_{1≤i≤v} P[v > V ≥ v - i] / i`` with V ~ Binomial(r, e^ε/(1+e^ε)),
    capped at 1.

    Parameters
    ----------
    m, r, v : int
        Canaries, guesses and correct guesses, ``0 ≤ v ≤ r ≤ m``.
    epsilon : float
        ε ≥ 0.
    delta : float, default 0.0
        δ in [0, 1].

    Returns
    -------
    float

    Raises
    ------
    ValueError
        Counts out of order.

    Examples
    --------
    >>> one_run_pvalue(10, 10, 10, 0.0)  # 10 right coin flips
    0.0009765625
    """
    m_, r_, v_ = check_int(m, "m", 0), check_int(r, "r", 0), check_int(v, "v", 0)
    if not v_ <= r_ <= m_:
        raise ValueError(f"v, r, m: expected 0 <= v <= r <= m, got v={v_}, r={r_}, m={m_}")
    return _pvalue(m_, r_, v_, float(epsilon), float(delta))


def _pvalue(m: int, r: int, v: int, eps: float, delta: float) -> float:
    return float(_pvalues(m, r, v, np.array([eps]), delta)[0])


def _pvalues(m: int, r: int, v: int, eps: npt.NDArray[np.float64], delta: float) -> npt.NDArray[np.float64]:
    """:func:`one_run_pvalue` at every ε of ``eps`` at once."""
    st = scipy_stats()
    q = 1.0 / (1.0 + np.exp(-eps))
    p = st.binom.sf(v - 1, r, q)
    if delta > 0.0 and v > 0:
        # P[v > V ≥ v - i] for i = 1..v: running sums of the pmf from v - 1 down (one row per ε).
        below = np.cumsum(st.binom.pmf(np.arange(v - 1, -1, -1)[None, :], r, q[:, None]), axis=1)
        p = p + 2.0 * m * delta * np.max(below / np.arange(1, v + 1), axis=1)
    out: npt.NDArray[np.float64] = np.minimum(p, 1.0)
    return out


def _epsilon(m: int, r: int, v: int, delta: float, alpha: float) -> float:
    if r == 0 or v == 0:
        return 0.0
    st = scipy_stats()
    # δ = 0: P[Binomial(r, q) ≥ v] = I_q(v, r - v + 1) increases in q, so it equals α at the
    # Beta(v, r - v + 1) α-quantile (the Clopper–Pearson identity).
    q = float(st.beta.ppf(alpha, v, r - v + 1))
    eps0 = math.log(q / (1.0 - q)) if q > 0.5 else 0.0
    if delta == 0.0 or eps0 == 0.0:
        return eps0
    # The δ term only adds to the tail, so the bound is below eps0. Find the first grid
    # point whose p-value exceeds α, then the crossing inside its cell.
    grid = np.linspace(0.0, eps0, _SCAN + 1)
    above = np.flatnonzero(_pvalues(m, r, v, grid, delta) > alpha)
    if above.size == 0:
        return eps0  # p(eps0) = α exactly: no crossing below it
    j = int(above[0])
    if j == 0:
        return 0.0
    from scipy.optimize import brentq

    lo, hi = float(grid[j - 1]), float(grid[j])
    return float(brentq(lambda x: _pvalue(m, r, v, x, delta) - alpha, lo, hi, xtol=1e-9))
