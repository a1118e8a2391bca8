"""LM membership scores on planted members against held-out non-members (docs/lm.md).

    python benches/lm_membership_planted.py

A tiny GPT-2 (2 layers, 64 wide, vocabulary 64, 12-token documents) is trained for 4
epochs on 200 random background documents plus 64 random sequences planted once and 64
planted 10 times (:func:`memscore.lm.planted.planted_corpus`). The reference model has the
same shape and is trained the same way on as many random documents, none of them planted.
Members are the planted sequences of one copy count; non-members are 64 fresh random
sequences of the same distribution. For every score of :func:`memscore.lm.membership_scores`
(oriented by :func:`memscore.lm.member_scores`, higher = member) the table gives the AUROC
with its 95% bootstrap interval over sequences (:func:`memscore.membership_metrics`).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import machine  # noqa: E402

import memscore  # noqa: E402
from memscore.lm import member_scores, membership_scores  # noqa: E402
from memscore.lm.planted import fit_causal_lm, planted_corpus  # noqa: E402

V, L, PER = 64, 12, 64


def tiny_gpt2(seed: int):  # type: ignore[no-untyped-def]
    import torch
    import transformers

    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(
        vocab_size=V, n_embd=64, n_layer=2, n_head=4, n_positions=L, bos_token_id=None, eos_token_id=None
    )
    return transformers.GPT2LMHeadModel(cfg)


def main() -> None:
    print(f"machine: {machine()}")
    t0 = time.perf_counter()
    planted = planted_corpus(vocab_size=V, length=L, background=200, copies=(1, 10), per_copy=PER, seed=0)
    model = tiny_gpt2(0)
    fit_causal_lm(model, planted.documents, epochs=4, lr=3e-3, seed=0)
    n_docs = len(planted.documents)
    other = planted_corpus(vocab_size=V, length=L, background=n_docs, copies=(1,), per_copy=1, seed=1)
    reference = tiny_gpt2(1)
    fit_causal_lm(reference, other.documents[:n_docs], epochs=4, lr=3e-3, seed=1)
    trained = time.perf_counter() - t0
    held_out = np.random.default_rng(99).integers(0, V, (PER, L))
    members = np.r_[np.ones(PER, bool), np.zeros(PER, bool)]
    print("\n| members | score | AUROC | 95% interval |")
    print("|---|---|---:|---|")
    for c in (1, 10):
        table = membership_scores(model, np.concatenate([planted.planted[c], held_out]), reference=reference)
        oriented = member_scores(table)
        for col in oriented.columns:
            m = memscore.membership_metrics(oriented[col].to_numpy(), members, ci=0.95, n_boot=1000)
            lo, hi = m.intervals["examples"]["auc"]
            print(f"| planted x{c} | {col} | {m.auc:.3f} | [{lo:.3f}, {hi:.3f}] |")
    print(f"\ntraining {trained:.0f} s, total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
