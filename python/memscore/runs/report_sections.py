"""Sections of the run report that summarize the runs rather than show examples: "Are
there enough runs?" (reliability and forecasts) and the audit (ε lower bounds)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from .._html import Markup, el
from .._plot import pyplot, save_figure, table_html
from ..errors import StoreError
from .references import max_references
from .store import RunStore

__all__ = ["RUN_TARGETS", "audit_section", "enough_runs_section"]

#: What "Are there enough runs?" forecasts (memscore.runs.forecast targets).
RUN_TARGETS = ("memorization:reliability>=0.9", "memorization:stderr<=0.02", "holdout:reliability>=0.9")


def enough_runs_section(store: RunStore, *, splits: int = 5) -> list[Any]:
    """The report's "Are there enough runs?" section: the split-half reliability of the
    run scores with the runs at hand (:meth:`RunStore.reliability`), and the runs each
    target of :data:`RUN_TARGETS` needs (:meth:`RunStore.forecast`), with the wall time
    and GPU-hours from the runs' measured seconds."""
    out: list[Any] = [el("h3", "Are there enough runs?")]
    if len(store) < 8:
        out.append(el("p", f"{len(store)} runs: too few to split into halves and extrapolate (8 at least)."))
        return out
    # not influence: its T x N matrix per half costs more than the rest of the report
    table = store.reliability(["memorization", "holdout"], splits=splits, seed=0)
    out.append(
        el(
            "p",
            "Split-half reliability: the correlation of each score computed on two disjoint halves of "
            "the runs, extended to all of them (Spearman–Brown); 1 means more runs would not change "
            "the ranking. median_stderr is the typical standard error of one example's score. "
            'store.reliability(["influence", "lira", ...]) gives the other scores\' (docs/reliability.md).',
        )
    )
    out.append(table_html(table.with_columns(pl.col("value", "low", "high").round(4))))
    plan = store.forecast(list(RUN_TARGETS), splits=splits, seed=0)
    keep = ["target", "current", "met", "runs", "runs_low", "runs_high", "law_fits", "wall_hours", "gpu_hours"]
    out.append(el("p", "Runs each target needs, forecast from these runs (docs/reliability.md):"))
    out.append(table_html(plan.select(keep).with_columns(pl.col("current", "wall_hours", "gpu_hours").round(4))))
    return out


def audit_section(
    store: RunStore,
    figure: Callable[[str, str, Callable[[Path], None]], Markup],
    *,
    id_prefix: str = "",
    alpha: float = 0.05,
) -> list[Any]:
    """The report's "Audit" section: an ε lower bound (δ = 0) from every (run, example)
    trial of LiRA online (:func:`memscore.audit.epsilon_lower_bound`: Clopper–Pearson bounds
    on FPR and FNR, the threshold chosen on a seeded half of the trials and bounded on the
    other), the histogram of per-example ε (:func:`memscore.audit.per_example_epsilon`), and
    the reference-budget curve of LiRA and RMIA (:meth:`RunStore.reference_budget`, at
    k = 1, 4 and 16 references per example and with all of them).

    LiRA scores run r with every other run as a shadow, so the trials share their shadows
    and the bound is approximate (docs/audit.md); infinite scores keep their order (they
    are moved just past the finite ones, which no threshold test can tell apart).
    """
    out: list[Any] = [el("h3", "Audit: a lower bound on ε")]
    try:
        from ..audit import epsilon_lower_bound, per_example_epsilon

        lira = store.lira()
        masks = store.masks()
    except (ImportError, StoreError, ValueError) as exc:
        return [*out, el("p", f"Not computed: {exc}", class_="note")]
    scores = _finite_in_order(lira)
    kept = ~np.isnan(scores)
    if kept.sum() < 4 or masks[kept].all() or not masks[kept].any():
        return [*out, el("p", "Not computed: too few member and non-member trials.", class_="note")]
    pooled = epsilon_lower_bound(scores[kept], masks[kept], alpha=alpha)
    out.append(
        el(
            "p",
            f"ε ≥ {pooled.epsilon:.3f} with confidence {1 - alpha:.0%} (δ = 0), from "
            f"{pooled.n_members:,} member and {pooled.n_nonmembers:,} non-member trials of LiRA online "
            f"(every run the target in turn): Clopper–Pearson upper bounds on FPR and FNR at α/2 each, "
            f"the threshold chosen on a random half of the trials ({pooled.threshold_choice}) and bounded "
            "on the other. The runs' shared shadows make it approximate; docs/audit.md says what each "
            "bound assumes.",
        )
    )
    keys = ["epsilon", "threshold", "fpr", "fnr", "fpr_upper", "fnr_upper", "n_members", "n_nonmembers"]
    row = pooled.as_dict()
    out.append(table_html(pl.DataFrame({k: [row[k]] for k in keys}), 4))
    per = per_example_epsilon(scores, masks, alpha=alpha)
    eps = per["epsilon"].to_numpy()

    def hist(path: Path) -> None:
        fig, ax = pyplot().subplots(figsize=(6.2, 3.6))
        finite = eps[np.isfinite(eps)]
        ax.hist(finite, bins=30, color="#4c72b0")
        ax.set_xlabel("per-example ε lower bound (its in-runs and out-runs as the trials)")
        ax.set_ylabel("training examples")
        ax.set_title(f"{int((finite > 0).sum())} of {eps.size} examples with ε > 0 (each at {1 - alpha:.0%})")
        save_figure(fig, path)

    out.append(figure(f"{id_prefix}audit_epsilon_hist.png", "histogram of per-example epsilon", hist))
    which = ("lira", "rmia") if store.n_test else ("lira",)
    # a few small budgets: each rescores every run as the target with k references per
    # example (store.reference_budget() draws the whole curve)
    largest, _, _ = max_references(masks, True)
    ks: list[int | Literal["all"]] = [k for k in (1, 4, 16) if k <= largest]
    budget = store.reference_budget(scores=which, ks=[*ks, "all"], ci=None)

    def curve(path: Path) -> None:
        fig, ax = pyplot().subplots(figsize=(6.2, 3.6))
        for name, color in zip(which, ("#4c72b0", "#dd8452"), strict=False):
            part = budget.filter(pl.col("score") == name)
            sub = part.filter(pl.col("k").is_not_null())
            ax.plot(sub["k"].to_numpy(), sub["auc"].to_numpy(), "o-", color=color, label=name.upper())
            full = part.filter(pl.col("k").is_null())["auc"]
            if full.len():
                ax.axhline(float(full[0]), color=color, ls="--", lw=1, label=f"{name.upper()}, every reference")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("reference runs per example (k)")
        ax.set_ylabel("AUROC")
        ax.legend(fontsize=7)
        save_figure(fig, path)

    out.append(
        el(
            "p",
            "Reference budget: the attacks with k = 1, 4, 16 reference runs per example, subsampled "
            "from the store, and with all of them (store.reference_budget() draws the whole curve).",
        )
    )
    out.append(figure(f"{id_prefix}audit_reference_budget.png", "AUROC against the reference runs", curve))
    out.append(table_html(budget, 4))
    return out


def _finite_in_order(scores: Any) -> Any:
    """``scores`` with ±inf moved just past the finite values (order and ties kept; NaN stays)."""
    s = np.array(scores, dtype=np.float64)
    finite = s[np.isfinite(s)]
    if finite.size == 0:
        return np.where(np.isnan(s), np.nan, np.sign(s))
    lo, hi = float(finite.min()), float(finite.max())
    span = max(hi - lo, 1.0)
    s[s == np.inf] = hi + span
    s[s == -np.inf] = lo - span
    return s
