"""Training-driver benchmark: R runs of the demo MLP trained as one vmapped ensemble vs the
plain loop training them one at a time with identical steps (same initializations, same
minibatches, torch.optim), in one process on the same data.

    python benches/bench_train.py            # 64 runs, demo settings (modular addition mod 97)
    python benches/bench_train.py --quick    # a smoke run
    python benches/bench_train.py --device cuda   # on a GPU: also runs/min
    python benches/bench_train.py --model resnet1d   # residual 1-D CNN + BatchNorm on MNIST-1D, shifts
    python benches/bench_train.py --model resnet     # CIFAR ResNet on synthetic 32x32 uint8 images, crop-flip
    python benches/bench_train.py --model resnet1d --compile   # also the ensemble with torch.compile
    python benches/bench_train.py --strategies --model mlp,resnet1d,resnet   # auto vs vmap vs loop, batch 128
    python benches/bench_train.py --distill --model mlp,resnet1d,resnet      # a distilled run's cost vs a plain one

The plain loop runs on ``--device`` too (like for like on a GPU).

With ``--compile`` the compiled ensemble is timed twice in the same process: cold (the
first call pays dynamo + inductor's compilation) and warm (inductor's caches filled; a new
ensemble still re-traces), and its logits are checked against the eager ensemble's.

The sequential loop is timed on ``--seq-runs`` of the runs and scaled to R (every run takes
the same number of steps, so each costs the same); the two paths' final logits are checked
to agree on those runs.
"""

from __future__ import annotations

import argparse
import json
import os
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
from memscore.train import SubsetPlan, autotune, create_store, mlp, train_runs  # noqa: E402
from memscore.train.autotune import TUNING  # noqa: E402


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
    ap.add_argument("--model", default="mlp", help="mlp, resnet1d or resnet (comma-separated with --strategies)")
    ap.add_argument("--examples", type=int, default=1024, help="training examples (resnet1d, resnet)")
    ap.add_argument("--compile", action="store_true", help="also time the ensemble with torch.compile (cold, warm)")
    ap.add_argument("--strategies", action="store_true",
                    help="train_runs with strategy=auto, vmap and loop (medians of --repeats), for each --model")  # fmt: skip
    ap.add_argument("--distill", action="store_true",
                    help="plain vs distilled runs (stored teacher logits), medians of --repeats, for each --model")  # fmt: skip
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    if a.strategies:
        return bench_strategies(a)
    if a.distill:
        return bench_distill(a)
    if a.model not in ("mlp", "resnet1d", "resnet"):
        ap.error("--model: mlp, resnet1d or resnet (a comma list only with --strategies)")
    if a.model != "mlp":
        return bench_cnn(a)
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

    t_ens, t_seq, z_ens, ref = race(fn, train, test, plan, kw, a, runs, seq_runs, None)
    diff = max(float(np.abs(z_ens[r] - ref[r][0]).max()) for r in range(seq_runs))
    agree = np.mean([(z_ens[r].argmax(1) == ref[r][0].argmax(1)).mean() for r in range(seq_runs)])
    print_rows(a, runs, seq_runs, t_ens, t_seq)
    print(f"\nlargest |logit difference| ensemble vs plain loop: {diff:.2e}; argmax agreement {agree:.4f}")
    if a.json:
        Path(a.json).write_text(
            json.dumps({"ensemble_s": t_ens, "sequential_s": t_seq, "runs": runs, "width": width, "max_abs_diff": diff})
        )


def race(fn, train, test, plan, kw, a, runs, seq_runs, n_classes):  # type: ignore[no-untyped-def]
    """Seconds of the ensemble for every run and of the plain loop (``seq_runs`` timed, scaled
    to ``runs``), with the ensemble's and the loop's train logits of the first runs."""
    with tempfile.TemporaryDirectory() as tmp:
        store = create_store(Path(tmp) / "s", train, test, n_classes=n_classes)
        t0 = time.perf_counter()
        train_runs(fn, train, test, plan, store, ensemble=a.ensemble, device=a.device, keep_logits=True,
                   progress=False, **kw)  # fmt: skip
        t_ens = time.perf_counter() - t0
        z_ens = store.outcomes("train", "logits")[:seq_runs]
    t0 = time.perf_counter()
    ref = train_sequential(fn, train, test, plan, runs=range(seq_runs), device=a.device, **kw)  # same device
    t_seq = (time.perf_counter() - t0) * runs / seq_runs
    return t_ens, t_seq, z_ens, ref


def print_rows(a: argparse.Namespace, runs: int, seq_runs: int, t_ens: float, t_seq: float) -> None:
    rows = [
        {"impl": f"memscore.train_runs (ensemble {min(a.ensemble, runs)}, vmap)", "time": fmt_time(t_ens),
         "runs/min": f"{runs / t_ens * 60:.2f}", "vs ensemble": "1.0x"},
        {"impl": f"plain loop, one model at a time ({seq_runs} runs timed, scaled)", "time": fmt_time(t_seq),
         "runs/min": f"{runs / t_seq * 60:.2f}", "vs ensemble": f"{t_seq / t_ens:.1f}x slower"},
    ]  # fmt: skip
    print(table(rows, ["impl", "time", "runs/min", "vs ensemble"]))


def bench_cnn(a: argparse.Namespace) -> None:
    """The BatchNorm CNNs: ensemble vs plain loop, same runs (augmentation, cosine schedule)."""
    from memscore.datasets import mnist1d
    from memscore.models import cifar_resnet, resnet1d

    runs = 4 if a.quick else a.runs
    seq_runs = min(a.seq_runs, runs, 2 if a.quick else a.seq_runs)
    epochs = a.epochs or 1
    bs = a.batch_size or 128
    n = 256 if a.quick else a.examples
    if a.model == "resnet1d":
        width = a.width or 16
        d = mnist1d(int(n / 0.8), 0.1, seed=0)
        x, y, xt, yt = d.x_train, d.y_train, d.x_test, d.y_test
        fn = lambda: resnet1d(10, width=width)  # noqa: E731
        desc, aug = f"residual 1-D CNN + BatchNorm (width {width}) on MNIST-1D ({d.n_train} examples)", "shift"
    else:
        width = a.width or 16
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        y = rng.integers(0, 10, n)
        xt, yt = x[:64], y[:64]
        fn = lambda: cifar_resnet(10, width=width, depth=20)  # noqa: E731
        desc, aug = f"CIFAR ResNet-20 (width {width}) on synthetic 32x32 uint8 images ({n} examples)", "crop-flip"
    train, test = (x, y), (xt, yt)
    plan = SubsetPlan(len(y), runs, keep=0.5, seed=0)
    kw = dict(epochs=epochs, batch_size=bs, lr=0.1, momentum=0.9, weight_decay=5e-4, schedule="cosine", augment=aug,
              seed=0)  # fmt: skip
    steps = int(np.ceil(plan.masks.sum(1).mean() / bs)) * epochs
    print(f"machine: {machine()}; torch {torch.__version__}, {torch.get_num_threads()} threads; device {a.device}")
    print(f"model: {desc}, {runs} runs x {steps} steps of batch {bs}, augment {aug}, cosine schedule\n")
    t_ens, t_seq, z_ens, ref = race(fn, train, test, plan, kw, a, runs, seq_runs, 10)
    diff = max(float(np.abs(z_ens[r] - ref[r][0]).max()) for r in range(seq_runs))
    print_rows(a, runs, seq_runs, t_ens, t_seq)
    print(f"\nlargest |logit difference| ensemble vs plain loop: {diff:.2e}")
    if a.compile:
        bench_compiled(fn, train, test, plan, kw, a, runs, t_ens, z_ens)
    if a.json:
        Path(a.json).write_text(json.dumps({"model": a.model, "ensemble_s": t_ens, "sequential_s": t_seq,
                                            "runs": runs, "max_abs_diff": diff}))  # fmt: skip


def bench_compiled(fn, train, test, plan, kw, a, runs, t_ens, z_ens):  # type: ignore[no-untyped-def]
    """The same ensemble with ``compile=True``, cold then warm, against the eager time."""
    rows = []
    for label in ("cold", "warm"):
        with tempfile.TemporaryDirectory() as tmp:
            store = create_store(Path(tmp) / "s", train, test, n_classes=10)
            t0 = time.perf_counter()
            train_runs(fn, train, test, plan, store, ensemble=a.ensemble, device=a.device, keep_logits=True,
                       progress=False, compile=True, **kw)  # fmt: skip
            t = time.perf_counter() - t0
            diff = float(np.abs(store.outcomes("train", "logits")[: len(z_ens)] - z_ens).max())
        rows.append({"impl": f"ensemble {min(a.ensemble, runs)}, torch.compile ({label})", "time": fmt_time(t),
                     "runs/min": f"{runs / t * 60:.2f}", "vs eager ensemble": f"{t_ens / t:.2f}x",
                     "max |logit diff| vs eager": f"{diff:.1e}"})  # fmt: skip
    print()
    print(table(rows, ["impl", "time", "runs/min", "vs eager ensemble", "max |logit diff| vs eager"]))


def strategy_setup(model: str, a: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The model, data, plan and settings of one --strategies row (batch 128 unless given)."""
    from memscore.datasets import mnist1d
    from memscore.models import cifar_resnet, resnet1d

    bs = a.batch_size or 128
    runs = 4 if a.quick else a.runs
    if model == "mlp":
        pre = dict(PRESETS["modular"])
        d = modular_arithmetic(**pre.pop("data"))
        fn = lambda: mlp(d.n_features, d.n_classes, width=a.width or pre["width"], activation=pre["activation"])  # noqa: E731
        kw = dict(epochs=a.epochs or (1 if a.quick else 4), batch_size=bs, lr=pre["lr"], optimizer=pre["optimizer"],
                  weight_decay=pre["weight_decay"], seed=0)  # fmt: skip
        return (
            fn,
            (d.x_train, d.y_train),
            (d.x_test, d.y_test),
            SubsetPlan(d.n_train, runs, keep=0.5, seed=0),
            kw,
            f"MLP {d.n_features}->{a.width or pre['width']}->{d.n_classes} on modular addition ({d.n_train} examples)",
        )
    n = 256 if a.quick else a.examples
    if model == "resnet1d":
        d = mnist1d(int(n / 0.8), 0.1, seed=0)
        fn = lambda: resnet1d(10, width=a.width or 16)  # noqa: E731
        train, test, aug = (d.x_train, d.y_train), (d.x_test, d.y_test), "shift"
        desc = f"residual 1-D CNN + BatchNorm (width {a.width or 16}) on MNIST-1D ({d.n_train} examples)"
    else:
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        y = rng.integers(0, 10, n)
        fn = lambda: cifar_resnet(10, width=a.width or 16, depth=20)  # noqa: E731
        train, test, aug = (x, y), (x[:64], y[:64]), "crop-flip"
        desc = f"CIFAR ResNet-20 (width {a.width or 16}) on synthetic 32x32 uint8 images ({n} examples)"
    kw = dict(epochs=a.epochs or 1, batch_size=bs, lr=0.1, momentum=0.9, weight_decay=5e-4, schedule="cosine",
              augment=aug, seed=0)  # fmt: skip
    return fn, train, test, SubsetPlan(len(train[1]), runs, keep=0.5, seed=0), kw, desc


class OtherLoad:
    """The share of the machine's CPU time that other processes used since construction
    (Linux: /proc/stat less this process's own time; elsewhere NaN)."""

    def __init__(self) -> None:
        self.start = self._now()

    @staticmethod
    def _now() -> tuple[float, float, float]:
        try:
            with open("/proc/stat", encoding="ascii") as f:
                v = [int(x) for x in f.readline().split()[1:9]]
        except OSError:
            return (float("nan"),) * 3
        tick = os.sysconf("SC_CLK_TCK")
        own = os.times()
        busy = (sum(v) - v[3] - v[4]) / tick  # all but idle and iowait
        return busy, sum(v) / tick, own.user + own.system

    def share(self) -> float:
        """Other processes' CPU seconds over all CPUs' seconds since construction."""
        (b0, t0, o0), (b1, t1, o1) = self.start, self._now()
        return max(0.0, (b1 - b0) - (o1 - o0)) / max(t1 - t0, 1e-9)


def bench_strategies(a: argparse.Namespace) -> None:
    """train_runs with strategy="auto" (its timing probe included: a fresh store each time),
    "vmap" and "loop", for each model: medians of --repeats, and auto against the faster."""
    import statistics

    print(f"machine: {machine()}; torch {torch.__version__}, {torch.get_num_threads()} threads; device {a.device}")
    import memscore

    print(f"memscore kernels: {memscore.cpu_info()}\n")
    rows = []
    for model in a.model.split(","):
        fn, train, test, plan, kw, desc = strategy_setup(model, a)
        steps = int(np.ceil(plan.masks.sum(1).mean() / kw["batch_size"])) * kw["epochs"]
        print(f"{model}: {desc}, {plan.n_runs} runs x {steps} steps of batch {kw['batch_size']}")
        times: dict[str, list[float]] = {"vmap": [], "loop": [], "auto": []}
        chosen, probe, load = set(), [], []
        for _ in range(1 if a.quick else a.repeats):
            for strategy in times:
                autotune._MEASURED.clear()  # every auto call times the strategies: its probe is in its time
                with tempfile.TemporaryDirectory() as tmp:
                    store = create_store(Path(tmp) / "s", train, test, n_classes=None if model == "mlp" else 10)
                    others = OtherLoad()
                    t0 = time.perf_counter()
                    train_runs(fn, train, test, plan, store, device=a.device, progress=False, strategy=strategy,
                               ensemble=min(a.ensemble, plan.n_runs), **kw)  # fmt: skip
                    times[strategy].append(time.perf_counter() - t0)
                    load.append(others.share())  # other processes on the cores skew a timing
                    if strategy == "auto":
                        chosen.add(store.run_metadata(store.run_ids()[0])["strategy"])
                        rec = json.loads((store.path / TUNING).read_text())
                        probe.append(rec["probe"]["seconds"])
                        print(f"  auto: {rec['strategy']} (predicted s/run "
                              + ", ".join(f"{k} {v:.3f}" for k, v in rec["timings"].items()) + "; timed "
                              + ", ".join(f"{k} at {v['members']} of {v['ensemble']}" for k, v in rec["probe"].items()
                                          if k != "seconds")
                              + f"; probe {rec['probe']['seconds']:.2f} s of {times['auto'][-1]:.2f} s)")  # fmt: skip
        med = {k: statistics.median(v) for k, v in times.items()}
        best = min(med["vmap"], med["loop"])
        rows.append({"model": model, "vmap": fmt_time(med["vmap"]), "loop": fmt_time(med["loop"]),
                     "auto": fmt_time(med["auto"]), "auto chose": ",".join(sorted(chosen)),
                     "auto's probe": f"{statistics.median(probe):.2f} s ({statistics.median(probe) / med['auto']:.1%})",
                     "loop vs vmap": f"{med['vmap'] / med['loop']:.2f}x",
                     "auto vs the faster": f"{best / med['auto']:.2f}x"})  # fmt: skip
        print(f"  times (s): { {k: [round(t, 2) for t in v] for k, v in times.items()} }; CPU share other "
              f"processes used meanwhile (vmap, loop, auto per repeat): {[f'{v:.0%}' for v in load]}")  # fmt: skip
    print()
    print(table(rows, ["model", "vmap", "loop", "auto", "auto chose", "auto's probe", "loop vs vmap",
                       "auto vs the faster"]))  # fmt: skip


def bench_distill(a: argparse.Namespace) -> None:
    """The cost of distilling from stored teacher logits: train_runs with and without
    ``distill=`` on the same model, data and plan (the teacher store trained first, untimed,
    which also fixes the strategy for the process), alternating, medians of --repeats."""
    import statistics

    from memscore.train import Distillation

    print(f"machine: {machine()}; torch {torch.__version__}, {torch.get_num_threads()} threads; device {a.device}\n")
    rows = []
    for model in a.model.split(","):
        fn, train, test, plan, kw, desc = strategy_setup(model, a)
        n_classes = None if model == "mlp" else 10
        steps = int(np.ceil(plan.masks.sum(1).mean() / kw["batch_size"])) * kw["epochs"]
        print(f"{model}: {desc}, {plan.n_runs} runs x {steps} steps of batch {kw['batch_size']}")
        with tempfile.TemporaryDirectory() as tmp:
            teacher = create_store(Path(tmp) / "t", train, test, n_classes=n_classes)
            train_runs(fn, train, test, plan, teacher, device=a.device, progress=False, keep_logits=True, **kw)
            times: dict[str, list[float]] = {"plain": [], "distilled": []}
            for i in range(1 if a.quick else a.repeats):
                for arm in times:
                    store = create_store(Path(tmp) / f"{arm}-{i}", train, test, n_classes=n_classes)
                    d = Distillation(teacher, alpha=0.5, temperature=4.0) if arm == "distilled" else None
                    t0 = time.perf_counter()
                    train_runs(fn, train, test, plan, store, device=a.device, progress=False, distill=d, **kw)
                    times[arm].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in times.items()}
        rows.append({"model": model, "plain": fmt_time(med["plain"]), "distilled": fmt_time(med["distilled"]),
                     "distilled / plain": f"{med['distilled'] / med['plain']:.3f}x"})  # fmt: skip
        print(f"  times (s): { {k: [round(t, 2) for t in v] for k, v in times.items()} }")
    print()
    print(table(rows, ["model", "plain", "distilled", "distilled / plain"]))


if __name__ == "__main__":
    main()
