"""Running memscore's engines on a Ray cluster: the connection, the checks made before any
task starts, and the task loop (retries of lost workers, cancellation, progress).

:class:`RayExecutor` says where and how: the cluster address, the resources of one task,
how many runs or shards one task takes, the storage mode of training. The engines take it
as ``executor=`` (:func:`memscore.train.train_runs`, :func:`memscore.ngrams.ngram_stats`,
the run store's ``memorization``, ``holdout_accuracy``, ``scores``, ``influence`` with
``top_k`` and ``influence_pairs``) and hand their tasks to :func:`run_tasks`.

Faults: every task runs with Ray's own retries off (``max_retries=0``) and this module
resubmits a task whose worker died (process killed, node lost, spot instance preempted)
up to ``max_retries`` times, so it can count them for the progress bar. A task that raises
an ordinary exception is not retried: the other tasks are cancelled and the exception is
raised in the driver. The engines make a retried task harmless: a task's results are
published atomically under keys that name them (run ids, partial names), and a task that
starts again skips what is already there.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ._validate import check_choice, check_int, check_optional_int
from .errors import MemscoreError

__all__ = ["ClusterError", "RayExecutor", "import_ray", "run_tasks"]

RAY_EXTRA = 'pip install "memscore[ray]"'


class ClusterError(MemscoreError):
    """The Ray cluster cannot run the work: no answer at the address, resources it does not
    have, a path its workers cannot see, or a task whose workers kept dying."""


def import_ray() -> Any:
    """The ``ray`` module, or an ImportError that names the extra to install."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError(f"running on a Ray cluster needs ray: {RAY_EXTRA}") from exc
    return ray


def _number(x: Any, name: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not x >= 0:
        raise ValueError(f"{name}: expected a number >= 0, got {x!r}")
    return float(x)


@dataclass(frozen=True)
class RayExecutor:
    """Where and how to run memscore's work on Ray.

    Parameters
    ----------
    address : str, optional
        ``None`` (default): the running Ray session if this process has one, else
        ``ray.init()`` (joins the cluster named by ``RAY_ADDRESS`` or starts a local one).
        ``"auto"``: an existing cluster on this machine (``ray start --head``), an error
        if none runs. A process already connected to Ray keeps its session whatever the
        address (a ``host:port`` address is still checked to answer). ``"local"``: a new one-machine cluster. ``"host:port"`` (the head's
        GCS port, 6379 by default) or ``"ray://host:10001"`` (Ray Client): that cluster.
    cpus_per_task, gpus_per_task : float, default 1 and 0
        Resources each task reserves (``num_cpus`` / ``num_gpus`` of the task).
    runs_per_task : int, optional
        Training: runs one task trains as one ensemble (default: ``ensemble``).
    shards_per_task : int, default 1
        Corpus counting: shards one task counts (more for many small shards).
    storage : {"shared", "object"}, default "shared"
        Training: ``"shared"`` when every worker sees the store's directory (NFS, Lustre,
        or the local disk of a one-node cluster): workers write their runs into it.
        ``"object"`` when they do not: workers return each run through Ray's object
        store and the driver writes it.
    max_retries : int, default 3
        Times a task is started again after its worker died.
    runtime_env : dict, optional
        Ray runtime environment of the tasks (``pip``, ``env_vars``, ``working_dir``...).
    num_cpus : int, optional
        CPUs of a cluster this executor starts (``address`` None or ``"local"``).
    connect_timeout_s : float, default 10
        Seconds to wait for a ``host:port`` address to answer.

    Raises
    ------
    ValueError, TypeError
        A value out of range or of the wrong type.

    Examples
    --------
    >>> RayExecutor(address="auto", gpus_per_task=1, runs_per_task=64)  # doctest: +ELLIPSIS
    RayExecutor(address='auto', cpus_per_task=1.0, gpus_per_task=1.0, runs_per_task=64, ...)
    """

    address: str | None = None
    cpus_per_task: float = 1.0
    gpus_per_task: float = 0.0
    runs_per_task: int | None = None
    shards_per_task: int = 1
    storage: Literal["shared", "object"] = "shared"
    max_retries: int = 3
    runtime_env: dict[str, Any] | None = field(default=None, repr=False)
    num_cpus: int | None = None
    connect_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        """Check every setting (see the class docstring)."""
        if self.address is not None and (not isinstance(self.address, str) or not self.address):
            raise TypeError(f"address: expected None, 'auto', 'local' or 'host:port', got {self.address!r}")
        object.__setattr__(self, "cpus_per_task", _number(self.cpus_per_task, "cpus_per_task"))
        object.__setattr__(self, "gpus_per_task", _number(self.gpus_per_task, "gpus_per_task"))
        object.__setattr__(self, "runs_per_task", check_optional_int(self.runs_per_task, "runs_per_task", 1))
        object.__setattr__(self, "shards_per_task", check_int(self.shards_per_task, "shards_per_task", 1))
        check_choice(self.storage, "storage", ["object", "shared"])
        object.__setattr__(self, "max_retries", check_int(self.max_retries, "max_retries", 0))
        object.__setattr__(self, "num_cpus", check_optional_int(self.num_cpus, "num_cpus", 1))
        object.__setattr__(self, "connect_timeout_s", _number(self.connect_timeout_s, "connect_timeout_s"))
        if self.runtime_env is not None and not isinstance(self.runtime_env, dict):
            raise TypeError(f"runtime_env: expected a dict, got {type(self.runtime_env).__name__}")

    # ------------------------------------------------------------------ connection

    def connect(self) -> Any:
        """Connect to (or start) the cluster and return the ``ray`` module.

        Raises
        ------
        ImportError
            ray is not installed (the message names the extra).
        ClusterError
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

    def check_resources(self, ray: Any) -> None:
        """Refuse tasks no node of the cluster can run (``gpus_per_task=1`` on CPU-only
        nodes, more CPUs than a node has).

        Raises
        ------
        ClusterError
            No alive node has the resources of one task.
        """
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        need = {"CPU": self.cpus_per_task, "GPU": self.gpus_per_task}
        if any(all(res.get(k, 0.0) >= v for k, v in need.items()) for res in nodes):
            return
        have = ", ".join(f"{res.get('CPU', 0):g} CPU / {res.get('GPU', 0):g} GPU" for res in nodes) or "no alive node"
        raise ClusterError(
            f"a task asks for {self.cpus_per_task:g} CPU and {self.gpus_per_task:g} GPU (cpus_per_task, "
            f"gpus_per_task), but no node of the cluster has that: nodes have {have}"
        )

    def remote(self, fn: Callable[..., Any], **options: Any) -> Any:
        """``fn`` as a Ray remote function with this executor's task resources."""
        ray = import_ray()
        opts: dict[str, Any] = {"num_cpus": self.cpus_per_task, "num_gpus": self.gpus_per_task, "max_retries": 0}
        if self.runtime_env is not None:
            opts["runtime_env"] = self.runtime_env
        return ray.remote(fn).options(**(opts | options))


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


def _probe_path(path: str, write: bool) -> str | None:
    """Runs in a worker: why ``path`` cannot be used there, or None."""
    if not os.path.isdir(path):
        return f"{path} is not a directory on worker node {socket.gethostname()}"
    if write:
        probe = os.path.join(path, f".tmp-probe-{os.getpid()}-{time.time_ns()}")
        try:
            with open(probe, "xb"):
                pass
            os.unlink(probe)
        except OSError as exc:
            return f"{path} is not writable from worker node {socket.gethostname()} ({exc})"
    return None


def check_path_from_worker(executor: RayExecutor, path: str | os.PathLike[str], *, write: bool) -> None:
    """Check from one worker that ``path`` is a directory there (and writable).

    Raises
    ------
    ClusterError
        The worker does not see the directory, or cannot write to it.
    """
    ray = import_ray()
    why = ray.get(executor.remote(_probe_path, num_gpus=0, num_cpus=0).remote(os.fspath(path), write))
    if why is not None:
        raise ClusterError(
            f"storage='shared' needs the store on a file system every worker sees: {why}; "
            "put it on a shared file system (NFS, Lustre) or use storage='object'"
        )


# ----------------------------------------------------------------------------- the task loop


class _Bar:
    """A tqdm bar over the whole cluster: units done, rate per minute, ETA, and the tasks
    that failed (worker died) and were retried."""

    def __init__(self, total: float, unit: str, desc: str, enabled: bool) -> None:
        self.bar: Any = None
        self.t0 = time.perf_counter()
        self.unit = unit
        if enabled and total:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit=unit, desc=desc, dynamic_ncols=True)

    def update(self, done: float, failed: int, retried: int) -> None:
        if self.bar is None:
            return
        self.bar.update(done)
        rate = self.bar.n / max(time.perf_counter() - self.t0, 1e-9) * 60
        self.bar.set_postfix_str(f"{rate:.1f} {self.unit}/min, failed {failed}, retried {retried}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _system_errors(ray: Any) -> tuple[type[BaseException], ...]:
    """Ray's errors for a lost worker, node or result: the task can simply run again."""
    ex = ray.exceptions
    names = ("WorkerCrashedError", "NodeDiedError", "ObjectLostError", "OwnerDiedError", "LocalRayletDiedError")
    return tuple(getattr(ex, n) for n in names if hasattr(ex, n))


def run_tasks(
    executor: RayExecutor,
    fn: Callable[..., Any],
    args: Sequence[tuple[Any, ...]],
    on_result: Callable[[int, Any], float],
    *,
    total: float,
    unit: str,
    desc: str,
    progress: bool,
) -> None:
    """Run ``fn(*args[i])`` as one Ray task per ``i`` and hand each result to
    ``on_result(i, result)`` (which returns the units it completed, for the bar).

    Tasks whose worker died are started again (at most ``executor.max_retries`` times
    each); a task raising an exception cancels the others and the exception is raised
    here; Ctrl-C (KeyboardInterrupt) cancels every task still running and is raised
    again.

    Raises
    ------
    ClusterError
        A task's workers died more than ``max_retries`` times.
    Exception
        What a task raised.
    """
    ray = import_ray()
    remote = executor.remote(fn)
    lost = _system_errors(ray)
    attempts = [0] * len(args)
    pending: dict[Any, int] = {remote.remote(*a): i for i, a in enumerate(args)}
    bar = _Bar(total, unit, desc, progress)
    failed = retried = 0
    try:
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
                    if attempts[i] >= executor.max_retries:
                        raise ClusterError(
                            f"{desc}: task {i} lost its worker {attempts[i] + 1} times (max_retries = "
                            f"{executor.max_retries}); last: {type(exc).__name__}: {exc}"
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
                bar.update(on_result(i, value), failed, retried)
    except BaseException:
        # Cancel only the tasks still running: cancelling one whose result is arriving can
        # hit a race in Ray's core worker that aborts this process (ray-project/ray#54846,
        # seen here in the Ctrl-C test); finished ones need no cancel.
        refs = list(pending)
        running = ray.wait(refs, num_returns=len(refs), timeout=0)[1] if refs else []
        for ref in running:
            ray.cancel(ref)
        raise
    finally:
        bar.close()
