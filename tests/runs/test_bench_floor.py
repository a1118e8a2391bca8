"""The floor benchmark (benches/bench_floor.py) cannot rot: its --quick run on tiny sizes
checks every score against its numpy form and prints the table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_floor_quick(tmp_path):
    out = subprocess.run(
        [sys.executable, str(ROOT / "benches" / "bench_floor.py"), "--quick", "--repeats", "1",
         "--json", str(tmp_path / "f.json")],
        capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    got = json.loads((tmp_path / "f.json").read_text())
    scores = {r["score"].split(" (")[0].split(" ")[0] for r in got["rows"]}
    assert {"memorization", "holdout_accuracy", "data_oob", "influence", "banzhaf", "lira", "rmia"} <= scores
    assert all(r["memscore_s"] > 0 and r["numpy_s"] > 0 and r["floor_s"] > 0 for r in got["rows"])
    assert got["bandwidth"] > 0 and got["threads"] == 2
    assert "| score | size | memscore | numpy |" in out.stdout and "popcount" in out.stdout
