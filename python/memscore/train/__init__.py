"""The training driver: many small models on random subsets, trained at once, recorded in a
:class:`~memscore.RunStore` (``plan.py``: which run sees which examples; ``config.py``: the
settings; ``models.py``: models and per-run randomness; ``ensemble.py``: many models as one;
``fit.py``: one ensemble's training; ``checks.py``: the checks before any run trains;
``tasks.py``: the tasks an executor runs; ``inputs.py``: the data; ``driver.py``:
:func:`train_runs`). :class:`SubsetPlan` needs only numpy; everything else needs
torch (``pip install 'memscore[train]'``).
"""

from __future__ import annotations

from .config import TrainConfig
from .distill import Distillation
from .driver import MAX_INFERRED_CLASSES, create_store, train_runs
from .ensemble import snapshot_outcomes_torch
from .inputs import DatasetSplit
from .models import mlp
from .plan import SubsetPlan

__all__ = [
    "MAX_INFERRED_CLASSES",
    "DatasetSplit",
    "Distillation",
    "SubsetPlan",
    "TrainConfig",
    "create_store",
    "mlp",
    "snapshot_outcomes_torch",
    "train_runs",
]
