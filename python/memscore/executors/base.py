"""The execution protocol every engine hands its tasks to, and the one function that
resolves an ``executor=`` argument.

An engine states its work as *split → task → merge*: it splits the job into task
arguments, the executor runs a top-level picklable task function on each (in this process,
on threads, or on Ray workers) and hands the results back as they arrive, and the engine
merges them (in a fixed order, so the result does not depend on which task finished
first). The local path runs exactly the function a Ray worker runs.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .._validate import check_int, check_optional_int
from ..errors import ClusterError

__all__ = ["EXECUTOR_CHOICES", "Executor", "ExecutorLike", "check_resource", "probe_dir"]

EXECUTOR_CHOICES = (
    "None or 'local' (this process), 'threads' or 'threads:N' (a pool of N threads), "
    "'ray', 'ray:ADDRESS' or 'ray://host:port' (a Ray cluster), or an instance of "
    "memscore.executors.LocalExecutor, ThreadExecutor or RayExecutor"
)


def check_resource(x: object, name: str) -> float:
    """``x`` as a number of CPUs or GPUs (a float >= 0).

    Raises
    ------
    ValueError
        Not a number >= 0 (bools refused).
    """
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not x >= 0:
        raise ValueError(f"{name}: expected a number >= 0, got {x!r}")
    return float(x)


@dataclass(frozen=True, kw_only=True)
class Executor(ABC):
    """Who runs an engine's tasks: the protocol of :class:`LocalExecutor`,
    :class:`ThreadExecutor` and :class:`RayExecutor`.

    The settings below are shared by every executor; each engine reads the ones that
    concern it.

    Parameters
    ----------
    cpus_per_task, gpus_per_task : float, default 1 and 0
        Resources one task reserves (Ray schedules by them; in-process executors run
        every task in this process and only check that a GPU is there when asked).
        An engine may ask for other amounts per call (``gpus_per_task=`` of the LM
        functions).
    runs_per_task : int, optional
        Training and store scans: runs one task trains (as one ensemble) or reads.
    shards_per_task : int, default 1
        Corpus counting: shards one task counts.
    max_retries : int, default 3
        Times a task whose worker died is started again (Ray; a thread cannot lose its
        worker).
    """

    cpus_per_task: float = 1.0
    gpus_per_task: float = 0.0
    runs_per_task: int | None = None
    shards_per_task: int = 1
    max_retries: int = 3

    def __post_init__(self) -> None:
        """Check the shared settings (see the class docstring)."""
        object.__setattr__(self, "cpus_per_task", check_resource(self.cpus_per_task, "cpus_per_task"))
        object.__setattr__(self, "gpus_per_task", check_resource(self.gpus_per_task, "gpus_per_task"))
        object.__setattr__(self, "runs_per_task", check_optional_int(self.runs_per_task, "runs_per_task", 1))
        object.__setattr__(self, "shards_per_task", check_int(self.shards_per_task, "shards_per_task", 1))
        object.__setattr__(self, "max_retries", check_int(self.max_retries, "max_retries", 0))

    # ----------------------------------------------------------------- the protocol

    @property
    def in_process(self) -> bool:
        """Whether the tasks run in this process (and share its memory, its working
        directory and its devices). True for the in-process executors."""
        return True

    @property
    def shares_files(self) -> bool:
        """Whether the tasks see this process's files (a store's directory, corpus
        shards) under the same paths. True for the in-process executors."""
        return True

    def start(self, *, cpus: float | None = None, gpus: float | None = None) -> None:
        """Make the executor ready before any task is split: connect to the cluster and
        refuse a task no worker can run (``cpus`` / ``gpus`` default to the executor's
        ``cpus_per_task`` / ``gpus_per_task``). In-process executors check only that a GPU
        is there when ``gpus > 0``.

        Raises
        ------
        memscore.ClusterError
            The resources of one task are nowhere to be had.
        """
        need = self.gpus_per_task if gpus is None else check_resource(gpus, "gpus_per_task")
        if need > 0 and not _cuda_available():
            raise ClusterError(
                f"a task asks for {need:g} GPU (gpus_per_task), but this process sees no CUDA device; "
                "use gpus_per_task=0 or run on a machine (or Ray cluster) with GPUs"
            )

    def workers(self) -> int:
        """How many tasks run at once (the engines split their work into at least this
        many tasks when they can)."""
        return 1

    def share(self, obj: Any) -> Any:
        """``obj`` as the tasks should receive it: the object itself in process, a
        reference into Ray's object store (sent once, shared by every task) on Ray."""
        return obj

    def check_dir(self, path: str | os.PathLike[str], *, write: bool) -> None:
        """Check that ``path`` is a directory the tasks can read (and write).

        Raises
        ------
        memscore.ClusterError
            The tasks do not see the directory, or cannot write to it.
        """
        why = probe_dir(os.fspath(path), write)
        if why is not None:
            raise ClusterError(why)

    @abstractmethod
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
        """Run ``fn(*args[i])`` for every ``i`` and yield ``(i, result)`` as results
        arrive (in any order: merge by ``i``).

        Parameters
        ----------
        fn : callable
            A top-level, picklable function (a Ray worker imports it by name).
        args : sequence of tuple
            One argument tuple per task.
        units : sequence of float, optional
            Per task, the units the progress bar advances by when it finishes (default 1).
        cpus, gpus : float, optional
            Resources of each task (default: ``cpus_per_task``, ``gpus_per_task``).
        desc, unit : str
            The progress bar's label and unit.
        progress : bool, default False
            Show one progress bar (units done, rate, ETA, retries).

        Yields
        ------
        (int, object)
            The task's index in ``args`` and what ``fn`` returned.

        Raises
        ------
        Exception
            What a task raised; the tasks not finished are cancelled first. Ctrl-C
            (KeyboardInterrupt) cancels them too.
        memscore.ClusterError
            A task's workers died more than ``max_retries`` times.
        """


#: What an ``executor=`` argument may be (resolved by :func:`memscore.executors.as_executor`).
ExecutorLike = Executor | str | None


def probe_dir(path: str, write: bool) -> str | None:
    """Why ``path`` cannot be used as a task's directory (as this process sees it), or
    None. Runs in a worker for a cluster."""
    import socket
    import time

    host = socket.gethostname()
    if not os.path.isdir(path):
        return f"{path} is not a directory on {host}"
    if write:
        probe = os.path.join(path, f".tmp-probe-{os.getpid()}-{time.time_ns()}")
        try:
            with open(probe, "xb"):
                pass
            os.unlink(probe)
        except OSError as exc:
            return f"{path} is not writable on {host} ({exc})"
    return None


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())
