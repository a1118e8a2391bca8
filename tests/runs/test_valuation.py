"""Data valuation from the runs: Banzhaf (MSR) against the numpy reference, from arrays and a store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

import memscore
from memscore import RunStore
from memscore.reference import valuation as ref


def test_banzhaf_matches_reference(rng):
    masks = rng.random((40, 53)) < 0.5
    u = rng.normal(0.7, 0.1, 40)
    v, se = memscore.banzhaf(masks, u, stderr=True)
    wv, wse = ref.banzhaf(masks, u)
    assert_allclose(v, wv, rtol=1e-12, atol=1e-12)
    assert_allclose(se, wse, rtol=1e-10, atol=1e-12)
    assert_allclose(memscore.banzhaf(masks, u), wv, rtol=1e-12, atol=1e-12)


def test_banzhaf_edge_cases(rng):
    masks = rng.random((6, 9)) < 0.5
    masks[:, 0] = True  # in every run: no out side
    masks[:, 1] = False  # in no run: no in side
    masks[:, 2] = [1, 0, 0, 0, 0, 0]  # one run in: value defined, stderr not
    u = np.array([0.5, 0.5, 0.5, 0.25, 0.25, 0.75])  # ties
    v, se = memscore.banzhaf(masks, u, stderr=True)
    wv, wse = ref.banzhaf(masks, u)
    assert np.isnan(v[:2]).all() and np.isnan(se[:3]).all()
    assert_allclose(v, wv, atol=1e-12)
    assert_allclose(se, wse, atol=1e-12)
    # One run: nothing is defined.
    one = memscore.banzhaf(masks[:1], u[:1])
    assert np.isnan(one).all()
    # A constant utility has value 0 wherever defined; integer utilities are accepted.
    c = memscore.banzhaf(masks, np.ones(6, dtype=np.int64))
    assert np.all(c[2:] == 0.0)


def test_banzhaf_finds_the_example_that_matters(rng):
    masks = rng.random((200, 20)) < 0.5
    u = 0.5 + 0.3 * masks[:, 7] + rng.normal(0, 0.01, 200)
    v = memscore.banzhaf(masks, u)
    assert int(np.argmax(v)) == 7 and abs(v[7] - 0.3) < 0.01


@pytest.mark.parametrize(
    ("utility", "exc", "match"),
    [
        (np.ones(5), ValueError, r"one value per run, shape \(6,\), got \(5,\)"),
        (np.ones((6, 1)), ValueError, "one value per run"),
        (np.array([1.0, np.nan, 1, 1, 1, 1]), ValueError, "NaN or infinite"),
        (np.array(["a"] * 6), TypeError, "real number"),
        (np.ones(6, dtype=bool), TypeError, "real number"),
    ],
)
def test_banzhaf_bad_utility(utility, exc, match):
    with pytest.raises(exc, match=match):
        memscore.banzhaf(np.ones((6, 3), dtype=bool), utility)


def test_run_utility():
    o = np.array([[1, 0, 1], [0, 0, 0]], dtype=bool)
    assert_allclose(memscore.run_utility(o), [2 / 3, 0.0])
    assert_allclose(memscore.run_utility(np.array([[1.0, 2.0], [3.0, 5.0]])), [1.5, 4.0])
    with pytest.raises(ValueError, match="at least one test example"):
        memscore.run_utility(np.zeros((2, 0), dtype=bool))


def test_store_banzhaf(tmp_path: Path, rng):
    n, t, c = 21, 13, 3
    y, yt = rng.integers(0, c, n), rng.integers(0, c, t)
    store = RunStore.create(tmp_path / "s", n_train=n, n_test=t, train_labels=y, test_labels=yt, n_classes=c)
    masks, tl = [], []
    for _ in range(12):
        m = rng.random(n) < 0.5
        z = rng.normal(size=(t, c))
        store.add_run(m, train_logits=rng.normal(size=(n, c)), test_logits=z)
        masks.append(m)
        tl.append(z)
    masks_a = np.array(masks)
    acc = np.array([(np.argmax(z, 1) == yt).mean() for z in tl])
    margin = np.array([memscore.logit_confidence(z, yt).mean() for z in tl])
    assert_allclose(store.run_utility(), acc)
    assert_allclose(store.run_utility("margin", chunk_runs=5), margin, rtol=1e-6)
    v, se = store.banzhaf(stderr=True)
    wv, wse = ref.banzhaf(masks_a, acc)
    assert_allclose(v, wv, atol=1e-12)
    assert_allclose(se, wse, atol=1e-12)
    assert_allclose(store.banzhaf("margin"), ref.banzhaf(masks_a, margin)[0], atol=1e-6)
    custom = rng.random(12)
    assert_allclose(store.banzhaf(custom), ref.banzhaf(masks_a, custom)[0], atol=1e-12)
    with pytest.raises(ValueError, match="one value per run"):
        store.banzhaf(custom[:5])
    with pytest.raises(ValueError, match="'accuracy', 'margin'"):
        store.banzhaf("loss")
    empty = RunStore.create(tmp_path / "e", n_train=n, n_test=0)
    empty.add_run(masks[0], train_correct=np.ones(n, dtype=bool))
    with pytest.raises(ValueError, match="no test examples"):
        empty.banzhaf()
