"""The corpus index against the brute-force reference (reference/ngrams.py) and the
streaming engine, on random corpora with planted repeats; its on-disk layout, resume,
memory cap, executors and damage cases."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from memscore import CorpusIndexError, IndexMismatchError
from memscore.ngrams import Corpus, CorpusIndex, count_ngrams, ngram_stats
from memscore.reference import ngrams as ref


def random_docs(rng: np.random.Generator, n_docs: int, vocab: int, max_len: int, plant: list[int] | None = None):
    """Random documents (some empty), a few holding ``plant`` verbatim."""
    docs = []
    for _ in range(n_docs):
        doc = rng.integers(0, vocab, size=int(rng.integers(0, max_len + 1))).tolist()
        if plant is not None and rng.random() < 0.3:
            at = int(rng.integers(0, len(doc) + 1))
            doc = doc[:at] + plant + doc[at:]
        docs.append(doc)
    return docs


def as_corpus(docs: list[list[int]], dtype=np.uint16) -> Corpus:
    tokens = np.array([t for d in docs for t in d], dtype=dtype)
    offsets = np.concatenate([[0], np.cumsum([len(d) for d in docs])[:-1]]).astype(np.int64)
    return Corpus.from_tokens(tokens, offsets)


def split_corpus(docs: list[list[int]], cut: int, dtype=np.uint16) -> Corpus:
    """Two shards: documents [0, cut) and [cut, end)."""
    return as_corpus(docs[:cut], dtype) + as_corpus(docs[cut:], dtype)


def random_queries(rng: np.random.Generator, docs: list[list[int]], vocab: int, k: int) -> list[list[int]]:
    """Half drawn from the documents (present), half random (mostly absent)."""
    qs = []
    nonempty = [d for d in docs if d]
    for _ in range(k):
        n = int(rng.integers(1, 7))
        if rng.random() < 0.5 and nonempty:
            d = nonempty[int(rng.integers(0, len(nonempty)))]
            a = int(rng.integers(0, len(d)))
            qs.append(d[a : a + n])
        else:
            qs.append(rng.integers(0, vocab, size=n).tolist())
    return qs


CASES = [
    # (seed, n_docs, vocab, max_len, dtype, shards)
    (0, 30, 3, 25, np.uint16, 1),
    (1, 50, 5, 40, np.uint16, 2),
    (2, 40, 4, 30, np.uint32, 1),
    (3, 25, 2, 60, np.uint32, 2),
]


@pytest.fixture(params=CASES, ids=lambda c: f"seed{c[0]}-{np.dtype(c[4]).name}-{c[5]}shards")
def built(request, tmp_path):
    seed, n_docs, vocab, max_len, dtype, shards = request.param
    rng = np.random.default_rng(seed)
    plant = rng.integers(0, vocab, size=8).tolist()
    docs = random_docs(rng, n_docs, vocab, max_len, plant)
    corpus = split_corpus(docs, n_docs // 2, dtype) if shards == 2 else as_corpus(docs, dtype)
    idx = CorpusIndex.build(corpus, tmp_path / "idx")
    return rng, docs, vocab, plant, corpus, idx


def test_count_equals_reference_and_streaming(built):
    rng, docs, vocab, plant, corpus, idx = built
    qs = random_queries(rng, docs, vocab, 300) + [plant, plant[:3]]
    got = idx.count(qs)
    assert got.dtype == np.int64
    assert got.tolist() == ref.count_ngrams(docs, qs)
    assert got.tolist() == count_ngrams(corpus, qs).tolist()
    assert idx.doc_freq(qs).tolist() == ref.document_frequency(docs, qs)
    assert idx.n_tokens == sum(map(len, docs)) and idx.n_docs == len(docs)


def test_positions_and_documents(built):
    rng, docs, vocab, plant, corpus, idx = built
    for q in random_queries(rng, docs, vocab, 40) + [plant]:
        df = idx.positions(q)
        assert list(zip(df["doc_id"].to_list(), df["offset"].to_list(), strict=True)) == ref.positions(docs, q)
        assert idx.doc_ids(q).tolist() == sorted({d for d, _ in ref.positions(docs, q)})
        assert len(idx.positions(q, limit=2)) == min(2, len(df))
    for d in range(len(docs)):
        assert idx.document(d).tolist() == docs[d]
    with pytest.raises(ValueError, match="doc_id"):
        idx.document(len(docs))


def test_shard_offsets(built):
    rng, docs, vocab, plant, corpus, idx = built
    df = idx.positions(plant)
    shard_docs = [docs[: len(docs) // 2], docs[len(docs) // 2 :]] if corpus.n_shards == 2 else [docs]
    first = [0, len(shard_docs[0])]
    for doc, off, shard, soff in df.iter_rows():
        local = doc - first[shard]
        assert soff == sum(len(d) for d in shard_docs[shard][:local]) + off


def test_next_tokens_and_infgram(built):
    rng, docs, vocab, plant, corpus, idx = built
    prefixes = [[]] + [q[:-1] for q in random_queries(rng, docs, vocab, 40)] + [plant[:4]]
    for p in prefixes:
        df = idx.next_tokens(p)
        assert dict(zip(df["token"].to_list(), df["count"].to_list(), strict=True)) == ref.next_tokens(docs, p)
    for _ in range(40):
        ctx = random_queries(rng, docs, vocab, 1)[0] + rng.integers(0, vocab, size=int(rng.integers(0, 3))).tolist()
        tok = int(rng.integers(0, vocab))
        got = idx.infgram_prob(ctx, tok)
        count, total, k = ref.infgram_prob(docs, ctx, tok)
        assert (got.count, got.total, got.suffix_len) == (count, total, k)
        assert got.prob == pytest.approx(count / total)


def test_longest_match_spans_novelty(built):
    rng, docs, vocab, plant, corpus, idx = built
    texts = [rng.integers(0, vocab + 1, size=int(rng.integers(0, 20))).tolist() for _ in range(8)]
    texts.append(rng.integers(0, vocab, size=5).tolist() + plant + [vocab + 7] + plant[2:])
    for text in texts:
        assert idx.longest_match(text).tolist() == ref.longest_match(docs, text)
        for min_len, max_count in [(1, None), (3, None), (2, 3)]:
            df = idx.spans(text, min_len=min_len, max_count=max_count, n_docs=2)
            want = ref.maximal_spans(docs, text, min_len, max_count)
            assert list(zip(df["start"], df["end"], df["count"], strict=True)) == want
            for row in df.iter_rows(named=True):
                occ = ref.positions(docs, text[row["start"] : row["end"]])
                assert set(zip(row["doc_ids"], row["offsets"], strict=True)) <= set(occ)
                assert len(row["doc_ids"]) == min(2, len(occ))
        got, want = idx.novelty(text, 4), ref.novelty(docs, text, 4)
        assert [(math.isnan(a) and math.isnan(b)) or a == b for a, b in zip(got, want, strict=True)] == [True] * 4
    lms = idx.longest_matches(texts)
    assert [x.tolist() for x in lms] == [ref.longest_match(docs, t) for t in texts]


def test_planted_span_found_whole(tmp_path):
    rng = np.random.default_rng(5)
    plant = list(range(100, 132))
    docs = random_docs(rng, 40, 50, 60) + [rng.integers(0, 50, 30).tolist() + plant]
    idx = CorpusIndex.build(as_corpus(docs), tmp_path / "i")
    text = [999, 998] + plant + [997]
    df = idx.spans(text, min_len=10)
    assert df.select("start", "end", "count").rows() == [(2, 34, 1)]
    assert df["doc_ids"].to_list() == [[len(docs) - 1]]
    assert df["offsets"].to_list() == [[30]]


def test_ngram_stats_with_index(built):
    rng, docs, vocab, plant, corpus, idx = built
    qs = random_queries(rng, docs, vocab, 60)
    pairs = [(qs[i], qs[i + 1]) for i in range(0, 20, 2)]
    a = ngram_stats(corpus, qs, pairs)
    b = ngram_stats(corpus, qs, pairs, index=idx)
    assert b.counts.tolist() == a.counts.tolist()
    assert b.doc_freq.tolist() == a.doc_freq.tolist()
    assert b.cooccurrence.tolist() == a.cooccurrence.tolist()
    assert (b.n_documents, b.n_tokens, b.key) == (a.n_documents, a.n_tokens, a.key)


def test_edge_cases(tmp_path):
    # empty corpus, one empty document, a lone token; u16 ids using all 65,536 values
    idx = CorpusIndex.build(Corpus.from_tokens(np.zeros(0, np.uint16), []), tmp_path / "empty")
    assert idx.count([[1]]).tolist() == [0] and idx.n_docs == 0
    assert math.isnan(idx.infgram_prob([], 1).prob)
    assert idx.longest_match([1, 2]).tolist() == [0, 0]
    idx = CorpusIndex.build(Corpus.from_tokens(np.zeros(0, np.uint16), [0]), tmp_path / "one-empty")
    assert idx.n_docs == 1 and idx.document(0).tolist() == []
    full = np.arange(65536, dtype=np.uint16)
    idx = CorpusIndex.build(Corpus.from_tokens(full, [0, 30000]), tmp_path / "full")
    assert idx.manifest["parts"][0]["token_width"] == 4
    assert idx.count([[65535], [29999, 30000], [30000, 30001], [65534, 65535]]).tolist() == [1, 0, 1, 1]
    assert idx.document(1).dtype == np.uint32
    # ids at the top of uint32 (renumbered for libsais)
    big = np.array([2**32 - 1, 5, 2**32 - 1, 2**31, 5], dtype=np.uint32)
    idx = CorpusIndex.build(Corpus.from_tokens(big, [0, 2]), tmp_path / "big")
    assert idx.count([[2**32 - 1], [5, 2**32 - 1], [2**32 - 1, 5], [2**31, 5]]).tolist() == [2, 0, 1, 1]
    with pytest.raises(ValueError, match="at least one token"):
        idx.count([[]])
    with pytest.raises(ValueError):
        idx.count([[-1]])
    with pytest.raises(TypeError):
        idx.count(["ab"])


def test_layout_is_open(tmp_path):
    docs = [[3, 1, 2], [], [2, 2]]
    idx = CorpusIndex.build(as_corpus(docs), tmp_path / "i")
    m = json.loads((tmp_path / "i" / "manifest.json").read_text())
    (p,) = m["parts"]
    assert (m["format"], m["version"], m["n_tokens"], m["n_docs"]) == ("memscore-corpus-index", 1, 5, 3)
    assert len(m["corpus"]["checksum"]) == 64
    stem = tmp_path / "i" / p["file"]
    tokens = np.fromfile(f"{stem}.tokens", dtype="<u2")
    sep = p["separator"]
    assert tokens.tolist() == [3, 1, 2, sep, sep, 2, 2] and sep == 65535
    starts = np.fromfile(f"{stem}.docs", dtype="<u8")
    assert starts.tolist() == [0, 4, 5]
    raw = np.fromfile(f"{stem}.sa", dtype=np.uint8).reshape(-1, p["sa_width"])
    sa = sum(raw[:, k].astype(np.int64) << (8 * k) for k in range(p["sa_width"]))
    suffixes = [tuple(tokens[s:].tolist()) for s in sa]
    assert suffixes == sorted(suffixes) and len(sa) == 5 and sep not in tokens[sa].tolist()
    assert idx.nbytes == 7 * 2 + 5 * p["sa_width"] + 3 * 8


def test_token_files_resume_and_memory_cap(tmp_path):
    rng = np.random.default_rng(9)
    docs = random_docs(rng, 400, 20, 50, [1, 2, 3, 4])
    tokens = np.array([t for d in docs for t in d], dtype=np.uint16)
    offsets = np.concatenate([[0], np.cumsum([len(d) for d in docs])[:-1]]).astype(np.int64)
    cut = len(docs) // 2
    np.save(tmp_path / "a.npy", tokens[: offsets[cut]])
    np.save(tmp_path / "a.offsets.npy", offsets[:cut])
    np.save(tmp_path / "b.npy", tokens[offsets[cut] :])
    np.save(tmp_path / "b.offsets.npy", offsets[cut:] - offsets[cut])
    corpus = Corpus.from_token_files([tmp_path / "a.npy", tmp_path / "b.npy"])
    qs = random_queries(rng, docs, 20, 200)
    want = ref.count_ngrams(docs, qs)
    # a memory cap that cuts every shard into several parts
    small = CorpusIndex.build(corpus, tmp_path / "capped", memory=(1 << 20) + 6 * 1500)
    assert len(small.manifest["parts"]) > 4
    assert small.count(qs).tolist() == want
    assert small.positions([1, 2, 3, 4])["doc_id"].to_list() == [d for d, _ in ref.positions(docs, [1, 2, 3, 4])]
    # resume: parts already built are kept (their files untouched)
    path = tmp_path / "idx"
    idx = CorpusIndex.build(corpus, path, executor="threads:2")
    mtimes = {f.name: f.stat().st_mtime_ns for f in path.iterdir()}
    (path / "manifest.json").unlink()
    (path / "part-00001-00000.json").unlink()  # as if the build stopped before this part finished
    idx = CorpusIndex.build(corpus, path)
    after = {f.name: f.stat().st_mtime_ns for f in path.iterdir()}
    assert after["part-00000-00000.sa"] == mtimes["part-00000-00000.sa"]
    assert after["part-00001-00000.sa"] != mtimes["part-00001-00000.sa"]
    assert idx.count(qs).tolist() == want
    # a changed shard is rebuilt, and an old index no longer matches it
    CorpusIndex.open(path, corpus=corpus)
    np.save(tmp_path / "b.npy", tokens[offsets[cut] :][::-1].copy())
    changed = Corpus.from_token_files([tmp_path / "a.npy", tmp_path / "b.npy"])
    with pytest.raises(IndexMismatchError, match="changed on disk"):
        CorpusIndex.open(path, corpus=changed)
    with pytest.raises(IndexMismatchError, match="shards"):
        idx.check_corpus(Corpus.from_token_files([tmp_path / "a.npy"]))
    idx2 = CorpusIndex.build(changed, path)
    idx2.check_corpus(changed, content=True)


def test_in_memory_mismatch(tmp_path):
    docs = [[1, 2, 3], [4, 5]]
    idx = CorpusIndex.build(as_corpus(docs), tmp_path / "i")
    idx.check_corpus(as_corpus(docs))
    with pytest.raises(IndexMismatchError, match="other tokens"):
        idx.check_corpus(as_corpus([[1, 2, 3], [4, 6]]))
    with pytest.raises(IndexMismatchError, match="other tokens"):
        idx.check_corpus(as_corpus([[1, 2], [3, 4, 5]]))


def test_damaged_index_gives_named_errors(tmp_path):
    rng = np.random.default_rng(3)
    docs = random_docs(rng, 50, 6, 40)
    path = tmp_path / "i"
    CorpusIndex.build(as_corpus(docs), path)
    part = json.loads((path / "manifest.json").read_text())["parts"][0]["file"]

    def damage(ext: str, how: str) -> None:
        f = path / f"{part}{ext}"
        data = bytearray(f.read_bytes())
        if how == "flip":
            data[len(data) // 2] ^= 0xFF
        else:
            data = data[:-1]
        f.write_bytes(bytes(data))

    for ext in (".tokens", ".sa", ".docs"):
        for how in ("flip", "truncate"):
            good = (path / f"{part}{ext}").read_bytes()
            damage(ext, how)
            with pytest.raises(CorpusIndexError, match=part + ext.replace(".", r"\.")):
                CorpusIndex.open(path)
            (path / f"{part}{ext}").write_bytes(good)
    CorpusIndex.open(path)
    # without verification a flipped pointer is still caught when it leaves the text
    f = path / f"{part}.sa"
    good = f.read_bytes()
    f.write_bytes(b"\xff" * len(good))
    idx = CorpusIndex.open(path, verify=False)
    with pytest.raises(CorpusIndexError, match="damaged"):
        idx.count([[1]])
    f.write_bytes(good)
    (path / f"{part}.docs").unlink()
    with pytest.raises(CorpusIndexError, match="cannot"):
        CorpusIndex.open(path)
    (path / "manifest.json").write_text("{not json")
    with pytest.raises(CorpusIndexError, match="manifest"):
        CorpusIndex.open(path)
    (path / "manifest.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(CorpusIndexError, match="format"):
        CorpusIndex.open(path)
    os.remove(path / "manifest.json")
    with pytest.raises(CorpusIndexError, match="no manifest"):
        CorpusIndex.open(path)
    with pytest.raises(CorpusIndexError, match="no manifest"):
        CorpusIndex.open(tmp_path / "nothing-here")


def test_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match="Corpus"):
        CorpusIndex.build([1, 2], tmp_path / "t")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="memory"):
        CorpusIndex.build(as_corpus([[1]]), tmp_path / "t", memory=0)
    with pytest.raises(ValueError, match="memory"):
        CorpusIndex.build(as_corpus([[1] * 5000]), tmp_path / "t", memory=(1 << 20) + 100)
    with pytest.raises(Exception, match="offset"):
        CorpusIndex.build(Corpus.from_tokens(np.arange(5, dtype=np.uint16), [0, 9]), tmp_path / "t")
    assert not Path(tmp_path / "t" / "manifest.json").exists()


def test_count_equals_streaming_on_10000_queries(tmp_path):
    """The benchmark's kind of corpus (Zipf ids, copied documents) at a test's size:
    10,000 queries, n = 1..64, some absent; a memory cap cuts the shards into parts."""
    rng = np.random.default_rng(11)
    vocab = 5000
    cdf = np.cumsum(1.0 / np.arange(1, vocab + 1) ** 1.1)
    tokens = np.searchsorted(cdf / cdf[-1], rng.random(400_000)).astype(np.uint16)
    lens = np.clip(rng.lognormal(5.0, 1.0, size=4000).astype(np.int64), 1, 5000)
    lens = lens[: int(np.searchsorted(np.cumsum(lens), len(tokens)))]
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    for d in rng.choice(len(offsets) // 2, size=40, replace=False):  # copies of documents
        src = int(rng.integers(0, 20))
        k = int(min(offsets[d + 1] - offsets[d], offsets[src + 1] - offsets[src]))
        tokens[offsets[d] : offsets[d] + k] = tokens[offsets[src] : offsets[src] + k]
    cut = len(offsets) // 2
    corpus = Corpus.from_tokens(tokens[: offsets[cut]], offsets[:cut]) + Corpus.from_tokens(
        tokens[offsets[cut] :], offsets[cut:] - offsets[cut]
    )
    idx = CorpusIndex.build(corpus, tmp_path / "i", memory=2 * ((1 << 20) + 6 * 120_000), executor="threads:2")
    assert len(idx.manifest["parts"]) >= 3
    qs = []
    for _ in range(10_000):
        n = int(rng.integers(1, 65))
        if rng.random() < 0.9:
            p = int(rng.integers(0, len(tokens) - n))
            qs.append(tokens[p : p + n].tolist())
        else:
            qs.append(rng.integers(0, vocab, size=n).tolist())
    got, want = idx.count(qs), count_ngrams(corpus, qs)
    assert got.tolist() == want.tolist()
    assert (want == 0).sum() > 1000 and (want > 1).sum() > 300


def test_text_corpus_through_its_tokenizer(tmp_path):
    """jsonl (gz), in-memory texts and whole text files, indexed through a subword
    tokenizer: the streaming engine (which tokenizes in Rust) gives the same statistics."""
    tokenizers = pytest.importorskip("tokenizers")
    import gzip

    from tokenizers import models, normalizers, pre_tokenizers, trainers

    from memscore.ngrams import Normalizer

    rng = np.random.default_rng(2)
    words = ["the", "cat", "sat", "on", "mat", "dog", "ran", "far", "naïve", "café"]
    texts = [" ".join(rng.choice(words, size=int(rng.integers(0, 30)))) for _ in range(120)]
    tok = tokenizers.Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=60, special_tokens=["[UNK]"], show_progress=False))
    tok.save(str(tmp_path / "tokenizer.json"))
    sub = Normalizer.from_tokenizer(tmp_path / "tokenizer.json")
    with gzip.open(tmp_path / "a.jsonl.gz", "wt", encoding="utf-8") as f:
        f.writelines(json.dumps({"text": t}) + "\n" for t in texts[:60])
    (tmp_path / "b.txt").write_text(texts[60], encoding="utf-8")
    corpus = (
        Corpus.from_jsonl(tmp_path / "a.jsonl.gz", normalizer=sub)
        + Corpus.from_text_files(tmp_path / "b.txt", normalizer=sub)
        + Corpus.from_texts(texts[61:], normalizer=sub)
    )
    idx = CorpusIndex.build(corpus, tmp_path / "idx")
    queries = ["the cat", "cat sat on", "mat", "naïve café", "dog dog"]
    pairs = [("the cat", "dog"), ("mat", "far")]
    a, b = ngram_stats(corpus, queries, pairs), ngram_stats(corpus, queries, pairs, index=idx)
    assert b.counts.tolist() == a.counts.tolist() and a.counts.sum() > 0
    assert b.doc_freq.tolist() == a.doc_freq.tolist()
    assert b.cooccurrence.tolist() == a.cooccurrence.tolist()
    assert (b.n_documents, b.n_tokens) == (a.n_documents, a.n_tokens) == (len(texts), idx.n_tokens)
    ids = [list(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False)]
    for d in (0, 60, 119):
        assert idx.document(d).tolist() == ids[d]
    CorpusIndex.open(tmp_path / "idx", corpus=corpus)
    changed = Corpus.from_texts(texts[61:-1] + ["cat"], normalizer=sub)
    with pytest.raises(IndexMismatchError):
        idx.check_corpus(corpus.shards()[0] + corpus.shards()[1] + changed)
    with pytest.raises(ValueError, match="split='file'"):
        CorpusIndex.build(Corpus.from_text_files(tmp_path / "b.txt", split="line", normalizer=sub), tmp_path / "x")


def test_word_corpus_through_a_vocabulary(tmp_path):
    """Word normalization (stopwords, punctuation, case): the index numbers the corpus's
    words in one vocabulary and gives the streaming engine's statistics for text queries;
    a query with a word absent from the corpus counts 0."""
    from memscore.ngrams import Normalizer

    rng = np.random.default_rng(4)
    words = ["The", "cat", "sat", "on", "a", "MAT!", "dog", "ran", "far,", "and", "naïve", "café"]
    texts = [" ".join(rng.choice(words, size=int(rng.integers(0, 25)))) for _ in range(150)]
    norm = Normalizer(stopwords="english")
    with open(tmp_path / "a.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"text": t}) + "\n" for t in texts[:70])
    corpus = Corpus.from_jsonl(tmp_path / "a.jsonl", normalizer=norm) + Corpus.from_texts(texts[70:], normalizer=norm)
    idx = CorpusIndex.build(corpus, tmp_path / "idx", executor="threads:2")
    assert idx.vocab == sorted({w for t in texts for w in norm(t)})
    queries = ["cat", "the cat sat", "mat dog", "naïve café", "far and away", "unicorn"]
    pairs = [("cat", "dog"), ("mat", "unicorn"), ("ran far", "café")]
    a, b = ngram_stats(corpus, queries, pairs), ngram_stats(corpus, queries, pairs, index=idx)
    assert b.counts.tolist() == a.counts.tolist() and a.counts[0] > 0 and a.counts[-1] == 0
    assert b.doc_freq.tolist() == a.doc_freq.tolist()
    assert b.cooccurrence.tolist() == a.cooccurrence.tolist() and a.cooccurrence[0] > 0
    assert (b.n_documents, b.n_tokens) == (a.n_documents, a.n_tokens)
    assert [idx.vocab[i] for i in idx.document(75)] == norm(texts[75])
    # reopened: the vocabulary comes back; a damaged vocabulary is a named error
    again = CorpusIndex.open(tmp_path / "idx", corpus=corpus)
    assert ngram_stats(corpus, queries, pairs, index=again).counts.tolist() == a.counts.tolist()
    with pytest.raises(IndexMismatchError, match="unicorn"):
        again.check_corpus(corpus.shards()[0] + Corpus.from_texts(texts[70:-1] + ["unicorn"], normalizer=norm))
    with pytest.raises(IndexMismatchError, match="tokenization"):
        again.check_corpus(Corpus.from_jsonl(tmp_path / "a.jsonl") + Corpus.from_texts(texts[70:]))
    (tmp_path / "idx" / "vocab.json").write_text('["x"]')
    with pytest.raises(CorpusIndexError, match="vocab"):
        CorpusIndex.open(tmp_path / "idx")


@pytest.mark.parametrize("dtype, parts", [("uint16", 1), ("uint16", 3), ("int32", 1), ("int64", 2)])
def test_megatron_datasets(tmp_path, dtype, parts):
    """Megatron .idx/.bin datasets (whole or in parts, any integer dtype), documents of
    several sequences: the index counts what the streaming engine counts."""
    from memscore.ngrams.megatron import write_megatron

    rng = np.random.default_rng(6)
    rows = [rng.integers(0, 7, size=int(rng.integers(0, 40))) for _ in range(60)]
    doc_index = np.array([0, 3, 3, 10, 25, 41, 60])  # first row of each document, then the row count
    prefix = write_megatron(tmp_path / "data" / "document", rows, dtype, doc_index=doc_index, parts=parts)
    corpus = Corpus.from_megatron(prefix)
    idx = CorpusIndex.build(corpus, tmp_path / "idx")
    docs = [
        np.concatenate(rows[a:b]).tolist() if b > a else [] for a, b in zip(doc_index[:-1], doc_index[1:], strict=True)
    ]
    qs = random_queries(rng, docs, 7, 300)
    assert idx.count(qs).tolist() == count_ngrams(corpus, qs).tolist() == ref.count_ngrams(docs, qs)
    assert [idx.document(d).tolist() for d in range(len(docs))] == docs
    CorpusIndex.open(tmp_path / "idx", corpus=corpus).check_corpus(corpus, content=True)


def test_parquet_text_corpus(tmp_path):
    """Parquet text shards (row group by row group) through a word normalizer."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    from memscore.ngrams import Normalizer

    rng = np.random.default_rng(8)
    words = ["alpha", "beta", "gamma", "delta", "the", "and"]
    texts = [" ".join(rng.choice(words, size=int(rng.integers(0, 12)))) for _ in range(90)]
    pq.write_table(pa.table({"text": texts}), tmp_path / "a.parquet", row_group_size=20)
    corpus = Corpus.from_parquet(tmp_path / "a.parquet", normalizer=Normalizer(stopwords="english"))
    idx = CorpusIndex.build(corpus, tmp_path / "idx")
    queries = ["alpha beta", "gamma", "delta alpha gamma", "beta beta"]
    a, b = (
        ngram_stats(corpus, queries, [("alpha", "gamma")]),
        ngram_stats(corpus, queries, [("alpha", "gamma")], index=idx),
    )
    assert b.counts.tolist() == a.counts.tolist() and a.counts.sum() > 0
    assert b.doc_freq.tolist() == a.doc_freq.tolist() and b.cooccurrence.tolist() == a.cooccurrence.tolist()
    assert (b.n_documents, b.n_tokens) == (a.n_documents, a.n_tokens)
