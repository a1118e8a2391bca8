"""Corpus counting on Ray equals the single-process count exactly, with shards grouped,
partials written by the workers, a worker killed mid-task, and a resumed CLI count."""

import numpy as np
import pytest

pytest.importorskip("ray")

import ray_faults  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from memscore.cli.ngrams import app  # noqa: E402
from memscore.cluster import RayExecutor  # noqa: E402
from memscore.ngrams import Corpus, NgramStats, QuerySet, ngram_stats  # noqa: E402
from memscore.ngrams.ray_count import count_shards  # noqa: E402

QUERIES = [[1, 2], [3], [4, 5, 6], [7, 7]]
PAIRS = [([1], [2]), ([3, 4], [5]), ([9], [1, 2])]


def _token_shards(d, n_shards=5, seed=0):
    rng = np.random.default_rng(seed)
    d.mkdir()
    for k in range(n_shards):
        lens = rng.integers(1, 40, size=30)
        np.save(d / f"s{k}.npy", rng.integers(0, 12, size=int(lens.sum())).astype(np.uint16))
        np.save(d / f"s{k}.offsets.npy", np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64))
    return Corpus.from_token_files(d)


def _same(a: NgramStats, b: NgramStats) -> None:
    assert np.array_equal(a.counts, b.counts)
    assert np.array_equal(a.doc_freq, b.doc_freq)
    assert np.array_equal(a.cooccurrence, b.cooccurrence)
    assert (a.n_documents, a.n_tokens, a.n_skipped, a.key) == (b.n_documents, b.n_tokens, b.n_skipped, b.key)
    assert a.shards == b.shards and a.sources == b.sources


@pytest.mark.parametrize("per_task", [1, 2])
def test_counts_equal_single_process(ray_cluster, tmp_path, per_task):
    corpus = _token_shards(tmp_path / "c")
    local = ngram_stats(corpus, QUERIES, PAIRS)
    _same(ngram_stats(corpus, QUERIES, PAIRS, executor=RayExecutor(shards_per_task=per_task)), local)


def test_text_corpus_equal(ray_cluster):
    texts = ["the cat sat on the mat", "a dog and a cat", "the mat", "dog dog cat"]
    corpus = Corpus.from_texts(texts[:2]) + Corpus.from_texts(texts[2:])
    q, p = ["cat", "the mat", "dog"], [("cat", "dog"), ("the", "mat")]
    _same(ngram_stats(corpus, q, p, executor=RayExecutor()), ngram_stats(corpus, q, p))


def test_killed_worker_recounted_once(ray_cluster, tmp_path, capsys):
    corpus = _token_shards(tmp_path / "c")
    qs = QuerySet(corpus, QUERIES, PAIRS)
    local = qs.count(corpus)
    stall = tmp_path / "stall"
    stall.mkdir()
    slow = ray_faults.stalling(QuerySet(corpus, QUERIES, PAIRS), stall)
    parts_dir = tmp_path / "parts"
    parts_dir.mkdir()
    dests = [parts_dir / f"{k}.parquet" for k in range(corpus.n_shards)]
    parts = ray_faults.run_killing_stalled(
        lambda: count_shards(slow, corpus.shards(), RayExecutor(), dests=dests, progress=True), stall
    )
    assert "failed 1, retried 1" in capsys.readouterr().err  # the cluster-wide progress bar
    _same(NgramStats.merge(parts), local)
    # every partial written once, whole, equal to the shard's own count
    for shard, dest, part in zip(corpus.shards(), dests, parts, strict=True):
        _same(NgramStats.read_parquet(dest), qs.count(shard))
        _same(part, qs.count(shard))
    assert not list(parts_dir.glob(".tmp-*"))


def test_cli_ray_count_resumes(ray_cluster, tmp_path):
    corpus = _token_shards(tmp_path / "c")
    (tmp_path / "q.json").write_text("[[1, 2], [3], [4, 5, 6]]")
    args = ["count", "--corpus", str(tmp_path / "c"), "--queries", str(tmp_path / "q.json")]
    args += ["--out", str(tmp_path / "o"), "--no-progress", "--ray", "auto", "--shards-per-task", "2"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "5 to count" in r.output
    local = ngram_stats(corpus, [[1, 2], [3], [4, 5, 6]])
    merged = NgramStats.read_parquet(tmp_path / "o" / "merged.parquet")
    assert np.array_equal(merged.counts, local.counts) and merged.n_documents == local.n_documents
    # a crash that lost two partials: the rerun counts only those
    for p in sorted((tmp_path / "o" / "partials").glob("s[13].*.parquet")):
        p.unlink()
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "3 already done, 2 to count" in r.output
    merged = NgramStats.read_parquet(tmp_path / "o" / "merged.parquet")
    assert np.array_equal(merged.counts, local.counts) and np.array_equal(merged.doc_freq, local.doc_freq)


def test_taskgram_counting_on_ray(ray_cluster, tmp_path):
    import polars as pl

    from memscore.cli.taskgram import app as taskgram_app
    from memscore.taskgram.pipeline import PipelineConfig, run_pipeline

    out = tmp_path / "o"
    args = ["--quick", "--out", str(out), "--n-examples", "10", "--seed", "1", "--ray", "auto"]
    res = CliRunner().invoke(taskgram_app, args)
    assert res.exit_code == 0, res.output
    local = run_pipeline(None, PipelineConfig.quick(n_examples=10, seed=1)).pairs
    assert pl.read_parquet(out / "pairs.parquet").select("c_x", "c_xy").equals(local.select("c_x", "c_xy"))


def test_relative_shard_paths_refused(ray_cluster, tmp_path, monkeypatch):
    _token_shards(tmp_path / "c")
    monkeypatch.chdir(tmp_path)
    corpus = Corpus.from_token_files("c")  # workers run in other directories
    with pytest.raises(ValueError, match="absolute path"):
        ngram_stats(corpus, QUERIES, executor=RayExecutor())
    # the CLI makes them absolute
    (tmp_path / "q.json").write_text("[[1, 2]]")
    args = ["count", "--corpus", "c", "--queries", "q.json", "--out", "o", "--no-progress", "--ray", "auto"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert NgramStats.read_parquet(tmp_path / "o" / "merged.parquet").counts.tolist() == [
        int(ngram_stats(corpus, [[1, 2]]).counts[0])
    ]
