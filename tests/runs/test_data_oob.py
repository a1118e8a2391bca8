"""Data-OOB (Kwon & Zou 2023): bootstrap plans, multiplicities in the store and the driver,
and the out-of-bag score against the numpy reference, from arrays and a store."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

import memscore
from memscore import RunStore, StoreError
from memscore.reference import valuation as ref
from memscore.train import SubsetPlan

# ----------------------------------------------------------------------------- plans


def test_bootstrap_plan_draws_n_with_replacement():
    plan = SubsetPlan(30, 50, bootstrap=True, seed=4)
    w = plan.multiplicities
    assert plan.bootstrap and w is not None and w.dtype == np.uint16 and w.shape == (50, 30)
    assert (w.sum(axis=1) == 30).all()  # n draws per run
    assert np.array_equal(plan.masks, w > 0)
    assert w.max() > 1  # some example drawn more than once
    # out of bag with probability (1 - 1/n)^n ~ 0.36
    assert abs((w == 0).mean() - (1 - 1 / 30) ** 30) < 0.05
    assert plan.epoch_size(0) == 30 and np.array_equal(plan.epoch_examples(0), np.repeat(np.arange(30), w[0]))
    again = SubsetPlan(30, 50, bootstrap=True, seed=4)
    assert np.array_equal(again.multiplicities, w)  # seeded
    assert not np.array_equal(SubsetPlan(30, 50, bootstrap=True, seed=5).multiplicities, w)
    with pytest.raises(ValueError):
        w[0, 0] = 3  # read-only
    assert plan.as_dict()["bootstrap"] is True and "bootstrap" not in SubsetPlan(30, 4).as_dict()
    assert SubsetPlan(30, 4).multiplicities is None and not SubsetPlan(30, 4).bootstrap
    assert "bootstrap=True" in repr(plan)


def test_bootstrap_plan_bad_input():
    with pytest.raises(ValueError, match="ratios do not apply"):
        SubsetPlan(30, 4, bootstrap=True, ratios=[0.3, 0.5])
    with pytest.raises(TypeError, match="bootstrap"):
        SubsetPlan(30, 4, bootstrap="yes")
    one = SubsetPlan(1, 3, bootstrap=True)  # one example: every run draws it once
    assert one.multiplicities.tolist() == [[1], [1], [1]]


# ----------------------------------------------------------------------------- the score


def test_data_oob_matches_reference(rng):
    w = rng.poisson(1.0, (40, 37))
    correct = rng.random((40, 37)) < 0.6
    phi = rng.normal(0, 2, (40, 37))
    assert_allclose(memscore.data_oob(w, correct), ref.data_oob(w, correct), atol=1e-12)
    assert_allclose(memscore.data_oob(w, phi), ref.data_oob(w, phi), atol=1e-10)
    packed = memscore.PackedBits.pack(correct)
    assert_allclose(memscore.data_oob(w, packed), ref.data_oob(w, correct), atol=1e-12)
    # SubsetPlan's uint16 counts are read by the core as they are (nonzero = drawn): the
    # same values, bool and float outcomes, counts above 255 and 256 (a low byte of 0).
    w16 = w.astype(np.uint16)
    w16[0, :3] = [256, 512, 257]
    w64 = w16.astype(np.int64)
    for outcomes in (correct, phi, packed):
        assert_allclose(memscore.data_oob(w16, outcomes), memscore.data_oob(w64, outcomes), atol=1e-12)
    assert_allclose(memscore.data_oob(w16, correct), ref.data_oob(w64, correct), atol=1e-12)
    with pytest.raises(ValueError, match="outcomes"):
        memscore.data_oob(w16, correct[:, :5])


def test_data_oob_edge_cases():
    w = np.array([[1, 0, 2, 0], [3, 0, 1, 1], [1, 0, 0, 2]])
    t = np.array([[1, 1, 0, 1], [0, 0, 1, 1], [1, 1, 1, 0]], dtype=bool)
    got = memscore.data_oob(w, t)
    # example 0 drawn by every run: NaN; example 1 never drawn: mean over all runs (ties)
    assert np.isnan(got[0])
    assert_allclose(got[1:], [2 / 3, 1.0, 1.0])
    assert_allclose(got, ref.data_oob(w, t), atol=0)
    one = memscore.data_oob(w[:1], t[:1])  # one run
    assert_allclose(one, ref.data_oob(w[:1], t[:1]))
    assert np.isnan(one[[0, 2]]).all()


def test_data_oob_bad_input():
    t = np.ones((2, 3), dtype=bool)
    with pytest.raises(TypeError, match="integer draw counts"):
        memscore.data_oob(np.ones((2, 3), dtype=bool), t)
    with pytest.raises(TypeError, match="integer draw counts"):
        memscore.data_oob(np.ones((2, 3)), t)
    with pytest.raises(ValueError, match="counts >= 0"):
        memscore.data_oob(np.array([[1, -1, 0], [0, 0, 0]]), t)
    with pytest.raises(ValueError, match="2-D"):
        memscore.data_oob(np.ones(3, dtype=int), t)
    with pytest.raises(ValueError):
        memscore.data_oob(np.ones((2, 4), dtype=int), t)  # shapes disagree


# ----------------------------------------------------------------------------- the store


def _store(tmp_path, rng, runs=12, n=20, bootstrap=True):
    plan = SubsetPlan(n, runs, bootstrap=bootstrap, seed=1)
    store = RunStore.create(tmp_path / "s", n_train=n, n_test=5, train_labels=rng.integers(0, 3, n))
    correct = rng.random((runs, n)) < 0.7
    phi = rng.normal(0, 1, (runs, n))
    for r in range(runs):
        store.add_run(
            plan.masks[r],
            train_correct=correct[r],
            train_phi=phi[r],
            run_id=plan.run_ids[r],
            multiplicity=None if plan.multiplicities is None else plan.multiplicities[r],
        )
    return plan, store, correct, phi


def test_store_multiplicities_and_data_oob(tmp_path, rng):
    plan, store, correct, phi = _store(tmp_path, rng)
    w = plan.multiplicities
    assert np.array_equal(store.multiplicities(), w) and store.multiplicities().dtype == np.int64
    assert np.array_equal(store.multiplicity("run-000003"), w[3])
    assert store.verify() == []
    assert_allclose(store.data_oob(), ref.data_oob(w, correct), atol=1e-12)
    assert_allclose(store.data_oob(chunk_runs=5), ref.data_oob(w, correct), atol=1e-12)
    assert_allclose(store.data_oob("phi", chunk_runs=5), ref.data_oob(w, phi.astype(np.float32)), atol=1e-6)
    # through label_issues (issue score 1 - Data-OOB), and in "all" on a bootstrap store
    t = memscore.label_issues(store, "data_oob").sort("index")
    assert_allclose(t["data_oob"].to_numpy(), 1 - ref.data_oob(w, correct), atol=1e-12)
    assert "data_oob" in memscore.label_issues(store, ["memorization", "data_oob"]).columns


def test_store_without_multiplicities_is_refused(tmp_path, rng):
    _, store, _, _ = _store(tmp_path, rng, bootstrap=False)
    assert store.multiplicity("run-000000") is None
    with pytest.raises(StoreError, match=r"12 of 12 runs have no bootstrap multiplicities.*bootstrap=True"):
        store.data_oob()
    with pytest.raises(StoreError, match="no multiplicity"):
        store.multiplicities()
    with pytest.raises(StoreError, match="bootstrap multiplicities"):
        memscore.label_issues(store, "data_oob")
    # "all" leaves Data-OOB out on a store of subset runs
    from memscore.runs.label_issues import _bootstrap

    assert not _bootstrap(store) and _bootstrap(_store(tmp_path / "b", np.random.default_rng(0))[1])


def test_add_run_checks_multiplicity(tmp_path):
    store = RunStore.create(tmp_path / "s", n_train=4, n_test=0)
    mask = np.array([1, 0, 1, 1], dtype=bool)
    correct = np.ones(4, dtype=bool)
    with pytest.raises(ValueError, match="> 0 exactly where mask is True"):
        store.add_run(mask, train_correct=correct, multiplicity=[1, 1, 1, 1])
    with pytest.raises(ValueError, match="0..65535"):
        store.add_run(mask, train_correct=correct, multiplicity=[1, 0, 70000, 1])
    with pytest.raises(ValueError, match="0..65535"):
        store.add_run(mask, train_correct=correct, multiplicity=[1, -1, 1, 1])
    with pytest.raises(TypeError, match="integer draw counts"):
        store.add_run(mask, train_correct=correct, multiplicity=[1.0, 0.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="shape"):
        store.add_run(mask, train_correct=correct, multiplicity=[1, 0, 1])
    assert len(store) == 0
    store.add_run(mask, train_correct=correct, multiplicity=[65535, 0, 2, 1], run_id="a")
    assert store.multiplicity("a").tolist() == [65535, 0, 2, 1]
    assert store.verify() == []


def test_verify_cross_checks_multiplicity_against_the_mask(tmp_path):
    """A run file written by other code (valid checksum) whose draw counts contradict its
    mask is reported by verify()."""
    import json

    from memscore.runs.store.format import digest

    store = RunStore.create(tmp_path / "s", n_train=4, n_test=0)
    mask = np.array([1, 0, 1, 1], dtype=bool)
    store.add_run(mask, train_correct=np.ones(4, dtype=bool), multiplicity=[2, 0, 1, 1], run_id="a")
    path = tmp_path / "s" / "runs" / "a.npz"
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["multiplicity"] = np.array([2, 3, 0, 1], dtype=np.uint16)  # drawn where the mask is not
    meta = json.loads(arrays["meta"].tobytes().decode())
    meta["sha256"] = digest({k: v for k, v in arrays.items() if k != "meta"})
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    assert store.verify() == [
        "runs/a.npz: multiplicity disagrees with the mask at 2 examples (e.g. 1: mask False, multiplicity 3)"
    ]


# ----------------------------------------------------------------------------- the driver

torch = pytest.importorskip("torch")

from memscore.datasets import modular_arithmetic  # noqa: E402
from memscore.reference.train import train_sequential  # noqa: E402
from memscore.train import create_store, mlp, train_runs  # noqa: E402


def _task():
    d = modular_arithmetic(p=7, train_fraction=0.6, corrupt=0.1, seed=0)
    return d, (d.x_train, d.y_train), (d.x_test, d.y_test), (lambda: mlp(d.n_features, d.n_classes, width=8))


KW = dict(epochs=2, batch_size=8, lr=0.05, seed=3, keep_logits=True, progress=False)


def test_driver_repeats_examples_by_multiplicity(tmp_path):
    d, train, test, fn = _task()
    plan = SubsetPlan(d.n_train, 5, bootstrap=True, seed=2)
    store = create_store(tmp_path / "s", train, test)
    assert train_runs(fn, train, test, plan, store, ensemble=3, **KW) == plan.run_ids
    assert np.array_equal(store.multiplicities(), plan.multiplicities)
    # the plain loop over each run's examples, example i repeated w_ri times per epoch
    want = train_sequential(
        fn, train, test, plan, **{k: v for k, v in KW.items() if k not in ("keep_logits", "progress")}
    )
    z = store.outcomes("train", "logits")
    for r in range(5):
        np.testing.assert_allclose(z[r], want[r][0], atol=2e-5, rtol=1e-4)
    # ... which differs from training once on each drawn example
    once = SubsetPlan(d.n_train, 5, bootstrap=True, seed=2)
    once._multiplicities = (plan.multiplicities > 0).astype(np.uint16)  # same masks, every count 1
    z1 = train_sequential(
        fn, train, test, once, runs=[0], **{k: v for k, v in KW.items() if k not in ("keep_logits", "progress")}
    )
    assert not np.allclose(z1[0][0], want[0][0], atol=1e-4)
    assert_allclose(store.data_oob(), ref.data_oob(plan.multiplicities, store.outcomes("train", "correct")), atol=1e-12)


def test_bootstrap_resume_and_regroup_give_the_same_runs(tmp_path):
    d, train, test, fn = _task()
    plan = SubsetPlan(d.n_train, 6, bootstrap=True, seed=2)
    full = create_store(tmp_path / "full", train, test)
    train_runs(fn, train, test, plan, full, ensemble=6, **KW)
    part = create_store(tmp_path / "part", train, test)
    assert train_runs(fn, train, test, plan, part, ensemble=2, max_runs=3, **KW) == plan.run_ids[:3]
    rest = train_runs(fn, train, test, SubsetPlan(d.n_train, 6, bootstrap=True, seed=2), part, ensemble=1, **KW)
    assert rest == plan.run_ids[3:]
    np.testing.assert_array_equal(part.multiplicities(), full.multiplicities())
    np.testing.assert_allclose(part.outcomes("train", "logits"), full.outcomes("train", "logits"), atol=2e-5)
    # a store of this plan cannot be resumed by a plan with the same masks but other draw counts
    other = SubsetPlan(d.n_train, 6, bootstrap=True, seed=2)
    other._multiplicities = other.multiplicities.copy()
    other._multiplicities[0, plan.masks[0]] += 1
    with pytest.raises(StoreError, match="different bootstrap multiplicities"):
        train_runs(fn, train, test, other, part, **KW)


def test_cli_trains_a_bootstrap_store(tmp_path):
    typer_testing = pytest.importorskip("typer.testing")
    from memscore.cli import app

    args = ["train", str(tmp_path / "s"), "--bootstrap", "--runs", "2", "--epochs", "1", "--width", "8"]
    res = typer_testing.CliRunner().invoke(app, [*args, "--ensemble", "2"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    store = RunStore.open(tmp_path / "s")
    w = store.multiplicities()
    assert w.shape == (2, store.n_train) and (w.sum(axis=1) == store.n_train).all()
    assert store.metadata["plan"]["bootstrap"] is True
    assert_allclose(store.data_oob(), ref.data_oob(w, store.outcomes("train", "correct")), atol=1e-12)


def test_bootstrap_plan_refuses_repeats():
    from memscore.train import SubsetPlan

    with pytest.raises(ValueError, match="repeats"):
        SubsetPlan(10, 4, bootstrap=True, repeats=2)
    assert SubsetPlan(10, 4, bootstrap=True).as_dict()["bootstrap"] is True
    assert SubsetPlan.from_masks([[1, 0], [1, 1]]).repeats == 1
