"""Planted members score above held-out non-members: a tiny GPT-2 trained on random
documents with 24 sequences planted 10 times; the loss (and every other score) must
separate them from 24 fresh random sequences, with the AUROC's interval above 0.5."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import memscore  # noqa: E402
from memscore.lm import member_scores, membership_scores  # noqa: E402
from memscore.lm.planted import fit_causal_lm, planted_corpus  # noqa: E402

V, L, PER = 64, 12, 24


def test_planted_members_score_above_non_members():
    p = planted_corpus(vocab_size=V, length=L, background=150, copies=(10,), per_copy=PER, seed=0)
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(
        vocab_size=V, n_embd=64, n_layer=2, n_head=4, n_positions=L, bos_token_id=None, eos_token_id=None
    )
    model = transformers.GPT2LMHeadModel(cfg)
    untrained = transformers.GPT2LMHeadModel(cfg)
    fit_causal_lm(model, p.documents, epochs=4, lr=3e-3, seed=0)
    held_out = np.random.default_rng(99).integers(0, V, (PER, L))
    members = np.r_[np.ones(PER, bool), np.zeros(PER, bool)]
    table = membership_scores(model, np.concatenate([p.planted[10], held_out]), reference=untrained, batch_size=16)
    oriented = member_scores(table)
    assert oriented.columns == ["loss", "min_k", "min_k_plus_plus", "reference_ratio"]
    for col in oriented.columns:
        m = memscore.membership_metrics(oriented[col].to_numpy(), members, ci=0.95, n_boot=500)
        lo, _ = m.intervals["examples"]["auc"]
        assert m.auc > 0.8 and lo > 0.5, (col, m.auc, lo)
