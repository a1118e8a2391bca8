"""Plain reference versions of the reliability formulas (classical test theory).

Written from the definitions, slow and obvious; :mod:`memscore.runs.reliability` is
compared to them by the tests.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["pearson", "spearman_brown", "spearman_brown_runs", "top_k_overlap"]


def spearman_brown(r: float, factor: float) -> float:
    """Reliability of a test lengthened ``factor`` times: ``k r / (1 + (k - 1) r)``."""
    if math.isnan(r):
        return math.nan
    return factor * r / (1 + (factor - 1) * r)


def spearman_brown_runs(r: float, runs: float, target: float) -> float:
    """The length (in runs) at which reliability ``r`` at ``runs`` becomes ``target``:
    ``spearman_brown(r, k) = target`` solved for k, times ``runs``."""
    if math.isnan(r):
        return math.nan
    if r <= 0:
        return math.inf
    if r >= 1:
        return 0.0
    return runs * (target * (1 - r)) / (r * (1 - target))


def pearson(a: Sequence[float], b: Sequence[float]) -> float:
    """Pearson's r over the pairs where both values are finite (NaN under 3 pairs or a
    constant side)."""
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if math.isfinite(x) and math.isfinite(y)]
    if len(pairs) < 3:
        return math.nan
    mx = sum(x for x, _ in pairs) / len(pairs)
    my = sum(y for _, y in pairs) / len(pairs)
    sxy = sum((x - mx) * (y - my) for x, y in pairs)
    sxx = sum((x - mx) ** 2 for x, _ in pairs)
    syy = sum((y - my) ** 2 for _, y in pairs)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else math.nan


def top_k_overlap(a: Sequence[float], b: Sequence[float], k: int, largest: bool = True) -> float:
    """Jaccard overlap of the k top indices of a and b (NaN never in a list; ties toward
    the lower index)."""

    def top(v: Sequence[float]) -> set[int]:
        idx = [i for i, x in enumerate(v) if math.isfinite(x)]
        idx.sort(key=lambda i: (-v[i] if largest else v[i], i))
        return set(idx[:k])

    sa, sb = top(a), top(b)
    if not sa or not sb:
        return math.nan
    return len(sa & sb) / len(sa | sb)
