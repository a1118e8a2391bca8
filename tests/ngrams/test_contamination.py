"""Contamination from a corpus index: recall 1.0 on benchmark items planted verbatim in
the corpus, no hit on their token-shuffled controls; the Python function and the command."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from memscore.ngrams import Corpus, CorpusIndex, contamination
from memscore.ngrams.index import covered_by_matches
from memscore.reference import ngrams as ref


def planted(tmp_path, rng, n_items=24, length=40, vocab=2000):
    """A token corpus with half of the benchmark items planted verbatim, once each, inside
    random documents; the items, which ones were planted, and token-shuffled controls."""
    items = [rng.integers(0, vocab, size=length).tolist() for _ in range(n_items)]
    docs = [rng.integers(0, vocab, size=int(rng.integers(50, 400))).tolist() for _ in range(300)]
    chosen = rng.choice(len(docs), size=n_items // 2, replace=False)
    for k, d in enumerate(chosen):
        at = int(rng.integers(0, len(docs[d]) + 1))
        docs[d] = docs[d][:at] + items[k] + docs[d][at:]
    was_planted = np.arange(n_items) < n_items // 2
    shuffled = [rng.permutation(it).tolist() for it in items]
    tokens = np.array([t for d in docs for t in d], dtype=np.uint16)
    offsets = np.concatenate([[0], np.cumsum([len(d) for d in docs])[:-1]])
    np.save(tmp_path / "shard.npy", tokens)
    np.save(tmp_path / "shard.offsets.npy", offsets)
    return docs, items, was_planted, shuffled


def test_recall_on_planted_items_and_no_hit_on_shuffled(tmp_path, rng):
    docs, items, was_planted, shuffled = planted(tmp_path, rng)
    idx = CorpusIndex.build(Corpus.from_token_files(tmp_path / "shard.npy"), tmp_path / "idx")
    got = contamination(idx, items, n=13)
    assert got["contaminated"].to_list() == was_planted.tolist()  # recall 1.0, no false positive
    assert got.filter(pl.col("contaminated"))["coverage"].to_list() == [1.0] * int(was_planted.sum())
    assert got.filter(pl.col("contaminated"))["longest_match"].to_list() == [40] * int(was_planted.sum())
    controls = contamination(idx, shuffled, n=13)
    assert controls["covered"].to_list() == [0] * len(shuffled)
    # coverage equals the union of the reference's maximal spans of at least n tokens
    text = items[0][5:30] + [4000] + items[1][:20] + items[20][:15]
    spans = ref.maximal_spans(docs, text, min_len=13)
    want = np.zeros(len(text), dtype=bool)
    for a, b, _ in spans:
        want[a:b] = True
    assert covered_by_matches(idx.longest_match(text), 13).tolist() == want.tolist()
    row = contamination(idx, [text], n=13, threshold=0.9).row(0, named=True)
    assert row["covered"] == int(want.sum()) == 45 and not row["contaminated"]


def test_contamination_arguments(tmp_path):
    idx = CorpusIndex.build(Corpus.from_tokens([1, 2, 3], [0]), tmp_path / "i")
    assert contamination(idx, [[]])["coverage"].is_nan().to_list() == [True]
    with pytest.raises(ValueError, match="threshold"):
        contamination(idx, [[1]], threshold=0)
    with pytest.raises(ValueError, match="n:"):
        contamination(idx, [[1]], n=0)
    with pytest.raises(ValueError, match="ids"):
        contamination(idx, [[1]], ids=["a", "b"])
    with pytest.raises(TypeError, match="CorpusIndex"):
        contamination(None, [[1]])  # type: ignore[arg-type]


def test_index_and_contamination_commands(tmp_path, rng):
    typer_testing = pytest.importorskip("typer.testing")
    from memscore.cli import app

    docs, items, was_planted, shuffled = planted(tmp_path, rng, n_items=10)
    bench = tmp_path / "bench.jsonl"
    rows = [{"id": f"item{k}", "tokens": it} for k, it in enumerate(items)]
    rows += [{"id": f"shuffled{k}", "tokens": it} for k, it in enumerate(shuffled)]
    bench.write_text("".join(json.dumps(r) + "\n" for r in rows))
    runner = typer_testing.CliRunner()
    r = runner.invoke(
        app,
        [
            "ngrams",
            "index",
            "--corpus",
            str(tmp_path / "shard.npy"),
            "--out",
            str(tmp_path / "idx"),
            "--memory",
            "1.2M",
            "--executor",
            "local",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "bytes/token" in r.output
    assert len(CorpusIndex.open(tmp_path / "idx").manifest["parts"]) > 1  # cut by --memory
    out = tmp_path / "out"
    r = runner.invoke(
        app, ["ngrams", "contamination", "--index", str(tmp_path / "idx"), "--benchmark", str(bench), "--out", str(out)]
    )
    assert r.exit_code == 0, r.output
    table = pl.read_parquet(out / "contamination.parquet")
    assert table["contaminated"].to_list() == was_planted.tolist() + [False] * len(shuffled)
    dirty = [json.loads(x)["id"] for x in (out / "contaminated.jsonl").read_text().splitlines()]
    clean = [json.loads(x)["id"] for x in (out / "clean.jsonl").read_text().splitlines()]
    assert dirty == [f"item{k}" for k in range(5)]
    assert len(clean) == 15 and set(clean).isdisjoint(dirty)
    # text items need a tokenizer; a missing index is a named error
    bad = tmp_path / "text.jsonl"
    bad.write_text(json.dumps({"text": "hello"}) + "\n")
    r = runner.invoke(
        app, ["ngrams", "contamination", "--index", str(tmp_path / "idx"), "--benchmark", str(bad), "--out", str(out)]
    )
    assert r.exit_code != 0 and "tokenizer" in str(r.exception)
    r = runner.invoke(
        app,
        ["ngrams", "contamination", "--index", str(tmp_path / "nope"), "--benchmark", str(bench), "--out", str(out)],
    )
    assert r.exit_code != 0 and "no manifest" in str(r.exception)
