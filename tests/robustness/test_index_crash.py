"""kill -9 at several points of ``memscore ngrams index``, then build again: the index
resumes (parts built before the kill are kept), equals an uninterrupted build, and opening
an index whose build was killed is a named error, never a wrong count."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from memscore import CorpusIndexError
from memscore.ngrams import Corpus, CorpusIndex

pytest.importorskip("typer")

SHARDS, TOKENS = 6, 3_000_000


def _corpus(root: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    files = []
    for k in range(SHARDS):
        tokens = rng.integers(0, 3000, size=TOKENS).astype(np.uint16)
        offsets = np.arange(0, TOKENS, 700, dtype=np.int64)
        np.save(root / f"s{k}.npy", tokens)
        np.save(root / f"s{k}.offsets.npy", offsets)
        files.append(root / f"s{k}.npy")
    return files


def _build(root: Path, out: Path) -> list[str]:
    code = "from memscore.cli import main; main()"
    return [sys.executable, "-c", code, "ngrams", "index", "--corpus", str(root / "s*.npy"), "--out", str(out)] + [
        "--executor",
        "local",
    ]


def test_kill9_during_build_then_resume(tmp_path):
    files = _corpus(tmp_path)
    corpus = Corpus.from_token_files(files)
    rng = np.random.default_rng(1)
    tokens = np.load(files[2])
    queries = [
        tokens[p : p + n].tolist()
        for p, n in zip(rng.integers(0, TOKENS - 9, 300), rng.integers(1, 9, 300), strict=True)
    ]
    out = tmp_path / "idx"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for delay in (1.0, 2.0, 3.0, 4.5):
        proc = subprocess.Popen(_build(tmp_path, out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        if not (out / "manifest.json").exists():
            with pytest.raises(CorpusIndexError, match="no manifest"):
                CorpusIndex.open(out)
        # every visible part file is whole: its entry's checksums hold
        for entry in out.glob("part-*.json"):
            meta = json.loads(entry.read_text())
            assert (out / f"{meta['file']}.sa").stat().st_size == meta["n_tokens"] * meta["sa_width"]
    r = subprocess.run(_build(tmp_path, out), env=env, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    idx = CorpusIndex.open(out, corpus=corpus)  # checksums verified
    fresh = CorpusIndex.build(corpus, tmp_path / "fresh")
    assert idx.count(queries).tolist() == fresh.count(queries).tolist()
    for ext in (".tokens", ".sa", ".docs"):
        for k in range(SHARDS):
            name = f"part-{k:05d}-00000{ext}"
            assert (out / name).read_bytes() == (tmp_path / "fresh" / name).read_bytes()
    # besides temporary names left by killed writers (.tmp-*, which `memscore ngrams clean`
    # removes), only the index's own files
    names = {p.name for p in out.iterdir() if not p.name.startswith(".tmp-")}
    parts = {f"part-{k:05d}-00000{ext}" for k in range(SHARDS) for ext in (".tokens", ".sa", ".docs", ".json")}
    assert names == parts | {"manifest.json"}
