"""Benchmark of exact kNN and ResMem: memscore vs faiss vs scikit-learn vs numpy vs pure Python.

All in one process on the same data (``python benches/bench_knn.py``; ``--quick`` for a
smaller smoke run). Two threads everywhere: ``memscore.set_num_threads(2)``,
``faiss.omp_set_num_threads(2)``, BLAS limited to 2 (threadpoolctl), sklearn ``n_jobs=2``.

1. Exact kNN, N = 200,000 keys, d = 256, Q = 2,000 queries, k = 50, squared L2,
   standard-normal float32 data: memscore ``KnnIndex.search`` vs faiss ``IndexFlatL2``
   search (both indexes built beforehand; build times are listed too), scikit-learn
   ``NearestNeighbors(algorithm="brute")``, the numpy reference (float32 GEMM + partition
   + stable sort, on 1/10 of the queries, scaled) and pure Python (2 queries x 2,000 keys,
   scaled by the number of distance evaluations). memscore's neighbour sets are compared
   with faiss's: rows must be identical except where the differing neighbours tie (within
   float32 round-off) with the k-th distance.
2. ResMem ``predict_proba`` end to end on the same embeddings (10 classes, k = 50): memscore
   (exact engine + numpy weighting) vs a faiss IndexFlatL2 + numpy baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _util import fmt_time, machine, median_time, table  # noqa: E402

import memscore  # noqa: E402
from memscore.reference import knn as ref  # noqa: E402

THREADS = 2


def compare_sets(d_ms, i_ms, d_f, i_f, xb, xq) -> tuple[int, int, int]:
    """(identical rows, rows differing only at ties, rows with a real mismatch)."""
    same = ties = bad = 0
    for r in range(i_ms.shape[0]):
        a, b = set(i_ms[r].tolist()), set(i_f[r].tolist())
        if a == b:
            same += 1
            continue
        # Exact (float64) distances of the neighbours the two disagree on.
        diff = np.array(sorted(a ^ b))
        dd = ((xb[diff].astype(np.float64) - xq[r].astype(np.float64)) ** 2).sum(1)
        kth = float(max(d_ms[r, -1], d_f[r, -1]))
        if np.all(np.abs(dd - kth) <= 1e-5 * kth + 1e-4):
            ties += 1
        else:
            bad += 1
    return same, ties, bad


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-sklearn", action="store_true")
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args()

    import faiss
    from threadpoolctl import threadpool_limits

    memscore.set_num_threads(THREADS)
    faiss.omp_set_num_threads(THREADS)
    threadpool_limits(THREADS)
    N, D, Q, K, C = (20_000, 64, 500, 50, 10) if a.quick else (200_000, 256, 2_000, 50, 10)
    reps = a.repeats
    print(f"machine: {machine()}; threads: {THREADS}; {memscore.cpu_info()}; load: {os.getloadavg()}\n")

    rng = np.random.default_rng(0)
    xb = rng.standard_normal((N, D), dtype=np.float32)
    xq = rng.standard_normal((Q, D), dtype=np.float32)
    rows: list[dict[str, str]] = []
    res: dict[str, float | int | str] = {}
    task = f"exact kNN, N={N:,}, d={D}, Q={Q:,}, k={K}, L2"

    t0 = time.perf_counter()
    index = memscore.KnnIndex(xb)
    res["memscore_build_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    fidx = faiss.IndexFlatL2(D)
    fidx.add(xb)
    res["faiss_build_s"] = time.perf_counter() - t0

    # Interleave the two main contenders so that load changes hit both alike.
    t_ms, t_f = [], []
    out_ms = out_f = None
    for _ in range(reps + 1):
        s = time.perf_counter()
        out_ms = index.search(xq, K)
        t_ms.append(time.perf_counter() - s)
        s = time.perf_counter()
        out_f = fidx.search(xq, K)
        t_f.append(time.perf_counter() - s)
    t_ms_s, t_f_s = float(np.median(t_ms[1:])), float(np.median(t_f[1:]))
    same, ties, bad = compare_sets(out_ms[0], out_ms[1], out_f[0], out_f[1], xb, xq)
    res.update(memscore_s=t_ms_s, faiss_s=t_f_s, rows_identical=same, rows_ties=ties, rows_mismatch=bad)

    def ratio(t: float) -> str:
        return "1.0x" if t == t_ms_s else (f"{t / t_ms_s:,.1f}x slower" if t >= t_ms_s else f"{t_ms_s / t:.2f}x faster")

    rows.append({"task": task, "impl": "memscore KnnIndex.search", "time": fmt_time(t_ms_s), "vs memscore": "1.0x"})
    rows.append(
        {
            "task": task,
            "impl": f"faiss {faiss.__version__} IndexFlatL2.search",
            "time": fmt_time(t_f_s),
            "vs memscore": ratio(t_f_s),
        }
    )

    if not a.skip_sklearn:
        from sklearn.neighbors import NearestNeighbors

        nn = NearestNeighbors(n_neighbors=K, algorithm="brute", n_jobs=THREADS).fit(xb)
        t_sk = median_time(lambda: nn.kneighbors(xq, K), 1, warmup=0)
        res["sklearn_s"] = t_sk
        rows.append(
            {
                "task": task,
                "impl": "scikit-learn NearestNeighbors(brute)",
                "time": fmt_time(t_sk),
                "vs memscore": ratio(t_sk),
            }
        )

    qs = max(Q // 10, 1)
    t_np = median_time(lambda: ref.knn(xq[:qs], xb, K, dtype=np.float32), 1, warmup=0) * (Q / qs)
    res["numpy_s"] = t_np
    rows.append(
        {
            "task": task,
            "impl": f"numpy reference ({qs} queries, scaled)",
            "time": fmt_time(t_np),
            "vs memscore": ratio(t_np),
        }
    )
    pq, pn = 2, 2000
    ql, kl = xq[:pq].tolist(), xb[:pn].tolist()
    s = time.perf_counter()
    ref.knn_pure(ql, kl, K)
    t_py = (time.perf_counter() - s) * (Q * N) / (pq * pn)
    res["python_s"] = t_py
    rows.append(
        {
            "task": task,
            "impl": f"pure Python ({pq} x {pn:,} keys, scaled)",
            "time": fmt_time(t_py),
            "vs memscore": ratio(t_py),
        }
    )

    # One-shot call including the index build, against faiss add + search (interleaved,
    # after a warm-up of each, like the searches above).
    def faiss_oneshot():
        f = faiss.IndexFlatL2(D)
        f.add(xb)
        return f.search(xq, K)

    t1_ms, t1_f = [], []
    for _ in range(reps + 1):
        s = time.perf_counter()
        memscore.knn(xq, xb, K)
        t1_ms.append(time.perf_counter() - s)
        s = time.perf_counter()
        faiss_oneshot()
        t1_f.append(time.perf_counter() - s)
    t_one, t_fone = float(np.median(t1_ms[1:])), float(np.median(t1_f[1:]))
    res["memscore_oneshot_s"] = t_one
    res["faiss_oneshot_s"] = t_fone
    task1 = "same, one-shot (index build included)"
    rows.append({"task": task1, "impl": "memscore.knn", "time": fmt_time(t_one), "vs memscore": "1.0x"})
    rows.append(
        {
            "task": task1,
            "impl": "faiss IndexFlatL2 add + search",
            "time": fmt_time(t_fone),
            "vs memscore": f"{t_fone / t_one:.2f}x",
        }
    )

    # 2. ResMem predict_proba end to end.
    ytr = rng.integers(0, C, N)
    ztr = rng.standard_normal((N, C)).astype(np.float32)
    zq = rng.standard_normal((Q, C)).astype(np.float32)
    sigma = 10.0
    model = memscore.ResMem(k=K, sigma=sigma, normalize=False).fit(xb, ytr, ztr)

    def baseline():
        d, i = fidx.search(xq, K)
        p = ref.softmax(zq)
        r = ref.resmem_residuals(ytr, ztr)
        w = ref.softmax(-d.astype(np.float64) / sigma, axis=1)
        return p + np.einsum("qk,qkc->qc", w, r[i])

    t_rm = t_rb = 0.0
    trm, trb = [], []
    for _ in range(reps + 1):
        s = time.perf_counter()
        p_ms = model.predict_proba(xq, zq)
        trm.append(time.perf_counter() - s)
        s = time.perf_counter()
        p_b = baseline()
        trb.append(time.perf_counter() - s)
    t_rm, t_rb = float(np.median(trm[1:])), float(np.median(trb[1:]))
    res.update(resmem_s=t_rm, resmem_faiss_numpy_s=t_rb, resmem_max_abs_diff=float(np.abs(p_ms - p_b).max()))
    task2 = f"ResMem predict_proba, N={N:,}, Q={Q:,}, C={C}, k={K}"
    rows.append({"task": task2, "impl": "memscore ResMem (exact)", "time": fmt_time(t_rm), "vs memscore": "1.0x"})
    rows.append(
        {
            "task": task2,
            "impl": "faiss IndexFlatL2 + numpy",
            "time": fmt_time(t_rb),
            "vs memscore": f"{t_rb / t_rm:.2f}x",
        }
    )

    print(table(rows, ["task", "impl", "time", "vs memscore"]))
    print()
    print(
        f"neighbour sets vs faiss: {same}/{Q} rows identical, {ties} differ only at ties of the k-th distance, "
        f"{bad} real mismatches; ResMem vs baseline max |diff| = {res['resmem_max_abs_diff']:.2e}"
    )
    print(
        f"index build: memscore {fmt_time(res['memscore_build_s'])}, faiss {fmt_time(res['faiss_build_s'])}; "
        f"load after: {os.getloadavg()}"
    )
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"machine": machine(), **res}, f, indent=2)


if __name__ == "__main__":
    main()
