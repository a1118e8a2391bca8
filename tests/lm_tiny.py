"""Tiny causal LMs for the executor tests of ``memscore.lm``: a GPT-2 built from a config
(no download), saved with ``save_pretrained`` next to a fast tokenizer trained here, so that
``load_causal_lm`` and the tasks that load by name read it like any model folder."""

from __future__ import annotations

from pathlib import Path

VOCAB = 48
CONTEXT = 32
TEXTS = ["the cat sat on the mat", "a dog ran in the park", "hello world"]


def save_tiny_lm(path: Path, seed: int = 0) -> Path:
    """A random 2-layer GPT-2 (vocabulary 48, context 32) and its tokenizer in ``path``."""
    import torch
    import transformers

    from memscore.taskgram import train_tokenizer

    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(
        vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=CONTEXT, bos_token_id=None, eos_token_id=None
    )
    transformers.GPT2LMHeadModel(cfg).save_pretrained(path)
    tok = train_tokenizer(TEXTS * 5, vocab_size=VOCAB)
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", bos_token="<s>", eos_token="</s>"
    )
    fast.save_pretrained(path)
    return path


def save_with_tokenizer(model, path: Path) -> Path:
    """``model.save_pretrained(path)`` and a small fast tokenizer next to it, as
    ``load_causal_lm`` expects a model folder (token-id inputs never use it)."""
    import transformers

    from memscore.taskgram import train_tokenizer

    model.save_pretrained(path)
    tok = train_tokenizer(["a b c d e f g"] * 3, vocab_size=16)
    transformers.PreTrainedTokenizerFast(tokenizer_object=tok).save_pretrained(path)
    return path
