"""Datamodels and the LDS on Ray: a worker killed mid-fit is retried and the fit is the
local one bit for bit; workers that do not see the store (``storage="object"``) get the
runs from the driver. (The local / threads / Ray identity tests of every entry point are in
tests/runs/test_datamodels.py.)"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import numpy as np
import pytest

ray = pytest.importorskip("ray")

import ray_faults  # noqa: E402

import memscore  # noqa: E402
from memscore.executors import RayExecutor  # noqa: E402

# the task wrapper below goes to the workers by value (they cannot import this module)
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def stalling_task(fn: Any, where: str, skip: int = 0) -> Any:
    """``fn`` as a task function whose call number ``skip`` (over all workers) stalls in
    its worker until the test kills it (:func:`ray_faults.stall_once`); a function, as
    ``ray.remote`` wants."""

    def task(*args: Any) -> Any:
        ray_faults.stall_once(where, skip)
        return fn(*args)

    return task


@dataclasses.dataclass(frozen=True)
class StallingRayExecutor(RayExecutor):
    """A RayExecutor whose ``map`` runs every task through :func:`stalling_task`."""

    stall_dir: str = ""

    def map(self, fn: Any, args: Any, **kw: Any) -> Any:  # type: ignore[override]
        """See :meth:`RayExecutor.map`."""
        return super().map(stalling_task(fn, self.stall_dir, skip=1), args, **kw)


def _store(tmp_path: Any, t: int = 70) -> memscore.RunStore:
    """150 runs of 24 training examples; ``t`` test examples with a planted sparse φ."""
    rng = np.random.default_rng(21)
    masks = rng.random((150, 24)) < 0.5
    w = np.where(np.arange(24) < 5, rng.normal(scale=2.0, size=(t, 24)), 0.0)
    phi = masks @ w.T + 0.1 * rng.normal(size=(150, t))
    store = memscore.RunStore.create(tmp_path / "runs", n_train=24, n_test=t)
    for r, (mask, y) in enumerate(zip(masks, phi, strict=True)):
        store.add_run(mask, test_phi=y, run_id=f"r{r:03d}")
    return store


def _same(a: memscore.Datamodels, b: memscore.Datamodels) -> None:
    for f in ("weights", "bias", "lam", "lam_max", "val_mse"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    assert a.sweeps == b.sweeps


def test_killed_worker_during_a_datamodels_fit_is_retried(ray_cluster, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    store = _store(tmp_path)
    want = store.datamodels(n_lambdas=20)
    stall = tmp_path / "stall"
    stall.mkdir()
    ex = StallingRayExecutor(stall_dir=str(stall))
    # the check_dir probe is not a map; the second task (skip=1) of three stalls and is killed
    got = ray_faults.run_killing_stalled(
        lambda: store.datamodels(n_lambdas=20, executor=ex, targets_per_task=32, progress=True), stall
    )
    _same(got, want)
    assert len(list(stall.glob("call-*"))) == 4  # three blocks, one of them run twice
    assert "failed 1, retried 1" in capsys.readouterr().err  # the progress bar counts the retry


def test_killed_worker_during_an_array_fit_is_retried(ray_cluster, tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = _store(tmp_path)
    masks, outcomes = store.masks(), store.outcomes("test", "phi")
    want = memscore.datamodels(masks, outcomes, n_lambdas=20)
    stall = tmp_path / "stall"
    stall.mkdir()
    ex = StallingRayExecutor(stall_dir=str(stall))
    got = ray_faults.run_killing_stalled(
        lambda: memscore.datamodels(masks, outcomes, n_lambdas=20, executor=ex, targets_per_task=32), stall
    )
    _same(got, want)


def test_object_storage_sends_the_runs(ray_cluster, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Workers that do not see the store: the driver reads the runs and shares them."""
    store = _store(tmp_path)
    want = store.datamodels("phi", lam=0.02)
    _same(store.datamodels("phi", lam=0.02, executor=RayExecutor(storage="object")), want)


def test_workers_must_see_the_store(ray_cluster, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A store the workers do not see fails before any fit, naming the path."""

    @dataclasses.dataclass(frozen=True)
    class Blind(RayExecutor):
        def check_dir(self, path: Any, *, write: bool) -> None:
            raise memscore.ClusterError(f"the tasks need {path} on a file system every worker sees")

    store = _store(tmp_path, t=3)
    with pytest.raises(memscore.ClusterError, match="every worker sees"):
        store.datamodels(lam=0.1, executor=Blind())
