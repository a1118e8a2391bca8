"""Pure-Python (lists and loops) versions of memorization and influence.

The "pure Python" benchmark baseline: no numpy inside the loops. Inputs may be numpy
arrays or nested lists; arrays are converted with ``.tolist()`` first.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["influence_pure", "memorization_pure"]


def _rows(x: Any) -> list[list[Any]]:
    rows = x.tolist() if hasattr(x, "tolist") else x
    return [list(row) for row in rows]


def _mean_difference(member: list[bool], values: list[float]) -> float:
    """Mean of ``values`` where ``member`` minus mean where not; NaN if a side is empty."""
    s_in = s_out = 0.0
    n_in = n_out = 0
    for is_in, v in zip(member, values, strict=True):
        if is_in:
            s_in += v
            n_in += 1
        else:
            s_out += v
            n_out += 1
    if n_in == 0 or n_out == 0:
        return math.nan
    return s_in / n_in - s_out / n_out


def memorization_pure(masks: Any, outcomes: Any) -> list[float]:
    """``mem[i] = mean_{r in} outcomes[r][i] - mean_{r out} outcomes[r][i]`` (Feldman & Zhang 2020).

    Parameters
    ----------
    masks
        R rows of N bools.
    outcomes
        R rows of N bools or floats.

    Returns
    -------
    result
        N floats, NaN where no run held example i in or out.
    """
    m, o = _rows(masks), _rows(outcomes)
    runs = len(m)
    n = len(m[0]) if runs else 0
    result = []
    for i in range(n):
        member = [bool(m[r][i]) for r in range(runs)]
        values = [float(o[r][i]) for r in range(runs)]
        result.append(_mean_difference(member, values))
    return result


def influence_pure(masks: Any, outcomes_test: Any) -> list[list[float]]:
    """``infl[j][i] = mean_{r: masks[r][i]} O[r][j] - mean_{r: not masks[r][i]} O[r][j]``.

    Parameters
    ----------
    masks
        R rows of N bools.
    outcomes_test
        R rows of T bools or floats.

    Returns
    -------
    result
        T lists of N floats, NaN where no run held training example i in or out.
    """
    m, o = _rows(masks), _rows(outcomes_test)
    runs = len(m)
    n = len(m[0]) if runs else 0
    t = len(o[0]) if runs else 0
    result = []
    for j in range(t):
        values = [float(o[r][j]) for r in range(runs)]
        row = []
        for i in range(n):
            member = [bool(m[r][i]) for r in range(runs)]
            row.append(_mean_difference(member, values))
        result.append(row)
    return result
