"""Sanity checks of the reference implementations against hand-computed examples and
against even more naive per-element Python computations.

These tests do not need the compiled core: if ``import memscore`` fails (``_core`` not
built), the reference package is loaded straight from its files.
"""

from __future__ import annotations

import importlib.util
import math
import statistics
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal


def _load_reference() -> ModuleType:
    try:
        from memscore import reference

        return reference
    except ImportError:
        pkg = Path(__file__).resolve().parents[1] / "python" / "memscore" / "reference"
        spec = importlib.util.spec_from_file_location(
            "_memscore_reference", pkg / "__init__.py", submodule_search_locations=[str(pkg)]
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module


ref = _load_reference()
NAN = math.nan

# 3 runs x 2 examples, used by several hand computations.
MASKS_3x2 = np.array([[1, 0], [0, 1], [1, 1]], dtype=bool)
OUT_3x2 = np.array([[0.9, 0.2], [0.4, 0.8], [0.7, 0.6]])


# --------------------------------------------------------------------------- memorization


def test_memorization_by_hand() -> None:
    # ex 0: in runs {0, 2} -> 0.8, out run {1} -> 0.4; ex 1: in {1, 2} -> 0.7, out {0} -> 0.2
    mem, se = ref.memorization(MASKS_3x2, OUT_3x2, stderr=True)
    assert_allclose(mem, [0.4, 0.5])
    assert np.isnan(se).all()  # one run on the out side
    assert mem.dtype == np.float64


def test_memorization_bool_outcomes_and_nan() -> None:
    masks = np.array([[1, 1], [0, 1], [1, 1]], dtype=bool)
    correct = np.array([[1, 0], [0, 1], [1, 1]], dtype=bool)
    mem = ref.memorization(masks, correct)
    assert_allclose(mem[0], 1.0)
    assert np.isnan(mem[1])  # never held out


def test_memorization_stderr_by_hand() -> None:
    masks = np.array([[1], [1], [0], [0]], dtype=bool)
    outcomes = np.array([[1.0], [0.0], [0.5], [0.25]])
    mem, se = ref.memorization(masks, outcomes, stderr=True)
    # in: mean 0.5, var 0.5; out: mean 0.375, var 0.03125 (ddof=1)
    assert_allclose(mem, [0.125])
    assert_allclose(se, [math.sqrt(0.5 / 2 + 0.03125 / 2)])


def test_memorization_stderr_matches_statistics() -> None:
    rng = np.random.default_rng(0)
    masks = rng.random((12, 7)) < 0.5
    outcomes = rng.random((12, 7))
    _, se = ref.memorization(masks, outcomes, stderr=True)
    for i in range(7):
        a = outcomes[masks[:, i], i].tolist()
        b = outcomes[~masks[:, i], i].tolist()
        if len(a) < 2 or len(b) < 2:
            assert np.isnan(se[i])
        else:
            want = math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b))
            assert_allclose(se[i], want, rtol=1e-12)


# --------------------------------------------------------------------------- influence


def test_influence_by_hand() -> None:
    o = np.array([[1.0], [0.0], [1.0]])
    infl = ref.influence(MASKS_3x2, o)
    # i=0: in {0, 2} -> 1, out {1} -> 0;  i=1: in {1, 2} -> 0.5, out {0} -> 1
    assert_allclose(infl, [[1.0, -0.5]])
    assert infl.shape == (1, 2) and infl.dtype == np.float64

    labelled = ref.influence(MASKS_3x2, o, train_labels=np.array([0, 1]), test_labels=np.array([0]))
    assert_allclose(labelled, [[1.0, NAN]])


def test_influence_diagonal_is_memorization() -> None:
    rng = np.random.default_rng(1)
    masks = rng.random((10, 6)) < 0.5
    masks[:, 0] = True  # never held out -> NaN
    outcomes = rng.random((10, 6))
    infl, se = ref.influence(masks, outcomes, stderr=True)
    mem, mem_se = ref.memorization(masks, outcomes, stderr=True)
    assert_allclose(np.diag(infl), mem, rtol=1e-12)
    assert_allclose(np.diag(se), mem_se, rtol=1e-9)
    assert np.isnan(infl[:, 0]).all() and np.isnan(se[:, 0]).all()


def test_influence_float32() -> None:
    rng = np.random.default_rng(2)
    masks = rng.random((20, 8)) < 0.5
    o = rng.random((20, 5)) < 0.7
    f64 = ref.influence(masks, o)
    f32 = ref.influence(masks, o, dtype=np.float32)
    assert f32.dtype == np.float32
    assert_allclose(f32, f64, rtol=1e-5, atol=1e-6)


def test_influence_labels_mask_stderr_too() -> None:
    rng = np.random.default_rng(3)
    masks = rng.random((9, 4)) < 0.5
    o = rng.random((9, 3))
    tr, te = np.array([0, 1, 0, 1]), np.array([1, 1, 0])
    infl, se = ref.influence(masks, o, train_labels=tr, test_labels=te, stderr=True)
    mismatch = te[:, None] != tr[None, :]
    assert np.isnan(infl[mismatch]).all() and np.isnan(se[mismatch]).all()
    with pytest.raises(ValueError):
        ref.influence(masks, o, train_labels=tr)


# --------------------------------------------------------------------------- top-k


def test_topk_ties_nan_and_padding() -> None:
    masks = np.array([[1, 1, 1, 0], [1, 1, 1, 0], [0, 1, 0, 1], [0, 1, 0, 1]], dtype=bool)
    o = np.array([[1.0], [1.0], [0.0], [0.0]])
    # influence row: [1, NaN (never out), 1, -1]
    idx, val = ref.influence_topk(masks, o, 2)
    assert_array_equal(idx, [[0, 2]])
    assert_allclose(val, [[1.0, 1.0]])
    idx, val = ref.influence_topk(masks, o, 6)
    assert_array_equal(idx, [[0, 2, 3, -1, -1, -1]])
    assert_allclose(val, [[1.0, 1.0, -1.0, NAN, NAN, NAN]])
    assert idx.dtype == np.int64 and val.dtype == np.float64


def test_topk_matches_python_sort() -> None:
    rng = np.random.default_rng(4)
    masks = rng.random((6, 15)) < 0.5
    o = rng.random((6, 4)) < 0.5  # bool outcomes: many exact ties
    tr, te = rng.integers(0, 2, 15), rng.integers(0, 2, 4)
    k = 5
    idx, val = ref.influence_topk(masks, o, k, train_labels=tr, test_labels=te)
    full = ref.influence(masks, o, train_labels=tr, test_labels=te)
    for j in range(4):
        items = sorted((-v, i) for i, v in enumerate(full[j].tolist()) if not math.isnan(v))[:k]
        want_idx = [i for _, i in items] + [-1] * (k - len(items))
        want_val = [-v for v, _ in items] + [NAN] * (k - len(items))
        assert_array_equal(idx[j], want_idx)
        assert_allclose(val[j], want_val)


# --------------------------------------------------------------------------- hold-out


def test_holdout_by_hand() -> None:
    masks = np.array([[1, 0, 1], [0, 1, 1], [0, 1, 1], [0, 1, 1]], dtype=bool)
    o = np.array([[0.0, 0.2, 1.0], [1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 0.0, 1.0]])
    assert_allclose(ref.holdout_accuracy(masks, o), [2 / 3, 0.2, NAN])
    ratios = np.array([0.5, 0.5, 0.25, 0.25])
    # ex 0: group 0.5 -> run 1 -> 1.0; group 0.25 -> runs 2, 3 -> 0.5; average 0.75
    # ex 1: group 0.5 -> run 0 -> 0.2; group 0.25 never holds it out -> 0.2
    assert_allclose(ref.holdout_accuracy(masks, o, ratios=ratios), [0.75, 0.2, NAN])


def test_holdout_single_ratio_equals_plain() -> None:
    rng = np.random.default_rng(5)
    masks = rng.random((8, 10)) < 0.6
    o = rng.random((8, 10))
    assert_allclose(ref.holdout_accuracy(masks, o, ratios=np.full(8, 0.6)), ref.holdout_accuracy(masks, o))


# --------------------------------------------------------------------------- logit confidence


def test_logit_confidence_matches_softmax() -> None:
    rng = np.random.default_rng(6)
    logits = rng.normal(size=(5, 3, 4)) * 3
    labels = np.array([0, 3, 1])
    phi = ref.logit_confidence(logits, labels)
    e = np.exp(logits - logits.max(-1, keepdims=True))
    p = e / e.sum(-1, keepdims=True)
    p_y = np.take_along_axis(p, np.broadcast_to(labels, (5, 3))[..., None], -1)[..., 0]
    assert phi.shape == (5, 3) and phi.dtype == np.float64
    assert_allclose(phi, np.log(p_y / (1 - p_y)), rtol=1e-10)


def test_logit_confidence_stable_and_infinite() -> None:
    z = np.array([[1000.0, 0.0, 0.0], [0.0, -np.inf, -np.inf]])
    assert_allclose(ref.logit_confidence(z, np.array([0, 0])), [1000.0 - math.log(2), np.inf])
    assert_allclose(ref.logit_confidence(z[:1], np.array([1])), [-1000.0])
    assert ref.logit_confidence(np.array([[3.0]]), np.array([0]))[0] == np.inf  # one class
    with pytest.raises(ValueError):
        ref.logit_confidence(z, np.array([0, 3]))


# --------------------------------------------------------------------------- LiRA


def _lira_naive(masks: np.ndarray, phi: np.ndarray, online: bool, fixed_variance: bool) -> np.ndarray:
    """Per-(r, i) loops with the statistics module."""
    from scipy.special import log_ndtr

    runs, n = masks.shape
    out = np.full((runs, n), NAN)
    for r in range(runs):
        ins = [[float(phi[s, i]) for s in range(runs) if s != r and masks[s, i]] for i in range(n)]
        outs = [[float(phi[s, i]) for s in range(runs) if s != r and not masks[s, i]] for i in range(n)]

        def pooled(groups: list[list[float]]) -> float:
            total = sum(len(g) for g in groups)
            if total == 0:
                return NAN
            ss = sum(sum((v - statistics.fmean(g)) ** 2 for v in g) for g in groups if g)
            return math.sqrt(ss / total)

        pooled_in, pooled_out = pooled(ins), pooled(outs)
        for i in range(n):
            x = float(phi[r, i])
            a, b = ins[i], outs[i]
            if not b or (online and not a):
                continue
            s_out = pooled_out if fixed_variance else statistics.pstdev(b)
            s_out = max(s_out, ref.SIGMA_FLOOR)
            mu_out = statistics.median(b)
            if not online:
                out[r, i] = float(log_ndtr((x - mu_out) / s_out))
                continue
            s_in = max(pooled_in if fixed_variance else statistics.pstdev(a), ref.SIGMA_FLOOR)
            mu_in = statistics.median(a)

            def log_pdf(v: float, mu: float, sd: float) -> float:
                return -math.log(sd) - 0.5 * math.log(2 * math.pi) - 0.5 * ((v - mu) / sd) ** 2

            out[r, i] = log_pdf(x, mu_in, s_in) - log_pdf(x, mu_out, s_out)
    return out


@pytest.mark.parametrize("online,fixed_variance", [(True, False), (False, False), (True, True), (False, True)])
def test_lira_matches_naive(online: bool, fixed_variance: bool) -> None:
    rng = np.random.default_rng(7)
    masks = np.array(
        [
            [1, 1, 0, 1],
            [0, 1, 1, 1],
            [1, 0, 0, 1],
            [0, 1, 1, 1],
            [1, 0, 1, 1],  # column 3: always in -> OUT empty everywhere
        ],
        dtype=bool,
    )
    phi = rng.normal(size=(5, 4)) * 2
    got = ref.lira(masks, phi, online=online, fixed_variance=fixed_variance)
    want = _lira_naive(masks, phi, online, fixed_variance)
    assert got.shape == (5, 4) and got.dtype == np.float64
    assert_array_equal(np.isnan(got), np.isnan(want))
    assert_allclose(got, want, rtol=1e-9)
    assert np.isnan(got[:, 3]).all()
    assert np.isfinite(got[:, :3]).any()


def test_lira_random_larger() -> None:
    rng = np.random.default_rng(8)
    masks = rng.random((9, 6)) < 0.5
    phi = rng.normal(size=(9, 6))
    for online in (True, False):
        for fixed in (True, False):
            assert_allclose(
                ref.lira(masks, phi, online=online, fixed_variance=fixed),
                _lira_naive(masks, phi, online, fixed),
                rtol=1e-9,
            )


def test_lira_single_run_is_nan() -> None:
    assert np.isnan(ref.lira(np.ones((1, 3), bool), np.zeros((1, 3)))).all()


# --------------------------------------------------------------------------- membership metrics


def _metrics_naive(scores: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    s, m = scores.ravel().tolist(), masks.ravel().tolist()
    pairs = [(v, b) for v, b in zip(s, m, strict=True) if not math.isnan(v)]
    pos = [v for v, b in pairs if b]
    neg = [v for v, b in pairs if not b]
    wins = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p in pos for q in neg)
    auc = wins / (len(pos) * len(neg))
    points = [(0.0, 0.0)] + [
        (sum(q >= t for q in neg) / len(neg), sum(p >= t for p in pos) / len(pos)) for t in set(v for v, _ in pairs)
    ]
    res = {"auc": auc}
    for f in (0.001, 0.01, 0.1):
        res[f"tpr_at_fpr_{f:g}"] = max(tpr for fpr, tpr in points if fpr <= f)
    return res


def test_metrics_perfect_and_tied() -> None:
    masks = np.array([[1, 1, 0, 0]], dtype=bool)
    perfect = ref.membership_metrics(np.array([[3.0, 4.0, 1.0, 2.0]]), masks)
    assert set(perfect) == {"auc", "tpr_at_fpr_0.001", "tpr_at_fpr_0.01", "tpr_at_fpr_0.1"}
    assert perfect == {"auc": 1.0, "tpr_at_fpr_0.001": 1.0, "tpr_at_fpr_0.01": 1.0, "tpr_at_fpr_0.1": 1.0}
    tied = ref.membership_metrics(np.zeros((1, 4)), masks)
    assert tied == {"auc": 0.5, "tpr_at_fpr_0.001": 0.0, "tpr_at_fpr_0.01": 0.0, "tpr_at_fpr_0.1": 0.0}


def test_metrics_by_hand_and_nan() -> None:
    got = ref.membership_metrics(np.array([0.9, 0.8, 0.7, 0.6, NAN]), np.array([1, 0, 1, 0, 1], bool))
    assert got["auc"] == 0.75
    assert got["tpr_at_fpr_0.1"] == 0.5
    empty = ref.membership_metrics(np.array([1.0, 2.0]), np.array([True, True]))
    assert all(math.isnan(v) for v in empty.values())


def test_metrics_match_naive() -> None:
    rng = np.random.default_rng(9)
    masks = rng.random((20, 30)) < 0.5
    scores = np.round(rng.normal(size=(20, 30)) + masks, 1)  # rounding -> ties
    scores[0, :5] = NAN
    got = ref.membership_metrics(scores, masks)
    want = _metrics_naive(scores, masks)
    assert got.keys() == want.keys()
    for key in got:
        assert_allclose(got[key], want[key], rtol=1e-12)


# --------------------------------------------------------------------------- pure Python


def test_pure_matches_numpy() -> None:
    rng = np.random.default_rng(10)
    masks = rng.random((7, 9)) < 0.5
    masks[:, 0] = False  # never in -> NaN
    o_train = rng.random((7, 9))
    o_test = rng.random((7, 4)) < 0.5
    assert_allclose(ref.memorization_pure(masks, o_train), ref.memorization(masks, o_train), rtol=1e-12)
    assert_allclose(ref.memorization_pure(masks.tolist(), o_train.tolist()), ref.memorization(masks, o_train))
    pure = ref.influence_pure(masks, o_test)
    assert len(pure) == 4 and all(len(row) == 9 for row in pure)
    assert_allclose(np.array(pure), ref.influence(masks, o_test), rtol=1e-12)


@settings(max_examples=50, deadline=None)
@given(
    st.integers(1, 6).flatmap(
        lambda r: st.tuples(
            st.lists(st.lists(st.booleans(), min_size=3, max_size=3), min_size=r, max_size=r),
            st.lists(
                st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=3, max_size=3),
                min_size=r,
                max_size=r,
            ),
        )
    )
)
def test_pure_matches_numpy_property(data: tuple[list[list[bool]], list[list[float]]]) -> None:
    masks, outcomes = data
    assert_allclose(
        ref.memorization_pure(masks, outcomes),
        ref.memorization(np.array(masks), np.array(outcomes)),
        rtol=1e-9,
        atol=1e-9,
    )
