"""memscore: per-example memorization, influence and membership scores.

Three engines, one package: :mod:`memscore.runs` (scores across training runs, the run
store, the training driver), :mod:`memscore.knn` (exact kNN, ResMem) and
:mod:`memscore.ngrams` (corpus n-gram counts, the task-gram study). Their public names are
re-exported here. :mod:`memscore.audit` turns membership scores into ε lower bounds.

Scores aggregate the outcomes of many training runs on random subsets of the data
(Feldman & Zhang 2020; Jiang et al. 2021; Carlini et al. 2022). Heavy work runs in a Rust
core on memscore's own thread pool with the GIL released.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import _core
from . import audit as audit
from ._validate import check_int
from .errors import (
    ClusterError,
    CorpusError,
    CorpusIndexError,
    DatasetError,
    DivergedError,
    ImportFileError,
    IndexMismatchError,
    MemscoreError,
    RunNotFoundError,
    StoreError,
)
from .executors import LocalExecutor, RayExecutor, ThreadExecutor
from .knn import KnnIndex, ResMem, extract_embeddings, knn, knn_shapley, tune_resmem
from .ngrams import (
    Corpus,
    CorpusIndex,
    NgramStats,
    Normalizer,
    cooccurrence,
    count_ngrams,
    document_frequency,
    ngram_stats,
)
from .runs import (
    LDS,
    ConvergenceWarning,
    Datamodels,
    Disagreement,
    DistillationEffect,
    MembershipMetrics,
    OutcomeStats,
    PackedBits,
    RunStore,
    banzhaf,
    data_oob,
    datamodels,
    disagreement,
    distillation_effect,
    holdout_accuracy,
    influence,
    label_issues,
    lds,
    lira,
    logit_confidence,
    membership_metrics,
    memorization,
    proxy_table,
    rmia,
    run_utility,
    snapshot_outcomes,
    spearman,
    trajectories,
    true_class_probability,
)

__version__: str = _core.__version__


def set_num_threads(n: int) -> None:
    """Use ``n`` threads for memscore's kernels.

    The default is the environment variable ``MEMSCORE_NUM_THREADS``, else all cores.

    Parameters
    ----------
    n : int
        Number of threads, between 1 and 4 x the available CPUs. The same bound applies to
        ``threads=`` arguments and to ``MEMSCORE_NUM_THREADS`` (which falls back to the
        default when invalid).

    Raises
    ------
    TypeError
        ``n`` is not an integer.
    ValueError
        ``n`` is outside ``1 .. 4 x cpu_count``.

    Examples
    --------
    >>> import memscore
    >>> before = memscore.get_num_threads()
    >>> memscore.set_num_threads(2); memscore.get_num_threads()
    2
    >>> memscore.set_num_threads(before)
    """
    _core.set_num_threads(check_int(n, "set_num_threads: n", 1))


def get_num_threads() -> int:
    """Number of threads memscore's kernels use.

    Returns
    -------
    int

    Examples
    --------
    >>> import memscore
    >>> memscore.get_num_threads() >= 1
    True
    """
    return int(_core.get_num_threads())


def cpu_info() -> dict[str, object]:
    """SIMD features detected at run time and the kernels in use.

    Returns
    -------
    dict
        ``{"features": list of str, "popcount_kernel": str, "vector_kernel": str}``: the
        popcount kernel of influence and memorization, and the instruction set of the float
        row kernels (the datamodels solver): ``Avx512``, ``Avx2`` or ``Portable``.

    Examples
    --------
    >>> import memscore
    >>> sorted(memscore.cpu_info())
    ['features', 'popcount_kernel', 'vector_kernel']
    """
    features, kernel, vector = _core.cpu_info()
    return {"features": list(features), "popcount_kernel": kernel, "vector_kernel": vector}


if TYPE_CHECKING:
    from .errors import NotFittedError
else:

    def __getattr__(name: str) -> object:
        # NotFittedError subclasses scikit-learn's, which is made (and sklearn imported) on first use.
        if name == "NotFittedError":
            from . import errors

            return errors.NotFittedError
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Corpus",
    "CorpusError",
    "CorpusIndex",
    "CorpusIndexError",
    "IndexMismatchError",
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
    "RunNotFoundError",
    "NotFittedError",
    "OutcomeStats",
    "PackedBits",
    "ResMem",
    "RunStore",
    "StoreError",
    "DivergedError",
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
    "banzhaf",
    "run_utility",
    "rmia",
    "true_class_probability",
    "label_issues",
    "knn_shapley",
    "data_oob",
]
__all__ += ["ConvergenceWarning", "Datamodels", "LDS", "datamodels", "lds"]
__all__ += ["ClusterError", "LocalExecutor", "RayExecutor", "ThreadExecutor"]
__all__ += ["DatasetError", "ImportFileError"]
__all__ += ["DistillationEffect", "distillation_effect"]
