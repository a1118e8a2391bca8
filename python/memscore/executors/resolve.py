"""The one function that resolves every ``executor=`` argument."""

from __future__ import annotations

from .base import EXECUTOR_CHOICES, Executor
from .local import LocalExecutor, ThreadExecutor
from .ray import RayExecutor

__all__ = ["as_executor"]


def as_executor(executor: object) -> Executor:
    """The executor an ``executor=`` argument names.

    Parameters
    ----------
    executor : None, str or Executor
        ``None`` or ``"local"``: :class:`LocalExecutor` (tasks one after another in this
        process). ``"threads"``: :class:`ThreadExecutor` with one thread per CPU;
        ``"threads:N"``: N threads. ``"ray"``: :class:`RayExecutor` (the running Ray
        session, the cluster of ``RAY_ADDRESS``, or a new local one);
        ``"ray://host:port"``: that cluster through Ray Client; ``"ray:ADDRESS"``: the
        :class:`RayExecutor` of that ``address`` (``ray:auto``, ``ray:local``,
        ``ray:host:6379``). An instance is returned as it is.

    Returns
    -------
    Executor

    Raises
    ------
    TypeError
        Anything else; the message lists the choices.

    Examples
    --------
    >>> as_executor(None)
    LocalExecutor(cpus_per_task=1.0, gpus_per_task=0.0, runs_per_task=None, shards_per_task=1, max_retries=3)
    >>> as_executor("threads:2").n
    2
    >>> as_executor("ray://head:10001").address
    'ray://head:10001'
    >>> as_executor(3)
    Traceback (most recent call last):
    ...
    TypeError: executor: expected None or 'local' (this process), ...
    """
    if isinstance(executor, Executor):
        return executor
    if executor is None or executor == "local":
        return LocalExecutor()
    note = ""
    if isinstance(executor, str):
        if executor == "threads":
            return ThreadExecutor()
        if executor.startswith("threads:"):
            n = executor[len("threads:") :]
            if n.isdigit() and int(n) >= 1:
                return ThreadExecutor(int(n))
            note = " (N of 'threads:N' must be an integer >= 1)"
        if executor == "ray":
            return RayExecutor()
        if executor.startswith("ray://") and len(executor) > len("ray://"):
            return RayExecutor(address=executor)
        if executor.startswith("ray:") and len(executor) > len("ray:"):
            return RayExecutor(address=executor[len("ray:") :])
    got = repr(executor) if isinstance(executor, str) else f"{type(executor).__name__} {executor!r}"
    raise TypeError(f"executor: expected {EXECUTOR_CHOICES}; got {got}{note}")
