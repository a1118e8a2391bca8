"""Fault injection for the Ray tests: the first call of a wrapped function, across every
worker, records its worker's pid and stalls, so that the test can kill that worker
mid-task (:func:`kill_stalled`). This module is pickled by value, so the workers need not
import it."""

import os
import signal
import time
from pathlib import Path

import ray.cloudpickle

from memscore.ngrams import QuerySet

# Ray pickles with its own cloudpickle
ray.cloudpickle.register_pickle_by_value(__import__(__name__))


def stall_once(where, skip: int = 0) -> None:
    """In a worker: the call after the first ``skip`` calls (counted over all workers)
    writes ``where/pid`` and sleeps."""
    k = 0
    while True:
        try:
            fd = os.open(os.path.join(where, f"call-{k}"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            k += 1
    os.close(fd)
    if k != skip:
        return
    tmp = os.path.join(where, f"pid.{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(str(os.getpid()))
    os.replace(tmp, os.path.join(where, "pid"))
    time.sleep(300)  # killed by the test long before


def kill_stalled(where, driver, timeout: float = 60.0) -> int:
    """Wait for the stalled worker's pid file, SIGKILL that worker, return its pid
    (``driver``: the thread running the driver, which must still be running)."""
    path = Path(where) / "pid"
    t0 = time.monotonic()
    while not path.exists():
        if not driver.is_alive() or time.monotonic() - t0 > timeout:
            raise TimeoutError("no worker stalled")
        time.sleep(0.05)
    pid = int(path.read_text())
    os.kill(pid, signal.SIGKILL)
    return pid


class StallingQuerySet(QuerySet):
    """A QuerySet whose first count (over all workers) stalls in its worker (the counting
    task calls the kernel ``_pass``)."""

    stall_dir = ""

    def _pass(self, corpus, counter):
        stall_once(self.stall_dir)
        return super()._pass(corpus, counter)


def stalling(qs: QuerySet, where) -> QuerySet:
    """``qs`` as a :class:`StallingQuerySet` stalling through ``where``."""
    qs.__class__ = StallingQuerySet
    qs.stall_dir = str(where)
    return qs


class StallingData:
    """A picklable data function whose call number ``skip`` (over all workers) stalls."""

    def __init__(self, fn, where, skip: int) -> None:
        self.fn, self.where, self.skip = fn, str(where), skip

    def __call__(self):
        stall_once(self.where, self.skip)
        return self.fn()


def run_killing_stalled(fn, where):
    """Run ``fn()`` (a driver) in a thread, kill the worker that stalls through ``where``
    meanwhile, and return what ``fn`` returned (or raise what it raised)."""
    import threading

    got: dict = {}

    def run():
        try:
            got["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            got["error"] = exc

    th = threading.Thread(target=run)
    th.start()
    try:
        kill_stalled(where, th)
    finally:
        th.join(120)
        if "error" in got:
            raise got["error"]
    assert not th.is_alive(), "the driver did not finish after the kill"
    return got["value"]
