"""``memscore taskgram``: the task-gram study from the command line (a typer sub-application)."""

from __future__ import annotations

import os
import pathlib
from typing import Annotated

import typer

from ..errors import ClusterError
from ..taskgram.model import MODEL_SIZES
from ..taskgram.pipeline import TASKS, PipelineConfig, run_pipeline
from ._checks import check_output_dir
from ._executor import EXECUTOR_HELP, make_executor

app = typer.Typer(
    help="Task-gram LM vs trained LMs on offline Shakespeare + KJV + BBE: distributional memorization "
    "(Spearman) and generalization (Kendall-tau distance) per task and model size.",
    no_args_is_help=False,
    add_completion=False,
)


def _split(value: str, allowed: tuple[str, ...], name: str) -> tuple[str, ...]:
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    bad = [v for v in items if v not in allowed]
    if not items or bad:
        raise typer.BadParameter(
            f"expected a comma-separated list from {', '.join(allowed)}, got {value!r}", param_hint=name
        )
    return items


@app.callback(invoke_without_command=True)
def taskgram(
    out: Annotated[pathlib.Path, typer.Option("--out", "-o", help="output folder for tables and plot")] = pathlib.Path(
        "taskgram-out"
    ),
    sizes: Annotated[
        str | None, typer.Option(help=f"model sizes, comma-separated ({', '.join(MODEL_SIZES)}) (default small,medium)")
    ] = None,
    epochs: Annotated[float, typer.Option(help="passes over the corpus (capped by --max-steps / --time-limit)")] = 1.0,
    max_steps: Annotated[int | None, typer.Option(help="training steps per model at most")] = None,
    time_limit: Annotated[
        float | None, typer.Option(help="training seconds per model at most, 0 = no limit (default 120)")
    ] = None,
    n_examples: Annotated[int | None, typer.Option(help="examples kept per task (default 400)")] = None,
    sources: Annotated[str | None, typer.Option(help="corpus sources (default shakespeare,kjv,bbe)")] = None,
    tasks: Annotated[str, typer.Option(help=f"tasks: {','.join(TASKS)}")] = ",".join(TASKS),
    alpha: Annotated[float, typer.Option(help="add-alpha smoothing of p_TG")] = 1.0,
    embedder: Annotated[bool, typer.Option(help="filter pairs by MiniLM cosine similarity")] = False,
    threshold: Annotated[float, typer.Option(help="cosine threshold with --embedder")] = 0.3,
    seed: Annotated[int, typer.Option(help="seed for sampling and training")] = 0,
    device: Annotated[str, typer.Option(help="torch device (cpu, cuda)")] = "cpu",
    threads: Annotated[int, typer.Option(help="torch CPU threads")] = 1,
    quick: Annotated[bool, typer.Option("--quick", help="tiny settings for a smoke test (seconds)")] = False,
    executor: Annotated[str, typer.Option("--executor", help=EXECUTOR_HELP)] = "local",
    shards_per_task: Annotated[
        int | None, typer.Option("--shards-per-task", help="corpus shards counted by one task (1)")
    ] = None,
    cpus_per_task: Annotated[
        float | None, typer.Option("--cpus-per-task", help="CPUs reserved by one counting task (1; Ray)")
    ] = None,
    corpus: Annotated[
        str | None,
        typer.Option(
            help="your corpus instead of the embedded texts: jsonl / text / Parquet / Arrow shards or a datasets "
            "save_to_disk folder (file, directory or glob)"
        ),
    ] = None,
    text_field: Annotated[
        str, typer.Option(help="jsonl field / Parquet or Arrow column of --corpus documents")
    ] = "text",
    model: Annotated[
        list[str] | None,
        typer.Option(help="HuggingFace causal LM (hub id or local folder) to score; repeat for a size series"),
    ] = None,
    task: Annotated[
        list[str] | None,
        typer.Option(
            help="task: a jsonl / Parquet / save_to_disk path with input and output columns, a paper task "
            "(wmt:de-en, triviaqa, mmlu, gsm8k; from the hub), or NAME=PATH (a local copy of a paper task); repeat"
        ),
    ] = None,
    dtype: Annotated[str, typer.Option(help="dtype of --model: auto, float32, bfloat16, float16")] = "auto",
) -> None:
    """Run the pipeline, write pairs/examples/summary tables (Parquet, CSV), models.json and
    taskgram.png to OUT, and print the summary."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    # Options left unset keep the defaults of PipelineConfig (or of PipelineConfig.quick()).
    settings: dict[str, object] = dict(
        epochs=epochs,
        tasks=_split(tasks, TASKS, "--tasks"),
        alpha=alpha,
        embedder=embedder,
        threshold=threshold,
        seed=seed,
        device=device,
        threads=threads,
    )
    if sizes is not None:
        settings["sizes"] = _split(sizes, tuple(MODEL_SIZES), "--sizes")
    if sources is not None:
        settings["sources"] = _split(sources, ("shakespeare", "kjv", "bbe"), "--sources")
    if max_steps is not None:
        settings["max_steps"] = max_steps
    if time_limit is not None:
        settings["time_limit_s"] = time_limit or None
    if n_examples is not None:
        settings["n_examples"] = n_examples
    if corpus is not None:
        # absolute, so that Ray workers (another working directory) open the same files
        settings.update(corpus=os.path.abspath(corpus), text_field=text_field)
    try:
        ex = make_executor(executor, shards_per_task=shards_per_task, cpus_per_task=cpus_per_task)
    except (TypeError, ValueError) as e:
        raise typer.BadParameter(str(e), param_hint="--executor") from e
    if model:
        settings.update(models=tuple(model), dtype=dtype)
    if task:
        settings["task_specs"] = tuple(task)
    # The config checks every setting, and the output folder is checked, before anything is built.
    cfg = PipelineConfig.quick(**settings) if quick else PipelineConfig(**settings)  # type: ignore[arg-type]
    check_output_dir(out, "--out")
    try:
        result = run_pipeline(out, cfg, log=lambda m: console.print(f"[dim]{m}[/dim]"), executor=ex)
    except (ImportError, ClusterError) as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(code=2) from e
    table = Table(title="distributional memorization (Spearman rho) and generalization (Kendall-tau distance)")
    for col in ("task", "model", "n", "rho", "p", "tau dist", "p"):
        table.add_column(col)
    for r in result.summary.iter_rows(named=True):
        table.add_row(
            r["task"],
            r["model"],
            str(r["n_examples"]),
            f"{r['memorization_rho']:.3f}",
            f"{r['memorization_p']:.2g}",
            f"{r['generalization_tau_dist']:.3f}",
            f"{r['generalization_p']:.2g}",
        )
    console.print(table)
    console.print(f"tables, plots and report.html in {out}")


if __name__ == "__main__":  # python -m memscore.taskgram.cli
    app()
