"""Short name of :mod:`memscore.runs.train.architectures` (the papers' networks) and the MLP."""

from __future__ import annotations

from .runs.train.architectures import *  # noqa: F403
from .runs.train.architectures import __all__ as _arch
from .runs.train.models import mlp

__all__ = [*_arch, "mlp"]
