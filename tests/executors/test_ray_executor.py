"""RayExecutor's map on a local cluster: results by index, a task's own exception, a worker
killed with SIGKILL retried (and counted against max_retries), resources refused before any
task, and the directory check made from a worker."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from memscore.executors import ClusterError, RayExecutor

ray = pytest.importorskip("ray")
# workers cannot import the tests package: ship this module's functions by value
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _square(x: int) -> int:
    return x * x


def _die_first_time(marker: str, x: int) -> int:
    """SIGKILL this worker the first time (the marker file says it happened)."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return x + 1
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)
    return -1  # never reached


def _always_die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _raise_value_error(x: int) -> int:
    raise ValueError(f"bad input {x}")


def test_map_results_by_index(ray_cluster):
    ex = RayExecutor()
    got = dict(ex.map(_square, [(i,) for i in range(10)]))
    assert got == {i: i * i for i in range(10)}
    assert ex.workers() == 2


def test_shared_object_reaches_tasks(ray_cluster):
    ex = RayExecutor()
    ref = ex.share(7)
    assert dict(ex.map(_square, [(ref,)])) == {0: 49}


def test_task_exception_keeps_its_type(ray_cluster):
    with pytest.raises(ValueError, match="bad input 3"):
        list(RayExecutor().map(_raise_value_error, [(3,)]))


def test_killed_worker_is_retried(ray_cluster, tmp_path):
    marker = str(tmp_path / "killed-once")
    got = dict(RayExecutor(max_retries=2).map(_die_first_time, [(marker, 41)]))
    assert got == {0: 42} and Path(marker).exists()


def test_retries_are_bounded(ray_cluster):
    with pytest.raises(ClusterError, match="lost its worker 2 times"):
        list(RayExecutor(max_retries=1).map(_always_die, [()], desc="doomed"))


def test_resources_refused_before_any_task(ray_cluster):
    with pytest.raises(ClusterError, match="1 GPU"):
        RayExecutor(gpus_per_task=1).start()
    with pytest.raises(ClusterError, match="64 CPU"):
        RayExecutor().start(cpus=64)
    RayExecutor().start()


def test_check_dir_from_a_worker(ray_cluster, tmp_path):
    RayExecutor().check_dir(tmp_path, write=True)
    with pytest.raises(ClusterError, match="every worker sees"):
        RayExecutor().check_dir(tmp_path / "nowhere", write=False)
