"""Privacy audits that end in an ε: lower bounds on the ε of differential privacy.

- :mod:`~memscore.audit.bounds`: :func:`epsilon_lower_bound` from many trials of a
  membership test (a fixed threshold, a split, or a Bonferroni grid; Clopper–Pearson or
  Gaussian DP), returning an :class:`AuditResult`;
- :mod:`~memscore.audit.gdp`: Gaussian DP (μ from error rates, ε at δ from μ);
- :mod:`~memscore.audit.one_run`: :func:`one_run_epsilon`, the audit from one training
  run (Steinke, Nasr & Jagielski 2023);
- :mod:`~memscore.audit.canaries`: :func:`canaries`, the examples such an audit scores;
- :mod:`~memscore.audit.per_example`: :func:`per_example_epsilon`, one bound per example
  from the runs of a store (``RunStore.epsilon``).

What each bound assumes is in docs/audit.md. scipy is needed (``pip install 'memscore[audit]'``).
"""

from __future__ import annotations

from .bounds import AuditResult, clopper_pearson_upper, epsilon_from_rates, epsilon_lower_bound
from .canaries import Canaries, canaries
from .gdp import gdp_delta, gdp_epsilon, gdp_mu
from .one_run import OneRunResult, one_run_epsilon, one_run_pvalue
from .per_example import per_example_epsilon

__all__ = [
    "AuditResult",
    "Canaries",
    "OneRunResult",
    "canaries",
    "clopper_pearson_upper",
    "epsilon_from_rates",
    "epsilon_lower_bound",
    "gdp_delta",
    "gdp_epsilon",
    "gdp_mu",
    "one_run_epsilon",
    "one_run_pvalue",
    "per_example_epsilon",
]
