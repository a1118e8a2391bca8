"""Tracing generations through a corpus index: the table against the index's own queries
and the brute-force reference, the HTML view, and ``memscore lm trace``."""

from __future__ import annotations

import json
import math

import numpy as np
import polars as pl
import pytest

from memscore.lm import trace, write_trace_html
from memscore.ngrams import Corpus, CorpusIndex
from memscore.reference import ngrams as ref


def corpus_and_generations(rng):
    plant = list(range(500, 530))
    docs = [rng.integers(0, 50, size=int(rng.integers(10, 80))).tolist() for _ in range(60)]
    docs[7] = docs[7][:5] + plant + docs[7][5:]
    gens = [
        [900, 901] + plant[:20] + [902] + plant[10:],  # two planted spans
        rng.integers(0, 50, size=25).tolist(),  # random: short matches only
        [],
    ]
    tokens = np.array([t for d in docs for t in d], dtype=np.uint16)
    offsets = np.concatenate([[0], np.cumsum([len(d) for d in docs])[:-1]])
    return docs, Corpus.from_tokens(tokens, offsets), gens


def test_trace_table(tmp_path, rng):
    docs, corpus, gens = corpus_and_generations(rng)
    idx = CorpusIndex.build(corpus, tmp_path / "idx")
    table = trace(idx, gens, ids=["a", "b", "c"], min_len=4, n_docs=2, max_n=5)
    assert table.columns == ["id", "tokens", "longest_match", "novelty", "spans", "coverage"]
    for row, g in zip(table.iter_rows(named=True), gens, strict=True):
        assert row["longest_match"] == ref.longest_match(docs, g)
        want = ref.novelty(docs, g, 5)
        assert [
            (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b)
            for a, b in zip(row["novelty"], want, strict=True)
        ] == [True] * 5
        assert [(s["start"], s["end"], s["count"]) for s in row["spans"]] == ref.maximal_spans(docs, g, 4)
    first = table.row(0, named=True)
    assert [(s["start"], s["end"]) for s in first["spans"]] == [(2, 22), (23, 43)]
    assert first["spans"][0]["doc_ids"] == [7] and first["spans"][0]["offsets"] == [5]
    assert first["coverage"] == pytest.approx(40 / 43)
    # the table round-trips through Parquet
    table.write_parquet(tmp_path / "t.parquet")
    assert pl.read_parquet(tmp_path / "t.parquet").equals(table)
    write_trace_html(table, tmp_path / "t.html", min_len=4)
    page = (tmp_path / "t.html").read_text()
    assert page.count('class="tok span') == 40 and "1 in the corpus; doc 7 @ 5" in page
    with pytest.raises(ValueError, match="token_strings"):
        write_trace_html(table, tmp_path / "u.html", token_strings=[["x"]])
    with pytest.raises(ValueError, match="ids"):
        trace(idx, gens, ids=["a"])


def _word_tokenizer(path, vocab):
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import models, pre_tokenizers

    tok = tokenizers.Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(path))
    return path


def test_trace_command(tmp_path, rng):
    typer_testing = pytest.importorskip("typer.testing")
    from memscore.cli import app

    words = ["[UNK]"] + [f"w{i}" for i in range(60)]
    tok = _word_tokenizer(tmp_path / "tokenizer.json", {w: i for i, w in enumerate(words)})
    docs = [rng.integers(1, 60, size=40).tolist() for _ in range(30)]
    tokens = np.array([t for d in docs for t in d], dtype=np.uint16)
    np.save(tmp_path / "s.npy", tokens)
    np.save(tmp_path / "s.offsets.npy", np.arange(30) * 40)
    runner = typer_testing.CliRunner()
    r = runner.invoke(app, ["ngrams", "index", "--corpus", str(tmp_path / "s.npy"), "--out", str(tmp_path / "idx")])
    assert r.exit_code == 0, r.output
    gen_text = " ".join(words[t] for t in docs[3][:12]) + " <odd> " + " ".join(words[t] for t in docs[9][4:20])
    gens = tmp_path / "gens.jsonl"
    gens.write_text(
        json.dumps({"id": "g1", "text": gen_text}) + "\n" + json.dumps({"id": "g2", "tokens": docs[0][:9]}) + "\n"
    )
    out = tmp_path / "out"
    args = ["lm", "trace", "--index", str(tmp_path / "idx"), "--generations", str(gens), "--out", str(out)]
    r = runner.invoke(app, [*args, "--tokenizer", str(tok), "--min-len", "6"])
    assert r.exit_code == 0, r.output
    table = pl.read_parquet(out / "trace.parquet")
    assert table["id"].to_list() == ["g1", "g2"]
    spans = table.row(0, named=True)["spans"]
    assert [(s["start"], s["end"]) for s in spans] == [(0, 12), (15, 31)]  # "<odd>" is three unknown tokens
    assert spans[0]["doc_ids"][0] == 3 and spans[1]["doc_ids"][0] == 9
    page = (out / "trace.html").read_text()
    assert f"w{docs[3][0]}" in page and "[UNK]" in page  # the tokenizer's own tokens show
    r = runner.invoke(app, args)  # text without --tokenizer
    assert r.exit_code != 0 and "tokenizer" in str(r.exception)


def test_extraction_sample_with_index(tmp_path, rng):
    """The extraction study's duplicate counts from the index equal those of a pass."""
    from memscore.lm import duplicate_counts, sample_sequences

    docs, corpus, _ = corpus_and_generations(rng)
    idx = CorpusIndex.build(corpus, tmp_path / "idx")
    a = sample_sequences(corpus, 200, 6, stratify=True, seed=4)
    b = sample_sequences(corpus, 200, 6, stratify=True, seed=4, index=idx)
    assert np.array_equal(a.tokens, b.tokens) and np.array_equal(a.counts, b.counts)
    assert duplicate_counts(corpus, a.tokens, index=idx).tolist() == ref.count_ngrams(docs, a.tokens.tolist())
    other = Corpus.from_tokens(np.arange(10, dtype=np.uint16), [0])
    with pytest.raises(Exception, match="shard|other tokens|documents"):
        duplicate_counts(other, a.tokens, index=idx)
