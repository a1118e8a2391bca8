"""Extractable memorization against duplication, measured on this machine: random-token
documents with sequences planted 1, 2, 4, ..., 128 times (memscore.lm.planted), GPT-2 models of
three widths trained on them for the same number of steps, then the measurement as
``memscore lm memorization`` runs it (stratified sample, exact duplicate counts from the n-gram
engine, batched greedy decoding). Prints the memorized fraction per duplicate-count bin and
model, and writes the plot.

    python benches/lm_memorization_curve.py [--out benches/out/lm_curve.png]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import machine  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).parent / "out" / "lm_curve.png"))
    ap.add_argument("--epochs", type=float, default=4.0)
    args = ap.parse_args()

    import torch
    import transformers

    import memscore.lm as lm
    from memscore.lm import LoadedLM
    from memscore.lm.planted import fit_causal_lm, planted_corpus

    length, k, m = 16, 8, 8
    copies = (1, 2, 4, 8, 16, 32, 64, 128)
    p = planted_corpus(vocab_size=128, length=length, background=2000, copies=copies, per_copy=4, seed=0)
    models = []
    t0 = time.perf_counter()
    for width in (32, 64, 128):
        torch.manual_seed(0)
        cfg = transformers.GPT2Config(
            vocab_size=128, n_embd=width, n_layer=2, n_head=4, n_positions=length, bos_token_id=None, eos_token_id=None
        )
        model = transformers.GPT2LMHeadModel(cfg)
        fit_causal_lm(model, p.documents, epochs=args.epochs, lr=3e-3, seed=0)
        n = sum(x.numel() for x in model.parameters())
        models.append(LoadedLM(model, None, f"gpt2 d={width} ({n / 1e3:.0f} k params)", "cpu", "float32"))
    train_s = time.perf_counter() - t0
    sample = lm.sample_sequences(p.corpus(), 400, length, stratify=True, seed=0)
    curve = lm.memorization_curve(lm.memorization_table(models, sample, k, m, batch_size=64))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    lm.plot_memorization_curve(curve, args.out, title=f"planted corpus, k = {k}, m = {m}")
    print(f"{len(p.documents)} documents of {length} tokens; {args.epochs} epochs per model; training {train_s:.0f} s")
    print(f"{machine()}; load {os.getloadavg()[0]:.2f}")
    print("| model | duplicates | n | memorized | fraction | mean matched (of 8) |")
    print("|---|---|---|---|---|---|")
    for r in curve.iter_rows(named=True):
        print(
            f"| {r['model']} | {r['count_lo']}–{r['count_hi']} | {r['n']} | {r['memorized']} | "
            f"{r['fraction']:.2f} | {r['mean_matched']:.2f} |"
        )
    print(f"plot: {args.out}")


if __name__ == "__main__":
    main()
