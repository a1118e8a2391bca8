"""Reference implementations of memscore's kernels, written for clarity from the papers.

``scores`` holds vectorized numpy versions (the "numpy reference" benchmark baseline and
the yardstick for tests against the Rust core); ``pure`` holds pure-Python loops (the
"pure Python" baseline). Nothing here imports the compiled module.
"""

from __future__ import annotations

from . import audit, distillation, knn, rmia, valuation
from .pure import influence_pure, memorization_pure
from .scores import (
    FPR_LEVELS,
    SIGMA_FLOOR,
    holdout_accuracy,
    influence,
    influence_topk,
    lira,
    logit_confidence,
    membership_metrics,
    memorization,
)

__all__ = [
    "FPR_LEVELS",
    "SIGMA_FLOOR",
    "holdout_accuracy",
    "influence",
    "influence_pure",
    "influence_topk",
    "audit",
    "distillation",
    "knn",
    "rmia",
    "valuation",
    "lira",
    "logit_confidence",
    "membership_metrics",
    "memorization",
    "memorization_pure",
]
