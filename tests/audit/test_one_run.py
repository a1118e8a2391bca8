"""one_run_epsilon against the binomial tail summed term by term and solved by bisection."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("scipy")

from memscore import audit  # noqa: E402
from memscore.reference import audit as ref  # noqa: E402


def _canaries(rng: np.random.Generator, m: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    inc = rng.random(m) < 0.5
    return rng.normal(size=m) + shift * inc, inc


@pytest.mark.parametrize("seed", range(8))
def test_delta_zero_matches_binomial_tail(seed):
    rng = np.random.default_rng(seed)
    m = int(rng.integers(10, 600))
    s, inc = _canaries(rng, m, float(rng.uniform(0, 5)))
    kp = int(rng.integers(0, m // 2 + 1))
    kn = int(rng.integers(0, m - kp + 1))
    alpha = float(rng.uniform(0.01, 0.2))
    got = audit.one_run_epsilon(s, inc, k_pos=kp, k_neg=kn, alpha=alpha)
    want = ref.one_run_epsilon(s.tolist(), inc.tolist(), kp, kn, alpha=alpha)
    assert got.guesses == kp + kn and got.m == m
    assert got.epsilon == pytest.approx(want, abs=1e-4)


@pytest.mark.parametrize("seed", range(4))
def test_delta_term_matches_theorem(seed):
    rng = np.random.default_rng(50 + seed)
    m = int(rng.integers(50, 300))
    s, inc = _canaries(rng, m, 4.0)
    kp, kn = m // 5, m // 5
    for delta in (1e-6, 1e-4):
        got = audit.one_run_epsilon(s, inc, k_pos=kp, k_neg=kn, delta=delta)
        want = ref.one_run_epsilon(s.tolist(), inc.tolist(), kp, kn, delta=delta)
        assert got.epsilon == pytest.approx(want, abs=1e-4)
        assert got.epsilon <= audit.one_run_epsilon(s, inc, k_pos=kp, k_neg=kn).epsilon
    for eps in (0.0, 0.7, 2.0):
        for v in (0, kp, kp + kn):
            assert audit.one_run_pvalue(m, kp + kn, v, eps, 1e-4) == pytest.approx(
                ref.one_run_pvalue(m, kp + kn, v, eps, 1e-4), rel=1e-9, abs=1e-300
            )


def test_all_correct_has_a_closed_form():
    # v = r: P[Binomial(r, q) ≥ r] = q^r = α, so q = α^(1/r).
    inc = np.arange(100) < 50
    s = inc.astype(float)
    r = audit.one_run_epsilon(s, inc, k_pos=20, k_neg=20, alpha=0.05)
    q = 0.05 ** (1 / 40)
    assert r.correct == 40 and r.epsilon == pytest.approx(math.log(q / (1 - q)), rel=1e-9)


def test_edge_cases():
    s, inc = np.arange(10.0), np.arange(10) >= 5
    assert audit.one_run_epsilon(s, inc, k_pos=0).epsilon == 0.0  # no guesses
    assert audit.one_run_epsilon(s, inc, k_pos=5, k_neg=5).correct == 10
    assert audit.one_run_epsilon(s, np.ones(10, bool), k_pos=10).correct == 10  # all included
    none = audit.one_run_epsilon(s, np.zeros(10, bool), k_pos=3, k_neg=3)
    assert none.correct == 3 and none.epsilon == 0.0
    # Ties: the lower index ranks higher, and no canary is guessed both ways.
    tied = audit.one_run_epsilon(np.zeros(4), np.array([True, False, False, True]), k_pos=1, k_neg=1)
    assert tied.correct == 1  # "in" on index 0 (right), "out" on index 3 (wrong)
    assert audit.one_run_epsilon(np.zeros(4), np.array([True, False, True, False]), k_pos=1, k_neg=1).correct == 2
    assert audit.one_run_epsilon(np.zeros(2), np.array([True, True]), k_pos=1, k_neg=1).correct == 1
    d = audit.one_run_epsilon(s, inc, k_pos=2, delta=1e-5).as_dict()
    assert d["guesses"] == 2 and d["delta"] == 1e-5


@pytest.mark.parametrize(
    "kw, exc, match",
    [
        ({"scores": [0.0, np.inf]}, ValueError, "NaN or infinite"),
        ({"scores": [0.0, np.nan]}, ValueError, "NaN or infinite"),
        ({"included": [1.0, 0.0]}, TypeError, "included"),
        ({"k_pos": 3}, ValueError, "k_pos"),
        ({"k_pos": 1, "k_neg": 2}, ValueError, "k_pos \\+ k_neg"),
        ({"k_pos": -1}, ValueError, "k_pos"),
        ({"k_pos": 1.0}, TypeError, "k_pos"),
        ({"alpha": 1.0}, ValueError, "alpha"),
        ({"delta": 1.0}, ValueError, "delta"),
    ],
)
def test_bad_input(kw, exc, match):
    args = {"scores": [0.0, 1.0], "included": [False, True], "k_pos": 1}
    args.update(kw)
    with pytest.raises(exc, match=match):
        audit.one_run_epsilon(args.pop("scores"), args.pop("included"), **args)
    with pytest.raises(ValueError, match="v <= r <= m"):
        audit.one_run_pvalue(3, 4, 1, 0.0)
