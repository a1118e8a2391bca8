"""Training-driver benchmark: R runs of the demo MLP trained as one vmapped ensemble vs the
plain loop training them one at a time with identical steps (same initializations, same
minibatches, torch.optim), in one process on the same data.

    python benches/bench_train.py            # 64 runs, demo settings (modular addition mod 97)
    python benches/bench_train.py --quick    # a smoke run
    python benches/bench_train.py --device cuda   # on a GPU: also runs/min

The sequential loop is timed on ``--seq-runs`` of the runs and scaled to R (every run takes
the same number of steps, so each costs the same); the two paths' final logits are checked
to agree on those runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import fmt_time, machine, table  # noqa: E402

from memscore.cli.runs import PRESETS  # noqa: E402
from memscore.datasets import modular_arithmetic  # noqa: E402
from memscore.reference.train import train_sequential  # noqa: E402
from memscore.train import SubsetPlan, create_store, mlp, train_runs  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int, default=64)
    ap.add_argument("--ensemble", type=int, default=64)
    ap.add_argument("--seq-runs", type=int, default=8, help="runs of the sequential loop actually timed")
    ap.add_argument("--width", type=int, default=None, help="hidden width (default: the demo's)")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json")
    a = ap.parse_args()
    pre = dict(PRESETS["modular"])
    data = pre.pop("data")
    width = a.width or pre["width"]
    epochs = a.epochs or (3 if a.quick else pre["epochs"])
    bs = a.batch_size or pre["batch_size"]
    runs = 8 if a.quick else a.runs
    seq_runs = min(a.seq_runs, runs, 2 if a.quick else a.seq_runs)
    d = modular_arithmetic(**data)
    train, test = (d.x_train, d.y_train), (d.x_test, d.y_test)
    plan = SubsetPlan(d.n_train, runs, keep=0.5, seed=0)
    fn = lambda: mlp(d.n_features, d.n_classes, width=width, activation=pre["activation"])  # noqa: E731
    kw = dict(
        epochs=epochs, batch_size=bs, lr=pre["lr"], optimizer=pre["optimizer"], weight_decay=pre["weight_decay"], seed=0
    )
    steps = int(np.ceil(plan.masks.sum(1).mean() / bs)) * epochs
    print(f"machine: {machine()}; torch {torch.__version__}, {torch.get_num_threads()} threads; device {a.device}")
    print(
        f"model: MLP {d.n_features}->{width}->{d.n_classes} ({pre['activation']}), {runs} runs x ~{steps} steps of batch {bs}\n"
    )

    with tempfile.TemporaryDirectory() as tmp:
        store = create_store(Path(tmp) / "s", train, test)
        t0 = time.perf_counter()
        train_runs(
            fn, train, test, plan, store, ensemble=a.ensemble, device=a.device, keep_logits=True, progress=False, **kw
        )
        t_ens = time.perf_counter() - t0
        z_ens = store.outcomes("train", "logits")[:seq_runs]
    t0 = time.perf_counter()
    ref = train_sequential(fn, train, test, plan, runs=range(seq_runs), **kw)
    t_seq = (time.perf_counter() - t0) * runs / seq_runs
    diff = max(float(np.abs(z_ens[r] - ref[r][0]).max()) for r in range(seq_runs))
    agree = np.mean([(z_ens[r].argmax(1) == ref[r][0].argmax(1)).mean() for r in range(seq_runs)])

    rows = [
        {"impl": f"memscore.train_runs (ensemble {min(a.ensemble, runs)}, vmap)", "time": fmt_time(t_ens),
         "runs/min": f"{runs / t_ens * 60:.1f}", "vs ensemble": "1.0x"},
        {"impl": f"plain loop, one model at a time ({seq_runs} runs timed, scaled)", "time": fmt_time(t_seq),
         "runs/min": f"{runs / t_seq * 60:.1f}", "vs ensemble": f"{t_seq / t_ens:.1f}x slower"},
    ]  # fmt: skip
    print(table(rows, ["impl", "time", "runs/min", "vs ensemble"]))
    print(f"\nlargest |logit difference| ensemble vs plain loop: {diff:.2e}; argmax agreement {agree:.4f}")
    if a.json:
        Path(a.json).write_text(
            json.dumps({"ensemble_s": t_ens, "sequential_s": t_seq, "runs": runs, "width": width, "max_abs_diff": diff})
        )


if __name__ == "__main__":
    main()
