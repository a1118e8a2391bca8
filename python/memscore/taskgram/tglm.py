"""The task-gram language model p_TG(y | x) from corpus counts.

p_TG(y | x) = C(x, y) / C(x), where both counts are taken in the same unit, **documents**:

- C(x)    = document frequency of the input n-gram x (number of documents containing x),
- C(x, y) = document co-occurrence (number of documents containing both x and y).

So p_TG(y | x) is the fraction of the documents containing x that also contain y, a number in
[0, 1] (C(x, y) <= C(x) always). Wang et al. 2024 approximate C(x, y) by min(C(x), C(y))
over a remote index; memscore counts it exactly.

Smoothing (add-α over the two outcomes "a document with x contains y / does not"):

    p_TG(y | x) = (C(x, y) + α) / (C(x) + 2α)

α = 1 (Laplace, the default) gives 1/2 when x never occurs and a finite log-probability when
y never co-occurs with x; α = 0 gives the raw ratio: log 0 = -inf for C(x, y) = 0 and NaN
(undefined) for C(x) = 0.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from .._validate import check_float
from ..executors import ExecutorLike, as_executor

if TYPE_CHECKING:
    from ..ngrams.index import CorpusIndex

__all__ = ["per_example", "taskgram_logprob", "taskgram_scores"]


def _counts(stats: Any, name: str) -> np.ndarray:
    if isinstance(stats, Mapping):
        if name not in stats:
            raise ValueError(f"stats: expected a mapping with key {name!r}, got keys {sorted(stats)}")
        value = stats[name]
    else:
        if not hasattr(stats, name):
            raise TypeError(f"stats: expected an NgramStats (or a mapping) with {name!r}, got {type(stats).__name__}")
        value = getattr(stats, name)
    arr = np.asarray(value)
    if arr.ndim != 1:
        raise ValueError(f"stats.{name}: expected a 1-d array, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(f"stats.{name}: expected integer counts, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if arr.size and arr.min() < 0:
        raise ValueError(f"stats.{name}: expected counts >= 0, got a minimum of {arr.min()}")
    return arr


def taskgram_logprob(stats: Any, *, alpha: float = 1.0) -> np.ndarray:
    """Natural-log p_TG(y | x) of each pair, from document counts.

    ``log((C(x,y) + α) / (C(x) + 2α))`` (see the module docstring for α = 0).

    Parameters
    ----------
    stats : NgramStats or mapping
        An :class:`~memscore.ngrams.NgramStats` (or a mapping) whose ``doc_freq[i]`` is
        C(x_i), the document frequency of pair i's input n-gram, and whose
        ``cooccurrence[i]`` is C(x_i, y_i), i.e. ``ngram_stats(corpus, queries=[x_i ...],
        pairs=[(x_i, y_i) ...])`` with the queries aligned to the pairs.
    alpha : float, default 1.0
        Add-α smoothing, >= 0.

    Returns
    -------
    ndarray of float64
        One value per pair; NaN where ``C(x) + 2α == 0``.

    Raises
    ------
    TypeError
        ``alpha`` is not a number.
    ValueError
        ``alpha < 0``, arrays of different lengths, or C(x, y) > C(x) (impossible for
        document counts in one corpus).

    Examples
    --------
    >>> taskgram_logprob({"doc_freq": [3, 0], "cooccurrence": [1, 0]}, alpha=1.0).round(4)
    array([-0.9163, -0.6931])
    """
    alpha = check_float(alpha, "alpha", 0.0)
    cx = _counts(stats, "doc_freq")
    cxy = _counts(stats, "cooccurrence")
    if cx.shape != cxy.shape:
        raise ValueError(
            f"stats: expected doc_freq (one per pair's x) and cooccurrence of equal length, "
            f"got {cx.shape[0]} and {cxy.shape[0]}"
        )
    if np.any(cxy > cx):
        i = int(np.argmax(cxy > cx))
        raise ValueError(
            f"stats: co-occurrence C(x,y)={cxy[i]:.0f} exceeds document frequency C(x)={cx[i]:.0f} at pair {i}; "
            "are doc_freq and cooccurrence aligned and from the same corpus?"
        )
    num = cxy + alpha
    den = cx + 2.0 * alpha
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log(num) - np.log(den)
    out[den == 0] = np.nan
    return out


def per_example(df: pl.DataFrame, column: str, out: str | None = None) -> pl.DataFrame:
    """Mean of ``column`` over each example's pairs.

    A -inf in an example's pairs makes its mean -inf; NaN pairs are left out of the mean
    (an example with only NaN pairs gets NaN).

    Parameters
    ----------
    df : polars.DataFrame
        One row per pair, with an ``example`` column.
    column : str
        The column to average.
    out : str, optional
        Name of the mean column (default: ``column``).

    Returns
    -------
    polars.DataFrame
        Columns ``example``, ``n_pairs`` and ``out``, sorted by example.

    Raises
    ------
    ValueError
        A column is missing.
    """
    if "example" not in df.columns or column not in df.columns:
        raise ValueError(f"per_example: expected columns 'example' and {column!r}, got {df.columns}")
    name = out or column
    return (
        df.group_by("example")
        .agg(
            pl.len().cast(pl.Int64).alias("n_pairs"),
            pl.col(column).filter(pl.col(column).is_not_nan()).mean().fill_null(float("nan")).alias(name),
        )
        .sort("example")
    )


def _warn_unmatched(stats: Any, n_x: int, alpha: float) -> None:
    """Warn when the counts cannot rank anything: an empty corpus, or no input n-gram in it."""
    value = "NaN" if alpha == 0 else "log(1/2)"
    if int(stats.n_documents) == 0:
        why = "the corpus has no document (empty files, or no text in the text field)"
    elif not np.asarray(stats.doc_freq).any():
        why = (
            f"none of the {n_x} input n-grams occurs in the corpus's {int(stats.n_documents)} documents (another "
            "language, or a corpus normalized differently?)"
        )
    else:
        return
    warnings.warn(
        f"taskgram_scores: {why}: every C(x) is 0, so log p_TG is {value} for every pair and correlations with it "
        "are undefined",
        UserWarning,
        stacklevel=3,
    )


def taskgram_scores(
    pairs: pl.DataFrame,
    corpus: Any,
    *,
    alpha: float = 1.0,
    progress: bool = False,
    executor: ExecutorLike = None,
    index: CorpusIndex | None = None,
) -> pl.DataFrame:
    """Count every pair of :func:`~memscore.taskgram.extract_pairs`'s output in ``corpus`` in one pass.

    Calls :func:`memscore.ngrams.ngram_stats` once with the distinct x n-grams as queries
    and the distinct (x, y) pairs. The corpus should be built with the same normalizer as
    the pairs (n-gram strings are normalized by the corpus normalizer). Use
    :func:`per_example` for the per-example mean.

    Parameters
    ----------
    pairs : polars.DataFrame
        Output of :func:`extract_pairs` (columns ``x`` and ``y``).
    corpus : Corpus
        The pretraining corpus.
    alpha : float, default 1.0
        Add-α smoothing of :func:`taskgram_logprob`.
    progress : bool, default False
        Show counting progress.
    executor : Executor or str, optional
        Who counts (as in :func:`memscore.ngrams.ngram_stats`: the default one pass in this
        process, ``"threads"``, ``"ray"``... one task per ``shards_per_task`` shards of
        ``corpus``); the counts and scores are identical whichever runs them.
    index : CorpusIndex, optional
        The corpus's index (:class:`memscore.ngrams.CorpusIndex`; a token corpus, or text
        through a subword tokenizer): the counts come from it instead of a pass, equal.

    Returns
    -------
    polars.DataFrame
        ``pairs`` with ``c_x`` (int64, C(x)), ``c_xy`` (int64, C(x, y)) and ``logp_tg``
        (float64) added.

    Warns
    -----
    UserWarning
        The corpus has no document, or none of the input n-grams occurs in it (every C(x) is
        0): log p_TG is then the same for every pair (or NaN with ``alpha=0``), and the
        correlations computed from it are undefined.

    Raises
    ------
    ValueError
        ``pairs`` lacks ``x`` or ``y``.
    TypeError
        ``executor`` is no executor (the message lists the choices).
    """
    from ..ngrams import ngram_stats

    ex = as_executor(executor)
    for c in ("x", "y"):
        if c not in pairs.columns:
            raise ValueError(f"pairs: expected columns 'x' and 'y' (from extract_pairs), got {pairs.columns}")
    uniq = pairs.select("x", "y").unique(maintain_order=True)
    if uniq.height == 0:
        return pairs.with_columns(
            pl.lit(None, pl.Int64).alias("c_x"),
            pl.lit(None, pl.Int64).alias("c_xy"),
            pl.lit(None, pl.Float64).alias("logp_tg"),
        )
    xs = uniq["x"].unique(maintain_order=True).to_list()
    pair_list = list(zip(uniq["x"].to_list(), uniq["y"].to_list(), strict=True))
    stats = ngram_stats(corpus, queries=xs, pairs=pair_list, progress=progress, executor=ex, index=index)
    _warn_unmatched(stats, len(xs), alpha)
    df_x = pl.DataFrame({"x": xs, "c_x": np.asarray(stats.doc_freq, dtype=np.int64)})
    counted = uniq.with_columns(pl.Series("c_xy", np.asarray(stats.cooccurrence, dtype=np.int64))).join(
        df_x, on="x", how="left"
    )
    logp = taskgram_logprob(
        {"doc_freq": counted["c_x"].to_numpy(), "cooccurrence": counted["c_xy"].to_numpy()}, alpha=alpha
    )
    counted = counted.with_columns(pl.Series("logp_tg", logp))
    return pairs.join(counted, on=["x", "y"], how="left", maintain_order="left")
