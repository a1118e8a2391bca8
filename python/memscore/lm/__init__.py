"""Causal language models as the memorization papers study them: HuggingFace models
loaded by name or path (:func:`load_causal_lm`), batched per-token log-probabilities
(:func:`token_logprobs`, the loop the task-gram study scores with), and extractable
memorization against corpus duplication (Carlini et al. 2023): :func:`extractable`
(batched greedy decoding), :func:`sample_sequences` (windows of a token corpus with their
exact duplicate counts from the n-gram engine), :func:`memorization_table` /
:func:`memorization_curve` / :func:`plot_memorization_curve`. ``memscore lm memorization``
is the command. The Pythia protocol (Biderman et al. 2023): :func:`training_sequences` (rows
by their position in the training order, from Megatron ``.idx``/``.bin`` files),
:func:`memorization_scores` / :func:`memorization_over_checkpoints` (exact match, score and
duplicates of the same rows at several ``revision="step…"`` checkpoints),
:func:`checkpoint_summary` / :func:`plot_checkpoints`; ``memscore lm memorization --rows``.
Membership scores per sequence (loss, zlib, reference ratio, Min-K%,
Min-K%++): :func:`membership_scores` / :func:`membership_from_logits`, ``memscore lm
membership``. Tracing generations to the corpus through its index (:func:`trace`,
:func:`write_trace_html`, ``memscore lm trace``). Every heavy function takes ``executor=`` (local, threads, Ray) and
``gpus_per_task=``: the sequences are split into blocks (and models), one task each, merged
in row order, so the results are identical whichever executor runs them.

torch and transformers (the ``lm`` extra) are imported only by the functions that need them.
"""

from __future__ import annotations

from .curve import memorization_curve, memorization_table, plot_memorization_curve
from .extract import Extraction, as_token_matrix, extractable, greedy_continuations
from .load import (
    LoadedLM,
    ModelLoadError,
    ModelSpec,
    check_causal_lm,
    check_context,
    context_length,
    load_causal_lm,
    load_model,
    resolve_dtype,
)
from .membership import HIGHER_IS_MEMBER, member_scores, membership_from_logits, membership_scores
from .pythia import (
    PYTHIA_ROWS_PER_STEP,
    PYTHIA_SEQUENCE_LENGTH,
    checkpoint_summary,
    memorization_over_checkpoints,
    memorization_scores,
    parse_rows,
    plot_checkpoints,
    revision_model,
    revision_step,
    training_sequences,
)
from .sampler import (
    FewerSequencesWarning,
    SampledSequences,
    duplicate_counts,
    log2_bin,
    sample_sequences,
    token_shard_arrays,
)
from .scoring import model_logits, token_logprobs
from .tokenize import tokenize_corpus
from .trace import trace, write_trace_html

__all__ = [
    "Extraction",
    "HIGHER_IS_MEMBER",
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
    "LoadedLM",
    "ModelLoadError",
    "ModelSpec",
    "SampledSequences",
    "as_token_matrix",
    "check_causal_lm",
    "check_context",
    "context_length",
    "duplicate_counts",
    "extractable",
    "greedy_continuations",
    "load_causal_lm",
    "load_model",
    "log2_bin",
    "memorization_curve",
    "memorization_table",
    "member_scores",
    "membership_from_logits",
    "membership_scores",
    "model_logits",
    "plot_memorization_curve",
    "resolve_dtype",
    "sample_sequences",
    "FewerSequencesWarning",
    "token_logprobs",
    "token_shard_arrays",
    "tokenize_corpus",
    "trace",
    "write_trace_html",
]
