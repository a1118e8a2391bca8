"""The report in a real browser (issue 23, item 2): headless Chromium, driven over the
DevTools protocol (:mod:`cdp_browser`), opens the report of a small digits store and of the
demo's quick mode. Every image loads, the console and the log have no error (a failed load,
a script the page's policy refuses, an exception), the gallery shows the rows it should,
the tables sort and filter, and a screenshot of each page is saved (its path printed; also
copied into ``$MEMSCORE_SCREENSHOT_DIR`` when set). Skips when chromium is not installed.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from cdp_browser import Browser, chromium

pytestmark = pytest.mark.skipif(chromium() is None, reason="chromium is not installed (.ci/run installs it)")
pytest.importorskip("torch")
pytest.importorskip("matplotlib")
typer_testing = pytest.importorskip("typer.testing")

from memscore.cli import app  # noqa: E402

runner = typer_testing.CliRunner()

#: What the page reports about itself, as JSON.
PAGE_STATE = """JSON.stringify({
  images: Array.from(document.images).map(i => [i.getAttribute("src"), i.complete, i.naturalWidth]),
  tables: Object.fromEntries(Array.from(document.querySelectorAll("table.gallery")).map(
    t => [t.id, t.tBodies[0].rows.length])),
  examples: Array.from(document.querySelectorAll("span.example")).map(s => s.textContent),
  scripts: document.scripts.length,
})"""


def invoke(*args: str) -> str:
    res = runner.invoke(app, list(args), catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


def _screenshot(browser: Browser, path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    browser.screenshot(path)
    assert path.stat().st_size > 10_000
    keep = os.environ.get("MEMSCORE_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)
    with capsys.disabled():
        print(f"\nscreenshot: {path}" + (f" (copied to {keep})" if keep else ""))


def _check_page(browser: Browser, page: Path) -> dict[str, Any]:
    browser.open(page.as_uri())
    state: dict[str, Any] = json.loads(browser.evaluate(PAGE_STATE))
    assert state["images"], "no image on the page"
    broken = [src for src, complete, width in state["images"] if not complete or width <= 0]
    assert not broken, f"images that did not load: {broken}"
    srcs = {src for src, _, _ in state["images"]}
    assert srcs <= {p.name for p in page.parent.glob("*.png")}  # only the report's own files
    assert state["scripts"] == 1  # the package's table script, nothing else
    return state


def _check_sorting_and_filter(browser: Browser, table_id: str, column: int) -> None:
    """Click a numeric column twice (ascending, then descending) and type into the filter."""
    read = f"""Array.from(document.getElementById("{table_id}").tBodies[0].rows)
        .filter(r => !r.hidden).map(r => parseFloat(r.cells[{column}].getAttribute("data-v")))"""
    click = f'document.getElementById("{table_id}").tHead.rows[0].cells[{column}].click()'
    browser.evaluate(click)
    up = browser.evaluate(read)
    assert up == sorted(up) and len(up) > 1
    browser.evaluate(click)
    down = browser.evaluate(read)
    assert down == sorted(down, reverse=True)
    first = browser.evaluate(f'document.getElementById("{table_id}").tBodies[0].rows[0].cells[1].textContent')
    browser.evaluate(
        f"""(() => {{ const box = document.getElementById("{table_id}").previousElementSibling;
        box.value = {first!r}; box.dispatchEvent(new Event("input")); }})()"""
    )
    rows = browser.evaluate(
        f"""Array.from(document.getElementById("{table_id}").tBodies[0].rows).map(r => [r.hidden, r.textContent])"""
    )
    assert any(not hidden for hidden, _ in rows)
    assert all((first in text) != hidden for hidden, text in rows)  # shown exactly when it holds the text


def test_digits_report_in_chromium(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from memscore.cli.runs import run_training

    store = tmp_path / "digits"
    run_training(
        store, dataset="digits", runs=8, epochs=3, ensemble=8, width=32, snapshot_epochs=[1, 3], progress=False
    )
    invoke("datamodels", str(store), "--n-lambdas", "5", "--max-iter", "50")
    invoke("report", str(store))
    page = store / "report" / "index.html"
    thumbs = {p.name for p in page.parent.glob("ex-*.png")}
    with Browser(tmp_path / "profile") as browser:
        state = _check_page(browser, page)
        # every thumbnail written is shown, and all of them loaded
        assert {src for src, _, _ in state["images"] if src.startswith("ex-")} == thumbs and len(thumbs) > 50
        tables = state["tables"]
        assert tables["most-memorized"] == tables["least-memorized"] == 16
        assert tables["influence-pairs"] == 20 and 1 <= tables["label-issues"] <= 16
        assert tables["membership-exposed"] == 16
        assert len([t for t in tables if t.startswith("datamodel-")]) == 3
        _check_sorting_and_filter(browser, "most-memorized", 4)  # memorization
        assert browser.errors() == []
        _screenshot(browser, tmp_path / "report-digits.png", capsys)


def test_demo_quick_report_in_chromium(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    invoke("demo", "--quick", "--runs", "8", "--out", str(out))
    page = out / "report" / "index.html"
    with Browser(tmp_path / "profile") as browser:
        state = _check_page(browser, page)
        assert "membership_roc.png" in {src for src, _, _ in state["images"]}
        tables = state["tables"]
        assert tables["most-memorized"] == tables["least-memorized"] == 16 and tables["influence-pairs"] == 20
        # modular arithmetic shows as equations, "a + b = c (mod 97)", not as images
        examples = state["examples"]
        assert len(examples) >= 16 + 16 + 2 * 20
        assert all(" + " in e and e.endswith("(mod 97)") for e in examples), examples[:5]
        _check_sorting_and_filter(browser, "influence-pairs", 8)  # influence
        assert browser.errors() == []
        _screenshot(browser, tmp_path / "report-demo-quick.png", capsys)
