"""Task-gram inputs a new user gets wrong (issue 33, item 5): task files with null, missing or
non-string values, unreadable task files, tasks that give no n-gram pair, corpora that match
nothing, truncated model weights. Each gives a named error (the file and the line) or a warning
that says why; no NaN row comes back in silence. Tiny models and files are built here, offline."""

from __future__ import annotations

import json
import random
import shutil
import warnings

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("scipy")
pytest.importorskip("matplotlib")

import polars as pl  # noqa: E402

from memscore.errors import MemscoreError  # noqa: E402
from memscore.lm import ModelLoadError, load_causal_lm  # noqa: E402
from memscore.taskgram import (  # noqa: E402
    NoPairsWarning,
    PipelineConfig,
    TaskFileError,
    UndefinedCorrelationWarning,
    default_normalizer,
    distributional_memorization,
    distributional_table,
    extract_pairs,
    lm_logprobs,
    load_task,
    run_pipeline,
    taskgram_scores,
)

WORDS = "river stone bright silver mountain quiet forest golden ancient harbor".split()


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A jsonl corpus, a GPT-NeoX of width 16 saved with save_pretrained, a good task file."""
    from memscore.taskgram import train_tokenizer

    d = tmp_path_factory.mktemp("tg_inputs")
    rng = random.Random(0)
    docs = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))) for _ in range(60)]
    _write_jsonl(d / "corpus.jsonl", [{"text": t} for t in docs])
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=train_tokenizer(docs + ["zebra quokka lemur yak"], vocab_size=80), unk_token="[UNK]"
    )
    torch.manual_seed(0)
    cfg = transformers.GPTNeoXConfig(
        vocab_size=tok.vocab_size,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    transformers.GPTNeoXForCausalLM(cfg).save_pretrained(d / "model")
    tok.save_pretrained(d / "model")
    # inputs of one half of the words, outputs of the other: no shared n-gram, so every example is kept
    good = [
        {"input": " ".join(WORDS[i % 5 : i % 5 + 2]), "output": " ".join(WORDS[5 + i % 5 :][:2])} for i in range(12)
    ]
    _write_jsonl(d / "good.jsonl", good)
    return d


def _config(d, task, **kw):
    base = dict(
        corpus=str(d / "corpus.jsonl"), models=(str(d / "model"),), task_specs=(str(task),), n=(1, 2), threads=1
    )
    base.update(kw)
    return PipelineConfig(**base)


# --- task files: values -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "field", "what"),
    [
        ({"input": "a b", "output": None}, "output", "null or missing"),
        ({"input": "a b"}, "output", "null or missing"),
        ({"input": None, "output": "c d"}, "input", "null or missing"),
        ({"input": "a b", "output": ["c"]}, "output", "expected a string, got list"),
        ({"input": "a b", "output": {"t": "c"}}, "output", "expected a string, got dict"),
        ({"input": 7, "output": "c d"}, "input", "expected a string, got int"),
    ],
)
def test_non_string_value_names_file_and_line(tmp_path, row, field, what):
    path = _write_jsonl(tmp_path / "t.jsonl", [{"input": "x y", "output": "z w"}, row])
    with pytest.raises(TaskFileError, match=f"{tmp_path / 't.jsonl'}: line 2: '{field}'.*{what}") as info:
        load_task(path)
    assert isinstance(info.value, MemscoreError) and isinstance(info.value, ValueError)


def test_line_numbers_count_blank_lines(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"input": "a", "output": "b"}\n\n{"input": "a", "output": null}\n')
    with pytest.raises(TaskFileError, match="line 3: 'output' is null"):
        load_task(path)


def test_null_in_parquet_names_the_row(tmp_path):
    pl.DataFrame({"input": ["a", "b", "c"], "output": ["x", None, "z"]}).write_parquet(tmp_path / "t.parquet")
    with pytest.raises(TaskFileError, match=r"t\.parquet: row 1 \(from 0\): 'output' is null"):
        load_task(tmp_path / "t.parquet")


def test_null_in_paper_task_copy_names_the_line(tmp_path):
    path = _write_jsonl(tmp_path / "g.jsonl", [{"question": "q", "answer": "a"}, {"question": "q", "answer": None}])
    with pytest.raises(TaskFileError, match="line 2: 'answer' is null or missing"):
        load_task(f"gsm8k={path}")


# --- task files: unreadable -------------------------------------------------------------------


def test_unreadable_task_files_name_the_file(tmp_path, setup):
    good = (setup / "good.jsonl").read_text()
    cases = {
        "empty.jsonl": ("", "no examples"),
        "blank.jsonl": ("\n\n", "no examples"),
        "malformed.jsonl": ('{"input": "a", "output": "b"}\nnot json\n', "line 2 is not valid JSON"),
        "truncated.jsonl": (good[: len(good) // 2], "is not valid JSON"),
        "array.jsonl": ("[1, 2]\n", "line 1: expected a JSON object"),
        "truncated.json": ('[{"input": "a"', "cannot read the file"),
        "empty.json": ("", "cannot read the file"),
    }
    for name, (text, msg) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(TaskFileError, match=msg) as info:
            load_task(tmp_path / name)
        assert name in str(info.value)
    pl.DataFrame({"input": ["a"] * 50, "output": ["b"] * 50}).write_parquet(tmp_path / "full.parquet")
    data = (tmp_path / "full.parquet").read_bytes()
    for name, raw in {"truncated.parquet": data[: len(data) // 2], "empty.parquet": b""}.items():
        (tmp_path / name).write_bytes(raw)
        with pytest.raises(TaskFileError, match=f"{name}: cannot read the file"):
            load_task(tmp_path / name)
    (tmp_path / "nonutf8.jsonl").write_bytes(b'{"input": "\xff", "output": "b"}\n')
    with pytest.raises(TaskFileError, match="not UTF-8"):
        load_task(tmp_path / "nonutf8.jsonl")


# --- tasks that give no n-gram pair -------------------------------------------------------------


@pytest.mark.parametrize(
    ("examples", "n", "counted"),
    [
        ([("the of and", "is a the")] * 3, (1, 2), "3 have no n-gram"),
        ([("", "")] * 3, (1,), "3 have no n-gram of n = 1"),
        ([("red fox", "blue sky")] * 3, (5,), "3 have no n-gram of n = 5"),
        ([("red fox", "red sky")] * 3, (1,), "3 share an n-gram"),
    ],
)
def test_extract_pairs_says_why_nothing_came(examples, n, counted):
    with pytest.warns(NoPairsWarning, match=counted):
        pairs = extract_pairs(examples, n=n)
    assert pairs.height == 0


@pytest.mark.parametrize(
    ("rows", "n"),
    [
        ([{"input": "the of and", "output": "is a the"}] * 5, (1, 2)),  # stopwords only
        ([{"input": "", "output": ""}] * 5, (1, 2)),  # empty strings
        (None, (30,)),  # n longer than every text
    ],
)
def test_pipeline_task_without_pairs_is_an_error(setup, tmp_path, rows, n):
    task = setup / "good.jsonl" if rows is None else _write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(ValueError, match=f"task '{task.name.split('.')[0]}': no \\(input, output\\) n-gram pair"):
        run_pipeline(None, _config(setup, task, n=n))


def test_pipeline_order_without_pairs_warns(setup):
    with pytest.warns(UserWarning, match=r"task 'good': no pair of n = \[30\]"):
        res = run_pipeline(None, _config(setup, setup / "good.jsonl", n=(1, 30)))
    assert res.summary_by_n["n"].unique().to_list() == [1]


def test_lm_logprobs_without_pairs_is_empty(setup):
    loaded = load_causal_lm(str(setup / "model"))
    with pytest.warns(NoPairsWarning):
        pairs = extract_pairs([("the of", "a the")], n=1)
    out = lm_logprobs(loaded.model, loaded.tokenizer, [("the of", "a the")], pairs)
    assert out.height == 0 and out.columns == ["example", "y", "n_tokens", "logp_lm"]


# --- corpora that match nothing; NaN never in silence --------------------------------------------


def test_taskgram_scores_warns_on_empty_or_unmatched_corpus():
    from memscore.ngrams import Corpus

    norm = default_normalizer()
    pairs = extract_pairs([("red fox", "blue sky")], n=1, normalizer=norm)
    with pytest.warns(UserWarning, match="the corpus has no document"):
        taskgram_scores(pairs, Corpus.from_texts([], normalizer=norm))
    with pytest.warns(UserWarning, match="none of the 2 input n-grams occurs in the corpus's 1 documents"):
        taskgram_scores(pairs, Corpus.from_texts(["green grass"], normalizer=norm))


def test_metrics_warn_when_nan():
    with pytest.warns(UndefinedCorrelationWarning, match="only 2 of 2 examples"):
        assert distributional_memorization([1.0, 2.0], [1.0, 2.0]).statistic != 0.5  # NaN
    scores = pl.DataFrame(
        {"task": ["t"] * 4, "model": ["m"] * 4, "logp_tg": [-0.7] * 4, "logp_lm": [-1.0, -2.0, -3.0, -4.0]}
    )
    with pytest.warns(UndefinedCorrelationWarning, match="task='t', model='m'.*log p_TG is the same"):
        table = distributional_table(scores)
    assert table["memorization_rho"].is_nan().all()


def test_pipeline_empty_corpus_file_is_an_error(setup, tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ValueError, match="corpus: .*empty.jsonl' is empty"):
        run_pipeline(None, _config(setup, setup / "good.jsonl", corpus=str(tmp_path / "empty.jsonl")))


@pytest.mark.parametrize("corpus_rows", [[{"text": ""}] * 3, [{"text": "zebra quokka"}] * 3])
def test_pipeline_nan_rows_come_with_warnings(setup, tmp_path, corpus_rows):
    corpus = _write_jsonl(tmp_path / "c.jsonl", corpus_rows)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = run_pipeline(None, _config(setup, setup / "good.jsonl", corpus=str(corpus)))
    messages = [str(w.message) for w in caught]
    assert any("every C(x) is 0" in m for m in messages)
    for table, keys in ((res.summary, ("task", "model")), (res.summary_by_n, ("task", "model", "n"))):
        nan_rows = table.filter(pl.col("memorization_rho").is_nan())
        assert nan_rows.height > 0
        for r in nan_rows.iter_rows(named=True):
            group = ", ".join(f"{k}={r[k]!r}" for k in keys)
            assert any(m.startswith(f"{group}: memorization and generalization: NaN because") for m in messages), group


# --- truncated model weights --------------------------------------------------------------------


def test_truncated_weights_name_the_file(setup, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(setup / "model", model)
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(ModelLoadError, match="truncated or damaged"):
        load_causal_lm(str(model))
    # the pipeline checks the weights before the corpus is read: a missing corpus is not reached
    cfg = _config(setup, setup / "good.jsonl", models=(str(model),), corpus=str(tmp_path / "no-corpus.jsonl"))
    with pytest.raises(ModelLoadError, match=f"{weights}.*truncated or damaged"):
        run_pipeline(None, cfg)


# --- the command line -------------------------------------------------------------------------


def test_cli_names_file_and_line(setup, tmp_path, capsys):
    from memscore.cli import main

    task = _write_jsonl(tmp_path / "t.jsonl", [{"input": "a b", "output": "c d"}, {"input": "x"}])
    args = ["taskgram", "--out", str(tmp_path / "out"), "--corpus", str(setup / "corpus.jsonl")]
    args += ["--model", str(setup / "model"), "--task", str(task)]
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 1
    assert f"{task}: line 2: 'output' is null or missing" in capsys.readouterr().err
