"""Coverage of the bootstrap intervals of :func:`memscore.membership_metrics` on a known ROC.

    python benches/bench_membership_intervals.py                     # 1,000 replicates per setting
    python benches/bench_membership_intervals.py --replicates 200 --n-boot 200
    python benches/bench_membership_intervals.py --rows 4,5           # only the "runs" rows

Members score N(mu, 1), non-members N(0, 1): the true AUROC is Phi(mu / sqrt 2) and the
true TPR at FPR f is 1 - Phi(Phi^-1(1 - f) - mu). Each replicate draws fresh scores,
computes 95% intervals and checks whether they hold the truth; the table gives the share
that did (the goal: >= 93%), with a binomial 99% band of that share, and the seconds per
replicate. Each FPR level gets enough non-members for ~20 false positives at its threshold
(a TPR at FPR f cannot be estimated from fewer than ~1/f non-members, interval or not).
The "runs" rows score 2-D (runs x examples) trials, i.i.d., and check the interval that
resamples runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import binom, norm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import machine  # noqa: E402

import memscore  # noqa: E402

# (metric, FPR level or None, members, non-members, mu, unit)
SETTINGS = [
    ("auc", None, 2_000, 2_000, 1.0, "examples"),
    ("tpr_at_fpr", 0.01, 2_000, 2_000, 1.0, "examples"),
    ("tpr_at_fpr", 0.001, 4_000, 20_000, 2.0, "examples"),
    ("tpr_at_fpr", 0.0001, 4_000, 200_000, 2.0, "examples"),
    ("auc", None, 1_000, 1_000, 1.0, "runs"),
    ("tpr_at_fpr", 0.01, 1_000, 1_000, 1.0, "runs"),
]


def truth(metric: str, level: float | None, mu: float) -> float:
    if metric == "auc":
        return float(norm.cdf(mu / np.sqrt(2.0)))
    assert level is not None
    return float(norm.sf(norm.isf(level) - mu))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--replicates", type=int, default=1000)
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--ci", type=float, default=0.95)
    ap.add_argument("--rows", default=None, help="comma-separated row indices of SETTINGS (default: all)")
    args = ap.parse_args()
    rows = range(len(SETTINGS)) if args.rows is None else [int(r) for r in args.rows.split(",")]
    print(f"machine: {machine()}")
    print(f"{args.replicates} replicates, {args.n_boot} bootstrap replicates each, {args.ci:.0%} intervals\n")
    print("| metric | unit | members | non-members | mu | truth | coverage | 99% band | s / replicate |")
    print("|---|---|---:|---:|---:|---:|---:|---|---:|")
    for metric, level, n_pos, n_neg, mu, unit in (SETTINGS[r] for r in rows):
        want = truth(metric, level, mu)
        key = "auc" if level is None else f"tpr_at_fpr_{level:g}"
        levels = (0.01,) if level is None else (level,)
        hit = 0
        t0 = time.perf_counter()
        for rep in range(args.replicates):
            rng = np.random.default_rng(rep)
            if unit == "examples":
                members = np.r_[np.ones(n_pos, bool), np.zeros(n_neg, bool)]
            else:  # 40 runs, each a (run, example) trial member with probability n_pos / (n_pos + n_neg)
                members = rng.random((40, (n_pos + n_neg) // 40)) < n_pos / (n_pos + n_neg)
            scores = rng.normal(size=members.shape) + mu * members
            m = memscore.membership_metrics(
                scores, members, fpr_levels=levels, ci=args.ci, n_boot=args.n_boot, seed=rep
            )
            lo, hi = m.intervals[unit][key]
            hit += lo <= want <= hi
        per = (time.perf_counter() - t0) / args.replicates
        share = hit / args.replicates
        band = binom.ppf([0.005, 0.995], args.replicates, args.ci) / args.replicates
        print(
            f"| {key} | {unit} | {n_pos} | {n_neg} | {mu:g} | {want:.4f} | {share:.3f} "
            f"| {band[0]:.3f}-{band[1]:.3f} | {per:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
