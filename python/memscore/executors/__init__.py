"""The one execution seam: who runs an engine's tasks.

Every heavy engine states its work as *split → task → merge* and hands the tasks to an
executor, picked by the ``executor=`` argument (:func:`as_executor`):

- :class:`LocalExecutor` (``None`` / ``"local"``, the default): in this process, in order;
- :class:`ThreadExecutor` (``"threads"`` / ``"threads:N"``): on N threads of this process;
- :class:`RayExecutor` (``"ray"`` / ``"ray://host:port"``): on a Ray cluster, with per-task
  CPUs and GPUs, lost workers retried, Ctrl-C cancelling.

The local path runs the same task function a Ray worker runs, so the results are identical
whichever executor runs them. Only :mod:`memscore.executors.ray` imports ray.
"""

from __future__ import annotations

from ..errors import ClusterError
from .base import Executor, ExecutorLike
from .local import LocalExecutor, ThreadExecutor
from .ray import RayExecutor
from .resolve import as_executor

__all__ = ["ClusterError", "Executor", "ExecutorLike", "LocalExecutor", "RayExecutor", "ThreadExecutor", "as_executor"]
