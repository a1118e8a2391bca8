"""Every per-example score of memscore against the numpy a user would write in an
afternoon, a peer library where one is installed, and the memory-bandwidth floor (issue 28).

All in one process, on the same data, with 2 threads for memscore and for BLAS
(threadpoolctl); each time is the median of ``--repeats`` timings (default 3) in a block
after a pause and one untimed call (calls under 20 ms: the mean of a batch), following one
call of each whose results are checked: memscore and the numpy form must
agree (``allclose``) before a row is reported. Prints one Markdown table (``python
benches/bench_floor.py``; ``--quick`` for a smoke run on tiny sizes, ``--json`` to keep the
numbers).

- numpy: the obvious vectorized form, conversions included (``M.astype(float32)`` and a
  float32 GEMM for influence and Banzhaf; bool sums along the runs for memorization,
  hold-out accuracy and Data-OOB; for LiRA a sort of each side along the runs and the order
  statistics around the median picked per target; for RMIA a loop over targets with a
  ``searchsorted`` of the population ratios).
- floor: the bytes the score cannot avoid moving (inputs read, result written), divided
  by the read bandwidth measured in this process (a large numpy sum, on one and on two
  threads, the faster). Two floors: masks and bool outcomes at one bit each (packed, as a
  :class:`memscore.RunStore` keeps them), and the inputs as this benchmark passes them
  (bool arrays at a byte per value), which memscore has to read.
- peer: pyDVL, OpenDataVal, dattri and privacy-meter are looked for; none takes
  precomputed runs (they train through their own utility / model objects), so where one is
  installed it is only named.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _util import fmt_time, machine, median_time, table  # noqa: E402

import memscore  # noqa: E402

THREADS = 2
PEERS = ("pydvl", "opendataval", "dattri", "privacy_meter")


@dataclass
class Case:
    """One row: a score at one size, its two implementations and the bytes it must move."""

    score: str
    size: str
    ms: Callable[[], Any]
    numpy: Callable[[], Any]
    bytes_packed: float
    bytes_given: float
    rtol: float = 1e-7
    atol: float = 1e-9


def read_bandwidth() -> float:
    """Read bandwidth in bytes/s: a 512 MiB float64 sum, on one thread and split over two
    (numpy releases the GIL in the reduction); the faster, median of 3."""
    a = np.ones(2**26)
    halves = np.array_split(a, THREADS)
    one = median_time(lambda: a.sum(), 3)
    with ThreadPoolExecutor(THREADS) as pool:
        two = median_time(lambda: list(pool.map(np.sum, halves)), 3)
    return a.nbytes / min(one, two)


def fmt(s: float) -> str:
    """A time, in microseconds below a millisecond."""
    return f"{s * 1e6:.0f} µs" if s < 1e-3 else fmt_time(s)


def _div(num: Any, den: Any) -> Any:
    with np.errstate(divide="ignore", invalid="ignore"):
        return num / den


# ---------------------------------------------------------------- the numpy forms


def np_memorization(m: np.ndarray, o: np.ndarray) -> np.ndarray:
    n_in = m.sum(0)
    s_in = (m & o).sum(0) if o.dtype == bool else np.where(m, o, 0.0).sum(0)
    return _div(s_in, n_in) - _div(o.sum(0) - s_in, m.shape[0] - n_in)


def np_holdout(m: np.ndarray, o: np.ndarray) -> np.ndarray:
    held = ~m
    s = (o & held).sum(0) if o.dtype == bool else np.where(held, o, 0.0).sum(0)
    return _div(s, held.sum(0))


def np_data_oob(w: np.ndarray, o: np.ndarray) -> np.ndarray:
    held = w == 0
    return _div((o & held).sum(0), held.sum(0))


def np_influence(m: np.ndarray, y: np.ndarray) -> np.ndarray:
    mf, yf = m.astype(np.float32), y.astype(np.float32)
    n_in = mf.sum(0)
    s_in = yf.T @ mf
    return _div(s_in, n_in) - _div(yf.sum(0)[:, None] - s_in, m.shape[0] - n_in)


def np_banzhaf(m: np.ndarray, u: np.ndarray, block: int = 4096) -> np.ndarray:
    # In blocks of runs only to bound the float32 copy of the masks (4 bytes per bit). The
    # utility is centered first (the difference of means does not change) so that float32
    # sums of thousands of utilities near 0.8 keep the digits of a 1e-4 value.
    u32 = (u - u.mean()).astype(np.float32)
    s_in = np.zeros(m.shape[1], np.float32)
    n_in = np.zeros(m.shape[1], np.float32)
    for r0 in range(0, m.shape[0], block):
        mf = m[r0 : r0 + block].astype(np.float32)
        s_in += u32[r0 : r0 + block] @ mf
        n_in += mf.sum(0)
    return _div(s_in, n_in) - _div(u32.sum() - s_in, m.shape[0] - n_in)


def _loo_side(side: np.ndarray, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per (target, example) of one side (in or out): count, median and population std of
    the side without the target's own value (it is on that side where ``side``)."""
    runs, cols = phi.shape
    s = np.sort(np.where(side, phi, np.nan), axis=0)  # NaN (the other side) sorts last
    n = side.sum(0)
    tot = np.where(side, phi, 0.0).sum(0)
    totsq = np.where(side, phi * phi, 0.0).sum(0)
    n2 = n - side
    mean2 = _div(tot - np.where(side, phi, 0.0), n2)
    var2 = _div(totsq - np.where(side, phi * phi, 0.0), n2) - mean2 * mean2
    idx = np.arange(cols)

    def kth(k: np.ndarray) -> np.ndarray:
        # The k-th of the side less the target's value: the k-th of all if it is below
        # that value, else the (k + 1)-th.
        a = s[np.clip(k, 0, runs - 1), idx]
        b = s[np.clip(k + 1, 0, runs - 1), idx]
        return np.where(side & ~(a < phi), b, a)

    med = 0.5 * (kth((n2 - 1) // 2) + kth(n2 // 2))
    return n2, med, np.sqrt(np.maximum(var2, 0.0))


def np_lira(m: np.ndarray, phi: np.ndarray, online: bool, cols: int = 5000) -> np.ndarray:
    from scipy.special import log_ndtr

    out = np.empty(phi.shape)
    for c0 in range(0, phi.shape[1], cols):  # in column blocks only to bound the temporaries
        mm, p = m[:, c0 : c0 + cols], phi[:, c0 : c0 + cols]
        no, mo, so = _loo_side(~mm, p)
        so = np.maximum(so, 1e-12)
        zo = (p - mo) / so
        if not online:
            out[:, c0 : c0 + cols] = np.where(no > 0, log_ndtr(zo), np.nan)
            continue
        ni, mi, si = _loo_side(mm, p)
        si = np.maximum(si, 1e-12)
        zi = (p - mi) / si
        score = np.log(so) - np.log(si) - 0.5 * zi**2 + 0.5 * zo**2
        out[:, c0 : c0 + cols] = np.where((ni > 0) & (no > 0), score, np.nan)
    return out


def np_rmia(m: np.ndarray, p: np.ndarray, z: np.ndarray, online: bool, a: float = 0.3) -> np.ndarray:
    runs = p.shape[0]

    def marginal(mean: np.ndarray) -> np.ndarray:
        return mean if online else ((1 + a) * mean + (1 - a)) / 2

    zs, ps = z.sum(0), (p.sum(0) if online else np.where(m, 0.0, p).sum(0))
    n_out = (~m).sum(0)
    out = np.full(p.shape, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        for t in range(runs):
            rz = z[t] / marginal((zs - z[t]) / (runs - 1))
            rz = np.sort(rz[~np.isnan(rz)])
            if online:
                mean = (ps - p[t]) / (runs - 1)
            else:
                own = ~m[t]
                mean = (ps - np.where(own, p[t], 0.0)) / (n_out - own)
            rx = p[t] / marginal(mean)
            if rz.size:
                out[t] = np.where(np.isnan(rx), np.nan, np.searchsorted(rz, rx, side="right") / rz.size)
    return out


def np_knn_shapley(x: np.ndarray, y: np.ndarray, q: np.ndarray, yq: np.ndarray, k: int) -> np.ndarray:
    n = x.shape[0]
    d = (x * x).sum(1)[None, :] - 2.0 * (q @ x.T)  # + |q|² does not change the order
    order = np.argsort(d, axis=1, kind="stable")
    match = (y[order] == yq[:, None]).astype(np.float64)
    rank = np.arange(1, n)  # 1-based rank of positions 0 .. n-2
    steps = (match[:, :-1] - match[:, 1:]) / k * np.minimum(k, rank) / rank
    s = np.empty_like(match)
    s[:, -1] = match[:, -1] / max(n, k)
    s[:, :-1] = s[:, -1:] + np.cumsum(steps[:, ::-1], axis=1)[:, ::-1]
    vals = np.empty_like(s)
    np.put_along_axis(vals, order, s, axis=1)
    return vals.mean(0)


def np_logit_confidence(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    zy = np.take_along_axis(z, y[:, None], 1)[:, 0]
    others = z.copy()
    np.put_along_axis(others, y[:, None], -np.inf, 1)
    top = others.max(1)
    return zy - (top + np.log(np.exp(others - top[:, None]).sum(1)))


# ---------------------------------------------------------------- the cases


def runs_cases(quick: bool, rng: np.random.Generator) -> list[Case]:
    r, n = (200, 3000) if quick else (4000, 20_000)
    m = rng.random((r, n)) < 0.5
    o = rng.random((r, n)) < np.where(m, 0.95, 0.75)
    of = np.where(o, 0.9, 0.2) + 0.1 * rng.random((r, n))
    w = rng.poisson(1.0, size=(r, n)).astype(np.uint16)  # SubsetPlan's draw counts
    ow = rng.random((r, n)) < np.where(w > 0, 0.95, 0.75)
    rn, size = r * n, f"R={r:,}, N={n:,}"
    return [
        Case("memorization (bool)", size, lambda: memscore.memorization(m, o), lambda: np_memorization(m, o),
             rn / 4 + 8 * n, 2 * rn + 8 * n),
        Case("memorization (float)", size, lambda: memscore.memorization(m, of), lambda: np_memorization(m, of),
             rn / 8 + 8 * rn + 8 * n, 9 * rn + 8 * n),
        Case("holdout_accuracy / C-score (bool)", size, lambda: memscore.holdout_accuracy(m, o),
             lambda: np_holdout(m, o), rn / 4 + 8 * n, 2 * rn + 8 * n),
        Case("holdout_accuracy / C-score (float)", size, lambda: memscore.holdout_accuracy(m, of),
             lambda: np_holdout(m, of), rn / 8 + 8 * rn + 8 * n, 9 * rn + 8 * n),
        Case("data_oob (uint16 counts, bool)", size, lambda: memscore.data_oob(w, ow), lambda: np_data_oob(w, ow),
             rn / 4 + 8 * n, 3 * rn + 8 * n),
    ]  # fmt: skip


def influence_cases(quick: bool, rng: np.random.Generator) -> list[Case]:
    sizes = [(200, 2000, t) for t in (1, 16, 64)] if quick else [(4000, 20_000, t) for t in (1, 16, 256)]
    sizes.append((100, 2000, 300) if quick else (2000, 20_000, 5000))
    out = []
    for r, n, t in sizes:
        m = rng.random((r, n)) < 0.5
        yb = rng.random((r, t)) < 0.8
        yf = np.where(yb, 0.9, 0.1) + 0.05 * rng.random((r, t))
        size = f"R={r:,}, N={n:,}, T={t:,}"
        res = 4 * t * n  # the float32 (T, N) result
        out += [
            Case("influence (bool)", size, lambda m=m, y=yb: memscore.influence(m, y),
                 lambda m=m, y=yb: np_influence(m, y), r * n / 8 + r * t / 8 + res, r * n + r * t + res,
                 rtol=1e-4, atol=1e-5),
            Case("influence (float)", size, lambda m=m, y=yf: memscore.influence(m, y),
                 lambda m=m, y=yf: np_influence(m, y), r * n / 8 + 8 * r * t + res, r * n + 8 * r * t + res,
                 rtol=1e-4, atol=1e-5),
        ]  # fmt: skip
    return out


def banzhaf_cases(quick: bool, rng: np.random.Generator) -> list[Case]:
    sizes = [(256, 500), (600, 3000)] if quick else [(256, 500), (4000, 20_000), (20_000, 50_000)]
    out = []
    for r, n in sizes:
        m = rng.random((r, n)) < 0.5
        u = 0.8 + 0.01 * rng.standard_normal(r) + 0.001 * m[:, :50].sum(1)
        out.append(
            Case("banzhaf", f"R={r:,}, N={n:,}", lambda m=m, u=u: memscore.banzhaf(m, u),
                 lambda m=m, u=u: np_banzhaf(m, u), r * n / 8 + 8 * r + 8 * n, r * n + 8 * r + 8 * n,
                 rtol=1e-4, atol=2e-6)
        )  # fmt: skip
    return out


def membership_cases(quick: bool, rng: np.random.Generator) -> list[Case]:
    r, n, zn = (64, 3000, 500) if quick else (1000, 20_000, 5000)
    m = rng.random((r, n)) < 0.5
    phi = rng.normal(size=(r, n)) + 1.5 * m
    p = memscore.true_class_probability(phi - 1.0)
    z = memscore.true_class_probability(rng.normal(size=(r, zn)) - 1.0)
    rn, size = r * n, f"R={r:,}, N={n:,}"
    out = []
    for online in (True, False):
        kind = "online" if online else "offline"
        out += [
            Case(f"lira {kind} (exact leave-one-out)", size,
                 lambda o=online: memscore.lira(m, phi, online=o), lambda o=online: np_lira(m, phi, o),
                 rn / 8 + 16 * rn, 17 * rn, rtol=1e-7, atol=1e-7),
            Case(f"rmia {kind}", f"{size}, Z={zn:,}",
                 lambda o=online: memscore.rmia(m, p, z, online=o), lambda o=online: np_rmia(m, p, z, o),
                 rn / 8 + 16 * rn + 8 * r * zn, 17 * rn + 8 * r * zn, rtol=0.0, atol=0.0),
        ]  # fmt: skip
    return out


def other_cases(quick: bool, rng: np.random.Generator) -> list[Case]:
    n, t, d, k = (2000, 50, 16, 5) if quick else (20_000, 500, 32, 5)
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = rng.integers(0, 10, n)
    q = rng.standard_normal((t, d)).astype(np.float32)
    yq = rng.integers(0, 10, t)
    rows, c = (20_000, 10) if quick else (2_000_000, 10)
    logits = rng.standard_normal((rows, c)).astype(np.float32)
    labels = rng.integers(0, c, rows)
    return [
        Case("knn_shapley (compute-bound)", f"N={n:,}, T={t:,}, d={d}, k={k}",
             lambda: memscore.knn_shapley(x, y, q, yq, k=k, threads=THREADS),
             lambda: np_knn_shapley(x, y, q, yq, k), 4 * (n + t) * d + 8 * (n + t) + 8 * n,
             4 * (n + t) * d + 8 * (n + t) + 8 * n, rtol=1e-4, atol=1e-6),
        Case("logit_confidence", f"M={rows:,}, C={c}", lambda: memscore.logit_confidence(logits, labels),
             lambda: np_logit_confidence(logits, labels), 4 * rows * c + 16 * rows, 4 * rows * c + 16 * rows,
             rtol=1e-5, atol=1e-5),
    ]  # fmt: skip


GROUPS = (runs_cases, influence_cases, banzhaf_cases, membership_cases, other_cases)


#: Seconds of pause before each timed block (BLAS threads spin on after a GEMM; see
#: :func:`_util.median_time`).
SETTLE = 0.5
#: Calls shorter than this are timed in batches that last about as long.
BATCH_S = 0.02


def check(case: Case, got: Any, want: Any) -> None:
    """memscore and the numpy form must agree before the row counts."""
    np.testing.assert_allclose(
        np.asarray(got, dtype=np.float64),
        np.asarray(want, dtype=np.float64),
        rtol=case.rtol,
        atol=case.atol,
        equal_nan=True,
        err_msg=f"{case.score} {case.size}: memscore and numpy disagree",
    )


def run(case: Case, reps: int, bw: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    got = case.ms()
    first = time.perf_counter() - t0
    check(case, got, case.numpy())  # also the warm-up call of each
    # Each side in a block of `reps` timings after a pause (OpenBLAS's threads spin on
    # after numpy's GEMM and take a core from what runs next). Interleaving the two sides
    # was tried and dropped: numpy right after memscore, or after a pause of its own, ran
    # 2-7x slower than in a block (memscore's times did not move). Calls shorter than
    # 20 ms are timed as the mean of a batch of calls after one untimed call (a single
    # call after the pause times threads waking up: R=256 Banzhaf took 372 us so, 22 us
    # in a loop).
    batch = max(1, int(BATCH_S / max(first, 1e-9))) if first < BATCH_S else 1
    times: tuple[list[float], list[float]] = ([], [])
    for fn, out in ((case.ms, times[0]), (case.numpy, times[1])):
        time.sleep(SETTLE)
        fn()
        for _ in range(reps):
            t = time.perf_counter()
            for _ in range(batch):
                fn()
            out.append((time.perf_counter() - t) / batch)
    t_ms, t_np = statistics.median(times[0]), statistics.median(times[1])
    floor, floor_given = case.bytes_packed / bw, case.bytes_given / bw
    return {
        "score": case.score,
        "size": case.size,
        "memscore_s": t_ms,
        "numpy_s": t_np,
        "floor_s": floor,
        "floor_given_s": floor_given,
        "memscore": fmt(t_ms),
        "numpy": fmt(t_np),
        "numpy / memscore": f"{t_np / t_ms:.1f}x",
        "floor (1 bit)": fmt(floor),
        "memscore / floor": f"{t_ms / floor:.1f}x",
        "floor (as given)": fmt(floor_given),
        "memscore / floor as given": f"{t_ms / floor_given:.1f}x",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", help="run only the scores whose name contains this")
    ap.add_argument("--json", help="also write the rows here")
    a = ap.parse_args()
    from threadpoolctl import threadpool_limits

    memscore.set_num_threads(THREADS)
    rng = np.random.default_rng(0)
    rows = []
    with threadpool_limits(THREADS):
        bw = read_bandwidth()
        for group in GROUPS:
            cases = [c for c in group(a.quick, rng) if a.only is None or a.only in c.score]
            for case in cases:
                rows.append(run(case, a.repeats, bw))
                print(f"  {case.score}, {case.size}: {rows[-1]['memscore']} vs numpy {rows[-1]['numpy']}", flush=True)
            del cases
    info = memscore.cpu_info()
    peers = [p for p in PEERS if importlib.util.find_spec(p) is not None]
    print()
    print(f"machine: {machine()}")
    print(
        f"kernels: popcount {info['popcount_kernel']}, vector {info['vector_kernel']}; "
        f"threads: {THREADS} (memscore and BLAS); read bandwidth {bw / 1e9:.1f} GB/s; "
        f"medians of {a.repeats}; {time.strftime('%Y-%m-%d %H:%M')}"
    )
    print(
        "peer libraries: "
        + (", ".join(peers) + " installed (not comparable: they train through their own objects)" if peers else
           "none installed (pyDVL, OpenDataVal, dattri, privacy-meter looked for)")
    )  # fmt: skip
    print()
    cols = ["score", "size", "memscore", "numpy", "numpy / memscore", "floor (1 bit)", "memscore / floor",
            "floor (as given)", "memscore / floor as given"]  # fmt: skip
    print(table(rows, cols))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(
                {"machine": machine(), "cpu": info, "threads": THREADS, "bandwidth": bw, "rows": rows}, f, indent=2
            )


if __name__ == "__main__":
    main()
