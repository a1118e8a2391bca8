"""memscore: per-example memorization, influence and membership scores.

Three engines, one package: :mod:`memscore.runs` (scores across training runs, the run
store, the training driver), :mod:`memscore.knn` (exact kNN, ResMem) and
:mod:`memscore.ngrams` (corpus n-gram counts, the task-gram study). Their public names are
re-exported here.

Scores aggregate the outcomes of many training runs on random subsets of the data
(Feldman & Zhang 2020; Jiang et al. 2021; Carlini et al. 2022). Heavy work runs in a Rust
core on memscore's own thread pool with the GIL released.
"""

from __future__ import annotations

from . import _core
from .errors import CorpusError, MemscoreError, StoreError
from .knn import KnnIndex, ResMem, extract_embeddings, knn, tune_resmem
from .ngrams import (
    Corpus,
    NgramStats,
    Normalizer,
    cooccurrence,
    count_ngrams,
    document_frequency,
    ngram_stats,
)
from .runs import (
    Disagreement,
    MembershipMetrics,
    OutcomeStats,
    PackedBits,
    RunStore,
    disagreement,
    holdout_accuracy,
    influence,
    lira,
    logit_confidence,
    membership_metrics,
    memorization,
    proxy_table,
    snapshot_outcomes,
    spearman,
    trajectories,
)

__version__: str = _core.__version__


def set_num_threads(n: int) -> None:
    """Use ``n`` threads for memscore's kernels (default: env ``MEMSCORE_NUM_THREADS``,
    else all cores). ``n`` must lie between 1 and 4 x the available CPUs (ValueError
    otherwise); the same bound applies to ``threads=`` arguments and the variable, which
    falls back to the default when invalid."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"set_num_threads: expected an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"set_num_threads: expected n >= 1, got {n}")
    _core.set_num_threads(n)


def get_num_threads() -> int:
    """Number of threads memscore's kernels use."""
    return _core.get_num_threads()


def cpu_info() -> dict[str, object]:
    """SIMD features detected at run time and the popcount kernel in use."""
    features, kernel = _core.cpu_info()
    return {"features": list(features), "popcount_kernel": kernel}


__all__ = [
    "Corpus",
    "CorpusError",
    "Disagreement",
    "disagreement",
    "proxy_table",
    "snapshot_outcomes",
    "spearman",
    "trajectories",
    "KnnIndex",
    "NgramStats",
    "Normalizer",
    "cooccurrence",
    "count_ngrams",
    "document_frequency",
    "ngram_stats",
    "MembershipMetrics",
    "MemscoreError",
    "OutcomeStats",
    "PackedBits",
    "ResMem",
    "RunStore",
    "StoreError",
    "cpu_info",
    "extract_embeddings",
    "get_num_threads",
    "holdout_accuracy",
    "influence",
    "knn",
    "lira",
    "logit_confidence",
    "membership_metrics",
    "memorization",
    "set_num_threads",
    "tune_resmem",
]
