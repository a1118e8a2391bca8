"""What distillation does to each example, at this machine's scale (after Lukasik et al. 2023
and Nagarajan et al. 2023): MNIST-1D with 10% flipped labels, the residual 1-D CNN of
``benches/width_sweep_mnist1d.py`` at several widths (the plain arms), the widest as the
teacher, and the small widths trained again as its students, run ``r`` of each student arm
learning from teacher run ``r`` (the same training subset), so that a student's memorization
is defined.

    nice -n 10 python benches/distill_mnist1d.py OUT_DIR               # train (resumable) and report
    python benches/distill_mnist1d.py OUT_DIR --report-only            # report what is trained

Printed (and written to OUT_DIR/study.json): per student width, the mean memorization of
the plain and the distilled arm (all examples, clean and flipped labels), the mean change per
trajectory class of the plain widths (Lukasik's table), student against teacher confidence
binned by teacher confidence on train and test (Nagarajan's finding: where the teacher is
unsure, the student is less sure still), test accuracy and membership AUROC / TPR at 0.1%
FPR of both arms.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from memscore import RunStore
from memscore.datasets import mnist1d
from memscore.models import resnet1d
from memscore.train import Distillation, SubsetPlan, create_store, train_runs
from memscore.train.augment import Shift


def train_arm(path: Path, width: int, d: Any, plan: SubsetPlan, a: argparse.Namespace, distill: Any = None) -> RunStore:
    """One arm: ``--runs`` runs of the width-``width`` CNN (resumable), logits kept."""
    store = RunStore.open(path) if (path / "manifest.json").is_file() else create_store(
        path, (d.x_train, d.y_train), (d.x_test, d.y_test), n_classes=10
    )  # fmt: skip
    t0 = time.perf_counter()
    train_runs(lambda: resnet1d(10, width=width), (d.x_train, d.y_train), (d.x_test, d.y_test), plan, store,
               epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, momentum=0.9, weight_decay=a.weight_decay,
               schedule="cosine", augment=Shift(a.max_shift) if a.max_shift else None, keep_logits=True,
               device="cpu", progress=False, distill=distill)  # fmt: skip
    print(json.dumps({"arm": path.name, "runs": len(store.refresh()), "seconds": round(time.perf_counter() - t0, 1)}),
          flush=True)  # fmt: skip
    return store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--widths", type=int, nargs="+", default=[4, 8, 16], help="plain widths (students: --students)")
    ap.add_argument("--teacher-width", type=int, default=32)
    ap.add_argument("--students", type=int, nargs="+", default=[4, 8])
    ap.add_argument("--runs", type=int, default=64)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--noise", type=float, default=0.1)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--max-shift", type=int, default=1)
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--temperature", type=float, default=4.0)
    ap.add_argument("--start-epoch", type=int, default=0)
    ap.add_argument("--tol", type=float, default=0.05)
    ap.add_argument("--train-only", action="store_true")
    ap.add_argument("--report-only", action="store_true")
    a = ap.parse_args()
    d = mnist1d(a.samples, a.noise, seed=0)
    plan = SubsetPlan(d.n_train, a.runs, keep=0.5, seed=0)
    widths = sorted(set(a.widths) | set(a.students) | {a.teacher_width})
    if not a.report_only:
        stores = {w: train_arm(a.out / f"plain-{w}", w, d, plan, a) for w in [a.teacher_width, *widths]}
        distill = Distillation(stores[a.teacher_width], alpha=a.alpha, temperature=a.temperature,
                               start_epoch=a.start_epoch)  # fmt: skip
        for w in a.students:
            train_arm(a.out / f"student-{w}", w, d, plan, a, distill)
    if a.train_only:
        return
    report(a, d, widths)


def report(a: argparse.Namespace, d: Any, widths: list[int]) -> None:
    """The study's tables from the trained arms (:func:`memscore.distillation_effect`),
    printed as Markdown and written to OUT/study.json."""
    import memscore

    teacher = RunStore.open(a.out / f"plain-{a.teacher_width}")
    plains = {w: RunStore.open(a.out / f"plain-{w}") for w in widths}
    flipped = np.asarray(d.corrupted, dtype=bool)
    out: dict[str, Any] = {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()}}
    for w in a.students:
        effect = memscore.distillation_effect(
            plains[w], RunStore.open(a.out / f"student-{w}"), teacher=teacher, trajectories=plains, tol=a.tol,
        )  # fmt: skip
        t = effect.table
        means = {}
        for name, sel in (("all", np.ones_like(flipped)), ("clean", ~flipped), ("flipped", flipped)):
            means[name] = {c: round(float(np.nanmean(t[c].to_numpy()[sel])), 4)
                           for c in ("mem_plain", "mem_distilled", "delta", "teacher_conf", "plain_conf",
                                     "student_conf", "deviation")}  # fmt: skip
        print(f"\n## student width {w} (teacher width {a.teacher_width}, alpha {a.alpha}, tau {a.temperature})")
        print("\nmeans by label kind:", json.dumps(means))
        import polars as pl

        with pl.Config(tbl_formatting="MARKDOWN", tbl_hide_column_data_types=True, tbl_hide_dataframe_shape=True,
                       tbl_rows=100, tbl_cols=20, float_precision=4):  # fmt: skip
            for name in ("by_trajectory", "confidence", "arms"):
                print(f"\n{name}:\n{getattr(effect, name)}")
        out[f"student-{w}"] = {"means": means, **{name: getattr(effect, name).to_dicts()
                                                  for name in ("by_trajectory", "confidence", "arms")}}  # fmt: skip
    (a.out / "study.json").write_text(json.dumps(out, default=str, indent=1))


if __name__ == "__main__":
    sys.exit(main())
