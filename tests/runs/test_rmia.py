"""RMIA (Zarifzadeh et al. 2024) against the numpy reference, edge cases, bad input, the store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import memscore
from memscore import RunStore
from memscore.reference import rmia as ref

SETTINGS = [
    {"online": True, "gamma": 1.0},
    {"online": True, "gamma": 2.0},
    {"online": False, "gamma": 1.0, "offline_a": 0.3},
    {"online": False, "gamma": 1.5, "offline_a": 1.0},
    {"online": False, "gamma": 1.0, "offline_a": 0.0},
]


@pytest.mark.parametrize("kw", SETTINGS)
@pytest.mark.parametrize(("r", "n", "z"), [(2, 5, 3), (9, 70, 31), (16, 129, 8)])
def test_rmia_matches_reference(rng, kw, r, n, z):
    masks = rng.random((r, n)) < 0.5
    p = rng.random((r, n))
    pop = rng.random((r, z))
    assert_allclose(memscore.rmia(masks, p, pop, **kw), ref.rmia(masks, p, pop, **kw), atol=1e-12)


@pytest.mark.parametrize("kw", SETTINGS)
def test_rmia_ties_zeros_and_coverage(rng, kw):
    r, n, z = 8, 12, 6
    masks = rng.random((r, n)) < 0.5
    masks[:, 0] = True  # in every run: offline has no reference holding it out
    masks[:, 1] = False  # in no run
    # Dyadic probabilities with many repeats: exact sums, many ties, zeros (0 / 0 ratios).
    p = rng.integers(0, 5, (r, n)) / 4.0
    pop = rng.integers(0, 5, (r, z)) / 4.0
    pop[:, 0] = 0.0  # a population example with 0 / 0 everywhere: dropped
    got = memscore.rmia(masks, p, pop, **kw)
    want = ref.rmia(masks, p, pop, **kw)
    assert_array_equal(np.isnan(got), np.isnan(want))
    assert_allclose(got, want, atol=1e-12)
    if not kw["online"]:
        assert np.isnan(got[:, 0]).all()
    assert np.isfinite(got[:, 1]).all()
    ok = ~np.isnan(got)
    assert (got[ok] >= 0).all() and (got[ok] <= 1).all()


def test_rmia_one_run_and_no_population_ratio():
    masks = np.array([[True, False]])
    assert np.isnan(memscore.rmia(masks, [[0.5, 0.5]], [[0.5]])).all()
    # Every population ratio 0 / 0: nothing to compare with.
    m2 = np.array([[True, False], [False, True]])
    assert np.isnan(memscore.rmia(m2, np.full((2, 2), 0.5), np.zeros((2, 3)))).all()


def test_rmia_separates_members(rng):
    r, n = 32, 300
    masks = rng.random((r, n)) < 0.5
    base = rng.random(n)
    p = np.clip(base + 0.25 * masks + rng.normal(0, 0.05, (r, n)), 0, 1)
    pop = np.clip(rng.random(50)[None, :] + rng.normal(0, 0.05, (r, 50)), 0, 1)
    for online in (True, False):
        m = memscore.membership_metrics(memscore.rmia(masks, p, pop, online=online), masks)
        assert m.auc > 0.8


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda m, p, z: memscore.rmia(m, p > 0.5, z), TypeError, "dtype bool"),
        (lambda m, p, z: memscore.rmia(m, p + 1.0, z), ValueError, r"probabilities in \[0, 1\]"),
        (lambda m, p, z: memscore.rmia(m, p * np.nan, z), ValueError, "NaN"),
        (lambda m, p, z: memscore.rmia(m, p[:, :2], z), ValueError, "examples but masks"),
        (lambda m, p, z: memscore.rmia(m, p, z[:2]), ValueError, "population: has 2 runs"),
        (lambda m, p, z: memscore.rmia(m, p, z[:, :0]), ValueError, "at least one population"),
        (lambda m, p, z: memscore.rmia(m, p, z, gamma=0.0), ValueError, "gamma"),
        (lambda m, p, z: memscore.rmia(m, p, z, offline_a=1.5), ValueError, "offline_a"),
        (lambda m, p, z: memscore.rmia(m, p, z, online=1), TypeError, "online"),
    ],
)
def test_rmia_bad_input(rng, call, exc, match):
    m = rng.random((4, 5)) < 0.5
    with pytest.raises(exc, match=match):
        call(m, rng.random((4, 5)), rng.random((4, 3)))


def test_true_class_probability(rng):
    z = rng.normal(size=(20, 5)) * 30
    y = rng.integers(0, 5, 20)
    e = np.exp(z - z.max(1, keepdims=True))
    want = (e / e.sum(1, keepdims=True))[np.arange(20), y]
    got = memscore.true_class_probability(memscore.logit_confidence(z, y))
    assert_allclose(got, want, rtol=1e-9, atol=1e-300)
    assert_allclose(memscore.true_class_probability([-800.0, 800.0]), [0.0, 1.0], atol=1e-300)
    with pytest.raises(TypeError, match="float confidences"):
        memscore.true_class_probability(np.ones(2, dtype=bool))


def test_store_rmia(tmp_path: Path, rng):
    n, t, c = 19, 7, 3
    y, yt = rng.integers(0, c, n), rng.integers(0, c, t)
    store = RunStore.create(tmp_path / "s", n_train=n, n_test=t, train_labels=y, test_labels=yt, n_classes=c)
    for _ in range(6):
        store.add_run(rng.random(n) < 0.5, train_logits=rng.normal(size=(n, c)), test_logits=rng.normal(size=(t, c)))
    masks = store.masks()
    p = memscore.true_class_probability(store.outcomes("train", "phi"))
    z = memscore.true_class_probability(store.outcomes("test", "phi"))
    for kw in SETTINGS:
        assert_allclose(store.rmia(**kw), ref.rmia(masks, p, z, **kw), atol=1e-12)
    empty = RunStore.create(tmp_path / "e", n_train=n, n_test=0)
    empty.add_run(masks[0], train_phi=np.zeros(n))
    with pytest.raises(ValueError, match="population"):
        empty.rmia()
