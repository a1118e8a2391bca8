"""Hold-out predicted probabilities and label-issue rankings from a store."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

import memscore
from memscore import RunStore, StoreError

N, T, C, R = 40, 200, 3, 64
FLIPPED = np.arange(4)  # examples whose stored label is wrong


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def noisy_store(path: Path, *, snapshots: bool = True, keep_logits: bool = True):
    """Runs that fit every label they train on and predict the true class on the rest."""
    rng = np.random.default_rng(3)
    truth = rng.integers(0, C, N)
    y = truth.copy()
    y[FLIPPED] = (truth[FLIPPED] + 1) % C
    yt = rng.integers(0, C, T)
    store = RunStore.create(path, n_train=N, n_test=T, train_labels=y, test_labels=yt, n_classes=C)
    masks, logits = [], []
    for _ in range(R):
        m = rng.random(N) < 0.5
        m[N - 1] = True  # in every run: no hold-out probability
        target = np.where(m, y, truth)
        z = rng.normal(0, 0.5, (N, C))
        z[np.arange(N), target] += 3.0
        zt = rng.normal(0, 1, (T, C))
        zt[np.arange(T), yt] += 3.0 - 1.0 * m[FLIPPED].sum()  # wrong labels cost test accuracy
        snap = None
        if snapshots:
            # Early in training the model predicts the true class; a wrong label is learned
            # late and forgotten once in between (one forgetting event).
            early = rng.normal(0, 0.5, (N, C))
            early[np.arange(N), truth] += 3.0
            final_ok, early_ok = np.argmax(z, 1) == y, np.argmax(early, 1) == y
            el2n = [np.linalg.norm(_softmax(a) - np.eye(C)[y], axis=1) for a in (early, z)]
            snap = {
                "epochs": np.array([1, 2, 3]),
                "train_correct": np.stack([final_ok, early_ok, final_ok]),
                "train_el2n": np.stack([el2n[0], el2n[0], el2n[1]]),
            }
        store.add_run(m, train_logits=z, test_logits=zt, keep_logits=keep_logits, snapshots=snap)
        masks.append(m)
        logits.append(z)
    return store, np.array(masks), np.array(logits)


def test_holdout_pred_probs(tmp_path):
    store, masks, logits = noisy_store(tmp_path / "s")
    got = store.holdout_pred_probs(chunk_runs=5)
    probs = _softmax(logits)
    out = ~masks
    want = np.einsum("rn,rnc->nc", out[:, :-1], probs[:, :-1]) / out[:, :-1].sum(0)[:, None]
    assert_allclose(got[:-1], want, rtol=1e-6)
    assert np.isnan(got[-1]).all()
    assert_allclose(got[:-1].sum(1), 1.0, rtol=1e-6)


def test_holdout_pred_probs_needs_logits(tmp_path):
    store, _, _ = noisy_store(tmp_path / "s", keep_logits=False)
    with pytest.raises(StoreError, match="no train logits.*keep_logits=True"):
        store.holdout_pred_probs()


def test_label_issues_rank_the_flipped_labels_first(tmp_path):
    store, _, _ = noisy_store(tmp_path / "s")
    table = memscore.label_issues(store, "all")
    store_methods = [m for m in memscore.runs.LABEL_ISSUE_METHODS if m not in ("knn_shapley", "data_oob")]
    assert table.columns == ["index", "label", *store_methods]
    assert table["index"][-1] == N - 1  # memorization undefined (in every run): ranked last
    for method in store_methods:
        top = memscore.label_issues(store, method)["index"][: FLIPPED.size].to_list()
        assert sorted(top) == FLIPPED.tolist(), method
    mem = memscore.label_issues(store, ["memorization", "banzhaf"])
    assert mem.columns == ["index", "label", "memorization", "banzhaf"]
    assert_allclose(mem.sort("index")["memorization"].to_numpy()[:-1], store.memorization()[:-1], rtol=1e-12)
    # Undefined scores rank last.
    assert mem["index"][-1] == N - 1


def test_label_issues_missing_data_and_bad_method(tmp_path, monkeypatch):
    store, _, _ = noisy_store(tmp_path / "s", snapshots=False, keep_logits=False)
    with pytest.raises(StoreError, match="snapshots"):
        memscore.label_issues(store, "el2n")
    with pytest.raises(StoreError, match="no train logits"):
        memscore.label_issues(store, "self_confidence")
    with pytest.raises(ValueError, match="method"):
        memscore.label_issues(store, "data_shapley")
    with pytest.raises(ValueError, match="at least one"):
        memscore.label_issues(store, [])
    monkeypatch.setitem(sys.modules, "cleanlab", None)
    with pytest.raises(ImportError, match=r"memscore\[cleanlab\]"):
        memscore.label_issues(store, "confident_learning")
    unlabeled = RunStore.create(tmp_path / "u", n_train=3)
    unlabeled.add_run(np.array([1, 0, 1], dtype=bool), train_correct=np.ones(3, dtype=bool))
    with pytest.raises(StoreError, match="train_labels"):
        memscore.label_issues(unlabeled)


def test_label_issues_knn_shapley(tmp_path, rng):
    n, t = 30, 40
    y = np.arange(n) % 2
    x = (rng.normal(size=(n, 2)) + 6 * y[:, None]).astype(np.float32)
    y_noisy = y.copy()
    y_noisy[5] = 0
    yt = np.arange(t) % 2
    xt = (rng.normal(size=(t, 2)) + 6 * yt[:, None]).astype(np.float32)
    store = RunStore.create(tmp_path / "k", n_train=n, n_test=t, train_labels=y_noisy, test_labels=yt)
    store.add_run(rng.random(n) < 0.5, train_correct=np.ones(n, dtype=bool))
    table = memscore.label_issues(store, ["knn_shapley", "memorization"], knn_features=(x, xt), knn_k=3)
    assert table["index"][0] == 5
    want = -memscore.knn_shapley(x, y_noisy, xt, yt, k=3)
    assert_allclose(table.sort("index")["knn_shapley"].to_numpy(), want)
    assert memscore.runs.LABEL_ISSUE_METHODS[-1] == "knn_shapley"
    with pytest.raises(ValueError, match="knn_features"):
        memscore.label_issues(store, "knn_shapley")
    with pytest.raises(ValueError, match="knn_k"):
        memscore.label_issues(store, "knn_shapley", knn_features=(x, xt), knn_k=0)


def test_label_issues_single_class(tmp_path, rng):
    """Every label the same: self-confidence is 1 - the hold-out probability of that class."""
    store = RunStore.create(tmp_path / "one", n_train=20, train_labels=np.zeros(20, dtype=int), n_classes=3)
    for _ in range(6):
        store.add_run(rng.random(20) < 0.5, train_logits=rng.normal(size=(20, 3)), keep_logits=True)
    probs = store.holdout_pred_probs()
    ok = ~np.isnan(probs[:, 0])
    table = memscore.label_issues(store, ["self_confidence", "confident_learning"]).sort("index")
    assert_allclose(table["self_confidence"].to_numpy()[ok], 1.0 - probs[ok, 0], rtol=1e-6)
    assert np.isnan(table["self_confidence"].to_numpy()[~ok]).all()
    assert np.isfinite(table["confident_learning"].to_numpy()[ok]).all()
