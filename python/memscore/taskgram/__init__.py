"""Short name of :mod:`memscore.ngrams.taskgram` (the task-gram study); both spellings stay."""

from __future__ import annotations

from ..ngrams.taskgram import *  # noqa: F403
from ..ngrams.taskgram import __all__ as __all__
