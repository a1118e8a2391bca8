"""Batched forward passes of a causal LM: logits of padded batches and per-token
log-probabilities of many sequences (the scoring loop the task-gram study and the
memorization measurements share)."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .._torch import require_torch
from .._validate import check_int
from ..executors import ExecutorLike
from ._blocks import as_source, check_finite_rows, check_model, materialize, run_blocks

__all__ = ["logprob_block", "model_logits", "token_logprobs"]


def _is_hf(model: Any) -> bool:
    """Whether the model's ``forward`` takes ``input_ids`` (a HuggingFace-style model)."""
    forward = getattr(model, "forward", None)
    try:
        return forward is not None and "input_ids" in inspect.signature(forward).parameters
    except (TypeError, ValueError):
        return False


def model_logits(model: Any, ids: Any, mask: Any | None = None) -> Any:
    """Logits ``(B, L, V)`` of a causal LM on a batch of token ids.

    Parameters
    ----------
    model : torch.nn.Module or callable
        A HuggingFace model (called with ``input_ids`` and ``attention_mask``, its ``.logits``
        used) or any callable ``(B, L) int64 tensor -> (B, L, V)`` logits.
    ids : torch.Tensor
        ``(B, L)`` int64 token ids.
    mask : torch.Tensor, optional
        ``(B, L)`` attention mask (1 = token, 0 = padding); HuggingFace models only.

    Returns
    -------
    torch.Tensor

    Raises
    ------
    ValueError
        Logits of the wrong shape.
    """
    if _is_hf(model):
        out = model(input_ids=ids, attention_mask=mask) if mask is not None else model(input_ids=ids)
    else:
        out = model(ids)
    logits = getattr(out, "logits", out)
    if isinstance(logits, (tuple, list)):
        logits = logits[0]
    if logits.ndim != 3 or tuple(logits.shape[:2]) != tuple(ids.shape):
        raise ValueError(
            f"model: expected logits of shape (B, L, V) = ({ids.shape[0]}, {ids.shape[1]}, V), "
            f"got {tuple(logits.shape)}"
        )
    return logits


def token_logprobs(
    model: Any,
    sequences: Sequence[Sequence[int]],
    *,
    batch_size: int = 16,
    device: str | Any | None = None,
    executor: ExecutorLike = None,
    gpus_per_task: float | None = None,
    progress: bool = False,
) -> list[npt.NDArray[np.float64]]:
    """``log p(token_p | tokens < p)`` at every position of every sequence.

    Sequences are right-padded per batch (padding is masked for HuggingFace models and never
    read by a causal model at earlier positions), run under ``torch.no_grad()`` on
    ``device``; log-softmax in float32 whatever the model's dtype.

    Parameters
    ----------
    model : torch.nn.Module, callable, LoadedLM, ModelSpec, str or path
        As in :func:`model_logits`, or a model named by a folder / hub id; what the tasks
        receive is as in :func:`memscore.lm.extractable`.
    sequences : sequence of sequences of int
        Token ids (an empty sequence gives an empty array).
    batch_size : int, default 16
        Sequences per forward pass (>= 1).
    device : str or torch.device, optional
        Where the model runs (default: ``"cuda"`` when each task holds a GPU, else
        ``"cpu"``; a LoadedLM's own device in process).
    executor : None, str or Executor, optional
        Who scores: the sequences are split into contiguous blocks whose boundaries are
        multiples of ``batch_size`` (one block with the default LocalExecutor), one task
        per block, merged in order: bit-identical whichever executor runs them.
    gpus_per_task : float, optional
        GPUs each task holds (default: the executor's ``gpus_per_task``).
    progress : bool, default False
        One progress bar over the sequences.

    Returns
    -------
    list of numpy.ndarray
        float64, one array per sequence of its length; position 0 (no prediction) is NaN.

    Raises
    ------
    ValueError
        Logits of the wrong shape, a bad ``batch_size``, or a NaN log-probability at a
        position of a sequence (NaN or +inf logits; the message names the model and the
        sequences). ``-inf`` (a token of probability 0) is a value, not an error.
    memscore.ClusterError
        No worker has the GPUs of one task, or a task lost its worker too often.

    Examples
    --------
    >>> import torch
    >>> uniform = lambda ids: torch.zeros(*ids.shape, 4)  # every token has p = 1/4
    >>> [lp.round(3).tolist() for lp in token_logprobs(uniform, [[1, 2, 3], [0]], executor="threads:2")]
    [[nan, -1.386, -1.386], [nan]]
    """
    require_torch("token_logprobs")
    check_int(batch_size, "batch_size", 1)
    seqs = [[int(t) for t in s] for s in sequences]
    source = as_source(model)
    check_model(source)
    [blocks] = run_blocks(
        logprob_block,
        [source],
        seqs,
        len(seqs),
        (batch_size,),
        executor=executor,
        gpus_per_task=gpus_per_task,
        device=device,
        batch_size=batch_size,
        desc="log-probabilities",
        unit="sequences",
        progress=progress,
    )
    return [lp for block in blocks for lp in block]


def padded_batch(batch: Sequence[Sequence[int]]) -> tuple[Any, Any]:
    """``(ids, mask)``: ``(B, L)`` int64 tensors of the sequences right-padded with token 0
    to the longest (at least 1), and the attention mask (1 = token, 0 = padding)."""
    torch = require_torch("token_logprobs")
    length = max(1, *(len(s) for s in batch))
    ids_t = torch.zeros((len(batch), length), dtype=torch.long)
    mask_t = torch.zeros((len(batch), length), dtype=torch.long)
    for r, s in enumerate(batch):
        ids_t[r, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask_t[r, : len(s)] = 1
    return ids_t, mask_t


def logprob_block(
    source: Any, device: Any, sequences: list[list[int]], start: int, stop: int, batch_size: int
) -> list[npt.NDArray[np.float64]]:
    """Task: the token log-probabilities of sequences ``start:stop``. ``source`` is the
    model or a ``ModelSpec`` loaded here.

    Raises
    ------
    ValueError
        A NaN log-probability at a real (not padding) position; checked once per batch.
    """
    torch = require_torch("token_logprobs")
    model = materialize(source, device)
    seqs = sequences[start:stop]
    dev = torch.device(device)
    out: list[npt.NDArray[np.float64]] = []
    for first in range(0, len(seqs), batch_size):
        batch = seqs[first : first + batch_size]
        ids_t, mask_t = padded_batch(batch)
        length = ids_t.shape[1]
        with torch.no_grad():
            logits = model_logits(model, ids_t.to(dev), mask_t.to(dev))
            logp = torch.log_softmax(logits.float(), dim=-1)
            lp = torch.full((len(batch), length), float("nan"), dtype=torch.float64)
            got = logp[:, :-1].gather(2, ids_t[:, 1:].to(dev).unsqueeze(-1)).squeeze(-1)
            # NaN or +inf logits give NaN log-probabilities; padding positions are not read
            bad = (torch.isnan(got) & mask_t[:, 1:].to(dev).bool()).any(-1)
            check_finite_rows(source, bad, start + first, "NaN log-probabilities (NaN or infinite logits)")
            lp[:, 1:] = got.double().cpu()
        lp_np = lp.numpy()
        out.extend(lp_np[r, : len(s)].copy() for r, s in enumerate(batch))
    return out
