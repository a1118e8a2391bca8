"""Training on Ray: run by run equal to the single-process path in both storage modes, a
worker killed mid-task, a driver interrupted and resumed, bad input refused before any
training task, and the CLI."""

import _thread
import functools
import sys
import threading

import numpy as np
import polars as pl
import pytest

pytest.importorskip("ray")
pytest.importorskip("torch")

import ray_faults  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from memscore import RunStore  # noqa: E402
from memscore.cli import app  # noqa: E402
from memscore.cluster import ClusterError, RayExecutor  # noqa: E402
from memscore.train import SubsetPlan, create_store, mlp, train_runs  # noqa: E402
from memscore.train.ray_runs import DatasetSplit  # noqa: E402

TRAIN = DatasetSplit("modular", "train", p=5, seed=0)
TEST = DatasetSplit("modular", "test", p=5, seed=0)
MODEL = functools.partial(mlp, 10, 5, width=8)
KW = dict(epochs=2, batch_size=4, lr=0.1, progress=False, keep_logits=True, seed=3)
N_RUNS = 6


@pytest.fixture(scope="module")
def plan():
    return SubsetPlan(TRAIN()[0].shape[0], N_RUNS, seed=1)


@pytest.fixture(scope="module")
def local(tmp_path_factory, plan):
    """The single-process reference: every run in one ensemble."""
    store = create_store(tmp_path_factory.mktemp("local") / "s", TRAIN(), TEST())
    train_runs(MODEL, TRAIN(), TEST(), plan, store, **KW)
    return store


def _new_store(path):
    return create_store(path, TRAIN(), TEST())


def _same_runs(store: RunStore, local: RunStore, plan) -> None:
    assert store.run_ids() == plan.run_ids and store.verify() == []
    assert np.array_equal(store.masks(), local.masks())
    for split in ("train", "test"):
        np.testing.assert_allclose(store.outcomes(split, "logits"), local.outcomes(split, "logits"), atol=1e-4)
        np.testing.assert_allclose(store.outcomes(split, "phi"), local.outcomes(split, "phi"), atol=1e-3)


@pytest.mark.parametrize("storage", ["shared", "object"])
def test_equal_to_single_process(ray_cluster, tmp_path, plan, local, storage):
    store = _new_store(tmp_path / "s")
    ex = RayExecutor(runs_per_task=2, storage=storage)
    ids = train_runs(MODEL, TRAIN, TEST, plan, store, executor=ex, **KW)
    assert ids == plan.run_ids
    _same_runs(store, local, plan)
    # a second call finds nothing to do
    assert train_runs(MODEL, TRAIN, TEST, plan, store, executor=ex, **KW) == []


def test_arrays_given_directly(ray_cluster, tmp_path, plan, local):
    store = _new_store(tmp_path / "s")
    train_runs(MODEL, TRAIN(), TEST(), plan, store, executor=RayExecutor(runs_per_task=3), **KW)
    _same_runs(store, local, plan)


@pytest.mark.parametrize("storage", ["shared", "object"])
def test_killed_worker_retried(ray_cluster, tmp_path, plan, local, storage):
    store = _new_store(tmp_path / "s")
    stall = tmp_path / "stall"
    stall.mkdir()
    data = ray_faults.StallingData(TRAIN, stall, skip=1)  # call 0: the checks; call 1: a training task
    ex = RayExecutor(runs_per_task=2, storage=storage)
    ids = ray_faults.run_killing_stalled(lambda: train_runs(MODEL, data, TEST, plan, store, executor=ex, **KW), stall)
    assert ids == plan.run_ids
    _same_runs(RunStore.open(store.path), local, plan)


def test_interrupted_and_resumed(ray_cluster, tmp_path, plan, local):
    store = _new_store(tmp_path / "s")
    stall = tmp_path / "stall"
    stall.mkdir()
    data = ray_faults.StallingData(TRAIN, stall, skip=2)  # the second training task stalls

    def ctrl_c():  # Ctrl-C on the driver once a task is busy
        while not (stall / "pid").exists():
            threading.Event().wait(0.05)
        _thread.interrupt_main()

    threading.Thread(target=ctrl_c, daemon=True).start()
    ex = RayExecutor(runs_per_task=1)
    with pytest.raises(KeyboardInterrupt):
        train_runs(MODEL, data, TEST, plan, store, executor=ex, **KW)
    store.refresh()
    assert len(store.run_ids()) < N_RUNS
    assert [p for p in store.verify() if ".tmp-" not in p] == []  # whole runs only
    first = set(store.run_ids())
    ids = train_runs(MODEL, data, TEST, plan, store, executor=ex, **KW)
    assert not first & set(ids)
    _same_runs(RunStore.open(store.path), local, plan)


def test_bad_input_before_any_task(ray_cluster, tmp_path, plan, monkeypatch):
    store = _new_store(tmp_path / "s")
    with pytest.raises(ClusterError, match="GPU"):
        train_runs(MODEL, TRAIN, TEST, plan, store, executor=RayExecutor(gpus_per_task=1), **KW)
    with pytest.raises(ClusterError, match="no Ray cluster answers"):
        train_runs(MODEL, TRAIN, TEST, plan, store, executor=RayExecutor(address="127.0.0.1:1"), **KW)
    with pytest.raises(ValueError, match="model_fn: expected"):  # the checks of train_runs, run in a worker
        train_runs(functools.partial(mlp, 10, 3), TRAIN, TEST, plan, store, executor=RayExecutor(), **KW)
    with pytest.raises(ValueError, match="storage"):
        RayExecutor(storage="nfs")
    assert store.run_ids() == []
    gone = _new_store(tmp_path / "gone")
    (gone.path / "runs").rename(tmp_path / "elsewhere")
    with pytest.raises(ClusterError, match="every worker sees"):
        train_runs(MODEL, TRAIN, TEST, plan, gone, executor=RayExecutor(), **KW)
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"memscore\[ray\]"):
        RayExecutor().connect()


def test_cli_train_on_ray(ray_cluster, tmp_path):
    args = ["train", str(tmp_path / "s"), "--runs", "4", "--epochs", "1", "--width", "8", "--ray", "auto"]
    r = CliRunner().invoke(app, args + ["--runs-per-task", "2", "--storage", "object"])
    assert r.exit_code == 0, r.output
    store = RunStore.open(tmp_path / "s")
    assert len(store.run_ids()) == 4 and store.verify() == []
    r = CliRunner().invoke(app, ["score", str(tmp_path / "s"), "--ray", "auto"])
    assert r.exit_code == 0, r.output
    assert pl.read_parquet(tmp_path / "s" / "scores.parquet").drop("corrupted").equals(store.scores())
    r = CliRunner().invoke(app, args + ["--gpus-per-task", "1"])
    assert isinstance(r.exception, ClusterError) and "GPU" in str(r.exception)


@pytest.mark.parametrize("storage", ["shared", "object"])
def test_bootstrap_plan_on_ray_equals_single_process(ray_cluster, tmp_path, storage):
    # Data-OOB's bootstrap runs: the same runs and draw counts as the single-process path
    boot = SubsetPlan(TRAIN()[0].shape[0], 4, bootstrap=True, seed=1)
    single = create_store(tmp_path / "local", TRAIN(), TEST())
    train_runs(MODEL, TRAIN(), TEST(), boot, single, **KW)
    store = _new_store(tmp_path / "s")
    assert train_runs(MODEL, TRAIN, TEST, boot, store, executor=RayExecutor(runs_per_task=2, storage=storage), **KW)
    assert store.verify() == [] and np.array_equal(store.multiplicities(), boot.multiplicities)
    np.testing.assert_allclose(store.outcomes("train", "logits"), single.outcomes("train", "logits"), atol=1e-4)
    np.testing.assert_allclose(store.data_oob(), single.data_oob(), atol=1e-12)
