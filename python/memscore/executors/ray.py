"""Running memscore's tasks on a Ray cluster: the connection, the checks made before any
task starts, and the task loop (retries of lost workers, cancellation, progress).

This is the only module of memscore that imports ``ray`` (inside its functions, so that
``import memscore`` works without the ``ray`` extra).

Faults: every task runs with Ray's own retries off (``max_retries=0``) and the loop
resubmits a task whose worker died (process killed, node lost, spot instance preempted) up
to ``max_retries`` times, so that it can count them on the progress bar. A task that
raises an ordinary exception is not retried: the other tasks are cancelled and the
exception is raised in the driver. The engines make a retried task harmless: a task's
results are published atomically under names that identify them (run ids, partial names,
target blocks), and a task that starts again overwrites or skips what is already there.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .._progress import ProgressBar
from .._validate import check_choice, check_optional_int
from ..errors import ClusterError
from .base import Executor, check_resource, probe_dir
from .local import _units

__all__ = ["RayExecutor", "import_ray"]

RAY_EXTRA = 'pip install "memscore[ray]"'


def import_ray() -> Any:
    """The ``ray`` module, or an ImportError that names the extra to install."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError(f"running on a Ray cluster needs ray: {RAY_EXTRA}") from exc
    return ray


@dataclass(frozen=True)
class RayExecutor(Executor):
    """Run the tasks on a Ray cluster.

    Parameters
    ----------
    address : str, optional
        ``None`` (default): the running Ray session if this process has one, else
        ``ray.init()`` (joins the cluster named by ``RAY_ADDRESS`` or starts a local one).
        ``"auto"``: an existing cluster on this machine (``ray start --head``), an error
        if none runs. ``"local"``: a new one-machine cluster. ``"host:port"`` (the head's
        GCS port, 6379 by default) or ``"ray://host:10001"`` (Ray Client): that cluster.
        A process already connected to Ray keeps its session whatever the address (a
        ``host:port`` address is still checked to answer).
    storage : {"shared", "object"}, default "shared"
        ``"shared"`` when every worker sees the store's directory (NFS, Lustre, or the
        local disk of a one-node cluster): workers read and write it. ``"object"`` when
        they do not: training workers return each run through Ray's object store and the
        driver writes it.
    runtime_env : dict, optional
        Ray runtime environment of the tasks (``pip``, ``env_vars``, ``working_dir``...).
    num_cpus : int, optional
        CPUs of a cluster this executor starts (``address`` None or ``"local"``).
    connect_timeout_s : float, default 10
        Seconds to wait for a ``host:port`` address to answer.
    **settings
        Those of :class:`~memscore.executors.Executor` (``cpus_per_task``,
        ``gpus_per_task``, ``runs_per_task``, ``shards_per_task``, ``max_retries``), by
        keyword.

    Raises
    ------
    ValueError, TypeError
        A value out of range or of the wrong type.

    Examples
    --------
    >>> RayExecutor(address="auto", gpus_per_task=1, runs_per_task=64)  # doctest: +ELLIPSIS
    RayExecutor(cpus_per_task=1.0, gpus_per_task=1.0, runs_per_task=64, ..., address='auto', ...)
    """

    address: str | None = None
    storage: Literal["shared", "object"] = "shared"
    runtime_env: dict[str, Any] | None = field(default=None, repr=False)
    num_cpus: int | None = None
    connect_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        """Check every setting (see the class docstring)."""
        super().__post_init__()
        if self.address is not None and (not isinstance(self.address, str) or not self.address):
            raise TypeError(f"address: expected None, 'auto', 'local' or 'host:port', got {self.address!r}")
        check_choice(self.storage, "storage", ["object", "shared"])
        object.__setattr__(self, "num_cpus", check_optional_int(self.num_cpus, "num_cpus", 1))
        object.__setattr__(self, "connect_timeout_s", check_resource(self.connect_timeout_s, "connect_timeout_s"))
        if self.runtime_env is not None and not isinstance(self.runtime_env, dict):
            raise TypeError(f"runtime_env: expected a dict, got {type(self.runtime_env).__name__}")

    # ------------------------------------------------------------------ connection

    def connect(self) -> Any:
        """Connect to (or start) the cluster and return the ``ray`` module.

        Raises
        ------
        ImportError
            ray is not installed (the message names the extra).
        memscore.ClusterError
            Nothing answers at ``address``.
        """
        ray = import_ray()
        addr = self.address
        if addr is not None and addr not in ("auto", "local") and not addr.startswith("ray://"):
            _check_answers(addr, self.connect_timeout_s)
        if ray.is_initialized():
            return ray
        kwargs: dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": False}
        if addr is None or addr == "local":
            if self.num_cpus is not None:
                kwargs["num_cpus"] = self.num_cpus
            if addr == "local":
                kwargs["address"] = "local"
        else:
            kwargs["address"] = addr
        try:
            ray.init(**kwargs)
        except (ConnectionError, TimeoutError, RuntimeError) as exc:
            raise ClusterError(f"cannot connect to the Ray cluster at {addr!r}: {exc}") from exc
        return ray

    def check_resources(self, ray: Any, cpus: float | None = None, gpus: float | None = None) -> None:
        """Refuse tasks no node of the cluster can run (``gpus_per_task=1`` on CPU-only
        nodes, more CPUs than a node has).

        Raises
        ------
        memscore.ClusterError
            No alive node has the resources of one task.
        """
        c = self.cpus_per_task if cpus is None else cpus
        g = self.gpus_per_task if gpus is None else gpus
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        need = {"CPU": c, "GPU": g}
        if any(all(res.get(k, 0.0) >= v for k, v in need.items()) for res in nodes):
            return
        have = ", ".join(f"{res.get('CPU', 0):g} CPU / {res.get('GPU', 0):g} GPU" for res in nodes) or "no alive node"
        raise ClusterError(
            f"a task asks for {c:g} CPU and {g:g} GPU (cpus_per_task, gpus_per_task), but no node of the "
            f"cluster has that: nodes have {have}"
        )

    def remote(self, fn: Callable[..., Any], **options: Any) -> Any:
        """``fn`` as a Ray remote function with this executor's task resources."""
        ray = import_ray()
        opts: dict[str, Any] = {"num_cpus": self.cpus_per_task, "num_gpus": self.gpus_per_task, "max_retries": 0}
        if self.runtime_env is not None:
            opts["runtime_env"] = self.runtime_env
        return ray.remote(fn).options(**(opts | options))

    # ------------------------------------------------------------------ the protocol

    @property
    def in_process(self) -> bool:
        """False: the tasks run in Ray's worker processes, possibly on other machines."""
        return False

    @property
    def shares_files(self) -> bool:
        """``storage == "shared"``: the workers see the driver's files."""
        return self.storage == "shared"

    def start(self, *, cpus: float | None = None, gpus: float | None = None) -> None:
        """Connect and check that some node can run one task (see :meth:`check_resources`)."""
        c = None if cpus is None else check_resource(cpus, "cpus_per_task")
        g = None if gpus is None else check_resource(gpus, "gpus_per_task")
        self.check_resources(self.connect(), c, g)

    def workers(self) -> int:
        """Tasks of ``cpus_per_task`` CPUs that fit the cluster at once."""
        ray = self.connect()
        cpus = float(ray.cluster_resources().get("CPU", 1.0))
        return max(1, int(cpus // max(self.cpus_per_task, 1e-9)))

    def share(self, obj: Any) -> Any:
        """``obj`` put once in Ray's object store (tasks receive the object itself)."""
        return self.connect().put(obj)

    def check_dir(self, path: str | os.PathLike[str], *, write: bool) -> None:
        """Check from one worker that ``path`` is a directory there (and writable).

        Raises
        ------
        memscore.ClusterError
            The worker does not see the directory, or cannot write to it.
        """
        ray = self.connect()
        why = ray.get(self.remote(probe_dir, num_gpus=0, num_cpus=0).remote(os.fspath(path), write))
        if why is not None:
            raise ClusterError(
                f"the tasks need {os.fspath(path)} on a file system every worker sees: {why}; put it on a "
                "shared file system (NFS, Lustre), or (training) use storage='object'"
            )

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
        """See :meth:`Executor.map`: one Ray task per argument tuple, results as they
        arrive; tasks whose worker died are started again (at most ``max_retries`` times
        each)."""
        ray = self.connect()
        opts: dict[str, Any] = {}
        if cpus is not None:
            opts["num_cpus"] = check_resource(cpus, "cpus_per_task")
        if gpus is not None:
            opts["num_gpus"] = check_resource(gpus, "gpus_per_task")
        remote = self.remote(fn, **opts)
        lost = _system_errors(ray)
        weights = _units(units, len(args))
        attempts = [0] * len(args)
        bar = ProgressBar(sum(weights), unit, desc, progress)
        failed = retried = 0
        pending: dict[Any, int] = {}
        try:
            pending = {remote.remote(*a): i for i, a in enumerate(args)}
            while pending:
                refs = list(pending)
                ready, _ = ray.wait(refs, num_returns=1, timeout=0.5)
                if ready:  # then every other result already in, in one call
                    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
                for ref in ready:
                    i = pending.pop(ref)
                    try:
                        value = ray.get(ref)
                    except lost as exc:
                        failed += 1
                        if attempts[i] >= self.max_retries:
                            raise ClusterError(
                                f"{desc}: task {i} lost its worker {attempts[i] + 1} times (max_retries = "
                                f"{self.max_retries}); last: {type(exc).__name__}: {exc}"
                            ) from exc
                        attempts[i] += 1
                        retried += 1
                        pending[remote.remote(*args[i])] = i
                        bar.update(0, failed, retried)
                        continue
                    except ray.exceptions.RayTaskError as exc:
                        cause = exc.cause if isinstance(getattr(exc, "cause", None), Exception) else None
                        if cause is not None:
                            raise cause from None
                        raise
                    bar.update(weights[i], failed, retried)
                    yield i, value
        finally:
            # On an error, Ctrl-C or a caller that stops early: cancel only the tasks
            # still running. Cancelling one whose result is arriving can hit a race in
            # Ray's core worker that aborts this process (ray-project/ray#54846).
            if pending:
                refs = list(pending)
                running = ray.wait(refs, num_returns=len(refs), timeout=0)[1]
                for ref in running:
                    ray.cancel(ref)
            bar.close()


def _check_answers(addr: str, timeout: float) -> None:
    """A quick TCP connect to ``host:port``, so that a wrong address fails in seconds
    instead of in Ray's minute-long connection retries."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"address: expected 'auto', 'local', 'host:port' or 'ray://host:port', got {addr!r}")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ClusterError(
            f"no Ray cluster answers at {addr!r} ({exc}); start one with 'ray start --head' "
            "or pass the head node's address"
        ) from None


def _system_errors(ray: Any) -> tuple[type[BaseException], ...]:
    """Ray's errors for a lost worker, node or result: the task can simply run again."""
    ex = ray.exceptions
    names = ("WorkerCrashedError", "NodeDiedError", "ObjectLostError", "OwnerDiedError", "LocalRayletDiedError")
    return tuple(getattr(ex, n) for n in names if hasattr(ex, n))
