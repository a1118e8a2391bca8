"""A tiny GPT and its BPE tokenizer, trained offline with torch and HuggingFace ``tokenizers``.

Small enough to train on a laptop CPU in minutes on the Shakespeare + Bible corpus; the
task-gram pipeline uses it as the "pretrained LM" whose probabilities are compared with the
corpus counts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .._torch import require_torch

__all__ = ["MODEL_SIZES", "GPTConfig", "TinyGPT", "TrainedLM", "train_lm", "train_tokenizer"]

PAD, UNK, BOS, EOS = "[PAD]", "[UNK]", "<s>", "</s>"


@dataclass(frozen=True)
class GPTConfig:
    """Shape of a :class:`TinyGPT`."""

    vocab_size: int
    d_model: int = 64
    n_layer: int = 2
    n_head: int = 4
    block_size: int = 64
    dropout: float = 0.0


#: Named sizes for the pipeline and the command line (vocabulary size is set by the tokenizer).
MODEL_SIZES: dict[str, dict[str, int]] = {
    "tiny": {"d_model": 32, "n_layer": 1, "n_head": 2},
    "small": {"d_model": 64, "n_layer": 2, "n_head": 4},
    "medium": {"d_model": 128, "n_layer": 3, "n_head": 4},
}


def train_tokenizer(texts: Sequence[str], vocab_size: int = 2000) -> Any:
    """Train a lowercasing BPE ``tokenizers.Tokenizer`` on ``texts``.

    Whitespace + punctuation pre-split. Special tokens: ``[PAD]`` = 0, ``[UNK]`` = 1,
    ``<s>`` = 2, ``</s>`` = 3. Offsets refer to the original (not lowercased) text.
    Deterministic for the same texts.

    Parameters
    ----------
    texts : sequence of str
        Training texts.
    vocab_size : int, default 2000
        Vocabulary size.

    Returns
    -------
    tokenizers.Tokenizer

    Raises
    ------
    ImportError
        tokenizers is not installed.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 8:
        raise ValueError(f"vocab_size: expected an int >= 8, got {vocab_size!r}")
    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, UNK, BOS, EOS], show_progress=False)
    tok.train_from_iterator(list(texts), trainer=trainer)
    return tok


def _torch() -> Any:
    return require_torch("the task-gram LM")


def _make_tiny_gpt() -> type:
    torch = _torch()
    nn = torch.nn

    class _TinyGPT(nn.Module):  # type: ignore[misc,name-defined]
        """Decoder-only transformer: token + learned position embeddings, pre-norm blocks with a
        causal mask, tied output head. ``forward(ids (B, L) int64) -> logits (B, L, V)``."""

        def __init__(self, config: GPTConfig) -> None:
            super().__init__()
            self.config = config
            self.tok = nn.Embedding(config.vocab_size, config.d_model)
            self.pos = nn.Embedding(config.block_size, config.d_model)
            layer = nn.TransformerEncoderLayer(
                config.d_model,
                config.n_head,
                dim_feedforward=4 * config.d_model,
                dropout=config.dropout,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
            self.blocks = nn.TransformerEncoder(layer, config.n_layer, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(config.d_model)
            self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)
            self.head.weight = self.tok.weight
            self.apply(self._init)

        @staticmethod
        def _init(module: Any) -> None:
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)

        def forward(self, ids: Any) -> Any:
            length = ids.shape[1]
            if length > self.config.block_size:
                raise ValueError(f"TinyGPT: sequence of {length} tokens exceeds block_size {self.config.block_size}")
            pos = torch.arange(length, device=ids.device)
            h = self.tok(ids) + self.pos(pos)[None]
            mask = nn.Transformer.generate_square_subsequent_mask(length, device=ids.device)
            h = self.blocks(h, mask=mask, is_causal=True)
            return self.head(self.norm(h))

    return _TinyGPT


def TinyGPT(config: GPTConfig) -> Any:  # noqa: N802 - a factory that reads like a class
    """Build a tiny GPT (a ``torch.nn.Module``) for ``config``; torch is imported on first use.

    Parameters
    ----------
    config : GPTConfig
        The architecture.

    Returns
    -------
    torch.nn.Module
    """
    return _make_tiny_gpt()(config)


@dataclass
class TrainedLM:
    """A trained model with its tokenizer and training record."""

    model: Any
    tokenizer: Any
    config: GPTConfig
    steps: int
    final_loss: float
    seconds: float
    n_train_tokens: int

    def info(self) -> dict[str, Any]:
        """Plain-dict summary (config, steps, final loss, seconds, parameter count).

        Returns
        -------
        dict of str to object
        """
        n_params = sum(p.numel() for p in self.model.parameters())
        return {
            **asdict(self.config),
            "steps": self.steps,
            "final_loss": self.final_loss,
            "seconds": self.seconds,
            "n_train_tokens": self.n_train_tokens,
            "n_params": int(n_params),
        }


def train_lm(
    documents: Sequence[str],
    *,
    size: str | dict[str, int] = "small",
    tokenizer: Any = None,
    vocab_size: int = 2000,
    block_size: int = 64,
    epochs: float = 1.0,
    max_steps: int | None = None,
    batch_size: int = 32,
    lr: float = 3e-3,
    seed: int = 0,
    device: str = "cpu",
    time_limit_s: float | None = None,
) -> TrainedLM:
    """Train a :class:`TinyGPT` on ``documents`` by next-token prediction.

    Documents are tokenized (a BPE tokenizer is trained on them unless ``tokenizer`` is
    given), wrapped as ``<s> doc </s>`` and concatenated into one stream; each step draws
    ``batch_size`` random windows of ``block_size + 1`` tokens (seeded). AdamW with linear
    warm-up (5 % of steps) and cosine decay. Same documents + same seed + same device give
    the same model.

    Parameters
    ----------
    documents : sequence of str
        The corpus.
    size : str or dict, default "small"
        A key of :data:`MODEL_SIZES` or a dict of GPTConfig fields.
    tokenizer : tokenizers.Tokenizer, optional
        A trained tokenizer (default: one trained on ``documents``).
    vocab_size : int, default 2000
        Vocabulary of the trained tokenizer.
    block_size : int, default 64
        Context length.
    epochs : float, default 1.0
        Sets the step count to ``epochs * n_tokens / (batch_size * block_size)``.
    max_steps : int, optional
        Caps the step count.
    batch_size : int, default 32
        Windows per step.
    lr : float, default 3e-3
        Peak learning rate.
    seed : int, default 0
        Seed of initialization and windows.
    device : str, default "cpu"
        Torch device.
    time_limit_s : float, optional
        Stop after this many seconds.

    Returns
    -------
    TrainedLM

    Raises
    ------
    ValueError
        Bad sizes or settings, or no tokens.
    ImportError
        torch or tokenizers is missing.
    """
    torch = _torch()
    if isinstance(size, str):
        if size not in MODEL_SIZES:
            raise ValueError(f"size: expected one of {sorted(MODEL_SIZES)} or a dict, got {size!r}")
        shape = MODEL_SIZES[size]
    else:
        shape = dict(size)
    if not documents:
        raise ValueError("documents: expected at least one document, got none")
    if epochs <= 0:
        raise ValueError(f"epochs: expected > 0, got {epochs!r}")
    tok = tokenizer if tokenizer is not None else train_tokenizer(documents, vocab_size=vocab_size)
    bos, eos = tok.token_to_id(BOS), tok.token_to_id(EOS)
    stream: list[int] = []
    for enc in tok.encode_batch(list(documents), add_special_tokens=False):
        stream.append(bos)
        stream.extend(enc.ids)
        stream.append(eos)
    data = torch.tensor(np.asarray(stream, dtype=np.int64))
    if data.numel() < block_size + 2:
        raise ValueError(f"documents: {data.numel()} tokens, fewer than block_size + 2 = {block_size + 2}")
    config = GPTConfig(vocab_size=tok.get_vocab_size(), block_size=block_size, **shape)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    dev = torch.device(device)
    model = TinyGPT(config).to(dev)
    steps = max(1, math.ceil(epochs * data.numel() / (batch_size * block_size)))
    if max_steps is not None:
        steps = max(1, min(steps, max_steps))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    warm = max(1, steps // 20)

    def lr_at(s: int) -> float:
        if s < warm:
            return float(lr * (s + 1) / warm)
        return float(lr * 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, steps - warm))))

    start = time.perf_counter()
    model.train()
    loss_val = float("nan")
    ema = None
    done = 0
    for s in range(steps):
        idx = torch.randint(0, data.numel() - block_size - 1, (batch_size,), generator=gen)
        win = torch.stack([data[i : i + block_size + 1] for i in idx.tolist()]).to(dev)
        logits = model(win[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), win[:, 1:].reshape(-1))
        for g in opt.param_groups:
            g["lr"] = lr_at(s)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss_val = float(loss.detach())
        ema = loss_val if ema is None else 0.95 * ema + 0.05 * loss_val
        done = s + 1
        if time_limit_s is not None and time.perf_counter() - start > time_limit_s:
            break
    model.eval()
    return TrainedLM(
        model,
        tok,
        config,
        done,
        float(ema if ema is not None else loss_val),
        time.perf_counter() - start,
        int(data.numel()),
    )
