"""LM membership scores (loss, Min-K%, Min-K%++, zlib, reference ratio) against the plain
per-token reference, edge cases, the batched model path, and errors."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from numpy.testing import assert_allclose

from memscore.lm.membership import member_scores, membership_from_logits, membership_scores
from memscore.reference.lm import membership_pure

torch = pytest.importorskip("torch")

COLS = ["loss", "min_k", "min_k_plus_plus"]


def _want(logits, ids, k, lengths=None):
    rows = membership_pure(logits, ids, k, lengths)
    return np.array([[r[c] for c in COLS] for r in rows])


@pytest.mark.parametrize("k", [0.2, 0.5, 1.0, 1e-6])
@pytest.mark.parametrize(("b", "length", "v"), [(3, 7, 11), (2, 2, 5), (1, 13, 3)])
def test_matches_reference(rng, k, b, length, v):
    logits = rng.normal(scale=3.0, size=(b, length, v))
    ids = rng.integers(0, v, (b, length))
    got = membership_from_logits(logits, ids, k=k)
    assert_allclose(got.select(COLS).to_numpy(), _want(logits, ids, k), rtol=1e-9, atol=1e-12)
    assert got["n_tokens"].to_list() == [length] * b
    # torch input, float32 included
    t = membership_from_logits(torch.tensor(logits), torch.tensor(ids).numpy(), k=k)
    assert_allclose(t.select(COLS).to_numpy(), got.select(COLS).to_numpy(), rtol=1e-12)


def test_edge_cases(rng):
    # L = 2: one prediction; min_k = -loss whatever k
    logits = rng.normal(size=(4, 2, 6))
    ids = rng.integers(0, 6, (4, 2))
    got = membership_from_logits(logits, ids, k=0.01)
    assert_allclose(got["min_k"].to_numpy(), -got["loss"].to_numpy(), rtol=1e-12)
    # ties: equal log-probabilities at every position; uniform logits: z = 0 exactly
    same = np.tile(np.array([2.0, 0.0, 0.0, 0.0]), (1, 5, 1))
    tied = membership_from_logits(same, np.array([[0, 1, 2, 3, 1]]), k=0.5)
    assert_allclose(tied.select(COLS).to_numpy(), _want(same, [[0, 1, 2, 3, 1]], 0.5), rtol=1e-12)
    uniform = membership_from_logits(np.zeros((1, 4, 8)), np.array([[1, 2, 3, 4]]))
    assert uniform["min_k_plus_plus"].item() == 0.0
    assert uniform["loss"].item() == pytest.approx(np.log(8))
    # extreme logits: a near-certain model, the true token far in the tail
    extreme = np.zeros((1, 3, 4))
    extreme[0, :, 0] = 700.0
    far = membership_from_logits(extreme, np.array([[0, 1, 0]]), k=1.0)
    assert_allclose(far.select(COLS).to_numpy(), _want(extreme, [[0, 1, 0]], 1.0), rtol=1e-9)
    assert far["min_k_plus_plus"].item() < -1e6  # a token the model rules out is very non-member
    # right padding: garbage beyond each length is never read
    logits = rng.normal(size=(2, 6, 5))
    ids = rng.integers(0, 5, (2, 6))
    padded = logits.copy()
    padded[0, 3:] = np.nan
    got = membership_from_logits(padded, ids, k=0.4, lengths=[4, 6])
    assert_allclose(got.select(COLS).to_numpy(), _want(logits, ids, 0.4, [4, 6]), rtol=1e-9)
    assert got["n_tokens"].to_list() == [4, 6]


def test_errors(rng):
    logits = rng.normal(size=(3, 4, 5))
    ids = rng.integers(0, 5, (3, 4))
    bad = logits.copy()
    bad[1, 2, 0] = np.inf
    bad[2, 0, 3] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinite values in sequences \[1, 2\]"):
        membership_from_logits(bad, ids)
    with pytest.raises(ValueError, match="k: expected a number in"):
        membership_from_logits(logits, ids, k=0.0)
    with pytest.raises(ValueError, match="L >= 2"):
        membership_from_logits(logits[:, :1], ids[:, :1])
    with pytest.raises(ValueError, match=r"ids in \[0, 5\)"):
        membership_from_logits(logits, ids + 5)
    with pytest.raises(ValueError, match="token_ids: expected shape"):
        membership_from_logits(logits, ids[:2])
    with pytest.raises(ValueError, match="lengths: expected values in"):
        membership_from_logits(logits, ids, lengths=[1, 4, 4])
    with pytest.raises(TypeError, match="token_ids"):
        membership_from_logits(logits, ids.astype(float))


class Bigram(torch.nn.Module):
    """A fixed random bigram model (logits of the next token depend on the current one)."""

    def __init__(self, v: int, seed: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.table = torch.nn.Parameter(torch.randn(v, v, generator=g) * 2.0)

    def forward(self, ids):
        return self.table[ids]


def test_model_path_matches_logits_path(rng):
    v = 9
    model, ref = Bigram(v, 0), Bigram(v, 1)
    seqs = [list(rng.integers(0, v, n)) for n in (5, 2, 9, 3, 7)]
    got = membership_scores(model, seqs, reference=ref, k=0.3, batch_size=2, executor="threads:2")
    assert got["sequence"].to_list() == list(range(5))
    assert "zlib" not in got.columns  # ids and no tokenizer: no text to compress
    for i, s in enumerate(seqs):
        ids = torch.tensor([s])
        one = membership_from_logits(model(ids), ids.numpy(), k=0.3)
        ref_one = membership_from_logits(ref(ids), ids.numpy(), k=0.3)
        assert_allclose(got.row(i, named=True)["loss"], one["loss"].item(), rtol=1e-6)
        for c in COLS:
            assert got[c][i] == pytest.approx(one[c].item(), rel=1e-6, abs=1e-9)
        assert got["reference_ratio"][i] == pytest.approx(one["loss"].item() - ref_one["loss"].item(), rel=1e-6)
    # the same numbers whichever executor or batch size
    again = membership_scores(model, seqs, reference=ref, k=0.3, batch_size=5)
    assert_allclose(again.select(COLS).to_numpy(), got.select(COLS).to_numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match=r"texts_or_ids\[1\]: need at least 2 tokens"):
        membership_scores(model, [[1, 2], [3]])
    with pytest.raises(ValueError, match="tokenizer"):
        membership_scores(model, ["some text"])


class CharTokenizer:
    """One token per character code (mod vocabulary), for the zlib column."""

    def __init__(self, v: int) -> None:
        self.v = v

    def __call__(self, texts, add_special_tokens=False):
        return {"input_ids": [[ord(c) % self.v for c in t] for t in texts]}

    def decode(self, ids):
        return "".join(chr(97 + i) for i in ids)


def test_texts_and_zlib():
    v = 9
    texts = ["aaaaaaaaaaaaaaaa", "the quick brown fox"]
    got = membership_scores(Bigram(v, 0), texts, tokenizer=CharTokenizer(v))
    comp = np.array([len(zlib.compress(t.encode())) for t in texts])
    assert_allclose(got["zlib"].to_numpy(), got["loss"].to_numpy() / comp)
    oriented = member_scores(got)
    assert oriented.columns == ["loss", "min_k", "min_k_plus_plus", "zlib"]
    assert_allclose(oriented["loss"].to_numpy(), -got["loss"].to_numpy())
    assert_allclose(oriented["min_k"].to_numpy(), got["min_k"].to_numpy())
