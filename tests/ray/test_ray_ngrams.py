"""N-gram counting on every executor (:func:`ngram_stats`, :func:`count_shards`, the CLI,
task-gram scoring) equals the single-process pass exactly: local, threads and a local Ray
cluster, with shards grouped, partials written by the tasks, a Ray worker killed
mid-task, and a resumed CLI count."""

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from memscore.cli.ngrams import app
from memscore.executors import LocalExecutor, RayExecutor, ThreadExecutor
from memscore.ngrams import Corpus, NgramStats, QuerySet, ngram_stats
from memscore.ngrams.counting import count_shards

QUERIES = [[1, 2], [3], [4, 5, 6], [7, 7]]
PAIRS = [([1], [2]), ([3, 4], [5]), ([9], [1, 2])]
EXECUTORS = ["local", "threads", "ray"]


def _executor(request, kind: str, **settings):
    """The executor ``kind`` names; the Ray one runs on the session's local cluster."""
    if kind == "ray":
        request.getfixturevalue("ray_cluster")
        return RayExecutor(**settings)
    return ThreadExecutor(2, **settings) if kind == "threads" else LocalExecutor(**settings)


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


@pytest.mark.parametrize("kind", EXECUTORS)
@pytest.mark.parametrize("per_task", [1, 2])
def test_token_counts_identical(request, tmp_path, kind, per_task):
    corpus = _token_shards(tmp_path / "c")
    one_pass = QuerySet(corpus, QUERIES, PAIRS).count(corpus)
    ex = _executor(request, kind, shards_per_task=per_task)
    _same(ngram_stats(corpus, QUERIES, PAIRS, executor=ex), one_pass)
    # the names as_executor resolves work too (for Ray: this process's session)
    _same(ngram_stats(corpus, QUERIES, PAIRS, executor="threads:2" if kind == "threads" else kind), one_pass)


@pytest.mark.parametrize("kind", EXECUTORS)
def test_text_counts_identical(request, kind):
    texts = ["the cat sat on the mat", "a dog and a cat", "the mat", "dog dog cat"]
    corpus = Corpus.from_texts(texts[:2]) + Corpus.from_texts(texts[2:3]) + Corpus.from_texts(texts[3:])
    q, p = ["cat", "the mat", "dog"], [("cat", "dog"), ("the", "mat")]
    _same(ngram_stats(corpus, q, p, executor=_executor(request, kind)), QuerySet(corpus, q, p).count(corpus))


@pytest.mark.parametrize("kind", EXECUTORS)
def test_count_shards_writes_partials(request, tmp_path, kind):
    corpus = _token_shards(tmp_path / "c")
    qs = QuerySet(corpus, QUERIES, PAIRS)
    parts_dir = tmp_path / "parts"
    parts_dir.mkdir()
    dests = [parts_dir / f"{k}.parquet" for k in range(corpus.n_shards)]
    parts = count_shards(qs, corpus.shards(), _executor(request, kind, shards_per_task=2), dests=dests)
    _same(NgramStats.merge(parts), qs.count(corpus))
    for shard, dest, part in zip(corpus.shards(), dests, parts, strict=True):
        _same(part, qs.count(shard))
        _same(NgramStats.read_parquet(dest), part)
    assert not list(parts_dir.glob(".tmp-*"))


def test_object_storage_partials_written_by_the_driver(ray_cluster, tmp_path):
    corpus = _token_shards(tmp_path / "c", n_shards=3)
    qs = QuerySet(corpus, QUERIES, PAIRS)
    dests = [tmp_path / f"{k}.parquet" for k in range(3)]
    parts = count_shards(qs, corpus.shards(), RayExecutor(storage="object"), dests=dests)
    for dest, part in zip(dests, parts, strict=True):
        _same(NgramStats.read_parquet(dest), part)


def test_killed_worker_recounted_once(ray_cluster, tmp_path, capsys):
    import ray_faults

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
    assert "failed 1, retried 1" in capsys.readouterr().err  # the executor's progress bar
    _same(NgramStats.merge(parts), local)
    # every partial written once, whole, equal to the shard's own count
    for shard, dest, part in zip(corpus.shards(), dests, parts, strict=True):
        _same(NgramStats.read_parquet(dest), qs.count(shard))
        _same(part, qs.count(shard))
    assert not list(parts_dir.glob(".tmp-*"))


@pytest.mark.parametrize("spec", ["local", "threads:2", "ray:auto"])
def test_cli_count_resumes(request, tmp_path, spec):
    if spec.startswith("ray"):
        request.getfixturevalue("ray_cluster")
    corpus = _token_shards(tmp_path / "c")
    (tmp_path / "q.json").write_text("[[1, 2], [3], [4, 5, 6]]")
    args = ["count", "--corpus", str(tmp_path / "c"), "--queries", str(tmp_path / "q.json")]
    args += ["--out", str(tmp_path / "o"), "--no-progress", "--executor", spec, "--shards-per-task", "2"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "5 to count" in r.output
    local = ngram_stats(corpus, [[1, 2], [3], [4, 5, 6]])
    merged = NgramStats.read_parquet(tmp_path / "o" / "merged.parquet")
    _same(merged, local)
    # a crash that lost two partials: the rerun counts only those
    for p in sorted((tmp_path / "o" / "partials").glob("s[13].*.parquet")):
        p.unlink()
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "3 already done, 2 to count" in r.output
    _same(NgramStats.read_parquet(tmp_path / "o" / "merged.parquet"), local)


def test_cli_bad_executor(tmp_path):
    _token_shards(tmp_path / "c")
    (tmp_path / "q.json").write_text("[[1, 2]]")
    args = ["count", "--corpus", str(tmp_path / "c"), "--queries", str(tmp_path / "q.json")]
    r = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "o"), "--executor", "spark"])
    assert r.exit_code == 2 and "threads:N" in r.output, r.output
    r = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "o"), "--ray", "auto"])
    assert r.exit_code == 2, r.output  # --ray is gone: --executor ray:ADDRESS


def test_bad_executor_named():
    corpus = Corpus.from_texts(["a cat"])
    with pytest.raises(TypeError, match="'threads:N'"):
        ngram_stats(corpus, ["cat"], executor="spark")


@pytest.mark.parametrize("kind", EXECUTORS)
def test_taskgram_scores_identical(request, kind):
    from memscore.taskgram import default_normalizer, extract_pairs, taskgram_scores

    norm = default_normalizer()
    docs = ["the cat sat on the mat", "a dog chased the cat", "dogs bark at cats", "the mat is red"] * 3
    corpus = Corpus.from_texts(docs[:5], normalizer=norm) + Corpus.from_texts(docs[5:], normalizer=norm)
    pairs = extract_pairs([("the cat sat", "a red mat"), ("dogs bark", "cat chased")], n=(1, 2), normalizer=norm)
    want = taskgram_scores(pairs, corpus, alpha=0.5)
    got = taskgram_scores(pairs, corpus, alpha=0.5, executor=_executor(request, kind))
    assert got.equals(want) and (want["c_x"] > 0).any()


def test_taskgram_counting_on_ray(ray_cluster, tmp_path):
    pytest.importorskip("torch")
    from memscore.cli.taskgram import app as taskgram_app
    from memscore.taskgram.pipeline import PipelineConfig, run_pipeline

    out = tmp_path / "o"
    args = ["--quick", "--out", str(out), "--n-examples", "10", "--seed", "1", "--executor", "ray:auto"]
    res = CliRunner().invoke(taskgram_app, args)
    assert res.exit_code == 0, res.output
    local = run_pipeline(None, PipelineConfig.quick(n_examples=10, seed=1)).pairs
    assert pl.read_parquet(out / "pairs.parquet").select("c_x", "c_xy").equals(local.select("c_x", "c_xy"))


@pytest.mark.parametrize("kind", EXECUTORS)
def test_relative_shard_paths(request, tmp_path, monkeypatch, kind):
    _token_shards(tmp_path / "c")
    monkeypatch.chdir(tmp_path)
    corpus = Corpus.from_token_files("c")
    want = QuerySet(corpus, QUERIES).count(corpus)
    ex = _executor(request, kind)
    if kind != "ray":  # tasks in this process see its working directory
        _same(ngram_stats(corpus, QUERIES, executor=ex), want)
        return
    with pytest.raises(ValueError, match="absolute path"):  # workers run in other directories
        ngram_stats(corpus, QUERIES, executor=ex)
    # the CLI makes them absolute
    (tmp_path / "q.json").write_text("[[1, 2]]")
    args = ["count", "--corpus", "c", "--queries", "q.json", "--out", "o", "--no-progress", "--executor", "ray:auto"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert NgramStats.read_parquet(tmp_path / "o" / "merged.parquet").counts.tolist() == [int(want.counts[0])]


@pytest.mark.parametrize("kind", EXECUTORS)
def test_index_built_on_any_executor_is_the_same(request, tmp_path, kind):
    """A corpus index built part by part on any executor (Ray workers writing the parts)
    has the files of a local build, byte for byte."""
    from memscore.ngrams import CorpusIndex

    corpus = _token_shards(tmp_path / "c")
    local = CorpusIndex.build(corpus, tmp_path / "local")
    idx = CorpusIndex.build(corpus, tmp_path / kind, executor=_executor(request, kind), memory=6 * (1 << 20))
    assert idx.count(QUERIES).tolist() == local.count(QUERIES).tolist()
    for p in local.manifest["parts"]:
        for ext in (".tokens", ".sa", ".docs"):
            name = p["file"] + ext
            assert (tmp_path / kind / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
