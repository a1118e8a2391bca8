"""``memscore distill-effect``: what distillation did to each training example, as a Parquet table.

Needs the ``cli`` extra (typer, rich).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from .._validate import MAX_BOOT, check_choice, check_int
from ._executor import executor_option, make_executor

__all__ = ["app", "teacher_arg"]

app = typer.Typer(add_completion=False)


def teacher_arg(path: Path | None, option: str = "--teacher") -> Any:
    """What ``--teacher`` names: a store directory (returned as its path) or an ``.npy`` file of
    ``(n_train, C)`` logits (returned loaded); None stays None.

    Raises
    ------
    FileNotFoundError
        Nothing at ``path``.
    ValueError
        A file numpy cannot read as an array (named with ``option``).
    """
    import errno

    import numpy as np

    if path is None:
        return None
    if path.is_dir():
        return path
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, f"{option}: no such teacher store or logits file", str(path))
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(f"{option}: {path} is neither a store directory nor an .npy file of logits ({exc})") from None


@app.command("distill-effect")
def distill_effect(
    plain: Path = typer.Argument(..., help="Store of the runs trained on the labels."),
    distilled: Path = typer.Argument(..., help="Store of the distilled runs (the same examples)."),
    out: Path = typer.Option(..., help="Parquet file of the per-example table."),
    teacher: Path | None = typer.Option(
        None, help="Teacher store or .npy (n_train, C) logits (default: the store the distilled runs record)."
    ),
    sweep: Path | None = typer.Option(
        None, help="A sweep of plain stores at several model sizes: adds each example's trajectory."
    ),
    kind: str = typer.Option("correct", help="Outcome of memorization: correct or phi."),
    attack: str = typer.Option("lira", help="Membership attack of the arms: lira or rmia."),
    bins: int = typer.Option(10, help="Bins of the teacher's confidence."),
    n_boot: int | None = typer.Option(
        None, "--n-boot", help="Bootstrap replicates of the attack's intervals over runs (default: none)."
    ),
    executor: str = executor_option(),
) -> None:
    """Write memorization, its change under distillation, and the confidences of plain, student
    and teacher per training example (memscore.distillation_effect) as Parquet; print the summary."""
    from .._io import atomic_write
    from ..runs.distillation import check_arms, distillation_effect
    from ..runs.report import Sweep
    from ._checks import check_existing_dir, check_out_file

    check_choice(kind, "--kind", ("correct", "phi"))
    check_choice(attack, "--attack", ("lira", "rmia"))
    check_int(bins, "--bins", 1, 10_000)
    if n_boot is not None:
        check_int(n_boot, "--n-boot", 1, MAX_BOOT)
    ex = make_executor(executor)
    check_existing_dir(plain, "PLAIN")
    check_existing_dir(distilled, "DISTILLED")
    if sweep is not None:
        check_existing_dir(sweep, "--sweep")
    check_out_file(out, "--out")
    t = teacher_arg(teacher)
    check_arms(plain, distilled, t)  # refused before any scan
    sizes = None
    if sweep is not None:
        sw = Sweep.open(sweep)
        sizes = dict(zip(sw.sizes, sw.stores, strict=True))
    effect = distillation_effect(
        plain, distilled, teacher=t, trajectories=sizes, kind=kind, attack=attack, bins=bins, n_boot=n_boot, executor=ex
    )
    atomic_write(out, lambda f: effect.table.write_parquet(f))
    typer.echo(f"{effect.table.height} training examples -> {out}  (teacher: {effect.teacher or 'none'})")
    for row in effect.arms.iter_rows(named=True):
        span = "" if row["auroc_low"] is None else f" [{row['auroc_low']:.4f}, {row['auroc_high']:.4f}]"
        typer.echo(
            f"{row['arm']}: {row['runs']} runs, test accuracy {row['test_accuracy']:.4f}, "
            f"{row['attack']} AUROC {row['auroc']:.4f}{span}, TPR at 0.1% FPR {row['tpr_at_fpr_0.001']:.4f}, "
            f"mean memorization {row['mean_memorization']:.4f}"
        )
    for row in effect.by_trajectory.iter_rows(named=True):
        typer.echo(
            f"mean delta, {row['trajectory']} ({row['n']} examples): {row['mean_delta']:+.4f} "
            f"[{row['ci_low']:+.4f}, {row['ci_high']:+.4f}]"
        )
