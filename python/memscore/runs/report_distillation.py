"""The run report's "Distillation" section: what a distilled arm did to each example against
the report's runs trained on the labels (:func:`memscore.distillation_effect`).

It shows the arms' test accuracy and membership exposure, the change of memorization per
example and per trajectory class across model sizes (Lukasik et al. 2023's table), the
student's confidence against the teacher's binned by the teacher's (Nagarajan et al. 2023's
plot, train and test), and the examples whose memorization drops most.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from .._html import Markup, el
from .._plot import pyplot, save_figure, table_html
from .distillation import DistillationEffect
from .gallery import ROWS, Thumbnails, example_table, label_value

__all__ = ["distillation_section"]

#: The per-example columns of the drop table, in order (those present are shown).
DROP_COLUMNS = (
    "mem_plain", "mem_distilled", "delta", "delta_stderr", "plain_conf", "student_conf", "teacher_conf", "trajectory",
)  # fmt: skip


def distillation_section(
    effect: DistillationEffect,
    thumbs: Thumbnails,
    figure: Callable[[str, str, Callable[[Path], None]], Markup],
    *,
    plain: str,
    distilled: str,
    rows: int = ROWS,
) -> list[Any]:
    """The report's "Distillation" section from a computed :class:`DistillationEffect`.

    Parameters
    ----------
    effect : DistillationEffect
        From :func:`memscore.distillation_effect` (plain = the report's store).
    thumbs : Thumbnails
        The report's example cells.
    figure : callable
        ``figure(name, alt, draw)``: draws into the report's folder and returns the image tag.
    plain, distilled : str
        How the arms are named on the page (their store paths).
    rows : int, default 16
        Rows of the table of the largest drops.

    Returns
    -------
    list of Markup
    """
    out: list[Any] = [el("h2", "Distillation")]
    teacher = {None: "no teacher (its columns are left out)", "logits": "one teacher's logits"}.get(
        effect.teacher, f"the paired runs of {effect.teacher}"
    )
    out.append(
        el(
            "p",
            f"Plain arm: {plain}; distilled arm: {distilled}; teacher: {teacher}. Memorization on "
            f"'{effect.kind}' outcomes; delta = distilled − plain, per training example "
            "(memscore.distillation_effect, docs/distillation.md).",
        )
    )
    out.append(el("p", "Test accuracy and membership exposure of each arm (intervals: bootstrap over runs):"))
    out.append(table_html(effect.arms, 4))
    table = effect.table

    def deltas(path: Path) -> None:
        fig, (a1, a2) = pyplot().subplots(1, 2, figsize=(10, 3.6))
        d = table["delta"].to_numpy()
        a1.hist(d[np.isfinite(d)], bins=np.linspace(-1, 1, 41), color="#4c72b0")
        a1.set_yscale("log")
        a1.set_xlabel("delta = memorization distilled − plain")
        a1.set_ylabel("training examples")
        by = effect.by_trajectory
        x = np.arange(by.height)
        mean = by["mean_delta"].to_numpy()
        err = np.vstack([mean - by["ci_low"].to_numpy(), by["ci_high"].to_numpy() - mean])
        a2.bar(x, mean, color=["#777777"] + ["#dd8452"] * (by.height - 1))
        a2.errorbar(x, mean, yerr=np.nan_to_num(err), fmt="none", color="black", capsize=3)
        a2.set_xticks(x, [f"{k}\n({n})" for k, n in zip(by["trajectory"], by["n"], strict=True)], fontsize=8)
        a2.axhline(0, color="black", lw=0.8)
        a2.set_ylabel("mean delta")
        a2.set_title("By trajectory across model sizes" if by.height > 1 else "All examples")
        save_figure(fig, path)

    out.append(figure("distillation_delta.png", "change of memorization under distillation", deltas))
    note = (
        "Mean delta per trajectory class of the plain memorization across model sizes (Lukasik et al. 2023), "
        "with a normal interval over the examples."
    )
    if effect.by_trajectory.height == 1:
        note += " No trajectories: the report is of one store, not of a sweep."
    out.append(el("p", note))
    out.append(table_html(effect.by_trajectory, 4))

    if effect.confidence.height:
        conf = effect.confidence

        def confidences(path: Path) -> None:
            splits = conf["split"].unique(maintain_order=True).to_list()
            fig, axes = pyplot().subplots(1, len(splits), figsize=(5 * len(splits), 4), squeeze=False)
            for ax, split in zip(axes[0], splits, strict=True):
                part = conf.filter((pl.col("split") == split) & (pl.col("n") > 0))
                t = part["teacher_conf"].to_numpy()
                ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--", label="student = teacher")
                ax.plot(t, part["student_conf"].to_numpy(), "o-", color="#c44e52", label="distilled student")
                ax.plot(t, part["plain_conf"].to_numpy(), "s:", color="#4c72b0", label="plain")
                ax.set_xlim(0, 1)
                ax.set_ylim(0, 1)
                ax.set_xlabel("teacher's probability of the label (bin mean)")
                ax.set_ylabel("probability of the label (bin mean)")
                ax.set_title(f"{split} examples ({int(part['n'].sum())})")
                ax.legend(fontsize=7, loc="upper left")
            save_figure(fig, path)

        out.append(figure("distillation_confidence.png", "student against teacher confidence", confidences))
        out.append(
            el(
                "p",
                "Student against teacher confidence, binned by the teacher's (Nagarajan et al. 2023): below the "
                "diagonal where the student is less confident than its teacher. Train: averages over the runs "
                "that trained on each example; test: over all runs.",
            )
        )
    else:
        out.append(el("p", "No teacher: the confidence plot needs the teacher's runs or logits.", class_="note"))

    d = table["delta"].to_numpy()
    ok = np.flatnonzero(np.isfinite(d))
    top = ok[np.argsort(d[ok], kind="stable")][:rows]
    cols = [c for c in DROP_COLUMNS if c in table.columns]
    values = {c: table[c].to_list() for c in cols}
    labels = table["label"].to_list()
    out.append(el("h3", "Examples whose memorization drops most under distillation"))
    out.append(
        example_table(
            "distillation-drops",
            ["example", "index", "label", *cols],
            [
                [thumbs.cell("train", int(i)), int(i), label_value(labels[i]), *(_value(values[c][i]) for c in cols)]
                for i in top
            ],  # fmt: skip
            "Sorted by delta, most negative first; delta_stderr is its standard error.",
        )
    )
    return out


def _value(v: Any) -> Any:
    return None if isinstance(v, float) and math.isnan(v) else v
