"""Scatter plots of task-gram vs LM log-probabilities (matplotlib, imported lazily)."""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import polars as pl

from .._html import el, img, write_page
from .._io import dump_json
from .._plot import REPORT_CSS, save_figure, table_html
from .metrics import distributional_memorization

__all__ = ["plot_taskgram", "plot_trend", "write_taskgram_html"]


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
    return save_figure(fig, path, dpi=dpi)


def plot_trend(trend: pl.DataFrame, path: str | os.PathLike[str], *, dpi: int = 110) -> str:
    """Save a PNG of distributional memorization (Spearman ρ) and generalization (Kendall-τ
    distance) against model size (parameters, log axis), one line per task.

    Parameters
    ----------
    trend : polars.DataFrame
        From :func:`~memscore.taskgram.pipeline.size_trend`.
    path : str or os.PathLike
        The image to write.
    dpi : int, default 110

    Returns
    -------
    str
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for (t,), g in trend.group_by("task", maintain_order=True):
        x = g["n_params"].to_numpy().astype(float)
        axes[0].plot(x, g["memorization_rho"].to_numpy(), marker="o", label=str(t))
        axes[1].plot(x, g["generalization_tau_dist"].to_numpy(), marker="o", label=str(t))
    for ax, what in zip(axes, ("memorization: Spearman ρ", "generalization: Kendall-τ distance"), strict=True):
        ax.set_xscale("log")
        ax.set_xlabel("model parameters")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save_figure(fig, path, dpi=dpi)


def write_taskgram_html(
    path: str | os.PathLike[str],
    summary: pl.DataFrame,
    trend: pl.DataFrame,
    scatter: str | None,
    trend_png: str | None,
    config: dict[str, Any],
) -> str:
    """Write the study's HTML page (the ``memscore report`` style): the paper's table per
    task and model, the size trend, the scatter and trend plots (linked by file name, so
    the page lives next to them) and the settings.

    Parameters
    ----------
    path : str or os.PathLike
        The HTML file.
    summary, trend : polars.DataFrame
        :attr:`PipelineResult.summary` and :func:`size_trend`'s table.
    scatter, trend_png : str, optional
        Image paths in the same folder (plain generated file names: see
        :func:`memscore._html.img`).
    config : dict
        The settings, shown as JSON.

    Returns
    -------
    str
        ``path``.
    """
    from pathlib import Path

    parts = [
        el("h1", "Task-gram study"),
        el("h2", "Distributional memorization and generalization per task and model"),
        el(
            "p",
            "Spearman ρ (p) of per-example mean log p_TG vs log p_LM: distributional memorization; "
            "Kendall-τ distance (p): distributional generalization; n: examples with finite scores.",
        ),
        table_html(summary),
        el("h2", "Trend across model sizes"),
        table_html(trend),
    ]
    for name, alt in ((trend_png, "trend across model sizes"), (scatter, "task-gram vs LM log-probability")):
        if name is not None:
            parts.append(img(Path(name).name, alt))
    parts.append(el("h2", "Settings"))
    parts.append(el("pre", dump_json(config, default=str).decode("utf-8")))
    out = os.fspath(path)
    write_page(out, "memscore task-gram", parts, REPORT_CSS)
    return out
