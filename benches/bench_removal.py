"""Point-removal curves of the valuations in bench_detectors.py's stores.

    python benches/bench_removal.py --stores /tmp/memscore-detectors --dataset mnist1d

Reads ``<stores>/<dataset>`` (subset runs) and ``<stores>/<dataset>-bootstrap`` (bootstrap
runs, when there), takes Data-OOB, the Banzhaf value and minus memorization as values of
the training examples, removes the lowest- (and highest-) valued fractions, retrains
``--runs`` runs per point with the dataset's settings (bench_detectors' small model), and
prints test accuracy against the fraction removed, with a random-removal baseline. The
table is also written to ``<stores>/<dataset>/removal.parquet``, which ``memscore report``
plots.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import machine  # noqa: E402
from bench_detectors import SMALL_MODELS  # noqa: E402

import memscore  # noqa: E402
from memscore.cli.runs import PRESETS, _model_builder  # noqa: E402
from memscore.runs.datasets import load_dataset  # noqa: E402
from memscore.runs.removal import removal_curve, write_removal_curve  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stores", default="/tmp/memscore-detectors")
    ap.add_argument("--dataset", default="mnist1d")
    ap.add_argument("--fractions", default="0,0.1,0.2")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f} at start")
    preset = {**PRESETS[a.dataset], **SMALL_MODELS.get(a.dataset, {})}
    task = load_dataset(a.dataset, **preset["data"])
    store = memscore.RunStore.open(Path(a.stores) / a.dataset)
    values = {"banzhaf": store.banzhaf(), "-memorization": -store.memorization()}
    boot_path = Path(a.stores) / f"{a.dataset}-bootstrap"
    if (boot_path / "manifest.json").is_file():
        values = {"data_oob": memscore.RunStore.open(boot_path).data_oob(), **values}
    fractions = [float(x) for x in a.fractions.split(",")]
    kw = dict(
        epochs=preset["epochs"], batch_size=preset["batch_size"], lr=preset["lr"], optimizer=preset["optimizer"],
        momentum=preset["momentum"], weight_decay=preset["weight_decay"], augment=preset["augment"],
        schedule=preset["schedule"], normalize=task.info.get("normalize"), device=a.device, progress=False,
    )  # fmt: skip
    make_model = _model_builder(preset["model"], task, preset["width"], preset)
    train, test = (task.x_train, task.y_train), (task.x_test, task.y_test)
    t0 = time.perf_counter()
    curve = removal_curve(
        values, make_model, train, test, fractions=fractions, orders=["lowest", "highest"], runs=a.runs,
        store_path=Path(a.stores) / f"{a.dataset}-removal", **kw,
    )  # fmt: skip
    baseline = removal_curve(
        {"random": values["banzhaf"]}, make_model, train, test, fractions=fractions, orders=["random"], runs=a.runs,
        store_path=Path(a.stores) / f"{a.dataset}-removal-random", **kw,
    )  # fmt: skip
    table = curve.vstack(baseline)
    write_removal_curve(table, store)
    print(f"\n## {a.dataset}: removal curves, {a.runs} runs per point ({time.perf_counter() - t0:.0f} s)\n")
    wide = table.pivot(on="fraction", index=["valuation", "order"], values="test_accuracy")
    print("| valuation | removed first | " + " | ".join(f"x = {x:g}" for x in fractions) + " |")
    print("|---|---|" + "---|" * len(fractions))
    for row in wide.iter_rows(named=True):
        accs = " | ".join(f"{row[str(x)]:.3f}" for x in fractions)
        print(f"| {row['valuation']} | {row['order']} | {accs} |")
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
