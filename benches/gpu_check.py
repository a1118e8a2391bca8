"""The GPU check: correctness and throughput of the training driver on one GPU, in one table.

    python benches/gpu_check.py                 # on a CUDA machine (under 8 minutes on one H100)
    python benches/gpu_check.py --dry-run       # the same code on the CPU at toy sizes (CI runs it)
    python benches/gpu_check.py --json out.json

What it checks and measures, all on the same device:

1. **member == reference (fp32)**: a BatchNorm ResNet with crop-flip and a cosine schedule,
   trained as an ensemble with every strategy and by the plain loop
   (``reference.train.train_sequential(device=...)``) on the same device, with TF32 off:
   the largest logit and BatchNorm-statistic differences.
2. **bf16 finite and close**: the same runs in bf16 (member by member: vmap ignores
   autocast) against the plain loop in bf16, and finite.
3. **train**: ResNet-20 and ResNet-18 at batch 128 and 512 on synthetic 32x32 uint8 images
   held on the device, crop-flip: images/s of every strategy at the ensemble size the driver
   chooses (capped, to keep the check short), of the compiled vmap ensemble (CUDA graphs),
   and of a plain one-model loop on the same device; runs/hour of the ``feldman-zhang``
   recipe (35,000 images x 160 epochs per run) projected from images/s; peak memory; and
   the share of the wall time the device was busy (kernel time from the profiler).
4. **lm.extractable**: greedy 32-token extraction on a GPT-NeoX of Pythia-70m's shape with
   random weights, in generated tokens/s.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import machine, table  # noqa: E402

from memscore.models import cifar_resnet, resnet18  # noqa: E402
from memscore.reference.train import train_sequential  # noqa: E402
from memscore.train import SubsetPlan, fit  # noqa: E402
from memscore.train.augment import CropFlip  # noqa: E402
from memscore.train.autotune import tune  # noqa: E402
from memscore.train.config import TrainConfig  # noqa: E402
from memscore.train.ensemble import STRATEGIES, _Ensemble  # noqa: E402
from memscore.train.inputs import DeviceInputs  # noqa: E402
from memscore.train.models import init_model  # noqa: E402

#: Images one run of the feldman-zhang recipe trains on: 70% of CIFAR-10's 50,000 x 160 epochs.
RUN_IMAGES = 35_000 * 160
NORMALIZE = ([0.49, 0.48, 0.45], [0.25, 0.24, 0.26])


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def images(n: int, dev: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    y = torch.randint(0, 10, (n,), generator=g)
    return x, y


def data_for(x: torch.Tensor, y: torch.Tensor, dev: torch.device) -> Any:
    inputs = DeviceInputs(x, dev, normalize=NORMALIZE, on_device=True)
    return fit._Data(inputs, y.to(dev), None, None, CropFlip(4), "crop-flip")


# ---- 1, 2: correctness on the device


def check_reference(dev: torch.device, dry: bool) -> list[dict[str, Any]]:
    """Every strategy's members against the plain loop, fp32 (TF32 off) and bf16."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    x, y = images(64, dev)
    x_np, y_np = x.numpy(), y.numpy()
    plan = SubsetPlan(64, 4, keep=0.5, seed=0)
    sizes = plan.masks.sum(1)
    runs = [int(r) for r in np.flatnonzero(sizes == sizes[0])[:3]]
    fn = lambda: cifar_resnet(10, width=4, depth=8)  # noqa: E731
    kw = dict(epochs=2, batch_size=8, lr=0.05, momentum=0.9, weight_decay=5e-4, schedule="cosine", seed=1)
    rows = []
    for precision in ("fp32", "bf16"):
        if precision == "bf16" and dev.type == "cuda" and not torch.cuda.is_bf16_supported():
            rows.append({"check": "bf16 finite and close", "detail": "no bf16 on this GPU"})
            continue
        ref = train_sequential(fn, (x_np, y_np), None, plan, runs=runs, augment="crop-flip", normalize=NORMALIZE,
                               return_state=True, device=dev, precision=precision, **kw)  # fmt: skip
        for strategy in STRATEGIES if precision == "fp32" else ("loop",):
            cfg = TrainConfig(precision=precision, **kw)
            ens, _, _ = fit._fit_group(fn, runs, plan, cfg, data_for(x, y, dev), dev, strategy=strategy)
            z = ens.logits(DeviceInputs(x, dev, normalize=NORMALIZE, on_device=True).chunks(64)).float().cpu()
            dz = max(float((z[e] - torch.from_numpy(ref[r][0])).abs().max()) for e, r in enumerate(runs))
            stats = [k for k in ens.buffers if k.endswith(("running_mean", "running_var"))]
            db = max(float((ens.buffers[k][e].cpu() - ref[r][2][k].cpu()).abs().max())
                     for k in stats for e, r in enumerate(runs))  # fmt: skip
            finite = bool(torch.isfinite(z).all())
            tol = 1e-3 if precision == "fp32" else 5e-2
            name = "member == reference (fp32)" if precision == "fp32" else "bf16 finite and close"
            rows.append({"check": name, "impl": strategy, "detail": f"max |dlogit| {dz:.1e}, max |dBN stat| {db:.1e}",
                         "ok": finite and dz < tol and db < tol})  # fmt: skip
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    return rows


# ---- 3: training throughput


def busy_share(step: Any, steps: int, dev: torch.device) -> float | None:
    """Kernel time / wall time over ``steps`` calls of ``step`` (CUDA only)."""
    if dev.type != "cuda":
        return None
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        sync(dev)
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        sync(dev)
        wall = time.perf_counter() - t0
    kernel_us = 0.0
    for ev in prof.key_averages():
        kernel_us += float(getattr(ev, "self_device_time_total", getattr(ev, "self_cuda_time_total", 0.0)))
    return min(1.0, kernel_us / 1e6 / wall)


def timed(step: Any, warm: int, steps: int, dev: torch.device) -> float:
    for _ in range(warm):
        step()
    sync(dev)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(dev)
    return (time.perf_counter() - t0) / steps


def ensemble_step(fn: Any, cfg: TrainConfig, data: Any, dev: torch.device, members: int, strategy: str) -> Any:
    """One training step of a ``members`` ensemble, cycling over one epoch's batches."""
    plan = SubsetPlan(len(data.x), members, keep=0.5, seed=0)
    sizes = plan.masks.sum(1)
    runs = [int(r) for r in np.flatnonzero(sizes == sizes[0])][:members] or [0]
    epochs = fit._Epochs(runs, plan, cfg, data, dev, pad=False)
    ens = _Ensemble([init_model(fn, cfg.seed, r) for r in runs], cfg, dev, epochs.steps, strategy)
    idx, drawn = epochs.epoch(1)
    t = [0]

    def step() -> None:
        xb, yb, wb, total, _ = epochs.batch(idx, drawn, t[0] % epochs.steps)
        ens.train_step(xb, fit._loss_fn(cfg, yb, wb, total))
        t[0] += 1

    return step, len(runs)


def plain_step(fn: Any, cfg: TrainConfig, data: Any, dev: torch.device) -> Any:
    """One step of the loop a user writes: one model, torch.optim, the batch gathered and
    augmented on the device."""
    model = init_model(fn, cfg.seed, 0).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    n, b = len(data.x), cfg.batch_size
    key = torch.tensor([1], device=dev)
    drawn = data.aug.draw_epoch(key, 1, n)
    perm = torch.randperm(n, device=dev)
    t = [0]

    def step() -> None:
        lo = (t[0] * b) % (n - b + 1)
        idx = perm[lo : lo + b]
        xb = data.aug.apply(data.x.raw(idx), {k: v[0, lo : lo + b] for k, v in drawn.items()})
        loss = torch.nn.functional.cross_entropy(model(data.x.to_float(xb)), data.y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        t[0] += 1

    return step


def check_training(dev: torch.device, dry: bool, compile_: bool) -> list[dict[str, Any]]:
    models = {
        "ResNet-20": lambda: cifar_resnet(10, width=4 if dry else 16, depth=8 if dry else 20),
        "ResNet-18": lambda: resnet18(10, width=4 if dry else 64),
    }
    batches = (8,) if dry else (128, 512)
    warm, steps = (1, 2) if dry else (3, 8)
    cap = 3 if dry else 16
    rows = []
    for name, fn in models.items():
        for b in batches:
            x, y = images(2 * b * (warm + steps + 2), dev)
            data = data_for(x, y, dev)
            cfg = TrainConfig(epochs=1, batch_size=b, lr=0.1, momentum=0.9, weight_decay=5e-4, schedule="cosine")
            tuning = tune(fn, cfg, data, dev, strategy="auto", ensemble=None, memory=None)
            members = min(tuning.ensemble, cap)
            base = {"check": "train", "model": name, "batch": b}
            plain = timed(plain_step(fn, cfg, data, dev), warm, steps, dev)
            plain_ips = b / plain
            impls: list[tuple[str, TrainConfig, str]] = [(s, cfg, s) for s in STRATEGIES]
            if compile_ and name == "ResNet-20" and b == batches[0]:
                impls.append(("vmap + compile", dataclasses.replace(cfg, compile=True), "vmap"))
            for label, c, strategy in impls:
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats(dev)
                try:
                    step, e = ensemble_step(fn, c, data, dev, members, strategy)
                    sec = timed(step, warm + (2 if c.compile else 0), steps, dev)
                    busy = busy_share(step, 3, dev)
                except torch.OutOfMemoryError as exc:
                    rows.append({**base, "impl": label, "detail": f"out of memory: {str(exc).splitlines()[0]}"})
                    continue
                ips = e * b / sec
                peak = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else None
                rows.append({
                    **base, "impl": label + (" (chosen)" if strategy == tuning.strategy and not c.compile else ""),
                    "E": e, "images/s": round(ips), "runs/hour": round(ips * 3600 / RUN_IMAGES, 1),
                    "vs plain": round(ips / plain_ips, 2), "peak GiB": None if peak is None else round(peak, 2),
                    "busy %": None if busy is None else round(100 * busy),
                    "detail": f"auto size {tuning.ensemble} (timed at {e})",
                })  # fmt: skip
            rows.append({**base, "impl": "plain loop (one model, same device)", "E": 1, "images/s": round(plain_ips),
                         "runs/hour": round(plain_ips * 3600 / RUN_IMAGES, 1), "vs plain": 1.0})  # fmt: skip
    return rows


# ---- 4: extraction


def check_extractable(dev: torch.device, dry: bool) -> list[dict[str, Any]]:
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    from memscore.lm import extractable

    shape = dict(vocab_size=50304, hidden_size=512, num_hidden_layers=6, num_attention_heads=8,
                 intermediate_size=2048, max_position_embeddings=2048)  # fmt: skip
    if dry:
        shape = dict(vocab_size=1000, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=128)  # fmt: skip
    torch.manual_seed(0)
    model = GPTNeoXForCausalLM(GPTNeoXConfig(rotary_pct=0.25, use_parallel_residual=True, **shape)).to(dev).eval()
    n, k, m = (16, 8, 8) if dry else (1024, 32, 32)
    seqs = np.random.default_rng(0).integers(0, shape["vocab_size"], (n, k + m))
    extractable(model, None, seqs[:8], k, m, batch_size=8, device=dev)  # warm
    sync(dev)
    t0 = time.perf_counter()
    extractable(model, None, seqs, k, m, batch_size=8 if dry else 256, device=dev)
    sync(dev)
    sec = time.perf_counter() - t0
    label = "GPT-NeoX, Pythia-70m shape, random weights" if not dry else "GPT-NeoX toy shape"
    return [{"check": "lm.extractable", "model": label, "batch": 8 if dry else 256,
             "detail": f"{n} sequences, k={k}, m={m}: {n * m / sec:,.0f} generated tokens/s, {sec:.2f} s"}]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="toy sizes on the CPU (CI)")
    ap.add_argument("--no-compile", action="store_true", help="skip the compiled ensemble's row")
    ap.add_argument("--json", help="also write the rows here")
    a = ap.parse_args()
    if not a.dry_run and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device; use --dry-run to exercise it on the CPU")
    dev = torch.device("cpu" if a.dry_run else "cuda")
    t0 = time.perf_counter()
    card = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU (dry run: toy sizes, not a measurement)"
    print(f"machine: {machine()}; device: {card}; torch {torch.__version__}")
    rows = check_reference(dev, a.dry_run)
    rows += check_training(dev, a.dry_run, compile_=not a.no_compile and not a.dry_run)
    rows += check_extractable(dev, a.dry_run)
    cols = ["check", "model", "batch", "impl", "E", "images/s", "runs/hour", "vs plain", "peak GiB", "busy %", "ok",
            "detail"]  # fmt: skip
    print(table([{c: ("" if r.get(c) is None else r[c]) for c in cols} for r in rows], cols))
    print(f"\ntotal {time.perf_counter() - t0:.0f} s; runs/hour projects images/s to feldman-zhang runs "
          f"({RUN_IMAGES:,} images each)")  # fmt: skip
    if a.json:
        Path(a.json).write_text(json.dumps({"device": card, "rows": rows}, indent=1, default=str))
    if not all(r.get("ok", True) for r in rows):
        sys.exit("gpu_check: a correctness check failed (see the ok column)")


if __name__ == "__main__":
    main()
