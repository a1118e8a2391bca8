"""The Pythia memorization protocol (Biderman et al. 2023, "Emergent and predictable
memorization in large language models"): training sequences addressed by their position
in the training order, scored at several training checkpoints.

Pythia's preshuffled Pile is a Megatron dataset of 2,049-token rows, read 1,024 rows per
step in order, so the checkpoint at step ``s`` (hub revision ``"step{s}"``) has seen rows
``[0, 1024 * s)``. For each row the model is prompted with its first ``k`` tokens and
greedy-decodes ``m``; the *memorization score* is the fraction of the ``m`` tokens equal to
the row's own (position by position), and the row is *memorized* when all are. Following
the same rows across checkpoints answers Biderman et al.'s question: does memorization at
an early checkpoint predict memorization at the end (precision and recall)?

- :func:`training_sequences`: rows by index from a Megatron corpus (its sequences) or a
  token corpus (its documents);
- :func:`memorization_scores`: exact match, score and matched prefix of one model, plus
  each sequence's duplicate count in the corpus from the n-gram engine;
- :func:`memorization_over_checkpoints`: the same rows at several revisions, one table;
- :func:`checkpoint_summary` and :func:`plot_checkpoints`: per step, the memorized
  fraction and mean score of the rows seen, precision / recall against the final
  checkpoint, and the three plots.

Decoding goes through :mod:`memscore.lm.extract`'s batched greedy loop on the executor
seam (:func:`memscore.lm._blocks.run_blocks`): every (checkpoint x block of rows) is one
task, so ``executor="ray", gpus_per_task=1`` spreads the checkpoints over a cluster's GPUs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from .._plot import save_figure
from .._validate import check_int
from ..executors import ExecutorLike
from ..ngrams.corpus import Corpus
from ._blocks import as_source, check_model, model_name
from .extract import check_vocab, compare, decode_models
from .load import ModelSpec
from .sampler import duplicate_counts, log2_bin, token_shard_arrays

__all__ = [
    "PYTHIA_ROWS_PER_STEP",
    "PYTHIA_SEQUENCE_LENGTH",
    "checkpoint_summary",
    "memorization_over_checkpoints",
    "memorization_scores",
    "parse_rows",
    "plot_checkpoints",
    "revision_model",
    "revision_step",
    "training_sequences",
]

#: Tokens per row of Pythia's preshuffled Pile (2,048 + 1).
PYTHIA_SEQUENCE_LENGTH = 2049
#: Rows per training step of every Pythia model (batch size 1,024).
PYTHIA_ROWS_PER_STEP = 1024


def parse_rows(spec: str | range | Sequence[int] | npt.NDArray[np.integer[Any]]) -> npt.NDArray[np.int64]:
    """Row indices from ``"A:B"`` (rows A..B-1), ``"A:B:STEP"``, a range or a sequence of ints.

    Raises
    ------
    ValueError
        A malformed or empty range, negative rows.

    Examples
    --------
    >>> parse_rows("10:14").tolist()
    [10, 11, 12, 13]
    >>> parse_rows("0:2048:1024").tolist()
    [0, 1024]
    """
    if isinstance(spec, str):
        m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*(?::\s*(\d+)\s*)?", spec)
        if not m:
            raise ValueError(f"rows: expected 'A:B' or 'A:B:STEP' with integers 0 <= A < B, got {spec!r}")
        a, b, step = int(m[1]), int(m[2]), int(m[3] or 1)
        if a >= b or step < 1:
            raise ValueError(f"rows: expected A < B and STEP >= 1, got {spec!r}")
        spec = range(a, b, step)
    rows = np.asarray(list(spec) if isinstance(spec, range) else spec)
    if rows.ndim != 1 or (rows.size and rows.dtype.kind not in "iu"):
        raise ValueError(f"rows: expected a 1-D sequence of row indices, got {rows.dtype} of shape {rows.shape}")
    if rows.size == 0:
        raise ValueError("rows: no rows given")
    if rows.min() < 0:
        raise ValueError(f"rows: row indices must not be negative, got {int(rows.min())}")
    return rows.astype(np.int64)


def _row_counts(corpus: Corpus) -> list[int]:
    """Rows of each shard: a Megatron shard's sequences, a token shard's documents."""
    out = []
    for s in corpus._shards:
        if s.kind == "megatron":
            out.append(s.payload.n_seqs)
        else:
            out.append(len(token_shard_arrays(Corpus([s], "tokens", None))[0][1]))
    return out


def training_sequences(
    corpus: Corpus, rows: str | range | Sequence[int] | npt.NDArray[np.integer[Any]], *, length: int | None = None
) -> npt.NDArray[np.int64]:
    """Training rows by index, as an ``(N, L)`` int64 matrix.

    Rows are numbered across the shards in order: a Megatron shard's rows are its
    sequences (what a Megatron / GPT-NeoX training run reads, one batch of them per step),
    a token shard's rows its documents.

    Parameters
    ----------
    corpus : Corpus
        A token corpus (:meth:`Corpus.from_megatron`, :meth:`Corpus.from_token_files`,
        :meth:`Corpus.from_tokens`).
    rows : str, range or sequence of int
        ``"A:B"`` or indices (see :func:`parse_rows`).
    length : int, optional
        Keep the first ``length`` tokens of each row (every row must have that many);
        default: all, and every row must have the same length.

    Returns
    -------
    numpy.ndarray
        ``(len(rows), L)`` int64.

    Raises
    ------
    ValueError
        A text corpus, rows of unequal length without ``length``, a row shorter than
        ``length``.
    IndexError
        A row past the corpus's rows.
    memscore.CorpusError
        A damaged index or ``.bin`` (named).

    Examples
    --------
    >>> import numpy as np
    >>> from memscore.ngrams import Corpus
    >>> c = Corpus.from_tokens(np.arange(9, dtype=np.uint16), [0, 3, 6])
    >>> training_sequences(c, "1:3").tolist()
    [[3, 4, 5], [6, 7, 8]]
    """
    if corpus.kind != "tokens":
        raise ValueError(
            f"corpus: expected a token corpus (Megatron, .npy or token arrays), got a {corpus.kind} corpus"
        )
    if length is not None:
        check_int(length, "length", 1)
    idx = parse_rows(rows)
    counts = _row_counts(corpus)
    bounds = np.cumsum([0, *counts])
    if idx.max() >= bounds[-1]:
        raise IndexError(f"rows: row {int(idx.max())} is past the {int(bounds[-1])} rows of the corpus")
    shard = np.searchsorted(bounds, idx, side="right") - 1
    got: list[npt.NDArray[np.int64]] = [np.zeros(0, np.int64)] * idx.size
    for k in np.unique(shard).tolist():
        sel = np.flatnonzero(shard == k)
        local = idx[sel] - bounds[k]
        s = corpus._shards[k]
        if s.kind == "megatron":
            seqs = s.payload.rows(local)
        else:
            tokens, offsets = token_shard_arrays(Corpus([s], "tokens", None))[0]
            ends = np.append(offsets[1:], tokens.shape[0])
            seqs = [np.asarray(tokens[offsets[r] : ends[r]], dtype=np.int64) for r in local.tolist()]
        for i, q in zip(sel.tolist(), seqs, strict=True):
            got[i] = q
    lens = np.array([g.size for g in got])
    if length is None:
        if len(set(lens.tolist())) > 1:
            raise ValueError(
                f"rows: lengths differ ({int(lens.min())} .. {int(lens.max())} tokens); pass length= to keep "
                "the first `length` tokens of each"
            )
        length = int(lens[0])
    short = np.flatnonzero(lens < length)
    if short.size:
        raise ValueError(f"rows: row {int(idx[short[0]])} has {int(lens[short[0]])} tokens, expected at least {length}")
    return np.stack([g[:length] for g in got]) if got else np.zeros((0, length), np.int64)


def revision_step(revision: str | None) -> int | None:
    """The training step a revision names (``"step143000"`` -> 143000), else None.

    Examples
    --------
    >>> revision_step("step1000"), revision_step("main")
    (1000, None)
    """
    m = re.fullmatch(r"step(\d+)", revision or "")
    return int(m[1]) if m else None


def revision_model(name: str | os.PathLike[str], revision: str | None, dtype: str = "auto") -> ModelSpec:
    """The model of one checkpoint: ``NAME/REVISION`` when ``NAME`` is a local folder holding
    a folder per revision (``DIR/step1000/config.json``, ...), else the hub id ``NAME`` at
    ``revision``.

    Returns
    -------
    ModelSpec
    """
    text = os.fspath(name)
    if revision is not None and (Path(text) / revision / "config.json").is_file():
        return ModelSpec(str(Path(text) / revision), dtype=dtype)
    return ModelSpec(text, dtype=dtype, revision=revision)


def memorization_scores(
    model: Any,
    rows: npt.NDArray[np.integer[Any]],
    k: int = 32,
    m: int = 32,
    *,
    corpus: Corpus | None = None,
    row_ids: npt.NDArray[np.integer[Any]] | None = None,
    batch_size: int = 32,
    device: str | Any | None = None,
    executor: ExecutorLike = None,
    gpus_per_task: float | None = None,
    progress: bool = False,
) -> pl.DataFrame:
    """Per row: whether ``model`` reproduces tokens ``k:k+m`` from the first ``k`` (greedy),
    the fraction it reproduces, and how often the ``k + m`` tokens occur in ``corpus``.

    Parameters
    ----------
    model : model, LoadedLM, ModelSpec, str or path
        As in :func:`memscore.lm.extractable`.
    rows : numpy.ndarray
        ``(N, >= k + m)`` token ids (:func:`training_sequences`).
    k, m : int, default 32
        Prompt and continuation tokens (Pythia's protocol: 32 and 32).
    corpus : Corpus, optional
        Counts each row's first ``k + m`` tokens over the corpus (one pass of the n-gram
        engine); None leaves ``duplicates`` null.
    row_ids : numpy.ndarray, optional
        The rows' indices in the training order (default ``0..N-1``).
    batch_size, device, executor, gpus_per_task, progress
        As in :func:`memscore.lm.extractable`.

    Returns
    -------
    polars.DataFrame
        ``row``, ``memorized`` (all ``m`` equal), ``score`` (fraction of the ``m`` equal,
        position by position), ``matched`` (leading tokens equal), ``duplicates``.

    Raises
    ------
    ValueError
        As in :func:`memscore.lm.extractable`.
    """
    return memorization_over_checkpoints(
        [model],
        rows,
        k,
        m,
        corpus=corpus,
        row_ids=row_ids,
        batch_size=batch_size,
        device=device,
        executor=executor,
        gpus_per_task=gpus_per_task,
        progress=progress,
    ).select("row", "memorized", "score", "matched", "duplicates")


def memorization_over_checkpoints(
    models: Sequence[Any],
    rows: npt.NDArray[np.integer[Any]],
    k: int = 32,
    m: int = 32,
    *,
    revisions: Sequence[str | None] | None = None,
    corpus: Corpus | None = None,
    duplicates: npt.NDArray[np.integer[Any]] | None = None,
    row_ids: npt.NDArray[np.integer[Any]] | None = None,
    rows_per_step: int = PYTHIA_ROWS_PER_STEP,
    batch_size: int = 32,
    device: str | Any | None = None,
    executor: ExecutorLike = None,
    gpus_per_task: float | None = None,
    progress: bool = False,
) -> pl.DataFrame:
    """The same rows scored at several checkpoints, one table.

    Parameters
    ----------
    models : sequence of model, LoadedLM, ModelSpec, str or path
        One per checkpoint (:func:`revision_model` names them).
    rows : numpy.ndarray
        ``(N, >= k + m)`` token ids.
    k, m : int
        Prompt and continuation tokens.
    revisions : sequence of str, optional
        The revision of each model (``"step1000"``...): gives ``step``. Default: each
        ``ModelSpec``'s revision, else None.
    corpus : Corpus, optional
        Counts the duplicates of each row's ``k + m`` tokens (one pass for all models).
    duplicates : numpy.ndarray, optional
        The counts, when already known (then ``corpus`` is not read).
    row_ids : numpy.ndarray, optional
        The rows' indices in the training order (default ``0..N-1``).
    rows_per_step : int, default 1024
        Rows per training step: row ``r`` is seen by steps ``> r // rows_per_step``.
    batch_size, device, executor, gpus_per_task, progress
        As in :func:`memscore.lm.extractable`.

    Returns
    -------
    polars.DataFrame
        One row per (checkpoint, row): ``model``, ``revision``, ``step`` (null when the
        revision names none), ``row``, ``seen`` (the checkpoint trained on the row; null
        without a step), ``memorized``, ``score``, ``matched``, ``duplicates``.

    Raises
    ------
    ValueError
        Bad sizes, rows shorter than ``k + m``, ``k + m`` past a model's context, token
        ids past its vocabulary, NaN logits; ``revisions`` or ``row_ids`` of another length.
    """
    check_int(k, "k", 1)
    check_int(m, "m", 1)
    check_int(batch_size, "batch_size", 1)
    check_int(rows_per_step, "rows_per_step", 1)
    tokens = np.asarray(rows)
    if tokens.ndim != 2 or (tokens.size and tokens.dtype.kind not in "iu"):
        raise ValueError(f"rows: expected an (N, L) integer matrix, got {tokens.dtype} of shape {tokens.shape}")
    if tokens.shape[1] < k + m:
        raise ValueError(f"rows: {tokens.shape[1]} tokens per row, expected at least k + m = {k + m}")
    tokens = np.ascontiguousarray(tokens[:, : k + m], dtype=np.int64)
    n = tokens.shape[0]
    ids = np.arange(n, dtype=np.int64) if row_ids is None else np.asarray(row_ids, dtype=np.int64)
    if ids.shape != (n,):
        raise ValueError(f"row_ids: expected {n} row indices, got shape {ids.shape}")
    sources = [as_source(x) for x in models]
    revs = list(revisions) if revisions is not None else [getattr(s, "revision", None) for s in sources]
    if len(revs) != len(sources):
        raise ValueError(f"revisions: expected one per model ({len(sources)}), got {len(revs)}")
    for src in sources:
        check_vocab(tokens, check_model(src, k + m))
    if duplicates is None and corpus is not None:
        duplicates = duplicate_counts(corpus, tokens, progress=progress, executor=executor)
    dup = None if duplicates is None else np.asarray(duplicates, dtype=np.int64)
    if dup is not None and dup.shape != (n,):
        raise ValueError(f"duplicates: expected {n} counts, got shape {dup.shape}")
    decoded = decode_models(sources, tokens[:, :k], m, batch_size, device, executor, gpus_per_task, progress)
    parts = []
    for src, rev, (generated, _) in zip(sources, revs, decoded, strict=True):
        r = compare(generated, tokens[:, k:])
        step = revision_step(rev)
        parts.append(
            pl.DataFrame(
                {
                    "model": [model_name(src)] * n,
                    "revision": pl.Series([rev] * n, dtype=pl.String),
                    "step": pl.Series([step] * n, dtype=pl.Int64),
                    "row": ids,
                    "seen": pl.Series(ids < step * rows_per_step if step is not None else [None] * n, dtype=pl.Boolean),
                    "memorized": r.memorized,
                    "score": (generated == tokens[:, k:]).mean(axis=1),
                    "matched": r.matched,
                    "duplicates": pl.Series(dup if dup is not None else [None] * n, dtype=pl.Int64),
                }
            )
        )
    return pl.concat(parts)


def checkpoint_summary(table: pl.DataFrame) -> pl.DataFrame:
    """Per checkpoint (in step order), over the rows it has seen (all rows when its step is
    unknown): ``n``, ``memorized`` (fraction), ``mean_score``, and against the last
    checkpoint's memorized rows (Biderman et al.'s question), ``precision`` (memorized now
    and at the end / memorized now) and ``recall`` (memorized now and at the end /
    memorized at the end), NaN where undefined.

    Parameters
    ----------
    table : polars.DataFrame
        From :func:`memorization_over_checkpoints`.

    Returns
    -------
    polars.DataFrame
        ``model``, ``revision``, ``step``, ``n``, ``memorized``, ``mean_score``,
        ``precision``, ``recall``.
    """
    need = {"model", "revision", "step", "row", "seen", "memorized", "score"}
    if not need <= set(table.columns):
        raise ValueError(f"table: expected columns {sorted(need)}, got {table.columns}")
    order = table.select("model", "revision", "step").unique(maintain_order=True)
    order = order.with_row_index("_order").sort("step", "_order", nulls_last=True)
    last = order.row(order.height - 1, named=True)
    final = table.filter((pl.col("model") == last["model"]) & (pl.col("revision").eq_missing(last["revision"])))
    final_mem = dict(zip(final["row"].to_list(), final["memorized"].to_list(), strict=True))
    out = []
    for c in order.iter_rows(named=True):
        t = table.filter((pl.col("model") == c["model"]) & (pl.col("revision").eq_missing(c["revision"])))
        t = t.filter(pl.col("seen").fill_null(True))
        now = t["memorized"].to_numpy().astype(bool)
        end = np.array([bool(final_mem.get(r, False)) for r in t["row"].to_list()], dtype=bool)
        both = float((now & end).sum())
        out.append(
            {
                "model": c["model"],
                "revision": c["revision"],
                "step": c["step"],
                "n": t.height,
                "memorized": float(now.mean()) if now.size else float("nan"),
                "mean_score": float(t["score"].mean()) if t.height else float("nan"),  # type: ignore[arg-type]
                "precision": both / now.sum() if now.sum() else float("nan"),
                "recall": both / end.sum() if end.sum() else float("nan"),
            }
        )
    return pl.DataFrame(
        out,
        schema={
            "model": pl.String,
            "revision": pl.String,
            "step": pl.Int64,
            "n": pl.Int64,
            "memorized": pl.Float64,
            "mean_score": pl.Float64,
            "precision": pl.Float64,
            "recall": pl.Float64,
        },
    )


def plot_checkpoints(table: pl.DataFrame, out: str | os.PathLike[str], *, title: str | None = None) -> list[Path]:
    """The three plots of the protocol, written atomically into folder ``out``:
    ``score_vs_step.png`` (memorized fraction and mean score of the rows seen, by step),
    ``score_vs_duplicates.png`` (mean score per log2 duplicate-count bin, one line per
    checkpoint; needs ``duplicates``) and ``precision_recall.png`` (predicting the last
    checkpoint's memorization from each earlier one).

    Parameters
    ----------
    table : polars.DataFrame
        From :func:`memorization_over_checkpoints`.
    out : path
        An existing folder.
    title : str, optional

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    summary = checkpoint_summary(table)
    x = summary["step"].to_numpy().astype(float) if summary["step"].null_count() == 0 else np.arange(summary.height)
    xlabel = "training step" if summary["step"].null_count() == 0 else "checkpoint"
    written = []

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.plot(x, summary["mean_score"].to_numpy(), marker="o", label="mean memorization score")
    ax.plot(x, summary["memorized"].to_numpy(), marker="s", label="fraction memorized (exact)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("over the rows seen by the checkpoint")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    written.append(Path(save_figure(fig, out / "score_vs_step.png", dpi=120)))

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    dups = table.filter(pl.col("duplicates").is_not_null() & pl.col("seen").fill_null(True))
    if dups.height:
        dups = dups.with_columns(pl.Series("bin", log2_bin(np.maximum(dups["duplicates"].to_numpy(), 1))))
        for c in summary.iter_rows(named=True):
            g = (
                dups.filter((pl.col("model") == c["model"]) & pl.col("revision").eq_missing(c["revision"]))
                .group_by("bin")
                .agg(pl.col("score").mean())
                .sort("bin")
            )
            ax.plot(
                2.0 ** g["bin"].to_numpy() * np.sqrt(2),
                g["score"].to_numpy(),
                marker="o",
                label=str(c["revision"] or c["model"]),
            )
        ax.set_xscale("log")
        ax.legend(fontsize=7)
    ax.set_xlabel("duplicates of the (k + m)-token sequence in the corpus (log2 bins)")
    ax.set_ylabel("mean memorization score")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    written.append(Path(save_figure(fig, out / "score_vs_duplicates.png", dpi=120)))

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.plot(x, summary["precision"].to_numpy(), marker="o", label="precision")
    ax.plot(x, summary["recall"].to_numpy(), marker="s", label="recall")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("predicting memorization at the last checkpoint")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    written.append(Path(save_figure(fig, out / "precision_recall.png", dpi=120)))
    return written
