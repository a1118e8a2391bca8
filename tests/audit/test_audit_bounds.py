"""epsilon_lower_bound against the reference written from the formulas (plain loops, bisection,
no scipy), and its edge cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

pytest.importorskip("scipy")

from memscore import audit  # noqa: E402
from memscore.reference import audit as ref  # noqa: E402


def _trials(rng: np.random.Generator, n: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    members = rng.random(n) < 0.5
    return rng.normal(size=n) + shift * members, members


@pytest.mark.parametrize("k, n", [(0, 1), (0, 10), (3, 10), (9, 10), (10, 10), (0, 0), (17, 200), (199, 200)])
@pytest.mark.parametrize("level", [0.025, 0.001])
def test_clopper_pearson_matches_bisection(k, n, level):
    got = float(audit.clopper_pearson_upper(k, n, level))
    assert_allclose(got, ref.clopper_pearson_upper(k, n, level), rtol=1e-10)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("method, delta", [("clopper-pearson", 0.0), ("clopper-pearson", 1e-3), ("gdp", 1e-5)])
def test_fixed_threshold_matches_formula(seed, method, delta):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 400))
    s, m = _trials(rng, n, shift=float(rng.uniform(0, 4)))
    alpha = float(rng.uniform(0.01, 0.3))
    for t in (float(np.median(s)), float(rng.normal()), float(s.max()), float(s.min())):
        got = audit.epsilon_lower_bound(s, m, threshold=t, delta=delta, alpha=alpha, method=method)
        want = ref.epsilon_fixed(s.tolist(), m.tolist(), t, delta=delta, alpha=alpha, method=method)
        assert got.threshold_choice == "fixed" and got.n_tests == 1 and got.direction == "greater"
        assert_allclose(got.epsilon, want, rtol=1e-9, atol=1e-12 if want == 0 else 0)
        fp, n_neg, fn, n_pos = ref.rates(s.tolist(), m.tolist(), t)
        assert (got.n_members, got.n_nonmembers) == (n_pos, n_neg)
        assert_allclose([got.fpr, got.fnr], [fp / n_neg, fn / n_pos])
        assert_allclose(got.fpr_upper, ref.clopper_pearson_upper(fp, n_neg, alpha / 2), rtol=1e-10)
        if method == "gdp":
            assert_allclose(got.mu, ref.gdp_mu(got.fpr_upper, got.fnr_upper), rtol=1e-9, atol=1e-12)


def test_fixed_threshold_formula_by_hand():
    # 3 of 4 members at or above 0.5, 1 of 4 non-members: bound both rates at α/2 = 0.05.
    s = np.array([0.9, 0.8, 0.7, 0.1, 0.6, 0.2, 0.3, 0.4])
    m = np.array([1, 1, 1, 1, 0, 0, 0, 0], dtype=bool)
    r = audit.epsilon_lower_bound(s, m, threshold=0.5, alpha=0.1)
    fpr_u, fnr_u = ref.clopper_pearson_upper(1, 4, 0.05), ref.clopper_pearson_upper(1, 4, 0.05)
    want = max(0.0, math.log((1 - fnr_u) / fpr_u), math.log((1 - fpr_u) / fnr_u))
    assert r.epsilon == pytest.approx(want, rel=1e-9)
    assert (r.fpr, r.fnr) == (0.25, 0.25)


@pytest.mark.parametrize("method, delta", [("clopper-pearson", 0.0), ("gdp", 1e-4)])
def test_bonferroni_grid_is_the_best_corrected_test(method, delta):
    rng = np.random.default_rng(3)
    s, m = _trials(rng, 300, 1.5)
    grid = np.linspace(-1, 3, 7)
    got = audit.epsilon_lower_bound(s, m, threshold=grid, method=method, delta=delta)
    want = [ref.epsilon_fixed(s.tolist(), m.tolist(), t, method=method, delta=delta, n_tests=7) for t in grid]
    assert got.threshold_choice == "bonferroni" and got.n_tests == 7
    assert_allclose(got.epsilon, max(want), rtol=1e-9)
    assert got.threshold == grid[int(np.argmax(want))]
    both = audit.epsilon_lower_bound(s, m, threshold=grid, method=method, delta=delta, direction="both")
    assert both.n_tests == 14 and both.epsilon <= got.epsilon


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("method, delta", [("clopper-pearson", 0.0), ("gdp", 1e-5)])
def test_split_matches_reference(seed, method, delta):
    rng = np.random.default_rng(100 + seed)
    s, m = _trials(rng, int(rng.integers(20, 120)), float(rng.uniform(0, 3)))
    got = audit.epsilon_lower_bound(s, m, method=method, delta=delta, seed=seed)
    want, t = ref.epsilon_split(s.tolist(), m.tolist(), method=method, delta=delta, seed=seed)
    assert got.threshold_choice == "split" and got.seed == seed and got.n_tests == 1
    assert got.threshold == t
    assert_allclose(got.epsilon, want, rtol=1e-9, atol=1e-12)
    # The bound is computed on the other half only.
    assert got.n_members == m.sum() - m.sum() // 2 and got.n_nonmembers == (~m).sum() - (~m).sum() // 2


def test_split_is_seeded_and_the_default():
    rng = np.random.default_rng(0)
    s, m = _trials(rng, 500, 1.0)
    a = audit.epsilon_lower_bound(s, m, seed=4)
    assert a == audit.epsilon_lower_bound(s, m, threshold="split", seed=4)
    assert a != audit.epsilon_lower_bound(s, m, seed=5)


def test_direction_less_is_greater_on_negated_scores():
    rng = np.random.default_rng(1)
    s, m = _trials(rng, 400, -2.0)  # members score low
    fwd = audit.epsilon_lower_bound(-s, m, threshold=0.5)
    rev = audit.epsilon_lower_bound(s, m, threshold=-0.5, direction="less")
    assert rev.epsilon == pytest.approx(fwd.epsilon, rel=1e-12) and rev.direction == "less" and rev.threshold == -0.5
    assert audit.epsilon_lower_bound(s, m, threshold=-0.5).epsilon == 0.0  # the wrong way round shows nothing
    # "both": a fixed threshold is two tests, each rate at α/4.
    both = audit.epsilon_lower_bound(s, m, threshold=-0.5, direction="both")
    assert both.direction == "less" and both.n_tests == 2
    assert both.epsilon == pytest.approx(ref.epsilon_fixed((-s).tolist(), m.tolist(), 0.5, n_tests=2), rel=1e-9)
    # A split chooses the direction on its selection half (GDP: both tails, jax_privacy PR #270).
    g = audit.epsilon_lower_bound(s, m, method="gdp", delta=1e-5, direction="both")
    assert g.direction == "less" and g.mu > 1.0


def test_gdp_conversion_matches_reference():
    for mu in (0.1, 0.5, 1.0, 2.0, 4.0):
        for delta in (1e-8, 1e-5, 1e-2):
            e = audit.gdp_epsilon(mu, delta)
            assert e == pytest.approx(ref.gdp_epsilon(mu, delta), rel=1e-8, abs=1e-10)
            if e > 0:
                assert audit.gdp_delta(mu, e) == pytest.approx(delta, rel=1e-6)
    assert audit.gdp_epsilon(0.0, 1e-5) == 0.0
    assert audit.gdp_epsilon(0.5, 0.3) == 0.0  # δ(0) = 2Φ(0.25) - 1 ≈ 0.197 < 0.3
    assert_allclose(audit.gdp_mu([0.5, 1.0, 0.2], [0.5, 0.1, 1.0]), [0.0, 0.0, 0.0])


def test_edge_cases():
    s = np.array([0.3, 0.1, 0.7])
    for m in (np.ones(3, bool), np.zeros(3, bool)):
        for threshold in (None, 0.2, [0.0, 0.5]):
            r = audit.epsilon_lower_bound(s, m, threshold=threshold)
            assert r.epsilon == 0.0
        r = audit.epsilon_lower_bound(s, m, threshold=0.2)
        side = "fpr" if m.all() else "fnr"
        assert math.isnan(getattr(r, side)) and getattr(r, f"{side}_upper") == 1.0
    one = audit.epsilon_lower_bound([1.0], [True], threshold=0.0)
    assert one.epsilon == 0.0 and one.fnr == 0.0
    assert audit.epsilon_lower_bound([5.0], [False]).epsilon == 0.0  # a split of one trial
    ties = audit.epsilon_lower_bound(np.ones(40), np.arange(40) % 2 == 0, threshold=1.0)
    assert ties.epsilon == 0.0 and ties.fpr == 1.0 and ties.fnr == 0.0
    perfect = audit.epsilon_lower_bound(np.r_[np.ones(50), np.zeros(50)], np.arange(100) < 50, threshold=0.5)
    want = math.log((1 - ref.clopper_pearson_upper(0, 50, 0.025)) / ref.clopper_pearson_upper(0, 50, 0.025))
    assert perfect.epsilon == pytest.approx(want, rel=1e-9)
    d = audit.epsilon_lower_bound(s, [True, False, True], threshold=0.2, method="gdp", delta=0.1).as_dict()
    json.dumps(d)
    assert d["method"] == "gdp" and "mu" in d


@pytest.mark.parametrize(
    "kw, exc, match",
    [
        ({"scores": [0.1, np.inf]}, ValueError, "NaN or infinite"),
        ({"scores": [0.1, np.nan]}, ValueError, "NaN or infinite"),
        ({"scores": ["a", "b"]}, TypeError, "real numbers"),
        ({"scores": [[0.1, 0.2]]}, ValueError, "1-D"),
        ({"scores": [], "members": []}, ValueError, "at least one trial"),
        ({"members": [True]}, ValueError, "members: expected shape"),
        ({"members": [0.5, 1.0]}, TypeError, "members"),
        ({"alpha": 0.0}, ValueError, "alpha"),
        ({"alpha": 1.0}, ValueError, "alpha"),
        ({"alpha": -0.1}, ValueError, "alpha"),
        ({"delta": 1.0}, ValueError, "delta"),
        ({"delta": -1e-9}, ValueError, "delta"),
        ({"delta": "0"}, TypeError, "delta"),
        ({"method": "gdp"}, ValueError, "delta > 0"),
        ({"method": "exact"}, ValueError, "method"),
        ({"direction": "up"}, ValueError, "direction"),
        ({"threshold": "bonferroni"}, ValueError, "threshold"),
        ({"threshold": np.nan}, ValueError, "threshold"),
        ({"threshold": []}, ValueError, "threshold"),
        ({"threshold": [0.0, np.inf]}, ValueError, "threshold"),
        ({"threshold": True}, TypeError, "threshold"),
        ({"seed": -1}, ValueError, "seed"),
    ],
)
def test_bad_input(kw, exc, match):
    args = {"scores": [0.1, 0.2], "members": [True, False]}
    args.update(kw)
    scores, members = args.pop("scores"), args.pop("members")
    with pytest.raises(exc, match=match):
        audit.epsilon_lower_bound(scores, members, **args)


def test_gdp_recovers_a_known_mu():
    # Gaussian trials with μ = 1: the ε of the recovered μ at δ = 1e-5 is near the truth's
    # (the benchmark checks 10% at 10^6 trials per class; here 2 x 10^4 per class).
    rng = np.random.default_rng(7)
    n = 20_000
    s = np.r_[rng.normal(1.0, 1.0, n), rng.normal(0.0, 1.0, n)]
    m = np.arange(2 * n) < n
    r = audit.epsilon_lower_bound(s, m, method="gdp", delta=1e-5)
    truth = audit.gdp_epsilon(1.0, 1e-5)
    assert r.mu <= 1.0 + 0.05 and r.epsilon == pytest.approx(truth, rel=0.3)
