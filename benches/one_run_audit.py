"""A one-run privacy audit (Steinke, Nasr & Jagielski 2023) of plain (non-private) training.

One MLP is trained with :mod:`memscore.train` on a Poisson-sampled half of the data
(``SubsetPlan(independent=True, keep=0.5)``), among which 1,000 canaries were marked by
:func:`memscore.audit.canaries`; the stored φ (logit-scaled confidence in the canary's
training label) scores each canary, and :func:`memscore.audit.one_run_epsilon` turns the
guesses on the ``k`` highest and ``k`` lowest scores into an ε lower bound at 95%
confidence. ``k`` is fixed before training (choosing it from the results voids the bound).

    python benches/one_run_audit.py                      # digits, 1,000 mislabelled canaries
    python benches/one_run_audit.py --dataset mnist1d    # MNIST-1D (8,000 training signals)
    python benches/one_run_audit.py --kind natural       # the canaries keep their labels

docs/audit.md quotes its output.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import machine  # noqa: E402

from memscore import membership_metrics  # noqa: E402
from memscore.audit import canaries, one_run_epsilon  # noqa: E402
from memscore.datasets import digits, mnist1d  # noqa: E402
from memscore.train import SubsetPlan, create_store, mlp, train_runs  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=("digits", "mnist1d"), default="digits")
    ap.add_argument("--canaries", type=int, default=1000)
    ap.add_argument("--kind", choices=("mislabel", "natural"), default="mislabel")
    ap.add_argument("--k", type=int, default=100, help="guesses on each side (k_pos = k_neg = k), fixed in advance")
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    t0 = time.perf_counter()
    if args.dataset == "digits":
        data = digits(label_noise=0.0, test_fraction=0.05, seed=args.seed)  # 1,707 training images
    else:
        data = mnist1d(n_samples=10_000, label_noise=0.0, seed=args.seed)  # 8,000 training signals
    plan = SubsetPlan(data.n_train, 1, keep=0.5, independent=True, seed=args.seed)
    marked = canaries(plan, args.canaries, kind=args.kind, labels=data.y_train, seed=args.seed)
    assert marked.labels is not None and marked.included is not None
    train = (data.x_train, marked.labels)
    n_features = int(np.prod(data.x_train.shape[1:]))
    with tempfile.TemporaryDirectory() as tmp:
        store = create_store(Path(tmp) / "store", train, n_classes=data.n_classes)
        t1 = time.perf_counter()
        train_runs(
            lambda: mlp(n_features, data.n_classes, width=args.width),
            train,
            None,
            plan,
            store,
            epochs=args.epochs,
            batch_size=64,
            lr=args.lr,
            optimizer="adam",
            seed=args.seed,
            progress=False,
        )
        t_train = time.perf_counter() - t1
        phi = store.outcomes("train", "phi")[0]
    t2 = time.perf_counter()
    scores, included = phi[marked.indices], marked.included[0]
    results = {
        d: one_run_epsilon(scores, included, k_pos=args.k, k_neg=args.k, alpha=args.alpha, delta=d) for d in (0.0, 1e-5)
    }
    t_audit = time.perf_counter() - t2
    total = time.perf_counter() - t0
    auc = membership_metrics(scores, included).auc

    print(
        f"# one-run audit: {args.dataset}, {args.canaries} {args.kind} canaries, one MLP (width {args.width}, {args.epochs} epochs of Adam)"
    )
    print(f"machine: {machine()}")
    print(
        f"training examples {data.n_train}, in the run {int(plan.masks.sum())}; canaries in the run {int(included.sum())}"
    )
    print(f"canary AUROC of phi: {auc:.4f}")
    print()
    print("| delta | guesses (k_pos + k_neg) | correct | eps lower bound (95%) |")
    print("|---|---|---|---|")
    for d, r in results.items():
        print(f"| {d:g} | {r.guesses} | {r.correct} | {r.epsilon:.3f} |")
    print()
    print(f"time: training {t_train:.1f} s, audit {t_audit * 1e3:.1f} ms, total (with data and store) {total:.1f} s")


if __name__ == "__main__":
    main()
