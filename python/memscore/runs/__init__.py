"""The runs engine: per-example scores across many training runs on random subsets.

- :mod:`~memscore.runs.scores`: array-level memorization, influence, hold-out accuracy;
- :mod:`~memscore.runs.membership`: LiRA and the metrics of a membership attack;
- :mod:`~memscore.runs.outcomes`: φ and snapshot outcomes from logits;
- :mod:`~memscore.runs.bits`: :class:`PackedBits`, masks at one bit per run and example;
- :mod:`~memscore.runs.store`: the on-disk run store and its streamed scores;
- :mod:`~memscore.runs.proxies`: disagreement, proxy tables and trajectories;
- :mod:`~memscore.train`: the training driver (torch);
- :mod:`~memscore.runs.datasets`: the embedded datasets;
- :mod:`~memscore.runs.report`: score tables and the HTML report;
- :mod:`~memscore.runs.valuation`: data valuation (Banzhaf, Data-OOB) from the same runs;
- :mod:`~memscore.runs.rmia`: RMIA membership scores;
- :mod:`~memscore.runs.label_issues`: every detector's ranking of likely wrong labels.
- :mod:`~memscore.runs.datamodels`, :mod:`~memscore.runs.lds`: datamodels and the linear datamodeling score.
- :mod:`~memscore.runs.distillation`: what distillation does to each example (memorization,
  confidence, membership) against runs trained on the labels.
"""

from __future__ import annotations

from .._stats import spearman
from .bits import PackedBits
from .datamodels import ConvergenceWarning, Datamodels, datamodels
from .distillation import DistillationEffect, distillation_effect
from .label_issues import LABEL_ISSUE_METHODS, label_issues
from .lds import LDS, lds
from .membership import MembershipMetrics, lira, membership_metrics
from .outcomes import logit_confidence, snapshot_outcomes
from .proxies import Disagreement, disagreement, proxy_table, trajectories
from .rmia import rmia, true_class_probability
from .scores import OutcomeStats, holdout_accuracy, influence, memorization
from .store import RunStore
from .valuation import banzhaf, data_oob, run_utility

__all__ = [
    "Disagreement",
    "MembershipMetrics",
    "OutcomeStats",
    "PackedBits",
    "RunStore",
    "disagreement",
    "holdout_accuracy",
    "influence",
    "lira",
    "logit_confidence",
    "membership_metrics",
    "memorization",
    "proxy_table",
    "snapshot_outcomes",
    "spearman",
    "trajectories",
    "banzhaf",
    "run_utility",
    "rmia",
    "true_class_probability",
    "LABEL_ISSUE_METHODS",
    "label_issues",
    "ConvergenceWarning",
    "Datamodels",
    "datamodels",
    "LDS",
    "lds",
    "data_oob",
    "DistillationEffect",
    "distillation_effect",
]
