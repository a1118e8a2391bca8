//! Exact queries over the parts of a corpus index.
//!
//! In one part, the suffixes that start with an n-gram form one range of the suffix
//! array, found by two binary searches (each comparison reads at most n tokens). Within a
//! range whose suffixes share `depth` tokens, the suffixes are ordered by their token at
//! `depth` (a suffix that ends there first), so [`View::narrow`] extends a match by one
//! token with two more binary searches: next-token counts, the longest match and spans
//! are built from it. Answers over several parts add up (counts) or take the maximum
//! (match lengths).

use std::cmp::Ordering;

use rayon::prelude::*;

use super::part::{Part, Text};
use super::Tok;
use crate::error::{Error, Result};
use crate::pool::Cancel;

/// Batches of at most this many queries run on the calling thread (no pool hand-off: a
/// single count takes microseconds).
pub const SMALL_BATCH: usize = 64;

/// An opened part and where it sits in the corpus.
#[derive(Debug)]
pub struct Entry {
    pub part: Part,
    /// the corpus shard the part belongs to
    pub shard: usize,
    /// index (in the corpus) of the part's first document
    pub doc_base: u64,
    /// offset in its shard's tokens of the part's first token
    pub token_base: u64,
}

/// An opened index: its parts in corpus order.
#[derive(Debug, Default)]
pub struct SuffixIndex {
    pub parts: Vec<Entry>,
}

/// One part's text and suffix array, typed.
struct View<'a, T> {
    text: &'a [T],
    sa: super::part::Sa<'a>,
    sep: u32,
    part: &'a Part,
}

macro_rules! with_view {
    ($part:expr, $v:ident => $body:expr) => {{
        let p: &Part = $part;
        match p.text() {
            Text::U16(text) => {
                let $v = View { text, sa: p.sa(), sep: p.meta.separator, part: p };
                $body
            }
            Text::U32(text) => {
                let $v = View { text, sa: p.sa(), sep: p.meta.separator, part: p };
                $body
            }
        }
    }};
}

impl<T: Tok> View<'_, T> {
    /// Pointer `i` of the suffix array, checked against the text.
    #[inline(always)]
    fn ptr(&self, i: usize) -> Result<usize> {
        let p = self.sa.get(i);
        if (p as usize) < self.text.len() {
            Ok(p as usize)
        } else {
            Err(self.part.damaged(&format!("pointer {i} is {p}, past the {} tokens", self.text.len())))
        }
    }

    /// The token at `depth` of the suffix at `p`, -1 past the end of the text.
    #[inline(always)]
    fn key(&self, p: usize, depth: usize) -> i64 {
        self.text.get(p + depth).map_or(-1, |t| t.id() as i64)
    }

    /// The suffix at `p` against `q`, from `q[from]` on: Equal when `q` is a prefix.
    #[inline(always)]
    fn cmp(&self, p: usize, q: &[u32], from: usize) -> Ordering {
        for (k, &want) in q.iter().enumerate().skip(from) {
            match self.text.get(p + k) {
                None => return Ordering::Less,
                Some(t) => match t.id().cmp(&want) {
                    Ordering::Equal => {}
                    o => return o,
                },
            }
        }
        Ordering::Equal
    }

    /// First index in `[lo, hi)` whose suffix is not before `q` (`strict`: is after `q`).
    fn bound(&self, mut lo: usize, mut hi: usize, q: &[u32], from: usize, strict: bool) -> Result<usize> {
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let o = self.cmp(self.ptr(mid)?, q, from);
            let before = if strict { o != Ordering::Greater } else { o == Ordering::Less };
            if before {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    /// Whether `q` can occur in this part: no separator, no id the token file cannot hold.
    fn representable(&self, q: &[u32]) -> bool {
        let max = if T::WIDTH == 2 { u16::MAX as u32 } else { u32::MAX };
        q.iter().all(|&t| t != self.sep && t <= max)
    }

    /// The range of suffixes starting with `q` (separators allowed in `q`).
    fn range_raw(&self, q: &[u32]) -> Result<(usize, usize)> {
        // narrow to one suffix that starts with q, then find the two ends on either side
        let (mut lo, mut hi) = (0, self.sa.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.cmp(self.ptr(mid)?, q, 0) {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => {
                    let a = self.bound(lo, mid, q, 0, false)?;
                    let b = self.bound(mid + 1, hi, q, 0, true)?;
                    return Ok((a, b));
                }
            }
        }
        Ok((lo, lo))
    }

    /// The range of suffixes starting with the n-gram `q` within one document.
    fn range(&self, q: &[u32]) -> Result<(usize, usize)> {
        if !self.representable(q) {
            return Ok((0, 0));
        }
        self.range_raw(q)
    }

    /// Within `[lo, hi)`, whose suffixes share their first `depth` tokens, the range whose
    /// token at `depth` is `tok`.
    fn narrow(&self, lo: usize, hi: usize, depth: usize, tok: i64) -> Result<(usize, usize)> {
        let first = |strict: bool| -> Result<usize> {
            let (mut a, mut b) = (lo, hi);
            while a < b {
                let mid = a + (b - a) / 2;
                let k = self.key(self.ptr(mid)?, depth);
                if (strict && k <= tok) || (!strict && k < tok) {
                    a = mid + 1;
                } else {
                    b = mid;
                }
            }
            Ok(a)
        };
        let a = first(false)?;
        let b = if a < hi { first(true)? } else { a };
        Ok((a, b))
    }

    /// Occurrences of `q` followed by a token of the same document (the denominators of
    /// next-token probabilities).
    fn followed(&self, q: &[u32]) -> Result<u64> {
        let (lo, hi) = self.range(q)?;
        if q.is_empty() || lo == hi {
            return Ok((hi - lo) as u64);
        }
        let mut with_sep = q.to_vec();
        with_sep.push(self.sep);
        let (a, b) = self.range_raw(&with_sep)?;
        let n = self.text.len();
        let at_end = n >= q.len() && self.cmp(n - q.len(), q, 0) == Ordering::Equal;
        Ok((hi - lo - (b - a) - at_end as usize) as u64)
    }

    /// `(token, count)` of the tokens that follow `q` within a document.
    fn next_tokens(&self, q: &[u32], out: &mut Vec<(u32, u64)>) -> Result<()> {
        let (lo, hi) = self.range(q)?;
        let m = q.len();
        let mut i = lo;
        while i < hi {
            let key = self.key(self.ptr(i)?, m);
            let (_, j) = self.narrow(i, hi, m, key)?;
            if key >= 0 && key as u32 != self.sep {
                out.push((key as u32, (j - i) as u64));
            }
            i = j;
        }
        Ok(())
    }

    /// For each start `i`, the length of the longest `tokens[i..]` prefix in this part.
    fn longest_match(&self, tokens: &[u32], out: &mut [u32], cancel: &Cancel) -> Result<()> {
        let mut prev = 0usize;
        for i in 0..tokens.len() {
            if i % 256 == 0 {
                cancel.check()?;
            }
            // tokens[i..i + prev - 1] occurs: it is part of the previous match
            let mut l = prev.saturating_sub(1);
            let (mut lo, mut hi) = self.range(&tokens[i..i + l])?;
            if lo == hi && l > 0 {
                return Err(self.part.damaged("a match's suffix was not found"));
            }
            while i + l < tokens.len() {
                let t = tokens[i + l];
                if !self.representable(&[t]) {
                    break;
                }
                let (a, b) = self.narrow(lo, hi, l, t as i64)?;
                if a == b {
                    break;
                }
                (lo, hi) = (a, b);
                l += 1;
            }
            out[i] = out[i].max(l as u32);
            prev = l;
        }
        Ok(())
    }
}

/// Where an n-gram occurs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Occurrence {
    /// document index in the corpus
    pub doc: u64,
    /// token offset in the document
    pub offset: u64,
    pub shard: usize,
    /// token offset in the shard
    pub shard_offset: u64,
}

impl Entry {
    fn occurrence(&self, p: u64) -> Occurrence {
        let (d, offset) = self.part.doc_of(p);
        Occurrence {
            doc: self.doc_base + d as u64,
            offset,
            shard: self.shard,
            shard_offset: self.token_base + p - d as u64,
        }
    }
}

/// A maximal matching span of a text: `tokens[start..end]` occurs `count` times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub count: u64,
    /// up to the asked number of occurrences, in corpus order
    pub occurrences: Vec<Occurrence>,
}

impl SuffixIndex {
    pub fn n_tokens(&self) -> u64 {
        self.parts.iter().map(|e| e.part.meta.n_tokens).sum()
    }

    pub fn n_docs(&self) -> u64 {
        self.parts.iter().map(|e| e.part.meta.n_docs).sum()
    }

    /// Occurrences of the n-gram `q` (0 for an empty `q`: no n-gram is empty).
    pub fn count(&self, q: &[u32]) -> Result<u64> {
        if q.is_empty() {
            return Ok(0);
        }
        self.parts.iter().try_fold(
            0u64,
            |acc, e| with_view!(&e.part, v => { let (lo, hi) = v.range(q)?; Ok(acc + (hi - lo) as u64) }),
        )
    }

    /// Counts of many n-grams (`tokens[starts[i]..starts[i + 1]]`), in parallel.
    pub fn count_many(&self, tokens: &[u32], starts: &[u64], cancel: &Cancel) -> Result<Vec<i64>> {
        let queries = split(tokens, starts)?;
        if queries.len() <= SMALL_BATCH {
            return queries.iter().map(|q| self.count(q).map(|c| c as i64)).collect();
        }
        queries
            .par_chunks(1024)
            .map(|chunk| {
                cancel.check()?;
                chunk.iter().map(|q| self.count(q).map(|c| c as i64)).collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()
            .map(|v| v.concat())
    }

    /// Occurrences of `q` (at most `limit`, taken part by part in suffix order), sorted
    /// by document and offset.
    pub fn positions(&self, q: &[u32], limit: usize) -> Result<Vec<Occurrence>> {
        let mut out = Vec::new();
        if q.is_empty() {
            return Ok(out);
        }
        for e in &self.parts {
            if out.len() >= limit {
                break;
            }
            with_view!(&e.part, v => {
                let (lo, hi) = v.range(q)?;
                let take = (hi - lo).min(limit - out.len());
                for i in lo..lo + take {
                    out.push(e.occurrence(v.ptr(i)? as u64));
                }
            });
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Number of documents that contain `q`.
    pub fn doc_freq(&self, q: &[u32]) -> Result<u64> {
        Ok(self.doc_ids(q)?.len() as u64)
    }

    /// The documents that contain `q`, sorted.
    pub fn doc_ids(&self, q: &[u32]) -> Result<Vec<u64>> {
        let mut docs = Vec::new();
        if q.is_empty() {
            return Ok(docs);
        }
        for e in &self.parts {
            with_view!(&e.part, v => {
                let (lo, hi) = v.range(q)?;
                for i in lo..hi {
                    docs.push(e.doc_base + e.part.doc_of(v.ptr(i)? as u64).0 as u64);
                }
            });
        }
        docs.sort_unstable();
        docs.dedup();
        Ok(docs)
    }

    /// The tokens of document `doc` (corpus numbering).
    pub fn document(&self, doc: u64) -> Result<Vec<u32>> {
        let k = self.parts.partition_point(|e| e.doc_base <= doc);
        let e = k.checked_sub(1).map(|k| &self.parts[k]).filter(|e| doc < e.doc_base + e.part.meta.n_docs);
        let Some(e) = e else {
            return Err(Error::Invalid(format!("doc_id: expected 0 <= doc_id < {}, got {doc}", self.n_docs())));
        };
        let (a, b) = e.part.doc_range((doc - e.doc_base) as usize);
        Ok(match e.part.text() {
            Text::U16(t) => t[a..b].iter().map(|&x| x as u32).collect(),
            Text::U32(t) => t[a..b].to_vec(),
        })
    }

    /// The tokens that follow `q` within a document, with their counts, by token id.
    pub fn next_tokens(&self, q: &[u32]) -> Result<Vec<(u32, u64)>> {
        let mut all = Vec::new();
        for e in &self.parts {
            with_view!(&e.part, v => v.next_tokens(q, &mut all))?;
        }
        all.sort_unstable();
        let mut out: Vec<(u32, u64)> = Vec::with_capacity(all.len());
        for (t, c) in all {
            match out.last_mut() {
                Some((lt, lc)) if *lt == t => *lc += c,
                _ => out.push((t, c)),
            }
        }
        Ok(out)
    }

    /// Occurrences of `q` followed by a token of the same document.
    pub fn followed(&self, q: &[u32]) -> Result<u64> {
        self.parts.iter().try_fold(0u64, |acc, e| Ok(acc + with_view!(&e.part, v => v.followed(q))?))
    }

    /// The ∞-gram probability of `token` after `context`: from the longest suffix of the
    /// context that is followed by some token in the corpus, `(count of suffix + token,
    /// occurrences of the suffix followed by a token, suffix length)`.
    pub fn infgram(&self, context: &[u32], token: u32) -> Result<(u64, u64, usize)> {
        // followed(suffix of length k) only falls as k grows: binary search the largest k
        let (mut lo, mut hi) = (0usize, context.len()); // followed(len 0) = n_tokens
        while lo < hi {
            let k = lo + (hi - lo).div_ceil(2);
            if self.followed(&context[context.len() - k..])? > 0 {
                lo = k;
            } else {
                hi = k - 1;
            }
        }
        let suffix = &context[context.len() - lo..];
        let den = self.followed(suffix)?;
        let mut q = suffix.to_vec();
        q.push(token);
        Ok((self.count(&q)?, den, lo))
    }

    /// For each position of `tokens`, the length of the longest corpus match starting there.
    pub fn longest_match(&self, tokens: &[u32], cancel: &Cancel) -> Result<Vec<u32>> {
        let mut out = vec![0u32; tokens.len()];
        for e in &self.parts {
            with_view!(&e.part, v => v.longest_match(tokens, &mut out, cancel))?;
        }
        Ok(out)
    }

    /// The maximal matching spans of `tokens` at least `min_len` long that occur at most
    /// `max_count` times, each with up to `n_occurrences` of its occurrences.
    pub fn spans(
        &self,
        tokens: &[u32],
        min_len: usize,
        max_count: u64,
        n_occurrences: usize,
        cancel: &Cancel,
    ) -> Result<Vec<Span>> {
        let lm = self.longest_match(tokens, cancel)?;
        let mut out = Vec::new();
        let mut prev_end = 0usize;
        for (i, &l) in lm.iter().enumerate() {
            let end = i + l as usize;
            // a span is maximal when it ends after every span that starts before it
            if l > 0 && end > prev_end {
                if l as usize >= min_len.max(1) {
                    let q = &tokens[i..end];
                    let count = self.count(q)?;
                    if count <= max_count {
                        let occurrences = self.positions(q, n_occurrences)?;
                        out.push(Span { start: i, end, count, occurrences });
                    }
                }
                prev_end = end;
            }
        }
        Ok(out)
    }
}

/// Queries `tokens[starts[i]..starts[i + 1]]` (the last to the end).
pub fn split<'t>(tokens: &'t [u32], starts: &[u64]) -> Result<Vec<&'t [u32]>> {
    let mut out = Vec::with_capacity(starts.len());
    for (i, &s) in starts.iter().enumerate() {
        let e = starts.get(i + 1).copied().unwrap_or(tokens.len() as u64);
        if s > e || e > tokens.len() as u64 {
            return Err(Error::Invalid(format!("query starts must not decrease and stay within the tokens: {s}..{e}")));
        }
        out.push(&tokens[s as usize..e as usize]);
    }
    Ok(out)
}
