"""Membership-inference scores of causal language models, per sequence (the scores MIMIR
reports): loss (Yeom et al. 2018), zlib ratio and reference-model ratio (Carlini et al.
2021), Min-K% (Shi et al. 2024) and Min-K%++ (Zhang et al. 2024).

For a sequence x_1..x_L (L >= 2) the model predicts tokens 2..L; ``logits[:, t]`` predicts
``token_ids[:, t + 1]``. With ``log p(x_t)`` the log-probability of the true token and, at
that position, ``mu_t = E_{z~p}[log p(z)]`` and ``sigma_t`` the standard deviation of
``log p(z)`` under ``z ~ p``:

- ``loss`` = mean over t of ``-log p(x_t)``;
- ``min_k`` = mean of the ``n_k`` lowest ``log p(x_t)``, ``n_k = max(1, floor(k (L - 1)))``;
- ``min_k_plus_plus`` = mean of the ``n_k`` lowest ``(log p(x_t) - mu_t) / sigma_t``
  (``sigma_t`` floored at :data:`SIGMA_FLOOR`; where both ``sigma_t`` and ``log p(x_t) -
  mu_t`` are within it, the model is uniform over its tokens, the numerator is rounding,
  and the value is 0);
- ``zlib`` = ``loss / len(zlib.compress(text as UTF-8))`` (the text's compressed bytes);
- ``reference_ratio`` = ``loss - reference model's loss``.

Direction: the values are the papers' formulas, so they do not all point the same way.
``min_k`` and ``min_k_plus_plus``: higher = more likely a member; ``loss``, ``zlib`` and
``reference_ratio``: LOWER = more likely a member (:data:`HIGHER_IS_MEMBER`).
:func:`member_scores` turns a table into scores that all rise with membership, as
:func:`memscore.membership_metrics` expects.

The plain per-token loops are :mod:`memscore.reference.lm`.
"""

from __future__ import annotations

import zlib as _zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from .._stats import log_softmax
from .._torch import require_torch
from .._validate import check_float, check_int
from ..executors import ExecutorLike
from ._blocks import as_source, check_finite_rows, check_model, materialize, run_blocks
from .extract import encode_texts
from .load import LoadedLM, ModelSpec, check_causal_lm
from .scoring import model_logits, padded_batch

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

__all__ = [
    "HIGHER_IS_MEMBER",
    "SIGMA_FLOOR",
    "member_scores",
    "membership_block",
    "membership_from_logits",
    "membership_scores",
]

#: Whether a higher value of each score means "more likely a member".
HIGHER_IS_MEMBER = {
    "loss": False,
    "min_k": True,
    "min_k_plus_plus": True,
    "zlib": False,
    "reference_ratio": False,
}

#: Floor of Min-K%++'s sigma_t (a uniform next-token distribution has sigma_t = 0).
SIGMA_FLOOR = 1e-12


def membership_from_logits(logits: Any, token_ids: Any, *, k: float = 0.2, lengths: Any = None) -> pl.DataFrame:
    """Loss, Min-K% and Min-K%++ of each sequence from its logits.

    Parameters
    ----------
    logits : numpy.ndarray or torch.Tensor, shape (B, L, V)
        ``logits[b, t]`` predicts ``token_ids[b, t + 1]`` (computed in float64).
    token_ids : array-like of int, shape (B, L)
    k : float, default 0.2
        Fraction of the predicted tokens Min-K% and Min-K%++ average, in (0, 1]:
        ``n_k = max(1, floor(k (L - 1)))``.
    lengths : array-like of int, shape (B,), optional
        Tokens of each row when the batch is right-padded (each in [2, L]); positions at
        or after a row's length are never read (padding logits may be anything).

    Returns
    -------
    polars.DataFrame
        ``n_tokens``, ``loss``, ``min_k``, ``min_k_plus_plus``, one row per sequence (see
        the module for the formulas and their directions).

    Raises
    ------
    ValueError
        Shapes that disagree, L < 2, token ids outside ``[0, V)``, lengths outside
        ``[2, L]``, ``k`` outside (0, 1], or NaN / infinite logits at a read position
        (the message names the rows).
    TypeError
        Non-integer token ids or lengths.

    Examples
    --------
    >>> import numpy as np
    >>> logits = np.zeros((1, 3, 4))  # every token has p = 1/4
    >>> membership_from_logits(logits, np.array([[0, 1, 2]]), k=0.5).row(0)
    (3, 1.3862943611198906, -1.3862943611198906, 0.0)
    """
    kk = check_float(k, "k", 0.0, 1.0, low_open=True)
    x = _as_float64(logits)
    if x.ndim != 3:
        raise ValueError(f"logits: expected shape (B, L, V), got {x.shape}")
    b, length, vocab = x.shape
    ids = np.asarray(token_ids)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"token_ids: expected integer token ids, got dtype {ids.dtype}")
    if ids.shape != (b, length):
        raise ValueError(f"token_ids: expected shape (B, L) = ({b}, {length}) to match logits, got {ids.shape}")
    if length < 2:
        raise ValueError(f"logits: need L >= 2 tokens per sequence (one predicted), got L = {length}")
    n = _lengths(lengths, b, length)
    valid = np.arange(length - 1)[None, :] < (n - 1)[:, None]  # (B, L-1): predictions read
    nxt = ids[:, 1:].astype(np.int64)
    if ((nxt < 0) | (nxt >= vocab))[valid].any():
        raise ValueError(f"token_ids: expected ids in [0, {vocab}), got values in [{ids.min()}, {ids.max()}]")
    read = x[:, :-1]
    bad = ~np.isfinite(read).all(axis=-1) & valid
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise ValueError(f"logits: NaN or infinite values in sequences {_shown(rows)}; nothing is scored")
    logp = log_softmax(np.where(valid[..., None], read, 0.0))
    tok = np.take_along_axis(logp, np.where(valid, nxt, 0)[..., None], axis=-1)[..., 0]
    z = standardized(logp, tok, np)
    return _table(tok, z, n, kk)


def standardized(logp: Any, tok: Any, xp: Any) -> Any:
    """Min-K%++'s ``(log p(x_t) - mu_t) / sigma_t`` from the log-probabilities ``logp``
    (..., V) and the true tokens' ``tok`` (...): numpy arrays with ``xp = numpy`` or torch
    tensors with ``xp = torch`` (one formula for the array function and the model tasks)."""
    p = xp.exp(logp)
    mu = (p * logp).sum(-1)
    # two passes (deviations, then their mean under p): no cancellation of E[X^2] - E[X]^2
    sigma = xp.sqrt((p * (logp - mu[..., None]) ** 2).sum(-1))
    d = tok - mu
    z = d / sigma.clip(min=SIGMA_FLOOR)
    # sigma_t and the numerator both at rounding level (a uniform distribution): z = 0
    return xp.where((sigma <= SIGMA_FLOOR) & (abs(d) <= SIGMA_FLOOR), 0.0 * z, z)


def _table(tok: F64, z: F64, n: I64, k: float) -> pl.DataFrame:
    """The per-sequence scores from the per-position ``log p(x_t)`` and z-scores
    (B, L - 1), right-padded beyond ``n - 1`` predictions."""
    preds = n - 1
    valid = np.arange(tok.shape[1])[None, :] < preds[:, None]
    loss = -np.where(valid, tok, 0.0).sum(axis=1) / preds
    n_k = np.maximum(1, np.floor(k * preds).astype(np.int64))
    return pl.DataFrame(
        {
            "n_tokens": n,
            "loss": loss,
            "min_k": _mean_lowest(tok, valid, n_k),
            "min_k_plus_plus": _mean_lowest(z, valid, n_k),
        }
    )


def _mean_lowest(values: F64, valid: npt.NDArray[np.bool_], n_k: I64) -> F64:
    """Per row, the mean of the ``n_k`` lowest valid values (padding sorts last)."""
    s = np.sort(np.where(valid, values, np.inf), axis=1)
    # only the n_k lowest (finite, or -inf for a token of probability 0) enter the sums read
    cs = np.cumsum(np.where(np.arange(s.shape[1])[None, :] < n_k[:, None], s, 0.0), axis=1)
    out: F64 = cs[np.arange(s.shape[0]), n_k - 1] / n_k
    return out


def _as_float64(logits: Any) -> F64:
    if hasattr(logits, "detach"):  # a torch tensor, on any device
        logits = logits.detach().cpu().double().numpy()
    a = np.asarray(logits)
    if a.dtype == np.bool_ or a.dtype.kind not in "iuf":
        raise TypeError(f"logits: expected real numbers, got dtype {a.dtype}")
    return np.asarray(a, dtype=np.float64)


def _lengths(lengths: Any, b: int, length: int) -> I64:
    if lengths is None:
        return np.full(b, length, dtype=np.int64)
    n = np.asarray(lengths)
    if n.dtype.kind not in "iu":
        raise TypeError(f"lengths: expected integers, got dtype {n.dtype}")
    if n.shape != (b,):
        raise ValueError(f"lengths: expected shape ({b},), got {n.shape}")
    if b and (n.min() < 2 or n.max() > length):
        raise ValueError(f"lengths: expected values in [2, {length}], got values in [{n.min()}, {n.max()}]")
    return n.astype(np.int64)


def _shown(rows: Any) -> str:
    shown = ", ".join(str(int(r)) for r in rows[:10])
    return f"[{shown}{f', ... ({len(rows)} rows)' if len(rows) > 10 else ''}]"


def membership_scores(
    model: Any,
    texts_or_ids: Any,
    *,
    reference: Any = None,
    k: float = 0.2,
    tokenizer: Any = None,
    reference_tokenizer: Any = None,
    batch_size: int = 16,
    device: str | Any | None = None,
    executor: ExecutorLike = None,
    gpus_per_task: float | None = None,
    progress: bool = False,
) -> pl.DataFrame:
    """Membership scores of every sequence under a causal LM (one forward pass per model).

    Parameters
    ----------
    model : torch.nn.Module, callable, LoadedLM, ModelSpec, str or path
        As in :func:`memscore.lm.token_logprobs`.
    texts_or_ids : sequence of str, sequence of token-id sequences, or 2-D int array
        Texts are encoded with each model's tokenizer (no special tokens); every sequence
        needs at least 2 tokens.
    reference : same kinds as ``model``, optional
        A reference model: adds ``reference_loss`` and ``reference_ratio``.
    k : float, default 0.2
        Min-K% fraction, in (0, 1].
    tokenizer, reference_tokenizer : tokenizer, optional
        Default: the LoadedLM's, or the one saved with a named model. Needed to encode
        texts, and to decode token ids into the text ``zlib`` compresses (without one, and
        given ids, there is no ``zlib`` column).
    batch_size : int, default 16
        Sequences per forward pass; batches are right-padded as in :func:`token_logprobs`
        and the logits are turned into log-probabilities in float64 per batch.
    device, executor, gpus_per_task, progress
        As in :func:`memscore.lm.token_logprobs` (bit-identical under every executor).

    Returns
    -------
    polars.DataFrame
        ``sequence`` (input row), ``n_tokens``, ``loss``, ``min_k``, ``min_k_plus_plus``,
        ``zlib`` (when the text is known), ``reference_loss`` and ``reference_ratio``
        (with a reference). Directions: :data:`HIGHER_IS_MEMBER`.

    Raises
    ------
    ValueError
        A sequence of fewer than 2 tokens, texts without a tokenizer, ``k`` outside (0, 1],
        a bad ``batch_size``, sequences longer than a model's context, or NaN / infinite
        logits (names the model and the sequences).

    Examples
    --------
    >>> import torch
    >>> uniform = lambda ids: torch.zeros(*ids.shape, 4)
    >>> membership_scores(uniform, [[1, 2, 3], [0, 1]])["loss"].round(4).to_list()
    [1.3863, 1.3863]
    """
    require_torch("membership_scores")
    kk = check_float(k, "k", 0.0, 1.0, low_open=True)
    check_int(batch_size, "batch_size", 1)
    items = list(texts_or_ids)
    is_text = bool(items) and all(isinstance(t, str) for t in items)
    tok = _tokenizer_of(model, tokenizer, required=is_text)
    seqs = _sequences(items, tok if is_text else None)
    kw: dict[str, Any] = {"k": kk, "batch_size": batch_size, "device": device, "executor": executor}
    table = _score(model, seqs, gpus_per_task=gpus_per_task, progress=progress, **kw)
    table = table.with_columns(pl.Series("sequence", np.arange(len(seqs), dtype=np.int64))).select(
        "sequence", *table.columns
    )
    texts = items if is_text else ([_decode(tok, s) for s in seqs] if tok is not None else None)
    if texts is not None:
        compressed = np.array([len(_zlib.compress(t.encode("utf-8"))) for t in texts], dtype=np.float64)
        table = table.with_columns((pl.col("loss") / pl.Series(compressed)).alias("zlib"))
    if reference is not None:
        if is_text:
            ref_seqs = _sequences(items, _tokenizer_of(reference, reference_tokenizer))
        else:
            ref_seqs = seqs
        ref = _score(reference, ref_seqs, gpus_per_task=gpus_per_task, progress=progress, **kw)
        table = table.with_columns(ref["loss"].alias("reference_loss")).with_columns(
            (pl.col("loss") - pl.col("reference_loss")).alias("reference_ratio")
        )
    return table


def member_scores(table: pl.DataFrame) -> pl.DataFrame:
    """The score columns of a :func:`membership_scores` table oriented so that higher =
    more likely a member (``loss``, ``zlib`` and ``reference_ratio`` negated).

    Parameters
    ----------
    table : polars.DataFrame

    Returns
    -------
    polars.DataFrame
        The columns of :data:`HIGHER_IS_MEMBER` that ``table`` has.

    Examples
    --------
    >>> member_scores(pl.DataFrame({"loss": [2.0], "min_k": [-3.0]})).row(0)
    (-2.0, -3.0)
    """
    cols = [c for c in HIGHER_IS_MEMBER if c in table.columns]
    return table.select([pl.col(c) if HIGHER_IS_MEMBER[c] else -pl.col(c) for c in cols])


def _score(
    model: Any,
    seqs: list[list[int]],
    *,
    k: float,
    batch_size: int,
    device: Any,
    executor: ExecutorLike,
    gpus_per_task: float | None,
    progress: bool,
) -> pl.DataFrame:
    source = as_source(model)
    check_model(source, max((len(s) for s in seqs), default=None))
    [blocks] = run_blocks(
        membership_block,
        [source],
        seqs,
        len(seqs),
        (batch_size, k),
        executor=executor,
        gpus_per_task=gpus_per_task,
        device=device,
        batch_size=batch_size,
        desc="membership scores",
        unit="sequences",
        progress=progress,
    )
    return pl.concat(blocks) if blocks else _table(np.zeros((0, 1)), np.zeros((0, 1)), np.zeros(0, np.int64), k)


def membership_block(
    source: Any, device: Any, sequences: list[list[int]], start: int, stop: int, batch_size: int, k: float
) -> pl.DataFrame:
    """Task: the scores of sequences ``start:stop`` (one forward pass per batch).

    Raises
    ------
    ValueError
        NaN or infinite logits at a read position of a sequence (names the model and rows).
    """
    torch = require_torch("membership_scores")
    model = materialize(source, device)
    seqs = sequences[start:stop]
    dev = torch.device(device)
    parts = []
    for first in range(0, len(seqs), batch_size):
        batch = seqs[first : first + batch_size]
        n = np.array([len(s) for s in batch], dtype=np.int64)
        ids_t, mask_t = padded_batch(batch)
        with torch.no_grad():
            logits = model_logits(model, ids_t.to(dev), mask_t.to(dev))[:, :-1].double()
            valid = mask_t[:, 1:].to(dev).bool()
            check_finite_rows(
                source, (~torch.isfinite(logits).all(-1) & valid).any(-1), start + first, "NaN or infinite logits"
            )
            logp = torch.log_softmax(torch.where(valid[..., None], logits, 0.0), dim=-1)
            tok = logp.gather(2, ids_t[:, 1:].to(dev).unsqueeze(-1)).squeeze(-1)
            z = standardized(logp, tok, torch)
        parts.append(_table(tok.cpu().numpy(), z.cpu().numpy(), n, k))
    return pl.concat(parts) if parts else _table(np.zeros((0, 1)), np.zeros((0, 1)), np.zeros(0, np.int64), k)


def _sequences(items: list[Any], tokenizer: Any) -> list[list[int]]:
    """Token ids of every item (texts encoded), each checked to have >= 2 tokens."""
    if tokenizer is not None and items and isinstance(items[0], str):
        seqs = encode_texts(items, tokenizer)
    elif items and any(isinstance(t, str) for t in items):
        if all(isinstance(t, str) for t in items):
            raise ValueError("texts_or_ids: texts need a tokenizer: pass tokenizer= or a model saved with one")
        raise TypeError("texts_or_ids: expected all texts or all token-id sequences, got a mix")
    else:
        seqs = []
        for i, s in enumerate(items):
            a = np.asarray(s)
            if a.ndim != 1 or (a.size and a.dtype.kind not in "iu"):
                raise TypeError(f"texts_or_ids[{i}]: expected a 1-D sequence of token ids, got {a.dtype} {a.shape}")
            if a.size and a.min() < 0:
                raise ValueError(f"texts_or_ids[{i}]: negative token id {int(a.min())}")
            seqs.append([int(t) for t in a])
    for i, s in enumerate(seqs):
        if len(s) < 2:
            raise ValueError(f"texts_or_ids[{i}]: need at least 2 tokens (one is predicted), got {len(s)}")
    return seqs


def _tokenizer_of(model: Any, given: Any, required: bool = True) -> Any:
    """``given``, the LoadedLM's tokenizer, or the one saved with a named model; None for
    a plain module when not ``required``."""
    if given is not None:
        return given
    if isinstance(model, LoadedLM):
        return model.tokenizer
    if isinstance(model, ModelSpec):
        return check_causal_lm(model.name, revision=model.revision, local_files_only=model.local_files_only)[1]
    if isinstance(model, str) or hasattr(model, "__fspath__"):
        return check_causal_lm(model)[1]
    if required:
        raise ValueError("texts_or_ids: texts need a tokenizer: pass tokenizer= (the model object carries none)")
    return None


def _decode(tokenizer: Any, ids: Sequence[int]) -> str:
    text = tokenizer.decode(list(ids))
    return str(text)
