"""LiRA with augmented queries on a real run set: a residual 1-D CNN + BatchNorm on MNIST-1D,
``--runs`` runs on balanced halves, every run's confidence recorded on the 9 shift views
(``query_augment="shift"``: shifts 0, -4..-1, 1..4); membership AUC and TPR at low FPR with
K = 1 (identity), 2 and 9 views, online and offline.

    nice -n 10 python benches/lira_views_mnist1d.py OUT_DIR
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import memscore
from memscore import RunStore
from memscore.datasets import mnist1d
from memscore.models import resnet1d
from memscore.train import SubsetPlan, create_store, train_runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--runs", type=int, default=64)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=20)
    a = ap.parse_args()
    d = mnist1d(a.samples, 0.0, seed=0)
    plan = SubsetPlan(d.n_train, a.runs, keep=0.5, seed=0)
    train, test = (d.x_train, d.y_train), (d.x_test, d.y_test)
    path = a.out / "runs"
    store = RunStore.open(path) if (path / "manifest.json").is_file() else create_store(path, train, test, n_classes=10)
    train_runs(lambda: resnet1d(10, width=a.width), train, test, plan, store, epochs=a.epochs, batch_size=50, lr=0.1,
               weight_decay=5e-4, schedule="cosine", augment="shift", query_augment="shift", ensemble=64,
               device="cpu", progress=False)  # fmt: skip
    masks, views = store.masks(), store.outcomes("train", "phi_views")
    for k in (1, 2, 9):
        for online in (True, False):
            m = memscore.membership_metrics(memscore.lira(masks, views[:, :, :k], online=online), masks)
            print(json.dumps({"views": k, "online": online, **m.as_dict()}), flush=True)


if __name__ == "__main__":
    main()
