"""Training on every executor: the same store in this process, on two threads and on Ray
(both storage modes), a Ray worker killed mid-task, a driver interrupted and resumed, bad
input refused before any training task, the CLI, and bootstrap plans."""

import _thread
import functools
import sys
import threading

import numpy as np
import pytest

pytest.importorskip("torch")

from typer.testing import CliRunner  # noqa: E402

from memscore import RunStore  # noqa: E402
from memscore.cli import app  # noqa: E402
from memscore.errors import ClusterError  # noqa: E402
from memscore.executors import LocalExecutor, RayExecutor, ThreadExecutor  # noqa: E402
from memscore.train import DatasetSplit, SubsetPlan, create_store, mlp, train_runs  # noqa: E402

TRAIN = DatasetSplit("modular", "train", p=5, seed=0)
TEST = DatasetSplit("modular", "test", p=5, seed=0)
MODEL = functools.partial(mlp, 10, 5, width=8)
KW = dict(epochs=2, batch_size=4, lr=0.1, progress=False, keep_logits=True, seed=3)
N_RUNS = 6
PER_TASK = 2  # runs per ensemble (one task each) on every executor, so the stores are identical


@pytest.fixture(scope="module")
def plan():
    return SubsetPlan(TRAIN()[0].shape[0], N_RUNS, seed=1)


@pytest.fixture(scope="module")
def local(tmp_path_factory, plan):
    """The reference: this process, ensembles of PER_TASK runs, the data given as arrays."""
    store = create_store(tmp_path_factory.mktemp("local") / "s", TRAIN(), TEST())
    train_runs(MODEL, TRAIN(), TEST(), plan, store, ensemble=PER_TASK, **KW)
    return store


def _new_store(path):
    return create_store(path, TRAIN(), TEST())


def _same_runs(store: RunStore, local: RunStore, plan, exact: bool = True) -> None:
    """The plan's runs, whole; with ``exact`` bit for bit those of ``local`` (same ensembles,
    same seeds, whoever trains them); else to float tolerance (a resumed plan regroups its
    missing runs into other ensembles)."""
    assert store.run_ids() == plan.run_ids and store.verify() == []
    assert np.array_equal(store.masks(), local.masks())
    for split in ("train", "test"):
        for kind in ("logits", "phi"):
            got, want = store.outcomes(split, kind), local.outcomes(split, kind)
            if exact:
                assert np.array_equal(got, want), (split, kind)
            else:
                np.testing.assert_allclose(got, want, atol=1e-4 if kind == "logits" else 1e-3)


def _executor(request, name: str, **settings):
    if name == "local":
        return LocalExecutor(**settings)
    if name == "threads":
        return ThreadExecutor(2, **settings)
    pytest.importorskip("ray")
    request.getfixturevalue("ray_cluster")
    return RayExecutor(storage=name.split("-")[1], **settings)


@pytest.mark.parametrize("name", ["local", "threads", "ray-shared", "ray-object"])
def test_same_store_on_every_executor(request, tmp_path, plan, local, name):
    store = _new_store(tmp_path / "s")
    ex = _executor(request, name, runs_per_task=PER_TASK)
    ids = train_runs(MODEL, TRAIN, TEST, plan, store, executor=ex, **KW)  # the workers load the data
    assert ids == plan.run_ids
    _same_runs(store, local, plan)
    # a second call finds nothing to do
    assert train_runs(MODEL, TRAIN, TEST, plan, store, executor=ex, **KW) == []


@pytest.mark.parametrize("executor", ["threads:2", "ray"])
def test_executor_by_name_with_arrays_given_directly(request, tmp_path, plan, local, executor):
    if executor == "ray":
        pytest.importorskip("ray")
        request.getfixturevalue("ray_cluster")
    store = _new_store(tmp_path / "s")
    train_runs(MODEL, TRAIN(), TEST(), plan, store, executor=executor, ensemble=PER_TASK, **KW)
    _same_runs(store, local, plan)


@pytest.mark.parametrize("storage", ["shared", "object"])
def test_killed_worker_retried(ray_cluster, tmp_path, plan, local, storage):
    import ray_faults

    store = _new_store(tmp_path / "s")
    stall = tmp_path / "stall"
    stall.mkdir()
    data = ray_faults.StallingData(TRAIN, stall, skip=1)  # call 0: the checks; call 1: a training task
    ex = RayExecutor(runs_per_task=PER_TASK, storage=storage)
    ids = ray_faults.run_killing_stalled(lambda: train_runs(MODEL, data, TEST, plan, store, executor=ex, **KW), stall)
    assert ids == plan.run_ids
    _same_runs(RunStore.open(store.path), local, plan)  # the retried task trains its whole ensemble again


def test_interrupted_and_resumed(ray_cluster, tmp_path, plan, local, sigint_raises):
    import ray_faults

    store = _new_store(tmp_path / "s")
    stall = tmp_path / "stall"
    stall.mkdir()
    data = ray_faults.StallingData(TRAIN, stall, skip=2)  # the second training task stalls

    def ctrl_c():  # Ctrl-C on the driver once a task is busy
        while not (stall / "pid").exists():
            threading.Event().wait(0.05)
        _thread.interrupt_main()

    threading.Thread(target=ctrl_c, daemon=True).start()
    ex = RayExecutor(runs_per_task=PER_TASK)
    with pytest.raises(KeyboardInterrupt):
        train_runs(MODEL, data, TEST, plan, store, executor=ex, **KW)
    store.refresh()
    assert len(store.run_ids()) < N_RUNS
    assert [p for p in store.verify() if ".tmp-" not in p] == []  # whole runs only
    first = set(store.run_ids())
    ids = train_runs(MODEL, data, TEST, plan, store, executor=ex, **KW)
    assert not first & set(ids)
    _same_runs(RunStore.open(store.path), local, plan, exact=False)


def test_bad_input_before_any_task(ray_cluster, tmp_path, plan, monkeypatch):
    store = _new_store(tmp_path / "s")
    with pytest.raises(ClusterError, match="GPU"):
        train_runs(MODEL, TRAIN, TEST, plan, store, executor=RayExecutor(gpus_per_task=1), **KW)
    with pytest.raises(ClusterError, match="no Ray cluster answers"):
        train_runs(MODEL, TRAIN, TEST, plan, store, executor=RayExecutor(address="127.0.0.1:1"), **KW)
    with pytest.raises(ValueError, match="model_fn: expected"):  # the checks of train_runs, run in a worker
        train_runs(functools.partial(mlp, 10, 3), TRAIN, TEST, plan, store, executor=RayExecutor(), **KW)
    with pytest.raises(TypeError, match="executor: expected None or 'local'"):
        train_runs(MODEL, TRAIN, TEST, plan, store, executor="cluster", **KW)
    with pytest.raises(ValueError, match="storage"):
        RayExecutor(storage="nfs")
    import torch

    if not torch.cuda.is_available():  # in this process: a GPU asked for where torch sees none
        with pytest.raises(ClusterError, match="GPU"):
            train_runs(MODEL, TRAIN, TEST, plan, store, executor=ThreadExecutor(2, gpus_per_task=1), **KW)
    assert store.run_ids() == []
    gone = _new_store(tmp_path / "gone")
    (gone.path / "runs").rename(tmp_path / "elsewhere")
    with pytest.raises(ClusterError, match="every worker sees"):
        train_runs(MODEL, TRAIN, TEST, plan, gone, executor=RayExecutor(), **KW)
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"memscore\[ray\]"):
        RayExecutor().connect()


def test_cli_train_on_ray(ray_cluster, tmp_path):
    args = ["train", str(tmp_path / "s"), "--runs", "4", "--epochs", "1", "--width", "8", "--executor", "ray"]
    r = CliRunner().invoke(app, args + ["--runs-per-task", "2", "--storage", "object"])
    assert r.exit_code == 0, r.output
    store = RunStore.open(tmp_path / "s")
    assert len(store.run_ids()) == 4 and store.verify() == []
    r = CliRunner().invoke(app, args + ["--gpus-per-task", "1"])
    assert isinstance(r.exception, ClusterError) and "GPU" in str(r.exception)


def test_cli_train_on_threads_equals_local(tmp_path):
    args = ["train", "--runs", "4", "--epochs", "1", "--width", "8", "--keep-logits", "--runs-per-task", "2"]
    for name, ex in (("local", "local"), ("threads", "threads:2")):
        r = CliRunner().invoke(app, [args[0], str(tmp_path / name), *args[1:], "--executor", ex])
        assert r.exit_code == 0, r.output
    a, b = RunStore.open(tmp_path / "local"), RunStore.open(tmp_path / "threads")
    assert a.run_ids() == b.run_ids() and len(a.run_ids()) == 4
    assert np.array_equal(a.outcomes("train", "logits"), b.outcomes("train", "logits"))
    # --storage means Ray's storage mode: refused elsewhere, naming the option
    r = CliRunner().invoke(app, [args[0], str(tmp_path / "x"), *args[1:], "--storage", "object"])
    assert isinstance(r.exception, TypeError) and "takes no storage" in str(r.exception)


@pytest.mark.parametrize("name", ["threads", "ray-shared", "ray-object"])
def test_bootstrap_plan_on_every_executor(request, tmp_path, name):
    # Data-OOB's bootstrap runs: the same runs and draw counts as this process gives
    boot = SubsetPlan(TRAIN()[0].shape[0], 4, bootstrap=True, seed=1)
    single = create_store(tmp_path / "local", TRAIN(), TEST())
    train_runs(MODEL, TRAIN(), TEST(), boot, single, ensemble=PER_TASK, **KW)
    store = _new_store(tmp_path / "s")
    ex = _executor(request, name, runs_per_task=PER_TASK)
    assert train_runs(MODEL, TRAIN, TEST, boot, store, executor=ex, **KW)
    assert store.verify() == [] and np.array_equal(store.multiplicities(), boot.multiplicities)
    assert np.array_equal(store.outcomes("train", "logits"), single.outcomes("train", "logits"))
    assert np.array_equal(store.data_oob(), single.data_oob(), equal_nan=True)


@pytest.mark.parametrize("executor", ["threads:2", "ray"])
def test_distilled_runs_are_the_same_on_every_executor(request, tmp_path, plan, local, executor):
    """Students of the local store's runs (paired by run id) train alike in this process, on
    threads and on Ray workers, which read their teacher runs from the shared store."""
    from memscore.train import Distillation

    if executor == "ray":
        pytest.importorskip("ray")
        request.getfixturevalue("ray_cluster")
    d = Distillation(local, alpha=0.6, temperature=3.0)
    here = _new_store(tmp_path / "here")
    train_runs(MODEL, TRAIN(), TEST(), plan, here, ensemble=PER_TASK, distill=d, **KW)
    there = _new_store(tmp_path / "there")
    train_runs(MODEL, TRAIN, TEST, plan, there, executor=executor, ensemble=PER_TASK, distill=d, **KW)
    _same_runs(there, here, plan)
    assert there.run_metadata("run-000001")["distill"]["teacher"]["run_id"] == "run-000001"
