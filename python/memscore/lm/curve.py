"""Extractable memorization against duplication: the per-sequence table of several models
on one sample of training sequences, the memorized fraction per log2 duplicate-count bin,
and its plot (one curve per model), as in Carlini et al. 2023, Fig. 1b / Biderman et al. 2023."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from .._plot import save_figure
from .._validate import check_int
from ..executors import ExecutorLike
from ._blocks import as_source, check_model, model_name
from .extract import check_vocab, compare, decode_models
from .sampler import SampledSequences, log2_bin

__all__ = ["memorization_curve", "memorization_table", "plot_memorization_curve"]


def memorization_table(
    models: Sequence[Any],
    sample: SampledSequences,
    k: int,
    m: int,
    *,
    batch_size: int = 32,
    device: str | Any | None = None,
    executor: ExecutorLike = None,
    gpus_per_task: float | None = None,
    progress: bool = False,
) -> pl.DataFrame:
    """One row per (model, sequence): ``model``, ``n_params``, ``sequence``, ``shard``,
    ``position``, ``count`` (duplicates in the corpus), ``memorized``, ``matched``.

    Every model's context (and vocabulary) is checked before the first one runs. Each
    (model, block of sequences) is one task of ``executor``; in process the models are
    loaded and run one after another, on a cluster every task runs at once.

    Parameters
    ----------
    models : sequence of LoadedLM, ModelSpec, str or path
        From :func:`load_causal_lm`, or named (loaded by the tasks; see
        :func:`extractable` for what is shipped to workers). A size series or the
        revisions of one model (``ModelSpec(name, revision=...)``).
    sample : SampledSequences
        From :func:`sample_sequences` with ``length = k + m``.
    k, m : int
        Prompt and continuation lengths.
    batch_size : int, default 32
        Prompts decoded together.
    device : str or torch.device, optional
        As in :func:`extractable`.
    executor : None, str or Executor, optional
        Who decodes (see :func:`extractable`).
    gpus_per_task : float, optional
        GPUs each task holds (default: the executor's).
    progress : bool, default False
        One progress bar over the sequences (one per model in process).

    Returns
    -------
    polars.DataFrame

    Raises
    ------
    ValueError
        Windows shorter than ``k + m``, ``k + m`` past a model's context, token ids past
        its vocabulary.
    """
    check_int(k, "k", 1)
    check_int(m, "m", 1)
    check_int(batch_size, "batch_size", 1)
    if sample.tokens.shape[1] < k + m:
        raise ValueError(f"sample: windows of {sample.tokens.shape[1]} tokens, expected k + m = {k + m}")
    sources = [as_source(x) for x in models]
    for src in sources:
        check_vocab(sample.tokens[:, : k + m], check_model(src, k + m))
    if not sources:
        return pl.DataFrame()
    tokens = np.ascontiguousarray(sample.tokens[:, : k + m], dtype=np.int64)
    decoded = decode_models(sources, tokens[:, :k], m, batch_size, device, executor, gpus_per_task, progress)
    parts = []
    for src, (generated, info) in zip(sources, decoded, strict=True):
        r = compare(generated, tokens[:, k:])
        n = len(r.matched)
        parts.append(
            pl.DataFrame(
                {
                    "model": [model_name(src)] * n,
                    "n_params": np.full(n, info["n_params"], dtype=np.int64),
                    "sequence": np.arange(n, dtype=np.int64),
                    "shard": sample.shard,
                    "position": sample.position,
                    "count": sample.counts,
                    "memorized": r.memorized,
                    "matched": r.matched,
                }
            )
        )
    return pl.concat(parts)


def memorization_curve(table: pl.DataFrame) -> pl.DataFrame:
    """Memorized fraction per model and log2 duplicate-count bin.

    Parameters
    ----------
    table : polars.DataFrame
        With columns ``model``, ``count`` and ``memorized`` (:func:`memorization_table`).

    Returns
    -------
    polars.DataFrame
        ``model``, ``bin`` (b: ``2**b <= count < 2**(b+1)``), ``count_lo``, ``count_hi``
        (inclusive range), ``n``, ``memorized`` (how many), ``fraction``, ``mean_matched``
        when the table has ``matched``; sorted by model and bin.
    """
    for c in ("model", "count", "memorized"):
        if c not in table.columns:
            raise ValueError(f"table: expected columns model, count, memorized; got {table.columns}")
    t = table.with_columns(pl.Series("bin", log2_bin(table["count"].to_numpy())))
    aggs = [pl.len().alias("n"), pl.col("memorized").sum().cast(pl.Int64).alias("memorized")]
    if "matched" in table.columns:
        aggs.append(pl.col("matched").mean().alias("mean_matched"))
    out = t.group_by("model", "bin", maintain_order=True).agg(aggs).sort("model", "bin", maintain_order=True)
    return out.with_columns(
        (pl.lit(2) ** pl.col("bin")).cast(pl.Int64).alias("count_lo"),
        (pl.lit(2) ** (pl.col("bin") + 1) - 1).cast(pl.Int64).alias("count_hi"),
        (pl.col("memorized") / pl.col("n")).alias("fraction"),
    ).select(
        "model", "bin", "count_lo", "count_hi", "n", "memorized", "fraction", *(["mean_matched"] * (len(aggs) > 2))
    )


def plot_memorization_curve(curve: pl.DataFrame, path: str | Path, *, title: str | None = None) -> Path:
    """Memorized fraction against duplicate count (log x axis), one line per model, written
    atomically to ``path`` (format from the suffix).

    Parameters
    ----------
    curve : polars.DataFrame
        From :func:`memorization_curve`.
    path : str or path
        Output file (``.png``, ``.svg``, ``.pdf``).
    title : str, optional

    Returns
    -------
    pathlib.Path
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for (name,), g in curve.group_by("model", maintain_order=True):
        # geometric middle of each bin's count range
        x = np.sqrt(g["count_lo"].to_numpy() * g["count_hi"].to_numpy().astype(float))
        ax.plot(x, g["fraction"].to_numpy(), marker="o", label=str(name))
    ax.set_xscale("log")
    ax.set_xlabel("duplicates of the (k + m)-token sequence in the corpus (log2 bins)")
    ax.set_ylabel("fraction extractable (greedy exact match)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return Path(save_figure(fig, path, dpi=120))
