"""``memscore plan``: how many runs each score needs, forecast from a store's runs as a pilot.

Needs the ``cli`` extra (typer, rich).
"""

from __future__ import annotations

from pathlib import Path

import typer

from .._validate import check_int
from ._executor import executor_option, make_executor

__all__ = ["app"]

app = typer.Typer(add_completion=False)


@app.command()
def plan(
    store: Path = typer.Argument(..., help="Store directory (its runs are the pilot; 32-64 runs will do)."),
    target: list[str] = typer.Option(
        ...,
        "--target",
        help="score:statistic>=value or <=value, repeatable: memorization:reliability>=0.9, "
        "memorization:stderr<=0.02, memorization:top100_overlap>=0.8, lira:tpr@0.001_width<=0.01.",
    ),
    splits: int = typer.Option(10, help="Random splits of the runs into halves."),
    seed: int = typer.Option(0, help="Seed of the splits, sub-samples and bootstrap."),
    kind: str = typer.Option("correct", help="Outcomes of memorization, hold-out, influence: correct or phi."),
    out: Path | None = typer.Option(None, help="Also write the forecast table as Parquet here."),
    executor: str = executor_option(),
) -> None:
    """Forecast the runs each target needs (Spearman-Brown, the 1/sqrt(R) law), with the wall time
    and GPU-hours at the runs' measured seconds per run, and whether the law fits the pilot."""
    from ..runs.forecast import parse_targets
    from ..runs.store import RunStore
    from ._checks import check_existing_dir

    targets = parse_targets(target)  # a bad target fails before the store is read
    check_int(splits, "--splits", 1)
    ex = make_executor(executor)
    check_existing_dir(store, "STORE")
    table = RunStore.open(store).forecast(targets, splits=splits, seed=seed, kind=kind, executor=ex)
    for row in table.iter_rows(named=True):
        runs = "never (the law does not get there)" if row["runs"] is None else f"{row['runs']} runs"
        span = "" if row["runs_low"] is None else f" ({row['runs_low']}-{row['runs_high']})"
        cost = ""
        if row["wall_hours"] is not None:
            cost = f", {row['wall_hours']:.2f} h wall, {row['gpu_hours']:.2f} GPU-h"
        fit = "" if row["law_fits"] else f"; the {row['law']} law does NOT fit the pilot (error {row['law_error']:.2f})"
        typer.echo(
            f"{row['target']}: {runs}{span}{cost}; now {row['current']:.4f} at {row['pilot_runs']} runs "
            f"[{row['law']}]{fit}"
        )
    if out is not None:
        table.write_parquet(out)
        typer.echo(f"forecast: {out}")
