"""Does a forecast from 64 runs predict the reliability measured at 256 and 512 runs?

Trains 512 small MLPs (ensembles, CPU) on random halves of two embedded setups with 10%
flipped labels (scikit-learn's digits and MNIST-1D), forecasts from the first 64 runs the
split-half reliability and the median standard error at 256 and 512 runs, and measures
them on the first 256 and on all 512 runs. Then the runs each score needs for
reliability 0.9, how that grows with the subset ratio and the dataset size (64-run
pilots), and what the forecast costs in wall time.

    PYTHONPATH=python python benches/bench_reliability.py [--runs 512] [--out /tmp/rel-bench]

Prints Markdown tables (docs/reliability.md quotes them).
"""

from __future__ import annotations

import argparse
import math
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from memscore.datasets import digits, mnist1d
from memscore.train import SubsetPlan, create_store, mlp, train_runs

SETUPS: dict[str, dict[str, Any]] = {
    "digits": dict(load=lambda n: digits(label_noise=0.1, seed=0), width=64, epochs=20, lr=0.1),
    "mnist1d": dict(load=lambda n: mnist1d(n, label_noise=0.1, seed=0), width=64, epochs=20, lr=0.02),
}
SCORES = ["memorization", "holdout", "lira", "influence", "influence_topk", "banzhaf"]


def train(root: Path, name: str, runs: int, keep: float = 0.5, n: int = 5000) -> Any:
    """A store of ``runs`` MLPs on ``name`` (made once, reused on the next call)."""
    s = SETUPS[name]
    d = s["load"](n)
    path = root / f"{name}-n{d.n_train}-keep{keep}-r{runs}"
    from memscore import RunStore

    if (path / "manifest.json").is_file():
        store = RunStore.open(path)
    else:
        shutil.rmtree(path, ignore_errors=True)
        store = create_store(path, (d.x_train, d.y_train), (d.x_test, d.y_test), metadata={"dataset": {"name": name}})
    plan = SubsetPlan(d.n_train, runs, keep=keep, seed=0)
    t0 = time.perf_counter()
    train_runs(
        lambda: mlp(d.x_train.shape[1], 10, width=s["width"]), (d.x_train, d.y_train), (d.x_test, d.y_test),
        plan, store, epochs=s["epochs"], batch_size=64, lr=s["lr"], ensemble=64, device="cpu", progress=False,
    )  # fmt: skip
    return store, d, time.perf_counter() - t0


def rel_err(pred: float, meas: float) -> float:
    return abs(pred - meas) / abs(meas) if meas else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=512)
    ap.add_argument("--pilot", type=int, default=64)
    ap.add_argument("--splits", type=int, default=10)
    ap.add_argument("--out", type=Path, default=Path("/tmp/memscore-bench-reliability"))
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    checks = [a.runs // 2, a.runs]
    print(f"## Forecast from {a.pilot} runs vs measured (keep 0.5, 10% label noise, MLP width 64)\n")
    print("| setup | score | statistic | runs | forecast | measured | error |")
    print("|---|---|---|---:|---:|---:|---:|")
    need_rows = []
    for name in SETUPS:
        store, d, secs = train(a.out, name, a.runs)
        ids = store.run_ids()
        kw = dict(corrupted=d.corrupted, n_boot=0)
        t0 = time.perf_counter()
        pilot = store.pilot(["memorization", "holdout"], run_ids=ids[: a.pilot], splits=a.splits, **kw)
        t_pilot = time.perf_counter() - t0
        for n in checks:
            meas = store.reliability(["memorization", "holdout"], run_ids=ids[:n], splits=a.splits, **kw)
            for score in ("memorization", "holdout"):
                for stat in ("split_half_reliability", "median_stderr"):
                    row = meas.filter(score=score, statistic=stat)
                    if row.height == 0:
                        continue
                    m = float(row["value"][0])
                    p = pilot.predict(score, stat, n)
                    print(f"| {name} | {score} | {stat} | {n} | {p:.4f} | {m:.4f} | {100 * rel_err(p, m):.1f}% |")
        # runs for reliability 0.9, every score, from the full store as the pilot
        full = store.pilot(SCORES, splits=a.splits, **kw)
        spr, dev = store.seconds_per_run()
        for score in SCORES:
            stat = "top10_overlap" if score == "influence_topk" else "split_half_reliability"
            goal = 0.8 if score == "influence_topk" else 0.9
            runs, lo, hi = full.runs_needed(f"{score}:{stat}>={goal}")
            need_rows.append(
                (name, d.n_train, 0.5, score, f"{stat}>={goal}", runs, lo, hi, full.law_error(score, stat))
            )
        print(f"\n{name}: {a.runs} runs trained in {secs:.0f} s here ({spr} s/run recorded on {dev}); "
              f"pilot of {a.pilot} runs scored in {t_pilot:.1f} s\n")  # fmt: skip
    # growth with the subset ratio (digits) and the dataset size (MNIST-1D), 64-run pilots
    for name, keep, n in [("digits", 0.3, 0), ("digits", 0.7, 0), ("mnist1d", 0.5, 1000), ("mnist1d", 0.5, 2500)]:
        store, d, _ = train(a.out, name, a.pilot, keep=keep, n=n)
        p = store.pilot(["memorization", "holdout"], splits=a.splits, corrupted=d.corrupted, n_boot=0)
        for score in ("memorization", "holdout"):
            runs, lo, hi = p.runs_needed(f"{score}:reliability>=0.9")
            err = p.law_error(score, "reliability")
            need_rows.append((name, d.n_train, keep, score, "reliability>=0.9", runs, lo, hi, err))
    print("## Runs each score needs (forecast; interval from the sub-samples and splits)\n")
    print("| setup | n_train | keep | score | target | runs | interval | law error |")
    print("|---|---:|---:|---|---|---:|---|---:|")

    def fmt(x: float) -> str:
        return "never" if math.isinf(x) else ("?" if math.isnan(x) else f"{math.ceil(x)}")

    for name, n, keep, score, tgt, runs, lo, hi, err in need_rows:
        print(f"| {name} | {n} | {keep} | {score} | {tgt} | {fmt(runs)} | {fmt(lo)}-{fmt(hi)} | {err:.3f} |")
    print(f"\nnumpy {np.__version__}; CPU timings, shared machine: noisy")


if __name__ == "__main__":
    main()
