"""per_example_epsilon (each example's runs are its trials) and RunStore.epsilon."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

pytest.importorskip("scipy")

import memscore  # noqa: E402
from memscore import audit  # noqa: E402
from memscore.reference import audit as ref  # noqa: E402


def _runs(rng: np.random.Generator, r: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    masks = rng.random((r, n)) < 0.5
    shift = np.linspace(0, 4, n)
    return rng.normal(size=(r, n)) + masks * shift, masks


@pytest.mark.parametrize("method, delta", [("clopper-pearson", 0.0), ("gdp", 1e-5)])
def test_each_column_is_one_bound(rng, method, delta):
    s, m = _runs(rng, 40, 6)
    for threshold in (1.0, [0.0, 1.0, 2.0]):
        tab = audit.per_example_epsilon(s, m, threshold=threshold, method=method, delta=delta)
        assert tab["index"].to_list() == list(range(6))
        for i in range(6):
            one = audit.epsilon_lower_bound(s[:, i], m[:, i], threshold=threshold, method=method, delta=delta)
            row = tab.row(i, named=True)
            assert row["epsilon"] == one.epsilon and row["threshold"] == one.threshold
            assert (row["fpr_upper"], row["fnr_upper"]) == (one.fpr_upper, one.fnr_upper)
            assert (row["n_in"], row["n_out"]) == (m[:, i].sum(), (~m[:, i]).sum())
            if method == "gdp":
                assert row["mu"] == one.mu
    fixed = audit.per_example_epsilon(s, m, threshold=1.0)
    want = [ref.epsilon_fixed(s[:, i].tolist(), m[:, i].tolist(), 1.0) for i in range(6)]
    assert_allclose(fixed["epsilon"].to_numpy(), want, rtol=1e-9, atol=1e-12)
    assert fixed["epsilon"][-1] > fixed["epsilon"][0]  # the separated example shows more


def test_split_per_example_seeds_by_example(rng):
    s, m = _runs(rng, 64, 4)
    tab = audit.per_example_epsilon(s, m, seed=3)
    for i in range(4):
        want, t = ref.epsilon_split(s[:, i].tolist(), m[:, i].tolist(), seed=[3, i])
        assert tab["threshold"][i] == t
        assert tab["epsilon"][i] == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_nan_scores_are_dropped_and_empty_examples_get_zero(rng):
    s, m = _runs(rng, 30, 3)
    s[:5, 1] = np.nan
    s[:, 2] = np.nan
    tab = audit.per_example_epsilon(s, m, threshold=1.0)
    kept = ~np.isnan(s[:, 1])
    one = audit.epsilon_lower_bound(s[kept, 1], m[kept, 1], threshold=1.0)
    assert tab["epsilon"][1] == one.epsilon and tab["n_in"][1] + tab["n_out"][1] == 25
    assert tab["epsilon"][2] == 0.0 and tab["n_in"][2] == 0 and np.isnan(tab["fpr"][2])
    with pytest.raises(ValueError, match="infinite"):
        audit.per_example_epsilon(np.full((3, 2), np.inf), np.ones((3, 2), bool))
    with pytest.raises(ValueError, match="shape"):
        audit.per_example_epsilon(s, m[:, :2])
    with pytest.raises(ValueError, match="\\(R, N\\)"):
        audit.per_example_epsilon(s[:, 0], m[:, 0])
    with pytest.raises(ValueError, match="delta > 0"):
        audit.per_example_epsilon(s, m, method="gdp")


def test_store_epsilon(tmp_path, rng):
    n, c = 12, 3
    y = rng.integers(0, c, n)
    yt = rng.integers(0, c, 4)
    store = memscore.RunStore.create(tmp_path / "s", n_train=n, n_test=4, train_labels=y, test_labels=yt, n_classes=c)
    for _ in range(16):
        mask = rng.random(n) < 0.5
        logits = rng.normal(size=(n, c))
        logits[np.arange(n), y] += 3.0 * mask  # members are fit better
        store.add_run(mask, train_logits=logits, test_logits=rng.normal(size=(4, c)))
    masks = store.masks()
    phi = store.outcomes("train", "phi")
    got = store.epsilon("phi", threshold=0.0)
    want = audit.per_example_epsilon(phi, masks, threshold=0.0)
    assert got.equals(want)
    lira = store.epsilon(delta=1e-5, method="gdp", seed=1)  # LiRA, the default
    assert lira.equals(audit.per_example_epsilon(store.lira(), masks, delta=1e-5, method="gdp", seed=1))
    assert store.epsilon("rmia", threshold=0.5).height == n
    with pytest.raises(ValueError, match="score"):
        store.epsilon("loss")
