"""``memscore ngrams``: batch n-gram counting over directories of corpus shards.

``count`` processes every shard (jsonl, text or token ``.npy`` files), writes one partial
result per shard atomically under ``OUT/partials/``, and merges everything at the end into
``OUT/merged.parquet`` (the :class:`memscore.NgramStats` Parquet layout) plus readable
``OUT/queries.parquet`` and ``OUT/pairs.parquet`` tables. Re-run into the same ``OUT``, it
reuses a shard's partial only when it was counted with the same queries, pairs and
normalizer (:attr:`memscore.ngrams.QuerySet.key`) and the same shard: path, size, mtime,
text field / split mode and error policy (:meth:`memscore.ngrams.Corpus.sources`, in the
partial's metadata); anything else is counted again. Partial names carry the shard, a hash
of its path, the key and a hash of the reading options, so runs with other options never
share a file; before merging, every partial is checked against its shard once more.

The shards are counted by the engine's executor (:func:`memscore.ngrams.counting.count_shards`):
``--executor threads`` (the default) counts shards in parallel on this machine, one partial
each; ``--executor ray:ADDRESS`` counts groups of ``--shards-per-task`` shards on a Ray
cluster, whose workers write the same partials, so resuming and merging are unchanged.

Every file is written under a unique ``.tmp-<uuid>`` name and renamed into place
(:mod:`memscore._io`), so concurrent runs into one ``OUT`` never write into each other's
temporary files. A killed run can leave ``.tmp-*`` files behind: ``memscore ngrams clean
OUT`` removes those older than an hour (``--all`` for every one, when no run is going).

``index`` builds a corpus index (:class:`memscore.ngrams.CorpusIndex`) of token shards;
``contamination`` measures, per benchmark item, the share of its tokens in verbatim corpus
matches of at least N tokens, from an index.

Queries file: one query per line (text corpora), or a ``.json`` list of strings or of
token-id lists. Pairs file: one ``a<TAB>b`` per line, or a ``.json`` list of ``[a, b]``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from pathlib import Path
from typing import IO, Any, Literal

import typer

from .._io import atomic_write, remove_tmp_files
from ..errors import ClusterError, CorpusError
from ..executors import Executor
from ..ngrams import Corpus, NgramStats, Normalizer, QuerySet
from ..ngrams.corpus import open_corpus
from ..ngrams.counting import count_shards
from ._executor import make_executor

COUNT_EXECUTOR_HELP = (
    "Who counts the shards: threads (default: shards in parallel, one thread per memscore thread), "
    "threads:N, local (one shard after another), ray, ray:auto, ray:HOST:PORT or ray://HOST:PORT "
    "(shard files and OUT on a file system every worker sees)."
)

app = typer.Typer(help="Count query n-grams and pairs over corpus shards.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Corpus n-gram counting (occurrences, document frequency, co-occurrence)."""


def _read_queries(path: Path) -> list[Any]:
    if path.suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, list):
            raise typer.BadParameter(f"{path}: expected a JSON list of queries")
        return data
    return [line.rstrip("\n") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _read_pairs(path: Path) -> list[tuple[Any, Any]]:
    if path.suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, list) or not all(isinstance(p, list) and len(p) == 2 for p in data):
            raise typer.BadParameter(f"{path}: expected a JSON list of [a, b] pairs")
        return [(a, b) for a, b in data]
    out = []
    for k, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise typer.BadParameter(f"{path}, line {k}: expected 'a<TAB>b'")
        out.append((parts[0], parts[1]))
    return out


def _open_corpus(
    spec: str,
    text_field: str,
    normalizer: Normalizer,
    split: Literal["file", "paragraph", "line"],
    on_error: Literal["raise", "skip"],
) -> Corpus:
    return open_corpus(spec, text_field=text_field, normalizer=normalizer, split=split, on_error=on_error)


def _reusable(dest: Path, key: str, shard: Corpus) -> bool:
    """Whether the partial at ``dest`` holds this shard's counts for these queries: same
    key, same sources (options, path, size, mtime). A damaged partial is not."""
    if not dest.exists():
        return False
    try:
        part = NgramStats.read_parquet(dest)
    except CorpusError:
        return False
    return part.key == key and part.sources == shard.sources()


def _partial_name(shard: Corpus, key: str) -> str:
    """``<shard>.<path hash>.<key>.<options hash>.parquet``: runs with other queries or
    other reading options (text field, split, on_error) never share a partial file."""
    name = shard.shard_names[0]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name)[-80:]
    digest = hashlib.sha256(str(Path(name).resolve()).encode()).hexdigest()[:8]
    options = {k: v for k, v in shard.sources()[0].items() if k != "files"}
    opt = hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()[:8]
    return f"{stem}.{digest}.{key[:16]}.{opt}.parquet"


@app.command("count")
def count(
    corpus: str = typer.Option(
        ...,
        "--corpus",
        help="Directory, glob or file of shards (.jsonl[.gz|.zst], .txt, .npy, .parquet, .arrow, a Megatron .idx/.bin "
        "or its prefix, a datasets save_to_disk folder).",
    ),
    queries: Path = typer.Option(
        ..., "--queries", exists=True, dir_okay=False, help="Queries: one per line, or .json."
    ),
    out: Path = typer.Option(..., "--out", help="Output directory (partials/, merged.parquet)."),
    pairs: Path | None = typer.Option(
        None, "--pairs", exists=True, dir_okay=False, help="Pairs: 'a<TAB>b' per line, or .json."
    ),
    text_field: str = typer.Option(
        "text", "--text-field", help="JSON field / Parquet or Arrow column holding the document text."
    ),
    stopwords: str | None = typer.Option(None, "--stopwords", help="'english', or a file with one stopword per line."),
    split: str = typer.Option("paragraph", "--split", help="Text files: file, paragraph or line."),
    on_error: str = typer.Option("raise", "--on-error", help="raise, or skip (and count) bad lines."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    executor: str = typer.Option("threads", "--executor", help=COUNT_EXECUTOR_HELP),
    shards_per_task: int | None = typer.Option(None, "--shards-per-task", help="Shards counted by one task (1)."),
    cpus_per_task: float | None = typer.Option(None, "--cpus-per-task", help="CPUs reserved by one task (1; Ray)."),
) -> None:
    """Count every query n-gram and pair in every shard, one partial per shard, then merge."""
    stop: Any = None
    if stopwords == "english":
        stop = "english"
    elif stopwords is not None:
        sp = Path(stopwords)
        if not sp.is_file():
            raise typer.BadParameter(f"--stopwords: expected 'english' or a file, got {stopwords!r}")
        stop = [w.strip() for w in sp.read_text(encoding="utf-8").splitlines() if w.strip()]
    if on_error not in ("raise", "skip"):
        raise typer.BadParameter(f"--on-error: expected raise or skip, got {on_error!r}")
    if split not in ("file", "paragraph", "line"):
        raise typer.BadParameter(f"--split: expected file, paragraph or line, got {split!r}")
    normalizer = Normalizer(stopwords=stop)
    try:
        ex = _count_executor(executor, shards_per_task, cpus_per_task)
        if not ex.in_process:  # workers run in other directories
            corpus = os.path.abspath(corpus)
        c = _open_corpus(corpus, text_field, normalizer, split, on_error)  # type: ignore[arg-type]
        qs = _read_queries(queries)
        ps = _read_pairs(pairs) if pairs is not None else []
        query_set = QuerySet(c, qs, ps)  # prepared once for all shards
        key = query_set.key
    except (CorpusError, ValueError, TypeError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc

    part_dir = out / "partials"
    part_dir.mkdir(parents=True, exist_ok=True)
    shards = c.shards()
    todo: list[tuple[Corpus, Path]] = []
    done_paths: list[Path] = []
    dests: dict[Path, Corpus] = {}
    for sh in shards:
        dest = part_dir / _partial_name(sh, key)
        dests[dest] = sh
        if _reusable(dest, key, sh):
            done_paths.append(dest)
        else:
            todo.append((sh, dest))
    typer.echo(f"{len(shards)} shards, {len(done_paths)} already done, {len(todo)} to count; key {key[:16]}")
    # one task per shard group, each writing its shards' partials (atomically, under the
    # names above), so a killed run resumes and the merge below reads only partials
    try:
        count_shards(query_set, [sh for sh, _ in todo], ex, dests=[d for _, d in todo], progress=progress)
    except (ClusterError, ImportError, ValueError, TypeError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    except (CorpusError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    done_paths += [d for _, d in todo]

    parts = [NgramStats.read_parquet(p) for p in sorted(done_paths)]
    for p, part in zip(sorted(done_paths), parts, strict=True):
        if part.key != key or part.sources != dests[p].sources():
            # replaced meanwhile (a shard rewritten during the run?): never merge it
            typer.echo(f"error: {p} no longer matches its shard {part.shards}; run the count again", err=True)
            raise typer.Exit(1)
    merged = NgramStats.merge(parts)
    merged.write_parquet(out / "merged.parquet")

    import polars as pl

    qcol = [q if isinstance(q, str) else json.dumps(q) for q in qs]
    qdf = pl.DataFrame({"query": qcol, "count": merged.counts, "doc_freq": merged.doc_freq})
    atomic_write(out / "queries.parquet", qdf.write_parquet)
    if ps:
        a = [x if isinstance(x, str) else json.dumps(x) for x, _ in ps]
        b = [y if isinstance(y, str) else json.dumps(y) for _, y in ps]
        pdf = pl.DataFrame({"a": a, "b": b, "cooccurrence": merged.cooccurrence})
        atomic_write(out / "pairs.parquet", pdf.write_parquet)
    typer.echo(
        f"merged {len(parts)} partials: {merged.n_documents:,} documents, {merged.n_tokens:,} tokens, "
        f"{merged.n_skipped:,} skipped lines -> {out / 'merged.parquet'}"
    )


def _count_executor(spec: str, shards_per_task: int | None, cpus_per_task: float | None) -> Executor:
    """The executor of ``--executor``; plain ``threads`` means one thread per thread of
    memscore's pool (``MEMSCORE_NUM_THREADS``), as the count always ran."""
    from .. import get_num_threads

    if spec == "threads":
        spec = f"threads:{max(1, get_num_threads())}"
    return make_executor(spec, shards_per_task=shards_per_task, cpus_per_task=cpus_per_task)


@app.command("clean")
def clean(
    out: Path = typer.Argument(..., help="The --out directory of 'memscore ngrams count'."),
    all_: bool = typer.Option(
        False, "--all", help="Remove every temporary file, even recent ones (only when no count is running)."
    ),
    older_than: float = typer.Option(3600.0, "--older-than", help="Seconds: remove temporary files older than this."),
) -> None:
    """Remove the .tmp-* files an interrupted count (or index build) left in OUT and OUT/partials."""
    if not out.is_dir():
        typer.echo(f"error: {out}: not a directory", err=True)
        raise typer.Exit(2)
    age = 0.0 if all_ else older_than
    removed = remove_tmp_files(out, age) + remove_tmp_files(out / "partials", age)
    for p in removed:
        typer.echo(f"removed {p}")
    typer.echo(f"{len(removed)} temporary files removed")


def _write_bytes(data: bytes, fh: IO[bytes]) -> None:
    fh.write(data)


def _bytes(text: str) -> int:
    """``8G``, ``512M``, ``4096`` -> bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", text, flags=re.IGNORECASE)
    if not m:
        raise typer.BadParameter(f"--memory: expected bytes such as 8G, 512M or 1000000, got {text!r}")
    scale = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}[m.group(2).upper()]
    return int(float(m.group(1)) * scale)


@app.command("index")
def index_cmd(
    corpus: str = typer.Option(..., "--corpus", help="Directory, glob or file of token shards (.npy + .offsets.npy)."),
    out: Path = typer.Option(..., "--out", help="The index directory (made if missing; a rerun resumes)."),
    memory: str | None = typer.Option(None, "--memory", help="Memory the builds may hold (e.g. 16G): cuts shards."),
    executor: str = typer.Option("threads", "--executor", help=COUNT_EXECUTOR_HELP),
) -> None:
    """Build a corpus index (suffix arrays, one or more parts per shard) in OUT."""
    from ..ngrams.index import CorpusIndex

    ex = _count_executor(executor, None, None)
    if not ex.in_process:
        corpus = os.path.abspath(corpus)
    c = open_corpus(corpus)
    idx = CorpusIndex.build(c, out, executor=ex, memory=None if memory is None else _bytes(memory))
    typer.echo(
        f"{idx.n_tokens:,} tokens, {idx.n_docs:,} documents, {len(idx.manifest['parts'])} parts, "
        f"{idx.nbytes / max(1, idx.n_tokens):.2f} bytes/token -> {out}"
    )


@app.command("contamination")
def contamination_cmd(
    index: Path = typer.Option(..., "--index", help="A corpus index (memscore ngrams index)."),
    benchmark: Path = typer.Option(
        ..., "--benchmark", exists=True, dir_okay=False, help="jsonl: 'tokens' (ids) or 'text', and 'id'."
    ),
    out: Path = typer.Option(..., "--out", help="Output directory (contamination.parquet, clean/contaminated.jsonl)."),
    tokenizer: Path | None = typer.Option(None, "--tokenizer", help="tokenizer.json of the corpus (for 'text' items)."),
    n: int = typer.Option(13, "--n", help="Shortest verbatim match that counts."),
    threshold: float = typer.Option(0.5, "--threshold", help="Contaminated when this share of tokens is covered."),
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Check the index's checksums on open."),
) -> None:
    """Per benchmark item, the share of its tokens in corpus matches of at least N tokens:
    OUT/contamination.parquet, and the items split into OUT/clean.jsonl and
    OUT/contaminated.jsonl (the lines as given)."""
    from ..ngrams.contamination import contamination
    from ..ngrams.index import CorpusIndex
    from ._checks import check_output_dir
    from ._tokens import read_token_items

    check_output_dir(out, "--out")
    items = read_token_items(benchmark, tokenizer, "--benchmark")
    idx = CorpusIndex.open(index, verify=verify)
    table = contamination(idx, items.tokens, n=n, threshold=threshold, ids=items.ids)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "contamination.parquet", table.write_parquet)
    flags = table["contaminated"].to_list()
    for name, keep in (("clean.jsonl", False), ("contaminated.jsonl", True)):
        data = "".join(line + "\n" for line, f in zip(items.lines, flags, strict=True) if f is keep).encode("utf-8")
        atomic_write(out / name, functools.partial(_write_bytes, data))
    typer.echo(f"{len(flags)} items: {sum(flags)} contaminated (n = {n}, threshold {threshold}) -> {out}")
