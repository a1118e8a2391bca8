"""One rule for arguments: wrong type -> TypeError, wrong value -> ValueError, and the
message names the argument, what was expected and what came."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import memscore

# ----------------------------------------------------------------------------- scores


def _runs():
    masks = np.array([[1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 0, 1]], dtype=bool)
    return masks, masks.astype(np.float64)


def test_outcomes_whose_sums_overflow_are_refused():
    masks, _ = _runs()
    huge = np.full(masks.shape, 1e308)
    huge[1] = -1e308
    with pytest.raises(ValueError, match="outcomes: .*overflow"):
        memscore.memorization(masks, huge)
    with pytest.raises(ValueError, match="outcomes: .*overflow"):
        memscore.holdout_accuracy(masks, huge)
    with pytest.raises(ValueError, match="outcomes: .*overflow"):
        memscore.influence(masks, huge)
    with pytest.raises(ValueError, match="outcomes: .*overflow"):
        memscore.influence(masks, huge, top_k=1)
    with pytest.raises(ValueError, match="outcomes: .*overflow"):
        memscore.OutcomeStats.from_runs(masks, huge)
    # squares overflow long before sums: stderr needs them, the plain score does not
    big = np.where(masks, 1e160, -1e160)
    assert np.isfinite(memscore.memorization(masks, big)).all()
    with pytest.raises(ValueError, match="squared"):
        memscore.memorization(masks, big, stderr=True)
    with pytest.raises(ValueError, match="phi: .*overflow"):
        memscore.lira(masks, big)


def test_large_but_safe_outcomes_still_work():
    masks, o = _runs()
    mem = memscore.memorization(masks, o * 1e100)
    np.testing.assert_allclose(mem, memscore.memorization(masks, o) * 1e100)


def test_lira_refuses_bool_phi():
    masks, _ = _runs()
    with pytest.raises(TypeError, match="phi: expected float confidences"):
        memscore.lira(masks, masks)


@pytest.mark.parametrize(
    "scores",
    [np.array(["0.9", "0.1", "0.5"]), np.array([0.9 + 1j, 0.1, 0.5]), np.array([0.9, 0.1, None], dtype=object)],
)
def test_membership_metrics_refuses_non_real_scores(scores):
    with pytest.raises(TypeError, match="scores: expected an array of real numbers"):
        memscore.membership_metrics(scores, np.array([True, False, True]))


def test_membership_metrics_levels_are_checked():
    with pytest.raises(ValueError, match="fpr_levels"):
        memscore.membership_metrics(np.array([0.9, 0.1]), np.array([True, False]), fpr_levels=(1.5,))


def test_flags_must_be_bools():
    masks, o = _runs()
    with pytest.raises(TypeError, match="stderr: expected True or False"):
        memscore.memorization(masks, o, stderr="yes")
    with pytest.raises(TypeError, match="top_k: expected an integer, got True"):
        memscore.influence(masks, o, top_k=True)
    with pytest.raises(TypeError, match="online"):
        memscore.lira(masks, o, online=None)


def test_set_num_threads_wrong_type_is_type_error():
    with pytest.raises(TypeError, match="expected an integer"):
        memscore.set_num_threads("4")


# ----------------------------------------------------------------------------- disagreement


def test_disagreement_refuses_out_of_range_labels():
    preds = np.array([[0, 1, 2], [0, 2, 2]])
    with pytest.raises(ValueError, match=r"labels: expected non-negative classes, got range -1..2"):
        memscore.disagreement(preds, np.array([0, -1, 2]))
    with pytest.raises(ValueError, match=r"labels: expected classes in 0..2, got range 0..3"):
        memscore.disagreement(preds, np.array([0, 3, 2]), n_classes=3)
    logits = np.zeros((2, 3, 3))
    with pytest.raises(ValueError, match=r"labels: expected classes in 0..2"):
        memscore.disagreement(logits, np.array([0, 1, 5]))
    with pytest.raises(TypeError, match="labels: expected integer class labels"):
        memscore.disagreement(preds, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(TypeError, match="test_predictions: expected .* float scores"):
        memscore.disagreement(np.zeros((2, 3, 3), dtype=np.int64))
    with pytest.raises(TypeError, match="n_bins"):
        memscore.disagreement(preds, np.array([0, 1, 2]), n_bins=2.5)


# ----------------------------------------------------------------------------- ResMem


def _toy(rng, n=30, c=3, d=4):
    e = rng.normal(size=(n, d)).astype(np.float32)
    y = rng.integers(0, c, n)
    z = rng.normal(size=(n, c))
    return e, y, z


def test_unfitted_resmem_raises_not_fitted_error(rng):
    e, _, z = _toy(rng)
    with pytest.raises(memscore.NotFittedError, match="not fitted"):
        memscore.ResMem().predict(e, z)
    assert issubclass(memscore.NotFittedError, ValueError)
    assert issubclass(memscore.NotFittedError, AttributeError)
    assert issubclass(memscore.NotFittedError, memscore.MemscoreError)
    assert memscore.NotFittedError is memscore.errors.NotFittedError
    sk = pytest.importorskip("sklearn.exceptions")
    assert issubclass(memscore.NotFittedError, sk.NotFittedError)


def test_tune_resmem_refuses_out_of_range_validation_labels(rng):
    e, y, z = _toy(rng)
    ve, vy, vz = _toy(rng, n=10)
    vy[0] = 3  # 3 classes: 0..2
    with pytest.raises(ValueError, match=r"val_labels: expected classes in 0..2, got range"):
        memscore.tune_resmem(e, y, z, ve, vy, vz, ks=(0, 1))
    vy[0] = -1
    with pytest.raises(ValueError, match="val_labels"):
        memscore.tune_resmem(e, y, z, ve, vy, vz, ks=(0, 1))
    with pytest.raises(TypeError, match="ks"):
        memscore.tune_resmem(e, y, z, ve, np.abs(vy), vz, ks=(0, 1.5))


@pytest.mark.parametrize(
    "params, exc, match",
    [
        (dict(normalize="yes"), TypeError, "normalize: expected True or False"),
        (dict(metric=2), TypeError, "metric"),
        (dict(sigma="1"), TypeError, "sigma: expected a number"),
        (dict(threads=0), ValueError, "threads: expected an integer >= 1"),
        (dict(faiss_params=[1]), TypeError, "faiss_params"),
    ],
)
def test_resmem_params_follow_the_rule(rng, params, exc, match):
    e, y, z = _toy(rng)
    with pytest.raises(exc, match=match):
        memscore.ResMem(**params).fit(e, y, z)


# ----------------------------------------------------------------------------- pickling


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
def test_knn_index_pickles(rng, metric, dtype):
    keys = rng.normal(size=(40, 6)).astype(dtype)
    q = rng.normal(size=(7, 6)).astype(np.float32)
    index = memscore.KnnIndex(keys, metric)
    back = pickle.loads(pickle.dumps(index))
    assert repr(back) == repr(index)
    for a, b in zip(index.search(q, 5), back.search(q, 5), strict=True):
        np.testing.assert_array_equal(a, b)
    keys[:] = 0  # the caller's array changing later does not change either index
    for a, b in zip(index.search(q, 5), back.search(q, 5), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", ["exact", "faiss"])
def test_fitted_resmem_pickles(rng, backend):
    if backend == "faiss":
        pytest.importorskip("faiss")
    e, y, z = _toy(rng, n=60)
    qe, _, qz = _toy(rng, n=9)
    params = dict(k=4, backend=backend) | ({"faiss_params": {"efSearch": 32}} if backend == "faiss" else {})
    model = memscore.ResMem(**params).fit(e, y, z)
    back = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(model.predict_proba(qe, qz), back.predict_proba(qe, qz))
    np.testing.assert_array_equal(model.kneighbors(qe)[1], back.kneighbors(qe)[1])
    assert back.get_params() == model.get_params()
    unfitted = pickle.loads(pickle.dumps(memscore.ResMem(k=2)))
    with pytest.raises(memscore.NotFittedError):
        unfitted.predict(qe, qz)


def test_not_fitted_error_pickles():
    err = pickle.loads(pickle.dumps(memscore.NotFittedError("x")))
    assert isinstance(err, memscore.NotFittedError) and str(err) == "x"


# ----------------------------------------------------------------------------- more arguments


def test_knn_metric_of_the_wrong_type_is_a_type_error():
    keys = np.eye(3, dtype=np.float32)
    with pytest.raises(TypeError, match="metric: expected one of"):
        memscore.KnnIndex(keys, metric=2)
    with pytest.raises(ValueError, match="metric: expected one of"):
        memscore.knn(keys, keys, 1, metric="l1")


def test_train_arguments_follow_the_rule():
    pytest.importorskip("torch")
    from memscore.train import SubsetPlan, TrainConfig, mlp

    with pytest.raises(TypeError, match="n_runs: expected an integer, got '4'"):
        SubsetPlan(10, "4")
    with pytest.raises(ValueError, match="n_runs: expected an integer >= 1, got 0"):
        SubsetPlan(10, 0)
    with pytest.raises(TypeError, match="keep: expected a number"):
        SubsetPlan(10, 4, keep="half")
    with pytest.raises(TypeError, match="width: expected an integer, got 8.0"):
        mlp(4, 3, width=8.0)
    with pytest.raises(ValueError, match="width: expected an integer >= 1, got 0"):
        mlp(4, 3, width=0)
    with pytest.raises(TypeError, match="activation"):
        mlp(4, 3, activation=None)
    with pytest.raises(TypeError, match="epochs: expected an integer"):
        TrainConfig(epochs="2", batch_size=4, lr=0.1)
    with pytest.raises(TypeError, match="lr: expected a number"):
        TrainConfig(epochs=2, batch_size=4, lr="0.1")
    with pytest.raises(ValueError, match="lr: expected a number > 0"):
        TrainConfig(epochs=2, batch_size=4, lr=0.0)
    with pytest.raises(TypeError, match="grand"):
        TrainConfig(epochs=2, batch_size=4, lr=0.1, grand="yes")
    assert not hasattr(TrainConfig(epochs=1, batch_size=1, lr=0.1), "extra")


def test_dataset_arguments_follow_the_rule():
    import memscore.datasets

    with pytest.raises(TypeError, match="p: expected an integer, got 7.0"):
        memscore.datasets.modular_arithmetic(p=7.0)
    with pytest.raises(TypeError, match="op: expected one of"):
        memscore.datasets.modular_arithmetic(op=1)
    with pytest.raises(ValueError, match="dataset: expected one of"):
        memscore.datasets.load_dataset("mnist")
    d = memscore.datasets.load_dataset("modular", p=5, seed=1)
    assert d.n_classes == 5


def test_taskgram_config_is_checked_when_made():
    from memscore.taskgram import PipelineConfig

    with pytest.raises(ValueError, match="threads: expected an integer >= 1, got 0"):
        PipelineConfig(threads=0)
    with pytest.raises(ValueError, match="sizes"):
        PipelineConfig(sizes=("huge",))
    with pytest.raises(TypeError, match="sources"):
        PipelineConfig(sources="kjv")
    with pytest.raises(TypeError, match="alpha"):
        memscore.taskgram.taskgram_logprob({"doc_freq": [1], "cooccurrence": [0]}, alpha="1")


def test_report_arguments_are_checked_before_writing(tmp_path):
    from memscore.runs.report import score_store, write_report

    store = memscore.RunStore.create(tmp_path / "s", n_train=3)
    with pytest.raises(ValueError, match="top_k: expected an integer >= 1, got 0"):
        score_store(store, top_k=0, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(TypeError, match="top_pairs"):
        write_report(tmp_path / "s", tmp_path / "rep", top_pairs=2.5)
    assert not (tmp_path / "rep").exists()
