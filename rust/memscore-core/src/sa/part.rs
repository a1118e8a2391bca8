//! The on-disk layout of one index part, opened through memory maps.
//!
//! A part `P` is three files, all little-endian, no header:
//!
//! - `P.tokens`: `text_len` token ids, `token_width` (2 or 4) bytes each: the part's
//!   documents in corpus order, one `separator` token between two documents;
//! - `P.sa`: `n_tokens` suffix-array pointers, `sa_width` bytes each (as few as address
//!   `text_len`): the start in `P.tokens` of every suffix that starts at a corpus token, in
//!   lexicographic order of the suffixes (a shorter suffix before its extensions);
//! - `P.docs`: `n_docs` u64, the start in `P.tokens` of each document.
//!
//! The manifest (written by the Python package) holds these numbers and the xxh3-64 of
//! each file. [`Part::open`] checks sizes and document starts always, and the checksums
//! when asked; a query that meets a pointer outside the text reports the part as damaged,
//! so a damaged index gives [`Error::Index`], not a wrong count, once verified.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use xxhash_rust::xxh3::xxh3_64;

use crate::error::{Error, Result};

pub const TOKENS_EXT: &str = ".tokens";
pub const SA_EXT: &str = ".sa";
pub const DOCS_EXT: &str = ".docs";

/// A part's manifest entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartMeta {
    pub text_len: u64,
    pub n_tokens: u64,
    pub n_docs: u64,
    pub token_width: usize,
    pub sa_width: usize,
    pub separator: u32,
    /// xxh3-64 of `.tokens`, `.sa`, `.docs`
    pub checksums: [u64; 3],
}

/// The token file of a part, as its ids.
#[derive(Debug, Clone, Copy)]
pub enum Text<'a> {
    U16(&'a [u16]),
    U32(&'a [u32]),
}

/// The suffix array of a part: `len` pointers of `width` bytes.
#[derive(Debug, Clone, Copy)]
pub struct Sa<'a> {
    bytes: &'a [u8],
    width: usize,
}

impl Sa<'_> {
    pub fn len(&self) -> usize {
        self.bytes.len() / self.width
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Pointer `i` (`i < len`).
    #[inline(always)]
    pub fn get(&self, i: usize) -> u64 {
        let w = self.width;
        let s = &self.bytes[i * w..i * w + w];
        match w {
            4 => u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as u64,
            8 => u64::from_le_bytes(s.try_into().unwrap_or([0; 8])),
            _ => {
                let mut b = [0u8; 8];
                b[..w].copy_from_slice(s);
                u64::from_le_bytes(b)
            }
        }
    }
}

/// One opened part.
#[derive(Debug)]
pub struct Part {
    pub meta: PartMeta,
    pub prefix: PathBuf,
    tokens: Option<Mmap>,
    sa: Option<Mmap>,
    /// document starts in the token file
    pub docs: Vec<u64>,
}

fn map(path: &Path, expect: u64) -> Result<Option<Mmap>> {
    let name = path.display().to_string();
    let file = File::open(path).map_err(|e| Error::index(&name, format!("cannot open ({e})")))?;
    let len = file.metadata().map_err(|e| Error::index(&name, format!("cannot stat ({e})")))?.len();
    if len != expect {
        return Err(Error::index(&name, format!("expected {expect} bytes (from the manifest), found {len}")));
    }
    if len == 0 {
        return Ok(None); // an empty file cannot be mapped
    }
    // SAFETY: the index files are written once (temporary name + rename) and never changed
    // in place; a file replaced under a live map keeps the old contents
    let m = unsafe { Mmap::map(&file) }.map_err(|e| Error::index(&name, format!("cannot memory-map ({e})")))?;
    Ok(Some(m))
}

fn path_with(prefix: &Path, ext: &str) -> PathBuf {
    PathBuf::from(format!("{}{ext}", prefix.display()))
}

impl Part {
    /// Open the part `prefix` described by `meta`: map its token file and suffix array,
    /// read its document starts and check them (and, with `verify`, every checksum).
    ///
    /// # Errors
    ///
    /// [`Error::Index`] naming the file: missing, of another size than the manifest says,
    /// document starts that are not increasing or not after a separator, a checksum that
    /// differs, or a manifest entry that contradicts itself.
    pub fn open(prefix: &Path, meta: PartMeta, verify: bool) -> Result<Part> {
        let name = prefix.display().to_string();
        if cfg!(target_endian = "big") {
            return Err(Error::index(&name, "the index files are little-endian; this machine is big-endian"));
        }
        let m = &meta;
        let bad = |msg: String| Err(Error::index(&name, format!("manifest entry: {msg}")));
        if m.token_width != 2 && m.token_width != 4 {
            return bad(format!("token_width must be 2 or 4, got {}", m.token_width));
        }
        if !(1..=8).contains(&m.sa_width) || m.sa_width < super::pointer_width(m.text_len) {
            return bad(format!("sa_width {} cannot address {} tokens", m.sa_width, m.text_len));
        }
        if m.text_len != m.n_tokens + m.n_docs.saturating_sub(1) || (m.n_docs == 0 && m.n_tokens > 0) {
            return bad(format!(
                "text_len {} != n_tokens {} + n_docs {} - 1 separators",
                m.text_len, m.n_tokens, m.n_docs
            ));
        }
        if m.token_width == 2 && m.separator > u16::MAX as u32 {
            return bad(format!("separator {} does not fit 2-byte tokens", m.separator));
        }
        let tok_bytes = m.text_len.checked_mul(m.token_width as u64);
        let sa_bytes = m.n_tokens.checked_mul(m.sa_width as u64);
        let doc_bytes = m.n_docs.checked_mul(8);
        let (Some(tok_bytes), Some(sa_bytes), Some(doc_bytes)) = (tok_bytes, sa_bytes, doc_bytes) else {
            return bad("sizes overflow".into());
        };
        let tokens = map(&path_with(prefix, TOKENS_EXT), tok_bytes)?;
        let sa = map(&path_with(prefix, SA_EXT), sa_bytes)?;
        let docs_path = path_with(prefix, DOCS_EXT);
        let raw = std::fs::read(&docs_path)
            .map_err(|e| Error::index(docs_path.display().to_string(), format!("cannot read ({e})")))?;
        if raw.len() as u64 != doc_bytes {
            return Err(Error::index(
                docs_path.display().to_string(),
                format!("expected {doc_bytes} bytes (from the manifest), found {}", raw.len()),
            ));
        }
        if verify {
            let files = [(TOKENS_EXT, tokens.as_deref()), (SA_EXT, sa.as_deref()), (DOCS_EXT, Some(&raw[..]))];
            for ((ext, bytes), want) in files.into_iter().zip(m.checksums) {
                let got = xxh3_64(bytes.unwrap_or(&[]));
                if got != want {
                    return Err(Error::index(
                        path_with(prefix, ext).display().to_string(),
                        format!("checksum {got:016x} differs from the manifest's {want:016x}: the file is damaged"),
                    ));
                }
            }
        }
        let docs: Vec<u64> = raw.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect();
        let part = Part { meta, prefix: prefix.to_path_buf(), tokens, sa, docs };
        part.check_docs()?;
        Ok(part)
    }

    /// Document starts: 0 first, increasing, each after a separator.
    fn check_docs(&self) -> Result<()> {
        let path = path_with(&self.prefix, DOCS_EXT).display().to_string();
        let sep = self.meta.separator;
        let mut prev = 0u64;
        for (d, &s) in self.docs.iter().enumerate() {
            let ok =
                if d == 0 { s == 0 } else { s > prev && s <= self.meta.text_len && self.token(s as usize - 1) == sep };
            if !ok {
                return Err(Error::index(&path, format!("document {d} starts at {s}, which is no document start")));
            }
            prev = s;
        }
        Ok(())
    }

    pub fn text(&self) -> Text<'_> {
        let bytes: &[u8] = self.tokens.as_deref().unwrap_or(&[]);
        let n = self.meta.text_len as usize;
        // SAFETY: the map is page-aligned, holds exactly `n` little-endian tokens of the
        // width checked in `open`, and lives as long as `self`
        unsafe {
            if self.meta.token_width == 2 {
                Text::U16(if n == 0 { &[] } else { std::slice::from_raw_parts(bytes.as_ptr() as *const u16, n) })
            } else {
                Text::U32(if n == 0 { &[] } else { std::slice::from_raw_parts(bytes.as_ptr() as *const u32, n) })
            }
        }
    }

    pub fn sa(&self) -> Sa<'_> {
        Sa { bytes: self.sa.as_deref().unwrap_or(&[]), width: self.meta.sa_width }
    }

    /// Token `i` of the token file.
    pub fn token(&self, i: usize) -> u32 {
        match self.text() {
            Text::U16(t) => t[i] as u32,
            Text::U32(t) => t[i],
        }
    }

    /// The document holding token-file position `p`, and `p`'s offset in it.
    pub fn doc_of(&self, p: u64) -> (usize, u64) {
        let d = self.docs.partition_point(|&s| s <= p).saturating_sub(1);
        (d, p - self.docs.get(d).copied().unwrap_or(0))
    }

    /// The token-file range of document `d`.
    pub fn doc_range(&self, d: usize) -> (usize, usize) {
        let a = self.docs[d] as usize;
        let b = self.docs.get(d + 1).map_or(self.meta.text_len as usize, |&s| s as usize - 1);
        (a, b)
    }

    /// The error of a pointer outside the text.
    pub fn damaged(&self, what: &str) -> Error {
        Error::index(
            path_with(&self.prefix, SA_EXT).display().to_string(),
            format!("{what}: the suffix array is damaged (verify the index)"),
        )
    }
}
