//! Bindings of the corpus n-gram engine (`memscore_core::ngram`). Python
//! (`memscore.ngrams`) checks arguments and builds the query lists; this layer turns numpy
//! arrays and tuples into the core's shard descriptions and calls the core's counting
//! functions through [`enter`] (`Error::Corpus` becomes `memscore.CorpusError`).

use std::path::PathBuf;

use memscore_core::ngram::count::Stats;
use memscore_core::ngram::normalize::{english_stopwords, Normalizer};
use memscore_core::ngram::source::{self, Offsets, Progress, Shard, Split, TextCtx, TextTokens};
use memscore_core::ngram::subword::Subword;
use memscore_core::ngram::token_file::{MegatronIndex, TokenType};
use memscore_core::Error;
use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::errors::{enter, IntoPyResult};
use crate::runs::slice1;

/// The word normalizer (lowercase, strip punctuation and symbols, stopwords).
#[pyclass(module = "memscore._core", name = "NormalizerCore", frozen)]
pub struct NormalizerCore {
    inner: Normalizer,
}

#[pymethods]
impl NormalizerCore {
    #[new]
    #[pyo3(signature = (lowercase, strip_punctuation, stopwords))]
    fn new(lowercase: bool, strip_punctuation: bool, stopwords: Vec<String>) -> Self {
        NormalizerCore { inner: Normalizer::new(lowercase, strip_punctuation, stopwords) }
    }

    /// Normalized tokens of one text.
    fn normalize(&self, text: &str) -> Vec<String> {
        self.inner.normalize(text)
    }

    /// Normalized tokens of many texts (GIL released, in parallel).
    fn batch(&self, py: Python<'_>, texts: Vec<String>) -> PyResult<Vec<Vec<String>>> {
        use rayon::prelude::*;
        let n = &self.inner;
        enter(py, None, |_| Ok(texts.par_iter().map(|t| n.normalize(t)).collect()))
    }

    /// The stopwords, normalized.
    fn stopwords(&self) -> Vec<String> {
        let mut v: Vec<String> = self.inner.stopwords.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    }
}

/// Bytes of input a count has consumed so far (file bytes as stored, token-array bytes,
/// text bytes); read it from another thread while the count runs, for a progress bar.
#[pyclass(module = "memscore._core", name = "ProgressCounter", frozen)]
pub struct ProgressCounter {
    inner: Progress,
}

#[pymethods]
impl ProgressCounter {
    #[new]
    fn new() -> Self {
        ProgressCounter { inner: Progress::default() }
    }

    #[getter]
    fn value(&self) -> u64 {
        self.inner.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The English stopword list shipped with memscore.
#[pyfunction]
fn english_stopword_list() -> Vec<&'static str> {
    english_stopwords()
}

type StatsTuple<'py> = (Bound<'py, PyArray1<u64>>, Bound<'py, PyArray1<u64>>, Bound<'py, PyArray1<u64>>, u64, u64, u64);

fn stats_tuple(py: Python<'_>, s: Stats) -> StatsTuple<'_> {
    (
        s.counts.into_pyarray(py),
        s.doc_freq.into_pyarray(py),
        s.cooccurrence.into_pyarray(py),
        s.n_documents,
        s.n_tokens,
        s.n_skipped,
    )
}

fn pair_list(pairs: &PyReadonlyArray2<'_, u64>) -> PyResult<Vec<(u64, u64)>> {
    if pairs.shape()[1] != 2 {
        return Err(PyValueError::new_err("pairs must have shape (P, 2)"));
    }
    let s = pairs.as_slice().map_err(|_| PyValueError::new_err("pairs must be C-contiguous"))?;
    Ok(s.chunks_exact(2).map(|c| (c[0], c[1])).collect())
}

enum TokArr<'py> {
    U16(PyReadonlyArray1<'py, u16>),
    U32(PyReadonlyArray1<'py, u32>),
    /// (parts read as one file, byte offset of the first token, element type, number of tokens)
    File(Vec<PathBuf>, u64, TokenType, usize),
}

enum OffArr<'py> {
    Mem(PyReadonlyArray1<'py, u64>),
    /// (path, byte offset of the first value, width 4 | 8, signed, number of documents)
    File(PathBuf, u64, usize, bool, usize),
    /// the arrays of a Megatron `.idx` whose header Python read
    Megatron(MegatronIndex),
}

/// Count query n-grams (flat u32 ids + u64 starts) and pairs ((P, 2) u64 indices into the
/// n-grams) over token shards `[(name, tokens, doc offsets), ...]`. `tokens` is a
/// uint16 | uint32 array; or `(path, byte offset, itemsize 2 | 4, n_tokens)` of a
/// little-endian token file; or `([part paths], byte offset, numpy dtype name, n_tokens)`
/// of a token file stored in parts read as one (any [`TokenType`]); both read in pieces.
/// `doc offsets` is a uint64 array; or (with a token file) `(path, byte offset, width,
/// signed, n_docs)` of a little-endian integer file; or `("megatron", idx path, n_seqs,
/// n_doc_index_entries, token width)` of a Megatron index whose header was checked.
/// Returns (counts, doc_freq, cooccurrence, n_documents, n_tokens, n_skipped).
#[pyfunction]
#[pyo3(signature = (shards, q_tokens, q_starts, pairs, progress=None))]
fn ngram_count_tokens<'py>(
    py: Python<'py>,
    shards: Vec<(String, Bound<'py, PyAny>, Bound<'py, PyAny>)>,
    q_tokens: PyReadonlyArray1<'py, u32>,
    q_starts: PyReadonlyArray1<'py, u64>,
    pairs: PyReadonlyArray2<'py, u64>,
    progress: Option<PyRef<'py, ProgressCounter>>,
) -> PyResult<StatsTuple<'py>> {
    let mut arrays = Vec::with_capacity(shards.len());
    for (name, tok, offs) in shards {
        let offs = if let Ok(a) = offs.extract::<PyReadonlyArray1<'py, u64>>() {
            OffArr::Mem(a)
        } else if let Ok((tag, path, n_seqs, n_entries, width)) =
            offs.extract::<(String, PathBuf, usize, usize, usize)>()
        {
            if tag != "megatron" || ![1, 2, 4, 8].contains(&width) {
                return Err(PyValueError::new_err(format!(
                    "{name}: bad Megatron index description ({tag:?}, {width})"
                )));
            }
            OffArr::Megatron(MegatronIndex { path, n_seqs, n_entries, width })
        } else if let Ok((p, at, width, signed, n)) = offs.extract::<(PathBuf, u64, usize, bool, usize)>() {
            if width != 4 && width != 8 {
                return Err(PyValueError::new_err(format!("{name}: offset width must be 4 or 8, got {width}")));
            }
            OffArr::File(p, at, width, signed, n)
        } else {
            return Err(PyValueError::new_err(format!(
                "{name}: doc offsets must be a 1-D uint64 array or (path, offset, width, signed, n)"
            )));
        };
        let t = if let Ok(a) = tok.extract::<PyReadonlyArray1<'py, u16>>() {
            TokArr::U16(a)
        } else if let Ok(a) = tok.extract::<PyReadonlyArray1<'py, u32>>() {
            TokArr::U32(a)
        } else if let Ok((p, at, size, n)) = tok.extract::<(PathBuf, u64, usize, usize)>() {
            let dtype = match size {
                2 => TokenType::U16,
                4 => TokenType::U32,
                _ => return Err(PyValueError::new_err(format!("{name}: token itemsize must be 2 or 4, got {size}"))),
            };
            TokArr::File(vec![p], at, dtype, n)
        } else if let Ok((parts, at, dtype, n)) = tok.extract::<(Vec<PathBuf>, u64, String, usize)>() {
            let ty = TokenType::parse(&dtype)
                .ok_or_else(|| PyValueError::new_err(format!("{name}: unknown token dtype {dtype:?}")))?;
            TokArr::File(parts, at, ty, n)
        } else {
            return Err(PyValueError::new_err(format!(
                "{name}: tokens must be a 1-D uint16 or uint32 array, (path, offset, itemsize, n) or \
                 ([parts], offset, dtype, n)"
            )));
        };
        arrays.push((name, t, offs));
    }
    let mut sh = Vec::with_capacity(arrays.len());
    for (name, t, offs) in &arrays {
        let off_src = match offs {
            OffArr::Mem(a) => Offsets::Mem(slice1(a, "doc_offsets")?),
            OffArr::File(p, at, width, signed, n) => {
                Offsets::File { path: p.clone(), start: *at, width: *width, signed: *signed, n_docs: *n }
            }
            OffArr::Megatron(ix) => Offsets::Megatron(ix.clone()),
        };
        let mem_offsets = || match &off_src {
            Offsets::Mem(o) => Ok(*o),
            _ => Err(PyValueError::new_err(format!("{name}: an offsets file needs a token file"))),
        };
        sh.push(match t {
            TokArr::U16(a) => {
                Shard::Tokens16 { name: name.clone(), tokens: slice1(a, "tokens")?, offsets: mem_offsets()? }
            }
            TokArr::U32(a) => {
                Shard::Tokens32 { name: name.clone(), tokens: slice1(a, "tokens")?, offsets: mem_offsets()? }
            }
            TokArr::File(parts, at, dtype, n) => Shard::TokenFile {
                name: name.clone(),
                parts: parts.clone(),
                start: *at,
                dtype: *dtype,
                n_tokens: *n,
                offsets: off_src.clone(),
            },
        });
    }
    let (qt, qs) = (slice1(&q_tokens, "query tokens")?, slice1(&q_starts, "query offsets")?);
    let pl = pair_list(&pairs)?;
    let prog = progress.map(|p| p.inner.clone());
    let stats = enter(py, None, |cancel| source::count_token_queries(&sh, qt, qs, &pl, None, prog.as_ref(), cancel))?;
    Ok(stats_tuple(py, stats))
}

/// Text shards as the engine sees them (owned here, borrowed by [`Shard`]).
enum Spec {
    Texts(Vec<String>),
    Jsonl(PathBuf, String),
    Text(PathBuf, Split),
}

/// Parse `[(kind, payload, option), ...]`: ("jsonl", path, field), ("text", path,
/// "file"|"paragraph"|"line"), ("texts", list[str], "").
fn text_specs(shards: Vec<(String, Bound<'_, PyAny>, String)>) -> PyResult<Vec<Spec>> {
    let mut specs = Vec::with_capacity(shards.len());
    for (kind, payload, opt) in shards {
        specs.push(match kind.as_str() {
            "texts" => Spec::Texts(payload.extract()?),
            "jsonl" => Spec::Jsonl(payload.extract()?, opt),
            "text" => Spec::Text(
                payload.extract()?,
                match opt.as_str() {
                    "file" => Split::File,
                    "paragraph" => Split::Paragraph,
                    "line" => Split::Line,
                    o => {
                        return Err(PyValueError::new_err(format!(
                            "split: expected file, paragraph or line, got {o:?}"
                        )))
                    }
                },
            ),
            k => return Err(PyValueError::new_err(format!("unknown shard kind {k:?}"))),
        });
    }
    Ok(specs)
}

fn text_shards(specs: &[Spec]) -> Vec<Shard<'_>> {
    specs
        .iter()
        .map(|s| match s {
            Spec::Texts(t) => Shard::Texts { texts: t },
            Spec::Jsonl(p, f) => Shard::Jsonl { path: p.clone(), field: f.clone() },
            Spec::Text(p, sp) => Shard::TextFile { path: p.clone(), split: *sp },
        })
        .collect()
}

/// Count text queries (already normalized: a list of token lists) and pairs over text
/// shards (see [`text_specs`]) with the word normalizer.
#[pyfunction]
#[pyo3(signature = (shards, normalizer, queries, pairs, skip_errors=false, progress=None))]
fn ngram_count_text<'py>(
    py: Python<'py>,
    shards: Vec<(String, Bound<'py, PyAny>, String)>,
    normalizer: PyRef<'py, NormalizerCore>,
    queries: Vec<Vec<String>>,
    pairs: PyReadonlyArray2<'py, u64>,
    skip_errors: bool,
    progress: Option<PyRef<'py, ProgressCounter>>,
) -> PyResult<StatsTuple<'py>> {
    let specs = text_specs(shards)?;
    let sh = text_shards(&specs);
    let pl = pair_list(&pairs)?;
    let norm = &normalizer.inner;
    let prog = progress.map(|p| p.inner.clone());
    let stats = enter(py, None, |cancel| {
        source::count_text_queries(&sh, norm, &queries, &pl, skip_errors, prog.as_ref(), cancel)
    })?;
    Ok(stats_tuple(py, stats))
}

/// (flat ids, starts) of tokenized texts.
type IdsTuple<'py> = (Bound<'py, PyArray1<u32>>, Bound<'py, PyArray1<u64>>);

/// A HuggingFace `tokenizer.json`, loaded by the Rust `tokenizers` crate.
#[pyclass(module = "memscore._core", name = "SubwordCore", frozen)]
pub struct SubwordCore {
    inner: Subword,
}

#[pymethods]
impl SubwordCore {
    #[new]
    fn new(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let inner = py.detach(|| Subword::from_file(&path)).py()?;
        Ok(SubwordCore { inner })
    }

    /// Token strings of one text.
    fn tokens(&self, text: &str) -> PyResult<Vec<String>> {
        self.inner.tokens(text).map_err(PyValueError::new_err)
    }

    /// Token strings of many texts (GIL released, in parallel).
    fn batch_tokens(&self, py: Python<'_>, texts: Vec<String>) -> PyResult<Vec<Vec<String>>> {
        use rayon::prelude::*;
        let sw = &self.inner;
        enter(py, None, |_| texts.par_iter().map(|t| sw.tokens(t).map_err(Error::Invalid)).collect())
    }

    /// Token ids of many texts as (flat uint32 ids, uint64 starts with n+1 entries).
    fn batch_ids<'py>(&self, py: Python<'py>, texts: Vec<String>) -> PyResult<IdsTuple<'py>> {
        use rayon::prelude::*;
        let sw = &self.inner;
        let ids: Vec<Vec<u32>> =
            enter(py, None, |_| texts.par_iter().map(|t| sw.ids(t).map_err(Error::Invalid)).collect())?;
        let mut starts = Vec::with_capacity(ids.len() + 1);
        let mut at = 0u64;
        starts.push(at);
        for x in &ids {
            at += x.len() as u64;
            starts.push(at);
        }
        Ok((ids.concat().into_pyarray(py), starts.into_pyarray(py)))
    }

    #[getter]
    fn vocab_size(&self) -> usize {
        self.inner.vocab_size()
    }
}

/// Count token-id queries (flat u32 ids + u64 starts, from the same tokenizer) and pairs
/// over text shards (see [`text_specs`]), tokenizing every document with `subword` inside
/// the parallel scan.
#[pyfunction]
#[pyo3(signature = (shards, subword, q_tokens, q_starts, pairs, skip_errors=false, progress=None))]
#[allow(clippy::too_many_arguments)]
fn ngram_count_subword<'py>(
    py: Python<'py>,
    shards: Vec<(String, Bound<'py, PyAny>, String)>,
    subword: PyRef<'py, SubwordCore>,
    q_tokens: PyReadonlyArray1<'py, u32>,
    q_starts: PyReadonlyArray1<'py, u64>,
    pairs: PyReadonlyArray2<'py, u64>,
    skip_errors: bool,
    progress: Option<PyRef<'py, ProgressCounter>>,
) -> PyResult<StatsTuple<'py>> {
    let specs = text_specs(shards)?;
    let sh = text_shards(&specs);
    let (qt, qs) = (slice1(&q_tokens, "query tokens")?, slice1(&q_starts, "query offsets")?);
    let pl = pair_list(&pairs)?;
    let sw = &subword.inner;
    let prog = progress.map(|p| p.inner.clone());
    let ctx = TextCtx { tokens: TextTokens::Subword(sw), skip_errors };
    let stats =
        enter(py, None, |cancel| source::count_token_queries(&sh, qt, qs, &pl, Some(&ctx), prog.as_ref(), cancel))?;
    Ok(stats_tuple(py, stats))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NormalizerCore>()?;
    m.add_class::<ProgressCounter>()?;
    m.add_function(wrap_pyfunction!(english_stopword_list, m)?)?;
    m.add_function(wrap_pyfunction!(ngram_count_tokens, m)?)?;
    m.add_function(wrap_pyfunction!(ngram_count_text, m)?)?;
    m.add_class::<SubwordCore>()?;
    m.add_function(wrap_pyfunction!(ngram_count_subword, m)?)?;
    Ok(())
}
