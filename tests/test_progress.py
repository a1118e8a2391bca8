"""The one progress display (memscore._progress): a bar on a terminal, plain lines in a log,
never carriage returns in a file (issue 23, item 5)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from memscore import _progress
from memscore._progress import LINE_SECONDS, ProgressBar


class _Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    c = _Clock()
    monkeypatch.setattr(_progress, "_now", c)
    return c


def test_a_log_gets_a_line_every_tenth(clock: _Clock) -> None:
    log = io.StringIO()
    bar = ProgressBar(1000, "runs", "training runs", True, stream=log)
    for _ in range(1000):  # 1000 updates, 10 ms apart: ten lines (every 10%), not a thousand
        clock.t += 0.01
        bar.update(1)
    bar.close()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert len(lines) == 10, lines
    assert lines[0] == "training runs: 100/1000 runs (10%), 6000.0 runs/min, elapsed 1s, ETA 9s"
    assert lines[-1].startswith("training runs: 1000/1000 runs (100%)")


def test_a_log_gets_a_line_every_30_seconds_when_progress_is_slow(clock: _Clock) -> None:
    log = io.StringIO()
    bar = ProgressBar(10_000, "B", "ngrams", True, stream=log, unit_scale=True)
    for k in range(1, 11):  # 10 s apart, 0.1% each: a line every 30 s
        clock.t += 10
        bar.set(10 * k)
    bar.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 3 + 1, lines  # at 30, 60, 90 s, and the last one
    assert lines[0].startswith("ngrams: 30/10k B (0%)") and "ETA" in lines[0]
    assert "ETA" not in lines[-1] and lines[-1].startswith("ngrams: 100/10k B")


def test_failed_and_retried_tasks_are_shown(clock: _Clock) -> None:
    log = io.StringIO()
    bar = ProgressBar(4, "tasks", "scan", True, stream=log)
    clock.t += LINE_SECONDS
    bar.update(0, failed=1, retried=1)
    bar.update(4, failed=1, retried=1)
    bar.close()
    assert "failed 1, retried 1" in log.getvalue()


def test_disabled_or_empty_shows_nothing(clock: _Clock) -> None:
    for total, enabled in ((10, False), (0, True)):
        log = io.StringIO()
        bar = ProgressBar(total, "runs", "x", enabled, stream=log)
        bar.update(5)
        bar.close()
        bar.close()
        assert log.getvalue() == "" and not bar.active


def test_a_terminal_gets_a_bar(clock: _Clock) -> None:
    pytest.importorskip("tqdm")

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    bar = ProgressBar(8, "runs", "training runs", True, stream=tty)
    bar.update(3.5)
    bar.update(4.5)
    bar.close()
    assert "\r" in tty.getvalue() and "100%" in tty.getvalue() and "runs/min" in tty.getvalue()


def test_training_writes_lines_not_carriage_returns_to_a_log(tmp_path: Path) -> None:
    """``memscore train`` with stderr redirected to a file: a few lines, no '\\r'."""
    pytest.importorskip("torch")
    pytest.importorskip("typer")
    log = tmp_path / "train.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(_progress.__file__).parents[1]), *sys.path])}
    args = ["train", str(tmp_path / "s"), "--runs", "6", "--epochs", "2", "--ensemble", "2", "--width", "8"]
    with open(log, "w") as err:
        res = subprocess.run(
            [sys.executable, "-m", "memscore.cli", *args, "--snapshot-epochs", "2"],
            stderr=err, stdout=subprocess.PIPE, text=True, env=env, timeout=600,
        )  # fmt: skip
    text: Any = log.read_text()
    assert res.returncode == 0, text
    assert text.count("\r") == 0, repr(text[:500])
    lines = [ln for ln in text.splitlines() if ln.startswith("training runs:")]
    # one line per 10% at most (every epoch of every ensemble advances it) plus the last
    assert 1 <= len(lines) <= 11, lines
    assert lines[-1].startswith("training runs: 6/6 runs (100%)") and "runs/min" in lines[-1]
