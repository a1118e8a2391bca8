"""A full-size MadryLab datamodels release, streamed: written, read, fitted.

Writes a synthetic release in the layout of MadryLab's CIFAR-10 datamodels release (a
``datamodels`` store directory: ``masks.npy`` ``(300000, 50000)`` bool, ``margins.npy``
``(300000, 10000)`` float16, ``_completed.npy``, the spec JSON; 21 GB on disk), whose first
``--planted`` margins are a planted sparse linear function of the mask plus noise (the
others noise alone). Then, in
a fresh process (so its peak resident memory is the reader's alone), reads it with
:func:`memscore.runs.importers.read_datamodels_release` (masks streamed and bit-packed, the
first ``--targets`` margin columns) and fits datamodels on every run, reporting the times,
the peak memory and how well the planted weights are recovered.

    python benches/release_stream.py --dir /tmp/release        # the full 300,000 x 50,000
    python benches/release_stream.py --dir /tmp/r --models 20000 --train 5000   # smaller

The release is written once and reused when ``--dir`` already holds it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _util import machine  # noqa: E402

PLANTED = 20  # effects per planted target


def planted_weights(n: int, targets: int) -> np.ndarray:
    rng = np.random.default_rng(123)
    w = np.zeros((targets, n), dtype=np.float32)
    for k in range(targets):
        w[k, rng.choice(n, PLANTED, replace=False)] = rng.normal(scale=0.5, size=PLANTED)
    return w


def write_release(root: Path, models: int, n: int, t: int, targets: int, chunk: int) -> None:
    spec = {"num_models": models, "schema": {"masks": {"shape": [n], "dtype": "bool_"},
                                             "margins": {"shape": [t], "dtype": "float16"}}}  # fmt: skip
    same = [(root / "spec.json", spec), (root / "planted.json", {"planted_targets": targets})]
    if all(p.exists() and json.loads(p.read_text()) == want for p, want in same):
        print(f"reusing the release in {root}")
        return
    root.mkdir(parents=True, exist_ok=True)
    (root / "spec.json").unlink(missing_ok=True)  # an incomplete release until rewritten
    rng = np.random.default_rng(0)
    w = planted_weights(n, targets)
    cols = np.flatnonzero((w != 0).any(axis=0))  # the planted effects' columns
    m = np.lib.format.open_memmap(root / "masks.npy", mode="w+", dtype=np.bool_, shape=(models, n))
    y = np.lib.format.open_memmap(root / "margins.npy", mode="w+", dtype=np.float16, shape=(models, t))
    t0 = time.perf_counter()
    for s in range(0, models, chunk):
        k = min(chunk, models - s)
        rows = np.unpackbits(rng.integers(0, 256, (k, (n + 7) // 8), dtype=np.uint8), axis=1, count=n).view(bool)
        m[s : s + k] = rows
        out = rng.standard_normal((k, t), dtype=np.float32)
        out[:, :targets] += rows[:, cols].astype(np.float32) @ w[:, cols].T
        y[s : s + k] = out.astype(np.float16)
        if (s // chunk) % 10 == 0:
            print(f"  wrote {s + k:,} / {models:,} models ({time.perf_counter() - t0:.0f} s)", flush=True)
    m.flush(), y.flush()
    done = np.lib.format.open_memmap(root / "_completed.npy", mode="w+", dtype=np.bool_, shape=(models,))
    done[:] = True
    done.flush()
    (root / "planted.json").write_text(json.dumps({"planted_targets": targets}))
    (root / "spec.json").write_text(json.dumps(spec))  # last: a complete release
    print(f"wrote the release in {time.perf_counter() - t0:.0f} s")


def peak_rss_gb() -> float:
    """This process's peak resident memory (VmHWM). Not ``ru_maxrss``: Linux carries the
    forking parent's peak (here: the writer's mapped release) across exec into it."""
    with open("/proc/self/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    return kb / 2**20


def read_and_fit(root: Path, targets: int, n_lambdas: int) -> None:
    import memscore
    from memscore.runs.importers import read_datamodels_release

    t0 = time.perf_counter()
    masks, y = read_datamodels_release(root, targets=slice(0, targets))
    t1 = time.perf_counter()
    rss_read = peak_rss_gb()
    dm = memscore.datamodels(masks, y, val_fraction=0.05, n_lambdas=n_lambdas, lambda_ratio=0.05)
    t2 = time.perf_counter()
    planted = min(targets, json.loads((root / "planted.json").read_text())["planted_targets"])
    w = planted_weights(masks.n, planted)  # the first `planted` targets; the others are noise
    got = dm.weights[:planted]
    support = w != 0
    err = np.abs(got - w)
    corr = np.mean([np.corrcoef(got[k], w[k])[0, 1] for k in range(planted)])
    print(
        json.dumps(
            {
                "models": masks.shape[0],
                "n": masks.n,
                "targets": targets,
                "packed_masks_gb": masks.bits.nbytes / 1e9,
                "read_s": t1 - t0,
                "peak_rss_after_read_gb": rss_read,
                "fit_s": t2 - t1,
                "sweeps": dm.sweeps,
                "peak_rss_gb": peak_rss_gb(),
                "planted_targets": planted,
                "planted_max_abs_err": float(err[support].max()),
                "off_support_max_abs": float(np.abs(got[~support]).max()),
                "noise_targets_max_abs": float(np.abs(dm.weights[planted:]).max(initial=0.0)),
                "weight_correlation": float(corr),
                "vector_kernel": memscore.cpu_info()["vector_kernel"],
            }
        ),
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, required=True)
    ap.add_argument("--models", type=int, default=300_000)
    ap.add_argument("--train", type=int, default=50_000, help="N (training examples)")
    ap.add_argument("--test", type=int, default=10_000, help="margin columns in the release")
    ap.add_argument("--targets", type=int, default=64, help="margin columns read and fitted")
    ap.add_argument("--planted", type=int, default=64, help="margin columns with planted effects")
    ap.add_argument("--lambdas", type=int, default=10)
    ap.add_argument("--chunk", type=int, default=4096)
    ap.add_argument("--phase", choices=["all", "read"], default="all", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase == "read":
        read_and_fit(args.dir, args.targets, args.lambdas)
        return
    print(machine(), "| load:", os.getloadavg())
    write_release(args.dir, args.models, args.train, args.test, args.planted, args.chunk)
    cmd = [sys.executable, __file__, "--dir", str(args.dir), "--targets", str(args.targets)]
    cmd += ["--lambdas", str(args.lambdas), "--phase", "read"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    print(json.dumps(r, indent=1))
    gb = sum(f.stat().st_size for f in args.dir.glob("*.npy")) / 1e9
    print(
        f"\n| release | on disk | read + pack | peak RSS (read / fit) | datamodels fit ({r['targets']} targets) |"
        f"\n|---|---|---|---|---|"
        f"\n| {r['models']:,} × {r['n']:,} (+ {args.test:,} margins) | {gb:.1f} GB "
        f"| {r['read_s']:.0f} s ({gb / r['read_s']:.2f} GB/s) "
        f"| {r['peak_rss_after_read_gb']:.1f} / {r['peak_rss_gb']:.1f} GB | {r['fit_s']:.0f} s |"
    )


if __name__ == "__main__":
    main()
