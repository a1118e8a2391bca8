"""Privacy-audit benchmark: validity on null scores, tightness on Gaussian scores, and time.

1. Validity (issue 31): over 1,000 seeds of null scores (independent of membership), the
   share of experiments with ε̂ > 0 must be at most α + 0.015, for every estimator (Clopper–
   Pearson, GDP, one-run with δ = 0 and δ > 0) and every threshold strategy (fixed, split,
   Bonferroni grid; one direction or both).
2. Tightness: Gaussian scores N(μ, 1) for members, N(0, 1) for non-members, 10^6 trials per
   class: the GDP estimator (split threshold) recovers ε(μ, δ) within 10%.
3. Time: epsilon_lower_bound and one_run_epsilon vs the pure-Python reference
   (memscore.reference.audit) on the same inputs.

    python benches/bench_audit.py            # the full run
    python benches/bench_audit.py --quick    # 100 seeds, 10^5 trials per class
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import fmt_time, machine, median_time, table  # noqa: E402

from memscore import audit  # noqa: E402
from memscore.reference import audit as ref  # noqa: E402

ALPHA = 0.05
GRID = np.linspace(-2.0, 2.0, 9)


def validity(seeds: int, n: int) -> tuple[list[dict[str, object]], bool]:
    rows, ok = [], True
    cases: list[tuple[str, object]] = []
    for method in ("clopper-pearson", "gdp"):
        delta = 1e-5 if method == "gdp" else 0.0
        for name, threshold in (("fixed", 0.0), ("split", None), ("bonferroni (9)", GRID)):
            for direction in ("greater", "both"):
                cases.append(
                    (
                        f"{method}, {name}, {direction}",
                        dict(method=method, delta=delta, threshold=threshold, direction=direction),
                    )
                )
    for delta in (0.0, 1e-5):
        cases.append((f"one-run (k = 20 + 20), delta = {delta:g}", dict(one_run=True, delta=delta)))
    for label, kw in cases:
        assert isinstance(kw, dict)
        t0 = time.perf_counter()
        positive = 0
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            s, m = rng.normal(size=n), rng.random(n) < 0.5
            if kw.get("one_run"):
                e = audit.one_run_epsilon(s, m, k_pos=20, k_neg=20, delta=kw["delta"], alpha=ALPHA).epsilon
            else:
                e = audit.epsilon_lower_bound(s, m, alpha=ALPHA, seed=seed, **kw).epsilon
            positive += e > 0
        share = positive / seeds
        passed = share <= ALPHA + 0.015
        ok &= passed
        rows.append(
            {
                "estimator": label,
                "share eps > 0": f"{share:.3f}",
                "limit": f"{ALPHA + 0.015:.3f}",
                "ok": "yes" if passed else "NO",
                "time": fmt_time(time.perf_counter() - t0),
            }
        )
    return rows, ok


def tightness(per_class: int) -> tuple[list[dict[str, object]], bool]:
    rows, ok = [], True
    for mu in (0.5, 1.0, 2.0):
        for delta in (1e-5, 1e-3):
            rng = np.random.default_rng(int(mu * 100) + int(-np.log10(delta)))
            s = np.r_[rng.normal(mu, 1.0, per_class), rng.normal(0.0, 1.0, per_class)]
            m = np.arange(2 * per_class) < per_class
            t0 = time.perf_counter()
            r = audit.epsilon_lower_bound(s, m, method="gdp", delta=delta, seed=0)
            took = time.perf_counter() - t0
            truth = audit.gdp_epsilon(mu, delta)
            rel = (truth - r.epsilon) / truth
            passed = 0 <= rel <= 0.10
            ok &= passed
            rows.append(
                {
                    "mu": mu,
                    "delta": f"{delta:g}",
                    "true eps": f"{truth:.4f}",
                    "mu lower bound": f"{r.mu:.4f}",
                    "eps lower bound": f"{r.epsilon:.4f}",
                    "shortfall": f"{100 * rel:.2f}%",
                    "ok (<= 10%)": "yes" if passed else "NO",
                    "time": fmt_time(took),
                }
            )
    return rows, ok


def timing() -> list[dict[str, object]]:
    rng = np.random.default_rng(0)
    rows = []
    n = 2000
    n_split = 300  # the reference's split tries every threshold: O(n^2) bisections
    m = rng.random(n) < 0.5
    s = rng.normal(size=n) + 2 * m
    sl, ml = s.tolist(), m.tolist()
    for label, fast, slow in (
        (
            f"epsilon_lower_bound, fixed threshold, n = {n}",
            lambda: audit.epsilon_lower_bound(s, m, threshold=1.0),
            lambda: ref.epsilon_fixed(sl, ml, 1.0),
        ),
        (
            f"epsilon_lower_bound, split, n = {n_split}",
            lambda: audit.epsilon_lower_bound(s[:n_split], m[:n_split]),
            lambda: ref.epsilon_split(sl[:n_split], ml[:n_split]),
        ),
        (
            "one_run_epsilon, m = 1000, k = 100 + 100, delta = 0",
            lambda: audit.one_run_epsilon(s[:1000], m[:1000], k_pos=100, k_neg=100),
            lambda: ref.one_run_epsilon(sl[:1000], ml[:1000], 100, 100),
        ),
        (
            "one_run_epsilon, m = 1000, k = 100 + 100, delta = 1e-5",
            lambda: audit.one_run_epsilon(s[:1000], m[:1000], k_pos=100, k_neg=100, delta=1e-5),
            lambda: ref.one_run_epsilon(sl[:1000], ml[:1000], 100, 100, delta=1e-5),
        ),
    ):
        t_fast = median_time(fast, repeats=5)
        t_slow = median_time(slow, repeats=1, warmup=0)
        rows.append(
            {
                "case": label,
                "memscore": fmt_time(t_fast),
                "pure-Python reference": fmt_time(t_slow),
                "ratio": f"{t_slow / t_fast:,.0f}x",
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seeds", type=int, default=1000)
    ap.add_argument("--trials", type=int, default=200, help="trials (canaries) per null experiment")
    ap.add_argument("--per-class", type=int, default=1_000_000)
    args = ap.parse_args()
    seeds, per_class = (100, 100_000) if args.quick else (args.seeds, args.per_class)
    print(f"# memscore.audit benchmark\n\nmachine: {machine()}\n")
    print(f"## Validity: {seeds} seeds of {args.trials} null trials, alpha = {ALPHA}\n")
    rows, ok_v = validity(seeds, args.trials)
    print(table(rows, ["estimator", "share eps > 0", "limit", "ok", "time"]))
    print(f"\n## Tightness: GDP (split threshold), {per_class:,} trials per class\n")
    rows, ok_t = tightness(per_class)
    print(
        table(
            rows, ["mu", "delta", "true eps", "mu lower bound", "eps lower bound", "shortfall", "ok (<= 10%)", "time"]
        )
    )
    print("\n## Time\n")
    print(table(timing(), ["case", "memscore", "pure-Python reference", "ratio"]))
    if not (ok_v and ok_t):
        sys.exit("a check failed")


if __name__ == "__main__":
    main()
