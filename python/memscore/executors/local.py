"""In-process executors: :class:`LocalExecutor` runs the tasks one after another in this
process, :class:`ThreadExecutor` on a pool of threads (memscore's kernels and torch release
the GIL, so threads run them in parallel)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from .._progress import ProgressBar
from .._validate import check_int
from .base import Executor

__all__ = ["LocalExecutor", "ThreadExecutor"]


@dataclass(frozen=True, kw_only=True)
class LocalExecutor(Executor):
    """Run every task in this process, one after another, in order (the default of every
    ``executor=``). The settings are those of :class:`Executor`.

    Examples
    --------
    >>> from operator import add
    >>> list(LocalExecutor().map(add, [(1, 2), (3, 4)]))
    [(0, 3), (1, 7)]
    """

    def map(
        self,
        fn: Callable[..., Any],
        args: Sequence[tuple[Any, ...]],
        *,
        units: Sequence[float] | None = None,
        cpus: float | None = None,
        gpus: float | None = None,
        desc: str = "tasks",
        unit: str = "tasks",
        progress: bool = False,
    ) -> Iterator[tuple[int, Any]]:
        """See :meth:`Executor.map`; the results come in task order."""
        weights = _units(units, len(args))
        bar = ProgressBar(sum(weights), unit, desc, progress)
        try:
            for i, a in enumerate(args):
                value = fn(*a)
                bar.update(weights[i])
                yield i, value
        finally:
            bar.close()


def _default_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@dataclass(frozen=True)
class ThreadExecutor(Executor):
    """Run the tasks on ``n`` threads of this process.

    Suits tasks that spend their time in memscore's kernels or in torch, which release
    the GIL. Each task still runs memscore's kernels on the shared thread pool
    (:func:`memscore.set_num_threads`), so ``n`` above the number of CPUs rarely helps.

    Parameters
    ----------
    n : int, optional
        Threads (default: the CPUs this process may use).
    **settings
        Those of :class:`Executor`, by keyword.

    Examples
    --------
    >>> from operator import mul
    >>> sorted(ThreadExecutor(2).map(mul, [(2, 3), (4, 5), (6, 7)]))
    [(0, 6), (1, 20), (2, 42)]
    """

    n: int = field(default_factory=_default_threads)

    def __post_init__(self) -> None:
        """Check the settings."""
        super().__post_init__()
        object.__setattr__(self, "n", check_int(self.n, "n", 1))

    def workers(self) -> int:
        """``n``."""
        return self.n

    def map(
        self,
        fn: Callable[..., Any],
        args: Sequence[tuple[Any, ...]],
        *,
        units: Sequence[float] | None = None,
        cpus: float | None = None,
        gpus: float | None = None,
        desc: str = "tasks",
        unit: str = "tasks",
        progress: bool = False,
    ) -> Iterator[tuple[int, Any]]:
        """See :meth:`Executor.map`; results come as they finish."""
        weights = _units(units, len(args))
        bar = ProgressBar(sum(weights), unit, desc, progress)
        pool = ThreadPoolExecutor(max_workers=self.n, thread_name_prefix="memscore-task")
        index: dict[Future[Any], int] = {}
        try:
            index = {pool.submit(fn, *a): i for i, a in enumerate(args)}
            pending = set(index)
            while pending:
                # a timeout, so that Ctrl-C reaches this thread between waits
                finished, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
                for f in sorted(finished, key=index.__getitem__):
                    value = f.result()  # a task's exception is raised here
                    bar.update(weights[index[f]])
                    yield index[f], value
        finally:
            # on an error or Ctrl-C: tasks not started are dropped; running ones end on
            # their own (a thread cannot be stopped) without holding up the caller
            pool.shutdown(wait=False, cancel_futures=True)
            bar.close()


def _units(units: Sequence[float] | None, n: int) -> list[float]:
    if units is None:
        return [1.0] * n
    out = [float(u) for u in units]
    if len(out) != n:
        raise ValueError(f"units: expected one value per task ({n}), got {len(out)}")
    return out
