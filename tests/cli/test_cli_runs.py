"""The memscore command line, end to end at tiny settings."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

pytest.importorskip("torch")
pytest.importorskip("matplotlib")
typer_testing = pytest.importorskip("typer.testing")

import memscore  # noqa: E402
from memscore.cli import app  # noqa: E402

runner = typer_testing.CliRunner()


def invoke(*args: str):
    res = runner.invoke(app, list(args), catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


def test_help_everywhere():
    assert "train" in invoke("--help") and "demo" in invoke("--help")
    for cmd in ("train", "score", "report", "datamodels", "demo", "ngrams", "taskgram"):
        assert "--help" in invoke(cmd, "--help")


def test_every_long_command_has_the_one_executor_option():
    from memscore.cli._executor import EXECUTOR_HELP

    for cmd in (["train"], ["score"], ["datamodels"], ["ngrams", "count"], ["taskgram"], ["lm", "memorization"]):
        res = runner.invoke(app, [*cmd, "--help"], catch_exceptions=False, terminal_width=400)
        assert res.exit_code == 0 and "--executor" in res.output, cmd
        words = " ".join(res.output.split())
        assert "threads:N" in words and "ray://HOST:PORT" in words, (cmd, EXECUTOR_HELP)


def test_train_score_report_and_resume(tmp_path):
    store = tmp_path / "s"
    args = (
        "train",
        str(store),
        "--runs",
        "4",
        "--epochs",
        "2",
        "--width",
        "16",
        "--snapshot-epochs",
        "1,2",
        "--ensemble",
        "2",
    )
    invoke(*args, "--max-runs", "2")
    assert len(memscore.RunStore.open(store)) == 2
    invoke(*args)  # resumes: trains the other two
    s = memscore.RunStore.open(store)
    assert s.run_ids() == [f"run-{r:06d}" for r in range(4)] and s.verify() == []
    out = invoke("score", str(store), "--top-k", "3")
    assert "corrupted labels with AUROC" in out
    scores = pl.read_parquet(store / "scores.parquet")
    assert {"memorization", "el2n", "forgetting_events", "corrupted"} <= set(scores.columns)
    np.testing.assert_allclose(scores["memorization"].to_numpy(), s.memorization(), equal_nan=True)
    pairs = pl.read_parquet(store / "influence_pairs.parquet")
    invoke(
        "score", str(store), "--top-k", "3", "--executor", "threads:2", "--runs-per-task", "2"
    )  # the same tables, bit for bit
    assert pl.read_parquet(store / "scores.parquet").equals(scores)
    assert pl.read_parquet(store / "influence_pairs.parquet").equals(pairs)
    assert pairs["rank"].max() == 2
    summary = json.loads((store / "summary.json").read_text())
    assert summary["runs"] == 4 and 0 <= summary["corrupted_auroc"] <= 1
    page = tmp_path / "rep"
    assert "index.html" in invoke("report", str(store), "--out", str(page))
    html = (page / "index.html").read_text()
    for png in ("memorization_hist.png", "corrupted_roc.png", "memorization_vs_holdout.png", "proxies.png"):
        assert (page / png).stat().st_size > 1000 and png in html
    assert "Highest-influence" in html


def test_size_sweep_reports_trajectories(tmp_path):
    sweep = tmp_path / "sweep"
    invoke(
        "train", str(sweep), "--runs", "4", "--epochs", "1", "--width", "8", "--width", "16", "--snapshot-epochs", "1"
    )
    assert json.loads((sweep / "sweep.json").read_text())["sizes"] == [8, 16]
    invoke("report", str(sweep))
    assert (sweep / "report" / "trajectories.png").is_file()
    traj = pl.read_parquet(sweep / "trajectories.parquet")
    assert (
        traj.columns[:2] == ["index", "trajectory"] and traj.height == memscore.RunStore.open(sweep / "width-8").n_train
    )


def test_demo_quick_runs_end_to_end(tmp_path):
    out = invoke("demo", "--quick", "--runs", "4", "--out", str(tmp_path / "demo"))
    assert "report:" in out and "AUROC" in out and "disagreement" in out
    summary = json.loads((tmp_path / "demo" / "demo_summary.json").read_text())
    assert summary["runs"] == 4 and summary["wall_time_s"] > 0


def test_train_refuses_a_store_of_another_model(tmp_path):
    store = tmp_path / "s"
    invoke("train", str(store), "--runs", "2", "--epochs", "1", "--width", "8", "--snapshot-epochs", "1")
    res = runner.invoke(
        app, ["train", str(store), "--runs", "2", "--epochs", "1", "--width", "16", "--snapshot-epochs", "1"]
    )
    assert res.exit_code != 0 and "another dataset or model" in str(res.exception)


def test_train_mnist1d_resnet_with_augmentation_and_schedule(tmp_path):
    pytest.importorskip("mnist1d")
    store = tmp_path / "m"
    invoke("train", str(store), "--dataset", "mnist1d", "--runs", "2", "--epochs", "1", "--width", "2",
           "--schedule", "onecycle", "--augment", "shift", "--ensemble", "2", "--snapshot-epochs", "1")  # fmt: skip
    s = memscore.RunStore.open(store)
    assert len(s) == 2 and s.metadata["model"]["kind"] == "resnet1d"


def test_train_cifar_from_torchvision_files_with_a_recipe(tmp_path):
    import pickle

    pytest.importorskip("torchvision")
    rng = np.random.default_rng(0)
    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for f in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / f, "wb") as fh:
            pickle.dump({b"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8), b"labels": [0, 1]}, fh)
    store = tmp_path / "c"
    out = invoke("train", "--help")
    assert "Carlini et al. 2022" in out and "lira-wrn16-4" in out
    invoke("train", str(store), "--recipe", "lira-wrn16-4", "--root", str(tmp_path / "data"), "--runs", "2",
           "--epochs", "1", "--width", "1", "--depth", "10", "--batch-size", "4", "--ensemble", "2")  # fmt: skip
    s = memscore.RunStore.open(store)
    assert len(s) == 2 and s.metadata["model"]["kind"] == "wrn" and s.n_train == 10
    # the report's gallery reads the images back from the torchvision files `--root` recorded
    pytest.importorskip("matplotlib")
    from memscore.runs.report import write_report

    page = write_report(store, membership=False)
    thumbs = sorted(page.parent.glob("ex-train-*.png"))
    assert thumbs and all(f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in thumbs)
    assert 'class="thumb"' in page.read_text()
