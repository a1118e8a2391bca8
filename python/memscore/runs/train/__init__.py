"""Old name of :mod:`memscore.train` (the training driver), kept so that existing imports work."""

from __future__ import annotations

from ...train import *  # noqa: F403
from ...train import __all__ as __all__
