"""ε lower bounds from many trials of a membership test (Jagielski et al. 2020; Nasr et al. 2023).

Each trial is one (model, example) pair, a member or not, with a score where higher means
"more likely a member". A threshold test "member iff score ≥ t" has a false-positive rate
(FPR) and a false-negative rate (FNR). An (ε, δ)-DP training algorithm forces every such
test to satisfy ``FPR + e^ε FNR ≥ 1 - δ`` and ``FNR + e^ε FPR ≥ 1 - δ``, so upper confidence
bounds on both rates give a lower confidence bound on ε:

    ε ≥ max(0, log((1 - δ - FNR̄) / FPR̄), log((1 - δ - FPR̄) / FNR̄)).

The rates are bounded by one-sided Clopper–Pearson bounds, each at level α/2 (a union bound
makes both hold together with probability ≥ 1 - α), so the ε bound holds with probability
≥ 1 - α when the trials are independent given membership and the threshold was chosen
without looking at them. :func:`epsilon_lower_bound` offers three ways to get such a
threshold: a fixed one, one chosen on a random half of the trials and evaluated on the other
half, or the best of a fixed grid with a Bonferroni correction. ``method="gdp"`` turns the
same bounded rates into a Gaussian-DP μ and its ε at δ (:mod:`memscore.audit.gdp`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .._validate import as_mask, check_choice, check_float, check_int, check_real, to_numpy
from ._scipy import scipy_stats
from .gdp import _epsilon as _gdp_epsilon
from .gdp import gdp_mu

__all__ = ["AuditResult", "clopper_pearson_upper", "epsilon_from_rates", "epsilon_lower_bound"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

METHODS = ("clopper-pearson", "gdp")
DIRECTIONS = ("greater", "less", "both")
#: Candidate thresholds tried on the selection half of a split (evenly spaced in rank).
MAX_CANDIDATES = 4096


@dataclass(frozen=True)
class AuditResult:
    """An ε lower bound and the test that gave it.

    Attributes
    ----------
    epsilon : float
        The lower bound on ε (≥ 0), holding with probability ≥ 1 - alpha.
    threshold : float
        The test's threshold.
    direction : str
        ``"greater"`` (member iff score ≥ threshold) or ``"less"`` (member iff score ≤ threshold).
    fpr, fnr : float
        The test's observed rates on the trials it was evaluated on (NaN without
        non-members / members).
    fpr_upper, fnr_upper : float
        Their one-sided Clopper–Pearson upper bounds, each at level ``alpha / (2 * n_tests)``.
    n_members, n_nonmembers : int
        The trials the rates were evaluated on (half of them, for a split).
    method : str
        ``"clopper-pearson"`` or ``"gdp"``.
    threshold_choice : str
        ``"fixed"``, ``"split"`` or ``"bonferroni"``.
    alpha, delta : float
        The confidence parameter and the δ of the bound.
    n_tests : int
        The tests the confidence was shared among (Bonferroni): 1 for a split; the
        thresholds times the directions otherwise.
    mu : float or None
        The Gaussian-DP μ lower bound (``method="gdp"``), else None.
    seed : int or None
        The seed of the split (``threshold_choice="split"``), else None.
    """

    epsilon: float
    threshold: float
    direction: str
    fpr: float
    fnr: float
    fpr_upper: float
    fnr_upper: float
    n_members: int
    n_nonmembers: int
    method: str
    threshold_choice: str
    alpha: float
    delta: float
    n_tests: int
    mu: float | None = None
    seed: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready.

        Returns
        -------
        dict of str to object
        """
        return dataclasses.asdict(self)


def clopper_pearson_upper(k: npt.ArrayLike, n: npt.ArrayLike, level: float) -> F64:
    """One-sided Clopper–Pearson upper bound on a proportion from ``k`` successes of ``n``.

    The largest p with ``P[Binomial(n, p) ≤ k] ≥ level``: ``Beta(k + 1, n - k)``'s
    ``1 - level`` quantile, 1 when ``k = n`` (and for ``n = 0``).

    Parameters
    ----------
    k, n : array-like of int
        Successes and trials, ``0 ≤ k ≤ n`` (broadcast).
    level : float
        The probability that the bound is below the truth, in (0, 1).

    Returns
    -------
    ndarray of float64

    Examples
    --------
    >>> round(float(clopper_pearson_upper(0, 10, 0.05)), 6)  # 1 - 0.05 ** (1 / 10)
    0.258866
    """
    st = scipy_stats()
    k_a = np.asarray(k, dtype=np.float64)
    n_a = np.asarray(n, dtype=np.float64)
    full = k_a >= n_a
    with np.errstate(invalid="ignore"):
        q = st.beta.ppf(1.0 - level, k_a + 1.0, np.where(full, 1.0, n_a - k_a))
    out: F64 = np.where(full, 1.0, q)
    return out


def epsilon_from_rates(fpr_upper: npt.ArrayLike, fnr_upper: npt.ArrayLike, delta: float) -> F64:
    """``max(0, log((1 - δ - FNR̄) / FPR̄), log((1 - δ - FPR̄) / FNR̄))``.

    Parameters
    ----------
    fpr_upper, fnr_upper : array-like of float in [0, 1]
        Upper bounds on a test's rates (broadcast).
    delta : float
        δ in [0, 1).

    Returns
    -------
    ndarray of float64
        ε ≥ 0 (inf where a rate bound is 0 and the other is below 1 - δ).

    Examples
    --------
    >>> round(float(epsilon_from_rates(0.1, 0.2, 0.0)), 6)  # log(0.8 / 0.1)
    2.079442
    """
    a = np.asarray(fpr_upper, dtype=np.float64)
    b = np.asarray(fnr_upper, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        # A numerator ≤ 0 says nothing: log of it would be -inf or NaN.
        one = np.where(1.0 - delta - b > 0, np.log((1.0 - delta - b) / a), -np.inf)
        two = np.where(1.0 - delta - a > 0, np.log((1.0 - delta - a) / b), -np.inf)
    out: F64 = np.maximum(0.0, np.maximum(one, two))
    return out


# ----------------------------------------------------------------------------- the public face


def epsilon_lower_bound(
    scores: npt.ArrayLike,
    members: npt.ArrayLike,
    *,
    delta: float = 0.0,
    alpha: float = 0.05,
    threshold: float | str | Sequence[float] | npt.ArrayLike | None = None,
    method: str = "clopper-pearson",
    direction: str = "greater",
    seed: int = 0,
) -> AuditResult:
    """A lower confidence bound on ε from trials of a membership test.

    Every element is one trial: a model that did (``members``) or did not train on an
    example, and that model's score on it, higher = more likely a member. The bound holds
    with probability ≥ 1 - ``alpha`` when the trials are independent given membership
    (docs/audit.md says what that asks of the runs).

    The threshold of the test "member iff score ≥ t":

    * a number: fixed in advance; FPR and FNR are bounded on all trials, each at α/2;
    * None or ``"split"`` (default): a seeded random half of the members and of the
      non-members chooses the threshold (among at most 4,096 of its scores) whose bound on
      that half is largest with a Bonferroni correction over the candidates (which
      favours well-estimated thresholds over lucky ones); the bound is computed on the
      other half, at α/2 per rate;
    * a sequence of numbers: a grid fixed in advance; every threshold is bounded on all
      trials at α/(2k) per rate for k tests (Bonferroni) and the best bound is returned.

    With ``method="gdp"`` the bounded rates give a Gaussian-DP μ lower bound,
    ``μ = Φ⁻¹(1 - FPR̄) - Φ⁻¹(FNR̄)`` (≥ 0), and ``epsilon`` is the ε of a μ-GDP mechanism
    at ``delta`` (Dong, Roth & Su); the threshold is chosen by μ. That ε assumes the
    mechanism's trade-off curve is Gaussian (as DP-SGD's is); μ itself is a valid bound.

    Parameters
    ----------
    scores : array-like of real numbers, shape (n,)
        One score per trial; NaN and inf are refused.
    members : array-like of bool, shape (n,)
        True where the trial's model trained on its example.
    delta : float, default 0.0
        δ in [0, 1); ``method="gdp"`` needs δ > 0.
    alpha : float, default 0.05
        The bound fails with probability at most ``alpha``, in (0, 1).
    threshold : None, "split", number, or sequence of numbers
        How the threshold is chosen (above).
    method : {"clopper-pearson", "gdp"}, default "clopper-pearson"
        What the bounded rates are turned into.
    direction : {"greater", "less", "both"}, default "greater"
        ``"greater"``: member iff score ≥ t; ``"less"``: member iff score ≤ t (scores where
        lower means member); ``"both"``: either (a split chooses on its selection half;
        a fixed threshold or a grid counts both directions as tests).
    seed : int, default 0
        Seed of the split.

    Returns
    -------
    AuditResult

    Raises
    ------
    TypeError
        Scores that are not real numbers, members that are not bool, a parameter of the
        wrong type.
    ValueError
        No trials, shapes that differ, NaN or infinite scores or thresholds, ``alpha``
        outside (0, 1), ``delta`` outside [0, 1) (or 0 with ``method="gdp"``), an unknown
        method, direction or threshold strategy, an empty grid.

    Examples
    --------
    >>> import numpy as np
    >>> from memscore.audit import epsilon_lower_bound
    >>> rng = np.random.default_rng(0)
    >>> members = rng.random(20000) < 0.5
    >>> scores = rng.normal(size=20000) + 2.0 * members
    >>> r = epsilon_lower_bound(scores, members, threshold=1.0)
    >>> r.threshold_choice, round(r.epsilon, 2)
    ('fixed', 1.61)
    >>> r = epsilon_lower_bound(scores, members, method="gdp", delta=1e-5)
    >>> r.threshold_choice, round(r.mu, 2)
    ('split', 1.89)
    """
    s, m = _check_trials(scores, members)
    d, a = _check_delta_alpha(delta, alpha)
    meth = check_choice(method, "method", METHODS)
    if meth == "gdp" and d == 0.0:
        raise ValueError(
            "delta: method='gdp' needs delta > 0 (a μ-GDP mechanism with μ > 0 is (ε, 0)-DP for no finite ε), got 0.0"
        )
    signs = _signs(check_choice(direction, "direction", DIRECTIONS))
    seed = check_int(seed, "seed", 0)
    choice, grid = _check_threshold(threshold)
    if choice == "split":
        return _split(s, m, d, a, meth, signs, seed)
    assert grid is not None
    return _best_of(s, m, grid, d, a, meth, signs, choice)


def _check_trials(
    scores: npt.ArrayLike, members: npt.ArrayLike, members_name: str = "members"
) -> tuple[F64, npt.NDArray[np.bool_]]:
    sa = to_numpy(scores, "scores")
    check_real(sa, "scores")
    if sa.ndim != 1:
        raise ValueError(f"scores: expected a 1-D array (one score per trial), got shape {sa.shape}")
    s = np.ascontiguousarray(sa, dtype=np.float64)
    if s.size == 0:
        raise ValueError("scores: expected at least one trial, got none")
    m = as_mask(members, members_name, ndim=1)
    if m.shape != s.shape:
        raise ValueError(f"{members_name}: expected shape {s.shape} as scores, got {m.shape}")
    if not np.isfinite(s).all():
        raise ValueError("scores: contains NaN or infinite values (drop the trials whose score is undefined)")
    return s, m


def _check_delta_alpha(delta: float, alpha: float) -> tuple[float, float]:
    d = check_float(delta, "delta", 0.0, 1.0, high_open=True)
    a = check_float(alpha, "alpha", 0.0, 1.0, low_open=True, high_open=True)
    return d, a


def _signs(direction: str) -> tuple[int, ...]:
    return {"greater": (1,), "less": (-1,), "both": (1, -1)}[direction]


def _check_threshold(threshold: object) -> tuple[str, F64 | None]:
    """("split", None), ("fixed", [t]) or ("bonferroni", grid)."""
    if threshold is None or (isinstance(threshold, str) and threshold == "split"):
        return "split", None
    if isinstance(threshold, str):
        raise ValueError(f"threshold: expected None, 'split', a number or a sequence of numbers, got {threshold!r}")
    if isinstance(threshold, (bool, np.bool_)):
        raise TypeError("threshold: expected None, 'split', a number or a sequence of numbers, got a bool")
    if isinstance(threshold, (int, float, np.integer, np.floating)):
        return "fixed", np.array([check_float(threshold, "threshold")])
    g = to_numpy(threshold, "threshold")
    check_real(g, "threshold")
    if g.ndim != 1 or g.size == 0:
        raise ValueError(f"threshold: expected a non-empty 1-D grid of thresholds, got shape {g.shape}")
    grid = np.asarray(g, dtype=np.float64)
    if not np.isfinite(grid).all():
        raise ValueError("threshold: the grid contains NaN or infinite values")
    return "bonferroni", grid


# ----------------------------------------------------------------------------- the computation
#
# Everything below trusts its inputs. A direction is a sign: the test "member iff score ≤ t"
# is "member iff -score ≥ -t", so every count is of scores ≥ a threshold.


@dataclass(frozen=True)
class _Tests:
    """Rates of a batch of tests "member iff sign * score ≥ t" on one set of trials."""

    fp: I64
    fn: I64
    n_pos: int
    n_neg: int


def _count(s: F64, m: npt.NDArray[np.bool_], t: F64) -> _Tests:
    """False positives and negatives of "member iff s ≥ t" for every t."""
    pos, neg = np.sort(s[m]), np.sort(s[~m])
    tp = pos.size - np.searchsorted(pos, t, side="left")
    fp = neg.size - np.searchsorted(neg, t, side="left")
    return _Tests(fp.astype(np.int64), (pos.size - tp).astype(np.int64), int(pos.size), int(neg.size))


@dataclass(frozen=True)
class _Bounds:
    fpr_u: F64
    fnr_u: F64
    crit: F64  # what is maximized: ε (Clopper–Pearson) or μ (GDP)


def _bound(tests: _Tests, level: float, delta: float, method: str) -> _Bounds:
    fpr_u = clopper_pearson_upper(tests.fp, tests.n_neg, level)
    fnr_u = clopper_pearson_upper(tests.fn, tests.n_pos, level)
    crit = gdp_mu(fpr_u, fnr_u) if method == "gdp" else epsilon_from_rates(fpr_u, fnr_u, delta)
    return _Bounds(fpr_u, fnr_u, crit)


def _result(
    tests: _Tests, b: _Bounds, i: int, t: float, sign: int, delta: float, alpha: float, method: str, **extra: Any
) -> AuditResult:
    fp, fn = int(tests.fp[i]), int(tests.fn[i])
    crit = float(b.crit[i])
    if method == "gdp":
        eps, mu = (_gdp_epsilon(crit, delta) if np.isfinite(crit) else float("inf")), crit
    else:
        eps, mu = crit, None
    return AuditResult(
        epsilon=eps,
        threshold=float(sign * t),
        direction="greater" if sign > 0 else "less",
        fpr=fp / tests.n_neg if tests.n_neg else float("nan"),
        fnr=fn / tests.n_pos if tests.n_pos else float("nan"),
        fpr_upper=float(b.fpr_u[i]),
        fnr_upper=float(b.fnr_u[i]),
        n_members=tests.n_pos,
        n_nonmembers=tests.n_neg,
        method=method,
        alpha=alpha,
        delta=delta,
        mu=mu,
        **extra,
    )


def _best_of(
    s: F64,
    m: npt.NDArray[np.bool_],
    grid: F64,
    delta: float,
    alpha: float,
    method: str,
    signs: tuple[int, ...],
    choice: str,
) -> AuditResult:
    """A fixed threshold, or the best of a grid: every (direction, threshold) pair is a test
    and shares the confidence (Bonferroni)."""
    k = grid.size * len(signs)
    level = alpha / (2 * k)
    best: tuple[float, int, int, _Tests, _Bounds] | None = None
    for sign in signs:
        tests = _count(sign * s, m, sign * grid)
        b = _bound(tests, level, delta, method)
        i = int(np.argmax(b.crit))
        if best is None or b.crit[i] > best[0]:
            best = (float(b.crit[i]), i, sign, tests, b)
    assert best is not None
    _, i, sign, tests, b = best
    return _result(tests, b, i, float(sign * grid[i]), sign, delta, alpha, method, threshold_choice=choice, n_tests=k)


def split_halves(m: npt.NDArray[np.bool_], seed: Any) -> tuple[I64, I64]:
    """Indices of the selection half and the bound half: a seeded random half of the
    members and of the non-members (``floor`` of each) chooses, the rest bounds.

    Parameters
    ----------
    m : ndarray of bool, shape (n,)
        Membership of the trials.
    seed : int or sequence of int
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    (ndarray of int64, ndarray of int64)
        The selection trials and the bound trials, each sorted.
    """
    rng = np.random.default_rng(seed)
    pick, rest = [], []
    for group in (np.flatnonzero(m), np.flatnonzero(~m)):
        perm = rng.permutation(group)
        pick.append(perm[: group.size // 2])
        rest.append(perm[group.size // 2 :])
    return np.sort(np.concatenate(pick)).astype(np.int64), np.sort(np.concatenate(rest)).astype(np.int64)


def _candidates(x: F64) -> F64:
    """The distinct values of ``x``, at most :data:`MAX_CANDIDATES` of them evenly spaced in rank."""
    u = np.unique(x)
    if u.size > MAX_CANDIDATES:
        u = u[np.unique(np.linspace(0, u.size - 1, MAX_CANDIDATES).round().astype(np.int64))]
    return u


def _split(
    s: F64, m: npt.NDArray[np.bool_], delta: float, alpha: float, method: str, signs: tuple[int, ...], seed: Any
) -> AuditResult:
    sel, held = split_halves(m, seed)
    cands = {sign: _candidates(sign * s[sel]) if sel.size else np.zeros(1) for sign in signs}
    # The selection half ranks its candidates by their bound under a Bonferroni correction
    # over all of them: among many thresholds the best-looking one at α/2 is mostly luck
    # (tail thresholds with few errors), which the held-out half then does not confirm.
    level = alpha / (2 * sum(c.size for c in cands.values()))
    best: tuple[float, float, int] | None = None
    for sign in signs:
        crit = _bound(_count(sign * s[sel], m[sel], cands[sign]), level, delta, method).crit
        i = int(np.argmax(crit))
        if best is None or crit[i] > best[0]:
            best = (float(crit[i]), float(cands[sign][i]), sign)
    assert best is not None
    _, t, sign = best
    tests = _count(sign * s[held], m[held], np.array([t]))
    b = _bound(tests, alpha / 2, delta, method)
    return _result(
        tests, b, 0, t, sign, delta, alpha, method, threshold_choice="split", n_tests=1, seed=_seed_int(seed)
    )


def _seed_int(seed: Any) -> int | None:
    return int(seed) if isinstance(seed, (int, np.integer)) else None
