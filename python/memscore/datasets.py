"""Short name of :mod:`memscore.runs.datasets` (the embedded datasets); both spellings stay."""

from __future__ import annotations

from .runs.datasets import *  # noqa: F403
from .runs.datasets import __all__ as __all__
