"""Memorization across model widths (after Lukasik et al. 2023, "What do larger image
classifiers memorise?"): a residual 1-D CNN with BatchNorm on MNIST-1D with 10% flipped
labels, trained with random-shift augmentation (``--max-shift``) and a decaying (cosine) schedule, ``--runs``
runs per width on random halves of the training set; per width: test accuracy and the
AUROC of memorization for the flipped labels; across widths: the fractions of examples whose
memorization decreases, increases or is cap-shaped.

    nice -n 10 python benches/width_sweep_mnist1d.py OUT_DIR            # train (resumable), report
    python benches/width_sweep_mnist1d.py OUT_DIR --report-only         # report what is trained

An example's trajectory (its memorization at each width, in increasing width) is
``cap-shaped`` when an interior width exceeds both ends by more than ``--tol``; otherwise
``decreasing`` / ``increasing`` when the last width is below / above the first by more than
``--tol``; otherwise ``flat``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from memscore import RunStore, membership_metrics
from memscore.datasets import mnist1d
from memscore.models import resnet1d
from memscore.train import SubsetPlan, create_store, train_runs
from memscore.train.augment import Shift


def trajectory_kinds(mem: np.ndarray, tol: float) -> dict[str, float]:
    """Fractions of examples (columns of ``mem``, widths x examples) by trajectory shape."""
    ok = np.isfinite(mem).all(0)
    m = mem[:, ok]
    ends = np.maximum(m[0], m[-1])
    cap = (m[1:-1].max(0) - ends > tol) if m.shape[0] > 2 else np.zeros(m.shape[1], bool)
    d = m[-1] - m[0]
    dec, inc = ~cap & (d < -tol), ~cap & (d > tol)
    n = max(1, m.shape[1])
    return {"decreasing": dec.sum() / n, "increasing": inc.sum() / n, "cap": cap.sum() / n,
            "flat": (~cap & ~dec & ~inc).sum() / n, "examples": int(m.shape[1])}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--widths", type=int, nargs="+", default=[2, 4, 8, 16, 32])
    ap.add_argument("--runs", type=int, default=64)
    ap.add_argument("--samples", type=int, default=1000, help="MNIST-1D examples generated (80%% train)")
    ap.add_argument("--noise", type=float, default=0.1)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--max-shift", type=int, default=1, help="random shifts of up to this many positions (0: none)")
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--tol", type=float, default=0.05)
    ap.add_argument("--report-only", action="store_true")
    a = ap.parse_args()
    d = mnist1d(a.samples, a.noise, seed=0)
    plan = SubsetPlan(d.n_train, a.runs, keep=0.5, seed=0)
    train, test = (d.x_train, d.y_train), (d.x_test, d.y_test)
    rows, mems = [], []
    for w in a.widths:
        path = a.out / f"width-{w}"
        t0 = time.perf_counter()
        if not a.report_only:
            store = (
                RunStore.open(path)
                if (path / "manifest.json").is_file()
                else create_store(path, train, test, n_classes=10)
            )
            train_runs(lambda w=w: resnet1d(10, width=w), train, test, plan, store, epochs=a.epochs,
                       batch_size=a.batch_size, lr=a.lr, momentum=0.9, weight_decay=a.weight_decay, schedule="cosine",
                       augment=Shift(a.max_shift) if a.max_shift else None, ensemble=64, device="cpu", progress=False)  # fmt: skip
        store = RunStore.open(path)
        mem = store.memorization()
        mems.append(mem)
        auc = membership_metrics(np.nan_to_num(mem, nan=0.0), d.corrupted).auc
        acc = float(store.outcomes("test", "correct").mean())
        train_correct, masks = store.outcomes("train", "correct"), store.masks()
        train_acc = float(train_correct[masks].mean())
        noisy_train_acc = float(train_correct[masks & d.corrupted[None]].mean())
        rows.append({"width": w, "runs": len(store), "test_accuracy": acc, "train_accuracy_in_runs": train_acc,
                     "train_accuracy_noisy_in_runs": noisy_train_acc,
                     "memorization_auroc_noisy": auc, "mean_mem_noisy": float(np.nanmean(mem[d.corrupted])),
                     "mean_mem_clean": float(np.nanmean(mem[~d.corrupted])), "seconds": time.perf_counter() - t0})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    kinds = trajectory_kinds(np.stack(mems), a.tol)
    print(json.dumps({"trajectories": kinds, "tol": a.tol}), flush=True)
    for sel, name in ((d.corrupted, "noisy"), (~d.corrupted, "clean")):
        print(json.dumps({f"trajectories_{name}": trajectory_kinds(np.stack(mems)[:, sel], a.tol)}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
