"""Extractable memorization (Carlini et al. 2023, "Quantifying memorization across neural
language models"; Biderman et al. 2023, Pythia): prompt the model with the first ``k``
tokens of a training sequence, greedy-decode the next ``m``, and compare them with the
sequence's true continuation.

A sequence is *memorized* when all ``m`` greedy tokens equal the true ones; the matched
prefix length is how many leading tokens agree before the first mismatch (``m`` when
memorized). Greedy decoding is batched: every prompt has exactly ``k`` tokens, so batches
need no padding; HuggingFace models decode with their key/value cache, other callables by
re-running the growing sequence. The plain one-at-a-time loop is
:func:`memscore.reference.lm.extractable_pure`.
"""

from __future__ import annotations

import inspect
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from .._torch import require_torch
from .._validate import check_int
from .load import check_context
from .scoring import _is_hf, model_logits

__all__ = ["Extraction", "as_token_matrix", "extractable", "greedy_continuations"]


class Extraction(NamedTuple):
    """Per-sequence result of :func:`extractable`."""

    memorized: npt.NDArray[np.bool_]
    """Exact match of all ``m`` greedy tokens, shape ``(N,)``."""
    matched: npt.NDArray[np.int64]
    """Leading greedy tokens equal to the true continuation (0..m), shape ``(N,)``."""
    generated: npt.NDArray[np.int64]
    """The greedy tokens, shape ``(N, m)``."""


def as_token_matrix(sequences: Any, tokenizer: Any, length: int) -> npt.NDArray[np.int64]:
    """The first ``length`` token ids of each sequence, as an ``(N, length)`` int64 matrix.

    Parameters
    ----------
    sequences : 2-D integer array, sequence of token-id sequences, or sequence of str
        Strings are encoded with ``tokenizer`` (no special tokens added).
    tokenizer : transformers tokenizer or tokenizers.Tokenizer, optional
        Needed only for strings.
    length : int
        Tokens kept per sequence (``k + m``).

    Returns
    -------
    numpy.ndarray

    Raises
    ------
    ValueError
        A sequence shorter than ``length``, or strings without a tokenizer.
    TypeError
        Sequences that are neither token ids nor strings.
    """
    if isinstance(sequences, np.ndarray) and sequences.ndim == 2:
        if sequences.dtype.kind not in "iu":
            raise TypeError(f"sequences: expected integer token ids, got dtype {sequences.dtype}")
        rows: list[Any] = list(sequences)
    else:
        rows = list(sequences)
    if rows and all(isinstance(r, str) for r in rows):
        if tokenizer is None:
            raise ValueError("sequences are strings: pass the model's tokenizer to encode them")
        if hasattr(tokenizer, "encode_batch") and not hasattr(tokenizer, "batch_encode_plus"):
            rows = [e.ids for e in tokenizer.encode_batch(rows, add_special_tokens=False)]
        else:
            rows = list(tokenizer(rows, add_special_tokens=False)["input_ids"])
    out = np.zeros((len(rows), length), dtype=np.int64)
    for i, r in enumerate(rows):
        if isinstance(r, str):
            raise TypeError("sequences: expected all strings or all token-id sequences, got a mix")
        a = np.asarray(r)
        if a.ndim != 1 or (a.size and a.dtype.kind not in "iu"):
            raise TypeError(f"sequences[{i}]: expected a 1-D sequence of token ids, got {a.dtype} of shape {a.shape}")
        if a.size < length:
            raise ValueError(f"sequences[{i}]: expected at least k + m = {length} tokens, got {a.size}")
        if a.size and a.min() < 0:
            raise ValueError(f"sequences[{i}]: negative token id {int(a.min())}")
        out[i] = a[:length]
    return out


def greedy_continuations(
    model: Any, prompts: npt.NDArray[np.int64], m: int, *, batch_size: int = 32, device: str | Any = "cpu"
) -> npt.NDArray[np.int64]:
    """The ``m`` greedy (argmax) tokens after each prompt, batched.

    Parameters
    ----------
    model : torch.nn.Module or callable
        A HuggingFace causal LM or a callable ``(B, L) -> (B, L, V)`` logits.
    prompts : numpy.ndarray
        ``(N, k)`` int64 token ids, k >= 1.
    m : int
        Tokens to generate (>= 1).
    batch_size : int, default 32
        Prompts per batch.
    device : str or torch.device, default "cpu"

    Returns
    -------
    numpy.ndarray
        ``(N, m)`` int64.
    """
    torch = require_torch("memscore.lm.extractable", extra="lm")
    dev = torch.device(device)
    hf = _is_hf(model)
    params = inspect.signature(model.forward).parameters if hf else {}
    # transformers >= 5.2x names the key/value cache ``cache``; earlier versions ``past_key_values``
    cache_kw = "cache" if "cache" in params else "past_key_values"
    last_only = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
    out = np.zeros((prompts.shape[0], m), dtype=np.int64)
    for start in range(0, prompts.shape[0], batch_size):
        ids = torch.as_tensor(prompts[start : start + batch_size], dtype=torch.long, device=dev)
        steps = []
        with torch.no_grad():
            if hf:  # one pass over the prompt, then one token at a time from the cache
                res = model(input_ids=ids, use_cache=True, **last_only)
                for step in range(m):
                    nxt = res.logits[:, -1].argmax(-1)
                    steps.append(nxt)
                    if step + 1 < m:
                        cache = {cache_kw: getattr(res, cache_kw)}
                        res = model(input_ids=nxt[:, None], use_cache=True, **cache, **last_only)
            else:
                seq = ids
                for _ in range(m):
                    nxt = model_logits(model, seq)[:, -1].argmax(-1)
                    steps.append(nxt)
                    seq = torch.cat([seq, nxt[:, None]], dim=1)
        out[start : start + ids.shape[0]] = torch.stack(steps, dim=1).cpu().numpy()
    return out


def extractable(
    model: Any,
    tokenizer: Any,
    sequences: Any,
    k: int = 32,
    m: int = 32,
    *,
    batch_size: int = 32,
    device: str | Any = "cpu",
) -> Extraction:
    """Whether a causal LM reproduces each sequence's next ``m`` tokens from its first ``k``.

    See the module docstring. Checks run before the model does: ``k + m`` within the model's
    context, every sequence at least ``k + m`` tokens long.

    Parameters
    ----------
    model : torch.nn.Module or callable
        A HuggingFace causal LM (e.g. from :func:`load_causal_lm`) or a callable
        ``(B, L) int64 tensor -> (B, L, V)`` logits.
    tokenizer : tokenizer or None
        Encodes ``sequences`` given as strings; None for token ids.
    sequences : 2-D integer array, sequence of token-id sequences, or sequence of str
        The training sequences; tokens past ``k + m`` are ignored.
    k : int, default 32
        Prompt tokens (>= 1).
    m : int, default 32
        Continuation tokens (>= 1).
    batch_size : int, default 32
        Prompts decoded together (>= 1).
    device : str or torch.device, default "cpu"
        Where the model runs.

    Returns
    -------
    Extraction
        ``memorized`` (bool), ``matched`` (int64, matched-prefix length) and ``generated``.

    Raises
    ------
    ValueError
        ``k + m`` longer than the model's context, a sequence shorter than ``k + m``, a token
        id outside the model's vocabulary, bad ``k``, ``m`` or ``batch_size``.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from memscore.lm import extractable
    >>> def copy_last(ids):  # a "model" that always predicts the token it just saw
    ...     return torch.nn.functional.one_hot(ids, 8).float()
    >>> r = extractable(copy_last, None, np.array([[1, 2, 2, 2], [1, 2, 3, 3]]), k=2, m=2)
    >>> r.memorized.tolist(), r.matched.tolist()
    ([True, False], [2, 0])
    """
    check_int(k, "k", 1)
    check_int(m, "m", 1)
    check_int(batch_size, "batch_size", 1)
    check_context(model, k + m)
    tokens = as_token_matrix(sequences, tokenizer, k + m)
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    if isinstance(vocab, int) and tokens.size and int(tokens.max()) >= vocab:
        raise ValueError(
            f"sequences: token id {int(tokens.max())} is outside the model's vocabulary of {vocab} "
            "(a corpus tokenized with another tokenizer?)"
        )
    generated = greedy_continuations(model, tokens[:, :k], m, batch_size=batch_size, device=device)
    equal = generated == tokens[:, k:]
    # leading run of matches: the first mismatch's index, or m when all match
    matched = np.where(equal.all(axis=1), m, np.argmin(equal, axis=1)).astype(np.int64)
    return Extraction(memorized=equal.all(axis=1), matched=matched, generated=generated)
