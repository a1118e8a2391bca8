"""Every label-issue detector on the same runs, and RMIA vs LiRA as references grow.

    python benches/bench_detectors.py                 # modular addition + digits, 256 runs each
    python benches/bench_detectors.py --runs 64       # smaller
    python benches/bench_detectors.py --stores DIR    # where the stores live (resumed if there)
    python benches/bench_detectors.py --max-runs 0    # score the stores as they are, train nothing
    python benches/bench_detectors.py --datasets mnist1d --bootstrap-runs 64   # + Data-OOB

For each embedded dataset (with its preset's corrupted / flipped labels) the script trains
``--runs`` runs into a store (``keep_logits=True``; runs already there are reused), then

1. ranks the training examples with every :func:`memscore.label_issues` method and with
   KNN-Shapley on the raw features (test split as validation, k=5), and reports each
   detector's AUROC for the corrupted labels (Data-OOB on a second store of
   ``--bootstrap-runs`` bootstrap runs), its precision among the top-n (n = the
   number of corrupted labels) and the seconds it took from the store;
2. attacks every run with RMIA (online, offline) and LiRA (online, offline, fixed
   variance) using the first ``m + 1`` runs (each target gets m references, leave-one-out)
   for m in 2, 4, 16, 64, and reports AUC and TPR at 0.1% / 1% FPR over all (run, example)
   pairs of those runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import machine, table  # noqa: E402

import memscore  # noqa: E402
from memscore.cli.runs import PRESETS, run_training  # noqa: E402
from memscore.runs.datasets import load_dataset  # noqa: E402
from memscore.runs.label_issues import LABEL_ISSUE_METHODS  # noqa: E402

#: Training settings that replace a dataset's preset here. MNIST-1D's preset (a residual
#: 1-D CNN with shifts, 30 epochs) takes ~2.6 s per run-epoch on 2 CPU cores, hours for a
#: few hundred runs; the table uses a small MLP instead.
SMALL_MODELS: dict[str, dict[str, Any]] = {
    "mnist1d": dict(
        model="mlp", width=128, depth=2, augment="none", epochs=30, lr=0.05, weight_decay=0.0,
        schedule="constant", snapshot_epochs=[1, 5, 10, 30],
    ),
}  # fmt: skip


def detector_rows(store: memscore.RunStore, data: Any, boot: memscore.RunStore | None = None) -> list[dict[str, Any]]:
    truth = data.corrupted
    n_bad = int(truth.sum())
    rows = []

    def add(name: str, fn: Any) -> None:
        t0 = time.perf_counter()
        score = np.asarray(fn(), dtype=np.float64)
        dt = time.perf_counter() - t0
        ok = ~np.isnan(score)
        auc = memscore.membership_metrics(score[ok], truth[ok]).auc
        top = np.argsort(-np.where(ok, score, -np.inf), kind="stable")[:n_bad]
        rows.append(
            {
                "detector": name,
                "AUROC": f"{auc:.3f}",
                f"precision@{n_bad}": f"{truth[top].mean():.3f}",
                "time (s)": f"{dt:.2f}",
                "undefined": int((~ok).sum()),
            }
        )

    feats = (data.x_train, data.x_test)  # KNN-Shapley on the raw inputs, test split as validation
    for m in LABEL_ISSUE_METHODS:
        if m == "data_oob":  # needs bootstrap runs: scored on the bootstrap store below
            continue
        label = f"{m} (raw inputs, k=5)" if m == "knn_shapley" else m
        add(label, lambda m=m: memscore.label_issues(store, m, knn_features=feats).sort("index")[m].to_numpy())
    if boot is not None:
        add(
            f"data_oob ({len(boot)} bootstrap runs)",
            lambda: memscore.label_issues(boot, "data_oob").sort("index")["data_oob"].to_numpy(),
        )
    return rows


def attack_rows(store: memscore.RunStore, refs: list[int]) -> list[dict[str, Any]]:
    masks = store.masks()
    phi = store.outcomes("train", "phi")
    p = memscore.true_class_probability(phi)
    z = memscore.true_class_probability(store.outcomes("test", "phi"))
    rows = []
    for m in refs:
        r = m + 1
        if r > masks.shape[0]:
            continue
        attacks: dict[str, tuple[Any, Any, dict[str, Any]]] = {
            "RMIA online": (memscore.rmia, p, {}),
            "RMIA offline (a=0.3)": (memscore.rmia, p, {"online": False}),
            "LiRA online": (memscore.lira, phi, {}),
            "LiRA offline": (memscore.lira, phi, {"online": False}),
            "LiRA online, fixed variance": (memscore.lira, phi, {"fixed_variance": True}),
            "LiRA offline, fixed variance": (memscore.lira, phi, {"online": False, "fixed_variance": True}),
        }
        for name, (attack, signal, kw) in attacks.items():
            t0 = time.perf_counter()
            extra = (z[:r],) if attack is memscore.rmia else ()
            s = attack(masks[:r], signal[:r], *extra, **kw)
            dt = time.perf_counter() - t0
            mm = memscore.membership_metrics(s, masks[:r])
            rows.append(
                {
                    "references": m,
                    "attack": name,
                    "AUC": f"{mm.auc:.3f}",
                    "TPR@0.1%FPR": f"{mm.tpr_at_fpr[0.001]:.3f}",
                    "TPR@1%FPR": f"{mm.tpr_at_fpr[0.01]:.3f}",
                    "time (s)": f"{dt:.2f}",
                }
            )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stores", default="/tmp/memscore-detectors")
    ap.add_argument("--runs", type=int, default=256)
    ap.add_argument("--datasets", default="modular,digits")
    ap.add_argument("--refs", default="2,4,16,64")
    ap.add_argument(
        "--max-runs", type=int, default=None, help="train at most this many new runs (0: use the store as is)"
    )
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--bootstrap-runs",
        type=int,
        default=0,
        help="also train this many bootstrap runs (<name>-bootstrap) for Data-OOB",
    )
    ap.add_argument("--bootstrap-max-runs", type=int, default=None, help="--max-runs for the bootstrap store")
    a = ap.parse_args()
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f} at start")
    for name in a.datasets.split(","):
        path = Path(a.stores) / name
        t0 = time.perf_counter()
        run_training(
            path,
            dataset=name,
            runs=a.runs,
            max_runs=a.max_runs,
            keep_logits=True,
            progress=False,
            device=a.device,
            **SMALL_MODELS.get(name, {}),
        )
        store = memscore.RunStore.open(path)
        boot = None
        if a.bootstrap_runs:
            boot_path = Path(a.stores) / f"{name}-bootstrap"
            run_training(
                boot_path, dataset=name, runs=a.bootstrap_runs, max_runs=a.bootstrap_max_runs, keep_logits=True,
                progress=False, device=a.device, bootstrap=True, **SMALL_MODELS.get(name, {}),
            )  # fmt: skip
            boot = memscore.RunStore.open(boot_path)
        data = load_dataset(name, **PRESETS[name]["data"])
        print(
            f"\n## {name}: {len(store)} runs, {store.n_train} train / {store.n_test} test, "
            f"{int(data.corrupted.sum())} corrupted labels (training / resuming took {time.perf_counter() - t0:.0f} s)\n"
        )
        rows = detector_rows(store, data, boot)
        print(table(rows, list(rows[0])))
        print()
        arows = attack_rows(store, [int(x) for x in a.refs.split(",")])
        print(table(arows, list(arows[0])))
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
