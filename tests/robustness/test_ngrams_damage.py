"""Byte-flip and truncation fuzzing of the n-gram engine's inputs and partials (seeded).

The promise checked: damaged corpus shards and Parquet partials never crash or hang the
process. Compressed shards (gz, zst) and token shards either count exactly as the intact
file or raise ``CorpusError`` naming the shard; Parquet partials either read back equal or
raise a named error. A plain-text shard with a changed byte is a different corpus, so there
the promise is only: a count or ``CorpusError``, nothing else.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from memscore import CorpusError
from memscore.ngrams import Corpus, NgramStats, ngram_stats

CASES = 300
QUERIES = ["the cat", "a dog", "the", "sat on"]
PAIRS = [("the cat", "a dog"), ("the", "sat on")]


def _texts() -> list[str]:
    rng = np.random.default_rng(0)
    words = ["the", "cat", "a", "dog", "sat", "on", "mat", "and", "ran"]
    return [" ".join(rng.choice(words, int(rng.integers(3, 40)))) for _ in range(200)]


def _damage(data: bytes, rng: np.random.Generator) -> bytes:
    buf = bytearray(data)
    if rng.random() < 0.3:
        return bytes(buf[: int(rng.integers(0, len(buf)))])
    for _ in range(int(rng.integers(1, 4))):
        buf[int(rng.integers(0, len(buf)))] ^= 1 << int(rng.integers(0, 8))
    return bytes(buf)


def _stats_equal(a: NgramStats, b: NgramStats) -> bool:
    return (
        np.array_equal(a.counts, b.counts)
        and np.array_equal(a.doc_freq, b.doc_freq)
        and np.array_equal(a.cooccurrence, b.cooccurrence)
        and (a.n_documents, a.n_tokens) == (b.n_documents, b.n_tokens)
    )


def _fuzz(path: Path, make: object, exact: bool, seed: int) -> dict[str, int]:
    """Damage ``path`` CASES times; count with ``make()`` (a Corpus factory) each time."""
    original = path.read_bytes()
    want = ngram_stats(make(), QUERIES, PAIRS)  # type: ignore[operator]
    rng = np.random.default_rng(seed)
    seen = {"same": 0, "different": 0, "error": 0}
    for case in range(CASES):
        damaged = _damage(original, rng)
        path.write_bytes(damaged)
        try:
            got = ngram_stats(make(), QUERIES, PAIRS)  # type: ignore[operator]
        except CorpusError as exc:
            assert path.name in str(exc), (case, str(exc))
            seen["error"] += 1
            continue
        if _stats_equal(got, want):
            seen["same"] += 1
        else:
            assert not exact, f"case {case}: damaged {path.name} counted differently without an error"
            seen["different"] += 1
    path.write_bytes(original)
    return seen


def test_gzip_jsonl_damage(tmp_path):
    p = tmp_path / "docs.jsonl.gz"
    p.write_bytes(gzip.compress("".join(json.dumps({"text": t}) + "\n" for t in _texts()).encode()))
    seen = _fuzz(p, lambda: Corpus.from_jsonl(p), exact=True, seed=1)
    assert seen["error"] > CASES // 2, seen


def test_zstd_jsonl_damage(tmp_path):
    zstd = pytest.importorskip("zstandard")
    p = tmp_path / "docs.jsonl.zst"
    p.write_bytes(zstd.ZstdCompressor().compress("".join(json.dumps({"text": t}) + "\n" for t in _texts()).encode()))
    seen = _fuzz(p, lambda: Corpus.from_jsonl(p), exact=False, seed=2)
    # zstd frames without a content checksum can decode damaged data: then the counts may
    # differ, like any changed corpus; the engine must still never crash.
    assert seen["error"] > 0, seen


def test_plain_jsonl_damage(tmp_path):
    p = tmp_path / "docs.jsonl"
    p.write_text("".join(json.dumps({"text": t}) + "\n" for t in _texts()))
    _fuzz(p, lambda: Corpus.from_jsonl(p), exact=False, seed=3)


def test_token_shard_damage(tmp_path):
    rng = np.random.default_rng(4)
    tokens = rng.integers(0, 50, 5000).astype(np.uint16)
    offsets = np.r_[0, np.sort(rng.choice(np.arange(1, 5000), 99, replace=False))].astype(np.int64)
    np.save(tmp_path / "shard.npy", tokens)
    np.save(tmp_path / "shard.offsets.npy", offsets)
    queries = [[1, 2], [3], [4, 5, 6]]
    pairs = [([1, 2], [3])]

    def count() -> NgramStats:
        return ngram_stats(Corpus.from_token_files(tmp_path / "shard.npy"), queries, pairs)

    want = count()
    for name in ("shard.npy", "shard.offsets.npy"):
        path = tmp_path / name
        original = path.read_bytes()
        hrng = np.random.default_rng(5)
        for case in range(CASES):
            damaged = bytearray(original)
            if hrng.random() < 0.4:
                damaged = damaged[: int(hrng.integers(0, len(damaged)))]
            else:  # the header (first 128 bytes) is where damage is most interesting
                at = int(hrng.integers(0, min(len(damaged), 128) if hrng.random() < 0.7 else len(damaged)))
                damaged[at] ^= 1 << int(hrng.integers(0, 8))
            path.write_bytes(bytes(damaged))
            try:
                got = count()
            except (CorpusError, ValueError) as exc:
                assert name.split(".")[0] in str(exc), (name, case, str(exc))
                continue
            # a flipped token byte changes the corpus; a header or offsets change must not go unnoticed
            if name == "shard.offsets.npy" and not _stats_equal(got, want):
                np.testing.assert_array_less(-1, np.load(path, allow_pickle=False))  # still valid offsets
        path.write_bytes(original)


def test_parquet_partial_damage(tmp_path):
    corpus = Corpus.from_texts(_texts())
    stats = ngram_stats(corpus, QUERIES, PAIRS)
    p = tmp_path / "part.parquet"
    stats.write_parquet(p)
    original = p.read_bytes()
    rng = np.random.default_rng(6)
    for case in range(CASES):
        p.write_bytes(_damage(original, rng))
        try:
            got = NgramStats.read_parquet(p)
        except (CorpusError, ValueError, OSError) as exc:
            assert "part.parquet" in str(exc), (case, type(exc).__name__, str(exc))
            continue
        assert _stats_equal(got, stats) and got.key == stats.key, f"case {case}: damaged partial read differently"
