"""LDS of Feldman–Zhang influence vs datamodels as the number of training runs grows.

Trains R_max runs of a small MLP on scikit-learn's digits (keep 0.5) into one store and a
held-out set of evaluation subsets (each trained ``--repeats`` times, other seeds) into a
second store, then for each run count fits both attributions on the first R runs and
scores them by the LDS (Park et al. 2023) on the evaluation runs (outcome: test φ).

    python benches/attribution_lds.py --out /tmp/lds      # trains, then prints the table

Training resumes from the stores in ``--out`` when run again.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _util import machine

import memscore
from memscore.datasets import digits
from memscore.train import SubsetPlan, create_store, mlp, train_runs


def _store(path: Path, task: memscore.runs.datasets.TaskData) -> memscore.RunStore:
    if path.exists():
        return memscore.RunStore.open(path)
    return create_store(path, (task.x_train, task.y_train), (task.x_test, task.y_test), n_classes=task.n_classes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--runs", type=int, nargs="+", default=[100, 200, 400, 800])
    ap.add_argument("--eval-subsets", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--width", type=int, default=64)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    task = digits(label_noise=0.0)
    train_kw = dict(epochs=args.epochs, batch_size=64, lr=0.05, optimizer="sgd", momentum=0.9, progress=False)

    def model() -> object:
        return mlp(task.n_features, task.n_classes, width=args.width, activation="relu")

    data = ((task.x_train, task.y_train), (task.x_test, task.y_test))
    runs_store = _store(args.out / "runs", task)
    eval_store = _store(args.out / "eval", task)
    t0 = time.perf_counter()
    train_runs(model, *data, SubsetPlan(task.n_train, max(args.runs), keep=0.5, seed=0), runs_store, seed=0, **train_kw)
    plan = SubsetPlan(task.n_train, args.eval_subsets, keep=0.5, seed=1, repeats=args.repeats)
    train_runs(model, *data, plan, eval_store, seed=1, **train_kw)
    print(f"trained in {time.perf_counter() - t0:.0f} s")
    ids = runs_store.run_ids()  # plan order
    all_masks, all_phi = runs_store.masks(packed=True), runs_store.outcomes("test", "phi")
    rows = []
    for r in args.runs:
        sub = ids[:r]
        t1 = time.perf_counter()
        infl = memscore.influence(memscore.PackedBits(all_masks.bits[:r], all_masks.n), all_phi[:r])
        t2 = time.perf_counter()
        dm = runs_store.datamodels("phi", run_ids=sub, val_fraction=0.1, seed=0)
        t3 = time.perf_counter()
        li, ld = eval_store.lds(infl), eval_store.lds(dm.weights)
        rows.append(
            dict(runs=r, influence=li.mean, influence_ci=li.ci, datamodels=ld.mean, datamodels_ci=ld.ci,
                 influence_s=t2 - t1, datamodels_s=t3 - t2)
        )  # fmt: skip
        print(rows[-1], flush=True)
    meta = {"machine": machine(), "rows": rows, "args": vars(args) | {"out": str(args.out)}}
    (args.out / "lds.json").write_text(json.dumps(meta, indent=1))
    print(f"\n{machine()}\n")
    print("| training runs | LDS, Feldman–Zhang influence | LDS, datamodels | datamodels fit |")
    print("|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['runs']} | {row['influence']:.3f} [{row['influence_ci'][0]:.3f}, {row['influence_ci'][1]:.3f}] "
            f"| {row['datamodels']:.3f} [{row['datamodels_ci'][0]:.3f}, {row['datamodels_ci'][1]:.3f}] "
            f"| {row['datamodels_s']:.1f} s |"
        )
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.2))
        x = [row["runs"] for row in rows]
        for key, label in (("influence", "Feldman–Zhang influence"), ("datamodels", "datamodels")):
            lo = [row[key] - row[f"{key}_ci"][0] for row in rows]
            hi = [row[f"{key}_ci"][1] - row[key] for row in rows]
            ax.errorbar(x, [row[key] for row in rows], yerr=[lo, hi], marker="o", capsize=3, label=label)
        ax.set_xscale("log", base=2)
        ax.set_xticks(x, [str(v) for v in x])
        ax.set_xlabel("training runs")
        ax.set_ylabel("LDS (test φ)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.out / "lds.png", dpi=120)
    except ImportError:
        pass


if __name__ == "__main__":
    main()
