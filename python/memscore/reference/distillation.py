"""Plain reference versions of :func:`memscore.distillation_effect`'s per-example formulas and
summaries, written as loops from the definitions (for tests; no store, no compiled core).

Conventions: ``masks`` is ``(R, N)`` bool (run r trained on example i), ``outcomes`` ``(R,
N)`` bool or float, ``logits`` ``(R, N, C)``; undefined estimates are NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

__all__ = [
    "confidence_bins",
    "in_run_mean",
    "label_probability",
    "memorization_with_stderr",
    "per_example",
    "trajectory_means",
]


def label_probability(logits: npt.ArrayLike, labels: npt.ArrayLike) -> F64:
    """``softmax(logits[..., i, :])[labels[i]]`` for every leading index, one example at a time.

    Parameters
    ----------
    logits : array-like, shape (..., N, C)
    labels : array-like of int, shape (N,)

    Returns
    -------
    ndarray of float64, shape (..., N)
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels)
    out = np.empty(z.shape[:-1])
    for idx in np.ndindex(*z.shape[:-1]):
        row = [float(v) for v in z[idx]]
        top = max(row)
        total = sum(math.exp(v - top) for v in row)
        out[idx] = math.exp(row[int(y[idx[-1]])] - top) / total
    return out


def memorization_with_stderr(masks: npt.ArrayLike, outcomes: npt.ArrayLike) -> tuple[F64, F64]:
    """Per example ``mean(in) − mean(out)`` and ``sqrt(var_in/n_in + var_out/n_out)`` (ddof = 1).

    Returns
    -------
    (ndarray, ndarray)
        NaN where a side has no run (the estimate) or fewer than two (its standard error).
    """
    m = np.asarray(masks, dtype=bool)
    o = np.asarray(outcomes, dtype=np.float64)
    n = m.shape[1]
    mem, se = np.full(n, np.nan), np.full(n, np.nan)
    for i in range(n):
        ins = [float(o[r, i]) for r in range(m.shape[0]) if m[r, i]]
        outs = [float(o[r, i]) for r in range(m.shape[0]) if not m[r, i]]
        if ins and outs:
            mem[i] = sum(ins) / len(ins) - sum(outs) / len(outs)
        if len(ins) >= 2 and len(outs) >= 2:
            se[i] = math.sqrt(_var(ins) / len(ins) + _var(outs) / len(outs))
    return mem, se


def _var(xs: Sequence[float]) -> float:
    mean = sum(xs) / len(xs)
    return sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)


def in_run_mean(masks: npt.ArrayLike, values: npt.ArrayLike) -> F64:
    """Per example the mean of ``values`` over the runs that trained on it (NaN: none did)."""
    m = np.asarray(masks, dtype=bool)
    v = np.asarray(values, dtype=np.float64)
    out = np.full(m.shape[1], np.nan)
    for i in range(m.shape[1]):
        ins = [float(v[r, i]) for r in range(m.shape[0]) if m[r, i]]
        if ins:
            out[i] = sum(ins) / len(ins)
    return out


def per_example(
    plain: tuple[Any, Any, Any],
    distilled: tuple[Any, Any, Any],
    labels: npt.ArrayLike,
    teacher: tuple[Any, Any] | None = None,
) -> dict[str, F64]:
    """The columns of :attr:`memscore.runs.distillation.DistillationEffect.table`.

    Parameters
    ----------
    plain, distilled : (masks (R, N), outcomes (R, N), train logits (R, N, C))
        One arm's runs.
    labels : array-like of int, shape (N,)
    teacher : (masks (R_t, N), train logits (R_t, N, C)) or (None, logits (N, C)), optional
        The paired teacher runs, or one teacher's logits.

    Returns
    -------
    dict of str to ndarray
        ``mem_plain``, ``mem_distilled``, ``delta``, ``delta_stderr``, ``plain_conf``,
        ``student_conf`` and, with a teacher, ``teacher_conf`` and ``deviation``.
    """
    mem_p, se_p = memorization_with_stderr(plain[0], plain[1])
    mem_d, se_d = memorization_with_stderr(distilled[0], distilled[1])
    out = {
        "mem_plain": mem_p,
        "mem_distilled": mem_d,
        "delta": mem_d - mem_p,
        "delta_stderr": np.array([math.sqrt(a * a + b * b) for a, b in zip(se_p, se_d, strict=True)]),
        "plain_conf": in_run_mean(plain[0], label_probability(plain[2], labels)),
        "student_conf": in_run_mean(distilled[0], label_probability(distilled[2], labels)),
    }
    if teacher is not None:
        t_masks, t_logits = teacher
        probs = label_probability(t_logits, labels)
        out["teacher_conf"] = probs if t_masks is None else in_run_mean(t_masks, probs)
        out["deviation"] = out["student_conf"] - out["teacher_conf"]
    return out


def trajectory_means(
    delta: npt.ArrayLike, trajectory: Sequence[Any], ci: float = 0.95
) -> dict[str, tuple[int, float, float, float]]:
    """``{class: (n, mean, low, high)}`` of the finite deltas per trajectory class and ``"all"``:
    the normal interval ``mean ± z·s/√n`` (s with ddof = 1)."""
    d = [float(x) for x in np.asarray(delta, dtype=np.float64)]
    z = NormalDist().inv_cdf(0.5 + ci / 2.0)
    groups: dict[str, list[float]] = {"all": [x for x in d if math.isfinite(x)]}
    for x, k in zip(d, trajectory, strict=True):
        if k is not None and math.isfinite(x):
            groups.setdefault(str(k), []).append(x)
    out = {}
    for k, xs in groups.items():
        mean = sum(xs) / len(xs) if xs else math.nan
        half = z * math.sqrt(_var(xs)) / math.sqrt(len(xs)) if len(xs) >= 2 else math.nan
        out[k] = (len(xs), mean, mean - half, mean + half)
    return out


def confidence_bins(teacher: npt.ArrayLike, student: npt.ArrayLike, bins: int) -> list[tuple[int, float, float]]:
    """Per equal-width bin of the teacher's confidence on [0, 1] (the last bin closed):
    ``(n, mean teacher, mean student)`` over the examples where both are defined."""
    t = np.asarray(teacher, dtype=np.float64)
    s = np.asarray(student, dtype=np.float64)
    members: list[list[int]] = [[] for _ in range(bins)]
    for i in range(t.size):
        if math.isfinite(t[i]) and math.isfinite(s[i]):
            b = min(int(math.floor(t[i] * bins)), bins - 1)
            members[b].append(i)
    out = []
    for idx in members:
        if not idx:
            out.append((0, math.nan, math.nan))
            continue
        out.append((len(idx), sum(float(t[i]) for i in idx) / len(idx), sum(float(s[i]) for i in idx) / len(idx)))
    return out
