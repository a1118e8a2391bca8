"""The package's import graph: no cycles (lazy imports inside functions included), and ray
imported only by ``executors/ray.py``, so that ``import memscore`` works without it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import memscore

PKG = Path(memscore.__file__).parent


def _modules() -> dict[str, tuple[Path, list[str]]]:
    """Module name -> (file, the package its relative imports start from)."""
    out = {}
    for p in PKG.rglob("*.py"):
        parts = ["memscore", *p.relative_to(PKG).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
            pkg = parts
        else:
            pkg = parts[:-1]
        out[".".join(parts)] = (p, pkg)
    return out


def _edges() -> dict[str, set[str]]:
    """Every import of one memscore module by another, at any depth of the file."""
    mods = _modules()
    edges: dict[str, set[str]] = {}
    for name, (path, pkg) in mods.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg[: len(pkg) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    if sub in mods:
                        deps.add(sub)
                    elif target in mods and alias.name != "_core":  # the compiled module is a leaf
                        deps.add(target)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name in mods)
        edges[name] = deps - {name}
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_graph_sees_the_package() -> None:
    edges = _edges()
    assert "memscore.executors.ray" in edges and "memscore.runs.store.store" in edges
    assert "memscore.executors.base" in edges["memscore.executors.local"]


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles() -> None:
    assert _cycles(_edges()) == []


def test_only_executors_ray_imports_ray() -> None:
    offenders = []
    for path in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            if any(n == "ray" or n.startswith("ray.") for n in names):
                offenders.append(str(path.relative_to(PKG)))
    assert sorted(set(offenders)) == [str(Path("executors") / "ray.py")]


def test_import_memscore_without_ray() -> None:
    # a meta-path finder that refuses ray, as if the extra were not installed
    code = (
        "import sys\n"
        "class NoRay:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'ray' or name.startswith('ray.'):\n"
        "            raise ImportError('no ray here')\n"
        "sys.meta_path.insert(0, NoRay())\n"
        "import memscore, memscore.executors, memscore.train, memscore.lm, memscore.taskgram\n"
        "assert 'ray' not in sys.modules\n"
        "try:\n"
        "    memscore.executors.RayExecutor().connect()\n"
        "except ImportError as e:\n"
        "    assert 'memscore[ray]' in str(e), e\n"
        "else:\n"
        "    raise AssertionError('connect() without ray')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
