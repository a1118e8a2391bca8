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


def tiny_neox(vocab_size: int, context: int, seed: int = 0):
    """A random 2-layer GPT-NeoX (Pythia's architecture, rotary positions), built from a config."""
    import torch
    import transformers

    torch.manual_seed(seed)
    cfg = transformers.GPTNeoXConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=256,
        max_position_embeddings=context,
        bos_token_id=None,
        eos_token_id=None,
    )
    return transformers.GPTNeoXForCausalLM(cfg)


def save_with_tokenizer(model, path: Path) -> Path:
    """``model.save_pretrained(path)`` and a small fast tokenizer next to it, as
    ``load_causal_lm`` expects a model folder (token-id inputs never use it)."""
    import transformers

    from memscore.taskgram import train_tokenizer

    model.save_pretrained(path)
    tok = train_tokenizer(["a b c d e f g"] * 3, vocab_size=16)
    transformers.PreTrainedTokenizerFast(tokenizer_object=tok).save_pretrained(path)
    return path
