"""Short name of :mod:`memscore.ngrams.lm` (causal LMs: loading, scoring, extractable memorization)."""

from __future__ import annotations

from ..ngrams.lm import *  # noqa: F403
from ..ngrams.lm import __all__ as __all__
