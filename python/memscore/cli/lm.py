"""``memscore lm``: causal-LM measurements from the command line.

``memscore lm memorization`` samples (k + m)-token sequences from a token corpus, counts
each one's duplicates in the whole corpus, greedy-decodes every model from the first k
tokens and writes the per-sequence table, the memorized fraction per log2 duplicate-count
bin and its plot (one curve per model). ``--executor`` runs the decoding as (model x block
of sequences) tasks: ``--executor ray --gpus-per-task 1`` puts them on a cluster's GPUs.
"""

from __future__ import annotations

import os
import pathlib
from types import SimpleNamespace
from typing import Annotated

import typer

from .._io import atomic_write, write_json
from .._validate import check_int
from ._checks import check_output_dir
from ._executor import executor_option, make_executor

app = typer.Typer(help="Causal language models: extractable memorization against corpus duplication.")


@app.callback()
def _group() -> None:
    """Causal-LM measurements (HuggingFace models by hub id or local folder)."""


@app.command("memorization")
def memorization(
    corpus: Annotated[
        str,
        typer.Option(
            help="token corpus in the models' tokenization (NAME.npy shards with NAME.offsets.npy sidecars), or "
            "jsonl / text files tokenized with the first model's tokenizer into OUT/tokens (a file, directory or glob)"
        ),
    ],
    model: Annotated[list[str], typer.Option(help="HuggingFace model id or local folder; repeat for a size series")],
    out: Annotated[pathlib.Path, typer.Option("--out", "-o", help="output folder")] = pathlib.Path("lm-memorization"),
    k: Annotated[int, typer.Option(help="prompt tokens")] = 32,
    m: Annotated[int, typer.Option(help="greedy continuation tokens compared with the corpus")] = 32,
    samples: Annotated[int, typer.Option(help="sequences sampled from the corpus")] = 1000,
    stratify: Annotated[
        bool, typer.Option(help="equal numbers per log2 duplicate-count bin (from a uniform pool of --pool)")
    ] = False,
    pool: Annotated[int | None, typer.Option(help="pool size with --stratify (default 20 x --samples)")] = None,
    batch_size: Annotated[int, typer.Option(help="prompts decoded together")] = 32,
    device: Annotated[
        str | None,
        typer.Option(help="torch device (cpu, cuda, cuda:1); default cuda with --gpus-per-task > 0, else cpu"),
    ] = None,
    dtype: Annotated[
        str, typer.Option(help="auto (bf16/fp16 on CUDA, fp32 on CPU), float32, bfloat16, float16")
    ] = "auto",
    revision: Annotated[str | None, typer.Option(help="hub revision (e.g. a Pythia checkpoint step143000)")] = None,
    seed: Annotated[int, typer.Option(help="seed of the sample")] = 0,
    progress: Annotated[bool, typer.Option(help="progress bars of the counting pass and the decoding")] = False,
    text_field: Annotated[str, typer.Option(help="jsonl field of the documents of a text --corpus")] = "text",
    executor: str = executor_option(),
    gpus_per_task: Annotated[
        float | None, typer.Option("--gpus-per-task", help="GPUs of one task (a model x block of sequences)")
    ] = None,
    cpus_per_task: Annotated[float | None, typer.Option("--cpus-per-task", help="CPUs of one task")] = None,
) -> None:
    """Write OUT/sequences.parquet (one row per model and sequence), OUT/curve.csv (memorized
    fraction per duplicate-count bin and model), OUT/memorization.png and OUT/run.json."""
    from rich.console import Console
    from rich.table import Table

    from ..lm import (
        ModelSpec,
        check_causal_lm,
        memorization_curve,
        memorization_table,
        plot_memorization_curve,
        resolve_dtype,
        sample_sequences,
        tokenize_corpus,
    )
    from ..lm.load import check_context
    from ..ngrams.corpus import open_corpus

    check_output_dir(out, "--out")
    # every option is checked before the corpus is read or a model loaded, and OUT written
    for value, name in ((k, "--k"), (m, "--m"), (samples, "--samples"), (batch_size, "--batch-size")):
        check_int(value, name, 1)
    if pool is not None:
        check_int(pool, "--pool", 1)
    ex = make_executor(executor, gpus_per_task=gpus_per_task, cpus_per_task=cpus_per_task)
    gpus = ex.gpus_per_task
    dev = device if device is not None else ("cuda" if gpus > 0 else "cpu")
    # the models go to the tasks by name: each task loads its model's weights (in this
    # process one model at a time, on a cluster on its worker's device); here only the
    # configs and tokenizers are read, and every check runs before any sampling or decoding
    specs = [ModelSpec(name, dtype=dtype, revision=revision) for name in model]
    checked = [check_causal_lm(s.name, revision=revision) for s in specs]
    for config, _ in checked:
        check_context(SimpleNamespace(config=config), k + m)
    # in process, a device or dtype this machine lacks fails now (a cluster's workers check theirs)
    used_dtype = resolve_dtype(dtype, dev) if ex.in_process else dtype
    ex.start(gpus=gpus)
    if not ex.in_process:  # workers count the shards from other directories
        corpus = os.path.abspath(corpus)
        out = out.resolve()
    token_corpus = open_corpus(corpus, text_field=text_field)
    if token_corpus.kind != "tokens":
        vocabs = {str(sorted(tok.get_vocab().items())) for _, tok in checked}
        if len(vocabs) > 1:
            raise ValueError("--model: a text --corpus is tokenized once, so every model must share one tokenizer")
        token_corpus = tokenize_corpus(corpus, checked[0][1], out / "tokens", text_field=text_field)
    sample = sample_sequences(
        token_corpus, samples, k + m, stratify=stratify, pool=pool, seed=seed, progress=progress, executor=ex
    )
    table = memorization_table(specs, sample, k, m, batch_size=batch_size, device=dev, executor=ex, progress=progress)
    curve = memorization_curve(table)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "sequences.parquet", lambda f: table.write_parquet(f))
    atomic_write(out / "curve.csv", lambda f: curve.write_csv(f))
    plot_memorization_curve(curve, out / "memorization.png", title=f"k = {k}, m = {m}, {len(sample.counts)} sequences")
    n_params = dict(table.select("model", "n_params").unique(maintain_order=True).iter_rows())
    run = {
        "corpus": corpus,
        "models": [
            {
                "name": s.name,
                "n_params": n_params.get(s.name),
                "device": str(dev),
                "dtype": used_dtype,
                "revision": revision,
            }
            for s in specs
        ],
        "k": k,
        "m": m,
        "samples": len(sample.counts),
        "stratify": stratify,
        "seed": seed,
        "executor": executor,
        "gpus_per_task": gpus,
    }
    write_json(out / "run.json", run)  # strict JSON: NaN as null

    console = Console()
    t = Table(title="extractable memorization by duplicate count")
    for c in ("model", "duplicates", "n", "memorized", "fraction", "mean matched"):
        t.add_column(c)
    for r in curve.iter_rows(named=True):
        t.add_row(
            r["model"],
            f"{r['count_lo']}-{r['count_hi']}",
            str(r["n"]),
            str(r["memorized"]),
            f"{r['fraction']:.3f}",
            f"{r['mean_matched']:.2f}",
        )
    console.print(t)
    console.print(f"wrote {out}/sequences.parquet, curve.csv, memorization.png, run.json")
