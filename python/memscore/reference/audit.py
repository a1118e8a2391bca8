"""Reference versions of :mod:`memscore.audit`, written from the papers' formulas with plain loops.

No scipy: binomial probabilities are summed term by term (log-gamma coefficients), the
Clopper–Pearson bound and every ε are found by bisection, and the normal distribution is
``math.erfc`` and ``statistics.NormalDist``. Slow and obvious, for tests.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

__all__ = [
    "binom_cdf",
    "clopper_pearson_upper",
    "epsilon_fixed",
    "epsilon_split",
    "gdp_delta",
    "gdp_epsilon",
    "gdp_mu",
    "one_run_epsilon",
    "one_run_pvalue",
    "rates",
]

_N01 = NormalDist()


def binom_pmf(k: int, n: int, p: float) -> float:
    """P[Binomial(n, p) = k]."""
    if p <= 0.0:
        return 1.0 if k == 0 else 0.0
    if p >= 1.0:
        return 1.0 if k == n else 0.0
    log_c = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
    return math.exp(log_c + k * math.log(p) + (n - k) * math.log1p(-p))


def binom_cdf(k: int, n: int, p: float) -> float:
    """P[Binomial(n, p) ≤ k], summed term by term."""
    return sum(binom_pmf(j, n, p) for j in range(0, min(k, n) + 1))


def clopper_pearson_upper(k: int, n: int, level: float) -> float:
    """The p with P[Binomial(n, p) ≤ k] = level (1 when k = n), by 100 bisection steps."""
    if k >= n:
        return 1.0
    lo, hi = 0.0, 1.0  # the cdf falls from 1 to 0 as p grows
    for _ in range(100):
        mid = (lo + hi) / 2
        if binom_cdf(k, n, mid) > level:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def rates(scores: Sequence[float], members: Sequence[bool], t: float) -> tuple[int, int, int, int]:
    """(false positives, non-members, false negatives, members) of "member iff score ≥ t"."""
    fp = n_neg = fn = n_pos = 0
    for s, m in zip(scores, members, strict=True):
        if m:
            n_pos += 1
            fn += s < t
        else:
            n_neg += 1
            fp += s >= t
    return fp, n_neg, fn, n_pos


def _eps(fpr_u: float, fnr_u: float, delta: float) -> float:
    best = 0.0
    if 1 - delta - fnr_u > 0:
        best = max(best, math.log((1 - delta - fnr_u) / fpr_u))
    if 1 - delta - fpr_u > 0:
        best = max(best, math.log((1 - delta - fpr_u) / fnr_u))
    return best


def gdp_mu(fpr_u: float, fnr_u: float) -> float:
    """max(0, Φ⁻¹(1 - FPR̄) - Φ⁻¹(FNR̄)); 0 when a bound is 0 or 1 on the wrong side."""
    if fpr_u >= 1.0 or fnr_u >= 1.0:
        return 0.0
    return max(0.0, _N01.inv_cdf(1 - fpr_u) - _N01.inv_cdf(fnr_u))


def _phi(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2))


def gdp_delta(mu: float, eps: float) -> float:
    """Φ(-ε/μ + μ/2) - e^ε Φ(-ε/μ - μ/2) (Dong, Roth & Su, Corollary 2.13)."""
    if mu == 0:
        return 0.0
    return _phi(-eps / mu + mu / 2) - math.exp(eps) * _phi(-eps / mu - mu / 2)


def gdp_epsilon(mu: float, delta: float) -> float:
    """The ε with gdp_delta(mu, ε) = delta (0 when δ(0) ≤ delta), by bisection."""
    if mu <= 0 or gdp_delta(mu, 0.0) <= delta:
        return 0.0
    lo, hi = 0.0, 1.0
    while gdp_delta(mu, hi) > delta:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if gdp_delta(mu, mid) > delta:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _bound(fp: int, n_neg: int, fn: int, n_pos: int, level: float, delta: float, method: str) -> tuple[float, float]:
    """(criterion, ε): the ε bound twice, or μ and its ε, from the counts."""
    fpr_u = clopper_pearson_upper(fp, n_neg, level)
    fnr_u = clopper_pearson_upper(fn, n_pos, level)
    if method == "gdp":
        mu = gdp_mu(fpr_u, fnr_u)
        return mu, gdp_epsilon(mu, delta)
    e = _eps(fpr_u, fnr_u, delta)
    return e, e


def epsilon_fixed(
    scores: Sequence[float],
    members: Sequence[bool],
    t: float,
    *,
    delta: float = 0.0,
    alpha: float = 0.05,
    method: str = "clopper-pearson",
    n_tests: int = 1,
) -> float:
    """ε (or, for ``method="gdp"``, the ε of μ) of "member iff score ≥ t", each rate at α / (2 n_tests)."""
    fp, n_neg, fn, n_pos = rates(scores, members, t)
    return _bound(fp, n_neg, fn, n_pos, alpha / (2 * n_tests), delta, method)[1]


def epsilon_split(
    scores: Sequence[float],
    members: Sequence[bool],
    *,
    delta: float = 0.0,
    alpha: float = 0.05,
    method: str = "clopper-pearson",
    seed: int | Sequence[int] = 0,
) -> tuple[float, float]:
    """(ε, threshold) of the split: a seeded random half of the members and of the
    non-members picks the threshold (the smallest of its scores with the best bound on it
    at α / (2 x its number of distinct scores)), the other half bounds it at α/2
    ("greater" direction)."""
    rng = np.random.default_rng(seed)
    pick: list[int] = []
    rest: list[int] = []
    for want in (True, False):
        group = [i for i, m in enumerate(members) if bool(m) == want]
        perm = [int(i) for i in rng.permutation(np.array(group, dtype=np.int64))]
        pick += perm[: len(group) // 2]
        rest += perm[len(group) // 2 :]
    s_a = [scores[i] for i in pick]
    m_a = [members[i] for i in pick]
    best_t, best = 0.0, -1.0
    candidates = sorted(set(s_a)) or [0.0]
    for t in candidates:  # ranked by their bound with a Bonferroni correction over the candidates
        crit = _bound(*rates(s_a, m_a, t), alpha / (2 * len(candidates)), delta, method)[0]
        if crit > best:
            best_t, best = t, crit
    s_b = [scores[i] for i in rest]
    m_b = [members[i] for i in rest]
    return _bound(*rates(s_b, m_b, best_t), alpha / 2, delta, method)[1], best_t


def one_run_pvalue(m: int, r: int, v: int, eps: float, delta: float = 0.0) -> float:
    """P[V ≥ v] + 2 m δ max_{1≤i≤v} P[v > V ≥ v - i] / i, V ~ Binomial(r, e^ε/(1+e^ε)), capped at 1."""
    q = math.exp(eps) / (1 + math.exp(eps))
    tail = sum(binom_pmf(j, r, q) for j in range(v, r + 1))
    extra, window = 0.0, 0.0
    for i in range(1, v + 1 if delta > 0 else 1):
        window += binom_pmf(v - i, r, q)  # window = P[v > V >= v - i]
        extra = max(extra, window / i)
    return min(1.0, tail + 2 * m * delta * extra)


def one_run_epsilon(
    scores: Sequence[float],
    included: Sequence[bool],
    k_pos: int,
    k_neg: int,
    *,
    delta: float = 0.0,
    alpha: float = 0.05,
) -> float:
    """The largest ε with p-value ≤ α (bisection; δ > 0: the first crossing on a fine scan)."""
    n = len(scores)
    ranked = sorted(range(n), key=lambda i: (-scores[i], i))  # highest first, ties by index
    v = sum(bool(included[i]) for i in ranked[:k_pos]) + sum(not included[i] for i in ranked[n - k_neg :])
    r = k_pos + k_neg
    if r == 0 or one_run_pvalue(n, r, v, 0.0, delta) > alpha:
        return 0.0
    lo, hi = 0.0, 0.05
    while one_run_pvalue(n, r, v, hi, delta) <= alpha:  # walk up in small steps: the first crossing
        lo, hi = hi, hi + 0.05
    for _ in range(60):
        mid = (lo + hi) / 2
        if one_run_pvalue(n, r, v, mid, delta) <= alpha:
            lo = mid
        else:
            hi = mid
    return lo
