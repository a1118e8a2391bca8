"""Short name of :mod:`memscore.runs.train` (the training driver); both spellings stay."""

from __future__ import annotations

from ..runs.train import *  # noqa: F403
from ..runs.train import __all__ as __all__
