//! Build one part of a corpus index: lay its documents out with separators, have libsais
//! sort the suffixes, and write the three files atomically (temporary name, fsync, rename).
//!
//! Memory: the text with separators (2 or 4 bytes a token) plus the suffix array as libsais
//! builds it (4 bytes a token below 2^31 positions, else 8); u32 tokens add a 4-byte copy
//! when their values must be renumbered for libsais (ids too large for its alphabet).
//! [`peak_bytes`] states it, so a caller can cut shards into parts that fit a memory cap.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use libsais::suffix_array::AlphabetSize;
use libsais::SuffixArrayConstruction;
use rustc_hash::FxHashSet;
use xxhash_rust::xxh3::Xxh3;

use super::part::{DOCS_EXT, SA_EXT, TOKENS_EXT};
use super::{pointer_width, Tok};
use crate::error::{Error, Result};
use crate::ngram::source::check_offsets;
use crate::pool::Cancel;

/// The tokens of one part: the flat ids of its documents, as the corpus holds them.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    U16(&'a [u16]),
    U32(&'a [u32]),
}

impl Input<'_> {
    pub fn len(&self) -> usize {
        match self {
            Input::U16(t) => t.len(),
            Input::U32(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a built part is: the manifest entry's numbers (see [`super::part::PartMeta`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// tokens in the token file: the corpus tokens plus one separator between documents
    pub text_len: u64,
    /// corpus tokens (entries of the suffix array)
    pub n_tokens: u64,
    pub n_docs: u64,
    /// 2 (u16) or 4 (u32) bytes per token in the token file
    pub token_width: usize,
    /// bytes per suffix-array pointer
    pub sa_width: usize,
    /// the separator's token value (absent from the part's documents)
    pub separator: u32,
    /// xxh3-64 of the token file, the suffix array and the document starts
    pub checksums: [u64; 3],
}

/// Bytes a build of `n_tokens` tokens in `n_docs` documents holds at its peak, for tokens
/// stored `token_width` bytes wide (2 or 4).
pub fn peak_bytes(n_tokens: u64, n_docs: u64, token_width: usize) -> u64 {
    let n = n_tokens + n_docs.saturating_sub(1);
    let sa = if n < i32::MAX as u64 { 4 } else { 8 };
    // u32 ids may need a renumbered copy for libsais (as wide as the suffix array)
    let copy = if token_width == 4 { sa } else { 0 };
    n * (token_width as u64 + sa + copy) + (1 << 20)
}

/// The separator for u16 tokens: the largest value absent from them, or None when all
/// 65,536 occur (the part is then stored as u32).
fn separator16(tokens: &[u16]) -> Option<u16> {
    let mut seen = vec![false; 1 << 16];
    for &t in tokens {
        seen[t as usize] = true;
    }
    (0..=u16::MAX).rev().find(|&v| !seen[v as usize])
}

/// The separator for u32 tokens: the largest token + 1, or (when `u32::MAX` occurs) the
/// largest value absent.
fn separator32(tokens: &[u32]) -> u32 {
    let max = tokens.iter().copied().max().unwrap_or(0);
    if max < u32::MAX {
        return max + 1;
    }
    let seen: FxHashSet<u32> = tokens.iter().copied().collect();
    (0..=u32::MAX).rev().find(|v| !seen.contains(v)).unwrap_or(0) // at most 2^32 - 1 distinct ids fit memory
}

fn try_vec<T: Clone>(n: usize, fill: T, what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| Error::memory(what, n as u128 * std::mem::size_of::<T>() as u128))?;
    v.resize(n, fill);
    Ok(v)
}

/// The documents of `tokens` (starts `offsets`) with `sep` between two documents.
fn layout<S: Copy, T: Copy>(tokens: &[S], offsets: &[u64], sep: T, conv: impl Fn(S) -> T) -> Result<Vec<T>> {
    let n = tokens.len() + offsets.len().saturating_sub(1);
    let mut text = Vec::new();
    text.try_reserve_exact(n)
        .map_err(|_| Error::memory("the index text", n as u128 * std::mem::size_of::<T>() as u128))?;
    for (d, &o) in offsets.iter().enumerate() {
        if d > 0 {
            text.push(sep);
        }
        let end = offsets.get(d + 1).map_or(tokens.len(), |&e| e as usize);
        text.extend(tokens[o as usize..end].iter().map(|&t| conv(t)));
    }
    Ok(text)
}

/// The suffix array of a text as libsais returns it.
enum Sorted {
    I32(Vec<i32>),
    I64(Vec<i64>),
}

fn sais_error(e: libsais::LibsaisError) -> Error {
    match e {
        libsais::LibsaisError::OutOfMemory => Error::memory("libsais's suffix sorting", 0),
        e => Error::Invalid(format!("libsais failed to sort the suffixes: {e:?}")),
    }
}

fn sort16(text: &[u16]) -> Result<Sorted> {
    if text.len() < i32::MAX as usize {
        let mut sa = try_vec(text.len(), 0i32, "the suffix array")?;
        SuffixArrayConstruction::for_text(text)
            .in_borrowed_buffer(&mut sa)
            .single_threaded()
            .run()
            .map_err(sais_error)?;
        Ok(Sorted::I32(sa))
    } else {
        let mut sa = try_vec(text.len(), 0i64, "the suffix array")?;
        SuffixArrayConstruction::for_text(text)
            .in_borrowed_buffer(&mut sa)
            .single_threaded()
            .run()
            .map_err(sais_error)?;
        Ok(Sorted::I64(sa))
    }
}

/// Dense ranks of the values of `text` (order kept), for ids too large for libsais's
/// alphabet: (rank of each value, number of distinct values).
fn ranks(text: &[u32]) -> (rustc_hash::FxHashMap<u32, u32>, usize) {
    let mut distinct: Vec<u32> = text.iter().copied().collect::<FxHashSet<u32>>().into_iter().collect();
    distinct.sort_unstable();
    let k = distinct.len();
    (distinct.into_iter().enumerate().map(|(r, v)| (v, r as u32)).collect(), k)
}

fn sort32(text: &mut [u32], sep: u32) -> Result<Sorted> {
    let n = text.len();
    // libsais's memory grows with the alphabet: ids far above the text's length are renumbered
    let alphabet = sep as u64 + 1;
    let direct = alphabet <= (n as u64).max(1 << 24) && alphabet < i32::MAX as u64;
    if n < i32::MAX as usize {
        let mut sa = try_vec(n, 0i32, "the suffix array")?;
        if direct {
            // SAFETY: u32 and i32 share size and alignment, and every value is below 2^31,
            // so the text reads as the same non-negative i32 values; libsais restores it
            let as_i32 = unsafe { std::slice::from_raw_parts_mut(text.as_mut_ptr() as *mut i32, n) };
            let c = SuffixArrayConstruction::for_text_mut(as_i32).in_borrowed_buffer(&mut sa).single_threaded();
            // SAFETY: every value is at most `sep`
            unsafe { c.with_alphabet_size(AlphabetSize::new(alphabet as i32)) }.run().map_err(sais_error)?;
        } else {
            let (rank, k) = ranks(text);
            let mut dense = try_vec(n, 0i32, "the renumbered index text")?;
            for (d, t) in dense.iter_mut().zip(text.iter()) {
                *d = rank[t] as i32;
            }
            let c = SuffixArrayConstruction::for_text_mut(&mut dense[..]).in_borrowed_buffer(&mut sa).single_threaded();
            // SAFETY: ranks are below the number of distinct values
            unsafe { c.with_alphabet_size(AlphabetSize::new(k as i32)) }.run().map_err(sais_error)?;
        }
        Ok(Sorted::I32(sa))
    } else {
        let mut sa = try_vec(n, 0i64, "the suffix array")?;
        let mut wide = try_vec(n, 0i64, "the widened index text")?;
        let k = if direct {
            for (w, &t) in wide.iter_mut().zip(text.iter()) {
                *w = t as i64;
            }
            alphabet as i64
        } else {
            let (rank, k) = ranks(text);
            for (w, t) in wide.iter_mut().zip(text.iter()) {
                *w = rank[t] as i64;
            }
            k as i64
        };
        let c = SuffixArrayConstruction::for_text_mut(&mut wide[..]).in_borrowed_buffer(&mut sa).single_threaded();
        // SAFETY: every value is below k
        unsafe { c.with_alphabet_size(AlphabetSize::new(k)) }.run().map_err(sais_error)?;
        Ok(Sorted::I64(sa))
    }
}

/// A file written under a temporary name and hashed as it goes; [`Self::commit`] syncs it
/// and renames it into place.
struct Staged {
    tmp: PathBuf,
    dest: PathBuf,
    out: Option<BufWriter<File>>,
    hash: Xxh3,
}

impl Staged {
    fn create(dest: PathBuf) -> Result<Staged> {
        // `.tmp-<unique>-<name>` in the same directory: the package's temporary-file
        // convention (`memscore ngrams clean` removes leftovers of killed writers)
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = dest.with_file_name(format!(".tmp-{}-{nanos:x}-{name}", std::process::id()));
        let file = File::create(&tmp).map_err(|e| io_error(&tmp, e))?;
        Ok(Staged { tmp, dest, out: Some(BufWriter::with_capacity(1 << 22, file)), hash: Xxh3::new() })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.hash.update(bytes);
        match self.out.as_mut() {
            Some(out) => out.write_all(bytes).map_err(|e| io_error(&self.tmp, e)),
            None => Ok(()),
        }
    }

    fn commit(mut self) -> Result<u64> {
        if let Some(out) = self.out.take() {
            let file = out.into_inner().map_err(|e| io_error(&self.tmp, e.into_error()))?;
            file.sync_all().map_err(|e| io_error(&self.tmp, e))?;
            fs::rename(&self.tmp, &self.dest).map_err(|e| io_error(&self.dest, e))?;
        }
        Ok(self.hash.digest())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        // a failed write leaves no temporary file behind (after a commit it is gone already)
        let _ = fs::remove_file(&self.tmp);
    }
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::Io { path: path.display().to_string(), kind: e.kind(), msg: e.to_string() }
}

fn with_ext(prefix: &Path, ext: &str) -> PathBuf {
    PathBuf::from(format!("{}{ext}", prefix.display()))
}

/// Write the token file: the text, little-endian.
fn write_text<T: Tok>(prefix: &Path, text: &[T], to_le: impl Fn(T, &mut Vec<u8>)) -> Result<u64> {
    let mut f = Staged::create(with_ext(prefix, TOKENS_EXT))?;
    let mut buf = Vec::with_capacity(1 << 20);
    for chunk in text.chunks(1 << 18) {
        buf.clear();
        for &t in chunk {
            to_le(t, &mut buf);
        }
        f.write(&buf)?;
    }
    f.commit()
}

/// Write the suffix array without the suffixes that start at a separator, `width` bytes a
/// pointer, little-endian.
fn write_sa<T: Tok>(prefix: &Path, sorted: &Sorted, text: &[T], sep: u32, width: usize) -> Result<u64> {
    let mut f = Staged::create(with_ext(prefix, SA_EXT))?;
    let mut buf = Vec::with_capacity((1 << 18) * width);
    let put = |p: u64, buf: &mut Vec<u8>, f: &mut Staged| -> Result<()> {
        if text[p as usize].id() != sep {
            buf.extend_from_slice(&p.to_le_bytes()[..width]);
            if buf.len() >= (1 << 18) * width {
                f.write(buf)?;
                buf.clear();
            }
        }
        Ok(())
    };
    match sorted {
        Sorted::I32(sa) => sa.iter().try_for_each(|&p| put(p as u64, &mut buf, &mut f))?,
        Sorted::I64(sa) => sa.iter().try_for_each(|&p| put(p as u64, &mut buf, &mut f))?,
    }
    f.write(&buf)?;
    f.commit()
}

/// Write the document starts in the token file, u64 little-endian.
fn write_docs(prefix: &Path, offsets: &[u64]) -> Result<u64> {
    let mut f = Staged::create(with_ext(prefix, DOCS_EXT))?;
    let mut buf = Vec::with_capacity(offsets.len().min(1 << 18) * 8);
    for (d, &o) in offsets.iter().enumerate() {
        buf.extend_from_slice(&(o + d as u64).to_le_bytes());
        if buf.len() >= (1 << 18) * 8 {
            f.write(&buf)?;
            buf.clear();
        }
    }
    f.write(&buf)?;
    f.commit()
}

fn finish<T: Tok>(
    prefix: &Path,
    text: &[T],
    sorted: Sorted,
    offsets: &[u64],
    sep: u32,
    to_le: impl Fn(T, &mut Vec<u8>),
    cancel: &Cancel,
) -> Result<Built> {
    cancel.check()?;
    let n_docs = offsets.len() as u64;
    let text_len = text.len() as u64;
    let width = pointer_width(text_len);
    let c_sa = write_sa(prefix, &sorted, text, sep, width)?;
    drop(sorted);
    cancel.check()?;
    let c_tok = write_text(prefix, text, to_le)?;
    let c_docs = write_docs(prefix, offsets)?;
    Ok(Built {
        text_len,
        n_tokens: text_len - n_docs.saturating_sub(1),
        n_docs,
        token_width: T::WIDTH,
        sa_width: width,
        separator: sep,
        checksums: [c_tok, c_sa, c_docs],
    })
}

fn le16(t: u16, b: &mut Vec<u8>) {
    b.extend_from_slice(&t.to_le_bytes());
}

fn le32(t: u32, b: &mut Vec<u8>) {
    b.extend_from_slice(&t.to_le_bytes());
}

/// Build the part `prefix` (files `prefix.tokens`, `prefix.sa`, `prefix.docs`) from
/// `tokens`, whose documents start at `offsets` (first 0, never decreasing, within the
/// tokens; equal offsets make empty documents).
///
/// # Errors
///
/// [`Error::Corpus`] for bad offsets, [`Error::Memory`] when the text or the suffix array
/// cannot be allocated, [`Error::Io`] when a file cannot be written, [`Error::Cancelled`].
pub fn build_part(input: Input<'_>, offsets: &[u64], prefix: &Path, cancel: &Cancel) -> Result<Built> {
    let name = prefix.display().to_string();
    check_offsets(&name, input.len(), offsets)?;
    match input {
        Input::U16(tokens) => match separator16(tokens) {
            Some(sep) => {
                let text = layout(tokens, offsets, sep, |t| t)?;
                cancel.check()?;
                let sorted = if text.is_empty() { Sorted::I32(Vec::new()) } else { sort16(&text)? };
                finish(prefix, &text, sorted, offsets, sep as u32, le16, cancel)
            }
            // every u16 value occurs: store the part as u32, with 65,536 as the separator
            None => build32(tokens, offsets, 1 << 16, prefix, cancel),
        },
        Input::U32(tokens) => build32(tokens, offsets, separator32(tokens), prefix, cancel),
    }
}

fn build32<S: Tok>(tokens: &[S], offsets: &[u64], sep: u32, prefix: &Path, cancel: &Cancel) -> Result<Built> {
    let mut text = layout(tokens, offsets, sep, |t| t.id())?;
    cancel.check()?;
    let sorted = if text.is_empty() { Sorted::I32(Vec::new()) } else { sort32(&mut text, sep)? };
    finish(prefix, &text, sorted, offsets, sep, le32, cancel)
}

/// xxh3-64 of a token shard's content: its token ids (as u32) and document offsets, so a
/// manifest can tell whether an index was built from these tokens.
pub fn content_checksum(input: Input<'_>, offsets: &[u64]) -> u64 {
    let mut h = Xxh3::new();
    let mut buf = Vec::with_capacity(1 << 20);
    match input {
        Input::U16(t) => {
            for c in t.chunks(1 << 18) {
                buf.clear();
                c.iter().for_each(|&x| le32(x as u32, &mut buf));
                h.update(&buf);
            }
        }
        Input::U32(t) => {
            for c in t.chunks(1 << 18) {
                buf.clear();
                c.iter().for_each(|&x| le32(x, &mut buf));
                h.update(&buf);
            }
        }
    }
    h.update(&(input.len() as u64).to_le_bytes());
    for o in offsets {
        h.update(&o.to_le_bytes());
    }
    h.digest()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators() {
        assert_eq!(separator16(&[1, 2, 65535]), Some(65534));
        let all: Vec<u16> = (0..=u16::MAX).collect();
        assert_eq!(separator16(&all), None);
        assert_eq!(separator32(&[3, 9]), 10);
        assert_eq!(separator32(&[u32::MAX, u32::MAX - 1]), u32::MAX - 2);
    }

    #[test]
    fn layout_puts_separators_between_documents() {
        let t = layout(&[1u16, 2, 3], &[0, 2, 2, 3], 9u16, |t| t).unwrap();
        assert_eq!(t, vec![1, 2, 9, 9, 3, 9]);
    }
}
