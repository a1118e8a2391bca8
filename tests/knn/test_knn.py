"""memscore.knn / KnnIndex against the numpy brute-force reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

import memscore
from memscore import KnnIndex, knn
from memscore.reference import knn as ref

METRICS = ["l2", "ip", "cosine"]


def small_ints(rng, shape, lo=-2, hi=3):
    """Small integers as float32: every distance is exact, so ties are real ties."""
    return rng.integers(lo, hi, size=shape).astype(np.float32)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("q,n,d,k", [(7, 50, 3, 4), (1, 200, 8, 10), (13, 40, 1, 5), (5, 30, 2, 30), (3, 3000, 16, 1)])
def test_exact_ties_match_reference(rng, metric, q, n, d, k):
    x = small_ints(rng, (n, d))
    y = small_ints(rng, (q, d))
    dist, idx = knn(y, x, k, metric=metric)
    rd, ri = ref.knn(y, x, k, metric)
    assert dist.dtype == np.float32 and idx.dtype == np.int64
    assert dist.shape == idx.shape == (q, k)
    if metric == "cosine":  # normalisation rounds: compare distances only
        assert_allclose(dist, rd, atol=1e-5)
    else:
        assert_array_equal(idx, ri)
        assert_array_equal(dist, rd)


@pytest.mark.parametrize("metric", METRICS)
def test_random_floats_match_reference(rng, metric):
    x = rng.standard_normal((3000, 32)).astype(np.float32)
    y = rng.standard_normal((40, 32)).astype(np.float32)
    dist, idx = knn(y, x, 20, metric=metric)
    rd, ri = ref.knn(y, x, 20, metric)
    assert_allclose(dist, rd, rtol=1e-4, atol=1e-4)
    # Same neighbours unless two distances are within round-off of each other.
    full = ref.pairwise(y.astype(np.float64), x.astype(np.float64), metric)
    got = np.take_along_axis(full, idx, axis=1)
    assert_allclose(got, rd, rtol=1e-4, atol=1e-4)
    agree = (idx == ri).mean()
    assert agree > 0.99
    # Sorted nearest first.
    step = np.diff(dist, axis=1)
    assert ((step <= 0) if metric == "ip" else (step >= 0)).all()


def test_duplicates_go_to_lower_index_and_k_equals_n():
    x = np.tile(np.array([[1.0, 2.0, 3.0]], np.float32), (20, 1))
    dist, idx = knn(np.zeros((2, 3), np.float32), x, 20)
    assert_array_equal(idx, np.tile(np.arange(20), (2, 1)))
    assert_array_equal(dist, 14.0)


@given(
    n=st.integers(1, 60),
    q=st.integers(1, 6),
    d=st.integers(1, 5),
    seed=st.integers(0, 2**31),
    metric=st.sampled_from(["l2", "ip"]),
    data=st.data(),
)
@settings(max_examples=60, deadline=None)
def test_property_against_reference(n, q, d, seed, metric, data):
    k = data.draw(st.integers(1, n))
    rng = np.random.default_rng(seed)
    x = small_ints(rng, (n, d))
    y = small_ints(rng, (q, d))
    dist, idx = knn(y, x, k, metric=metric)
    rd, ri = ref.knn(y, x, k, metric)
    assert_array_equal(idx, ri)
    assert_array_equal(dist, rd)


def test_index_reuse_threads_and_tiles(rng):
    x = rng.standard_normal((5000, 24)).astype(np.float32)
    y = rng.standard_normal((300, 24)).astype(np.float32)
    index = KnnIndex(x)
    assert (index.ntotal, index.dim, index.metric, len(index)) == (5000, 24, "l2", 5000)
    assert "ntotal=5000" in repr(index)
    d1, i1 = index.search(y, 7)
    d2, i2 = index.search(y, 7, threads=1)
    d3, i3 = index.search(y[:1], 7, threads=3)  # one query: keys split over threads
    assert_array_equal(i1, i2)
    assert_array_equal(d1, d2)
    assert_array_equal(i1[:1], i3)
    # Results do not depend on tile sizes.
    core = memscore._core.KnnIndexCore(x, "l2", query_tile=5, key_block=33)
    d4, i4 = core.search(y, 7)
    assert_array_equal(i1, i4)
    assert_allclose(d1, d4, rtol=1e-5, atol=1e-5)


def test_float16_keys_and_float64_and_torch_inputs(rng):
    x = small_ints(rng, (400, 6), -4, 5)
    y = small_ints(rng, (9, 6), -4, 5)
    want = knn(y, x, 5)
    half = KnnIndex(x.astype(np.float16))
    assert half.dtype == np.float16
    got = half.search(y, 5)
    assert_array_equal(got[1], want[1])
    assert_array_equal(got[0], want[0])
    got64 = knn(y.astype(np.float64), x.astype(np.float64), 5)
    assert_array_equal(got64[1], want[1])
    torch = pytest.importorskip("torch")
    gt = knn(torch.from_numpy(y), torch.from_numpy(x), 5)
    assert_array_equal(gt[1], want[1])
    # Non-contiguous views are accepted.
    xs = np.asfortranarray(x)
    assert_array_equal(knn(y, xs, 5)[1], want[1])


def test_cosine_zero_vector_has_distance_one():
    x = np.array([[0.0, 0.0], [1.0, 0.0]], np.float32)
    dist, idx = knn(np.array([[0.0, 1.0]], np.float32), x, 2, metric="cosine")
    assert_allclose(dist, [[1.0, 1.0]], atol=1e-6)
    assert_array_equal(idx, [[0, 1]])


def test_matches_faiss_flat(rng):
    faiss = pytest.importorskip("faiss")
    x = rng.standard_normal((4000, 32)).astype(np.float32)
    y = rng.standard_normal((50, 32)).astype(np.float32)
    index = faiss.IndexFlatL2(32)
    index.add(x)
    fd, fi = index.search(y, 10)
    d, i = knn(y, x, 10)
    assert_allclose(d, fd, rtol=1e-4, atol=1e-3)
    assert (i == fi).mean() > 0.99


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda x, y: knn(y, x, 0), ValueError, "k: expected 1 <= k"),
        (lambda x, y: knn(y, x, 11), ValueError, r"k <= number of keys \(10\)"),
        (lambda x, y: knn(y, x, 2.0), TypeError, "k: expected an int"),
        (lambda x, y: knn(y[:, :3], x, 2), ValueError, "dimensions differ"),
        (lambda x, y: KnnIndex(x).search(y[:, :3], 2), ValueError, "expected dimension 4"),
        (lambda x, y: knn(y, x.astype(np.int64), 2), TypeError, "expected a float32 array"),
        (lambda x, y: knn(y.astype(np.int32), x, 2), TypeError, "queries: expected a float32"),
        (lambda x, y: knn(y, x.astype(bool), 2), TypeError, "keys"),
        (lambda x, y: knn(y, np.where(x > 0, np.nan, x), 2), ValueError, "NaN or infinite"),
        (lambda x, y: knn(np.full_like(y, np.inf), x, 2), ValueError, "NaN or infinite"),
        # The one-shot search finds bad keys in its own pass over them (no numpy check).
        (lambda x, y: knn(y, np.where(x > 0, np.inf, x), 2, metric="ip"), ValueError, "keys: contains NaN"),
        (lambda x, y: knn(y, np.where(x > 0, -np.inf, x), 2, metric="cosine"), ValueError, "keys: contains NaN"),
        (lambda x, y: knn(y, np.where(x > 0, np.nan, x).astype(np.float16), 2), ValueError, "keys: contains NaN"),
        (lambda x, y: knn(y, x[:0], 1), ValueError, "non-empty"),
        (lambda x, y: knn(y[:0], x, 1), ValueError, "non-empty"),
        (lambda x, y: knn(y, x[:, :0], 1), ValueError, "non-empty"),
        (lambda x, y: knn(y, x[0], 1), ValueError, "2-D"),
        (lambda x, y: knn(y, x, 2, metric="l1"), ValueError, "metric"),
        (lambda x, y: knn(y, x, 2, threads=0), ValueError, "threads"),
        (lambda x, y: KnnIndex(x.astype(np.float16) * np.float16(np.inf)), ValueError, "NaN or infinite"),
    ],
)
def test_bad_input(rng, call, exc, match):
    x = rng.standard_normal((10, 4)).astype(np.float32)
    y = rng.standard_normal((3, 4)).astype(np.float32)
    with pytest.raises(exc, match=match):
        call(x, y)


def test_overflowing_distances_raise_instead_of_returning_garbage():
    x = np.full((2, 3), 3e38, np.float32)
    with pytest.raises(ValueError, match="overflowed"):
        knn(np.full((1, 3), -3e38, np.float32), x, 2)


def test_pure_python_reference_agrees(rng):
    x = small_ints(rng, (30, 3))
    y = small_ints(rng, (4, 3))
    d, i = ref.knn_pure(y.tolist(), x.tolist(), 5)
    rd, ri = ref.knn(y, x, 5)
    assert_array_equal(np.array(i), ri)
    assert_array_equal(np.array(d), rd)


def _brute_f64(q, x, k, metric):
    q64, x64 = q.astype(np.float64), x.astype(np.float64)
    if metric == "l2":
        dist = ((q64[:, None, :] - x64[None, :, :]) ** 2).sum(-1)
    elif metric == "ip":
        dist = -(q64 @ x64.T)
    else:
        qn = q64 / np.linalg.norm(q64, axis=1, keepdims=True)
        xn = x64 / np.linalg.norm(x64, axis=1, keepdims=True)
        dist = 1.0 - qn @ xn.T
    order = np.lexsort((np.broadcast_to(np.arange(x.shape[0]), dist.shape), dist), axis=-1)[:, :k]
    d = np.take_along_axis(dist, order, axis=1)
    return (-d if metric == "ip" else d), order


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_large_common_offset_matches_float64_brute_force(rng, metric):
    # values ~100 differing by ~0.01: float32 ||x||^2 - 2 q.x + ||q||^2 cancels to noise
    x = (100 + 0.01 * rng.standard_normal((2000, 16))).astype(np.float32)
    q = (100 + 0.01 * rng.standard_normal((25, 16))).astype(np.float32)
    d, i = knn(q, x, 5, metric=metric)
    wd, wi = _brute_f64(q, x, 5, metric)
    if metric == "l2":
        assert_array_equal(i, wi)
        assert (d > 0).all()
    assert_allclose(d, wd, rtol=1e-5, atol=1e-7)
    if metric == "cosine":
        assert (d >= 0).all()


def test_large_offset_float16_keys_are_exact(rng):
    x = (100 + 0.5 * rng.standard_normal((1000, 16))).astype(np.float16)
    q = (100 + 0.5 * rng.standard_normal((10, 16))).astype(np.float32)
    d, i = KnnIndex(x).search(q, 3)
    wd, wi = _brute_f64(q, x.astype(np.float32), 3, "l2")
    assert_array_equal(i, wi)
    assert_allclose(d, wd, rtol=1e-5)


def test_overflowing_products_are_refused_for_every_metric():
    big = np.array([[3e38, 0.0], [0.0, 3e38]], np.float32)
    with pytest.raises(ValueError, match="overflowed"):
        KnnIndex(big, "ip")
    with pytest.raises(ValueError, match="overflowed"):
        KnnIndex(np.ones((2, 2), np.float32), "ip").search(big, 1)
