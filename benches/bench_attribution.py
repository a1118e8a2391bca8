"""Benchmark of the datamodels solver: memscore (all targets at once, bit-packed masks)
vs scikit-learn's ``lasso_path`` per target, on the same data, the same λ path and the
same tolerance (``python benches/bench_attribution.py``; ``--quick`` for a smaller run).

Data: R=4,000 training runs over N=10,000 examples (keep 0.5), T=500 test examples whose
outcome is a planted sparse linear function of the mask (40 effects per target) plus
noise, 400 validation runs for the choice of λ, and 200 evaluation runs for the LDS.
Both solvers fit one λ path per target (``--lambdas`` points from ``lam_max`` down to
``--ratio · lam_max``) and keep the λ of the smallest validation MSE. memscore's row
kernels run at the machine's best vector level (``memscore.cpu_info()["vector_kernel"]``,
printed with the machine).

scikit-learn gets its fastest form: the masks centered once (float64, column-major, so no
per-fit copy), ``lasso_path`` with warm starts along the path, and no intercept (the
centering is it). It runs on a slice of the targets and is scaled to all T; the LDS of
both solutions is compared on that slice.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _util import fmt_time, machine  # noqa: E402

import memscore  # noqa: E402


def make_problem(r: int, n: int, t: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    w = np.zeros((t, n), dtype=np.float32)
    for k in range(t):
        w[k, rng.choice(n, 40, replace=False)] = rng.normal(scale=0.3, size=40)

    def runs(count: int) -> tuple[np.ndarray, np.ndarray]:
        m = rng.random((count, n)) < 0.5
        y = m.astype(np.float32) @ w.T + 1.0 + rng.normal(scale=1.0, size=(count, t)).astype(np.float32)
        return m, y.astype(np.float64)

    return runs(r), runs(r // 10), runs(200)


def sklearn_path(
    x_c: np.ndarray, x_mean: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray, args: argparse.Namespace
) -> tuple[np.ndarray, float]:
    """One target: ``lasso_path`` on the centered masks, λ chosen by validation MSE."""
    from sklearn.linear_model import lasso_path

    yc = y - y.mean()
    lam_max = np.abs(x_c.T @ yc).max() / x_c.shape[0]
    alphas = lam_max * args.ratio ** np.linspace(0, 1, args.lambdas)
    _, coefs, _ = lasso_path(x_c, yc, alphas=alphas, tol=args.tol, max_iter=1000)
    bias = y.mean() - x_mean @ coefs  # the intercept of each point on the path
    mse = ((yv[:, None] - xv @ coefs - bias) ** 2).mean(axis=0)
    k = int(np.argmin(mse))
    return coefs[:, k], float(bias[k])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="R=800, N=2,000, T=64")
    ap.add_argument("--lambdas", type=int, default=50)
    ap.add_argument("--ratio", type=float, default=0.01)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--slice", type=int, default=4, help="targets fitted by scikit-learn")
    ap.add_argument("--targets", type=int, default=500, help="T (a multiple of 32 fills memscore's blocks)")
    args = ap.parse_args()
    r, n, t = (800, 2000, 64) if args.quick else (4000, 10_000, args.targets)
    (m, y), (vm, vy), (em, ey) = make_problem(r, n, t)
    print(f"R={r}, N={n}, T={t}, {args.lambdas} λ down to {args.ratio} · lam_max, tol={args.tol}")
    kernel = memscore.cpu_info()["vector_kernel"]
    print(machine(), "| vector kernel:", kernel, "| load:", open("/proc/loadavg").read().split()[:3])

    t0 = time.perf_counter()
    dm = memscore.datamodels(
        m,
        y,
        val_masks=vm,
        val_outcomes=vy,
        n_lambdas=args.lambdas,
        lambda_ratio=args.ratio,
        tol=args.tol,
        patience=None,
    )
    t_ms = time.perf_counter() - t0
    print(f"memscore: {fmt_time(t_ms)} for {t} targets ({dm.sweeps} sweeps)", flush=True)

    targets = np.arange(args.slice)
    x = np.asfortranarray(m, dtype=np.float64)
    t0 = time.perf_counter()
    x_mean = x.mean(axis=0)
    x -= x_mean
    xv = vm.astype(np.float64)
    sk = [sklearn_path(x, x_mean, y[:, k], xv, vy[:, k], args) for k in targets]
    t_sk = (time.perf_counter() - t0) * t / targets.size
    print(f"scikit-learn: {fmt_time(t_sk)} scaled to {t} targets (measured on {targets.size})", flush=True)

    w_sk = np.stack([w for w, _ in sk])
    lds_ms = memscore.lds(dm.weights[targets], em, ey[:, targets], n_boot=0)
    lds_sk = memscore.lds(w_sk, em, ey[:, targets], n_boot=0)
    print(
        f"\n| R × N × T | memscore | scikit-learn (scaled) | ratio | LDS memscore / sklearn (slice of {targets.size}) |"
    )
    print("|---|---|---|---|---|")
    print(
        f"| {r:,} × {n:,} × {t} | {fmt_time(t_ms)} | {fmt_time(t_sk)} | {t_sk / t_ms:.1f}× "
        f"| {lds_ms.mean:.4f} / {lds_sk.mean:.4f} |"
    )
    print("load after:", open("/proc/loadavg").read().split()[:3])


if __name__ == "__main__":
    main()
