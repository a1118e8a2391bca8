"""Extractable memorization against duplication on a planted corpus: a tiny GPT-2 (built
from a config, saved with save_pretrained and loaded back through load_causal_lm) trained on
random documents with sequences planted 1, 10 and 100 times; the memorized fraction and the
matched prefix must rise with duplication, through the API and through
``memscore lm memorization``."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("matplotlib")

import polars as pl  # noqa: E402

import memscore.lm as lm  # noqa: E402
from memscore.lm.planted import fit_causal_lm, planted_corpus  # noqa: E402

LENGTH, K, M = 12, 6, 6


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("planted")
    p = planted_corpus(vocab_size=64, length=LENGTH, background=200, per_copy=4, seed=0)
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(
        vocab_size=64, n_embd=64, n_layer=2, n_head=4, n_positions=LENGTH, bos_token_id=None, eos_token_id=None
    )
    model = transformers.GPT2LMHeadModel(cfg)
    untrained = d / "untrained"
    model.save_pretrained(untrained)
    losses = fit_causal_lm(model, p.documents, epochs=4, lr=3e-3, seed=0)
    assert losses[-1] < losses[0]
    model.save_pretrained(d / "trained")
    for sub in ("trained", "untrained"):  # a tokenizer next to each model, as load_causal_lm expects
        from memscore.taskgram import train_tokenizer

        tok = train_tokenizer(["a b c d e f g"] * 3, vocab_size=16)
        transformers.PreTrainedTokenizerFast(tokenizer_object=tok).save_pretrained(d / sub)
    np.save(d / "corpus.npy", p.documents.ravel().astype(np.uint16))
    np.save(d / "corpus.offsets.npy", np.arange(len(p.documents), dtype=np.int64) * LENGTH)
    return d, p


def test_planted_curve_rises_with_duplication(trained):
    d, p = trained
    loaded = lm.load_causal_lm(d / "trained")
    # the planted sequences themselves
    frac, matched = [], []
    for c in (1, 10, 100):
        r = lm.extractable(loaded.model, None, p.planted[c], K, M, batch_size=8)
        frac.append(r.memorized.mean())
        matched.append(r.matched.mean())
    assert frac[0] == 0.0 and frac[2] == 1.0
    assert matched[0] <= matched[1] <= matched[2] and matched[0] < matched[2]
    # the same through the sampler: stratified by duplicate count over the whole corpus
    sample = lm.sample_sequences(p.corpus(), 90, LENGTH, stratify=True, seed=0)
    assert set(sample.counts.tolist()) == {1, 10, 100}
    curve = lm.memorization_curve(lm.memorization_table([loaded], sample, K, M, batch_size=16))
    assert curve["count_lo"].to_list() == [1, 8, 64]
    f = curve["fraction"].to_list()
    assert f[0] < 0.1 and f[2] == 1.0 and f[0] <= f[1] <= f[2]
    mm = curve["mean_matched"].to_list()
    assert mm[0] < mm[1] < mm[2]


def test_cli_memorization(trained, tmp_path):
    from typer.testing import CliRunner

    from memscore.cli import app

    d, _ = trained
    out = tmp_path / "out"
    args = ["lm", "memorization", "--corpus", str(d / "corpus.npy"), "--out", str(out)]
    args += ["--model", str(d / "trained"), "--model", str(d / "untrained")]
    args += ["--k", str(K), "--m", str(M), "--samples", "60", "--stratify", "--batch-size", "16"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    table = pl.read_parquet(out / "sequences.parquet")
    assert table.height == 120 and set(table["model"]) == {str(d / "trained"), str(d / "untrained")}
    curve = pl.read_csv(out / "curve.csv")
    top = curve.filter(pl.col("bin") == 6).sort("model")
    assert top["fraction"].to_list() == [1.0, 0.0]  # trained memorized the 100x ones, untrained did not
    assert (out / "memorization.png").stat().st_size > 1000
    assert json.loads((out / "run.json").read_text())["k"] == K
    # the duplicates from the corpus's index: the same table
    from memscore.ngrams import Corpus, CorpusIndex

    CorpusIndex.build(Corpus.from_token_files(d / "corpus.npy"), tmp_path / "idx")
    r = CliRunner().invoke(app, [*args[:5], str(tmp_path / "out-index"), *args[6:], "--index", str(tmp_path / "idx")])
    assert r.exit_code == 0, r.output
    assert pl.read_parquet(tmp_path / "out-index" / "sequences.parquet").equals(table)

    # an error before any model runs: k + m past the context
    r = CliRunner().invoke(app, [*args[:10], "--k", "10", "--m", "10"])
    assert r.exit_code != 0 and "longer than the model's context of 12" in str(r.exception)
