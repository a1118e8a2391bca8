"""The Pythia memorization protocol, measured here: the staged-checkpoint table and the
throughputs a real Pythia study is projected from.

1. Staged checkpoints: a tiny GPT-NeoX (2 layers, d = 64) trained in two stages on the rows
   of a Megatron dataset in training order (each stage: 200 random rows + 4 sequences planted
   60 times, 4 epochs), a checkpoint before training and after each stage (revision folders
   ``step0``, ``step11``, ``step22`` at 40 rows per step), scored by
   ``memscore lm memorization --rows`` (k = m = 6): the memorized fraction of the planted
   rows of each stage and of the random rows, and the precision / recall of predicting the
   last checkpoint's memorization.
2. Duplicate counting over a Megatron corpus (the tokens of ``bench_ngrams.py --quick``, as
   .idx/.bin in 3 parts per dataset) with Q = 10,000 and 100,000 queries of 64 tokens
   (Pythia rows' first k + m = 64 tokens): tokens per CPU-second.
3. Greedy decoding (k = m = 32, batch 32) of a randomly initialised GPT-NeoX of Pythia-160m's
   shape (12 layers, d = 768, 12 heads, 50,304-token vocabulary) on this machine's CPU:
   rows per second.

    python benches/bench_lm_pythia.py          # needs benches/out/ngrams/megatron-quick (bench_ngrams.py --quick)
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _util import machine, table  # noqa: E402

import memscore  # noqa: E402

OUT = Path(__file__).parent / "out"


def staged_table(d: Path) -> str:
    import polars as pl
    import torch
    import transformers
    from typer.testing import CliRunner

    from memscore.cli import app
    from memscore.lm.planted import staged_rows, tiny_gpt_neox, train_in_stages
    from memscore.ngrams.megatron import write_megatron
    from memscore.taskgram import train_tokenizer

    torch.set_num_threads(1)
    per_step, steps = 40, (0, 11, 22)
    st = staged_rows(vocab_size=64, length=12, background=200, per_stage=4, copies=60, seed=0)
    prefix = write_megatron(d / "data" / "document", list(st.rows), "uint16", parts=3)
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=train_tokenizer(["a b c d e f g"] * 3, vocab_size=16))

    def save(model, s):
        model.save_pretrained(d / "model" / f"step{steps[s]}")
        tok.save_pretrained(d / "model" / f"step{steps[s]}")

    t0 = time.perf_counter()
    train_in_stages(tiny_gpt_neox(64, 12, seed=0), st, save)
    t_train = time.perf_counter() - t0
    args = ["lm", "memorization", "--corpus", str(prefix), "--model", str(d / "model"), "--rows", f"0:{len(st.rows)}"]
    args += ["--k", "6", "--m", "6", "--rows-per-step", str(per_step), "--out", str(d / "out")]
    for s in steps:
        args += ["--revision", f"step{s}"]
    t0 = time.perf_counter()
    r = CliRunner().invoke(app, args)
    t_score = time.perf_counter() - t0
    if r.exit_code:
        raise SystemExit(r.output)
    mem = pl.read_parquet(d / "out" / "memorization.parquet")
    summary = pl.read_csv(d / "out" / "checkpoints.csv")
    rows = st.rows
    kind = np.zeros(len(rows), dtype=np.int64)  # 0 random, 1 planted in stage 1, 2 in stage 2
    for s, seqs in enumerate(st.planted, 1):
        kind[(rows[:, None, :] == seqs[None]).all(-1).any(-1)] = s
    out = []
    for c in summary.iter_rows(named=True):
        t = mem.filter(pl.col("revision") == c["revision"])
        m = t["memorized"].to_numpy()
        sc = t["score"].to_numpy()
        seen = t["seen"].to_numpy()
        out.append(
            {
                "checkpoint": c["revision"],
                "rows seen": f"{int(seen.sum())} / {len(rows)}",
                "stage-1 planted (60×)": f"{m[kind == 1].mean():.2f} ({sc[kind == 1].mean():.2f})",
                "stage-2 planted (60×)": f"{m[kind == 2].mean():.2f} ({sc[kind == 2].mean():.2f})",
                "random rows (1×), seen": f"{m[(kind == 0) & seen].mean() if ((kind == 0) & seen).any() else float('nan'):.2f}",
                "precision / recall vs last": f"{c['precision']:.2f} / {c['recall']:.2f}",
            }
        )
    head = (
        f"{len(rows)} rows of 12 tokens, {per_step} rows per step; training {t_train:.1f} s, "
        f"`memscore lm memorization --rows` (3 checkpoints, duplicates counted) {t_score:.1f} s\n\n"
    )
    return head + table(out, list(out[0]))


def counting_rates() -> list[dict[str, str]]:
    from memscore.ngrams import Corpus, ngram_stats
    from memscore.ngrams.megatron import open_megatron

    d = OUT / "ngrams" / "megatron-quick"
    prefixes = sorted(p.with_suffix("") for p in d.glob("*.idx"))
    if not prefixes:
        raise SystemExit("run benches/bench_ngrams.py --quick first (it writes benches/out/ngrams/megatron-quick)")
    corpus = Corpus.from_megatron(prefixes)
    n_tokens = sum(open_megatron(p).n_tokens for p in prefixes)
    first = open_megatron(prefixes[0])
    tokens, starts = first.tokens(), first.doc_starts()
    rng = np.random.default_rng(0)
    out = []
    for q in (10_000, 100_000):
        pos = np.sort(rng.choice(n_tokens // len(prefixes) - 64, q, replace=False))
        queries = np.asarray(tokens[(pos[:, None] + np.arange(64)[None]).ravel()], dtype=np.int64).reshape(q, 64)
        walls, cpus = [], []
        for _ in range(3):
            w0, c0 = time.perf_counter(), time.process_time()
            s = ngram_stats(corpus, queries)
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
        cpu = sorted(cpus)[1]
        out.append(
            {
                "queries (64 tokens each)": f"{q:,}",
                "corpus": f"{n_tokens / 1e6:.0f} M uint16 tokens, {len(prefixes)} Megatron datasets",
                "wall (median of 3)": f"{sorted(walls)[1]:.2f} s",
                "tokens per CPU-second": f"{n_tokens / cpu / 1e6:.1f} M",
                "queries found ≥ 1": f"{(s.counts > 0).mean():.0%}",
            }
        )
    del starts
    return out


def decoding_rate() -> dict[str, str]:
    import torch

    from memscore.lm import greedy_continuations
    from memscore.lm.planted import tiny_gpt_neox

    torch.set_num_threads(memscore.get_num_threads())
    model = tiny_gpt_neox(50304, 2048, hidden=768, layers=12, heads=12, seed=0).eval()
    n_params = sum(p.numel() for p in model.parameters())
    prompts = np.random.default_rng(0).integers(0, 50304, (64, 32))
    greedy_continuations(model, prompts[:8], 32, batch_size=8)  # warm-up
    t0 = time.perf_counter()
    greedy_continuations(model, prompts, 32, batch_size=32)
    dt = time.perf_counter() - t0
    return {
        "model": f"GPT-NeoX of Pythia-160m's shape, {n_params / 1e6:.0f} M parameters, float32, CPU",
        "rows (k = m = 32, batch 32)": "64",
        "seconds": f"{dt:.1f}",
        "rows per second": f"{64 / dt:.1f}",
    }


def main() -> None:
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        staged = staged_table(Path(tmp))
    counting = counting_rates()
    decoding = decoding_rate()
    print(
        f"{machine()}; memscore threads: {memscore.get_num_threads()}; load average {load0:.1f} at start, "
        f"{os.getloadavg()[0]:.1f} at end\n"
    )
    print("### Staged checkpoints (memorized fraction, mean score in parentheses)\n")
    print(staged)
    print("\n### Duplicate counting over Megatron files\n")
    print(table(counting, list(counting[0])))
    print("\n### Greedy decoding\n")
    print(table([decoding], list(decoding)))


if __name__ == "__main__":
    main()
