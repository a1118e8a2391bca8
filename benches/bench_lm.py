"""Causal-LM throughput: batched log-probability scoring (memscore.lm.token_logprobs, the
loop the task-gram study scores with) and batched greedy decoding (memscore.lm.extractable)
against the plain one-sequence-at-a-time reference (memscore.reference.lm.extractable_pure,
no cache, no batching), on a randomly initialised GPT-NeoX of Pythia-14m's shape (6 layers,
d = 128, 4 heads, 50,304-token vocabulary) built from its config: no download.

Checks that batched and plain decoding give the same greedy tokens on the timed slice.
Prints a Markdown table labelled with the device; CUDA rows only where a GPU is present.

    python benches/bench_lm.py            # 128 sequences of 128 tokens, k = m = 32
    python benches/bench_lm.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _util import machine, table  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    args = ap.parse_args()

    import torch
    import transformers

    import memscore.lm as lm
    from memscore.reference.lm import extractable_pure

    if args.threads:
        torch.set_num_threads(args.threads)
    n_seq, length, k, m = (32, 64, 16, 16) if args.quick else (128, 128, 32, 32)
    plain_n = 4 if args.quick else 8
    single = 8  # batch-1 rows time this many sequences
    cfg = transformers.GPTNeoXConfig(
        vocab_size=50304,
        hidden_size=128,
        num_hidden_layers=6,
        num_attention_heads=4,
        intermediate_size=512,
        max_position_embeddings=2048,
    )
    torch.manual_seed(0)
    model = transformers.GPTNeoXForCausalLM(cfg).eval()
    n_params = sum(p.numel() for p in model.parameters())
    rng = np.random.default_rng(0)
    seqs = rng.integers(0, cfg.vocab_size, (n_seq, length))
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for dev in devices:
        label = "cpu" if dev == "cpu" else torch.cuda.get_device_name(0)
        dtype = lm.resolve_dtype("auto", dev)
        mdl = model.to(dev, dtype=getattr(torch, dtype))
        for bs in (1, 8, 32):
            n = single if bs == 1 else n_seq
            t0 = time.perf_counter()
            lm.token_logprobs(mdl, [list(s) for s in seqs[:n]], batch_size=bs, device=dev)
            dt = time.perf_counter() - t0
            rows.append(
                {
                    "device": f"{label} ({dtype})",
                    "what": f"log-prob scoring, {length}-token sequences",
                    "batch": bs,
                    "tokens/s": f"{n * length / dt:,.0f}",
                    "seconds": f"{dt:.2f}",
                }
            )
        for bs in (1, 32):
            n = single if bs == 1 else n_seq
            t0 = time.perf_counter()
            r = lm.extractable(mdl, None, seqs[:n], k=k, m=m, batch_size=bs, device=dev)
            dt = time.perf_counter() - t0
            rows.append(
                {
                    "device": f"{label} ({dtype})",
                    "what": f"greedy decoding (extractable, k = {k}, m = {m}, KV cache)",
                    "batch": bs,
                    "tokens/s": f"{n * m / dt:,.0f}",
                    "seconds": f"{dt:.2f}",
                }
            )
        if dev == "cpu":
            t0 = time.perf_counter()
            ref = extractable_pure(mdl, seqs[:plain_n], k, m)
            dt = time.perf_counter() - t0
            assert [x[2] for x in ref] == r.generated[:plain_n].tolist(), "batched greedy tokens differ from plain"
            rows.append(
                {
                    "device": f"{label} ({dtype})",
                    "what": "greedy decoding, plain reference (one sequence, no cache)",
                    "batch": 1,
                    "tokens/s": f"{plain_n * m / dt:,.0f}",
                    "seconds": f"{dt:.2f}",
                }
            )
    print(f"GPT-NeoX {n_params / 1e6:.1f} M parameters (Pythia-14m shape, random init)")
    print(f"{machine()}; torch threads {torch.get_num_threads()}; load {os.getloadavg()[0]:.2f}")
    print(table(rows, ["device", "what", "batch", "tokens/s", "seconds"]))


if __name__ == "__main__":
    main()
