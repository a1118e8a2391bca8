//! Bindings of the corpus index (`memscore_core::sa`). Python (`memscore.ngrams.index`)
//! plans the parts, writes the manifest and checks arguments; this layer turns numpy
//! arrays into slices and calls one core function through [`enter`] (`Error::Index`
//! becomes `memscore.CorpusIndexError`).

use std::path::PathBuf;

use memscore_core::pool::Cancel;
use memscore_core::sa::build::{self, Input};
use memscore_core::sa::part::{Part, PartMeta};
use memscore_core::sa::query::{Entry, Occurrence, SuffixIndex, SMALL_BATCH};
use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

use crate::errors::{enter, IntoPyResult};
use crate::runs::slice1;

/// A token array of either width, as numpy holds it.
enum Tokens<'py> {
    U16(PyReadonlyArray1<'py, u16>),
    U32(PyReadonlyArray1<'py, u32>),
}

impl<'py> Tokens<'py> {
    fn extract(a: &Bound<'py, PyAny>) -> PyResult<Self> {
        if let Ok(a) = a.extract::<PyReadonlyArray1<'py, u16>>() {
            Ok(Tokens::U16(a))
        } else if let Ok(a) = a.extract::<PyReadonlyArray1<'py, u32>>() {
            Ok(Tokens::U32(a))
        } else {
            Err(PyTypeError::new_err("tokens must be a 1-D uint16 or uint32 array"))
        }
    }

    fn input(&self) -> PyResult<Input<'_>> {
        Ok(match self {
            Tokens::U16(a) => Input::U16(slice1(a, "tokens")?),
            Tokens::U32(a) => Input::U32(slice1(a, "tokens")?),
        })
    }
}

/// (text_len, n_tokens, n_docs, token_width, sa_width, separator, (xxh3 of .tokens, .sa, .docs))
type BuiltTuple = (u64, u64, u64, usize, usize, u32, (u64, u64, u64));

/// Build the index part `prefix` from `tokens` (uint16 | uint32) and document starts.
#[pyfunction]
fn sa_build_part(
    py: Python<'_>,
    tokens: Bound<'_, PyAny>,
    offsets: PyReadonlyArray1<'_, u64>,
    prefix: PathBuf,
) -> PyResult<BuiltTuple> {
    let t = Tokens::extract(&tokens)?;
    let (input, offs) = (t.input()?, slice1(&offsets, "doc_offsets")?);
    let b = enter(py, None, |cancel| build::build_part(input, offs, &prefix, cancel))?;
    let [a, s, d] = b.checksums;
    Ok((b.text_len, b.n_tokens, b.n_docs, b.token_width, b.sa_width, b.separator, (a, s, d)))
}

/// xxh3-64 of a token shard's ids (as u32) and document offsets.
#[pyfunction]
fn sa_content_checksum(py: Python<'_>, tokens: Bound<'_, PyAny>, offsets: PyReadonlyArray1<'_, u64>) -> PyResult<u64> {
    let t = Tokens::extract(&tokens)?;
    let (input, offs) = (t.input()?, slice1(&offsets, "doc_offsets")?);
    enter(py, None, |_| Ok(build::content_checksum(input, offs)))
}

/// Peak bytes of a part's build.
#[pyfunction]
fn sa_peak_bytes(n_tokens: u64, n_docs: u64, token_width: usize) -> u64 {
    build::peak_bytes(n_tokens, n_docs, token_width)
}

/// A part as Python describes it: (prefix, shard, doc_base, token_base, text_len, n_tokens,
/// n_docs, token_width, sa_width, separator, (checksums)).
type PartTuple = (PathBuf, usize, u64, u64, u64, u64, u64, usize, usize, u32, (u64, u64, u64));

type OccArrays<'py> =
    (Bound<'py, PyArray1<u64>>, Bound<'py, PyArray1<u64>>, Bound<'py, PyArray1<u64>>, Bound<'py, PyArray1<u64>>);

fn occ_arrays<'py>(py: Python<'py>, occ: &[Occurrence]) -> OccArrays<'py> {
    (
        occ.iter().map(|o| o.doc).collect::<Vec<_>>().into_pyarray(py),
        occ.iter().map(|o| o.offset).collect::<Vec<_>>().into_pyarray(py),
        occ.iter().map(|o| o.shard as u64).collect::<Vec<_>>().into_pyarray(py),
        occ.iter().map(|o| o.shard_offset).collect::<Vec<_>>().into_pyarray(py),
    )
}

/// (tokens, counts) of the tokens that follow a prefix.
type NextTuple<'py> = (Bound<'py, PyArray1<u32>>, Bound<'py, PyArray1<i64>>);

/// An opened corpus index (its parts memory-mapped).
#[pyclass(module = "memscore._core", name = "SuffixIndexCore", frozen)]
pub struct SuffixIndexCore {
    inner: SuffixIndex,
}

/// (starts, ends, counts, occurrence span index, occurrence doc / offset / shard / shard offset)
type SpansTuple<'py> = (
    Bound<'py, PyArray1<u64>>,
    Bound<'py, PyArray1<u64>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<u64>>,
    OccArrays<'py>,
);

#[pymethods]
impl SuffixIndexCore {
    /// Open the parts (checksums verified when `verify`).
    #[new]
    fn new(py: Python<'_>, parts: Vec<PartTuple>, verify: bool) -> PyResult<Self> {
        let inner = enter(py, None, |_| {
            let mut entries = Vec::with_capacity(parts.len());
            for (prefix, shard, doc_base, token_base, text_len, n_tokens, n_docs, tw, sw, sep, (a, s, d)) in parts {
                let meta = PartMeta {
                    text_len,
                    n_tokens,
                    n_docs,
                    token_width: tw,
                    sa_width: sw,
                    separator: sep,
                    checksums: [a, s, d],
                };
                let part = Part::open(&prefix, meta, verify)?;
                entries.push(Entry { part, shard, doc_base, token_base });
            }
            Ok(SuffixIndex { parts: entries })
        })?;
        Ok(SuffixIndexCore { inner })
    }

    #[getter]
    fn n_tokens(&self) -> u64 {
        self.inner.n_tokens()
    }

    #[getter]
    fn n_docs(&self) -> u64 {
        self.inner.n_docs()
    }

    /// Counts of the queries `tokens[starts[i]..starts[i + 1]]`.
    fn count<'py>(
        &self,
        py: Python<'py>,
        tokens: PyReadonlyArray1<'py, u32>,
        starts: PyReadonlyArray1<'py, u64>,
    ) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let (t, s) = (slice1(&tokens, "tokens")?, slice1(&starts, "starts")?);
        let ix = &self.inner;
        let out = if s.len() <= SMALL_BATCH {
            // microseconds of work: no hand-off to the pool (see `enter`)
            py.detach(|| ix.count_many(t, s, &Cancel::new())).py()?
        } else {
            enter(py, None, |cancel| ix.count_many(t, s, cancel))?
        };
        Ok(out.into_pyarray(py))
    }

    /// Documents containing each query.
    fn doc_freq<'py>(
        &self,
        py: Python<'py>,
        tokens: PyReadonlyArray1<'py, u32>,
        starts: PyReadonlyArray1<'py, u64>,
    ) -> PyResult<Bound<'py, PyArray1<i64>>> {
        use rayon::prelude::*;
        let (t, s) = (slice1(&tokens, "tokens")?, slice1(&starts, "starts")?);
        let ix = &self.inner;
        let out = enter(py, None, |cancel| {
            let qs = memscore_core::sa::query::split(t, s)?;
            qs.par_iter()
                .map(|q| {
                    cancel.check()?;
                    ix.doc_freq(q).map(|c| c as i64)
                })
                .collect::<memscore_core::Result<Vec<i64>>>()
        })?;
        Ok(out.into_pyarray(py))
    }

    /// Sorted documents containing `q`.
    fn doc_ids<'py>(&self, py: Python<'py>, q: Vec<u32>) -> PyResult<Bound<'py, PyArray1<u64>>> {
        let ix = &self.inner;
        Ok(enter(py, None, |_| ix.doc_ids(&q))?.into_pyarray(py))
    }

    /// Occurrences of `q` (at most `limit`): (doc, offset, shard, shard offset).
    fn positions<'py>(&self, py: Python<'py>, q: Vec<u32>, limit: usize) -> PyResult<OccArrays<'py>> {
        let ix = &self.inner;
        let occ = enter(py, None, |_| ix.positions(&q, limit))?;
        Ok(occ_arrays(py, &occ))
    }

    /// The tokens of document `doc`.
    fn document<'py>(&self, py: Python<'py>, doc: u64) -> PyResult<Bound<'py, PyArray1<u32>>> {
        let ix = &self.inner;
        Ok(enter(py, None, |_| ix.document(doc))?.into_pyarray(py))
    }

    /// (tokens, counts) of the tokens that follow `q`.
    fn next_tokens<'py>(&self, py: Python<'py>, q: Vec<u32>) -> PyResult<NextTuple<'py>> {
        let ix = &self.inner;
        let nt = enter(py, None, |_| ix.next_tokens(&q))?;
        Ok((
            nt.iter().map(|x| x.0).collect::<Vec<_>>().into_pyarray(py),
            nt.iter().map(|x| x.1 as i64).collect::<Vec<_>>().into_pyarray(py),
        ))
    }

    /// (count of suffix + token, occurrences of the suffix followed by a token, suffix length).
    fn infgram(&self, py: Python<'_>, context: Vec<u32>, token: u32) -> PyResult<(u64, u64, usize)> {
        let ix = &self.inner;
        py.detach(|| ix.infgram(&context, token)).py()
    }

    /// Longest match at each position of each text `tokens[starts[i]..starts[i + 1]]`,
    /// flat, in parallel over texts.
    fn longest_match<'py>(
        &self,
        py: Python<'py>,
        tokens: PyReadonlyArray1<'py, u32>,
        starts: PyReadonlyArray1<'py, u64>,
    ) -> PyResult<Bound<'py, PyArray1<u32>>> {
        use rayon::prelude::*;
        let (t, s) = (slice1(&tokens, "tokens")?, slice1(&starts, "starts")?);
        let ix = &self.inner;
        let out = enter(py, None, |cancel| {
            let texts = memscore_core::sa::query::split(t, s)?;
            let per: Vec<Vec<u32>> =
                texts.par_iter().map(|x| ix.longest_match(x, cancel)).collect::<memscore_core::Result<_>>()?;
            Ok(per.concat())
        })?;
        Ok(out.into_pyarray(py))
    }

    /// Maximal matching spans of `tokens`.
    fn spans<'py>(
        &self,
        py: Python<'py>,
        tokens: Vec<u32>,
        min_len: usize,
        max_count: u64,
        n_occurrences: usize,
    ) -> PyResult<SpansTuple<'py>> {
        let ix = &self.inner;
        let spans = enter(py, None, |cancel| ix.spans(&tokens, min_len, max_count, n_occurrences, cancel))?;
        let mut which = Vec::new();
        let mut occ = Vec::new();
        for (k, s) in spans.iter().enumerate() {
            which.extend(std::iter::repeat_n(k as u64, s.occurrences.len()));
            occ.extend_from_slice(&s.occurrences);
        }
        Ok((
            spans.iter().map(|s| s.start as u64).collect::<Vec<_>>().into_pyarray(py),
            spans.iter().map(|s| s.end as u64).collect::<Vec<_>>().into_pyarray(py),
            spans.iter().map(|s| s.count as i64).collect::<Vec<_>>().into_pyarray(py),
            which.into_pyarray(py),
            occ_arrays(py, &occ),
        ))
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<SuffixIndexCore>()?;
    m.add_function(wrap_pyfunction!(sa_build_part, m)?)?;
    m.add_function(wrap_pyfunction!(sa_content_checksum, m)?)?;
    m.add_function(wrap_pyfunction!(sa_peak_bytes, m)?)?;
    Ok(())
}
