"""The run store: masks and outcomes of many training runs on disk, in open formats."""

from __future__ import annotations

from .store import RunStore

__all__ = ["RunStore"]
