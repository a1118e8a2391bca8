"""Short name of :mod:`memscore.runs.train` (the training driver); both spellings stay."""

from __future__ import annotations

from ..runs.train import (
    SubsetPlan,
    TrainConfig,
    create_store,
    mlp,
    snapshot_outcomes_torch,
    train_runs,
)

__all__ = ["SubsetPlan", "TrainConfig", "create_store", "mlp", "snapshot_outcomes_torch", "train_runs"]
