"""Text corpora into token shards in a model's tokenization, for the memorization
measurement (which samples and counts token sequences).

Each input file becomes ``NAME.npy`` (uint16 when the vocabulary fits, else uint32) next to
``NAME.offsets.npy`` (document starts), the layout :meth:`Corpus.from_token_files` reads;
both are written atomically. Inputs: jsonl shards (``.jsonl``, ``.jsonl.gz``, ``.jsonl.zst``
with the ``zstandard`` package; the document in ``text_field``) and text files (``.txt``,
``.txt.gz``; one document per file). No special tokens are added: windows never cross a
document boundary, so no separator is needed.
"""

from __future__ import annotations

import functools
import itertools
import os
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write
from ..ngrams._documents import documents
from ..ngrams._paths import JSONL_EXT, TEXT_EXT, Paths
from ..ngrams.corpus import Corpus, _expand

__all__ = ["tokenize_corpus"]


def _encode(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    if hasattr(tokenizer, "encode_batch") and not hasattr(tokenizer, "batch_encode_plus"):
        return [list(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=False)]
    return [list(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def _tokenize_file(
    path: Path, tokenizer: Any, text_field: str, batch_size: int, dtype: Any
) -> tuple[np.ndarray, np.ndarray]:
    """(flat tokens, document starts) of one file, tokenized ``batch_size`` documents at a time."""
    pieces: list[np.ndarray] = []
    batch: list[str] = []
    docs = documents(path, text_field)
    while True:
        batch = list(itertools.islice(docs, batch_size))
        if not batch:
            break
        pieces.extend(np.asarray(ids, dtype=dtype) for ids in _encode(tokenizer, batch))
    lengths = np.array([len(p) for p in pieces], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) if pieces else np.zeros(0, np.int64)
    tokens = np.concatenate(pieces) if pieces else np.zeros(0, dtype=dtype)
    return tokens, offsets


def tokenize_corpus(
    paths: Paths,
    tokenizer: Any,
    out_dir: str | os.PathLike[str],
    *,
    text_field: str = "text",
    batch_size: int = 1000,
) -> Corpus:
    """Tokenize text shards into token shards under ``out_dir`` (see the module docstring).

    Parameters
    ----------
    paths : path, glob or iterable of paths
        jsonl or text files, a directory of them, or a glob.
    tokenizer : transformers tokenizer or tokenizers.Tokenizer
        The model's tokenizer.
    out_dir : str or path
        Where the shards go (made if missing).
    text_field : str, default "text"
        The jsonl field holding the document.
    batch_size : int, default 1000
        Documents tokenized together.

    Returns
    -------
    Corpus
        The token shards, one per input file.

    Raises
    ------
    memscore.CorpusError
        Missing files, malformed jsonl lines.
    """
    files = _expand(paths, JSONL_EXT + TEXT_EXT, "tokenize_corpus")
    vocab = len(tokenizer) if hasattr(tokenizer, "__len__") else tokenizer.get_vocab_size()
    dtype = np.uint16 if vocab <= 2**16 else np.uint32
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for i, path in enumerate(files):
        tokens, offsets = _tokenize_file(path, tokenizer, text_field, batch_size, dtype)
        stem = f"{i:05d}-{path.name.split('.')[0]}"
        atomic_write(out / f"{stem}.offsets.npy", functools.partial(np.save, arr=offsets))
        atomic_write(out / f"{stem}.npy", functools.partial(np.save, arr=tokens))
        written.append(out / f"{stem}.npy")
    return Corpus.from_token_files(written)
