"""Scatter plots of task-gram vs LM log-probabilities (matplotlib, imported lazily)."""

from __future__ import annotations

import math
import os

import numpy as np
import polars as pl

from ..._io import atomic_write
from .metrics import distributional_memorization

__all__ = ["plot_taskgram"]


def plot_taskgram(
    scores: pl.DataFrame,
    path: str | os.PathLike[str],
    *,
    task: str = "task",
    model: str | None = "model",
    tg: str = "logp_tg",
    lm: str = "logp_lm",
    dpi: int = 110,
) -> str:
    """Save a PNG with one panel per task: mean log p_TG (x) vs mean log p_LM (y) per example.

    One colour per model (column ``model``, if present), Spearman ρ in the legend. Uses the
    non-interactive Agg backend.

    Parameters
    ----------
    scores : polars.DataFrame
        One row per example.
    path : str or os.PathLike
        The PNG to write.
    task, model, tg, lm : str
        Column names (``model=None``: one colour).
    dpi : int, default 110
        Resolution.

    Returns
    -------
    str
        ``path``.

    Raises
    ------
    ImportError
        matplotlib is not installed (``pip install "memscore[plot]"``).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover
        raise ImportError('plot_taskgram needs matplotlib: pip install "memscore[plot]"') from e
    for c in (task, tg, lm):
        if c not in scores.columns:
            raise ValueError(f"scores: expected column {c!r}, got {scores.columns}")
    tasks = scores[task].unique(maintain_order=True).to_list()
    has_model = model is not None and model in scores.columns
    models = scores[model].unique(maintain_order=True).to_list() if has_model and model is not None else [None]
    cols = min(len(tasks), 3) or 1
    rows = max(1, math.ceil(len(tasks) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.8 * cols, 4.2 * rows), squeeze=False)
    for ax, t in zip(axes.flat, tasks, strict=False):
        sub = scores.filter(pl.col(task) == t)
        for m in models:
            part = sub if m is None else sub.filter(pl.col(model) == m)  # type: ignore[arg-type]
            x = part[tg].to_numpy().astype(float)
            y = part[lm].to_numpy().astype(float)
            ok = np.isfinite(x) & np.isfinite(y)
            rho = distributional_memorization(x, y).statistic
            label = f"{m if m is not None else 'LM'} (ρ={rho:.2f}, n={int(ok.sum())})"
            ax.scatter(x[ok], y[ok], s=9, alpha=0.45, label=label)
        ax.set_title(str(t))
        ax.set_xlabel("mean log p_TG(y|x)  (task-gram LM)")
        ax.set_ylabel("mean log p_LM(y|x)  (language model)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    for ax in list(axes.flat)[len(tasks) :]:
        ax.axis("off")
    fig.suptitle("Distributional memorization: task-gram vs LM log-probability per example")
    fig.tight_layout()
    out = os.fspath(path)
    fmt = os.path.splitext(out)[1].lstrip(".").lower() or "png"
    try:
        atomic_write(out, lambda f: fig.savefig(f, dpi=dpi, format=fmt))
    finally:
        plt.close(fig)
    return out
