"""Errors of the scoring functions name the argument the user passed, and values that do
not fit the type memscore computes in are refused (issue 26, items 3 and 5).

Each case checks the error type and that the message starts with the user's argument name
(the message style of ``memscore._validate``: ``"<arg>: expected ..., got ..."``).
"""

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import memscore
from memscore import RunStore

RNG = np.random.default_rng(0)
MASKS = RNG.random((40, 6)) < 0.5
X = RNG.random((6, 3)).astype(np.float32)
Q = RNG.random((2, 3)).astype(np.float32)


def raises_named(exc: type[Exception], name: str, fn, *args, **kwargs) -> str:
    with pytest.raises(exc) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert msg.startswith(f"{name}:"), msg
    return msg


# ----------------------------------------------------------------------------- knn_shapley


@pytest.mark.parametrize(
    "train, exc",
    [
        (np.zeros((6, 3), dtype=np.int64), TypeError),  # not floats
        (np.zeros(6, dtype=np.float32), ValueError),  # not 2-D
        (np.full((6, 3), np.nan, dtype=np.float32), ValueError),  # NaN
    ],
)
def test_knn_shapley_names_train(train, exc):
    raises_named(exc, "train", memscore.knn_shapley, train, [0] * 6, Q, [0, 1])


@given(k=st.integers(min_value=2**63, max_value=2**200))
@settings(max_examples=20, deadline=None)
def test_knn_shapley_huge_k_is_a_named_value_error(k):
    raises_named(ValueError, "k", memscore.knn_shapley, X, [0] * 6, Q, [0, 1], k=k)


def test_knn_shapley_largest_k_works():
    v = memscore.knn_shapley(X, [0, 1, 0, 1, 0, 1], Q, [0, 1], k=2**63 - 1)
    assert np.isfinite(v).all()


def test_knn_index_still_says_keys():
    raises_named(TypeError, "keys", memscore.KnnIndex, np.zeros((3, 2), dtype=np.int64))


# ----------------------------------------------------------------------------- data_oob


def test_data_oob_names_multiplicities_on_run_mismatch():
    w = RNG.integers(0, 3, size=(5, 4))
    msg = raises_named(ValueError, "outcomes", memscore.data_oob, w, np.ones((4, 4), dtype=bool))
    assert "multiplicities" in msg and "masks" not in msg


def test_data_oob_names_multiplicities_on_example_mismatch():
    w = RNG.integers(0, 3, size=(5, 4))
    msg = raises_named(ValueError, "outcomes", memscore.data_oob, w, np.ones((5, 3), dtype=bool))
    assert "multiplicities" in msg and "masks" not in msg


def test_data_oob_names_multiplicities_without_runs():
    msg = raises_named(ValueError, "multiplicities", memscore.data_oob, np.zeros((0, 4), dtype=int), np.ones((0, 4)))
    assert "masks" not in msg


# ----------------------------------------------------------------------------- datamodels


@given(frac=st.one_of(st.floats(max_value=0.0), st.floats(min_value=1.0), st.just(float("nan"))))
@settings(max_examples=25, deadline=None)
def test_datamodels_names_val_fraction(frac):
    raises_named(ValueError, "val_fraction", memscore.datamodels, MASKS, MASKS[:, :2] * 1.0, val_fraction=frac)


def test_store_datamodels_names_val_fraction(tmp_path):
    store = RunStore.create(tmp_path / "s", n_train=6, n_test=1)
    for m in MASKS[:10]:
        store.add_run(m, test_phi=[float(m[1])])
    raises_named(ValueError, "val_fraction", store.datamodels, val_fraction=2.0)


def test_cli_names_val_fraction(tmp_path, run_cli):
    store = RunStore.create(tmp_path / "s", n_train=6, n_test=1)
    for m in MASKS[:10]:
        store.add_run(m, test_phi=[float(m[1])])
    code, _, err = run_cli(["datamodels", str(tmp_path / "s"), "--val-fraction", "2"])
    assert code == 1
    assert "--val-fraction:" in err and "fraction: expected" not in err.replace("--val-fraction:", "")
    assert not (tmp_path / "s" / "datamodels.npz").exists()


@given(scale=st.floats(min_value=1e37, max_value=1e300))
@settings(max_examples=20, deadline=None)
def test_datamodels_refuses_outcomes_beyond_float32(scale):
    y = (2.0 * MASKS[:, [3]] + 1.0) * scale  # finite in float64
    msg = raises_named(ValueError, "outcomes", memscore.datamodels, MASKS, y)
    assert "float32" in msg


def test_datamodels_refuses_val_outcomes_beyond_float32():
    y = 2.0 * MASKS[:, [3]] + 1.0
    msg = raises_named(
        ValueError, "val_outcomes", memscore.datamodels, MASKS, y, val_masks=MASKS, val_outcomes=y * 1e40
    )
    assert "float32" in msg


@pytest.mark.parametrize("executor", ["local", "threads:2"])
def test_store_datamodels_refuses_stored_outcomes_beyond_float32(tmp_path, executor):
    """The tasks that read the store themselves check what they read like datamodels()."""
    store = memscore.RunStore.create(tmp_path / "s", n_train=MASKS.shape[1], n_test=1)
    for m in MASKS:
        store.add_run(m, test_phi=[3e37 * float(m[0])])
    msg = raises_named(ValueError, "stored test_phi", store.datamodels, lam=0.01, executor=executor)
    assert "float32" in msg and f"{len(MASKS)} runs" in msg


def test_datamodels_large_outcomes_in_float32_range_still_fit():
    y = (2.0 * MASKS[:, [3]] + 1.0) * 1e30
    dm = memscore.datamodels(MASKS, y)
    assert np.isfinite(dm.lam_max).all() and abs(dm.weights[0, 3] / 1e30 - 2.0) < 0.1


@pytest.mark.parametrize(
    "kw, name",
    [
        ({"n_lambdas": 1001}, "n_lambdas"),
        ({"n_lambdas": 2**40}, "n_lambdas"),
        ({"max_iter": 10**6 + 1}, "max_iter"),
        ({"max_iter": 2**70}, "max_iter"),
    ],
)
def test_datamodels_bounds_solver_settings(kw, name):
    msg = raises_named(ValueError, name, memscore.datamodels, MASKS, MASKS[:, :1] * 1.0, **kw)
    assert re.search(r"1\.\.1000\b|1\.\.1000000\b", msg), msg


def test_datamodels_upper_bounds_are_accepted():
    dm = memscore.datamodels(MASKS, MASKS[:, :1] * 1.0, lam=0.01, n_lambdas=1000, max_iter=10**6)
    assert np.isfinite(dm.weights).all()


# ----------------------------------------------------------------------------- lds


@given(
    sign=st.sampled_from([1.0, -1.0]),
    pos=st.tuples(st.integers(0, 1), st.integers(0, 5)),
)
@settings(max_examples=20, deadline=None)
def test_lds_refuses_infinite_attributions(sign, pos):
    att = RNG.normal(size=(2, 6))
    att[pos] = sign * np.inf
    raises_named(ValueError, "attributions", memscore.lds, att, MASKS, MASKS[:, :2] * 1.0)


def test_lds_refuses_attributions_whose_sums_overflow():
    att = np.full((2, 6), 1e308)
    raises_named(ValueError, "attributions", memscore.lds, att, MASKS, MASKS[:, :2] * 1.0)


def test_lds_still_counts_nan_attributions_as_zero():
    att = RNG.normal(size=(2, 6))
    att[0, 0] = np.nan
    assert np.isfinite(memscore.lds(att, MASKS, MASKS[:, :2] * 1.0, n_boot=0).mean)


# ----------------------------------------------------------------------------- label_issues


@pytest.fixture
def store(tmp_path):
    y, yt = np.array([0, 1] * 3), np.array([0, 1])
    s = RunStore.create(tmp_path / "li", n_train=6, n_test=2, train_labels=y, test_labels=yt, n_classes=2)
    for m in MASKS[:8]:
        s.add_run(m, train_correct=np.ones(6, dtype=bool))
    return s


@pytest.mark.parametrize("method", [None, 3, 1.5, {"memorization": 1}])
def test_label_issues_method_of_wrong_type(store, method):
    raises_named(TypeError, "method", memscore.label_issues, store, method=method)


def test_label_issues_wrong_length_features_name_knn_features(store):
    for feats in [(X[:5], Q), (X, Q[:1]), (X[0], Q)]:
        msg = raises_named(ValueError, "knn_features", memscore.label_issues, store, "knn_shapley", knn_features=feats)
        assert "train_labels" not in msg and "test_labels" not in msg


def test_label_issues_features_not_a_pair(store):
    raises_named(TypeError, "knn_features", memscore.label_issues, store, "knn_shapley", knn_features=X)


def test_label_issues_right_features_work(store):
    table = memscore.label_issues(store, "knn_shapley", knn_features=(X, Q))
    assert table.height == 6


@pytest.mark.parametrize("which", ["membership_metrics", "lds"])
def test_huge_n_boot_is_refused_before_allocating(which):
    """n_boot = 10**12 replicates would ask numpy for terabytes: a ValueError naming it."""
    rng = np.random.default_rng(0)
    masks = rng.random((12, 6)) < 0.5
    with pytest.raises(ValueError, match=r"^n_boot:"):
        if which == "membership_metrics":
            memscore.membership_metrics(rng.normal(size=(12, 6)), masks, ci=0.95, n_boot=10**12)
        else:
            memscore.lds(rng.normal(size=(3, 6)), masks, rng.normal(size=(12, 3)), n_boot=10**12)
