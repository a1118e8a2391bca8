"""The training driver: many small models on random subsets, trained at once, recorded in a
:class:`~memscore.RunStore`. :class:`SubsetPlan` needs only numpy; everything else needs
torch (``pip install 'memscore[train]'``).
"""

from __future__ import annotations

from .driver import TrainConfig, create_store, mlp, snapshot_outcomes_torch, train_runs
from .plan import SubsetPlan

__all__ = ["SubsetPlan", "TrainConfig", "create_store", "mlp", "snapshot_outcomes_torch", "train_runs"]
