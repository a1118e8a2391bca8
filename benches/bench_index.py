"""The corpus index (suffix arrays) against the streaming engine, tokengrams and
infini-gram, one run, same corpus.

Generates a synthetic token corpus on disk (uint16 ids, Zipf-distributed over a Pythia-size
vocabulary, documents of log-normal length, 2% of the documents copied 2-200 times so long
n-grams repeat), in ``--shards`` .npy shards under ``--dir`` (deleted afterwards unless
``--keep``). Then, each in this order:

- build: :meth:`CorpusIndex.build` in a child process (wall time, the child's peak RSS,
  which counts the memory-mapped input pages it touched), and bytes per token on disk;
- count latency: 10,000 queries (n uniform in 1..64; 90% drawn from the corpus, 10% random
  ids, mostly absent), one ``idx.count([q])`` call each with the index in the page cache
  (p50 / p99 / mean), and the same queries in one batched call;
- the streaming engine (:func:`count_ngrams`) on the same 10,000 queries: one pass; the
  counts must equal the index's (the script stops otherwise);
- tokengrams (EleutherAI, ``pip install tokengrams``; a bench-only peer) on the same tokens
  as one raw u16 file: its build in a child process and its count latency. tokengrams has
  no documents, so its counts include n-grams across document boundaries (not compared);
- break-even: the number of query batches after which build + index queries cost less than
  streaming each batch.

- infini-gram (``pip install infini-gram``; bench-only): its own indexer (the
  ``rust_indexing`` binary its package ships) on the same documents, written in its layout
  (step 1 of its indexer tokenizes with a hub tokenizer; here its files are written
  directly), then its engine's count latency; its counts are checked against memscore's.

    python benches/bench_index.py --tokens 500_000_000      # the issue's scale (~20 GB disk)
    python benches/bench_index.py --quick                   # a smoke run (2 M tokens)
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _util import fmt_time, machine, table  # noqa: E402

import memscore  # noqa: E402
from memscore.ngrams import Corpus, CorpusIndex, count_ngrams  # noqa: E402

VOCAB = 50277  # Pythia / GPT-NeoX


def generate(directory: Path, n_tokens: int, n_shards: int, seed: int = 0) -> list[Path]:
    """Token shards NAME.npy + NAME.offsets.npy of ``n_tokens`` tokens in total."""
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, VOCAB + 1, dtype=np.float64)
    cdf = np.cumsum(1.0 / ranks**1.1)
    cdf /= cdf[-1]
    files = []
    per = n_tokens // n_shards
    for s in range(n_shards):
        lens = np.clip(rng.lognormal(6.4, 1.0, size=per // 400 + 16).astype(np.int64), 16, 50_000)
        lens = lens[: int(np.searchsorted(np.cumsum(lens), per)) + 1]
        lens[-1] -= int(lens.sum()) - per
        lens = lens[lens > 0]
        starts = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
        path = directory / f"shard{s:02d}.npy"
        tokens = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint16, shape=(per,))
        for a in range(0, per, 1 << 24):
            b = min(per, a + (1 << 24))
            tokens[a:b] = np.searchsorted(cdf, rng.random(b - a)).astype(np.uint16)
        # duplication: 2% of the documents are copies of earlier ones, popular ones many times
        n_copy = len(lens) // 50
        targets = rng.choice(np.arange(len(lens) // 2, len(lens)), size=n_copy, replace=False)
        pool = rng.choice(len(lens) // 2, size=max(1, n_copy // 20), replace=False)
        for t in targets:
            src = int(pool[min(len(pool) - 1, int(rng.pareto(1.2)))])
            k = int(min(lens[t], lens[src]))
            tokens[starts[t] : starts[t] + k] = tokens[starts[src] : starts[src] + k]
        tokens.flush()
        del tokens
        np.save(directory / f"shard{s:02d}.offsets.npy", starts)
        files.append(path)
    return files


def make_queries(files: list[Path], n: int, seed: int = 1) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    arrays = [np.load(f, mmap_mode="r") for f in files]
    qs = []
    for _ in range(n):
        k = int(rng.integers(1, 65))
        if rng.random() < 0.9:
            a = arrays[int(rng.integers(0, len(arrays)))]
            p = int(rng.integers(0, len(a) - k))
            qs.append(np.asarray(a[p : p + k]).tolist())
        else:
            qs.append(rng.integers(0, VOCAB, size=k).tolist())
    return qs


def child(code: str) -> dict[str, float]:
    """Run ``code`` in a fresh interpreter; it prints a JSON dict; add the child's peak RSS."""
    wrapped = (
        code
        + "\nimport resource, json as _j\n_u = resource.getrusage(resource.RUSAGE_SELF)\nprint(_j.dumps({**out, 'rss': _u.ru_maxrss * 1024, 'cpu': _u.ru_utime + _u.ru_stime}))"
    )
    res = subprocess.run([sys.executable, "-c", wrapped], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"child failed:\n{res.stderr[-3000:]}")
    out: dict[str, float] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


def warm(paths: list[Path]) -> None:
    """Read files once so they sit in the page cache."""
    for p in paths:
        with open(p, "rb") as f:
            while f.read(1 << 24):
                pass


def latencies(fn, queries: list[list[int]]) -> np.ndarray:
    out = np.empty(len(queries))
    for i, q in enumerate(queries):
        t0 = time.perf_counter()
        fn(q)
        out[i] = time.perf_counter() - t0
    return out


def infinigram(
    root: Path, files: list[Path], queries: list[list[int]], n_tokens: int, want: np.ndarray
) -> dict[str, str]:
    """Build infini-gram's index (step 2 of its indexer; step 1, tokenizing with a hub
    tokenizer, is replaced by writing its files directly) in a child process, check its
    counts against memscore's, and time them."""
    ig = root / "ig"
    ig.mkdir()
    at = 0
    with open(ig / "tokenized.0", "wb") as ds, open(ig / "offset.0", "wb") as od:
        for f in files:
            tokens = np.load(f, mmap_mode="r")
            starts = np.load(f.with_name(f.name[: -len(".npy")] + ".offsets.npy")).astype(np.int64)
            sizes = 2 * (np.append(starts[1:], len(tokens)) - starts) + 2
            od.write((at + np.concatenate([[0], np.cumsum(sizes)[:-1]])).astype("<u8").tobytes())
            at += int(sizes.sum())
            body = np.empty(len(tokens) + len(starts), dtype="<u2")  # 0xFFFF before each document
            pos = starts + np.arange(len(starts))
            body[pos] = 0xFFFF
            mask = np.ones(len(body), dtype=bool)
            mask[pos] = False
            body[mask] = tokens
            ds.write(body.tobytes())
    cmd = f"-m infini_gram.indexing --data_dir {ig} --save_dir {ig} --temp_dir {ig} --token_dtype u16 --cpus 2 --mem 12 --ulimit {resource.getrlimit(resource.RLIMIT_NOFILE)[1]}"
    t0 = time.perf_counter()
    res = subprocess.run(
        ["/usr/bin/time", "-f", "%M", sys.executable, *cmd.split()], capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"infini-gram indexing failed:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    rss = int(res.stderr.strip().splitlines()[-1]) * 1024  # GNU time: peak RSS of the indexer, KiB
    from infini_gram.engine import InfiniGramEngine

    engine = InfiniGramEngine(index_dir=str(ig), eos_token_id=0, version=4, token_dtype="u16")
    warm([ig / "tokenized.0", ig / "table.0"])
    got = [engine.count(input_ids=q)["count"] for q in queries]
    print(f"infini-gram counts equal memscore's on {int(np.sum(np.asarray(got) == want))} of {len(queries)} queries")
    lat = latencies(lambda q: engine.count(input_ids=q), queries)
    size = sum((ig / n).stat().st_size for n in ("tokenized.0", "table.0", "offset.0"))
    return {
        "engine": "infini-gram 2.6.0 (its indexer, its engine)",
        "build": fmt_time(seconds),
        "build rate": f"{n_tokens / seconds / 1e6:.2f} M tok/s",
        "peak RSS": f"{rss / 2**30:.2f} GiB",
        "bytes/token": f"{size / n_tokens:.2f}",
        "count p50": ms(float(np.percentile(lat, 50))),
        "count p99": ms(float(np.percentile(lat, 99))),
        "count mean": ms(float(lat.mean())),
        "10k batch": fmt_time(float(lat.sum())) + " (one call each)",
    }


def ms(x: float) -> str:
    return f"{x * 1e3:.3f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=lambda s: int(s.replace("_", "")), default=20_000_000)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--queries", type=int, default=10_000)
    ap.add_argument("--executor", default="threads:2", help="who builds the parts")
    ap.add_argument("--memory", type=int, default=None, help="the build's memory cap in bytes")
    ap.add_argument("--dir", type=Path, default=None, help="where the corpus and indexes go (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the corpus and indexes")
    ap.add_argument("--no-tokengrams", action="store_true")
    ap.add_argument("--no-infinigram", action="store_true")
    ap.add_argument("--quick", action="store_true", help="2 M tokens, 1,000 queries: a smoke run")
    args = ap.parse_args()
    if args.quick:
        args.tokens, args.queries = 2_000_000, 1000
    root = args.dir or Path(tempfile.mkdtemp(prefix="memscore-bench-index-", dir="/tmp"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}; memscore threads {memscore.get_num_threads()}; cpu_info {memscore.cpu_info()}")
    rows = []
    try:
        t0 = time.perf_counter()
        files = generate(root, args.tokens, args.shards)
        print(
            f"generated {args.tokens:,} tokens in {args.shards} shards under {root} ({fmt_time(time.perf_counter() - t0)})"
        )
        corpus = Corpus.from_token_files(files)
        queries = make_queries(files, args.queries)
        (root / "queries.json").write_text(json.dumps(queries))
        # -- build (child process: its own peak RSS)
        build = child(
            f"""
import time
from memscore.ngrams import Corpus, CorpusIndex
c = Corpus.from_token_files({[str(f) for f in files]!r})
t0 = time.perf_counter()
idx = CorpusIndex.build(c, {str(root / "idx")!r}, executor={args.executor!r}, memory={args.memory!r}, verify=False)
out = {{"seconds": time.perf_counter() - t0, "nbytes": idx.nbytes, "n_tokens": idx.n_tokens, "parts": len(idx.manifest["parts"])}}
"""
        )
        t0 = time.perf_counter()
        idx = CorpusIndex.open(root / "idx", verify=True)
        verify_s = time.perf_counter() - t0
        warm(sorted((root / "idx").glob("part-*")))
        bpt = build["nbytes"] / build["n_tokens"]
        # -- count latency, one query per call, then one batch
        lat = latencies(lambda q: idx.count([q]), queries)
        t0 = time.perf_counter()
        got = idx.count(queries)
        batch_s = time.perf_counter() - t0
        # -- the streaming engine on the same queries
        t0 = time.perf_counter()
        want = count_ngrams(corpus, queries)
        stream_s = time.perf_counter() - t0
        if not np.array_equal(got, want):
            bad = np.flatnonzero(got != want)
            raise SystemExit(f"index and streaming counts differ at {len(bad)} queries, e.g. {bad[:5]}")
        print(f"counts equal the streaming engine on {len(queries):,} queries ({int((want == 0).sum())} absent)")
        rows.append(
            {
                "engine": "memscore CorpusIndex",
                "build": fmt_time(build["seconds"]),
                "build rate": f"{build['n_tokens'] / build['seconds'] / 1e6:.2f} M tok/s",
                "peak RSS": f"{build['rss'] / 2**30:.2f} GiB",
                "bytes/token": f"{bpt:.2f}",
                "count p50": ms(float(np.percentile(lat, 50))),
                "count p99": ms(float(np.percentile(lat, 99))),
                "count mean": ms(float(lat.mean())),
                "10k batch": fmt_time(batch_s),
            }
        )
        rows.append({"engine": "memscore streaming (count_ngrams)", "10k batch": fmt_time(stream_s)})
        breakeven = build["seconds"] / max(1e-9, stream_s - batch_s)
        # -- tokengrams
        if not args.no_tokengrams:
            try:
                import tokengrams  # noqa: F401

                have = True
            except ImportError:
                have = False
                print("tokengrams not installed (pip install tokengrams): skipped")
            if have:
                raw = root / "tokens.bin"
                with open(raw, "wb") as f:
                    for p in files:
                        f.write(np.load(p, mmap_mode="r").tobytes())
                tg = child(
                    f"""
import time, tokengrams
t0 = time.perf_counter()
tokengrams.MemmapIndex.build({str(raw)!r}, {str(root / "tg.idx")!r}, vocab=2**16, verbose=False)
out = {{"seconds": time.perf_counter() - t0}}
"""
                )
                tgi = tokengrams.MemmapIndex(str(raw), str(root / "tg.idx"), vocab=2**16)
                warm([raw, root / "tg.idx"])
                tlat = latencies(tgi.count, queries)
                t0 = time.perf_counter()
                tgi.batch_count(queries) if hasattr(tgi, "batch_count") else [tgi.count(q) for q in queries]
                tbatch = time.perf_counter() - t0
                tbytes = (raw.stat().st_size + (root / "tg.idx").stat().st_size) / build["n_tokens"]
                rows.append(
                    {
                        "engine": "tokengrams 0.3.3 MemmapIndex",
                        "build": fmt_time(tg["seconds"]),
                        "build rate": f"{build['n_tokens'] / tg['seconds'] / 1e6:.2f} M tok/s",
                        "peak RSS": f"{tg['rss'] / 2**30:.2f} GiB",
                        "bytes/token": f"{tbytes:.2f}",
                        "count p50": ms(float(np.percentile(tlat, 50))),
                        "count p99": ms(float(np.percentile(tlat, 99))),
                        "count mean": ms(float(tlat.mean())),
                        "10k batch": fmt_time(tbatch),
                    }
                )
        # -- infini-gram: its own indexer (rust_indexing, from the pip package) on the same
        # documents written in its v4 layout (each document after a 0xFFFF separator)
        if not args.no_infinigram:
            try:
                import infini_gram  # noqa: F401

                have_ig = True
            except ImportError:
                have_ig = False
                print("infini-gram not installed (pip install infini-gram): skipped")
            if have_ig:
                rows.append(infinigram(root, files, queries, build["n_tokens"], want))
        cols = [
            "engine",
            "build",
            "build rate",
            "peak RSS",
            "bytes/token",
            "count p50",
            "count p99",
            "count mean",
            "10k batch",
        ]
        print()
        print(
            f"{build['n_tokens']:,} tokens, {args.shards} shards, {build['parts']} parts; {len(queries):,} queries (n = 1..64)"
        )
        print(table(rows, cols))
        print()
        print(f"index open with checksum verification: {fmt_time(verify_s)}")
        print(f"break-even: the index pays off after {breakeven:.2f} batches of {len(queries):,} queries")
        core_h = build["cpu"] / 3600
        print(
            f"build CPU time {fmt_time(build['cpu'])} ({build['n_tokens'] / build['cpu'] / 1e6:.2f} M tokens per core-second); "
            f"projected Pile build (300e9 tokens): {core_h * 300e9 / build['n_tokens']:,.0f} core-hours, scaled linearly"
        )
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
