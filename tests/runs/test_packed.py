"""Packed masks and outcomes (PackedBits, what the Rust core takes) give exactly the results
of the same bool arrays, on shapes whose bit padding is awkward."""

import numpy as np
import pytest

import memscore
from memscore import PackedBits

# (R, N, T): n % 8 != 0, R % 64 != 0, R = 1, N = 1, T = 1, and a multi-word R.
SHAPES = [(1, 1, 1), (1, 9, 3), (3, 1, 2), (7, 13, 5), (63, 8, 9), (65, 17, 1), (130, 4099, 3), (200, 64, 70)]


def same(a, b):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("r,n,t", SHAPES)
def test_packed_and_bool_inputs_agree(rng, r, n, t):
    masks = rng.random((r, n)) < 0.5
    train = rng.random((r, n)) < 0.7
    test = rng.random((r, t)) < 0.7
    pm, ptr, pte = PackedBits.pack(masks), PackedBits.pack(train), PackedBits.pack(test)
    assert pm.bits.shape == (r, (n + 7) // 8)

    same(memscore.memorization(pm, ptr), memscore.memorization(masks, train))
    for a, b in zip(
        memscore.memorization(pm, ptr, stderr=True), memscore.memorization(masks, train, stderr=True), strict=True
    ):
        same(a, b)
    same(memscore.holdout_accuracy(pm, ptr), memscore.holdout_accuracy(masks, train))
    ratios = rng.choice([0.3, 0.6], size=r)
    same(memscore.holdout_accuracy(pm, ptr, ratios=ratios), memscore.holdout_accuracy(masks, train, ratios=ratios))

    same(memscore.influence(pm, pte), memscore.influence(masks, test))
    for a, b in zip(
        memscore.influence(pm, pte, stderr=True, dtype=np.float64),
        memscore.influence(masks, test, stderr=True, dtype=np.float64),
        strict=True,
    ):
        same(a, b)
    # Packed masks with float outcomes, and mixed packed / bool arguments.
    f = rng.random((r, t))
    same(memscore.influence(pm, f, dtype=np.float64), memscore.influence(masks, f, dtype=np.float64))
    same(memscore.influence(masks, pte), memscore.influence(pm, test))
    k = min(3, n)
    for a, b in zip(memscore.influence(pm, pte, top_k=k), memscore.influence(masks, test, top_k=k), strict=True):
        same(a, b)
    ytr, yte = rng.integers(0, 2, n), rng.integers(0, 2, t)
    same(
        memscore.influence(pm, pte, train_labels=ytr, test_labels=yte),
        memscore.influence(masks, test, train_labels=ytr, test_labels=yte),
    )

    phi = rng.normal(size=(r, n))
    same(memscore.lira(pm, phi), memscore.lira(masks, phi))
    same(
        memscore.lira(pm, phi, online=False, fixed_variance=True),
        memscore.lira(masks, phi, online=False, fixed_variance=True),
    )

    # Bool outcomes with a shift take the float path; packed outcomes must agree there too.
    shift = np.zeros(n)
    a = memscore.OutcomeStats.from_runs(pm, ptr, shift=shift)
    b = memscore.OutcomeStats.from_runs(masks, train, shift=shift)
    same(a.sum_in, b.sum_in)
    same(a.n_out, b.n_out)


def test_bool_and_float_sums_agree_on_packed_masks(rng):
    # The packed bool kernel and the float kernel count the same runs.
    masks = rng.random((77, 1001)) < 0.4
    train = rng.random((77, 1001)) < 0.6
    pm = PackedBits.pack(masks)
    a = memscore.OutcomeStats.from_runs(pm, PackedBits.pack(train))
    b = memscore.OutcomeStats.from_runs(pm, train.astype(np.float64), shift=np.zeros(1001))
    same(a.n_in, b.n_in)
    same(a.sum_in, b.sum_in)
    same(a.sum_out, b.sum_out)


def test_core_rejects_a_packed_array_of_the_wrong_width():
    from memscore import _core

    with pytest.raises(ValueError, match="masks"):
        _core.outcome_sums_bool(np.zeros((2, 1), np.uint8), np.zeros((2, 1), np.uint8), 9)
    with pytest.raises(ValueError, match="outcomes"):
        _core.influence_full(np.zeros((2, 1), np.uint8), np.zeros((2, 1)), 8, 3)
