"""Old name of :mod:`memscore.taskgram` (the task-gram study), kept so that existing imports work."""

from __future__ import annotations

from ...taskgram import *  # noqa: F403
from ...taskgram import __all__ as __all__
