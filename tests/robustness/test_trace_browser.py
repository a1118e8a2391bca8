"""The trace page (``memscore lm trace``) in a real browser, as the report is checked:
headless Chromium over the DevTools protocol (:mod:`cdp_browser`) opens it; the console
and log have no error, the page runs only its own table script, every matched token is
highlighted with its span's count and documents on hover, the summary table sorts, and a
screenshot is saved. Skips when chromium is not installed."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from cdp_browser import Browser, chromium

pytestmark = pytest.mark.skipif(chromium() is None, reason="chromium is not installed (.ci/run installs it)")
typer_testing = pytest.importorskip("typer.testing")

from memscore.cli import app  # noqa: E402

PAGE_STATE = """JSON.stringify({
  scripts: document.scripts.length,
  generations: document.querySelectorAll("div.gen").length,
  highlighted: Array.from(document.querySelectorAll("div.gen")).map(g => g.querySelectorAll("span.span").length),
  tips: Array.from(document.querySelectorAll("span.span")).slice(0, 3).map(s => s.getAttribute("title")),
  colored: Array.from(document.querySelectorAll("span.span")).slice(0, 1).map(s => getComputedStyle(s).backgroundColor),
  plain: Array.from(document.querySelectorAll("span.tok:not(.span)")).slice(0, 1).map(s => getComputedStyle(s).backgroundColor),
})"""


def test_trace_page_in_chromium(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    plant = list(range(300, 340))
    docs = [rng.integers(0, 200, size=120).tolist() for _ in range(50)]
    docs[11] = docs[11][:30] + plant + docs[11][30:]
    np.save(tmp_path / "s.npy", np.array([t for d in docs for t in d], dtype=np.uint16))
    np.save(tmp_path / "s.offsets.npy", np.cumsum([0] + [len(d) for d in docs[:-1]]))
    gens = [
        {"id": "copies", "tokens": [7000, 7001] + plant[:25] + [7002] + plant[20:]},
        {"id": "novel", "tokens": list(range(5000, 5030))},
        {"id": "quote", "tokens": docs[3][10:60]},
    ]
    (tmp_path / "gens.jsonl").write_text("".join(json.dumps(g) + "\n" for g in gens))
    runner = typer_testing.CliRunner()
    r = runner.invoke(app, ["ngrams", "index", "--corpus", str(tmp_path / "s.npy"), "--out", str(tmp_path / "idx")])
    assert r.exit_code == 0, r.output
    out = tmp_path / "out"
    r = runner.invoke(
        app,
        ["lm", "trace", "--index", str(tmp_path / "idx"), "--generations", str(tmp_path / "gens.jsonl"),
         "--out", str(out), "--min-len", "8"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    with Browser(tmp_path / "profile") as browser:
        browser.open((out / "trace.html").as_uri())
        state = json.loads(browser.evaluate(PAGE_STATE))
        assert state["scripts"] == 1  # the package's table script, nothing else
        assert state["generations"] == 3
        assert state["highlighted"] == [25 + 20, 0, 50]
        assert "1 in the corpus; doc 11 @ 30" in state["tips"][0]
        assert state["colored"] != state["plain"]  # the highlight shows
        click = 'document.getElementById("summary").tHead.rows[0].cells[3].click()'
        browser.evaluate(click)
        order = browser.evaluate(
            'Array.from(document.getElementById("summary").tBodies[0].rows).map(r => r.cells[0].textContent)'
        )
        assert order == ["novel", "copies", "quote"]  # by coverage, ascending
        assert browser.errors() == []
        shot = browser.screenshot(tmp_path / "trace.png")
        assert shot.stat().st_size > 10_000
        keep = os.environ.get("MEMSCORE_SCREENSHOT_DIR")
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(shot, Path(keep) / shot.name)
        with capsys.disabled():
            print(f"\nscreenshot: {shot}")
