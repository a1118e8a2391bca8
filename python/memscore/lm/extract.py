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
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from .._torch import require_torch
from .._validate import check_int
from ..executors import ExecutorLike
from ._blocks import as_source, check_finite_rows, check_model, materialize, model_info, run_blocks
from .load import LoadedLM
from .scoring import _is_hf, model_logits

__all__ = ["Extraction", "as_token_matrix", "decode_block", "extractable", "greedy_continuations"]


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
        rows = encode_texts(rows, tokenizer)
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


def encode_texts(texts: list[str], tokenizer: Any) -> list[list[int]]:
    """The token ids of each text (no special tokens added), with a transformers tokenizer
    or a ``tokenizers.Tokenizer``.

    Raises
    ------
    ValueError
        No tokenizer.
    """
    if tokenizer is None:
        raise ValueError("sequences are strings: pass the model's tokenizer to encode them")
    if hasattr(tokenizer, "encode_batch") and not hasattr(tokenizer, "batch_encode_plus"):
        return [list(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=False)]
    return [list(r) for r in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def greedy_continuations(
    model: Any,
    prompts: npt.NDArray[np.int64],
    m: int,
    *,
    batch_size: int = 32,
    device: str | Any | None = None,
    executor: ExecutorLike = None,
    gpus_per_task: float | None = None,
    progress: bool = False,
) -> npt.NDArray[np.int64]:
    """The ``m`` greedy (argmax) tokens after each prompt, batched.

    Parameters
    ----------
    model : torch.nn.Module, callable, LoadedLM, ModelSpec, str or path
        A HuggingFace causal LM, a callable ``(B, L) -> (B, L, V)`` logits, or a model
        named by a folder / hub id (loaded by each task; see :func:`extractable`).
    prompts : numpy.ndarray
        ``(N, k)`` int64 token ids, k >= 1.
    m : int
        Tokens to generate (>= 1).
    batch_size : int, default 32
        Prompts per batch.
    device : str or torch.device, optional
        Where the model runs (default: ``"cuda"`` when each task holds a GPU, else
        ``"cpu"``; a LoadedLM's own device in process).
    executor : None, str or Executor, optional
        Who decodes the blocks of prompts (see :func:`extractable`).
    gpus_per_task : float, optional
        GPUs of one task (default: the executor's ``gpus_per_task``).
    progress : bool, default False
        One progress bar over the prompts.

    Returns
    -------
    numpy.ndarray
        ``(N, m)`` int64.

    Raises
    ------
    ValueError
        Bad ``m`` or ``batch_size``, prompts that are not an ``(N, k)`` integer matrix, or
        NaN / infinite logits at a decoded position (the message names the model and the
        rows of ``prompts``).
    memscore.ClusterError
        No worker has the GPUs of one task.
    """
    check_int(m, "m", 1)
    check_int(batch_size, "batch_size", 1)
    p = np.asarray(prompts)
    if p.ndim != 2 or p.shape[1] < 1 or (p.size and p.dtype.kind not in "iu"):
        raise ValueError(f"prompts: expected an (N, k) integer matrix with k >= 1, got {p.dtype} of shape {p.shape}")
    model = as_source(model)
    check_model(model)
    return decode_models(
        [model], p.astype(np.int64, copy=False), m, batch_size, device, executor, gpus_per_task, progress
    )[0][0]


def decode_models(
    models: Sequence[Any],
    prompts: npt.NDArray[np.int64],
    m: int,
    batch_size: int,
    device: Any,
    executor: ExecutorLike,
    gpus_per_task: float | None,
    progress: bool,
) -> list[tuple[npt.NDArray[np.int64], dict[str, Any]]]:
    """Per model, the greedy continuations of every prompt and the model's ``n_params`` and
    ``dtype``: the split -> task -> merge of the extraction (tasks: :func:`decode_block`)."""
    per_model = run_blocks(
        decode_block,
        models,
        prompts,
        prompts.shape[0],
        (m, batch_size),
        executor=executor,
        gpus_per_task=gpus_per_task,
        device=device,
        batch_size=batch_size,
        desc="greedy decoding",
        unit="sequences",
        progress=progress,
    )
    # blocks in row order: the same rows in the same batches as one pass
    return [(np.concatenate([g for g, _ in blocks]), blocks[0][1]) for blocks in per_model]


def decode_block(
    source: Any, device: Any, prompts: npt.NDArray[np.int64], start: int, stop: int, m: int, batch_size: int
) -> tuple[npt.NDArray[np.int64], dict[str, Any]]:
    """Task: the greedy continuations of prompts ``start:stop`` and the model's info
    (``n_params``, ``dtype``). ``source`` is the model or a ``ModelSpec`` loaded here."""
    model = materialize(source, device)
    # a copy: Ray hands out read-only arrays, which torch warns about
    block = np.array(prompts[start:stop], dtype=np.int64)
    return _greedy(model, block, m, batch_size, device, source, start), model_info(model)


def _greedy(
    model: Any, prompts: npt.NDArray[np.int64], m: int, batch_size: int, device: Any, source: Any, offset: int
) -> npt.NDArray[np.int64]:
    """The batched greedy loop over ``prompts`` (one block, rows ``offset...`` of the input).

    Raises
    ------
    ValueError
        Non-finite logits at a decoded position (an argmax over NaN is token 0: never
        decoded, never compared); checked once per batch.
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
        bad = torch.zeros(ids.shape[0], dtype=torch.bool, device=dev)  # rows with non-finite logits
        with torch.no_grad():
            if hf:  # one pass over the prompt, then one token at a time from the cache
                res = model(input_ids=ids, use_cache=True, **last_only)
                for step in range(m):
                    last = res.logits[:, -1]
                    bad |= ~torch.isfinite(last).all(-1).to(dev)
                    nxt = last.argmax(-1)
                    steps.append(nxt)
                    if step + 1 < m:
                        cache = {cache_kw: getattr(res, cache_kw)}
                        res = model(input_ids=nxt[:, None], use_cache=True, **cache, **last_only)
            else:
                seq = ids
                for _ in range(m):
                    last = model_logits(model, seq)[:, -1]
                    bad |= ~torch.isfinite(last).all(-1).to(dev)
                    nxt = last.argmax(-1)
                    steps.append(nxt)
                    seq = torch.cat([seq, nxt[:, None]], dim=1)
        check_finite_rows(source, bad, offset + start, "NaN or infinite logits")
        out[start : start + ids.shape[0]] = torch.stack(steps, dim=1).cpu().numpy()
    return out


def compare(generated: npt.NDArray[np.int64], truth: npt.NDArray[np.int64]) -> Extraction:
    """The :class:`Extraction` of greedy tokens ``generated`` against the true continuations."""
    m = truth.shape[1]
    equal = generated == truth
    # leading run of matches: the first mismatch's index, or m when all match
    matched = np.where(equal.all(axis=1), m, np.argmin(equal, axis=1)).astype(np.int64)
    return Extraction(memorized=equal.all(axis=1), matched=matched, generated=generated)


def extractable(
    model: Any,
    tokenizer: Any,
    sequences: Any,
    k: int = 32,
    m: int = 32,
    *,
    batch_size: int = 32,
    device: str | Any | None = None,
    executor: ExecutorLike = None,
    gpus_per_task: float | None = None,
    progress: bool = False,
) -> Extraction:
    """Whether a causal LM reproduces each sequence's next ``m`` tokens from its first ``k``.

    See the module docstring. Checks run before the model does: ``k + m`` within the model's
    context, every sequence at least ``k + m`` tokens long.

    Parameters
    ----------
    model : torch.nn.Module, callable, LoadedLM, ModelSpec, str or path
        A HuggingFace causal LM, a callable ``(B, L) int64 tensor -> (B, L, V)`` logits,
        a :class:`LoadedLM` (from :func:`load_causal_lm`), or a model folder / hub id
        (a str, path or :class:`ModelSpec`: loaded by the tasks, never in this process
        on a cluster). What the tasks receive: in process, the model itself (a name is
        loaded once); on Ray, a name, ``ModelSpec`` or ``LoadedLM`` goes by name and
        each task loads the weights onto its device (the folder must be on a file system
        every worker sees), while any other model object is pickled once into the
        object store (it must be picklable, as a HuggingFace model is, and runs on the
        device it is on).
    tokenizer : tokenizer or None
        Encodes ``sequences`` given as strings; None for token ids (or a LoadedLM's own).
    sequences : 2-D integer array, sequence of token-id sequences, or sequence of str
        The training sequences; tokens past ``k + m`` are ignored.
    k : int, default 32
        Prompt tokens (>= 1).
    m : int, default 32
        Continuation tokens (>= 1).
    batch_size : int, default 32
        Prompts decoded together (>= 1).
    device : str or torch.device, optional
        Where the model runs: default ``"cuda"`` when each task holds a GPU
        (``gpus_per_task > 0``; on Ray, the worker's own GPU), else ``"cpu"``; a
        LoadedLM run in process stays on its own device.
    executor : None, str or Executor, optional
        Who decodes (see :func:`memscore.executors.as_executor`): the sequences are split
        into contiguous blocks whose boundaries are multiples of ``batch_size`` (one block
        with the default LocalExecutor, ``workers()`` blocks otherwise), each block is
        one task, and the blocks are merged in row order, so the result is bit-identical
        whichever executor runs them.
    gpus_per_task : float, optional
        GPUs each task holds (default: the executor's ``gpus_per_task``).
    progress : bool, default False
        One progress bar over the sequences.

    Returns
    -------
    Extraction
        ``memorized`` (bool), ``matched`` (int64, matched-prefix length) and ``generated``.

    Raises
    ------
    ValueError
        ``k + m`` longer than the model's context, a sequence shorter than ``k + m``, a token
        id outside the model's vocabulary, bad ``k``, ``m`` or ``batch_size``, or NaN /
        infinite logits at a decoded position (named: the model and the sequence rows;
        such a sequence is never reported as memorized).
    memscore.ModelLoadError
        A named model that cannot be found or is no causal LM.
    memscore.ClusterError
        No worker has the GPUs of one task, or a task lost its worker too often.

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
    model = as_source(model)
    vocab = check_model(model, k + m)
    if tokenizer is None and isinstance(model, LoadedLM):
        tokenizer = model.tokenizer
    tokens = as_token_matrix(sequences, tokenizer, k + m)
    check_vocab(tokens, vocab)
    [(generated, _)] = decode_models([model], tokens[:, :k], m, batch_size, device, executor, gpus_per_task, progress)
    return compare(generated, tokens[:, k:])


def check_vocab(tokens: npt.NDArray[np.int64], vocab: int | None) -> None:
    """Refuse token ids outside a vocabulary of ``vocab`` (None: unknown, not checked).

    Raises
    ------
    ValueError
        A token id >= ``vocab``.
    """
    if vocab is not None and tokens.size and int(tokens.max()) >= vocab:
        raise ValueError(
            f"sequences: token id {int(tokens.max())} is outside the model's vocabulary of {vocab} "
            "(a corpus tokenized with another tokenizer?)"
        )
