"""memscore.lm: loading HuggingFace causal LMs from local folders (the path a hub id takes),
batched log-probabilities and batched greedy extraction against the plain references."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import memscore.lm as lm  # noqa: E402
from memscore.ngrams import Corpus  # noqa: E402
from memscore.reference.lm import extractable_pure  # noqa: E402

VOCAB = 48


def _tokenizer(path):
    from memscore.taskgram import train_tokenizer

    tok = train_tokenizer(["the cat sat on the mat", "a dog ran in the park", "hello world"] * 5, vocab_size=VOCAB)
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", bos_token="<s>", eos_token="</s>"
    )
    fast.save_pretrained(path)


@pytest.fixture(scope="module", params=["gpt2", "neox"])
def model_dir(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(request.param)
    torch.manual_seed(0)
    if request.param == "gpt2":
        cfg = transformers.GPT2Config(
            vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=24, bos_token_id=None, eos_token_id=None
        )
        model = transformers.GPT2LMHeadModel(cfg)
    else:
        cfg = transformers.GPTNeoXConfig(
            vocab_size=VOCAB,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=24,
        )
        model = transformers.GPTNeoXForCausalLM(cfg)
    model.save_pretrained(d)
    _tokenizer(d)
    return d


def test_load_local_folder(model_dir):
    m = lm.load_causal_lm(model_dir)
    assert m.dtype == "float32" and m.device == "cpu"
    assert not m.model.training
    assert m.n_params > 0
    assert lm.context_length(m.model) == 24
    ids = m.tokenizer("the cat", add_special_tokens=False)["input_ids"]
    assert ids and max(ids) < VOCAB


def test_extractable_matches_reference(model_dir):
    m = lm.load_causal_lm(model_dir).model
    rng = np.random.default_rng(0)
    k, mm = 5, 7
    prompts = rng.integers(0, VOCAB, (9, k))
    ref = extractable_pure(m, [list(p) + [0] * mm for p in prompts], k, mm)
    # continuations equal to the model's own greedy output up to a planted mismatch at j
    seqs = []
    for i, (p, (_, _, gen)) in enumerate(zip(prompts, ref, strict=True)):
        cont = list(gen)
        j = i % (mm + 2)  # j >= mm: no mismatch (memorized)
        if j < mm:
            cont[j] = (cont[j] + 1) % VOCAB
        seqs.append(list(p) + cont + [1, 2])  # extra tokens past k + m are ignored
    want = extractable_pure(m, seqs, k, mm)
    for bs in (1, 4, 32):
        r = lm.extractable(m, None, seqs, k=k, m=mm, batch_size=bs)
        assert r.memorized.tolist() == [w[0] for w in want]
        assert r.matched.tolist() == [w[1] for w in want]
        assert r.generated.tolist() == [w[2] for w in want]
    assert r.matched.tolist() == [min(i % (mm + 2), mm) for i in range(9)]
    assert r.memorized.sum() == 2


def test_extractable_strings_and_callables(model_dir):
    loaded = lm.load_causal_lm(model_dir)
    texts = ["the cat sat on the mat the cat sat on the mat", "a dog ran in the park a dog ran in the park"]
    toks = lm.as_token_matrix(texts, loaded.tokenizer, 8)
    a = lm.extractable(loaded.model, loaded.tokenizer, texts, k=4, m=4)
    b = lm.extractable(loaded.model, None, toks, k=4, m=4)
    assert a.matched.tolist() == b.matched.tolist()

    def copy_last(ids):  # a plain callable: predicts the token it just saw
        return torch.nn.functional.one_hot(ids, 8).float()

    r = lm.extractable(copy_last, None, np.array([[1, 2, 2, 2, 2], [3, 4, 4, 5, 4], [0, 1, 2, 3, 4]]), k=2, m=3)
    assert r.memorized.tolist() == [True, False, False]
    assert r.matched.tolist() == [3, 1, 0]
    assert [x[:2] for x in extractable_pure(copy_last, [[1, 2, 2, 2, 2], [3, 4, 4, 5, 4], [0, 1, 2, 3, 4]], 2, 3)] == [
        (True, 3),
        (False, 1),
        (False, 0),
    ]


def test_extractable_bad_input(model_dir):
    m = lm.load_causal_lm(model_dir).model
    seqs = np.zeros((2, 40), dtype=np.int64)
    with pytest.raises(ValueError, match="longer than the model's context of 24"):
        lm.extractable(m, None, seqs, k=20, m=20)
    with pytest.raises(ValueError, match="at least k \\+ m = 10 tokens, got 6"):
        lm.extractable(m, None, [[1] * 10, [1] * 6], k=5, m=5)
    with pytest.raises(ValueError, match="pass the model's tokenizer"):
        lm.extractable(m, None, ["the cat"], k=1, m=1)
    with pytest.raises(TypeError, match="integer token ids"):
        lm.extractable(m, None, np.zeros((2, 10)), k=5, m=5)
    with pytest.raises(ValueError, match="k"):
        lm.extractable(m, None, seqs, k=0, m=5)
    with pytest.raises(ValueError, match=f"token id {VOCAB} is outside the model's vocabulary of {VOCAB}"):
        lm.extractable(m, None, np.full((2, 10), VOCAB), k=5, m=5)
    empty = lm.extractable(m, None, np.zeros((0, 10), dtype=np.int64), k=5, m=5)
    assert empty.memorized.shape == (0,) and empty.matched.shape == (0,) and empty.generated.shape == (0, 5)


def test_token_logprobs_batched_equals_single(model_dir):
    m = lm.load_causal_lm(model_dir).model
    rng = np.random.default_rng(1)
    seqs = [list(rng.integers(0, VOCAB, n)) for n in (3, 9, 1, 6, 0)]
    batched = lm.token_logprobs(m, seqs, batch_size=3)
    for s, got in zip(seqs, batched, strict=True):
        assert got.shape == (len(s),)
        if not s:
            continue
        assert np.isnan(got[0])
        with torch.no_grad():
            logits = m(input_ids=torch.tensor([s])).logits[0]
        want = torch.log_softmax(logits.float(), -1)[:-1].gather(1, torch.tensor(s[1:])[:, None])[:, 0]
        np.testing.assert_allclose(got[1:], want.double().numpy(), rtol=1e-5, atol=1e-5)


def test_load_errors(tmp_path):
    with pytest.raises(lm.ModelLoadError, match="no such file or folder"):
        lm.load_causal_lm(tmp_path / "missing")
    with pytest.raises(lm.ModelLoadError, match="Pass a local path"):
        lm.load_causal_lm("no-such-org/no-such-model", local_files_only=True)
    # an encoder-decoder model is not a causal LM
    t5 = tmp_path / "t5"
    transformers.T5Config(vocab_size=32, d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8).save_pretrained(t5)
    with pytest.raises(lm.ModelLoadError, match="not a causal language model"):
        lm.load_causal_lm(t5)
    with pytest.raises(ValueError, match="dtype"):
        lm.load_causal_lm(t5, dtype="float8")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            lm.resolve_dtype("auto", "cuda")
    assert lm.resolve_dtype("auto", "cpu") == "float32"


def test_sampler_uniform_and_counts():
    rng = np.random.default_rng(0)
    docs = [rng.integers(0, 5, n) for n in (3, 10, 0, 7, 12)]
    tokens = np.concatenate(docs).astype(np.uint32)
    offsets = np.cumsum([0] + [len(d) for d in docs[:-1]])
    corpus = Corpus.from_tokens(tokens, offsets)
    s = lm.sample_sequences(corpus, 1000, 4, seed=3)
    # every window inside one document: 0 + 7 + 0 + 4 + 9 = 20 positions, all drawn once
    assert s.tokens.shape == (20, 4)
    assert len(set(s.position.tolist())) == 20
    ends = np.append(offsets[1:], len(tokens))
    for row, pos in zip(s.tokens, s.position, strict=True):
        d = np.searchsorted(offsets, pos, side="right") - 1
        assert pos + 4 <= ends[d]
        assert row.tolist() == tokens[pos : pos + 4].tolist()
    # duplicate counts: brute force over documents
    for row, c in zip(s.tokens, s.counts, strict=True):
        want = sum(1 for d in docs for i in range(len(d) - 3) if d[i : i + 4].tolist() == row.tolist())
        assert c == want
    assert lm.sample_sequences(corpus, 5, 4, seed=3).tokens.shape == (5, 4)
    with pytest.raises(ValueError, match="no document has 13 tokens"):
        lm.sample_sequences(corpus, 5, 13)
    with pytest.raises(ValueError, match="token corpus"):
        lm.sample_sequences(Corpus.from_texts(["a b c"]), 5, 2)


def test_sampler_token_files_and_stratified(tmp_path):
    rng = np.random.default_rng(0)
    common = rng.integers(0, 50, 6)
    docs = [common] * 64 + [rng.integers(0, 50, 6) for _ in range(200)] + [np.tile(common[:3], 1)]
    tokens = np.concatenate(docs).astype(np.uint16)
    offsets = np.cumsum([0] + [len(d) for d in docs[:-1]]).astype(np.int64)
    np.save(tmp_path / "shard.npy", tokens)
    np.save(tmp_path / "shard.offsets.npy", offsets)
    corpus = Corpus.from_token_files(tmp_path)
    uniform = lm.sample_sequences(corpus, 40, 6, seed=0)
    strat = lm.sample_sequences(corpus, 40, 6, stratify=True, seed=0)
    assert set(strat.counts.tolist()) == {1, 64}
    # equal shares per bin, while a uniform draw is dominated by the unique documents
    assert (strat.counts == 64).sum() == 20 and (strat.counts == 1).sum() == 20
    assert (uniform.counts == 1).sum() > (uniform.counts == 64).sum()
    assert lm.log2_bin(np.array([1, 2, 3, 4, 64, 127])).tolist() == [0, 1, 1, 2, 6, 6]


def test_curve_table_shape():
    import polars as pl

    t = pl.DataFrame(
        {
            "model": ["a"] * 5 + ["b"] * 5,
            "count": [1, 1, 2, 3, 100] * 2,
            "memorized": [False, False, True, False, True, False, False, False, False, True],
            "matched": [0, 1, 4, 2, 4, 0, 0, 0, 0, 4],
        }
    )
    c = lm.memorization_curve(t)
    assert c.columns == ["model", "bin", "count_lo", "count_hi", "n", "memorized", "fraction", "mean_matched"]
    a = c.filter(pl.col("model") == "a")
    assert a["bin"].to_list() == [0, 1, 6]
    assert a["count_lo"].to_list() == [1, 2, 64] and a["count_hi"].to_list() == [1, 3, 127]
    assert a["fraction"].to_list() == [0.0, 0.5, 1.0]
    assert a["mean_matched"].to_list() == [0.5, 3.0, 4.0]


def test_tokenizer_without_offsets_is_refused_where_needed(model_dir, monkeypatch):
    class SlowTokenizer:  # what a Python (non-Rust) tokenizer reports
        is_fast = False

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: SlowTokenizer())
    with pytest.raises(lm.ModelLoadError, match="no character offsets"):
        lm.check_causal_lm(model_dir, need_offsets=True)
    _, tok = lm.check_causal_lm(model_dir)  # extraction needs no offsets
    assert isinstance(tok, SlowTokenizer)


def test_tokenize_corpus_round_trip(model_dir, tmp_path):
    import gzip
    import json

    tok = lm.load_causal_lm(model_dir).tokenizer
    docs = ["the cat sat on the mat", "a dog ran in the park", "", "hello world the cat"]
    (tmp_path / "in").mkdir()
    with open(tmp_path / "in" / "a.jsonl", "w") as f:
        for d in docs[:2]:
            f.write(json.dumps({"body": d}) + "\n\n")
    with gzip.open(tmp_path / "in" / "b.jsonl.gz", "wt") as f:
        for d in docs[2:]:
            f.write(json.dumps({"body": d}) + "\n")
    corpus = lm.tokenize_corpus(tmp_path / "in", tok, tmp_path / "tok", text_field="body", batch_size=1)
    arrays = lm.token_shard_arrays(corpus)
    got = []
    for tokens, offsets in arrays:
        assert tokens.dtype == np.uint16
        ends = np.append(offsets[1:], len(tokens))
        got += [tokens[a:b].tolist() for a, b in zip(offsets, ends, strict=True)]
    assert got == [tok(d, add_special_tokens=False)["input_ids"] for d in docs]
    (tmp_path / "bad.jsonl").write_text('{"text": 3}\n')
    from memscore.errors import CorpusError

    with pytest.raises(CorpusError, match="line 1: expected a string 'text'"):
        lm.tokenize_corpus(tmp_path / "bad.jsonl", tok, tmp_path / "tok2")


def test_cli_memorization_on_a_text_corpus(model_dir, tmp_path):
    import json

    from typer.testing import CliRunner

    from memscore.cli import app

    with open(tmp_path / "docs.jsonl", "w") as f:
        for _ in range(5):
            f.write(json.dumps({"text": "the cat sat on the mat the cat sat on the mat"}) + "\n")
        f.write(json.dumps({"text": "a dog ran in the park and a dog ran"}) + "\n")
    out = tmp_path / "out"
    args = ["lm", "memorization", "--corpus", str(tmp_path / "docs.jsonl"), "--model", str(model_dir)]
    args += ["--k", "3", "--m", "3", "--samples", "30", "--out", str(out)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    table = pl.read_parquet(out / "sequences.parquet")
    assert table.height == 30 and table["count"].min() >= 1 and table["count"].max() >= 5
    assert list((out / "tokens").glob("*.offsets.npy"))


def test_sampler_across_shards():
    rng = np.random.default_rng(5)
    a = rng.integers(0, 4, 30).astype(np.uint32)
    b = rng.integers(0, 4, 12).astype(np.uint32)
    corpus = Corpus.from_tokens(a, [0, 10, 25], name="a") + Corpus.from_tokens(b, [0, 2], name="b")
    s = lm.sample_sequences(corpus, 10_000, 3, seed=1)
    # windows: shard a 8 + 13 + 3, shard b 0 + 8
    assert s.tokens.shape == (32, 3)
    assert (s.shard == 0).sum() == 24 and (s.shard == 1).sum() == 8
    for row, sh, pos in zip(s.tokens, s.shard, s.position, strict=True):
        assert row.tolist() == (a if sh == 0 else b)[pos : pos + 3].tolist()
    part = lm.sample_sequences(corpus, 7, 3, seed=2)
    assert part.tokens.shape == (7, 3) and len(set(zip(part.shard.tolist(), part.position.tolist(), strict=True))) == 7
