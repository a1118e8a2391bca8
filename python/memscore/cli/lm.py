"""``memscore lm``: causal-LM measurements from the command line.

``memscore lm memorization`` samples (k + m)-token sequences from a token corpus, counts
each one's duplicates in the whole corpus, greedy-decodes every model from the first k
tokens and writes the per-sequence table, the memorized fraction per log2 duplicate-count
bin and its plot (one curve per model). ``--executor`` runs the decoding as (model x block
of sequences) tasks: ``--executor ray --gpus-per-task 1`` puts them on a cluster's GPUs.

With ``--rows A:B`` it runs the Pythia protocol instead (Biderman et al. 2023): the training
rows A..B-1 of a Megatron (or token) corpus, in training order, scored at every ``--revision
step…`` checkpoint of one model; one Parquet table, a per-checkpoint summary and three plots.

``memscore lm membership`` writes the membership scores of every sequence of a file
(loss, zlib, Min-K%, Min-K%++ and, with ``--reference``, the reference ratio).

``memscore lm trace`` traces generations to the corpus through its index: maximal
matching spans, the longest match at each token, n-novelty; a Parquet table and an HTML view.
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

app = typer.Typer(help="Causal language models: extractable memorization, membership scores.")


#: The options every command that runs a model shares.
DeviceOption = Annotated[
    str | None,
    typer.Option(help="torch device (cpu, cuda, cuda:1); default cuda with --gpus-per-task > 0, else cpu"),
]
DtypeOption = Annotated[str, typer.Option(help="auto (bf16/fp16 on CUDA, fp32 on CPU), float32, bfloat16, float16")]


@app.callback()
def _group() -> None:
    """Causal-LM measurements (HuggingFace models by hub id or local folder)."""


@app.command("memorization")
def memorization(
    corpus: Annotated[
        str,
        typer.Option(
            help="token corpus in the models' tokenization (a Megatron .idx/.bin prefix, NAME.npy shards with "
            "NAME.offsets.npy sidecars), or jsonl / text files tokenized with the first model's tokenizer into OUT/tokens (a file, directory or glob)"
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
    device: DeviceOption = None,
    dtype: DtypeOption = "auto",
    revision: Annotated[
        list[str] | None,
        typer.Option(
            help="hub revision (a Pythia checkpoint step143000), or a subfolder MODEL/REVISION of a local model "
            "folder; repeat with --rows to follow the rows across checkpoints"
        ),
    ] = None,
    rows: Annotated[
        str | None,
        typer.Option(
            help="A:B (or A:B:STEP): score these training rows (Megatron sequences in training order) at every "
            "--revision (the Pythia protocol) instead of sampling windows"
        ),
    ] = None,
    rows_per_step: Annotated[
        int, typer.Option(help="with --rows: rows per training step (Pythia: 1024), for which rows a step has seen")
    ] = 1024,
    duplicates: Annotated[
        bool, typer.Option(help="with --rows: count each row's k + m tokens over the whole corpus (one pass)")
    ] = True,
    seed: Annotated[int, typer.Option(help="seed of the sample")] = 0,
    progress: Annotated[bool, typer.Option(help="progress bars of the counting pass and the decoding")] = False,
    text_field: Annotated[str, typer.Option(help="jsonl field of the documents of a text --corpus")] = "text",
    executor: str = executor_option(),
    gpus_per_task: Annotated[
        float | None, typer.Option("--gpus-per-task", help="GPUs of one task (a model x block of sequences)")
    ] = None,
    cpus_per_task: Annotated[float | None, typer.Option("--cpus-per-task", help="CPUs of one task")] = None,
    index: Annotated[
        pathlib.Path | None,
        typer.Option("--index", help="the token corpus's index (memscore ngrams index): duplicates counted from it"),
    ] = None,
) -> None:
    """Write OUT/sequences.parquet (one row per model and sequence), OUT/curve.csv (memorized
    fraction per duplicate-count bin and model), OUT/memorization.png and OUT/run.json.

    With --rows: OUT/memorization.parquet (one row per checkpoint and training row),
    OUT/checkpoints.csv, OUT/score_vs_step.png, OUT/score_vs_duplicates.png,
    OUT/precision_recall.png and OUT/run.json."""
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
    if rows is not None:
        _memorization_rows(
            corpus,
            model,
            out,
            k,
            m,
            rows,
            list(revision) if revision else [None],
            rows_per_step,
            duplicates,
            batch_size,
            device,
            dtype,
            progress,
            executor,
            gpus_per_task,
            cpus_per_task,
        )
        return
    if revision is not None and len(revision) > 1:
        raise typer.BadParameter(
            "--revision: several checkpoints are followed with --rows A:B (the same training rows)"
        )
    one_revision = revision[0] if revision else None
    if pool is not None:
        check_int(pool, "--pool", 1)
    ex = make_executor(executor, gpus_per_task=gpus_per_task, cpus_per_task=cpus_per_task)
    gpus = ex.gpus_per_task
    dev = device if device is not None else ("cuda" if gpus > 0 else "cpu")
    # the models go to the tasks by name: each task loads its model's weights (in this
    # process one model at a time, on a cluster on its worker's device); here only the
    # configs and tokenizers are read, and every check runs before any sampling or decoding
    specs = [ModelSpec(name, dtype=dtype, revision=one_revision) for name in model]
    checked = [check_causal_lm(s.name, revision=one_revision) for s in specs]
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
    corpus_index = None
    if index is not None:
        from ..ngrams.index import CorpusIndex

        corpus_index = CorpusIndex.open(index, corpus=token_corpus)
    sample = sample_sequences(
        token_corpus,
        samples,
        k + m,
        stratify=stratify,
        pool=pool,
        seed=seed,
        progress=progress,
        executor=ex,
        index=corpus_index,
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
                "revision": one_revision,
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


def _memorization_rows(
    corpus: str,
    model: list[str],
    out: pathlib.Path,
    k: int,
    m: int,
    rows: str,
    revisions: list[str | None],
    rows_per_step: int,
    duplicates: bool,
    batch_size: int,
    device: str | None,
    dtype: str,
    progress: bool,
    executor: str,
    gpus_per_task: float | None,
    cpus_per_task: float | None,
) -> None:
    """``memscore lm memorization --rows``: the Pythia protocol (see the module docstring)."""
    from rich.console import Console
    from rich.table import Table

    from ..lm import (
        check_causal_lm,
        checkpoint_summary,
        memorization_over_checkpoints,
        parse_rows,
        plot_checkpoints,
        resolve_dtype,
        revision_model,
        training_sequences,
    )
    from ..lm.load import check_context
    from ..ngrams.corpus import open_corpus

    if len(model) != 1:
        raise typer.BadParameter("--model: --rows follows one model across its --revision checkpoints; give one")
    check_int(rows_per_step, "--rows-per-step", 1)
    try:
        idx = parse_rows(rows)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--rows") from exc
    ex = make_executor(executor, gpus_per_task=gpus_per_task, cpus_per_task=cpus_per_task)
    dev = device if device is not None else ("cuda" if ex.gpus_per_task > 0 else "cpu")
    specs = [revision_model(model[0], r, dtype) for r in revisions]
    for s in specs:  # configs and tokenizers only: every check before any decoding
        config, _ = check_causal_lm(s.name, revision=s.revision)
        check_context(SimpleNamespace(config=config), k + m)
    used_dtype = resolve_dtype(dtype, dev) if ex.in_process else dtype
    ex.start(gpus=ex.gpus_per_task)
    if not ex.in_process:  # workers read the shards from other directories
        corpus = os.path.abspath(corpus)
        out = out.resolve()
    token_corpus = open_corpus(corpus)
    if token_corpus.kind != "tokens":
        raise typer.BadParameter(
            f"--corpus: --rows reads training rows of a token corpus (a Megatron .idx/.bin prefix or .npy shards), "
            f"got {token_corpus.kind} files",
        )
    sequences = training_sequences(token_corpus, idx, length=k + m)
    table = memorization_over_checkpoints(
        specs,
        sequences,
        k,
        m,
        revisions=revisions,
        corpus=token_corpus if duplicates else None,
        row_ids=idx,
        rows_per_step=rows_per_step,
        batch_size=batch_size,
        device=dev,
        executor=ex,
        progress=progress,
    )
    summary = checkpoint_summary(table)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "memorization.parquet", lambda f: table.write_parquet(f))
    atomic_write(out / "checkpoints.csv", lambda f: summary.write_csv(f))
    plot_checkpoints(table, out, title=f"rows {rows}, k = {k}, m = {m}")
    write_json(
        out / "run.json",
        {
            "corpus": corpus,
            "model": model[0],
            "revisions": revisions,
            "rows": rows,
            "n_rows": int(idx.size),
            "rows_per_step": rows_per_step,
            "k": k,
            "m": m,
            "duplicates": duplicates,
            "device": str(dev),
            "dtype": used_dtype,
            "executor": executor,
            "gpus_per_task": ex.gpus_per_task,
        },
    )
    console = Console()
    t = Table(title=f"memorization of rows {rows} by checkpoint (rows seen by each)")
    for c in ("revision", "step", "rows seen", "memorized", "mean score", "precision", "recall"):
        t.add_column(c)
    for r in summary.iter_rows(named=True):
        t.add_row(
            str(r["revision"]),
            str(r["step"]),
            str(r["n"]),
            f"{r['memorized']:.3f}",
            f"{r['mean_score']:.3f}",
            f"{r['precision']:.3f}",
            f"{r['recall']:.3f}",
        )
    console.print(t)
    console.print(
        f"wrote {out}/memorization.parquet, checkpoints.csv, score_vs_step.png, score_vs_duplicates.png, "
        "precision_recall.png, run.json"
    )


@app.command("membership")
def membership(
    model: Annotated[str, typer.Argument(help="HuggingFace model id or local folder (the target model)")],
    texts: Annotated[
        pathlib.Path,
        typer.Option(help="the sequences: .jsonl (one document per line), .txt (one per line) or .npy (2-D token ids)"),
    ],
    out: Annotated[pathlib.Path, typer.Option("--out", "-o", help="output table (.parquet)")] = pathlib.Path(
        "lm-membership.parquet"
    ),
    reference: Annotated[
        str | None, typer.Option(help="reference model (id or folder): adds reference_loss and reference_ratio")
    ] = None,
    k: Annotated[float, typer.Option(help="Min-K% fraction of the predicted tokens, in (0, 1]")] = 0.2,
    batch_size: Annotated[int, typer.Option(help="sequences per forward pass")] = 16,
    device: DeviceOption = None,
    dtype: DtypeOption = "auto",
    text_field: Annotated[str, typer.Option(help="jsonl field of the documents")] = "text",
    progress: Annotated[bool, typer.Option(help="progress bar of the forward passes")] = False,
    executor: str = executor_option(),
    gpus_per_task: Annotated[
        float | None, typer.Option("--gpus-per-task", help="GPUs of one task (a model x block of sequences)")
    ] = None,
) -> None:
    """Write OUT (one row per sequence: loss, min_k, min_k_plus_plus, zlib, reference_ratio).

    Directions: min_k and min_k_plus_plus are higher for members; loss, zlib and
    reference_ratio are lower for members (memscore.lm.HIGHER_IS_MEMBER)."""
    import json

    import numpy as np

    from .._validate import check_float
    from ..lm import ModelSpec, check_causal_lm, membership_scores

    # every option is checked before a model is loaded or OUT written
    check_float(k, "--k", 0.0, 1.0, low_open=True)
    check_int(batch_size, "--batch-size", 1)
    if out.suffix != ".parquet":
        raise ValueError(f"--out: expected a .parquet file, got {str(out)!r}")
    check_output_dir(out.parent, "--out (its folder)")
    kinds = {".jsonl": "jsonl", ".txt": "txt", ".npy": "npy"}
    if texts.suffix not in kinds:
        raise ValueError(f"--texts: expected a .jsonl, .txt or .npy file, got {str(texts)!r}")
    if not texts.is_file():
        raise FileNotFoundError(f"--texts: no such file: {str(texts)!r}")
    ex = make_executor(executor, gpus_per_task=gpus_per_task)
    dev = device if device is not None else ("cuda" if ex.gpus_per_task > 0 else "cpu")
    specs = [ModelSpec(name, dtype=dtype) for name in [model, *([reference] if reference else [])]]
    tokenizers = [check_causal_lm(s.name)[1] for s in specs]
    items: list[object]
    if kinds[texts.suffix] == "npy":
        ids = np.load(texts, allow_pickle=False)
        if ids.ndim != 2 or ids.dtype.kind not in "iu":
            raise ValueError(f"--texts: expected a 2-D integer token-id array, got {ids.dtype} of shape {ids.shape}")
        items = list(ids)
    elif kinds[texts.suffix] == "txt":
        items = [line for line in texts.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        items = []
        for n, line in enumerate(texts.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                doc = json.loads(line)
                if not isinstance(doc, dict) or not isinstance(doc.get(text_field), str):
                    raise ValueError(f"--texts: line {n} has no string field {text_field!r} (--text-field)")
                items.append(doc[text_field])
    table = membership_scores(
        specs[0],
        items,
        reference=specs[1] if reference else None,
        k=k,
        tokenizer=tokenizers[0],
        reference_tokenizer=tokenizers[1] if reference else None,
        batch_size=batch_size,
        device=dev,
        executor=ex,
        progress=progress,
    )
    atomic_write(out, lambda f: table.write_parquet(f))
    typer.echo(f"wrote {out}: {table.height} sequences, columns {', '.join(table.columns)}")


@app.command("trace")
def trace_cmd(
    index: Annotated[pathlib.Path, typer.Option("--index", help="A corpus index (memscore ngrams index).")],
    generations: Annotated[
        pathlib.Path,
        typer.Option("--generations", exists=True, dir_okay=False, help="jsonl: 'tokens' (ids) or 'text', and 'id'."),
    ],
    out: Annotated[pathlib.Path, typer.Option("--out", help="Output directory (trace.parquet, trace.html).")],
    tokenizer: Annotated[
        pathlib.Path | None, typer.Option("--tokenizer", help="tokenizer.json of the corpus (for 'text' items).")
    ] = None,
    min_len: Annotated[int, typer.Option("--min-len", help="Shortest span kept.")] = 8,
    max_count: Annotated[
        int | None, typer.Option("--max-count", help="Keep spans occurring at most this often.")
    ] = None,
    n_docs: Annotated[int, typer.Option("--n-docs", help="Occurrences listed per span.")] = 3,
    max_n: Annotated[int, typer.Option("--max-n", help="Novelty for n = 1..max-n.")] = 8,
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="Check the index's checksums on open.")] = True,
) -> None:
    """Trace generations to the corpus: OUT/trace.parquet (spans, longest match per token,
    n-novelty per generation) and OUT/trace.html (the spans highlighted)."""
    from ..lm.trace import trace, write_trace_html
    from ..ngrams.index import CorpusIndex
    from ._tokens import read_token_items

    check_output_dir(out, "--out")
    for value, name in ((min_len, "--min-len"), (n_docs, "--n-docs"), (max_n, "--max-n")):
        check_int(value, name, 0 if name == "--n-docs" else 1)
    items = read_token_items(generations, tokenizer, "--generations")
    idx = CorpusIndex.open(index, verify=verify)
    table = trace(idx, items.tokens, ids=items.ids, min_len=min_len, max_count=max_count, n_docs=n_docs, max_n=max_n)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "trace.parquet", lambda f: table.write_parquet(f))
    write_trace_html(table, out / "trace.html", token_strings=items.strings, min_len=min_len)
    n_spans = sum(len(s) for s in table["spans"].to_list())
    typer.echo(f"{table.height} generations, {n_spans} spans -> {out / 'trace.parquet'}, {out / 'trace.html'}")
