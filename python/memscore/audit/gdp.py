"""Gaussian differential privacy (Dong, Roth & Su 2022): μ from error rates, and (ε, δ) from μ.

A mechanism is μ-GDP when no test between neighbouring datasets does better than telling
N(0, 1) from N(μ, 1): a test with false-positive rate a has false-negative rate at least
``Φ(Φ⁻¹(1 - a) - μ)``. Hence every test with rates (a, b) shows ``μ ≥ Φ⁻¹(1 - a) - Φ⁻¹(b)``,
and μ-GDP implies (ε, δ(ε))-DP for every ε ≥ 0 with
``δ(ε) = Φ(-ε/μ + μ/2) - e^ε Φ(-ε/μ - μ/2)`` (their Corollary 2.13).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from .._validate import check_float
from ._scipy import scipy_stats

__all__ = ["gdp_delta", "gdp_epsilon", "gdp_mu"]

F64 = npt.NDArray[np.float64]


def gdp_mu(fpr_upper: npt.ArrayLike, fnr_upper: npt.ArrayLike) -> F64:
    """The μ a test with these (upper bounds on its) error rates shows: ``max(0, Φ⁻¹(1 - a) - Φ⁻¹(b))``.

    Parameters
    ----------
    fpr_upper, fnr_upper : array-like of float in [0, 1]
        Upper bounds on the test's false-positive and false-negative rates (broadcast).

    Returns
    -------
    ndarray of float64
        μ ≥ 0 (0 where the rates show nothing: ``a + b ≥ 1``; inf where a rate bound is 0).

    Examples
    --------
    >>> float(gdp_mu(0.5, 0.5)), round(float(gdp_mu(0.1587, 0.1587)), 3)
    (0.0, 2.0)
    """
    st = scipy_stats()
    a = np.asarray(fpr_upper, dtype=np.float64)
    b = np.asarray(fnr_upper, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        mu = st.norm.isf(a) - st.norm.ppf(b)  # isf(a) = Φ⁻¹(1 - a), accurate for small a
    # A rate bound of 1 (no trials) gives -inf - x or x - inf: no evidence, μ = 0.
    out: F64 = np.where(np.isnan(mu), 0.0, np.maximum(mu, 0.0))
    return out


def gdp_delta(mu: float, epsilon: float) -> float:
    """δ(ε) of a μ-GDP mechanism: ``Φ(-ε/μ + μ/2) - e^ε Φ(-ε/μ - μ/2)``.

    Parameters
    ----------
    mu : float
        μ ≥ 0 (inf allowed: δ = 1).
    epsilon : float
        ε ≥ 0.

    Returns
    -------
    float
        δ in [0, 1]; 0 for μ = 0.

    Raises
    ------
    TypeError, ValueError
        A value that is not a number, or out of range.

    Examples
    --------
    >>> round(gdp_delta(1.0, 0.0), 6)  # 2 Φ(1/2) - 1
    0.382925
    """
    m = check_float(mu, "mu", 0.0, allow_inf=True)
    e = check_float(epsilon, "epsilon", 0.0, allow_inf=True)
    return _delta(m, e)


def _delta(mu: float, eps: float) -> float:
    if mu == 0.0 or math.isinf(eps):
        return 0.0
    if math.isinf(mu):
        return 1.0
    st = scipy_stats()
    # e^ε Φ(x) in log space: e^ε overflows long before the product does.
    first = float(st.norm.cdf(-eps / mu + mu / 2))
    second = math.exp(eps + float(st.norm.logcdf(-eps / mu - mu / 2)))
    return min(1.0, max(0.0, first - second))


def gdp_epsilon(mu: float, delta: float) -> float:
    """The smallest ε with ``δ(ε) ≤ delta`` for a μ-GDP mechanism (ε at δ).

    δ(ε) decreases from ``2Φ(μ/2) - 1`` at ε = 0 toward 0; ε is found by Brent's method to
    an absolute 1e-12.

    Parameters
    ----------
    mu : float
        μ ≥ 0.
    delta : float
        δ in (0, 1): a μ-GDP mechanism with μ > 0 is (ε, 0)-DP for no finite ε.

    Returns
    -------
    float
        ε ≥ 0 (0 when μ = 0 or ``delta ≥ 2Φ(μ/2) - 1``).

    Raises
    ------
    TypeError, ValueError
        A value that is not a number, or out of range.

    Examples
    --------
    >>> e = gdp_epsilon(1.0, 1e-5)
    >>> round(e, 4), abs(gdp_delta(1.0, e) - 1e-5) < 1e-12
    (4.3772, True)
    """
    m = check_float(mu, "mu", 0.0)
    d = check_float(delta, "delta", 0.0, 1.0, low_open=True, high_open=True)
    return _epsilon(m, d)


def _epsilon(mu: float, delta: float) -> float:
    if mu <= 0.0 or _delta(mu, 0.0) <= delta:
        return 0.0
    from scipy.optimize import brentq

    hi = 1.0
    while _delta(mu, hi) > delta:
        hi *= 2.0
    root = brentq(lambda e: _delta(mu, e) - delta, 0.0, hi, xtol=1e-12, rtol=4 * np.finfo(float).eps)
    return float(root)
