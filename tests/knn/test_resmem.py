"""ResMem: hand-computed example, reference agreement, limits, faiss backend, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import memscore
from memscore import ResMem, tune_resmem
from memscore.reference import knn as ref


def toy(rng, n=300, m=60, d=6, c=4):
    e = rng.standard_normal((n, d)).astype(np.float32)
    y = rng.integers(0, c, n)
    z = rng.standard_normal((n, c))
    eq = rng.standard_normal((m, d)).astype(np.float32)
    zq = rng.standard_normal((m, c))
    return e, y, z, eq, zq


def test_hand_computed_example():
    # Three training points on a line, two classes, zero logits (base = [0.5, 0.5]).
    e = np.array([[0.0], [1.0], [3.0]], np.float32)
    y = np.array([0, 1, 1])
    z = np.zeros((3, 2))
    m = ResMem(k=2, sigma=1.0, normalize=False).fit(e, y, z)
    # residuals: onehot - 0.5 -> [[.5,-.5], [-.5,.5], [-.5,.5]]
    assert_allclose(m.residuals_, [[0.5, -0.5], [-0.5, 0.5], [-0.5, 0.5]])
    # query at 0.25: neighbours 0 (d=0.0625) and 1 (d=0.5625), squared L2.
    w0 = math.exp(-0.0625) / (math.exp(-0.0625) + math.exp(-0.5625))
    w1 = 1 - w0
    p = m.predict_proba(np.array([[0.25]], np.float32), np.zeros((1, 2)))
    want0 = 0.5 + 0.5 * w0 - 0.5 * w1
    assert_allclose(p, [[want0, 1 - want0]], rtol=1e-6)
    assert m.predict(np.array([[0.25]], np.float32), np.zeros((1, 2)))[0] == 0
    d, i = m.kneighbors(np.array([[0.25]], np.float32))
    assert_array_equal(i, [[0, 1]])
    assert_allclose(d, [[0.0625, 0.5625]], rtol=1e-6)


@pytest.mark.parametrize("metric", ["l2", "cosine", "ip"])
@pytest.mark.parametrize("normalize", [True, False])
def test_matches_numpy_reference(rng, metric, normalize):
    e, y, z, eq, zq = toy(rng)
    m = ResMem(k=7, sigma=0.3, temperature=2.0, metric=metric, normalize=normalize).fit(e, y, z)
    ee, qq = (ref._unit(e.astype(np.float64)), ref._unit(eq.astype(np.float64))) if normalize else (e, eq)
    d, i = ref.knn(qq, ee, 7, metric)
    if metric == "ip":
        d = -d
    want = ref.resmem_predict(ref.softmax(zq / 2.0), ref.resmem_residuals(y, z, 2.0), d, i, 0.3)
    assert_allclose(m.predict_proba(eq, zq), want, atol=2e-5)


def test_residual_rows_sum_to_zero_and_predictions_to_one(rng):
    e, y, z, eq, zq = toy(rng)
    m = ResMem(k=5, sigma=0.5, temperature=0.7).fit(e, y, z)
    assert_allclose(m.residuals_.sum(axis=1), 0.0, atol=1e-12)
    assert_allclose(m.predict_proba(eq, zq).sum(axis=1), 1.0, atol=1e-12)


def test_limits(rng):
    e, y, z, eq, zq = toy(rng)
    base = ref.softmax(zq)
    # k = 0: the base model unchanged.
    assert_allclose(ResMem(k=0).fit(e, y, z).predict_proba(eq, zq), base)
    # sigma = inf: uniform weights over the k neighbours.
    m = ResMem(k=6, sigma=math.inf).fit(e, y, z)
    _, i = m.kneighbors(eq)
    assert_allclose(m.predict_proba(eq, zq), base + m.residuals_[i].mean(axis=1), atol=1e-12)
    # a huge sigma approaches the uniform limit; a tiny one the nearest neighbour alone.
    assert_allclose(m.set_params(sigma=1e9).predict_proba(eq, zq), base + m.residuals_[i].mean(axis=1), atol=1e-6)
    assert_allclose(m.set_params(sigma=1e-6).predict_proba(eq, zq), base + m.residuals_[i[:, 0]], atol=1e-6)
    # Memorisation: a training point with k=1 predicts its own label.
    m1 = ResMem(k=1, sigma=1.0).fit(e, y, z)
    assert_array_equal(m1.predict(e, z), y)


def test_regression_mode(rng):
    e = rng.standard_normal((200, 3)).astype(np.float32)
    t = rng.standard_normal(200)
    f = t + rng.standard_normal(200)
    m = ResMem(k=3, sigma=0.2, mode="regression", normalize=False).fit(e, t, f)
    d, i = ref.knn(e[:10], e, 3)
    want = ref.resmem_predict(f[:10, None], (t - f)[:, None], d, i, 0.2)[:, 0]
    assert_allclose(m.predict(e[:10], f[:10]), want, atol=1e-5)
    assert m.predict(e[:10], f[:10]).shape == (10,)
    assert ResMem(k=1, mode="regression", normalize=False).fit(e, t, f).score(e, f, t) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="predict_proba"):
        m.predict_proba(e, f)


def test_params_roundtrip(rng):
    m = ResMem(k=3, sigma=2.0)
    p = m.get_params()
    assert p["k"] == 3 and p["sigma"] == 2.0 and p["backend"] == "exact"
    assert ResMem(**p).get_params() == p
    m.set_params(k=4, metric="cosine")
    assert m.k == 4 and m.metric == "cosine"
    with pytest.raises(ValueError, match="unknown parameter"):
        m.set_params(kk=1)
    with pytest.raises(memscore.NotFittedError, match="fit"):
        m.predict(np.zeros((1, 2), np.float32), np.zeros((1, 2)))
    sk = pytest.importorskip("sklearn.base")
    assert sk.clone(m).get_params() == m.get_params()


def test_faiss_backend_agrees_with_exact(rng):
    pytest.importorskip("faiss")
    centers = rng.standard_normal((50, 16)) * 4
    e = (centers[rng.integers(0, 50, 5000)] + rng.standard_normal((5000, 16))).astype(np.float32)
    y = rng.integers(0, 5, 5000)
    z = rng.standard_normal((5000, 5))
    eq = (centers[rng.integers(0, 50, 300)] + rng.standard_normal((300, 16))).astype(np.float32)
    zq = rng.standard_normal((300, 5))
    exact = ResMem(k=10, sigma=0.1).fit(e, y, z)
    _, ie = exact.kneighbors(eq)
    for spec, params in [("HNSW32", {"efSearch": 256}), ("IVF64,Flat", {"nprobe": 32}), ("Flat", None)]:
        approx = ResMem(k=10, sigma=0.1, backend="faiss", faiss_index=spec, faiss_params=params).fit(e, y, z)
        _, ia = approx.kneighbors(eq)
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ia, ie, strict=True)])
        assert recall > 0.95, (spec, recall)
        agree = (approx.predict(eq, zq) == exact.predict(eq, zq)).mean()
        assert agree > 0.95, (spec, agree)
    flat = ResMem(k=10, sigma=0.1, backend="faiss", faiss_index="Flat", metric="cosine").fit(e, y, z)
    assert_allclose(
        flat.predict_proba(eq, zq), exact.set_params(metric="cosine").fit(e, y, z).predict_proba(eq, zq), atol=1e-4
    )
    with pytest.raises(ValueError, match="faiss_index"):
        ResMem(backend="faiss", faiss_index="NoSuchIndex").fit(e, y, z)


def test_tune_picks_from_grid(rng):
    # Labels a smooth function of the embedding, logits uninformative: ResMem must help.
    e = rng.standard_normal((800, 2)).astype(np.float32)
    y = (e[:, 0] > 0).astype(np.int64) + 2 * (e[:, 1] > 0)
    z = np.zeros((800, 4))
    best, table = tune_resmem(e[:600], y[:600], z[:600], e[600:], y[600:], z[600:], ks=(0, 1, 5, 10), normalize=False)
    assert set(table.columns) == {"k", "sigma", "accuracy"}
    assert table.height == 1 + 3 * 7
    assert best["k"] > 0 and best["accuracy"] > 0.9
    assert best["accuracy"] == table["accuracy"].max()
    m = ResMem(k=best["k"], sigma=best["sigma"], normalize=False).fit(e[:600], y[:600], z[:600])
    assert m.score(e[600:], z[600:], y[600:]) == pytest.approx(best["accuracy"])


BAD = [
    (dict(k=11), "fit", ValueError, r"k <= number of training examples \(10\)"),
    (dict(k=-1), "fit", ValueError, "k: expected an integer >= 0, got -1"),
    (dict(k=2.5), "fit", TypeError, "k: expected an integer, got 2.5"),
    (dict(sigma=0.0), "fit", ValueError, "sigma"),
    (dict(temperature=-1.0), "fit", ValueError, "temperature"),
    (dict(metric="l1"), "fit", ValueError, "metric"),
    (dict(backend="annoy"), "fit", ValueError, "backend"),
    (dict(mode="ranking"), "fit", ValueError, "mode"),
]


@pytest.mark.parametrize("params,when,exc,match", BAD)
def test_bad_params(rng, params, when, exc, match):
    e, y, z, _, _ = toy(rng, n=10)
    with pytest.raises(exc, match=match):
        ResMem(**params).fit(e, y, z)


def test_bad_input(rng):
    e, y, z, eq, zq = toy(rng, n=20, c=3)
    m = ResMem(k=3).fit(e, y, z)
    cases = [
        (lambda: m.predict_proba(eq[:, :2], zq), ValueError, "dimension 6"),
        (lambda: m.predict_proba(np.where(eq > 1, np.nan, eq), zq), ValueError, "NaN or infinite"),
        (lambda: m.predict_proba(eq, np.full_like(zq, np.inf)), ValueError, "NaN or infinite"),
        (lambda: m.predict_proba(eq.astype(np.int64), zq), TypeError, "float32"),
        (lambda: m.predict_proba(eq, zq.astype(np.int64)), TypeError, "float"),
        (lambda: m.predict_proba(eq[:0], zq[:0]), ValueError, "non-empty"),
        (lambda: m.predict_proba(eq, zq[:, :2]), ValueError, "fitted with 3 classes"),
        (lambda: m.predict_proba(eq, zq[:5]), ValueError, "matching the 60 embeddings"),
        (lambda: ResMem(k=3).fit(e, y + 3, z), ValueError, r"classes in \[0, 3\)"),
        (lambda: ResMem(k=3).fit(e, y - 1, z), ValueError, r"classes in \[0, 3\)"),
        (lambda: ResMem(k=3).fit(e, y.astype(float), z), TypeError, "integer class labels"),
        (lambda: ResMem(k=3).fit(e, y[:5], z), ValueError, "train_labels"),
        (lambda: ResMem(k=3).fit(e, y, z[:5]), ValueError, "train_logits"),
        (lambda: ResMem(k=3).fit(e[:0], y[:0], z[:0]), ValueError, "non-empty"),
        (lambda: ResMem(k=3).fit(e.astype(np.int32), y, z), TypeError, "train_embeddings"),
        (lambda: m.score(eq, zq, y[:3]), ValueError, "labels"),
    ]
    for call, exc, match in cases:
        with pytest.raises(exc, match=match):
            call()


def test_extract_embeddings_hooks_penultimate_layer(rng):
    torch = pytest.importorskip("torch")
    from memscore import extract_embeddings

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    model.train()
    x = torch.randn(50, 5)
    emb, logits = extract_embeddings(model, x, batch_size=16)
    assert emb.shape == (50, 8) and logits.shape == (50, 3) and emb.dtype == np.float32
    with torch.no_grad():
        h = torch.relu(model[0](x))
        assert_allclose(emb, h.numpy(), atol=1e-6)
        assert_allclose(logits, model(x).numpy(), atol=1e-6)
    assert model.training  # restored
    # A named layer's output, a Dataset of (x, y) pairs and a DataLoader give the same.
    ds = torch.utils.data.TensorDataset(x, torch.zeros(50))
    e2, _ = extract_embeddings(model, ds, layer="0", batch_size=7)
    assert_allclose(e2, model[0](x).detach().numpy(), atol=1e-6)
    e3, l3 = extract_embeddings(model, torch.utils.data.DataLoader(ds, batch_size=9))
    assert_allclose(e3, emb, atol=1e-6)
    assert_allclose(l3, logits, atol=1e-6)
    e4, _ = extract_embeddings(model, x.numpy())
    assert_allclose(e4, emb, atol=1e-6)
    with pytest.raises(ValueError, match="no module named"):
        extract_embeddings(model, x, layer="nope")
    with pytest.raises(TypeError, match="nn.Module"):
        extract_embeddings(lambda t: t, x)
    with pytest.raises(ValueError, match="no nn.Linear"):
        extract_embeddings(torch.nn.Sequential(torch.nn.ReLU()), x)
    # End to end: fitting ResMem on the extracted training embeddings memorises labels.
    y = rng.integers(0, 3, 50)
    m = ResMem(k=1).fit(e2, y, logits)  # pre-ReLU features: no duplicate embeddings
    assert m.score(e2, logits, y) == 1.0
