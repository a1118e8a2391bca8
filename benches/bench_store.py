"""Benchmark of the run store's streamed scores: one code tree against another.

Builds (once, then reuses) a store of R runs x N train x T test examples with bool outcomes
and phi, then times ``store.scores()`` (median of ``--repeats``) and measures the peak
resident memory of ``scores()``, ``memorization()`` and ``influence(top_k=10)``, each in a
fresh subprocess (``resource.getrusage(RUSAGE_SELF).ru_maxrss``), for every code tree given
with ``--tree NAME=PYTHONPATH`` (e.g. ``before=/work/main/python after=python``). Prints a
Markdown table with times, ratios against the first tree and the machine.

    python benches/bench_store.py --store /tmp/memscore-bench-store \\
        --tree before=/work/main/python --tree after=python
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import machine, table  # noqa: E402

# One measurement, run in a fresh interpreter so ru_maxrss is its own peak.
_MEASURE = """
import json, resource, sys, time
import numpy as np
from memscore import RunStore
op, path = sys.argv[1], sys.argv[2]
store = RunStore.open(path)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
if op == "scores":
    store.scores()
elif op == "memorization":
    store.memorization()
elif op == "influence":
    store.influence(top_k=10)
elif op != "open":
    raise SystemExit("unknown op " + op)
dt = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"time": dt, "peak_kib": peak, "base_kib": base}))
"""


def build(path: Path, r: int, n: int, t: int, seed: int = 0) -> None:
    """Create the benchmark store at ``path`` (skipped when it already holds ``r`` runs)."""
    from memscore import RunStore

    if (path / "manifest.json").exists():
        store = RunStore.open(path)
        have = len(store.run_ids())
        if (store.n_train, store.n_test) != (n, t):
            raise SystemExit(f"{path}: holds a store of another shape; remove it or pick another --store")
    else:
        store = RunStore.create(path, n_train=n, n_test=t)
        have = 0
    rng = np.random.default_rng(seed + have)
    t0 = time.perf_counter()
    for k in range(have, r):
        mask = rng.random(n) < 0.5
        p_tr = np.clip(0.6 + 0.3 * mask + 0.1 * rng.standard_normal(n), 0.01, 0.99)
        p_te = np.clip(0.6 + 0.1 * rng.standard_normal(t), 0.01, 0.99)
        store.add_run(
            mask,
            train_correct=rng.random(n) < p_tr,
            test_correct=rng.random(t) < p_te,
            train_phi=np.log(p_tr / (1 - p_tr)),
            test_phi=np.log(p_te / (1 - p_te)),
            subset_ratio=0.5,
            run_id=f"run-{k:06d}",
        )
        if (k + 1) % 500 == 0:
            print(f"  built {k + 1}/{r} runs ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)


def measure(pythonpath: str, op: str, store: Path) -> dict[str, float]:
    """Run one operation in a fresh interpreter with ``PYTHONPATH=pythonpath``."""
    env = dict(os.environ, PYTHONPATH=str(Path(pythonpath).resolve()))
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, op, str(store)], env=env, check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    """Parse arguments, build the store if needed, measure every tree, print the table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", default="/tmp/memscore-bench-store")
    ap.add_argument("--runs", type=int, default=4000)
    ap.add_argument("--n-train", type=int, default=20000)
    ap.add_argument("--n-test", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tree", action="append", default=[], help="NAME=PYTHONPATH (repeatable; first = baseline)")
    ap.add_argument("--ops", default="scores,memorization,influence")
    ap.add_argument("--build-only", action="store_true")
    args = ap.parse_args()
    path = Path(args.store)
    build(path, args.runs, args.n_train, args.n_test)
    if args.build_only:
        return
    trees = [tuple(s.split("=", 1)) for s in args.tree] or [("this", str(Path(__file__).parents[1] / "python"))]
    ops = args.ops.split(",")
    # Warm the page cache so the first tree is not charged for cold reads.
    for f in sorted((path / "runs").iterdir()):
        f.read_bytes()
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    for rep in range(args.repeats):
        for op in ops:
            for name, pp in trees:  # interleaved, so load changes hit every tree alike
                results.setdefault((name, op), []).append(measure(pp, op, path))
                print(f"  {name} {op} #{rep + 1}: {results[(name, op)][-1]}", file=sys.stderr)
    base_name = trees[0][0]
    rows = []
    for op in ops:
        t_base = statistics.median(x["time"] for x in results[(base_name, op)])
        m_base = max(x["peak_kib"] for x in results[(base_name, op)])
        for name, _ in trees:
            rs = results[(name, op)]
            t = statistics.median(x["time"] for x in rs)
            peak = max(x["peak_kib"] for x in rs)
            rows.append(
                {
                    "operation": f"`{op}()`" if op != "influence" else "`influence(top_k=10)`",
                    "code": name,
                    "runs timed": len(rs),
                    "time (s, median)": f"{t:.2f}",
                    "speed-up": f"{t_base / t:.2f}x",
                    "peak RSS (MiB)": f"{peak / 1024:.0f}",
                    "RSS after open (MiB)": f"{statistics.median(x['base_kib'] for x in rs) / 1024:.0f}",
                    "peak vs base": f"{peak / m_base:.2f}",
                }
            )
    print(
        f"\nRun store, R={args.runs} runs x N={args.n_train} train x T={args.n_test} test, "
        f"bool outcomes + phi ({path})\n"
    )
    print(table(rows, list(rows[0])))
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    print(f"\nMachine: {machine()}; load average {load} (at the end)")


if __name__ == "__main__":
    main()
