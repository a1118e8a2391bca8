"""LM side of distributional memorization: log p_LM of each output n-gram in its example's context.

Locating an output n-gram among the answer's tokens
---------------------------------------------------
The n-grams of :func:`~memscore.taskgram.extract_pairs` are sequences of *normalized words*,
while the LM sees subword tokens of the raw text. :func:`locate_ngram` bridges them by
character offsets:

1. the answer is split on whitespace into raw chunks, each with its character span;
2. each chunk is normalized on its own with the same normalizer (``norm(chunk)``; a stopword
   chunk yields no word, a chunk with inner punctuation may yield several), giving the
   normalized word stream; each word's span is where it occurs (case-insensitively) inside its
   chunk, so surrounding punctuation is excluded (the whole chunk if the normalizer changed
   the word beyond case);
3. the n-gram's first occurrence in that stream selects n word spans;
4. the n-gram's tokens are the tokens of ``prompt + answer`` (tokenized once, as the LM reads
   it) whose character offsets overlap one of those spans. Tokens of stopwords lying *between*
   the n-gram's words are not counted.

The n-gram's log-probability is the sum, over its tokens t at positions p, of
``log softmax(logits[p - 1])[token_p]``: each token conditioned on everything before it
(prompt, earlier answer tokens, including the gaps). This equals the manual chain-rule
computation with one forward pass per sequence.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from .._torch import require_torch
from .._validate import check_int, check_optional_int
from ..executors import ExecutorLike
from ..lm.scoring import token_logprobs
from .pairs import Examples, Normalize, default_normalizer, to_examples

__all__ = ["encode_with_offsets", "lm_logprobs", "locate_ngram"]

_CHUNK = re.compile(r"\S+")


def locate_ngram(answer: str, ngram: str, normalizer: Normalize) -> list[tuple[int, int]] | None:
    """Character spans (in ``answer``) of the words forming the first occurrence of ``ngram``.

    See the module docstring.

    Parameters
    ----------
    answer : str
        The output text.
    ngram : str
        Space-joined normalized words.
    normalizer : callable
        ``str -> list[str]``, the one that made ``ngram``.

    Returns
    -------
    list of (int, int) or None
        None if the n-gram does not occur.
    """
    target = ngram.split()
    words: list[str] = []
    spans: list[tuple[int, int]] = []
    for m in _CHUNK.finditer(answer):
        chunk = m.group()
        low = chunk.lower()
        cursor = 0
        for w in normalizer(chunk):
            pos = low.find(w, cursor)
            if pos >= 0:  # the word's own characters (punctuation around it excluded)
                spans.append((m.start() + pos, m.start() + pos + len(w)))
                cursor = pos + len(w)
            else:  # the normalizer changed the word beyond case: use the whole chunk
                spans.append((m.start(), m.end()))
            words.append(w)
    n = len(target)
    for i in range(len(words) - n + 1):
        if words[i : i + n] == target:
            return sorted(set(spans[i : i + n]))
    return None


def encode_with_offsets(tokenizer: Any, texts: list[str]) -> list[tuple[list[int], list[tuple[int, int]]]]:
    """Token ids and character offsets of each text.

    Parameters
    ----------
    tokenizer : tokenizers.Tokenizer or transformers fast tokenizer
        HuggingFace ``tokenizers.Tokenizer`` (``encode_batch``) or a ``transformers`` fast
        tokenizer (``return_offsets_mapping``).
    texts : list of str
        The texts.

    Returns
    -------
    list of (list of int, list of (int, int))

    Raises
    ------
    TypeError
        A tokenizer that gives no offsets.
    """
    if not texts:  # a fast tokenizer fails on an empty batch
        return []
    if hasattr(tokenizer, "encode_batch") and not hasattr(tokenizer, "batch_encode_plus"):
        encs = tokenizer.encode_batch(texts, add_special_tokens=False)
        return [(list(e.ids), [tuple(o) for o in e.offsets]) for e in encs]
    if callable(tokenizer):
        enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
        return [
            (list(ids), [tuple(o) for o in offs])
            for ids, offs in zip(enc["input_ids"], enc["offset_mapping"], strict=True)
        ]
    raise TypeError(
        f"tokenizer: expected a tokenizers.Tokenizer or a transformers fast tokenizer, got {type(tokenizer).__name__}"
    )


def lm_logprobs(
    model: Any,
    tokenizer: Any,
    examples: Examples,
    pairs: pl.DataFrame,
    *,
    normalizer: Normalize | None = None,
    prompt: str | Callable[[str], str] = "{input}\n",
    bos_token_id: int | None = None,
    batch_size: int = 16,
    device: str | Any | None = None,
    max_length: int | None = None,
    executor: ExecutorLike = None,
    gpus_per_task: float | None = None,
) -> pl.DataFrame:
    """Summed log-probability a causal LM gives to each output n-gram of each example.

    The context is ``prompt.format(input=...) + output`` (or ``prompt(input) + output`` for
    a callable), preceded by ``bos_token_id`` when given, then right-padded per batch and
    run on ``device`` under ``torch.no_grad()``. See the module docstring for how n-grams
    are located.

    Parameters
    ----------
    model : torch.nn.Module or callable
        A torch causal LM: a HuggingFace model (called with ``input_ids`` and
        ``attention_mask``, its ``.logits`` used) or any callable ``(B, L) int64 tensor ->
        (B, L, V)`` logits (a model whose ``forward`` takes ``input_ids`` is called the
        HuggingFace way).
    tokenizer : tokenizers.Tokenizer or transformers fast tokenizer
        Must give character offsets.
    examples : sequence of (str, str)
        The (input, output) pairs.
    pairs : polars.DataFrame
        The :func:`~memscore.taskgram.extract_pairs` table (its ``example`` and ``y``
        columns select which output n-grams to score).
    normalizer : callable, optional
        The one that built ``pairs`` (default as in extract_pairs).
    prompt : str or callable, default "{input}\\n"
        The context before the output.
    bos_token_id : int, optional
        Prepended token.
    batch_size : int, default 16
        Sequences per forward pass (>= 1).
    device : str or torch.device, optional
        Where the model runs (default: ``"cuda"`` when each task holds a GPU, else
        ``"cpu"``).
    max_length : int, optional
        Cut tokens from the *left* of longer sequences.
    executor : None, str or Executor, optional
        Who runs the forward passes: passed to :func:`memscore.lm.token_logprobs` (blocks
        of sequences, one task each, merged in order: identical whichever executor runs
        them). ``model`` may then also be a model folder / hub id or a ``ModelSpec``,
        loaded by the tasks.
    gpus_per_task : float, optional
        GPUs each task holds (default: the executor's).

    Returns
    -------
    polars.DataFrame
        One row per distinct (example, y): ``example``, ``y``, ``n_tokens`` (int64, tokens of
        the n-gram) and ``logp_lm`` (float64, natural log). When the n-gram cannot be located
        among the answer's tokens (it does not occur in the normalized answer, or its tokens
        were cut by ``max_length``), ``n_tokens`` is 0 and ``logp_lm`` null.

    Raises
    ------
    TypeError, ValueError
        Bad arguments or a ``pairs`` table without its columns.
    ImportError
        torch is not installed.
    """
    require_torch("lm_logprobs")  # before any work: the ImportError names the extra

    rows = to_examples(examples)
    for c in ("example", "y"):
        if c not in pairs.columns:
            raise ValueError(f"pairs: expected columns 'example' and 'y' (from extract_pairs), got {pairs.columns}")
    check_int(batch_size, "batch_size", 1)
    check_optional_int(max_length, "max_length", 1)
    check_optional_int(bos_token_id, "bos_token_id", 0)
    norm = default_normalizer() if normalizer is None else normalizer
    wanted = pairs.select("example", "y").unique(maintain_order=True).sort("example", maintain_order=True)
    by_ex: dict[int, list[str]] = {}
    for e, y in zip(wanted["example"].to_list(), wanted["y"].to_list(), strict=True):
        if not 0 <= e < len(rows):
            raise ValueError(f"pairs: example id {e} out of range for {len(rows)} examples")
        by_ex.setdefault(e, []).append(y)
    ex_ids = sorted(by_ex)
    if not ex_ids:  # no pair: nothing to run the model on
        return pl.DataFrame(schema={"example": pl.Int64, "y": pl.String, "n_tokens": pl.Int64, "logp_lm": pl.Float64})
    fmt = prompt if callable(prompt) else (lambda s: prompt.format(input=s))
    prompts = [fmt(rows[e][0]) for e in ex_ids]
    texts = [p + rows[e][1] for p, e in zip(prompts, ex_ids, strict=True)]
    encoded = encode_with_offsets(tokenizer, texts)

    seqs = []
    offsets = []
    for ids, offs in encoded:
        if bos_token_id is not None:
            ids, offs = [bos_token_id, *ids], [(0, 0), *offs]
        if max_length is not None and len(ids) > max_length:
            ids, offs = ids[-max_length:], offs[-max_length:]
        seqs.append(ids)
        offsets.append(offs)
    token_lps = token_logprobs(
        model, seqs, batch_size=batch_size, device=device, executor=executor, gpus_per_task=gpus_per_task
    )

    out_e: list[int] = []
    out_y: list[str] = []
    out_n: list[int] = []
    out_lp: list[float | None] = []
    for k, e in enumerate(ex_ids):
        plen = len(prompts[k])
        answer = rows[e][1]
        offs_arr = np.asarray(offsets[k], dtype=np.int64).reshape(-1, 2)
        lp_k = token_lps[k]
        for y in by_ex[e]:
            spans = locate_ngram(answer, y, norm)
            out_e.append(e)
            out_y.append(y)
            if spans is None:
                out_n.append(0)
                out_lp.append(None)
                continue
            sel = np.zeros(len(offs_arr), dtype=bool)
            for a, b in spans:
                sel |= (offs_arr[:, 0] < b + plen) & (offs_arr[:, 1] > a + plen) & (offs_arr[:, 1] > offs_arr[:, 0])
            vals = lp_k[sel]
            if vals.size == 0 or np.isnan(vals).any():
                out_n.append(int(vals.size) if not np.isnan(vals).any() else 0)
                out_lp.append(None)
                continue
            out_n.append(int(vals.size))
            out_lp.append(float(vals.sum()))
    return pl.DataFrame(
        {"example": out_e, "y": out_y, "n_tokens": out_n, "logp_lm": out_lp},
        schema={"example": pl.Int64, "y": pl.String, "n_tokens": pl.Int64, "logp_lm": pl.Float64},
    )
