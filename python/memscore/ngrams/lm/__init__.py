"""Old name of :mod:`memscore.lm` (causal LMs), kept so that existing imports work."""

from __future__ import annotations

from ...lm import *  # noqa: F403
from ...lm import __all__ as __all__
