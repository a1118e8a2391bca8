"""A planted-duplication corpus and a small training loop: the offline check of the
memorization-vs-duplication measurement (sequences planted 1, 10 and 100 times among
random documents; a tiny LM trained on them should extract the often-planted ones more
often). Used by the tests and by the README figure. Staged training (:func:`staged_rows`,
:func:`train_in_stages`): a tiny model trained block by block on rows in training order,
a checkpoint per block, for the Pythia protocol (:mod:`memscore.lm.pythia`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .._torch import require_torch
from .._validate import check_int
from ..ngrams.corpus import Corpus
from .scoring import model_logits

__all__ = [
    "PlantedCorpus",
    "StagedRows",
    "fit_causal_lm",
    "planted_corpus",
    "staged_rows",
    "tiny_gpt_neox",
    "train_in_stages",
]


@dataclass
class PlantedCorpus:
    """Documents of ``length`` random tokens; ``planted[c]`` holds the sequences that occur
    ``c`` times (row ``i`` of ``documents`` is a document)."""

    documents: npt.NDArray[np.int64]
    planted: dict[int, npt.NDArray[np.int64]]

    def corpus(self) -> Corpus:
        """The documents as a one-shard token :class:`~memscore.ngrams.Corpus`."""
        n, length = self.documents.shape
        return Corpus.from_tokens(self.documents.ravel().astype(np.uint32), np.arange(n) * length, name="<planted>")


def planted_corpus(
    *,
    vocab_size: int = 128,
    length: int = 16,
    background: int = 2000,
    copies: Sequence[int] = (1, 10, 100),
    per_copy: int = 8,
    seed: int = 0,
) -> PlantedCorpus:
    """``background`` random documents plus, for each ``c`` in ``copies``, ``per_copy``
    random sequences planted ``c`` times each as whole documents, shuffled.

    Parameters
    ----------
    vocab_size : int, default 128
    length : int, default 16
        Tokens per document (``k + m`` for the measurement).
    background : int, default 2000
        Random documents (each occurs once with overwhelming probability).
    copies : sequence of int, default (1, 10, 100)
    per_copy : int, default 8
    seed : int, default 0

    Returns
    -------
    PlantedCorpus
    """
    check_int(vocab_size, "vocab_size", 2)
    check_int(length, "length", 2)
    check_int(background, "background", 0)
    check_int(per_copy, "per_copy", 1)
    rng = np.random.default_rng(seed)
    docs = [rng.integers(0, vocab_size, (background, length))]
    planted = {}
    for c in copies:
        check_int(c, "copies", 1)
        seqs = rng.integers(0, vocab_size, (per_copy, length))
        planted[int(c)] = seqs
        docs.append(np.repeat(seqs, c, axis=0))
    all_docs = np.concatenate(docs)
    return PlantedCorpus(documents=all_docs[rng.permutation(len(all_docs))].astype(np.int64), planted=planted)


def fit_causal_lm(
    model: Any,
    documents: npt.NDArray[np.int64],
    *,
    epochs: float = 3.0,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    device: str = "cpu",
) -> list[float]:
    """Train ``model`` on equal-length documents with next-token cross-entropy (AdamW,
    constant learning rate, batches drawn by shuffled epochs).

    Parameters
    ----------
    model : torch.nn.Module
        A causal LM (HuggingFace or ``(B, L) -> (B, L, V)``).
    documents : numpy.ndarray
        ``(N, L)`` token ids.
    epochs : float, default 3.0
    batch_size : int, default 64
    lr : float, default 3e-3
    seed : int, default 0
    device : str, default "cpu"

    Returns
    -------
    list of float
        The loss of each step.
    """
    torch = require_torch("fit_causal_lm", extra="lm")
    check_int(batch_size, "batch_size", 1)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    data = torch.as_tensor(documents, dtype=torch.long)
    steps = max(1, int(round(epochs * len(data) / batch_size)))
    order = np.concatenate([rng.permutation(len(data)) for _ in range(int(np.ceil(epochs)) + 1)])
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    losses = []
    for s in range(steps):
        batch = data[order[s * batch_size : (s + 1) * batch_size]].to(device)
        logits = model_logits(model, batch)
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses


@dataclass
class StagedRows:
    """Training rows in order for :func:`train_in_stages`: ``stages`` blocks of
    ``stage_rows`` rows; block ``s`` holds random rows (each once) and ``planted[s]``'s
    sequences repeated ``copies`` times, shuffled. A model trained block by block memorizes
    the sequences of a block once it has trained on it."""

    rows: npt.NDArray[np.int64]
    planted: list[npt.NDArray[np.int64]]
    stage_rows: int
    copies: int


def staged_rows(
    *,
    vocab_size: int = 64,
    length: int = 12,
    stages: int = 2,
    background: int = 200,
    per_stage: int = 4,
    copies: int = 60,
    seed: int = 0,
) -> StagedRows:
    """Rows for a staged training run (see :class:`StagedRows`).

    Parameters
    ----------
    vocab_size, length : int
        Token ids ``0..vocab_size-1``, tokens per row.
    stages : int, default 2
    background : int, default 200
        Random rows per stage.
    per_stage : int, default 4
        Sequences planted in each stage.
    copies : int, default 60
        Copies of each planted sequence (all in its stage).
    seed : int, default 0

    Returns
    -------
    StagedRows
    """
    for v, name in ((vocab_size, "vocab_size"), (length, "length"), (stages, "stages"), (copies, "copies")):
        check_int(v, name, 1)
    check_int(background, "background", 0)
    check_int(per_stage, "per_stage", 1)
    rng = np.random.default_rng(seed)
    blocks, planted = [], []
    for _ in range(stages):
        seqs = rng.integers(0, vocab_size, (per_stage, length))
        block = np.concatenate([rng.integers(0, vocab_size, (background, length)), np.repeat(seqs, copies, axis=0)])
        blocks.append(block[rng.permutation(len(block))])
        planted.append(seqs.astype(np.int64))
    return StagedRows(np.concatenate(blocks).astype(np.int64), planted, background + per_stage * copies, copies)


def train_in_stages(
    model: Any,
    staged: StagedRows,
    save: Any,
    *,
    epochs: float = 4.0,
    lr: float = 3e-3,
    batch_size: int = 64,
) -> None:
    """Train ``model`` on the blocks of ``staged`` one after another (``epochs`` passes over
    each: a tiny model needs several), calling ``save(model, s)`` before the first block
    (``s = 0``) and after each block ``s = 1, 2, ...``: the checkpoints of the run.

    Parameters
    ----------
    model : torch.nn.Module
        A causal LM.
    staged : StagedRows
    save : callable
        ``save(model, stage)``.
    epochs, lr, batch_size
        As in :func:`fit_causal_lm`.
    """
    save(model, 0)
    n = staged.stage_rows
    for s in range(1, len(staged.planted) + 1):
        fit_causal_lm(model, staged.rows[(s - 1) * n : s * n], epochs=epochs, lr=lr, batch_size=batch_size, seed=s)
        save(model, s)


def tiny_gpt_neox(
    vocab_size: int, context: int, *, hidden: int = 64, layers: int = 2, heads: int = 4, seed: int = 0
) -> Any:
    """A randomly initialized GPT-NeoX (Pythia's architecture: rotary positions, parallel
    attention and MLP) built from a config, no download.

    Parameters
    ----------
    vocab_size, context : int
        Vocabulary and longest sequence.
    hidden, layers, heads : int
        Width, depth, attention heads (Pythia-160m: 768, 12, 12).
    seed : int, default 0

    Returns
    -------
    transformers.GPTNeoXForCausalLM
    """
    torch = require_torch("tiny_gpt_neox", extra="lm")
    import transformers

    torch.manual_seed(seed)
    cfg = transformers.GPTNeoXConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
        max_position_embeddings=context,
        bos_token_id=None,
        eos_token_id=None,
    )
    return transformers.GPTNeoXForCausalLM(cfg)
