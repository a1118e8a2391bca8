"""Exact KNN-Shapley (Jia et al. 2019) against the numpy recursion and the definition."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from numpy.testing import assert_allclose

import memscore
from memscore.reference import valuation as ref


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
@pytest.mark.parametrize(("n", "t", "k"), [(1, 3, 1), (30, 7, 1), (30, 7, 5), (30, 7, 30), (25, 4, 40)])
def test_knn_shapley_matches_reference(rng, metric, n, t, k):
    x = rng.normal(size=(n, 4)).astype(np.float32)
    q = rng.normal(size=(t, 4)).astype(np.float32)
    y, yq = rng.integers(0, 3, n), rng.integers(0, 3, t)
    got = memscore.knn_shapley(x, y, q, yq, k=k, metric=metric)
    assert_allclose(got, ref.knn_shapley(x, y, q, yq, k, metric), atol=1e-12)
    # Efficiency: the values add up to the mean utility of the whole training set.
    full = np.mean(
        [
            (y[np.argsort(ref_dist, kind="stable")[:k]] == yq[j]).sum() / k
            for j, ref_dist in enumerate(
                memscore.reference.knn.pairwise(q.astype(np.float64), x.astype(np.float64), metric)
                * (-1 if metric == "ip" else 1)
            )
        ]
    )
    assert_allclose(got.sum(), full, atol=1e-9)


def test_knn_shapley_ties_and_index_reuse(rng):
    # Duplicate points: the order among equal distances is toward the lower index.
    x = np.repeat(rng.normal(size=(6, 2)).astype(np.float32), 3, axis=0)
    y = rng.integers(0, 2, 18)
    q = x[::4] + 0.0
    yq = rng.integers(0, 2, q.shape[0])
    index = memscore.KnnIndex(x)
    got = memscore.knn_shapley(index, y, q, yq, k=4)
    assert_allclose(got, ref.knn_shapley(x, y, q, yq, 4), atol=1e-12)
    assert_allclose(memscore.knn_shapley(x, y, q, yq, k=4), got, atol=0)


def test_knn_shapley_equals_the_definition():
    """Average marginal contribution over all 5! orders, one test point."""
    x = np.array([[0.0], [2.0], [0.5], [4.0], [1.0]], dtype=np.float32)
    y = np.array([1, 0, 0, 1, 1])
    q, yq, k = np.array([[0.1]], dtype=np.float32), np.array([1]), 2
    dist = np.abs(x[:, 0] - 0.1)

    def utility(s):
        near = sorted(s, key=lambda i: dist[i])[:k]
        return sum(y[i] == 1 for i in near) / k

    want = np.zeros(5)
    perms = list(itertools.permutations(range(5)))
    for p in perms:
        for j in range(5):
            want[p[j]] += utility(p[: j + 1]) - utility(p[:j])
    assert_allclose(memscore.knn_shapley(x, y, q, yq, k=k), want / len(perms), atol=1e-12)


def test_knn_shapley_single_class(rng):
    x = rng.normal(size=(10, 3)).astype(np.float32)
    q = rng.normal(size=(4, 3)).astype(np.float32)
    v = memscore.knn_shapley(x, np.zeros(10, dtype=int), q, np.zeros(4, dtype=int), k=3)
    assert_allclose(v.sum(), 1.0, atol=1e-12)
    assert (v > 0).all()


@pytest.mark.parametrize(
    ("kw", "exc", "match"),
    [
        ({"k": 0}, ValueError, "k"),
        ({"k": 1.5}, TypeError, "k"),
        ({"test": np.zeros((2, 3), np.float32)}, ValueError, "dimension 2"),
        ({"test": np.zeros((0, 2), np.float32)}, ValueError, "non-empty"),
        ({"train_labels": np.zeros(4, int)}, ValueError, r"train_labels: expected shape \(5,\)"),
        ({"test_labels": np.zeros(3, float)}, TypeError, "integer"),
        ({"train": np.full((5, 2), np.nan, np.float32)}, ValueError, "NaN"),
    ],
)
def test_knn_shapley_bad_input(kw, exc, match):
    args = {
        "train": np.zeros((5, 2), np.float32),
        "train_labels": np.zeros(5, int),
        "test": np.zeros((3, 2), np.float32),
        "test_labels": np.zeros(3, int),
        "k": 2,
    }
    args.update(kw)
    k = args.pop("k")
    with pytest.raises(exc, match=match):
        memscore.knn_shapley(*args.values(), k=k)
