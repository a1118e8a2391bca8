"""Trajectories across model sizes, proxy correlations, disagreement and CACE."""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl
import pytest

import memscore


def test_spearman_matches_scipy_with_ties_and_nan(rng):
    stats = pytest.importorskip("scipy.stats")
    a = rng.integers(0, 5, 200).astype(float)
    b = a + rng.integers(0, 3, 200)
    a[3] = np.nan
    rho, n = memscore.spearman(a, b)
    ok = np.isfinite(a)
    want = stats.spearmanr(a[ok], b[ok]).statistic
    assert n == 199 and rho == pytest.approx(want, abs=1e-12)
    assert np.isnan(memscore.spearman([1.0], [2.0])[0])
    assert np.isnan(memscore.spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])[0])  # constant: undefined


def test_trajectory_classes():
    mem = {
        64: [0.0, 0.0, 0.1, 0.8, 0.5, 0.0, np.nan],
        128: [0.02, 0.4, 0.6, 0.4, 0.1, 0.05, 0.1],
        256: [0.05, 0.9, 0.15, 0.1, 0.6, 0.5, 0.1],
    }
    df = memscore.trajectories(mem, tol=0.1)
    assert df.columns == ["index", "trajectory", "mem_64", "mem_128", "mem_256"]
    assert df["trajectory"].to_list() == ["flat", "increasing", "cap", "decreasing", "dip", "increasing", None]
    # array input, two sizes: no interior point, so no cap / dip
    df2 = memscore.trajectories(np.array([[0.0, 0.5, 0.3], [0.5, 0.0, 0.35]]))
    assert df2["trajectory"].to_list() == ["increasing", "decreasing", "flat"]
    with pytest.raises(ValueError, match="at least 2"):
        memscore.trajectories([np.zeros(3)])
    with pytest.raises(ValueError, match="one length"):
        memscore.trajectories([np.zeros(3), np.zeros(4)])


def brute_disagreement(pred):
    r, t = pred.shape
    pairs = list(itertools.combinations(range(r), 2))
    return np.mean([np.mean(pred[a] != pred[b]) for a, b in pairs])


def brute_cace(pred, y, c):
    r, t = pred.shape
    share = np.stack([(pred == k).mean(0) for k in range(c)], 1)  # (T, C)
    total = 0.0
    for k in range(c):
        for q in np.unique(share[:, k]):
            sel = share[:, k] == q
            total += sel.mean() * abs((y[sel] == k).mean() - q)
    return total


@pytest.mark.parametrize("r", [2, 3, 10])
def test_disagreement_equals_pairwise_brute_force(rng, r):
    t, c = 300, 4
    y = rng.integers(0, c, t)
    pred = np.where(rng.random((r, t)) < 0.7, y, rng.integers(0, c, (r, t)))
    d = memscore.disagreement(pred, y)
    assert d.disagreement == pytest.approx(brute_disagreement(pred), abs=1e-12)
    assert d.test_error == pytest.approx(np.mean(pred != y), abs=1e-12)
    assert d.gap == pytest.approx(d.disagreement - d.test_error)
    assert d.cace == pytest.approx(brute_cace(pred, y, c), abs=1e-12)
    # Jiang et al.'s bound |E err - E dis| <= CACE is for runs drawn independently from
    # the ensemble, pairs (h, h) included: that disagreement is (R - 1) / R of ours.
    assert abs(d.test_error - d.disagreement * (r - 1) / r) <= d.cace + 1e-12
    # logits give the same as their argmax
    logits = rng.normal(size=(r, t, c))
    assert memscore.disagreement(logits, y).disagreement == pytest.approx(
        memscore.disagreement(logits.argmax(2), y).disagreement
    )


def test_disagreement_edge_cases_and_errors():
    same = np.zeros((3, 5), dtype=np.int64)
    d = memscore.disagreement(same, np.zeros(5, dtype=np.int64))
    assert d.disagreement == 0.0 and d.test_error == 0.0 and d.cace == 0.0
    assert np.isnan(memscore.disagreement(same).test_error)
    with pytest.raises(ValueError, match="at least 2 runs"):
        memscore.disagreement(np.zeros((1, 5), dtype=np.int64))
    with pytest.raises(TypeError):
        memscore.disagreement(np.zeros((3, 5), dtype=np.float64))
    with pytest.raises(ValueError, match="labels"):
        memscore.disagreement(same, np.zeros(4, dtype=np.int64))


def test_proxy_table_from_scores_frame():
    pytest.importorskip("scipy")
    n = 100
    mem = np.linspace(0, 1, n)
    df = pl.DataFrame(
        {
            "memorization": mem,
            "holdout_accuracy": 1 - mem,
            "el2n": mem**2,
            "grand": np.full(n, np.nan),  # not recorded: left out
            "forgetting_events": np.r_[np.zeros(50), np.ones(50)],
        }
    )
    t = memscore.proxy_table(df)
    assert t["proxy"].to_list() == ["holdout_accuracy", "el2n", "forgetting_events"]
    rho = dict(zip(t["proxy"], t["spearman"], strict=True))
    assert rho["holdout_accuracy"] == pytest.approx(-1.0) and rho["el2n"] == pytest.approx(1.0)
    assert 0 < rho["forgetting_events"] < 1
    assert (t["p_value"].to_numpy() < 1e-6).all()
    with pytest.raises(ValueError, match="memorization"):
        memscore.proxy_table(pl.DataFrame({"x": [1.0]}))


def test_snapshot_outcomes_by_hand():
    z = np.array([[[2.0, 0.0], [0.0, 0.0]]])  # (S=1, n=2, C=2)
    out = memscore.snapshot_outcomes(z, [0, 1])
    p = np.exp(2) / (np.exp(2) + 1)
    assert out["correct"].tolist() == [[True, False]]  # tie toward class 0
    np.testing.assert_allclose(out["loss"], [[-np.log(p), np.log(2)]])
    np.testing.assert_allclose(out["el2n"], [[np.sqrt(2) * (1 - p), np.sqrt(0.5)]])
    with pytest.raises(ValueError, match="labels"):
        memscore.snapshot_outcomes(z, [0, 2])
