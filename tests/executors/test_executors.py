"""The executor seam: resolving ``executor=``, and the map protocol of the in-process
executors (order, errors, cancellation, progress units, resources)."""

from __future__ import annotations

import threading
import time
from operator import add

import numpy as np
import pytest

import memscore
from memscore.executors import (
    ClusterError,
    Executor,
    LocalExecutor,
    RayExecutor,
    ThreadExecutor,
    as_executor,
)


@pytest.mark.parametrize(
    ("spec", "cls"),
    [(None, LocalExecutor), ("local", LocalExecutor), ("threads", ThreadExecutor), ("threads:3", ThreadExecutor)],
)
def test_as_executor_in_process(spec, cls):
    ex = as_executor(spec)
    assert type(ex) is cls and isinstance(ex, Executor)


def test_as_executor_threads_counts():
    assert as_executor("threads:3").workers() == 3
    assert as_executor("threads").workers() >= 1


@pytest.mark.parametrize(
    ("spec", "address"),
    [
        ("ray", None),
        ("ray://head:10001", "ray://head:10001"),
        ("ray:auto", "auto"),
        ("ray:10.0.0.1:6379", "10.0.0.1:6379"),
    ],
)
def test_as_executor_ray(spec, address):
    ex = as_executor(spec)  # resolving neither imports nor connects to ray
    assert isinstance(ex, RayExecutor) and ex.address == address


def test_as_executor_passes_instances():
    ex = ThreadExecutor(2, cpus_per_task=2)
    assert as_executor(ex) is ex


@pytest.mark.parametrize(
    "bad", [3, 1.5, "thread", "threads:0", "threads:x", "threads:", "ray:", "", "dask", object(), [None]]
)
def test_as_executor_refuses_with_the_choices(bad):
    with pytest.raises(TypeError, match="executor: expected None or 'local'") as info:
        as_executor(bad)
    msg = str(info.value)
    for choice in ("'threads:N'", "'ray://host:port'", "RayExecutor"):
        assert choice in msg or "threads:N with N" in msg


def test_engine_refuses_a_bad_executor_by_name():
    with pytest.raises(TypeError, match="executor: expected"):
        memscore.ngram_stats(memscore.Corpus.from_tokens(np.array([1, 2, 3]), np.array([0])), [[1, 2]], executor="rey")


def test_shared_settings_checked():
    with pytest.raises(ValueError, match="cpus_per_task"):
        LocalExecutor(cpus_per_task=-1)
    with pytest.raises(ValueError, match="max_retries"):
        ThreadExecutor(2, max_retries=-1)
    with pytest.raises(ValueError, match="n: expected an integer >= 1"):
        ThreadExecutor(0)
    with pytest.raises(TypeError, match="n: expected an integer"):
        ThreadExecutor(True)
    with pytest.raises(ValueError, match="storage"):
        RayExecutor(storage="nfs")


def test_local_map_in_order():
    assert list(LocalExecutor().map(add, [(1, 2), (3, 4), (5, 6)])) == [(0, 3), (1, 7), (2, 11)]
    assert list(LocalExecutor().map(add, [])) == []


def test_thread_map_every_result_by_index():
    args = [(i, i) for i in range(20)]
    got = dict(ThreadExecutor(3).map(add, args))
    assert got == {i: 2 * i for i in range(20)}


def _slow_square(x: int) -> int:
    time.sleep(0.01 * (5 - x % 5))
    return x * x


def test_thread_map_runs_in_parallel_and_yields_as_they_finish():
    order = [i for i, _ in ThreadExecutor(5).map(_slow_square, [(i,) for i in range(5)])]
    assert sorted(order) == list(range(5)) and order != list(range(5))  # the fastest (last) came first


class _Boom(RuntimeError):
    pass


def _fail_at(i: int, bad: int, started: list[int]) -> int:
    started.append(i)
    if i == bad:
        raise _Boom(f"task {i}")
    time.sleep(0.02)
    return i


@pytest.mark.parametrize("ex", [LocalExecutor(), ThreadExecutor(2)], ids=["local", "threads"])
def test_a_task_error_is_raised_and_the_rest_dropped(ex):
    started: list[int] = []
    with pytest.raises(_Boom, match="task 1"):
        for _ in ex.map(_fail_at, [(i, 1, started) for i in range(50)]):
            pass
    time.sleep(0.2)  # the running ones end; none of the others starts
    assert len(started) < 50


def test_thread_map_closed_early_drops_the_rest():
    started: list[int] = []
    it = ThreadExecutor(2).map(_fail_at, [(i, -1, started) for i in range(50)])
    next(it)
    it.close()
    time.sleep(0.3)
    assert len(started) < 50


def test_units_must_match_tasks():
    with pytest.raises(ValueError, match="units: expected one value per task"):
        list(LocalExecutor().map(add, [(1, 2)], units=[1.0, 2.0]))


def test_progress_bar_counts_units(capsys):
    pytest.importorskip("tqdm")
    list(ThreadExecutor(2).map(add, [(1, 1)] * 4, units=[10, 10, 10, 10], unit="runs", desc="demo", progress=True))
    err = capsys.readouterr().err
    assert "demo" in err and "40/40" in err and "runs" in err


def test_local_gpu_request_without_a_gpu():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ClusterError, match="gpus_per_task"):
        LocalExecutor(gpus_per_task=1).start()
    with pytest.raises(ClusterError, match="gpus_per_task"):
        ThreadExecutor(2).start(gpus=0.5)
    LocalExecutor().start()  # nothing asked, nothing refused


def test_check_dir(tmp_path):
    LocalExecutor().check_dir(tmp_path, write=True)
    with pytest.raises(ClusterError, match="is not a directory"):
        ThreadExecutor(2).check_dir(tmp_path / "missing", write=False)


def test_ctrl_c_in_the_caller_drops_pending_thread_tasks(sigint_raises):
    started: list[int] = []

    def interrupt_soon() -> None:
        time.sleep(0.1)
        import _thread

        _thread.interrupt_main()

    threading.Thread(target=interrupt_soon, daemon=True).start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        for _ in ThreadExecutor(2).map(_fail_at, [(i, -1, started) for i in range(1000)]):
            pass
    assert time.monotonic() - t0 < 5
    n = len(started)
    time.sleep(0.2)
    assert len(started) <= n + 2 and n < 1000  # at most the two running tasks finish


def test_top_level_exports():
    assert memscore.RayExecutor is RayExecutor and memscore.ClusterError is ClusterError
    from memscore import cluster

    assert cluster.RayExecutor is RayExecutor and cluster.ClusterError is ClusterError
