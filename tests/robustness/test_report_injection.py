"""A store or sweep received from someone else cannot put a live tag into the report its
user opens, nor make memscore write outside the folder it was given; the JSON memscore
writes is strict (issue 33, item 1).

Every field a report shows gets a script and an ``onerror`` attribute: the values in
``summary.json``, the sizes and store names in ``sweep.json``, the manifest's metadata
(a title, or a non-dict metadata with the store's directory name shown instead), the
report's own folder name, and the column names and values of the tables. The page is
parsed: no ``<script>``, no ``on*`` attribute, no image but the generated PNG names; and,
where chromium is installed, loaded in a real headless browser and its DOM checked the same way.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

import memscore
from memscore._html import TABLE_SCRIPT, el, img, text
from memscore._io import dump_json, resolve_inside
from memscore.errors import StoreError

pytest.importorskip("matplotlib")

from memscore.runs.report import Sweep, score_store, write_report  # noqa: E402

SCRIPT = "<script>alert(1)</script>"
ONERROR = '"><img src=x onerror=alert(1)>'
PAYLOAD = SCRIPT + ONERROR
#: A directory name can hold no '/', so only the onerror half.
DIR_PAYLOAD = "x'" + ONERROR


class _Tags(HTMLParser):
    """Every start tag with its attributes, the page's text, and the text of its scripts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.scripts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        if self.tags and self.tags[-1][0] == "script" and self.lasttag == "script":
            self.scripts.append(data)
        else:
            self.text.append(data)


def assert_no_live_tag(page: str, images: set[str]) -> str:
    """No script but the package's own constant (one, with no attributes), no on*
    attribute, no img but ``images``; returns the page's text."""
    p = _Tags()
    p.feed(page)
    p.close()
    assert p.tags, "not an HTML page"
    scripts = [attrs for tag, attrs in p.tags if tag == "script"]
    assert scripts in ([], [{}]) and p.scripts in ([], [TABLE_SCRIPT]), (scripts, p.scripts)
    for tag, attrs in p.tags:
        assert not [a for a in attrs if a.lower().startswith("on")], (tag, attrs)
        if tag == "img":
            assert attrs.get("src") in images, attrs
    return "".join(p.text)


def _store(path: Path, metadata: Any = None, seed: int = 0) -> memscore.RunStore:
    rng = np.random.default_rng(seed)
    n, t = 10, 3
    s = memscore.RunStore.create(path, n_train=n, n_test=t, metadata=metadata)
    for _ in range(8):
        mask = rng.random(n) < 0.5
        s.add_run(
            mask,
            train_correct=rng.random(n) < 0.7,
            test_correct=rng.random(t) < 0.7,
            test_phi=rng.normal(size=t),
        )
    return s


def _poison_tables(store: memscore.RunStore) -> None:
    """Script and onerror into summary.json values and the tables' column names and values."""
    summary = json.loads((store.path / "summary.json").read_text())
    for k in ("runs", "test_accuracy", "disagreement", "test_error", "gap", "cace", "corrupted_auroc"):
        summary[k] = PAYLOAD
    (store.path / "summary.json").write_text(json.dumps(summary))
    proxies = pl.read_parquet(store.path / "proxies.parquet")
    proxies = proxies.with_columns(pl.lit(PAYLOAD).alias(PAYLOAD))
    proxies.write_parquet(store.path / "proxies.parquet")
    pairs = pl.read_parquet(store.path / "influence_pairs.parquet")
    pairs.with_columns(pl.lit(PAYLOAD).alias(PAYLOAD)).write_parquet(store.path / "influence_pairs.parquet")


def _poisoned_sweep(tmp_path: Path) -> tuple[Path, Path]:
    """A sweep in a folder named with a payload: one store titled with a payload, one
    whose metadata is not a dict (its directory name, a payload, is shown); poisoned tables."""
    root = tmp_path / DIR_PAYLOAD
    a = _store(root / "a", metadata={"title": PAYLOAD}, seed=1)
    b = _store(root / DIR_PAYLOAD, seed=2)
    manifest = json.loads((b.path / "manifest.json").read_text())
    manifest["metadata"] = PAYLOAD  # not a dict: the report shows the directory name
    (b.path / "manifest.json").write_text(json.dumps(manifest))
    Sweep.create(root, [8, 16], ["a", DIR_PAYLOAD])
    for s in Sweep.open(root).stores:
        score_store(s)
        _poison_tables(s)
    assert a.path.is_dir()
    return root, tmp_path / "report"


def test_report_escapes_every_field(tmp_path: Path) -> None:
    root, out = _poisoned_sweep(tmp_path)
    page = write_report(root, out)
    images = {p.name for p in out.glob("*.png")}
    assert "size-8-memorization_hist.png" in images and "trajectories.png" in images
    html = page.read_text(encoding="utf-8")
    shown = assert_no_live_tag(html, images)
    # each field is shown, as text
    assert shown.count(PAYLOAD) >= 2 * 7 + 2 * 2 + 1  # summary values, table columns, the title
    assert DIR_PAYLOAD in shown  # the folder and the non-dict store's name
    assert html.count("<script") == 1 and "<img src=x" not in html  # the one script: TABLE_SCRIPT


def test_report_refuses_a_size_that_is_not_a_plain_name(tmp_path: Path) -> None:
    root = tmp_path / "sweep"
    _store(root / "a")
    for size in (SCRIPT, ONERROR, "a/../../../X", float("nan"), True, None, [8]):
        (root / "sweep.json").write_text(json.dumps({"format": "memscore-sweep", "sizes": [size], "stores": ["a"]}))
        with pytest.raises(StoreError, match=r"sweep\.json: sizes\[0\]"):
            write_report(root, tmp_path / "rep")
    with pytest.raises(StoreError, match="sizes"):
        Sweep.create(tmp_path / "other", ["a/../x"], ["a"])
    with pytest.raises(StoreError, match="all numbers or all names"):
        Sweep.create(tmp_path / "other", [8, "16"], ["a", "b"])
    assert not (tmp_path / "other").exists()


def test_report_writes_nothing_outside_its_folder(tmp_path: Path) -> None:
    root = tmp_path / "d1" / "d2" / "sweep"
    _store(root / "a")
    _store(root / "b", seed=3)
    out = root / "rep"
    (out / "size-a").mkdir(parents=True)  # the traversal below would go through it
    (root / "sweep.json").write_text(
        json.dumps({"format": "memscore-sweep", "sizes": ["a/../../../X", 16], "stores": ["a", "b"]})
    )
    with pytest.raises(StoreError, match=r"a/\.\./\.\./\.\./X"):
        write_report(root, out)
    assert not [p for p in tmp_path.rglob("*.png")]


def test_score_writes_no_store_outside_the_sweep(tmp_path: Path, run_cli: Any) -> None:
    victim = _store(tmp_path / "victim")
    root = tmp_path / "sweep"
    _store(root / "a")
    for name in ("../victim", str(victim.path), "a/../../victim", ".", ""):
        (root / "sweep.json").write_text(
            json.dumps({"format": "memscore-sweep", "sizes": [8, 16], "stores": ["a", name]})
        )
        code, _, err = run_cli(["score", str(root)])
        assert code != 0 and "stores[1]" in err and repr(name) in err, err
        assert not (victim.path / "scores.parquet").exists() and not (victim.path / "summary.json").exists()
    # a link out of the sweep is refused as well
    (root / "link").symlink_to(victim.path)
    (root / "sweep.json").write_text(
        json.dumps({"format": "memscore-sweep", "sizes": [8, 16], "stores": ["a", "link"]})
    )
    with pytest.raises(StoreError, match="'link' is not a name inside"):
        Sweep.open(root)
    assert not (victim.path / "scores.parquet").exists()


def test_summary_json_is_strict(tmp_path: Path) -> None:
    store = memscore.RunStore.create(tmp_path / "s", n_train=3)
    for _ in range(3):  # every run trains on every example: memorization is undefined (NaN)
        store.add_run(np.ones(3, bool), train_correct=np.array([True, False, True]))
    summary = score_store(store)
    assert np.isnan(summary["mean_memorization"])

    def refuse(c: str) -> None:
        raise AssertionError(f"non-strict JSON constant {c}")

    on_disk = json.loads((store.path / "summary.json").read_text(), parse_constant=refuse)
    assert on_disk["mean_memorization"] is None and on_disk["runs"] == 3
    page = write_report(store.path, tmp_path / "rep")  # null shows as a dash
    assert_no_live_tag(page.read_text(), {p.name for p in (tmp_path / "rep").glob("*.png")})


def test_dump_json_writes_non_finite_floats_as_null() -> None:
    obj = {"a": float("inf"), "b": np.float32("nan"), "c": (np.int64(2), -np.inf), "d": np.array([1.5, np.nan])}
    out = json.loads(dump_json(obj), parse_constant=lambda c: pytest.fail(c))
    assert out == {"a": None, "b": None, "c": [2, None], "d": [1.5, None]}
    assert json.loads(dump_json({"p": Path("x")}, default=str)) == {"p": "x"}
    with pytest.raises(TypeError, match="Path"):
        dump_json({"p": Path("x")})


def test_the_html_builder_escapes_and_refuses() -> None:
    assert text(PAYLOAD) == "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"
    assert el("td", PAYLOAD) == f"<td>{text(PAYLOAD)}</td>"
    assert el("img", src=ONERROR, alt="'") == f'<img src="{text(ONERROR)}" alt="&#x27;">'
    for bad in ("../x.png", "x.png' onerror='alert(1)", "javascript:alert(1)", "/etc/x.png", ".x.png"):
        with pytest.raises(ValueError, match="img"):
            img(bad, "alt")
    with pytest.raises(ValueError, match="tag"):
        el("script", "alert(1)")
    with pytest.raises(ValueError, match="attribute"):
        el("p", "x", onclick="alert(1)")


def test_resolve_inside(tmp_path: Path) -> None:
    assert resolve_inside(tmp_path, "a/b", "f.json: x") == (tmp_path / "a" / "b").resolve()
    for bad in ("../x", "a/../../x", "/etc", "", ".", "a\x00b", 3, None):
        with pytest.raises(ValueError, match=r"f\.json: x"):
            resolve_inside(tmp_path, bad, "f.json: x")


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_report_in_a_real_browser(tmp_path: Path) -> None:
    root, out = _poisoned_sweep(tmp_path)
    page = write_report(root, out)
    res = subprocess.run(
        [
            shutil.which("chromium") or "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=2000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    dom = res.stdout
    assert "memscore report" in dom
    # the browser's DOM after loading: no element the payloads would have made
    shown = assert_no_live_tag(dom, {p.name for p in out.glob("*.png")})
    assert PAYLOAD in shown and DIR_PAYLOAD in shown


def test_taskgram_page_escapes_tasks_models_and_settings(tmp_path: Path) -> None:
    from memscore.taskgram.plot import write_taskgram_html

    summary = pl.DataFrame({"task": [PAYLOAD], "model": [ONERROR], "rho": [float("nan")]})
    trend = pl.DataFrame({PAYLOAD: [1.0]})
    (tmp_path / "taskgram.png").write_bytes(b"")
    out = write_taskgram_html(
        tmp_path / "report.html", summary, trend, str(tmp_path / "taskgram.png"), None, {"corpus": PAYLOAD}
    )
    page = Path(out).read_text(encoding="utf-8")
    shown = assert_no_live_tag(page, {"taskgram.png"})
    assert shown.count(PAYLOAD) == 2 and json.dumps(PAYLOAD) in shown and ONERROR in shown.replace(PAYLOAD, "")
    with pytest.raises(ValueError, match="img"):
        write_taskgram_html(tmp_path / "r2.html", summary, trend, "x.png' onerror='alert(1).png", None, {})


def test_run_ids_stay_inside_the_store(tmp_path: Path) -> None:
    """Run ids become ``runs/<id>.npz``: one plain name (``[A-Za-z0-9][A-Za-z0-9_.-]*``), so
    none reaches outside ``runs/``, whether given to add_run or found in the folder."""
    store = memscore.RunStore.create(tmp_path / "s", n_train=3)
    for bad in ("../x", "..", "/tmp/x", "a/b", ".hidden"):
        with pytest.raises(ValueError, match="run_id"):
            store.add_run(np.ones(3, bool), train_correct=np.ones(3, bool), run_id=bad)
    assert not list(tmp_path.glob("*.npz")) and not list((tmp_path / "s").glob("*.npz"))
    assert len(memscore.RunStore.open(store.path)) == 0
