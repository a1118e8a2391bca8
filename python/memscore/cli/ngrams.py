"""``memscore ngrams``: batch n-gram counting over directories of corpus shards.

``count`` processes every shard (jsonl, text or token ``.npy`` files), writes one partial
result per shard atomically under ``OUT/partials/``, skips shards whose partial already
exists for the same queries and pairs when re-run, and merges everything at the end into
``OUT/merged.parquet`` (the :class:`memscore.NgramStats` Parquet layout) plus readable
``OUT/queries.parquet`` and ``OUT/pairs.parquet`` tables.

Queries file: one query per line (text corpora), or a ``.json`` list of strings or of
token-id lists. Pairs file: one ``a<TAB>b`` per line, or a ``.json`` list of ``[a, b]``.
"""

from __future__ import annotations

import hashlib
import json
import re
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import typer

from .. import _core
from ..errors import CorpusError
from ..ngrams import Corpus, NgramStats, Normalizer
from ..ngrams.counting import _count_shards
from ..ngrams.queries import _prepare

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


def _open_corpus(spec: str, text_field: str, normalizer: Normalizer, split: str) -> Corpus:
    p = Path(spec)
    names = [q.name for q in p.iterdir()] if p.is_dir() else [spec]
    if any(n.endswith(".npy") for n in names) and not any(".jsonl" in n or n.endswith(".txt") for n in names):
        return Corpus.from_token_files(spec)
    if any(n.endswith((".txt", ".txt.gz", ".txt.zst")) for n in names) and not any(".jsonl" in n for n in names):
        return Corpus.from_text_files(spec, split=split, normalizer=normalizer)  # type: ignore[arg-type]
    return Corpus.from_jsonl(spec, text_field=text_field, normalizer=normalizer)


def _partial_name(shard: str, key: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(shard).name)[-80:]
    digest = hashlib.sha256(str(Path(shard).resolve()).encode()).hexdigest()[:8]
    return f"{stem}.{digest}.{key[:16]}.parquet"


@app.command("count")
def count(
    corpus: str = typer.Option(
        ..., "--corpus", help="Directory, glob or file of shards (.jsonl[.gz|.zst], .txt, .npy)."
    ),
    queries: Path = typer.Option(
        ..., "--queries", exists=True, dir_okay=False, help="Queries: one per line, or .json."
    ),
    out: Path = typer.Option(..., "--out", help="Output directory (partials/, merged.parquet)."),
    pairs: Path | None = typer.Option(
        None, "--pairs", exists=True, dir_okay=False, help="Pairs: 'a<TAB>b' per line, or .json."
    ),
    text_field: str = typer.Option("text", "--text-field", help="JSON field holding the document text."),
    stopwords: str | None = typer.Option(None, "--stopwords", help="'english', or a file with one stopword per line."),
    split: str = typer.Option("paragraph", "--split", help="Text files: file, paragraph or line."),
    on_error: str = typer.Option("raise", "--on-error", help="raise, or skip (and count) bad lines."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
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
    normalizer = Normalizer(stopwords=stop)
    try:
        c = _open_corpus(corpus, text_field, normalizer, split)
        if on_error == "skip":
            c.skip_errors = True
        elif on_error != "raise":
            raise typer.BadParameter(f"--on-error: expected raise or skip, got {on_error!r}")
        qs = _read_queries(queries)
        ps = _read_pairs(pairs) if pairs is not None else []
        prep = _prepare(c, qs, ps)  # once for all shards
        key = prep.key
    except (CorpusError, ValueError, TypeError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc

    part_dir = out / "partials"
    part_dir.mkdir(parents=True, exist_ok=True)
    shards = c.shards()
    todo, done_paths = [], []
    for sh in shards:
        dest = part_dir / _partial_name(sh.shard_names[0], key)
        if dest.exists():
            try:
                if NgramStats.read_parquet(dest).key == key:
                    done_paths.append(dest)
                    continue
            except CorpusError:
                pass  # damaged partial: count the shard again
        todo.append((sh, dest))
    typer.echo(f"{len(shards)} shards, {len(done_paths)} already done, {len(todo)} to count; key {key[:16]}")

    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from .. import get_num_threads

    counter = _core.ProgressCounter()

    def work(sh: Corpus, dest: Path) -> Path:
        _count_shards(sh, sh._shards, prep, counter).write_parquet(dest)
        return dest

    total = sum(sh.nbytes for sh, _ in todo)
    with Progress(
        TextColumn("[bold]ngrams"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        disable=not progress,
    ) as bar:
        task = bar.add_task("count", total=total)
        # shards in parallel, one partial each: every call releases the GIL and runs on
        # memscore's pool; the bar follows the bytes the engine has read, within shards too
        with ThreadPoolExecutor(max_workers=max(1, get_num_threads())) as pool:
            pending = {pool.submit(work, sh, dest) for sh, dest in todo}
            try:
                while pending:
                    finished, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
                    for f in finished:
                        done_paths.append(f.result())
                    bar.update(task, completed=min(counter.value, total))
            except (CorpusError, OSError) as exc:
                for other in pending:
                    other.cancel()
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(1) from exc
        bar.update(task, completed=total)

    parts = [NgramStats.read_parquet(p) for p in sorted(done_paths)]
    merged = NgramStats.merge(parts)
    merged.write_parquet(out / "merged.parquet")

    import polars as pl

    qcol = [q if isinstance(q, str) else json.dumps(q) for q in qs]
    tmp = out / ".queries.parquet.tmp"
    pl.DataFrame({"query": qcol, "count": merged.counts, "doc_freq": merged.doc_freq}).write_parquet(tmp)
    tmp.replace(out / "queries.parquet")
    if ps:
        a = [x if isinstance(x, str) else json.dumps(x) for x, _ in ps]
        b = [y if isinstance(y, str) else json.dumps(y) for _, y in ps]
        tmp = out / ".pairs.parquet.tmp"
        pl.DataFrame({"a": a, "b": b, "cooccurrence": merged.cooccurrence}).write_parquet(tmp)
        tmp.replace(out / "pairs.parquet")
    typer.echo(
        f"merged {len(parts)} partials: {merged.n_documents:,} documents, {merged.n_tokens:,} tokens, "
        f"{merged.n_skipped:,} skipped lines -> {out / 'merged.parquet'}"
    )
