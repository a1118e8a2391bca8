"""Corpus sources written here in their on-disk formats: Megatron / GPT-NeoX
``MMapIndexedDataset`` (.idx + .bin, every dtype code, .bin in numbered parts), Parquet with
several row groups, Arrow IPC files and HuggingFace datasets saved to disk. Counts must equal
those of the same documents given as token arrays / jsonl; damaged files give named errors."""

from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import pytest

from memscore import CorpusError
from memscore.ngrams import Corpus, ngram_stats, open_corpus
from memscore.ngrams.megatron import HEADER_BYTES, open_megatron, write_megatron
from memscore.reference import ngrams as ref

QUERIES = [[1, 2], [3], [4, 5, 6], [2, 2], [7, 1, 7]]


def _sequences(seed: int = 0, n: int = 400) -> tuple[list[np.ndarray], list[int]]:
    """Rows of 0..29 tokens (some empty) and a document index with empty documents."""
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(0, 9, int(rng.integers(0, 30))) for _ in range(n)]
    cuts = sorted(rng.choice(np.arange(1, n), n // 5, replace=False).tolist())
    doc_index = [0, *cuts[:10], cuts[10], *cuts[10:], n, n]  # a repeated entry and an empty last document
    return seqs, doc_index


def _documents(seqs: list[np.ndarray], doc_index: list[int]) -> list[list[int]]:
    return [[int(t) for s in seqs[a:b] for t in s] for a, b in zip(doc_index[:-1], doc_index[1:], strict=True)]


def _check_equal(got, docs: list[list[int]]) -> None:
    assert got.counts.tolist() == ref.count_ngrams(docs, QUERIES)
    assert got.doc_freq.tolist() == ref.document_frequency(docs, QUERIES)
    assert got.n_documents == len(docs)
    assert got.n_tokens == sum(len(d) for d in docs)


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "int64", "float32", "float64", "uint16"])
@pytest.mark.parametrize("parts", [1, 4])
def test_megatron_every_dtype_and_parts(tmp_path, dtype, parts):
    seqs, doc_index = _sequences()
    prefix = write_megatron(tmp_path / "document", seqs, dtype, doc_index=doc_index, parts=parts)
    bins = sorted(tmp_path.glob("*.bin"))
    assert len(bins) == parts
    corpus = Corpus.from_megatron(prefix)
    assert corpus.kind == "tokens" and corpus.nbytes == sum(b.stat().st_size for b in bins)
    assert corpus._shards[0].payload.dtype == dtype
    docs = _documents(seqs, doc_index)
    _check_equal(ngram_stats(corpus, QUERIES), docs)
    # a Corpus travels pickled (Ray, multiprocessing) and counts the same
    again = pickle.loads(pickle.dumps(corpus))
    assert ngram_stats(again, QUERIES).counts.tolist() == ngram_stats(corpus, QUERIES).counts.tolist()
    # every way of naming it: prefix, .idx, a .bin part, the folder, a glob
    for spec in (prefix, f"{prefix}.idx", bins[-1], tmp_path, str(tmp_path / "doc*.idx")):
        assert Corpus.from_megatron(spec).shard_names == [str(prefix)]
    assert open_corpus(prefix).shard_names == [str(prefix)]
    # rows are the sequences, read back from the parts
    files = open_megatron(prefix)
    rows = [0, 7, len(seqs) - 1, 7]
    for r, got in zip(rows, files.rows(np.array(rows)), strict=True):
        assert got.tolist() == seqs[r].tolist()
    assert np.asarray(files.tokens()[np.arange(files.n_tokens)]).tolist() == [int(t) for s in seqs for t in s]


@pytest.mark.parametrize("code,dtype", [(9, "int32"), (10, "int64")])
def test_megatron_fork_codes_uint32_uint64(tmp_path, code, dtype):
    seqs, doc_index = _sequences(1)
    prefix = write_megatron(tmp_path / "d", seqs, dtype, doc_index=doc_index, parts=2)
    idx = tmp_path / "d.idx"
    raw = bytearray(idx.read_bytes())
    raw[17] = code  # the same bytes read as uint32 / uint64 (all ids are small and positive)
    idx.write_bytes(bytes(raw))
    corpus = Corpus.from_megatron(prefix)
    assert corpus._shards[0].payload.dtype == {9: "uint32", 10: "uint64"}[code]
    _check_equal(ngram_stats(corpus, QUERIES), _documents(seqs, doc_index))


def test_megatron_prefixes_are_shards(tmp_path):
    a, b = _sequences(2), _sequences(3)
    pa = write_megatron(tmp_path / "a", a[0], "uint16", doc_index=a[1])
    pb = write_megatron(tmp_path / "b", b[0], "int32", doc_index=b[1], parts=3)
    corpus = Corpus.from_megatron([pa, pb])
    assert corpus.shard_names == [str(pa), str(pb)]
    assert Corpus.from_megatron(tmp_path).shard_names == [str(pa), str(pb)]
    _check_equal(ngram_stats(corpus, QUERIES), _documents(*a) + _documents(*b))
    # the executor path: one task per shard, merged in shard order
    threaded = ngram_stats(corpus, QUERIES, executor="threads:2")
    assert threaded.counts.tolist() == ngram_stats(corpus, QUERIES).counts.tolist()
    # sources name the index and every part, so a resumed count notices a change
    files = [f["path"] for f in corpus.sources()[1]["files"]]
    assert files[0].endswith("b.idx") and len(files) == 4


def _damage(tmp_path, mutate) -> str:
    seqs, doc_index = _sequences(4, n=3000)
    prefix = write_megatron(tmp_path / "doc", seqs, "int32", doc_index=doc_index, parts=3)
    mutate(tmp_path, len(seqs), len(doc_index))
    with pytest.raises(CorpusError) as info:
        ngram_stats(Corpus.from_megatron(prefix), QUERIES)
    return str(info.value)


def _patch(path, at: int, value: bytes) -> None:
    raw = bytearray(path.read_bytes())
    raw[at : at + len(value)] = value
    path.write_bytes(bytes(raw))


def _cut(path, n: int) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - n])


@pytest.mark.parametrize(
    "case,mutate,expect",
    [
        ("magic", lambda d, n, m: _patch(d / "doc.idx", 0, b"NOTANIDX!"), "not a Megatron"),
        ("version", lambda d, n, m: _patch(d / "doc.idx", 9, (2).to_bytes(8, "little")), "unknown index version 2"),
        ("dtype", lambda d, n, m: _patch(d / "doc.idx", 17, bytes([11])), "unknown dtype code 11"),
        ("idx-truncated", lambda d, n, m: _cut(d / "doc.idx", 8), "truncated"),
        ("idx-header-only", lambda d, n, m: _cut(d / "doc.idx", (d / "doc.idx").stat().st_size - 20), "truncated"),
        ("bin-half-token", lambda d, n, m: _cut(d / "doc-00002-of-00002.bin", 2), "not a whole number"),
        ("bin-short", lambda d, n, m: _cut(d / "doc-00002-of-00002.bin", 8), "add up to"),
        ("missing-part", lambda d, n, m: (d / "doc-00001-of-00002.bin").unlink(), "missing part 1"),
        ("no-bin", lambda d, n, m: [p.unlink() for p in d.glob("*.bin")], "no such file"),
        (
            "pointer",
            lambda d, n, m: _patch(d / "doc.idx", HEADER_BYTES + 4 * n + 8 * 2000, (12).to_bytes(8, "little")),
            "pointers[2000]",
        ),
        (
            "size",
            lambda d, n, m: _patch(d / "doc.idx", HEADER_BYTES + 4 * 100, (-5).to_bytes(4, "little", signed=True)),
            "sizes[100] = -5",
        ),
        (
            "doc-index",
            lambda d, n, m: _patch(d / "doc.idx", HEADER_BYTES + 12 * n + 8 * (m - 5), (1).to_bytes(8, "little")),
            "must not decrease",
        ),
        (
            "negative-token",
            lambda d, n, m: _patch(d / "doc-00002-of-00002.bin", 40, b"\xff\xff\xff\xff"),
            "is -1, not a token id",
        ),
    ],
)
def test_megatron_damage_is_named(tmp_path, case, mutate, expect):
    msg = _damage(tmp_path, mutate)
    assert expect in msg, msg
    assert str(tmp_path) in msg  # names the file


def test_megatron_rows_out_of_range_and_damaged(tmp_path):
    seqs, doc_index = _sequences(5)
    prefix = write_megatron(tmp_path / "doc", seqs, "uint16", doc_index=doc_index)
    files = open_megatron(prefix)
    with pytest.raises(IndexError, match="outside the 400 sequences"):
        files.rows(np.array([400]))
    _patch(tmp_path / "doc.idx", HEADER_BYTES + 4 * len(seqs) + 8 * 3, (10**9).to_bytes(8, "little"))
    with pytest.raises(CorpusError, match="sequence 3"):
        open_megatron(prefix).rows(np.array([3]))


# ------------------------------------------------------------------ Parquet / Arrow / datasets

TEXTS = [
    "The cat sat on the mat.",
    "A dog; the cat!",
    "",
    "the mat is red, the cat is not",
    "Ünïcode cat ünïcode — mat",
] * 37
TEXT_QUERIES = ["cat", "the cat", "mat", "ünïcode cat", "red the"]


def _jsonl_stats(tmp_path, texts=TEXTS):
    p = tmp_path / "same.jsonl"
    p.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    return ngram_stats(Corpus.from_jsonl(p), TEXT_QUERIES)


def _same(a, b) -> None:
    assert a.counts.tolist() == b.counts.tolist()
    assert a.doc_freq.tolist() == b.doc_freq.tolist()
    assert (a.n_documents, a.n_tokens) == (b.n_documents, b.n_tokens)


@pytest.mark.parametrize("compression", ["zstd", "snappy", "none"])
def test_parquet_row_groups_equal_jsonl(tmp_path, compression):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table({"id": list(range(len(TEXTS))), "content": TEXTS})
    path = tmp_path / "part.parquet"
    pq.write_table(table, path, row_group_size=16, compression=compression)
    assert pq.ParquetFile(path).num_row_groups > 10
    corpus = Corpus.from_parquet(path, text_field="content")
    got = ngram_stats(corpus, TEXT_QUERIES)
    _same(got, _jsonl_stats(tmp_path))
    _same(ngram_stats(pickle.loads(pickle.dumps(corpus)), TEXT_QUERIES), got)
    _same(ngram_stats(open_corpus(path, text_field="content"), TEXT_QUERIES), got)
    # two files, and the executor path
    shutil.copy(path, tmp_path / "part2.parquet")
    two = Corpus.from_parquet(tmp_path, text_field="content")
    assert two.n_shards == 2
    assert (ngram_stats(two, TEXT_QUERIES, executor="threads:2").counts == 2 * got.counts).all()


def test_parquet_errors_and_nulls(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    texts = ["the cat", None, "a cat", "cat"] * 10
    pq.write_table(pa.table({"text": texts, "n": list(range(40))}), tmp_path / "n.parquet", row_group_size=8)
    with pytest.raises(CorpusError, match=r"row group 0, row 1: the text is null"):
        ngram_stats(Corpus.from_parquet(tmp_path / "n.parquet"), ["cat"])
    skipped = ngram_stats(Corpus.from_parquet(tmp_path / "n.parquet", on_error="skip"), ["cat"])
    assert skipped.n_skipped == 10 and skipped.counts.tolist() == [30]
    with pytest.raises(CorpusError, match="no column 'body'"):
        Corpus.from_parquet(tmp_path / "n.parquet", text_field="body")
    with pytest.raises(CorpusError, match="holds int64, expected strings"):
        Corpus.from_parquet(tmp_path / "n.parquet", text_field="n")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(CorpusError, match="cannot read as Parquet"):
        Corpus.from_parquet(tmp_path / "bad.parquet")


def test_arrow_file_and_stream_equal_jsonl(tmp_path):
    pa = pytest.importorskip("pyarrow")
    table = pa.table({"text": TEXTS})
    with pa.OSFile(str(tmp_path / "f.arrow"), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
        for batch in table.to_batches(max_chunksize=20):
            w.write_batch(batch)
    with pa.OSFile(str(tmp_path / "s.arrow"), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table, max_chunksize=30)
    want = _jsonl_stats(tmp_path)
    for name in ("f.arrow", "s.arrow"):
        _same(ngram_stats(Corpus.from_arrow(tmp_path / name), TEXT_QUERIES), want)
        _same(ngram_stats(open_corpus(tmp_path / name), TEXT_QUERIES), want)


def test_hf_dataset_saved_loaded_and_iterable_equal_jsonl(tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"text": TEXTS, "id": list(range(len(TEXTS)))})
    folder = tmp_path / "saved"
    ds.save_to_disk(str(folder))
    want = _jsonl_stats(tmp_path)
    loaded = datasets.load_from_disk(str(folder))  # memory-mapped Arrow
    for corpus in (
        Corpus.from_hf_dataset(folder),
        Corpus.from_hf_dataset(loaded),
        Corpus.from_hf_dataset(loaded.to_iterable_dataset(num_shards=3)),
        open_corpus(folder),
    ):
        _same(ngram_stats(corpus, TEXT_QUERIES), want)
        _same(ngram_stats(pickle.loads(pickle.dumps(corpus)), TEXT_QUERIES), want)
    # a select() view counts its rows only
    view = loaded.select(range(0, len(TEXTS), 2))
    _same(ngram_stats(Corpus.from_hf_dataset(view), TEXT_QUERIES), _jsonl_stats(tmp_path, TEXTS[::2]))
    with pytest.raises(CorpusError, match="no column 'body'"):
        Corpus.from_hf_dataset(loaded, text_field="body")
    with pytest.raises(TypeError, match="pick a split"):
        Corpus.from_hf_dataset(datasets.DatasetDict({"train": ds}))
    with pytest.raises(CorpusError, match="cannot load as a HuggingFace dataset"):
        Corpus.from_hf_dataset(tmp_path)


def test_cli_count_reads_parquet_and_megatron(tmp_path):
    pytest.importorskip("typer")
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    from typer.testing import CliRunner

    from memscore.cli.ngrams import app
    from memscore.ngrams import NgramStats

    pq.write_table(pa.table({"text": TEXTS}), tmp_path / "t.parquet", row_group_size=50)
    (tmp_path / "q.txt").write_text("\n".join(TEXT_QUERIES), encoding="utf-8")
    args = ["count", "--corpus", str(tmp_path / "t.parquet"), "--queries", str(tmp_path / "q.txt")]
    r = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "o1"), "--no-progress"])
    assert r.exit_code == 0, r.output
    merged = NgramStats.read_parquet(tmp_path / "o1" / "merged.parquet")
    assert merged.counts.tolist() == _jsonl_stats(tmp_path).counts.tolist()

    seqs, doc_index = _sequences(6)
    prefix = write_megatron(tmp_path / "mg" / "doc", seqs, "uint16", doc_index=doc_index, parts=2)
    (tmp_path / "q.json").write_text(json.dumps(QUERIES))
    args = ["count", "--corpus", str(prefix), "--queries", str(tmp_path / "q.json")]
    r = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "o2"), "--no-progress"])
    assert r.exit_code == 0, r.output
    _check_equal(NgramStats.read_parquet(tmp_path / "o2" / "merged.parquet"), _documents(seqs, doc_index))
