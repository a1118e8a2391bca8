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


def _count_args(d, tmp_path, out, *extra):
    return [
        "count",
        "--corpus",
        str(d),
        "--queries",
        str(tmp_path / "q.txt"),
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]


def _fresh(corpus):
    return ngram_stats(corpus, ["cat", "the cat", "dog", "missing word"]).counts.tolist()


def test_resume_recounts_when_text_field_split_or_on_error_change(tmp_path):
    d = _corpus(tmp_path)
    for k in range(3):  # a second field with other text in every line
        p = d / f"s{k}.jsonl"
        rows = [json.loads(x) for x in p.read_text().splitlines()]
        p.write_text("".join(json.dumps({**r, "title": "dog dog cat"}) + "\n" for r in rows))
    out = tmp_path / "out"
    r = CliRunner().invoke(app, _count_args(d, tmp_path, out, "--text-field", "body"))
    assert r.exit_code == 0 and "3 to count" in r.output, r.output
    r = CliRunner().invoke(app, _count_args(d, tmp_path, out, "--text-field", "title"))
    assert r.exit_code == 0 and "0 already done, 3 to count" in r.output, r.output
    got = NgramStats.read_parquet(out / "merged.parquet")
    assert got.counts.tolist() == _fresh(Corpus.from_jsonl(d, text_field="title")) == [6, 0, 12, 0]
    assert all(s["text_field"] == "title" for s in got.sources)
    # the error policy is part of it too: a partial counted skipping bad lines is not
    # reused when bad lines must raise
    (d / "s1.jsonl").write_text((d / "s1.jsonl").read_text() + "{broken\n")
    r = CliRunner().invoke(app, _count_args(d, tmp_path, out, "--text-field", "title", "--on-error", "skip"))
    assert r.exit_code == 0 and "0 already done, 3 to count" in r.output, r.output
    assert NgramStats.read_parquet(out / "merged.parquet").n_skipped == 1
    r = CliRunner().invoke(app, _count_args(d, tmp_path, out, "--text-field", "title"))
    assert r.exit_code == 1 and "s1.jsonl, line 3" in r.output, r.output
    # text files: the split mode
    t = tmp_path / "txt"
    t.mkdir()
    (t / "a.txt").write_text("the cat\ncat dog\n\nthe cat sat\n")
    out2 = tmp_path / "out2"
    for split, docs in [("paragraph", 2), ("line", 3)]:
        r = CliRunner().invoke(app, _count_args(t, tmp_path, out2, "--split", split))
        assert r.exit_code == 0 and "0 already done, 1 to count" in r.output, r.output
        assert NgramStats.read_parquet(out2 / "merged.parquet").n_documents == docs


def test_resume_recounts_a_shard_that_changed(tmp_path):
    d = _corpus(tmp_path)
    out = tmp_path / "out"
    args = _count_args(d, tmp_path, out, "--text-field", "body")
    assert CliRunner().invoke(app, args).exit_code == 0
    import os

    p = d / "s2.jsonl"
    st = p.stat()
    p.write_text(p.read_text() + json.dumps({"body": "cat cat"}) + "\n")
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime: the size still tells
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0 and "2 already done, 1 to count" in r.output, r.output
    want = _fresh(Corpus.from_jsonl(d, text_field="body"))
    assert NgramStats.read_parquet(out / "merged.parquet").counts.tolist() == want
    p.write_text(p.read_text().replace("cat cat", "dog dog"))  # same size, new mtime
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0 and "2 already done, 1 to count" in r.output, r.output
    assert NgramStats.read_parquet(out / "merged.parquet").counts.tolist() == _fresh(
        Corpus.from_jsonl(d, text_field="body")
    )


def test_temporary_files_are_unique_and_clean_removes_leftovers(tmp_path):
    import os
    import time

    d = _corpus(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    # another run's temporary output under the old fixed names must not be touched
    (out / ".queries.parquet.tmp").mkdir()
    (out / ".pairs.parquet.tmp").mkdir()
    r = CliRunner().invoke(
        app, _count_args(d, tmp_path, out, "--text-field", "body", "--pairs", str(tmp_path / "p.tsv"))
    )
    assert r.exit_code == 0, r.output
    assert not list(out.glob(".tmp-*")) and not list((out / "partials").glob(".tmp-*"))
    old, young = out / ".tmp-0123abcd.parquet", out / "partials" / ".tmp-4567ef.parquet"
    older = out / "partials" / ".tmp-89ab.parquet"
    for p in (old, young, older):
        p.write_bytes(b"partial write")
    past = time.time() - 2 * 3600
    os.utime(old, (past, past))
    os.utime(older, (past, past))
    r = CliRunner().invoke(app, ["clean", str(out)])
    assert r.exit_code == 0 and "2 temporary files removed" in r.output, r.output
    assert not old.exists() and not older.exists() and young.exists()
    assert (out / "merged.parquet").exists() and len(list((out / "partials").glob("[!.]*.parquet"))) == 3
    r = CliRunner().invoke(app, ["clean", str(out), "--all"])
    assert r.exit_code == 0 and not young.exists()
    assert CliRunner().invoke(app, ["clean", str(tmp_path / "nope")]).exit_code == 2


def test_cli_uses_only_public_ngrams_api():
    import ast
    import inspect

    import memscore.cli.ngrams as mod

    tree = ast.parse(inspect.getsource(mod))
    private = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            private += [f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
            if node.module and any(
                part.startswith("_") and part not in ("_io", "_executor", "_checks", "_tokens", "__future__")
                for part in node.module.split(".")
            ):
                private.append(node.module)
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            private.append(node.attr)
    assert private == [], private
