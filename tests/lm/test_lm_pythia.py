"""The Pythia memorization protocol on a tiny GPT-NeoX trained here in stages: rows of a
Megatron dataset (written here, its .bin in parts) in training order, sequences planted
many times in the first stage only (A) or the second only (B), among rows seen once. The
checkpoint saved after each stage (a revision folder ``stepN``) must memorize A from the
first checkpoint on and B only at the second, as the protocol reports through the API and
through ``memscore lm memorization --rows``."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("matplotlib")

import polars as pl  # noqa: E402
from lm_tiny import save_with_tokenizer  # noqa: E402

import memscore.lm as lm  # noqa: E402
from memscore.lm.planted import staged_rows, tiny_gpt_neox, train_in_stages  # noqa: E402
from memscore.ngrams import Corpus  # noqa: E402
from memscore.ngrams.megatron import write_megatron  # noqa: E402

VOCAB, LENGTH, K, M = 64, 12, 6, 6
COPIES, STAGE = 60, 440  # 200 random rows + 4 sequences x 60 copies per stage
PER_STEP = 40  # rows per training step: stage 1 ends at step 11, stage 2 at step 22
STEPS = (0, STAGE // PER_STEP, 2 * STAGE // PER_STEP)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """A tiny model on a shared machine: one torch thread is ~30x faster than two spinning."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    d = tmp_path_factory.mktemp("pythia")
    st = staged_rows(vocab_size=VOCAB, length=LENGTH, background=200, per_stage=4, copies=COPIES, seed=0)
    assert st.stage_rows == STAGE
    prefix = write_megatron(d / "data" / "document", list(st.rows), "uint16", parts=3)
    model = tiny_gpt_neox(VOCAB, LENGTH, seed=0)
    train_in_stages(model, st, lambda mdl, s: save_with_tokenizer(mdl, d / "model" / f"step{STEPS[s]}"))
    return d, prefix, st.rows, st.planted[0], st.planted[1]


def _which(rows, planted):
    return np.flatnonzero((rows[:, None, :] == planted[None]).all(-1).any(-1))


def test_training_sequences_reads_rows_in_order(staged):
    _, prefix, rows, _, _ = staged
    corpus = Corpus.from_megatron(prefix)
    got = lm.training_sequences(corpus, "0:880")
    assert (got == rows).all()
    assert (lm.training_sequences(corpus, [879, 3, 3], length=5) == rows[[879, 3, 3], :5]).all()
    with pytest.raises(IndexError, match="past the 880 rows"):
        lm.training_sequences(corpus, "870:881")
    with pytest.raises(ValueError, match="expected at least 13"):
        lm.training_sequences(corpus, "0:2", length=13)


def test_protocol_finds_planted_rows_at_their_steps(staged):
    d, prefix, rows, a, b = staged
    corpus = Corpus.from_megatron(prefix)
    revisions = [f"step{s}" for s in STEPS]
    models = [lm.revision_model(d / "model", r) for r in revisions]
    table = lm.memorization_over_checkpoints(
        models, lm.training_sequences(corpus, "0:880"), K, M, revisions=revisions, corpus=corpus, rows_per_step=PER_STEP
    )
    assert table.height == 3 * len(rows)
    ia, ib = _which(rows, a), _which(rows, b)
    assert len(ia) == len(ib) == 4 * COPIES
    dup = table.filter(pl.col("step") == STEPS[0])["duplicates"].to_numpy()
    assert (dup[ia] == COPIES).all() and (dup[ib] == COPIES).all()

    def mem(step, idx):
        t = table.filter(pl.col("step") == step)
        return t["memorized"].to_numpy()[idx]

    assert not mem(STEPS[0], ia).any() and not mem(STEPS[0], ib).any()
    assert mem(STEPS[1], ia).all()  # A memorized once its stage is trained
    assert not mem(STEPS[1], ib).any()  # B not yet seen
    assert mem(STEPS[2], ib).all()  # B memorized after the second stage
    background = np.setdiff1d(np.arange(len(rows)), np.concatenate([ia, ib]))
    assert mem(STEPS[2], background).mean() < 0.1
    seen = table.filter(pl.col("step") == STEPS[1])["seen"].to_numpy()
    assert seen[:STAGE].all() and not seen[STAGE:].any()
    # the score is the fraction of the m tokens reproduced; 1 exactly when memorized
    t = table.filter(pl.col("step") == STEPS[2])
    assert ((t["score"] == 1.0) == t["memorized"]).all()

    summary = lm.checkpoint_summary(table)
    assert summary["step"].to_list() == list(STEPS)
    assert summary["n"].to_list() == [0, STAGE, 2 * STAGE]
    last = summary.row(2, named=True)
    assert last["precision"] == last["recall"] == 1.0
    # the one-model function gives the same columns for one checkpoint
    one = lm.memorization_scores(models[2], lm.training_sequences(corpus, "0:880"), K, M, corpus=corpus)
    assert one["memorized"].to_list() == t["memorized"].to_list()
    assert one["duplicates"].to_list() == t["duplicates"].to_list()


def test_cli_memorization_rows(staged, tmp_path):
    from typer.testing import CliRunner

    from memscore.cli import app

    d, prefix, rows, a, b = staged
    out = tmp_path / "out"
    args = ["lm", "memorization", "--corpus", str(prefix), "--model", str(d / "model"), "--rows", "0:880"]
    args += ["--k", str(K), "--m", str(M), "--rows-per-step", str(PER_STEP), "--out", str(out)]
    for s in STEPS:
        args += ["--revision", f"step{s}"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    for f in ("memorization.parquet", "checkpoints.csv", "score_vs_step.png", "score_vs_duplicates.png"):
        assert (out / f).stat().st_size > 0
    assert (out / "precision_recall.png").stat().st_size > 0
    table = pl.read_parquet(out / "memorization.parquet")
    ib = _which(rows, b)
    t = table.filter(pl.col("revision") == f"step{STEPS[2]}")
    assert t["memorized"].to_numpy()[ib].all()
    steps = pl.read_csv(out / "checkpoints.csv")
    assert steps["step"].to_list() == list(STEPS)
    # several revisions need --rows; the random-window mode takes one
    r = CliRunner().invoke(
        app, [*args[:6], "--revision", "step0", "--revision", "step11", "--out", str(tmp_path / "o2")]
    )
    assert r.exit_code != 0 and "--rows" in r.output
