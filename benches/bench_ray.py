"""Ray benchmark: corpus shards and training runs on a local Ray cluster with 1 and 2
workers, Ray's overhead per task, and the same work on the local (one-process) path.

    python benches/bench_ray.py            # 8 token shards of 16 M tokens, 8 runs x 40 epochs
    python benches/bench_ray.py --quick    # a smoke run

The cluster is started here with ``--cpus`` CPUs. Every worker and the local path run
single-threaded (``MEMSCORE_NUM_THREADS=1``, one torch thread) so that "2 workers" means
two processes doing the work side by side; "1 worker" is the same tasks with each task
reserving every CPU, so they run one at a time. The local path is also timed with all
threads. Wall times include submitting the tasks and merging / writing the results; the
cluster start and the first worker start are not timed (one warm-up pass).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import fmt_time, machine, median_time, table  # noqa: E402


def _noop(x: int) -> int:
    return x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=16_000_000, help="tokens per shard")
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--noop-tasks", type=int, default=100)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    if a.quick:
        a.shards, a.tokens, a.runs, a.epochs, a.noop_tasks = 4, 200_000, 4, 2, 20

    os.environ["MEMSCORE_NUM_THREADS"] = "1"  # the local path, single-threaded
    import ray
    import torch

    import memscore
    from memscore.cluster import RayExecutor, run_tasks
    from memscore.ngrams import Corpus, QuerySet
    from memscore.ngrams.ray_count import count_shards
    from memscore.train import DatasetSplit, SubsetPlan, create_store, mlp, train_runs

    torch.set_num_threads(1)
    one_thread = {"env_vars": {"MEMSCORE_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}}
    ray.init(num_cpus=a.cpus, log_to_driver=False, include_dashboard=False)
    workers = {1: a.cpus, 2: a.cpus // 2}  # cpus_per_task giving 1 or 2 tasks at a time
    rows = []
    load = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="bench-ray-"))

    # ---- corpus shards
    rng = np.random.default_rng(0)
    for k in range(a.shards):
        toks = rng.integers(0, 50_000, size=a.tokens).astype(np.uint16)
        np.save(tmp / f"s{k}.npy", toks)
        np.save(tmp / f"s{k}.offsets.npy", np.arange(0, a.tokens, 500, dtype=np.int64))
    corpus = Corpus.from_token_files(tmp)
    queries = [rng.integers(0, 50_000, size=int(n)).tolist() for n in rng.integers(1, 4, size=2000)]
    qs = QuerySet(corpus, queries)
    shards = corpus.shards()

    def timed(fn: functools.partial[object], repeats: int = 3) -> float:
        fn()  # warm-up: caches, and every worker process of the setting started
        return median_time(fn, repeats=repeats, warmup=0)

    local1 = timed(functools.partial(qs.count, corpus))
    memscore.set_num_threads(a.cpus)
    localn = timed(functools.partial(qs.count, corpus))
    memscore.set_num_threads(1)
    mb = corpus.nbytes / 1e6
    rows.append({"work": f"count {a.shards} shards ({mb:.0f} MB)", "path": "local, 1 thread", "wall": local1})
    rows.append({"work": f"count {a.shards} shards ({mb:.0f} MB)", "path": f"local, {a.cpus} threads", "wall": localn})
    for w, cpus in workers.items():
        ex = RayExecutor(cpus_per_task=cpus, runtime_env=one_thread)
        t = timed(functools.partial(count_shards, qs, shards, ex))
        rows.append({"work": f"count {a.shards} shards ({mb:.0f} MB)", "path": f"Ray, {w} worker(s)", "wall": t})

    # ---- training runs
    train, test = DatasetSplit("modular", "train", p=23, seed=0), DatasetSplit("modular", "test", p=23, seed=0)
    n_train = train()[0].shape[0]
    plan = SubsetPlan(n_train, a.runs, seed=0)
    model = functools.partial(mlp, 46, 23, width=64)
    kw = dict(epochs=a.epochs, batch_size=32, lr=0.05, progress=False)

    n_stores = [0]

    def train_fresh(data: tuple[object, object], **extra: object) -> None:
        """Train the plan into a new store (every call trains every run)."""
        n_stores[0] += 1
        store = create_store(tmp / f"store{n_stores[0]}", train(), test())
        train_runs(model, data[0], data[1], plan, store, **kw, **extra)  # type: ignore[arg-type]

    work = f"train {a.runs} runs x {a.epochs} epochs (ensembles of 2)"
    t = timed(functools.partial(train_fresh, (train(), test()), ensemble=2), repeats=1)
    rows.append({"work": work, "path": "local, 1 thread", "wall": t})
    for w, cpus in workers.items():
        ex = RayExecutor(cpus_per_task=cpus, runs_per_task=2, runtime_env=one_thread)
        t = timed(functools.partial(train_fresh, (train, test), executor=ex), repeats=1)
        rows.append({"work": work, "path": f"Ray, {w} worker(s)", "wall": t})

    # ---- overhead per task
    ex = RayExecutor(cpus_per_task=1)
    run_tasks(ex, _noop, [(0,)], lambda i, v: 0.0, total=0, unit="t", desc="", progress=False)
    t0 = time.perf_counter()
    run_tasks(ex, _noop, [(0,)], lambda i, v: 0.0, total=0, unit="t", desc="", progress=False)
    one = time.perf_counter() - t0
    t0 = time.perf_counter()
    run_tasks(ex, _noop, [(i,) for i in range(a.noop_tasks)], lambda i, v: 0.0, total=0, unit="t", desc="",
              progress=False)  # fmt: skip
    many = (time.perf_counter() - t0) / a.noop_tasks
    rows.append({"work": "empty task, alone (round trip)", "path": "Ray", "wall": one})
    rows.append({"work": f"empty task, {a.noop_tasks} at once (per task)", "path": "Ray", "wall": many})
    ray.shutdown()

    for r in rows:
        r["wall time"] = fmt_time(r["wall"])
    print(f"machine: {machine()}; load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"ray {ray.__version__}, cluster of {a.cpus} CPUs, every worker single-threaded\n")
    print(table(rows, ["work", "path", "wall time"]))
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
