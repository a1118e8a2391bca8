"""Task-gram language model and distributional memorization (Wang et al. 2024).

Pipeline: :func:`extract_pairs` (aligned input/output n-gram pairs of a task) →
:func:`taskgram_scores` / :func:`taskgram_logprob` (p_TG(y|x) = C(x,y)/C(x) from document
counts of :func:`memscore.ngrams.ngram_stats`) → :func:`lm_logprobs` (the LM's log-probability
of each output n-gram in context) → :func:`distributional_memorization` (Spearman ρ) and
:func:`distributional_generalization` (Kendall-τ distance) per task and model →
:func:`plot_taskgram`. :func:`run_pipeline` runs it end to end on offline Shakespeare and
Bible texts with small LMs trained by :func:`train_lm`; ``memscore taskgram`` is its command.

torch, scipy and matplotlib are imported only by the functions that need them.
"""

from __future__ import annotations

from .data import load_bible, load_shakespeare, shakespeare_available
from .lm import lm_logprobs, locate_ngram
from .metrics import (
    Correlation,
    UndefinedCorrelationWarning,
    distributional_generalization,
    distributional_memorization,
    distributional_table,
)
from .model import MODEL_SIZES, GPTConfig, TinyGPT, TrainedLM, train_lm, train_tokenizer
from .pairs import NoPairsWarning, default_embedder, default_normalizer, extract_pairs
from .pipeline import (
    PipelineConfig,
    PipelineResult,
    build_documents,
    build_tasks,
    run_pipeline,
    size_trend,
)
from .plot import plot_taskgram, plot_trend, write_taskgram_html
from .tasks import PAPER_TASKS, Task, TaskFileError, load_task
from .tglm import per_example, taskgram_logprob, taskgram_scores

__all__ = [
    "MODEL_SIZES",
    "PAPER_TASKS",
    "Task",
    "TaskFileError",
    "Correlation",
    "NoPairsWarning",
    "UndefinedCorrelationWarning",
    "GPTConfig",
    "PipelineConfig",
    "PipelineResult",
    "TinyGPT",
    "TrainedLM",
    "build_documents",
    "build_tasks",
    "default_embedder",
    "default_normalizer",
    "distributional_generalization",
    "distributional_memorization",
    "distributional_table",
    "extract_pairs",
    "lm_logprobs",
    "load_bible",
    "load_shakespeare",
    "load_task",
    "locate_ngram",
    "per_example",
    "plot_taskgram",
    "plot_trend",
    "run_pipeline",
    "shakespeare_available",
    "size_trend",
    "taskgram_logprob",
    "write_taskgram_html",
    "taskgram_scores",
    "train_lm",
    "train_tokenizer",
]
