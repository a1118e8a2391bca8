"""Type stubs for the compiled Rust module (memscore-py). Call the wrappers in
the memscore package instead: they validate arguments and make arrays contiguous."""

import os
from typing import Any, final

import numpy as np
import numpy.typing as npt

__all__ = [
    "KnnIndexCore",
    "__version__",
    "knn",
    "cpu_info",
    "get_num_threads",
    "influence_full",
    "influence_topk",
    "lira_scores",
    "logit_confidence",
    "rmia_scores",
    "knn_shapley",
    "crc32",
    "outcome_sums_bool",
    "outcome_sums_f64",
    "outcome_sums_dense",
    "value_range",
    "pack_rows",
    "stderr_from_sums",
    "set_num_threads",
]

__version__: str

_Sums = tuple[
    npt.NDArray[np.uint64],
    npt.NDArray[np.uint64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
]

def set_num_threads(n: int) -> None: ...
def crc32(data: npt.NDArray[np.uint8]) -> int: ...
def get_num_threads() -> int: ...

# Masks and bool outcomes cross packed: uint8 (R, ceil(n / 8)) as np.packbits(m, axis=1)
# (column 0 in the most significant bit of byte 0, padding bits zero) plus the column count.
def outcome_sums_bool(masks: npt.NDArray[np.uint8], outcomes: npt.NDArray[np.uint8], n: int) -> _Sums: ...
def outcome_sums_f64(
    masks: npt.NDArray[np.uint8],
    outcomes: npt.NDArray[np.float64] | npt.NDArray[np.float32],
    n: int,
    shift: npt.NDArray[np.float64] | None = None,
) -> _Sums: ...

# The same with nothing packed: (R, n) bool masks or uint16 draw counts (nonzero = in), and
# (R, n) bool outcomes or float64 outcomes summed as outcome - shift.
def outcome_sums_dense(
    masks: npt.NDArray[np.bool_] | npt.NDArray[np.uint16],
    outcomes: npt.NDArray[np.bool_] | npt.NDArray[np.float64],
    shift: npt.NDArray[np.float64] | None = None,
) -> _Sums: ...
def value_range(x: npt.NDArray[np.float64]) -> tuple[float, float, bool]: ...
def pack_rows(m: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]: ...
def stderr_from_sums(
    sum_in: npt.NDArray[np.float64],
    sumsq_in: npt.NDArray[np.float64],
    n_in: npt.NDArray[np.float64],
    sum_out: npt.NDArray[np.float64],
    sumsq_out: npt.NDArray[np.float64],
    n_out: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]: ...
def influence_full(
    masks: npt.NDArray[np.uint8],
    outcomes: npt.NDArray[np.uint8] | npt.NDArray[np.float64],
    n_train: int,
    n_test: int,
    *,
    train_labels: npt.NDArray[np.int64] | None = None,
    test_labels: npt.NDArray[np.int64] | None = None,
    double: bool = False,
    stderr: bool = False,
    dense_masks: bool = False,
) -> tuple[npt.NDArray[np.floating], npt.NDArray[np.floating] | None]: ...
def influence_topk(
    masks: npt.NDArray[np.uint8],
    outcomes: npt.NDArray[np.uint8] | npt.NDArray[np.float64],
    n_train: int,
    n_test: int,
    k: int,
    *,
    train_labels: npt.NDArray[np.int64] | None = None,
    test_labels: npt.NDArray[np.int64] | None = None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]: ...
def lira_scores(
    masks: npt.NDArray[np.uint8],
    phi: npt.NDArray[np.float64],
    n: int,
    *,
    online: bool = True,
    fixed_variance: bool = False,
) -> npt.NDArray[np.float64]: ...
def logit_confidence(
    logits: npt.NDArray[np.float32] | npt.NDArray[np.float64], labels: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]: ...
def rmia_scores(
    masks: npt.NDArray[np.uint8],
    probs: npt.NDArray[np.float64],
    population: npt.NDArray[np.float64],
    n: int,
    *,
    online: bool = True,
    gamma: float = 1.0,
    offline_a: float = 0.3,
) -> npt.NDArray[np.float64]: ...
def cpu_info() -> tuple[list[str], str, str]: ...

# ---------------------------------------------------------------- exact kNN (memscore.knn)

@final
class KnnIndexCore:
    def __new__(
        cls,
        keys: npt.NDArray[np.float32] | npt.NDArray[np.uint16],
        metric: str = "l2",
        *,
        f16_bits: bool = False,
        threads: int | None = None,
        query_tile: int | None = None,
        key_block: int | None = None,
    ) -> KnnIndexCore: ...
    def search(
        self, queries: npt.NDArray[np.float32], k: int, *, threads: int | None = None
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]: ...
    @property
    def ntotal(self) -> int: ...
    @property
    def dim(self) -> int: ...
    @property
    def metric(self) -> str: ...
    @property
    def is_f16(self) -> bool: ...
    def keys(self) -> npt.NDArray[np.float32] | npt.NDArray[np.uint16]: ...

def knn(
    queries: npt.NDArray[np.float32],
    keys: npt.NDArray[np.float32],
    k: int,
    metric: str = "l2",
    *,
    threads: int | None = None,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]: ...

# ---------------------------------------------------------------- corpus n-grams (memscore.ngrams)

__all__ += [
    "NormalizerCore",
    "ProgressCounter",
    "SubwordCore",
    "english_stopword_list",
    "ngram_count_subword",
    "ngram_count_text",
    "ngram_count_tokens",
]

_NgramTuple = tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64], npt.NDArray[np.uint64], int, int, int]

@final
class NormalizerCore:
    def __new__(cls, lowercase: bool, strip_punctuation: bool, stopwords: list[str]) -> NormalizerCore: ...
    def normalize(self, text: str) -> list[str]: ...
    def batch(self, texts: list[str]) -> list[list[str]]: ...
    def stopwords(self) -> list[str]: ...

@final
class ProgressCounter:
    def __new__(cls) -> ProgressCounter: ...
    @property
    def value(self) -> int: ...

@final
class SubwordCore:
    def __new__(cls, path: str | os.PathLike[str]) -> SubwordCore: ...
    def tokens(self, text: str) -> list[str]: ...
    def batch_tokens(self, texts: list[str]) -> list[list[str]]: ...
    def batch_ids(self, texts: list[str]) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint64]]: ...
    @property
    def vocab_size(self) -> int: ...

def english_stopword_list() -> list[str]: ...
def ngram_count_tokens(
    # (name, tokens array | (path, byte offset, itemsize, n_tokens)
    #        | ([part paths read as one file], byte offset, numpy dtype name, n_tokens),
    #  offsets array | (path, byte offset, width, signed, n_docs)
    #        | ("megatron", idx path, n_seqs, n_doc_index_entries, token width))
    shards: list[
        tuple[
            str,
            npt.NDArray[np.uint16]
            | npt.NDArray[np.uint32]
            | tuple[str, int, int, int]
            | tuple[list[str], int, str, int],
            npt.NDArray[np.uint64] | tuple[str, int, int, bool, int] | tuple[str, str, int, int, int],
        ]
    ],
    q_tokens: npt.NDArray[np.uint32],
    q_starts: npt.NDArray[np.uint64],
    pairs: npt.NDArray[np.uint64],
    progress: ProgressCounter | None = None,
) -> _NgramTuple: ...
def ngram_count_text(
    shards: list[tuple[str, Any, str]],
    normalizer: NormalizerCore,
    queries: list[list[str]],
    pairs: npt.NDArray[np.uint64],
    skip_errors: bool = False,
    progress: ProgressCounter | None = None,
) -> _NgramTuple: ...
def ngram_count_subword(
    shards: list[tuple[str, Any, str]],
    subword: SubwordCore,
    q_tokens: npt.NDArray[np.uint32],
    q_starts: npt.NDArray[np.uint64],
    pairs: npt.NDArray[np.uint64],
    skip_errors: bool = False,
    progress: ProgressCounter | None = None,
) -> _NgramTuple: ...
def knn_shapley(
    index: KnnIndexCore,
    queries: npt.NDArray[np.float32],
    train_labels: npt.NDArray[np.int64],
    test_labels: npt.NDArray[np.int64],
    k: int,
    *,
    threads: int | None = None,
) -> npt.NDArray[np.float64]: ...

__all__ += ["datamodels_fit"]

# Datamodels: weights (T, n) float32, bias, lam, lam_max, val_mse (T,) float64, sweeps,
# converged (T, n_lambdas) bool, steps (T,) uint64.
def datamodels_fit(
    masks: npt.NDArray[np.uint8],
    outcomes: npt.NDArray[np.float64],
    n: int,
    *,
    lam: npt.NDArray[np.float64] | None = None,
    val_masks: npt.NDArray[np.uint8] | None = None,
    val_outcomes: npt.NDArray[np.float64] | None = None,
    rows: npt.NDArray[np.int64] | None = None,
    val_rows: npt.NDArray[np.int64] | None = None,
    n_lambdas: int = 100,
    lambda_ratio: float = 1e-3,
    tol: float = 1e-4,
    max_iter: int = 1000,
    patience: int = 0,
) -> tuple[
    npt.NDArray[np.float32],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    int,
    npt.NDArray[np.bool_],
    npt.NDArray[np.uint64],
]: ...

# ---------------------------------------------------------------- corpus index (memscore.ngrams.index)

__all__ += ["SuffixIndexCore", "sa_build_part", "sa_content_checksum", "sa_peak_bytes"]

_Occurrences = tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64], npt.NDArray[np.uint64], npt.NDArray[np.uint64]]

def sa_build_part(
    tokens: npt.NDArray[np.uint16] | npt.NDArray[np.uint32],
    offsets: npt.NDArray[np.uint64],
    prefix: str | os.PathLike[str],
) -> tuple[int, int, int, int, int, int, tuple[int, int, int]]: ...
def sa_content_checksum(
    tokens: npt.NDArray[np.uint16] | npt.NDArray[np.uint32], offsets: npt.NDArray[np.uint64]
) -> int: ...
def sa_peak_bytes(n_tokens: int, n_docs: int, token_width: int) -> int: ...

@final
class SuffixIndexCore:
    def __new__(
        cls,
        # (prefix, shard, doc_base, token_base, text_len, n_tokens, n_docs, token_width,
        #  sa_width, separator, (xxh3 of .tokens, .sa, .docs))
        parts: list[tuple[str, int, int, int, int, int, int, int, int, int, tuple[int, int, int]]],
        verify: bool,
    ) -> SuffixIndexCore: ...
    @property
    def n_tokens(self) -> int: ...
    @property
    def n_docs(self) -> int: ...
    def count(self, tokens: npt.NDArray[np.uint32], starts: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]: ...
    def doc_freq(self, tokens: npt.NDArray[np.uint32], starts: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]: ...
    def doc_ids(self, q: list[int]) -> npt.NDArray[np.uint64]: ...
    def positions(self, q: list[int], limit: int) -> _Occurrences: ...
    def document(self, doc: int) -> npt.NDArray[np.uint32]: ...
    def next_tokens(self, q: list[int]) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.int64]]: ...
    def infgram(self, context: list[int], token: int) -> tuple[int, int, int]: ...
    def longest_match(
        self, tokens: npt.NDArray[np.uint32], starts: npt.NDArray[np.uint64]
    ) -> npt.NDArray[np.uint32]: ...
    def spans(
        self, tokens: list[int], min_len: int, max_count: int, n_occurrences: int
    ) -> tuple[
        npt.NDArray[np.uint64], npt.NDArray[np.uint64], npt.NDArray[np.int64], npt.NDArray[np.uint64], _Occurrences
    ]: ...
