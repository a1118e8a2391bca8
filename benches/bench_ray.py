"""Ray benchmark: the datamodels fit and a store scan on a local Ray cluster of 1 and of 2
single-CPU workers (the speed-up 1 -> 2), Ray's overhead per task, and the measured time of
one block of targets (for projecting a full-size fit).

    python benches/bench_ray.py                    # 40,000 runs x 10,000 train x 64 targets
    python benches/bench_ray.py --quick            # a smoke run (2,000 runs x 1,000 train)
    python benches/bench_ray.py --dir /tmp/bstore  # keep the store and reuse it next time

The store scan needs ``store.scores(executor=...)`` on the executor seam; where it is not
(an ImportError from the old Ray module), it is skipped with a message.

"1 worker" is a cluster started with ``ray.init(num_cpus=1)``, "2 workers" one with
``num_cpus=2``; both run the same tasks (the targets split in two blocks of 32 for the
fit, ranges of runs for the scan), each task single-threaded (``cpus_per_task=1``: the
datamodels task runs the Rust kernels on one thread; ``MEMSCORE_NUM_THREADS=1`` and
``OMP_NUM_THREADS=1`` for the scan). Wall times include submitting the tasks, every task
reading the runs from the store itself, and the merge; the cluster start and the first
worker start are not timed (one warm-up pass). The store is written once (without fsync:
a benchmark fixture) and read from the page cache.

The block time is one task's fit of 32 targets (the Rust core's block) in this process on
one thread, the read of the runs included (and timed alone). A fit's CPU time grows about
linearly with the runs x training examples x blocks (the path, sweeps and sparsity depend
on the data), the read with the runs, so the projection printed at the end (300,000 runs
x 50,000 training examples x 10,000 targets) is an estimate, to be read with that caveat.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import fmt_time, machine, median_time, table  # noqa: E402

FULL = {"runs": 300_000, "train": 50_000, "targets": 10_000}


def _noop(x: int) -> int:
    return x


def cpu_name() -> str:
    """``lscpu``'s model name (the machine line's otherwise)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return machine()
    names = [ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")]
    return names[0] if names else machine()


def build_store(path: Path, runs: int, n_train: int, n_test: int, seed: int = 0) -> Any:
    """A store of ``runs`` random half-subsets whose test φ is a planted 20-sparse linear
    function of the mask plus unit noise (as benches/release_stream.py), with the train
    correctness the scan reads. Reused when ``path`` already holds one of these sizes."""
    import memscore

    if (path / "manifest.json").exists():
        s = memscore.RunStore.open(path)
        if (len(s), s.n_train, s.n_test) == (runs, n_train, n_test):
            return s
        raise SystemExit(f"{path} holds another store ({len(s)} runs, {s.n_train} x {s.n_test}); pick a new --dir")
    rng = np.random.default_rng(seed)
    w = np.zeros((n_test, n_train))
    for t in range(n_test):
        w[t, rng.choice(n_train, 20, replace=False)] = rng.normal(size=20)
    s = memscore.RunStore.create(path, n_train=n_train, n_test=n_test)
    fsync, os.fsync = os.fsync, lambda fd: None  # a fixture: durability does not matter here
    t0 = time.perf_counter()
    try:
        for start in range(0, runs, 1000):
            m = rng.random((min(1000, runs - start), n_train)) < 0.5
            phi = m @ w.T + rng.normal(size=(m.shape[0], n_test))
            right = rng.random(m.shape) < np.where(m, 0.9, 0.6)
            for k in range(m.shape[0]):
                s.add_run(m[k], test_phi=phi[k], train_correct=right[k], run_id=f"r{start + k:07d}")
    finally:
        os.fsync = fsync
    print(f"store of {runs} runs written in {time.perf_counter() - t0:.0f} s: {path}", file=sys.stderr)
    return s


def block_times(store: Any, fit_kw: dict[str, Any], blocks: int) -> tuple[list[float], float]:
    """Seconds of each of the first ``blocks`` 32-target blocks fitted as one task in
    this process on one thread (the read of the runs included), and of the read alone."""
    import memscore
    from memscore.runs.datamodels import CORE_BLOCK, FitArgs, check_settings, split_rows
    from memscore.runs.store.attribution import fit_store_block, read_block

    before = memscore.get_num_threads()
    memscore.set_num_threads(1)
    ids, path = store.run_ids(), os.fspath(store.path.resolve())
    keep, held = split_rows(len(ids), fit_kw["val_fraction"], 0)
    settings = check_settings(n_lambdas=fit_kw["n_lambdas"], lambda_ratio=fit_kw["lambda_ratio"])
    fit = FitArgs(lam=None, rows=keep, val_rows=held, settings=settings, threads=None)
    out = []
    try:
        for b in range(blocks):
            t0, t1 = b * CORE_BLOCK, (b + 1) * CORE_BLOCK
            start = time.perf_counter()
            fit_store_block(path, ids, "test_phi", t0, t1, fit.block(t0, t1))
            out.append(time.perf_counter() - start)
        start = time.perf_counter()
        read_block(path, ids, "test_phi", 0, CORE_BLOCK)
        read = time.perf_counter() - start
    finally:
        memscore.set_num_threads(before)
    return out, read


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int, default=40_000)
    ap.add_argument("--train", type=int, default=10_000, help="training examples (mask length)")
    ap.add_argument("--targets", type=int, default=64, help="test examples fitted (two tasks of half)")
    ap.add_argument("--n-lambdas", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--noop-tasks", type=int, default=100)
    ap.add_argument("--dir", type=Path, default=None, help="store directory (kept; reused when it exists)")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    if a.quick:
        a.runs, a.train, a.noop_tasks = 2_000, 1_000, 20

    import ray

    import memscore
    from memscore.executors import RayExecutor

    one_thread = {"env_vars": {"MEMSCORE_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}}
    store_dir = a.dir if a.dir is not None else Path(tempfile.mkdtemp(prefix="bench-ray-")) / "store"
    store = build_store(store_dir, a.runs, a.train, a.targets)
    fit_kw = {"val_fraction": 0.05, "n_lambdas": a.n_lambdas, "lambda_ratio": 0.05}
    per_task = -(-a.targets // 2)
    load = os.getloadavg()

    def timed(fn: Callable[[], object]) -> float:
        fn()  # warm-up: the page cache, and every worker process of the setting started
        return median_time(fn, repeats=a.repeats, warmup=0)

    rows: list[dict[str, Any]] = []
    fits: dict[int, Any] = {}
    fit_work = f"datamodels: {a.runs:,} runs x {a.train:,} train x {a.targets} targets ({a.n_lambdas} λ)"
    scan_work = f"store.scores(): {a.runs:,} runs x {a.train:,} train"
    walls: dict[tuple[str, int], float] = {}
    for workers in (1, 2):
        ray.init(num_cpus=workers, log_to_driver=False, include_dashboard=False)
        try:
            ex = RayExecutor(cpus_per_task=1, runtime_env=one_thread)

            def fit(ex: RayExecutor = ex, w: int = workers) -> None:
                fits[w] = store.datamodels(executor=ex, targets_per_task=per_task, **fit_kw)

            walls["fit", workers] = timed(fit)
            scan_ex = RayExecutor(cpus_per_task=1, runs_per_task=max(256, -(-a.runs // 8)), runtime_env=one_thread)
            try:
                walls["scan", workers] = timed(functools.partial(store.scores, executor=scan_ex))
            except (ImportError, TypeError, AttributeError) as exc:  # a scan not on the seam yet
                print(f"store scan skipped: {type(exc).__name__}: {exc}", file=sys.stderr)
            if workers == 2:
                ex.map(_noop, [(0,)]).__next__()
                t0 = time.perf_counter()
                list(ex.map(_noop, [(0,)]))
                walls["one", 2] = time.perf_counter() - t0
                t0 = time.perf_counter()
                list(ex.map(_noop, [(i,) for i in range(a.noop_tasks)]))
                walls["many", 2] = (time.perf_counter() - t0) / a.noop_tasks
        finally:
            ray.shutdown()
    same = np.array_equal(fits[1].weights, fits[2].weights)
    for work, key in ((fit_work, "fit"), (scan_work, "scan")):
        if (key, 1) not in walls:
            continue
        speedup = walls[key, 1] / walls[key, 2]
        for w in (1, 2):
            rows.append({"work": work, "path": f"Ray, {w} worker(s)", "wall": walls[key, w],
                         "speed-up": f"{speedup:.2f}x" if w == 2 else ""})  # fmt: skip
    rows.append({"work": "empty task, alone (round trip)", "path": "Ray", "wall": walls["one", 2]})
    rows.append({"work": f"empty task, {a.noop_tasks} at once (per task)", "path": "Ray", "wall": walls["many", 2]})

    blocks, read_s = block_times(store, fit_kw, min(2, -(-a.targets // 32)))
    block_s = float(np.median(blocks))
    for k, s in enumerate(blocks):
        rows.append({"work": f"one block of 32 targets (block {k}), {a.runs:,} runs x {a.train:,} train, read included",
                     "path": "local, 1 thread", "wall": s})  # fmt: skip
    rows.append({"work": f"the read of one block ({a.runs:,} run files)", "path": "local", "wall": read_s})

    for r in rows:
        r["wall time"] = fmt_time(r["wall"])
    print(f"CPU: {cpu_name()}; memscore.cpu_info(): {memscore.cpu_info()}")
    print(f"machine: {machine()}; load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"ray {ray.__version__}; clusters of 1 and 2 CPUs, every task single-threaded; the fit in 2 tasks of "
          f"{per_task} targets; weights identical on 1 and 2 workers: {same}\n")  # fmt: skip
    print(table(rows, ["work", "path", "wall time", "speed-up"]))
    # Projection: a block's time ~ runs x train (an estimate, see the docstring); one
    # single-CPU task per block, so the wall time is the rounds of blocks over the CPUs.
    n_blocks = -(-FULL["targets"] // 32)
    runs_x = FULL["runs"] / a.runs
    # the fit grows with runs x train; the read with the run files (an open each, a few KB)
    full_block_s = (block_s - read_s) * runs_x * (FULL["train"] / a.train) + read_s * runs_x
    print(f"\nprojected {FULL['runs']:,} runs x {FULL['train']:,} train x {FULL['targets']:,} targets: "
          f"{n_blocks} blocks of 32, each {fmt_time(full_block_s)} (measured {fmt_time(block_s)} here, "
          f"{fmt_time(read_s)} of it the read; the fit scaled by runs x train, the read by runs), {n_blocks * full_block_s / 3600:,.0f} CPU-hours; every task holds the packed masks "
          f"({FULL['runs'] * FULL['train'] / 8 / 2**30:.1f} GiB) and their bit columns")  # fmt: skip
    projected = {}
    for cpus in (1, 64, 512):
        rounds = -(-n_blocks // cpus)
        projected[cpus] = rounds * full_block_s
        print(f"  {cpus:>4} CPUs: {projected[cpus] / 3600:,.1f} h ({rounds} round(s) of blocks)")
    if a.json:
        out = {"rows": rows, "block_s": blocks, "runs": a.runs, "train": a.train, "targets": a.targets,
               "cpu": cpu_name(), "cpu_info": memscore.cpu_info(), "projected_wall_s": projected}  # fmt: skip
        a.json.write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
