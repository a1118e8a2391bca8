"""kill -9 at random points of ``memscore ngrams count``, then resume: the result equals an
uninterrupted run, no partial is half-written, and leftovers are only ``.tmp-*`` files."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from memscore.ngrams import Corpus, NgramStats, ngram_stats

pytest.importorskip("typer")

SHARDS, DOCS = 16, 15000
WORDS = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran", "far", "and", "then", "slept"]


def _corpus(root: Path) -> tuple[Path, Path, Path]:
    rng = np.random.default_rng(0)
    d = root / "corpus"
    d.mkdir()
    for k in range(SHARDS):
        lines = (json.dumps({"text": " ".join(rng.choice(WORDS, int(rng.integers(5, 60))))}) for _ in range(DOCS))
        (d / f"part-{k:02d}.jsonl.gz").write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    q = root / "q.txt"
    q.write_text("\n".join(["the cat", "a dog", "sat on a", "ran", "then slept"]) + "\n")
    p = root / "p.tsv"
    p.write_text("the cat\ta dog\nran\tslept\n")
    return d, q, p


def _count(d: Path, q: Path, p: Path, out: Path) -> list[str]:
    code = "from memscore.cli import main; main()"
    return [sys.executable, "-c", code, "ngrams", "count", "--corpus", str(d), "--queries", str(q)] + [
        "--pairs",
        str(p),
        "--out",
        str(out),
        "--no-progress",
    ]


def _partials(out: Path) -> list[Path]:
    """Partials published under their real names (temporary files start with a dot)."""
    d = out / "partials"
    return [x for x in d.glob("*.parquet") if not x.name.startswith(".")] if d.is_dir() else []


def test_kill9_during_count_then_resume(tmp_path):
    d, q, p = _corpus(tmp_path)
    want = ngram_stats(
        Corpus.from_jsonl(d), [s for s in q.read_text().split("\n") if s], [("the cat", "a dog"), ("ran", "slept")]
    )
    out = tmp_path / "out"
    rng = np.random.default_rng(1)
    killed_with_partials = 0
    for trial in range(5):
        # one thread, so shards finish one by one; kill once `target` partials exist
        # (target 0: during start-up or the first shard)
        env = {**os.environ, "MEMSCORE_NUM_THREADS": "1"}
        proc = subprocess.Popen(_count(d, q, p, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        target = int(rng.integers(0, SHARDS - 2)) if trial else 0
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            done = _partials(out)
            if len(done) >= target:
                break
            time.sleep(0.001)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # whatever is visible under a real name is whole
        parts = _partials(out)
        for part in parts:
            NgramStats.read_parquet(part)
        killed_with_partials += 0 < len(parts) < SHARDS and not (out / "merged.parquet").exists()
    assert killed_with_partials > 0, "no kill landed inside the count: make the corpus larger"
    done = subprocess.run(_count(d, q, p, out), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    merged = NgramStats.read_parquet(out / "merged.parquet")
    np.testing.assert_array_equal(merged.counts, want.counts)
    np.testing.assert_array_equal(merged.doc_freq, want.doc_freq)
    np.testing.assert_array_equal(merged.cooccurrence, want.cooccurrence)
    assert merged.n_documents == want.n_documents == SHARDS * DOCS
