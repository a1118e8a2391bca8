"""The command line never prints a traceback for a user error or an environment problem:
one line on stderr saying what went wrong and what to do, and a non-zero exit status.
Options are checked before anything is created or trained."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest

pytest.importorskip("typer")

from memscore.cli import main  # noqa: E402


@pytest.fixture
def run_main(capsys, monkeypatch):
    """``memscore ARGS...`` in this process: (exit status, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["memscore", *args])
        with pytest.raises(SystemExit) as info:
            main()
        out, err = capsys.readouterr()
        code = info.value.code
        return (0 if code is None else int(code)), out, err

    return run


def assert_one_line_error(err: str, *words: str) -> None:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("memscore: error: "), err
    for w in words:
        assert w in lines[0], (w, err)


# ----------------------------------------------------------------------------- options first


@pytest.mark.parametrize(
    "args, words",
    [
        (("--width", "0"), ("width", ">= 1", "got 0")),
        (("--runs", "1"), ("no in-runs",)),
        (("--keep", "1.5"), ("keep", "(0, 1)")),
        (("--epochs", "0"), ("epochs", ">= 1")),
        (("--batch-size", "0"), ("batch_size", ">= 1")),
        (("--lr", "-1"), ("lr",)),
        (("--optimizer", "lion"), ("optimizer", "lion")),
        (("--ensemble", "0"), ("ensemble", ">= 1")),
        (("--max-runs", "-1"), ("max_runs",)),
        (("--snapshot-epochs", "1,a"), ("snapshot_epochs",)),
        (("--snapshot-epochs", "5", "--epochs", "2"), ("snapshot_epochs",)),
        (("--dataset", "imagenet"), ("dataset", "imagenet")),
        (("--dataset", "cifar10"), ("root", "cifar10")),
        (("--schedule", "exp"), ("schedule", "exp")),
        (("--augment", "mixup"), ("augment", "mixup")),
        (("--precision", "int8"), ("precision", "int8")),
        (("--strategy", "grouped"), ("strategy", "grouped")),
        (("--memory", "lots"), ("memory", "lots")),
        (("--precision", "bf16", "--strategy", "vmap"), ("strategy", "autocast")),
        (("--recipe", "imagenet-vit"), ("recipe", "imagenet-vit")),
        (("--model", "resnet"), ("model", "images")),
        (("--model", "transformer"), ("model", "transformer")),
        (("--device", "tpu"), ("device", "tpu")),
    ],
)
def test_train_checks_every_option_before_creating_the_store(run_main, tmp_path, args, words):
    pytest.importorskip("torch")
    store = tmp_path / "store"
    code, _, err = run_main("train", str(store), *args)
    assert code == 1
    assert_one_line_error(err, *words, "memscore train --help")
    assert not store.exists()  # nothing was created


def test_corrected_train_command_works_after_a_bad_one(run_main, tmp_path):
    pytest.importorskip("torch")
    store = tmp_path / "store"
    tiny = ("--runs", "4", "--epochs", "1", "--ensemble", "2")
    code, _, err = run_main("train", str(store), "--width", "0", *tiny)
    assert code == 1 and not store.exists()
    code, out, err = run_main("train", str(store), "--width", "8", *tiny)
    assert code == 0, err
    assert "trained into" in out


def test_sweep_with_one_bad_width_creates_nothing(run_main, tmp_path):
    pytest.importorskip("torch")
    code, _, err = run_main("train", str(tmp_path / "sw"), "--width", "8", "--width", "0")
    assert code == 1 and not (tmp_path / "sw").exists()
    assert_one_line_error(err, "width")


def test_score_and_report_check_their_options(run_main, tmp_path):
    code, _, err = run_main("score", str(tmp_path / "missing"))
    assert code == 1
    assert_one_line_error(err, "missing", "no such store")
    code, _, err = run_main("score", str(tmp_path), "--top-k", "0")
    assert code == 1
    assert_one_line_error(err, "--top-k", ">= 1")
    code, _, err = run_main("score", str(tmp_path), "--executor", "cluster")
    assert code == 1
    assert_one_line_error(err, "executor", "threads:N")
    code, _, err = run_main("report", str(tmp_path / "missing"))
    assert code == 1
    assert_one_line_error(err, "no such store")


def test_demo_checks_its_options_before_training(run_main, tmp_path):
    out = tmp_path / "demo"
    for args, word in ((("--runs", "1"), "--runs"), (("--ensemble", "0"), "--ensemble")):
        code, _, err = run_main("demo", "--out", str(out), *args)
        assert code == 1
        assert_one_line_error(err, word)
    assert not out.exists()


def test_taskgram_checks_its_options_first(run_main, tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "tg"
    for args, word in (
        (("--threads", "0"), "threads"),
        (("--epochs", "-1"), "epochs"),
        (("--n-examples", "0"), "n_examples"),
        (("--threshold", "2"), "threshold"),
        (("--max-steps", "0"), "max_steps"),
    ):
        code, _, err = run_main("taskgram", "--out", str(out), *args)
        assert code == 1, args
        assert_one_line_error(err, word)
    assert not out.exists()


# ----------------------------------------------------------------------------- environment problems


def test_output_path_that_is_a_file(run_main, tmp_path):
    f = tmp_path / "a-file"
    f.write_text("x")
    code, _, err = run_main("train", str(f), "--runs", "4")
    assert code == 1
    assert_one_line_error(err, str(f), "not a file")
    code, _, err = run_main("train", str(f / "below"), "--runs", "4")
    assert code == 1
    assert_one_line_error(err, str(f), "not a file")
    code, _, err = run_main("demo", "--out", str(f))
    assert code == 1
    assert_one_line_error(err, str(f))
    code, _, err = run_main("taskgram", "--out", str(f))
    assert code == 1
    assert_one_line_error(err, str(f))
    code, _, err = run_main("score", str(f))
    assert code == 1
    assert_one_line_error(err, str(f))


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
def test_read_only_output_directory(run_main, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        code, _, err = run_main("train", str(ro / "store"), "--runs", "4")
        assert code == 1
        assert_one_line_error(err, str(ro), "writ")
    finally:
        ro.chmod(0o700)


@pytest.mark.parametrize(
    "exc, words",
    [
        (
            OSError(errno.ENOSPC, "No space left on device", "/data/s/scores.parquet"),
            ("/data/s/scores.parquet", "disk space"),
        ),
        (PermissionError(errno.EACCES, "Permission denied", "/data/s"), ("/data/s", "Permission denied", "write to")),
        (OSError(errno.EROFS, "Read-only file system", "/mnt/ro"), ("/mnt/ro", "read-only")),
    ],
)
def test_os_errors_while_working_are_one_line_with_the_path(run_main, monkeypatch, tmp_path, exc, words):
    from memscore.runs import report

    def boom(*a, **k):
        raise exc

    monkeypatch.setattr(report, "open_scored", boom)
    code, _, err = run_main("score", str(tmp_path))
    assert code == 1
    assert_one_line_error(err, *words)


def test_missing_extra_is_one_line_and_exit_2(run_main, monkeypatch, tmp_path):
    from memscore.runs import report

    def no_matplotlib():
        raise ImportError("memscore reports need matplotlib: pip install 'memscore[plot]'")

    monkeypatch.setattr(report, "_plt", no_matplotlib)
    code, _, err = run_main("report", str(tmp_path))
    assert code == 2
    assert_one_line_error(err, "pip install 'memscore[plot]'")


def test_unexpected_errors_are_one_line_unless_debugging(run_main, monkeypatch, tmp_path):
    from memscore.runs import report

    def boom(*a, **k):
        raise RuntimeError("CUDA error: device-side assert")

    monkeypatch.setattr(report, "open_scored", boom)
    code, _, err = run_main("score", str(tmp_path))
    assert code == 1
    assert_one_line_error(err, "RuntimeError", "CUDA error", "MEMSCORE_DEBUG=1")
    monkeypatch.setenv("MEMSCORE_DEBUG", "1")
    monkeypatch.setattr(sys, "argv", ["memscore", "score", str(tmp_path)])
    with pytest.raises(RuntimeError, match="CUDA"):
        main()


def test_ctrl_c_exits_130_without_traceback(run_main, monkeypatch, tmp_path):
    from memscore.runs import report

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "open_scored", interrupted)
    code, _, err = run_main("score", str(tmp_path))
    assert code == 130  # click / typer report the abort themselves
    assert "Traceback" not in err


def test_usage_errors_stay_click_usage_errors(run_main):
    code, _, err = run_main("train")  # missing STORE
    assert code == 2 and "Traceback" not in err


def test_a_real_process_prints_no_traceback(tmp_path):
    env = dict(os.environ)  # the memscore this test runs against (installed, or PYTHONPATH's)
    env.pop("MEMSCORE_DEBUG", None)
    store = tmp_path / "s"
    res = subprocess.run(
        [sys.executable, "-m", "memscore.cli", "train", str(store), "--width", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr and "width" in res.stderr
    assert not store.exists()


def test_lm_memorization_errors_are_one_line(run_main, tmp_path):
    pytest.importorskip("transformers")
    import numpy as np

    np.save(tmp_path / "t.npy", np.arange(100, dtype=np.uint16))
    np.save(tmp_path / "t.offsets.npy", np.array([0, 50]))
    base = ("lm", "memorization", "--corpus", str(tmp_path / "t.npy"), "--out", str(tmp_path / "out"))
    code, _, err = run_main(*base, "--model", str(tmp_path / "missing-model"))
    assert code == 1
    assert_one_line_error(err, "missing-model", "no such file or folder", "memscore lm memorization --help")
    assert not (tmp_path / "out").exists()
    for opt, value in (("--k", "0"), ("--m", "-1"), ("--samples", "0"), ("--batch-size", "0"), ("--pool", "0")):
        code, _, err = run_main(*base, "--model", str(tmp_path / "missing-model"), opt, value)
        assert code == 1 and opt in err, (opt, err)
        assert not (tmp_path / "out").exists()


def test_lm_hub_name_without_network_says_pass_a_local_path(tmp_path):
    pytest.importorskip("transformers")
    import numpy as np

    np.save(tmp_path / "t.npy", np.arange(100, dtype=np.uint16))
    np.save(tmp_path / "t.offsets.npy", np.array([0, 50]))
    env = dict(os.environ)
    env.pop("MEMSCORE_DEBUG", None)
    env["HF_HUB_OFFLINE"] = "1"  # what a machine without a network gets, without waiting for timeouts
    res = subprocess.run(
        [sys.executable, "-m", "memscore.cli", "lm", "memorization", "--corpus", str(tmp_path / "t.npy")]
        + ["--model", "EleutherAI/pythia-70m-does-not-exist", "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert res.returncode == 1, res.stderr
    assert_one_line_error(res.stderr, "EleutherAI/pythia-70m-does-not-exist", "Pass a local path")
