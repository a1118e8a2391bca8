"""Validity on null scores: when the scores do not depend on membership, an ε lower bound at
confidence 1 - α may be positive in at most a share α of the experiments.

The issue's check runs 1,000 seeds with a limit of α + 0.015 (benches/bench_audit.py). Here
200 seeds: a share that is truly α would exceed α + 3 sd = α + 3 sqrt(α(1 - α) / 200) ≈ 0.096
(α = 0.05) with probability about 0.2%, so that is the limit. The estimators are conservative
(Clopper–Pearson, a union bound), so their shares sit well below it; the absolute-value
shortcut of jax_privacy's GDP bound before its PR #270 shows that the check can fail.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("scipy")

from memscore import audit  # noqa: E402

SEEDS = 200
ALPHA = 0.05
LIMIT = ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / SEEDS)
N = 200  # trials (or canaries) per experiment
GRID = np.linspace(-2.0, 2.0, 9)

ESTIMATORS = {
    f"{method} {name} {direction}": (method, threshold, direction)
    for method in ("clopper-pearson", "gdp")
    for name, threshold in (("fixed", 0.0), ("split", None), ("bonferroni", GRID))
    for direction in ("greater", "both")
}


def _null(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=N), rng.random(N) < 0.5


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_multi_trial_bounds_are_valid_on_null_scores(name):
    method, threshold, direction = ESTIMATORS[name]
    delta = 1e-5 if method == "gdp" else 0.0
    positive = 0
    for seed in range(SEEDS):
        s, m = _null(seed)
        r = audit.epsilon_lower_bound(
            s, m, threshold=threshold, method=method, delta=delta, direction=direction, alpha=ALPHA, seed=seed
        )
        positive += r.epsilon > 0
    assert positive / SEEDS <= LIMIT


@pytest.mark.parametrize("delta", [0.0, 1e-5])
def test_one_run_bound_is_valid_on_null_scores(delta):
    positive = 0
    for seed in range(SEEDS):
        s, inc = _null(seed)
        positive += audit.one_run_epsilon(s, inc, k_pos=20, k_neg=20, delta=delta, alpha=ALPHA).epsilon > 0
    assert positive / SEEDS <= LIMIT


def test_the_check_catches_the_absolute_value_shortcut():
    """jax_privacy PR #270: |Φ⁻¹(1 - FPR̄) - Φ⁻¹(FNR̄)| as μ takes a negative μ (a test worse
    than chance) as evidence for the reverse direction; on null scores it is almost always > 0."""
    from scipy.stats import norm

    from memscore.audit.bounds import clopper_pearson_upper

    positive = 0
    for seed in range(SEEDS):
        s, m = _null(seed)
        fpr_u = clopper_pearson_upper(int((s[~m] >= 0).sum()), int((~m).sum()), ALPHA / 2)
        fnr_u = clopper_pearson_upper(int((s[m] < 0).sum()), int(m.sum()), ALPHA / 2)
        positive += abs(float(norm.isf(fpr_u) - norm.ppf(fnr_u))) > 0
    assert positive / SEEDS > LIMIT
