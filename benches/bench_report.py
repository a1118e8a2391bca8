"""Time ``memscore report`` on a store of 50,000 training examples (issue 23: "a 50k-example
store reports in seconds, the gallery capped at a few hundred thumbnails").

A synthetic store (random subsets, logits, 10 classes) with image hooks of 32x32x3 uint8
images, so every gallery section and the membership section run. Prints the time of
scoring (``memscore score``, once), of the report with scores on disk (gallery, plots,
LiRA online/offline and RMIA), and the thumbnails written.

    PYTHONPATH=python python benches/bench_report.py [--n 50000] [--runs 32] [--test 1000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import memscore
from memscore.runs.report import score_store, write_report


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--runs", type=int, default=32)
    ap.add_argument("--test", type=int, default=1_000)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n, t, c = args.n, args.test, 10
    y, yt = rng.integers(0, c, n), rng.integers(0, c, t)
    images = rng.integers(0, 256, (4096, 32, 32, 3), dtype=np.uint8)  # drawn by index mod 4096
    with tempfile.TemporaryDirectory() as tmp:
        store = memscore.RunStore.create(
            Path(tmp) / "s", n_train=n, n_test=t, train_labels=y, test_labels=yt, n_classes=c
        )
        t0 = time.perf_counter()
        for _ in range(args.runs):
            mask = rng.random(n) < 0.5
            logits = rng.normal(size=(n, c)).astype(np.float32)
            logits[np.arange(n), y] += 1.0 + 2.0 * mask
            test = rng.normal(size=(t, c)).astype(np.float32)
            test[np.arange(t), yt] += 1.5
            store.add_run(mask, train_logits=logits, test_logits=test)
        print(f"store: {n} train, {t} test, {args.runs} runs, written in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        score_store(store)
        print(f"score (scores.parquet, influence pairs, summary): {time.perf_counter() - t0:.1f} s")
        for membership in (False, True):
            out = Path(tmp) / f"report-{membership}"
            t0 = time.perf_counter()
            write_report(
                store.path, out, examples=lambda i: images[i % 4096], test_examples=lambda i: images[(7 * i) % 4096],
                membership=membership,
            )  # fmt: skip
            took = time.perf_counter() - t0
            thumbs = len(list(out.glob("ex-*.png")))
            size = sum(p.stat().st_size for p in out.iterdir()) / 1e6
            what = "with the membership section" if membership else "without the membership section"
            print(f"report {what}: {took:.1f} s, {thumbs} thumbnails, folder {size:.1f} MB")


if __name__ == "__main__":
    main()
