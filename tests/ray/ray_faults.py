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


def stall_once(where) -> None:
    """In a worker: the first caller (over all workers) writes ``where/pid`` and sleeps."""
    try:
        fd = os.open(os.path.join(where, "claimed"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.close(fd)
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
    """A QuerySet whose first count (over all workers) stalls in its worker."""

    stall_dir = ""

    def count(self, corpus, **kw):
        stall_once(self.stall_dir)
        return super().count(corpus, **kw)


def stalling(qs: QuerySet, where) -> QuerySet:
    """``qs`` as a :class:`StallingQuerySet` stalling through ``where``."""
    qs.__class__ = StallingQuerySet
    qs.stall_dir = str(where)
    return qs


class StallingData:
    """A picklable data function whose first call (over all workers) stalls."""

    def __init__(self, fn, where) -> None:
        self.fn, self.where = fn, str(where)

    def __call__(self):
        stall_once(self.where)
        return self.fn()
