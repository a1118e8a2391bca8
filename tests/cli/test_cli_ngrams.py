"""`memscore ngrams count` (the typer sub-application in memscore.ngrams_cli)."""

import json

import numpy as np
import pytest

typer = pytest.importorskip("typer")
from typer.testing import CliRunner  # noqa: E402

from memscore.cli.ngrams import app  # noqa: E402
from memscore.ngrams import Corpus, NgramStats, ngram_stats  # noqa: E402


def _corpus(tmp_path):
    d = tmp_path / "corpus"
    d.mkdir()
    texts = [["The cat sat.", "A dog; the cat!", ""], ["cat dog cat", "the end"], ["Dog days"]]
    for k, shard in enumerate(texts):
        with open(d / f"s{k}.jsonl", "w") as f:
            for t in shard:
                f.write(json.dumps({"body": t}) + "\n")
    (tmp_path / "q.txt").write_text("cat\nthe cat\ndog\nmissing word\n")
    (tmp_path / "p.tsv").write_text("cat\tdog\nthe cat\tsat\n")
    return d


def test_count_writes_partials_skips_done_and_merges(tmp_path):
    d = _corpus(tmp_path)
    out = tmp_path / "out"
    args = [
        "count",
        "--corpus",
        str(d),
        "--queries",
        str(tmp_path / "q.txt"),
        "--pairs",
        str(tmp_path / "p.tsv"),
        "--out",
        str(out),
        "--text-field",
        "body",
        "--no-progress",
    ]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "3 to count" in r.output
    parts = sorted((out / "partials").glob("*.parquet"))
    assert len(parts) == 3
    merged = NgramStats.read_parquet(out / "merged.parquet")
    want = ngram_stats(
        Corpus.from_jsonl(d, text_field="body"),
        ["cat", "the cat", "dog", "missing word"],
        [("cat", "dog"), ("the cat", "sat")],
    )
    np.testing.assert_array_equal(merged.counts, want.counts)
    np.testing.assert_array_equal(merged.doc_freq, want.doc_freq)
    np.testing.assert_array_equal(merged.cooccurrence, want.cooccurrence)
    assert merged.n_documents == want.n_documents == 6
    import polars as pl

    q = pl.read_parquet(out / "queries.parquet")
    assert q["query"].to_list()[1] == "the cat" and q["count"].to_list() == want.counts.tolist()
    assert pl.read_parquet(out / "pairs.parquet")["cooccurrence"].to_list() == want.cooccurrence.tolist()
    # a re-run skips every shard; a damaged partial is counted again
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0 and "3 already done, 0 to count" in r.output, r.output
    parts[0].write_bytes(b"garbage")
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0 and "2 already done, 1 to count" in r.output, r.output
    # other queries: new partials, never merged with the old ones
    (tmp_path / "q2.txt").write_text("cat\n")
    r = CliRunner().invoke(app, args[:4] + [str(tmp_path / "q2.txt")] + args[5:])
    assert r.exit_code == 0 and "3 to count" in r.output
    assert NgramStats.read_parquet(out / "merged.parquet").counts.tolist() == [want.counts[0]]


def test_count_reports_bad_shard(tmp_path):
    d = _corpus(tmp_path)
    (d / "s9.jsonl").write_text('{"body": "ok"}\n{"body": \n')
    r = CliRunner().invoke(
        app,
        [
            "count",
            "--corpus",
            str(d),
            "--queries",
            str(tmp_path / "q.txt"),
            "--out",
            str(tmp_path / "o"),
            "--text-field",
            "body",
            "--no-progress",
        ],
    )
    assert r.exit_code == 1
    assert "s9.jsonl, line 2" in r.output


def test_count_token_shards(tmp_path):
    d = tmp_path / "tok"
    d.mkdir()
    np.save(d / "a.npy", np.array([1, 2, 3, 1, 2], dtype=np.uint16))
    np.save(d / "a.offsets.npy", np.array([0, 3]))
    (tmp_path / "q.json").write_text("[[1, 2], [3]]")
    r = CliRunner().invoke(
        app,
        [
            "count",
            "--corpus",
            str(d),
            "--queries",
            str(tmp_path / "q.json"),
            "--out",
            str(tmp_path / "o"),
            "--no-progress",
        ],
    )
    assert r.exit_code == 0, r.output
    assert NgramStats.read_parquet(tmp_path / "o" / "merged.parquet").counts.tolist() == [2, 1]
