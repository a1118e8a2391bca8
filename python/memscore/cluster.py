"""Old home of :class:`RayExecutor` and :class:`ClusterError`, kept so that existing imports
work; the executors live in :mod:`memscore.executors`."""

from __future__ import annotations

from .errors import ClusterError
from .executors.ray import RayExecutor, import_ray

__all__ = ["ClusterError", "RayExecutor", "import_ray"]
