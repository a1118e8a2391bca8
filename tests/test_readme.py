"""README's Python examples run as written (they are one script, in order); so do those of
each page under docs/ (one script per page); and README's first set-up command installs
every engine."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))


def _run_blocks(path: pathlib.Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", path.read_text(), re.S)
    exec(compile("\n".join(blocks), str(path), "exec"), {})


def test_readme_examples_run(tmp_path, monkeypatch):
    assert re.search(r"```python\n", README.read_text()), "README has no python examples"
    monkeypatch.chdir(tmp_path)
    ray = pytest.importorskip("ray")  # the tour runs one call on a local Ray cluster
    was_up = ray.is_initialized()
    try:
        _run_blocks(README)
    finally:
        if not was_up and ray.is_initialized():  # the tour's cluster, not a fixture's
            ray.shutdown()


@pytest.mark.parametrize("page", [p for p in DOCS if "```python\n" in p.read_text()], ids=lambda p: p.name)
def test_docs_examples_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _run_blocks(page)


def test_all_extra_is_the_union_of_the_user_extras():
    """`pip install ".[all]" && memscore demo` (README) needs every extra but dev."""
    tomllib = pytest.importorskip("tomllib")
    pyproject = ROOT / "pyproject.toml"
    if not pyproject.is_file():
        pytest.skip("run from an installed package, without pyproject.toml")
    extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    user = set().union(*(extras[k] for k in extras if k not in ("all", "dev")))
    assert sorted(extras["all"]) == sorted(user)
    assert 'pip install ".[all]" && memscore demo' in README.read_text()


def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lowercase, punctuation dropped, spaces to '-'."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def test_links_between_pages_resolve():
    for page in [README, *DOCS]:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+://", target):
                continue
            file, _, anchor = target.partition("#")
            dest = (page.parent / file).resolve() if file else page
            assert dest.exists(), f"{page.name}: link to missing {target}"
            if anchor and dest.suffix == ".md":
                headings = re.findall(r"^#+ (.*)$", dest.read_text(), re.M)
                assert anchor in {_anchor(h) for h in headings}, f"{page.name}: no heading for #{anchor} in {dest.name}"
