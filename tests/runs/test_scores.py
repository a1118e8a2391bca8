"""The Rust score kernels against the numpy reference (python/memscore/reference)."""

import numpy as np
import pytest
from conftest import random_runs

import memscore
from memscore import reference as ref

SHAPES = [(1, 5, 3), (2, 7, 4), (63, 40, 9), (64, 33, 5), (65, 130, 17), (200, 301, 23)]


def assert_close(a, b, tol=1e-10):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_allclose(a[~np.isnan(a)], b[~np.isnan(b)], rtol=tol, atol=tol)


# ------------------------------------------------------------------ memorization / hold-out


@pytest.mark.parametrize("r,n,t", SHAPES)
@pytest.mark.parametrize("kind", ["bool", "float"])
def test_memorization_matches_reference(rng, r, n, t, kind):
    masks, train, _ = random_runs(rng, r, n, t)
    outcomes = train if kind == "bool" else rng.normal(3.0, 2.0, size=(r, n))
    mem, se = memscore.memorization(masks, outcomes, stderr=True)
    want, want_se = ref.memorization(masks, outcomes, stderr=True)
    assert mem.dtype == np.float64 and mem.shape == (n,)
    assert_close(mem, want)
    assert_close(se, want_se, tol=1e-8)
    assert_close(memscore.holdout_accuracy(masks, outcomes), ref.holdout_accuracy(masks, outcomes))


def test_memorization_edge_cases():
    # example 0: in every run; example 1: in no run; example 2: in one of three runs.
    masks = np.array([[1, 0, 1], [1, 0, 0], [1, 0, 0]], dtype=bool)
    correct = np.array([[1, 1, 1], [0, 1, 0], [1, 0, 0]], dtype=bool)
    mem, se = memscore.memorization(masks, correct, stderr=True)
    assert np.isnan(mem[0]) and np.isnan(mem[1])
    assert mem[2] == pytest.approx(1.0 - 0.0)
    assert np.isnan(se[2])  # one run on the in-side: no sample variance
    hold = memscore.holdout_accuracy(masks, correct)
    assert np.isnan(hold[0]) and hold[1] == pytest.approx(2 / 3) and hold[2] == 0.0


def test_memorization_one_run_is_nan():
    mem = memscore.memorization(np.array([[True, False]]), np.array([[True, True]]))
    assert np.isnan(mem).all()


def test_float_outcomes_large_offset_are_stable(rng):
    masks, _, _ = random_runs(rng, 300, 50, 1)
    x = 1e6 + rng.normal(size=(300, 50))
    mem, se = memscore.memorization(masks, x, stderr=True)
    want, want_se = ref.memorization(masks, x, stderr=True)
    assert_close(mem, want, tol=1e-8)
    assert_close(se, want_se, tol=1e-6)


def test_holdout_with_several_ratios(rng):
    masks, train, _ = random_runs(rng, 90, 60, 1)
    ratios = np.repeat([0.1, 0.5, 0.9], 30)
    masks[:30] = rng.random((30, 60)) < 0.1
    got = memscore.holdout_accuracy(masks, train, ratios=ratios)
    assert_close(got, ref.holdout_accuracy(masks, train, ratios=ratios))
    groups = [memscore.holdout_accuracy(masks[g * 30 : (g + 1) * 30], train[g * 30 : (g + 1) * 30]) for g in range(3)]
    assert_close(got, np.nanmean(np.stack(groups), 0))


def test_outcome_stats_add_up_over_chunks(rng):
    masks, _, _ = random_runs(rng, 130, 40, 1)
    x = rng.normal(size=(130, 40))
    shift = x[0]
    whole = memscore.OutcomeStats.from_runs(masks, x, shift=shift)
    parts = memscore.OutcomeStats.from_runs(masks[:50], x[:50], shift=shift) + memscore.OutcomeStats.from_runs(
        masks[50:], x[50:], shift=shift
    )
    assert_close(whole.memorization(), parts.memorization())
    assert_close(whole.memorization_stderr(), parts.memorization_stderr())


# ------------------------------------------------------------------ influence


@pytest.mark.parametrize("r,n,t", SHAPES)
@pytest.mark.parametrize("kind", ["bool", "float"])
def test_influence_matches_reference(rng, r, n, t, kind):
    masks, _, test = random_runs(rng, r, n, t)
    outcomes = test if kind == "bool" else rng.random((r, t))
    infl, se = memscore.influence(masks, outcomes, stderr=True, dtype=np.float64)
    want, want_se = ref.influence(masks, outcomes, stderr=True)
    assert infl.shape == (t, n) and infl.dtype == np.float64
    assert_close(infl, want)
    assert_close(se, want_se, tol=1e-7)
    f32 = memscore.influence(masks, outcomes)
    assert f32.dtype == np.float32
    assert_close(f32, want, tol=1e-6)


def test_influence_same_class_only(rng):
    masks, _, test = random_runs(rng, 80, 50, 12)
    ytr, yte = rng.integers(0, 3, 50), rng.integers(0, 3, 12)
    got = memscore.influence(masks, test, train_labels=ytr, test_labels=yte, dtype=np.float64)
    assert_close(got, ref.influence(masks, test, train_labels=ytr, test_labels=yte))
    assert np.isnan(got[yte[:, None] != ytr[None, :]]).all()


@pytest.mark.parametrize("kind", ["bool", "float"])
@pytest.mark.parametrize("k", [1, 5, 50, 60])
def test_topk_matches_reference(rng, kind, k):
    masks, _, test = random_runs(rng, 40, 50, 30, keep=0.5)
    outcomes = test if kind == "bool" else np.round(rng.random((40, 30)), 1)  # rounding makes ties
    idx, val = memscore.influence(masks, outcomes, top_k=k)
    want_idx, want_val = ref.influence_topk(masks, outcomes, k)
    # top_k above N (= 50) is clamped to N; the reference pads, and its columns past N
    # are all padding (-1 / NaN).
    kk = min(k, 50)
    assert idx.dtype == np.int64 and idx.shape == (30, kk) and val.dtype == np.float64
    assert (want_idx[:, kk:] == -1).all() and np.isnan(want_val[:, kk:]).all()
    want_idx, want_val = want_idx[:, :kk], want_val[:, :kk]
    assert_close(val, want_val, tol=1e-9)
    # Indices: the reference may order values that tie as fractions differently (it rounds
    # s_in/n_in - s_out/n_out in another order), so check the selection against memscore's
    # own full matrix, which the tests above compare with the reference.
    full = memscore.influence(masks, outcomes, dtype=np.float64)
    for j in range(30):
        keep = idx[j] >= 0
        np.testing.assert_array_equal(full[j, idx[j, keep]], val[j, keep])
        order = sorted(np.flatnonzero(~np.isnan(full[j])), key=lambda i: (-full[j, i], i))[:k]
        np.testing.assert_array_equal(idx[j, keep], order)
        np.testing.assert_array_equal(keep, want_idx[j] >= 0)
    if kind == "bool":
        # Bool influences are exact fractions, so equal ones are bit-identical and the
        # reference's order agrees wherever its values are not within rounding of a tie.
        gaps = np.abs(np.diff(want_val, axis=1))
        clear = np.ones_like(want_idx, dtype=bool)
        clear[:, 1:] &= ~(gaps < 1e-12) | np.isnan(gaps)
        clear[:, :-1] &= ~(gaps < 1e-12) | np.isnan(gaps)
        np.testing.assert_array_equal(idx[clear], want_idx[clear])


def test_topk_ties_go_to_lower_index():
    # Examples 0..3 are identical columns, so their influences tie exactly.
    masks = np.array([[1, 1, 1, 1, 0], [0, 0, 0, 0, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], dtype=bool)
    test = np.array([[1], [0], [1], [0]], dtype=bool)
    idx, val = memscore.influence(masks, test, top_k=3)
    np.testing.assert_array_equal(idx, [[0, 1, 2]])
    assert (val == 1.0).all()


def test_topk_pads_rows_without_enough_pairs(rng):
    masks, _, test = random_runs(rng, 30, 6, 4)
    ytr, yte = np.array([0, 0, 1, 1, 1, 2]), np.array([0, 1, 2, 3])
    idx, val = memscore.influence(masks, test, top_k=4, train_labels=ytr, test_labels=yte)
    assert (idx[0, 2:] == -1).all() and np.isnan(val[0, 2:]).all()
    assert (idx[3] == -1).all()
    assert set(idx[1, :3]) == {2, 3, 4}


# ------------------------------------------------------------------ confidence and LiRA


def test_logit_confidence_matches_reference(rng):
    logits = rng.normal(scale=5, size=(3, 40, 10)).astype(np.float32)
    labels = rng.integers(0, 10, 40)
    phi = memscore.logit_confidence(logits, labels)
    assert phi.shape == (3, 40) and phi.dtype == np.float64
    assert_close(phi, ref.logit_confidence(logits, labels), tol=1e-9)
    p = np.exp(logits.astype(np.float64))
    p /= p.sum(-1, keepdims=True)
    py = np.take_along_axis(p, np.broadcast_to(labels, (3, 40))[..., None], -1)[..., 0]
    assert_close(phi, np.log(py) - np.log1p(-py), tol=1e-5)


def test_logit_confidence_is_stable_for_confident_logits():
    phi = memscore.logit_confidence(np.array([[800.0, -800.0, 0.0]]), np.array([0]))
    assert np.isfinite(phi).all() and phi[0] == pytest.approx(800.0)


@pytest.mark.parametrize("online", [True, False])
@pytest.mark.parametrize("fixed_variance", [False, True])
@pytest.mark.parametrize("r,n", [(2, 5), (3, 7), (16, 40), (33, 25)])
def test_lira_matches_reference(rng, online, fixed_variance, r, n):
    masks = rng.random((r, n)) < 0.5
    phi = rng.normal(size=(r, n)) + 2.0 * masks
    got = memscore.lira(masks, phi, online=online, fixed_variance=fixed_variance)
    want = ref.lira(masks, phi, online=online, fixed_variance=fixed_variance)
    assert got.shape == (r, n)
    assert_close(got, want, tol=1e-7)


def test_lira_ties_and_all_in(rng):
    masks = np.ones((6, 4), dtype=bool)
    masks[:3, 1] = False
    phi = np.ones((6, 4))  # every phi equal: the sigma floor keeps scores finite
    got = memscore.lira(masks, phi)
    assert np.isnan(got[:, 0]).all()  # no run ever held example 0 out
    assert np.isfinite(got[:, 1]).all()
    assert_close(got, ref.lira(masks, phi))


def test_lira_separates_members(rng):
    masks = rng.random((64, 500)) < 0.5
    phi = rng.normal(size=(64, 500)) + 3.0 * masks
    m = memscore.membership_metrics(memscore.lira(masks, phi), masks)
    assert m.auc > 0.9
    want = ref.membership_metrics(memscore.lira(masks, phi), masks)
    assert m.auc == pytest.approx(want["auc"])
    for f in (0.001, 0.01, 0.1):
        assert m.tpr_at_fpr[f] == pytest.approx(want[f"tpr_at_fpr_{f:g}"])


def test_membership_metrics_ties_and_perfect():
    masks = np.array([[True, False, True, False]])
    assert memscore.membership_metrics(np.zeros((1, 4)), masks).auc == pytest.approx(0.5)
    perfect = memscore.membership_metrics(np.array([[2.0, 0.0, 3.0, 1.0]]), masks)
    assert perfect.auc == 1.0 and perfect.tpr_at_fpr[0.001] == 1.0


# ------------------------------------------------------------------ inputs


def test_torch_tensors_are_accepted(rng):
    torch = pytest.importorskip("torch")
    masks, train, test = random_runs(rng, 20, 15, 6)
    assert_close(
        memscore.memorization(torch.from_numpy(masks), torch.from_numpy(train)), memscore.memorization(masks, train)
    )
    assert_close(
        memscore.influence(torch.from_numpy(masks), torch.from_numpy(test).float()),
        memscore.influence(masks, test.astype(np.float32)),
    )
    logits = torch.randn(2, 15, 4)
    labels = torch.randint(0, 4, (15,))
    assert_close(memscore.logit_confidence(logits, labels), memscore.logit_confidence(logits.numpy(), labels.numpy()))


def test_non_contiguous_inputs_give_the_same_result(rng):
    masks, train, test = random_runs(rng, 40, 30, 8)
    big_m = np.repeat(masks, 2, axis=1)[:, ::2]
    big_t = np.asfortranarray(test)
    assert not big_m.flags.c_contiguous
    assert_close(memscore.influence(big_m, big_t), memscore.influence(masks, test))
    assert_close(memscore.memorization(masks.T.copy().T, train), memscore.memorization(masks, train))


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda m, o: memscore.memorization(m.astype(np.float32), o), TypeError, "bool"),
        (lambda m, o: memscore.memorization(m[0], o), ValueError, "2-D"),
        (lambda m, o: memscore.memorization(m[:0], o[:0]), ValueError, "R = 0"),
        (lambda m, o: memscore.memorization(m[:3], o), ValueError, "runs"),
        (lambda m, o: memscore.memorization(m, o[:, :2]), ValueError, "examples"),
        (lambda m, o: memscore.memorization(m, np.where(o, np.nan, 1.0)), ValueError, "NaN"),
        (lambda m, o: memscore.memorization(m, o.astype(str)), TypeError, "dtype"),
        (lambda m, o: memscore.memorization(m * 2, o), ValueError, "0 and 1"),
        (lambda m, o: memscore.influence(m, o, top_k=0), ValueError, "top_k"),
        (lambda m, o: memscore.influence(m, o, top_k=2, stderr=True), ValueError, "stderr"),
        (lambda m, o: memscore.influence(m, o, dtype=np.int32), TypeError, "dtype"),
        (lambda m, o: memscore.influence(m, o, train_labels=np.zeros(5, int)), ValueError, "together"),
        (
            lambda m, o: memscore.influence(m, o, train_labels=np.zeros(3, int), test_labels=np.zeros(5, int)),
            ValueError,
            "train_labels",
        ),
        (lambda m, o: memscore.lira(m, np.full(o.shape, np.inf)), ValueError, "NaN or infinite"),
        (lambda m, o: memscore.logit_confidence(np.zeros((4, 1)), np.zeros(4, int)), ValueError, "2 classes"),
        (lambda m, o: memscore.logit_confidence(np.zeros((4, 3)), np.full(4, 3)), ValueError, r"\[0, 3\)"),
        (lambda m, o: memscore.logit_confidence(np.zeros((4, 3)), np.zeros(5, int)), ValueError, "broadcast"),
        (lambda m, o: memscore.set_num_threads(0), ValueError, ">= 1"),
    ],
)
def test_bad_input_raises_clear_errors(call, exc, match):
    masks = np.ones((4, 5), dtype=bool)
    masks[0] = False
    outcomes = np.ones((4, 5), dtype=bool)
    with pytest.raises(exc, match=match):
        call(masks, outcomes)


def test_thread_count_is_configurable(rng):
    masks, _, test = random_runs(rng, 70, 90, 20)
    before = memscore.get_num_threads()
    try:
        memscore.set_num_threads(1)
        assert memscore.get_num_threads() == 1
        one = memscore.influence(masks, test)
        memscore.set_num_threads(3)
        assert memscore.get_num_threads() == 3
        np.testing.assert_array_equal(one, memscore.influence(masks, test))
    finally:
        memscore.set_num_threads(before)


def test_small_calls_on_the_calling_thread_equal_large_ones(rng):
    # Small calls run on a one-thread pool of the calling thread (no hand-off to memscore's
    # pool), one such pool per calling thread; large ones on memscore's pool. Same bits.
    from concurrent.futures import ThreadPoolExecutor

    masks = rng.random((300, 40)) < 0.5
    u = rng.random(300)
    want = memscore.banzhaf(masks, u)
    big = np.tile(masks, (1, 400))  # 300 x 16,000 run-pairs: above the small-call size
    np.testing.assert_array_equal(memscore.banzhaf(big, u)[:40], want)
    with ThreadPoolExecutor(8) as ex:
        got = list(ex.map(lambda _: memscore.banzhaf(masks, u), range(32)))
    for g in got:
        np.testing.assert_array_equal(g, want)


def test_env_sets_thread_count():
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", "import memscore; print(memscore.get_num_threads())"],
        env={**__import__("os").environ, "MEMSCORE_NUM_THREADS": "3"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "3"


def test_empty_example_sets_give_empty_results():
    none = np.ones((3, 0), dtype=bool)
    assert memscore.memorization(none, none).shape == (0,)
    assert memscore.influence(np.ones((3, 4), dtype=bool), none).shape == (0, 4)
    assert memscore.influence(none, np.ones((3, 2), dtype=bool)).shape == (2, 0)
    idx, val = memscore.influence(none, np.ones((3, 2), dtype=bool), top_k=2)
    assert (idx == -1).all() and np.isnan(val).all()
    assert memscore.lira(none, np.ones((3, 0))).shape == (3, 0)
    assert memscore.logit_confidence(np.zeros((0, 3)), np.zeros(0, dtype=int)).shape == (0,)


def test_larger_float_influence_matches_reference(rng):
    # Several test-row blocks and many train columns through the GEMM path.
    masks, _, _ = random_runs(rng, 90, 2100, 1)
    outcomes = rng.random((90, 150))
    assert_close(memscore.influence(masks, outcomes, dtype=np.float64), ref.influence(masks, outcomes), tol=1e-9)
    idx, val = memscore.influence(masks, outcomes, top_k=3)
    full = ref.influence(masks, outcomes)
    assert_close(val, -np.sort(-full, axis=1)[:, :3], tol=1e-9)


@pytest.mark.parametrize(
    ("r", "n", "t"), [(131, 5000, 1), (131, 5000, 3), (70, 4500, 37), (64, 2049, 16), (9, 7000, 2)]
)
def test_real_valued_influence_equals_the_reference_across_table_and_split_paths(r, n, t):
    # The lookup-table kernel: runs not a multiple of 8 or 64 (zero padding rows), value
    # columns in groups of 16, 8, 4, 2, 1, and few test rows splitting the train columns
    # across threads (N above 2,048 per part); labels and standard errors on the same path.
    rng = np.random.default_rng(r + n + t)
    masks = rng.random((r, n)) < 0.45
    y = rng.standard_normal((r, t)) * 3.0 + 100.0
    tr, te = rng.integers(0, 3, n), rng.integers(0, 3, t)
    got, se = memscore.influence(masks, y, stderr=True, dtype=np.float64)
    want, want_se = ref.influence(masks, y, stderr=True)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(se, want_se, rtol=1e-7, atol=1e-12)
    lab = memscore.influence(masks, y, train_labels=tr, test_labels=te, dtype=np.float64)
    np.testing.assert_allclose(lab, ref.influence(masks, y, train_labels=tr, test_labels=te), rtol=1e-9, atol=1e-9)
    top_i, top_v = memscore.influence(masks, y, top_k=3)
    order = np.argsort(-np.nan_to_num(want, nan=-np.inf), axis=1, kind="stable")[:, :3]
    np.testing.assert_allclose(top_v, np.take_along_axis(want, order, axis=1), rtol=1e-9, atol=1e-9)


def test_banzhaf_on_many_columns_equals_the_reference_form():
    rng = np.random.default_rng(5)
    masks = rng.random((300, 9000)) < 0.5
    u = rng.random(300)
    m = masks.astype(float)
    n_in = m.sum(0)
    want = (u @ m) / n_in - (u @ (1 - m)) / (300 - n_in)
    np.testing.assert_allclose(memscore.banzhaf(masks, u), want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("r", "n"), [(1, 1), (63, 65), (130, 4099)])
def test_bool_masks_read_as_bytes_equal_packed_masks(r, n):
    # A bool array crosses at a byte per value and is transposed into run words directly;
    # the same masks as PackedBits go through packed rows. Both paths, every outcome kind.
    rng = np.random.default_rng(r * n)
    masks = rng.random((r, n)) < 0.5
    packed = memscore.PackedBits.pack(masks)
    y = rng.standard_normal((r, 3))
    yb = rng.random((r, 3)) < 0.5
    np.testing.assert_array_equal(memscore.influence(masks, y), memscore.influence(packed, y))
    np.testing.assert_array_equal(memscore.influence(masks, yb), memscore.influence(packed, yb))
    np.testing.assert_allclose(memscore.influence(masks, y, dtype=np.float64), ref.influence(masks, y), atol=1e-9)
    u = rng.random(r)
    np.testing.assert_array_equal(memscore.banzhaf(masks, u), memscore.banzhaf(packed, u))
    # A non-contiguous view and bytes other than 1 marking True (a uint8 buffer viewed as
    # bool) read as numpy reads them.
    wide = np.zeros((r, 2 * n), dtype=np.uint8)
    wide[:, ::2] = masks * rng.integers(1, 256, (r, n))
    view = wide.view(np.bool_)[:, ::2]
    np.testing.assert_array_equal(memscore.influence(view, y), memscore.influence(packed, y))
    np.testing.assert_array_equal(memscore.banzhaf(view.copy(), u), memscore.banzhaf(packed, u))
