"""Benchmark of the run-score kernels: memscore vs the numpy reference vs pure Python.

All timed in one process on the same data; prints a Markdown table of median times and
ratios (``python benches/bench_scores.py``; ``--quick`` for a smaller run).

1. memorization + full influence matrix, binary outcomes: R=2000 runs, N=20,000 train,
   T=5,000 test, keep ratio 0.7. numpy reference = two float32 GEMMs (+ sums); pure
   Python on a slice, scaled by the number of (example, run) and (pair, run) terms.
2. top-k influence (k=10) on the same data, and its peak memory measured in child
   processes at two test-set sizes (peak RSS above the inputs vs the full matrix size).
3. LiRA online, R=256, N=50,000: memscore vs the numpy reference, which loops over
   target runs; it is timed on a subset of targets and scaled to all R.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _util import fmt_time, machine, median_time, table  # noqa: E402

import memscore  # noqa: E402
from memscore import reference as ref  # noqa: E402


def make_runs(r: int, n: int, t: int, keep: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    masks = rng.random((r, n)) < keep
    # Outcomes that depend a little on membership, as real runs do.
    train = rng.random((r, n)) < np.where(masks, 0.95, 0.75)
    test = rng.random((r, t)) < 0.8
    return masks, train, test


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def topk_child(r: int, n: int, t: int, k: int) -> None:
    """Run in a child process: peak RSS added by the top-k call above its inputs."""
    masks, _, test = make_runs(r, n, t, 0.7)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak-RSS high-water mark (VmHWM) to the current RSS
    before = _status_kib("VmRSS")
    memscore.influence(masks, test, top_k=k)
    peak = _status_kib("VmHWM")
    print(json.dumps({"peak_added_mib": (peak - before) / 1024}))


def topk_peak_mib(r: int, n: int, t: int, k: int) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--topk-child", str(r), str(n), str(t), str(k)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_added_mib"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--topk-child", nargs=4, type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.topk_child:
        topk_child(*a.topk_child)
        return

    R, N, T, K = (400, 4000, 1000, 10) if a.quick else (2000, 20_000, 5_000, 10)
    LR, LN, L_TARGETS = (64, 5000, 8) if a.quick else (256, 50_000, 16)
    reps = a.repeats
    print(f"machine: {machine()}; memscore threads: {memscore.get_num_threads()}; {memscore.cpu_info()}\n")
    rows = []

    # 1. memorization + influence
    masks, train, test = make_runs(R, N, T, 0.7)

    def ms_both():
        memscore.memorization(masks, train)
        memscore.influence(masks, test)

    def np_both():
        ref.memorization(masks, train)
        ref.influence(masks, test, dtype=np.float32)

    t_ms = median_time(ms_both, reps)
    t_np = median_time(np_both, reps, warmup=0)
    # Pure Python on a slice, scaled by the number of terms it loops over.
    n_s, t_s = 100, 20
    t0 = time.perf_counter()
    ref.memorization_pure(masks[:, :n_s], train[:, :n_s])
    t_mem_py = (time.perf_counter() - t0) * (N / n_s)
    t0 = time.perf_counter()
    ref.influence_pure(masks[:, :n_s], test[:, :t_s])
    t_infl_py = (time.perf_counter() - t0) * (N * T) / (n_s * t_s)
    t_py = t_mem_py + t_infl_py
    label = f"memorization + influence, R={R}, N={N:,}, T={T:,}, bool"
    rows.append({"task": label, "impl": "memscore", "time": fmt_time(t_ms), "vs memscore": "1.0x"})
    rows.append(
        {
            "task": label,
            "impl": "numpy reference (2 float32 GEMMs)",
            "time": fmt_time(t_np),
            "vs memscore": f"{t_np / t_ms:.1f}x slower",
        }
    )
    rows.append(
        {
            "task": label,
            "impl": f"pure Python (slice {n_s}x{t_s}, scaled)",
            "time": fmt_time(t_py),
            "vs memscore": f"{t_py / t_ms:,.0f}x slower",
        }
    )
    results = {"mem_infl": {"memscore_s": t_ms, "numpy_s": t_np, "python_s": t_py}}

    # Check the two agree while we have both (cheap insurance that we time the same thing).
    got = memscore.influence(masks[:, :500], test[:, :50], dtype=np.float64)
    np.testing.assert_allclose(got, ref.influence(masks[:, :500], test[:, :50]), atol=1e-9)

    # 2. top-k
    t_topk = median_time(lambda: memscore.influence(masks, test, top_k=K), reps)
    t_topk_np = median_time(lambda: ref.influence_topk(masks[:, : N // 10], test, K), 1, warmup=0) * 10
    label = f"top-{K} influence, same data"
    rows.append({"task": label, "impl": "memscore (streaming)", "time": fmt_time(t_topk), "vs memscore": "1.0x"})
    rows.append(
        {
            "task": label,
            "impl": "numpy reference (full matrix + sort, 1/10 of N, scaled)",
            "time": fmt_time(t_topk_np),
            "vs memscore": f"{t_topk_np / t_topk:.1f}x slower",
        }
    )
    peaks = {tt: topk_peak_mib(R, N, tt, K) for tt in (T // 5, T)}
    full_mib = {tt: N * tt * 4 / 2**20 for tt in peaks}
    results["topk"] = {"memscore_s": t_topk, "numpy_s": t_topk_np, "peak_added_mib": peaks, "full_matrix_mib": full_mib}

    # 3. LiRA
    rng = np.random.default_rng(1)
    lmasks = rng.random((LR, LN)) < 0.5
    phi = rng.normal(size=(LR, LN)) + 1.5 * lmasks
    t_lira = median_time(lambda: memscore.lira(lmasks, phi), reps)
    t_lira_np = median_time(lambda: ref.lira(lmasks, phi, targets=range(L_TARGETS)), 1, warmup=0) * (LR / L_TARGETS)
    want = ref.lira(lmasks[:, :2000], phi[:, :2000], targets=range(4))
    np.testing.assert_allclose(memscore.lira(lmasks[:, :2000], phi[:, :2000])[:4], want, rtol=1e-7, atol=1e-7)
    label = f"LiRA online, R={LR}, N={LN:,}"
    rows.append(
        {"task": label, "impl": "memscore (selected leave-one-out)", "time": fmt_time(t_lira), "vs memscore": "1.0x"}
    )
    rows.append(
        {
            "task": label,
            "impl": f"numpy reference ({L_TARGETS} targets, scaled)",
            "time": fmt_time(t_lira_np),
            "vs memscore": f"{t_lira_np / t_lira:.1f}x slower",
        }
    )
    results["lira"] = {"memscore_s": t_lira, "numpy_s": t_lira_np}

    print(table(rows, ["task", "impl", "time", "vs memscore"]))
    print()
    print(
        "top-k peak memory above inputs (child processes): "
        + ", ".join(f"T={tt:,}: {peaks[tt]:.0f} MiB (full matrix would be {full_mib[tt]:.0f} MiB)" for tt in peaks)
    )
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"machine": machine(), **results}, f, indent=2)


if __name__ == "__main__":
    main()
