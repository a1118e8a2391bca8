"""Short name of :mod:`memscore.train.architectures` (the papers' networks) and the MLP."""

from __future__ import annotations

from .train.architectures import *  # noqa: F403
from .train.architectures import __all__ as _arch
from .train.models import mlp

__all__ = [*_arch, "mlp"]
