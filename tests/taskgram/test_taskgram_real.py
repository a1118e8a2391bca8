"""The task-gram study on a user's setup: a jsonl corpus, HuggingFace causal LMs saved with
save_pretrained (two sizes: the trend), tasks from a local Parquet table and a paper task's
local save_to_disk copy; through run_pipeline and ``memscore taskgram``. Nothing downloads."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
datasets = pytest.importorskip("datasets")
pytest.importorskip("scipy")
pytest.importorskip("matplotlib")

import polars as pl  # noqa: E402

from memscore.lm import ModelLoadError  # noqa: E402
from memscore.taskgram import PipelineConfig, load_task, run_pipeline  # noqa: E402

WORDS = "river stone bright silver mountain quiet forest golden ancient harbor".split()


def _docs(n=120):
    import random

    rng = random.Random(0)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))) for _ in range(n)]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from memscore.taskgram import train_tokenizer

    d = tmp_path_factory.mktemp("real")
    docs = _docs()
    (d / "corpus").mkdir()
    with open(d / "corpus" / "part0.jsonl", "w") as f:
        for t in docs[:60]:
            f.write(json.dumps({"body": t}) + "\n")
    with open(d / "corpus" / "part1.jsonl", "w") as f:
        for t in docs[60:]:
            f.write(json.dumps({"body": t}) + "\n")
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=train_tokenizer(docs + ["Question: Answer:"], vocab_size=80), unk_token="[UNK]"
    )
    models = []
    for name, width in (("small", 16), ("large", 48)):
        torch.manual_seed(0)
        cfg = transformers.GPTNeoXConfig(
            vocab_size=tok.vocab_size,
            hidden_size=width,
            num_hidden_layers=1,
            num_attention_heads=4,
            intermediate_size=2 * width,
            max_position_embeddings=64,
        )
        transformers.GPTNeoXForCausalLM(cfg).save_pretrained(d / name)
        tok.save_pretrained(d / name)
        models.append(str(d / name))
    # a local table of input/output pairs, and a paper task (GSM8K's columns) saved with save_to_disk
    rows = [(" ".join(t.split()[:4]), " ".join(t.split()[4:])) for t in docs[:40]]
    pl.DataFrame({"input": [r[0] for r in rows], "output": [r[1] for r in rows]}).write_parquet(d / "recall.parquet")
    datasets.DatasetDict(
        {"test": datasets.Dataset.from_dict({"question": [r[0] for r in rows], "answer": [r[1] for r in rows]})}
    ).save_to_disk(str(d / "gsm8k_local"))
    return d, models


def test_load_task_formats(setup, tmp_path):
    d, _ = setup
    t = load_task(d / "recall.parquet")
    assert t.name == "recall" and len(t.examples) == 40 and t.prompt == "{input}\n"
    g = load_task(f"gsm8k={d / 'gsm8k_local'}")
    assert g.name == "gsm8k" and g.examples == t.examples and g.prompt == "Question: {input}\nAnswer: "
    datasets.Dataset.from_dict(
        {"question": ["Which?"], "choices": [["red", "green", "blue", "grey"]], "answer": [2]}
    ).save_to_disk(str(tmp_path / "mmlu"))
    m = load_task(f"mmlu={tmp_path / 'mmlu'}")
    assert m.examples == [("Which?\nA. red\nB. green\nC. blue\nD. grey", "blue")]
    datasets.Dataset.from_dict({"translation": [{"de": "Hallo Welt", "en": "Hello world"}]}).save_to_disk(
        str(tmp_path / "wmt")
    )
    w = load_task(f"wmt:de-en={tmp_path / 'wmt'}")
    assert w.examples == [("Hallo Welt", "Hello world")] and w.prompt.startswith("Translate German to English:")
    pl.DataFrame({"question": ["q"], "output": ["o"]}).write_ndjson(tmp_path / "bad.jsonl")
    with pytest.raises(ValueError, match="expected columns 'input' and 'output', got \\['output', 'question'\\]"):
        load_task(tmp_path / "bad.jsonl")
    with pytest.raises(ValueError, match="lack the fields"):
        load_task(f"mmlu={d / 'gsm8k_local'}")
    with pytest.raises(FileNotFoundError):
        load_task(tmp_path / "missing.parquet")


def test_pipeline_on_user_setup(setup, tmp_path):
    d, models = setup
    cfg = PipelineConfig(
        corpus=str(d / "corpus"),
        text_field="body",
        models=tuple(models),
        task_specs=(str(d / "recall.parquet"), f"gsm8k={d / 'gsm8k_local'}"),
        n_examples=30,
        n=(1, 2),
        threads=1,
    )
    res = run_pipeline(tmp_path / "out", cfg)
    s = res.summary
    assert s.height == 4 and set(s["task"]) == {"recall", "gsm8k"} and set(s["model"]) == set(models)
    for c in ("memorization_rho", "memorization_p", "generalization_tau_dist", "generalization_p", "n_examples"):
        assert c in s.columns
    assert (s["n_examples"] > 5).all()
    trend = pl.read_csv(tmp_path / "out" / "trend.csv")
    for t in ("recall", "gsm8k"):
        sizes = trend.filter(pl.col("task") == t)["n_params"].to_list()
        assert sizes == sorted(sizes) and sizes[0] < sizes[1]
    for f in ("summary.csv", "pairs.parquet", "taskgram.png", "trend.png", "report.html"):
        assert (tmp_path / "out" / f).stat().st_size > 0
    assert "Trend across model sizes" in (tmp_path / "out" / "report.html").read_text()
    # the recall outputs co-occur with their inputs in the corpus documents: log p_TG is finite
    pairs = res.pairs.filter(pl.col("task") == "recall")
    assert pairs["logp_tg"].is_finite().all()


def test_user_setup_errors_before_running(setup, tmp_path):
    d, models = setup
    with pytest.raises(ValueError, match="needs task_specs"):
        PipelineConfig(corpus=str(d / "corpus"), models=tuple(models))
    with pytest.raises(ValueError, match="needs models"):
        PipelineConfig(corpus=str(d / "corpus"), task_specs=(str(d / "recall.parquet"),))
    t5 = tmp_path / "t5"
    transformers.T5Config(vocab_size=32, d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8).save_pretrained(t5)
    cfg = PipelineConfig(corpus=str(d / "corpus"), models=(str(t5),), task_specs=(str(d / "recall.parquet"),))
    with pytest.raises(ModelLoadError, match="not a causal language model"):
        run_pipeline(tmp_path / "out", cfg)
    assert not (tmp_path / "out").exists()


def test_cli_taskgram_user_setup(setup, tmp_path):
    from typer.testing import CliRunner

    from memscore.cli import app

    d, models = setup
    out = tmp_path / "cli"
    args = ["taskgram", "--out", str(out), "--corpus", str(d / "corpus"), "--text-field", "body"]
    args += ["--model", models[0], "--task", str(d / "recall.parquet"), "--n-examples", "20"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    s = pl.read_csv(out / "summary.csv")
    assert s["task"].to_list() == ["recall"] and s["model"].to_list() == [models[0]]
    assert (out / "report.html").exists() and not (out / "trend.png").exists()  # one model: no trend plot


def test_hub_task_without_network_says_pass_a_local_copy(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach the Hugging Face Hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(ValueError, match="cannot load openai/gsm8k .*Pass a local copy instead: gsm8k=PATH"):
        load_task("gsm8k")
    with pytest.raises(ValueError, match="expected NAME=PATH with NAME in"):
        load_task("squad=/tmp/x")


def test_token_corpus_is_refused_for_the_taskgram_study(setup, tmp_path):
    import numpy as np

    d, models = setup
    np.save(tmp_path / "t.npy", np.arange(10, dtype=np.uint16))
    np.save(tmp_path / "t.offsets.npy", np.array([0]))
    cfg = PipelineConfig(corpus=str(tmp_path / "t.npy"), models=(models[0],), task_specs=(str(d / "recall.parquet"),))
    with pytest.raises(ValueError, match="expected jsonl, text, Parquet or Arrow files, got tokens"):
        run_pipeline(None, cfg)
