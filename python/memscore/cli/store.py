"""``memscore store``: look after a run store — check it, clean up after killed writers, merge.

``verify`` reads every run file (zip CRCs, the arrays against the run's meta and the
manifest, the sha256 of each run) and prints one line per problem, exiting 1 when there is
any; ``clean`` removes the ``.tmp-*`` files that killed writers left (older than an hour by
default); ``merge`` combines stores built separately for the same examples.
"""

from __future__ import annotations

from pathlib import Path

import typer

from ..runs.store import RunStore

app = typer.Typer(help="Check, clean and merge run stores.", no_args_is_help=True)


@app.command()
def verify(store: Path = typer.Argument(..., help="Store directory.")) -> None:
    """Check every run file; print one line per problem (exit 1 if there is any)."""
    problems = RunStore.open(store).verify()
    for line in problems:
        typer.echo(line)
    typer.echo(f"{store}: {'healthy' if not problems else f'{len(problems)} problems'}")
    if problems:
        raise typer.Exit(1)


@app.command()
def clean(
    store: Path = typer.Argument(..., help="Store directory."),
    all_: bool = typer.Option(
        False, "--all", help="Remove every temporary file, even recent ones (only when no process writes)."
    ),
    older_than: float = typer.Option(3600.0, "--older-than", min=0.0, help="Seconds: remove files older than this."),
) -> None:
    """Remove the .tmp-* files that interrupted writers left in STORE and STORE/runs."""
    removed = RunStore.open(store).clean_tmp(0.0 if all_ else older_than)
    for rel in removed:
        typer.echo(f"removed {rel}")
    typer.echo(f"{len(removed)} temporary files removed")


@app.command()
def merge(
    out: Path = typer.Argument(..., help="Destination store (created if missing)."),
    stores: list[Path] = typer.Argument(..., help="Stores to merge into OUT."),
) -> None:
    """Merge STORES into OUT (every input run is checked before any is copied)."""
    merged = RunStore.merge(stores, out)
    typer.echo(f"{out}: {len(merged)} runs")
