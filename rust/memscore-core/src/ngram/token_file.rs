//! Token files on disk, read piece by piece: the element types token ids are stored as,
//! files stored in numbered parts and read in place as one (Pythia's preshuffled Pile ships
//! its `.bin` in 21 parts), and the document offsets of a Megatron / GPT-NeoX
//! `MMapIndexedDataset` index (`.idx`), streamed and checked as they go by.
//!
//! The `.idx` layout (little-endian): the 9-byte magic `MMIDIDX\0\0`, a u64 version (1), a
//! u8 dtype code, a u64 sequence count `n`, a u64 document-index length `m`, then `sizes`
//! (`n` i32: tokens per sequence), `pointers` (`n` i64: byte offset of each sequence in the
//! `.bin`) and the document index (`m` i64: the first sequence of each document, ending
//! with `n`). Python reads and checks the header and the file sizes; this module reads the
//! three arrays a few MB at a time, so memory does not grow with the corpus.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// How token ids are stored: the element types of `.npy` token shards and of the Megatron
/// dtype codes. Every value must be a token id (an integer in `0..=u32::MAX`), else the
/// count fails naming the file and the token's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
}

impl TokenType {
    /// The numpy name (`"uint16"`, `"int32"`, `"float64"`...) of a type.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "uint8" => TokenType::U8,
            "int8" => TokenType::I8,
            "uint16" => TokenType::U16,
            "int16" => TokenType::I16,
            "uint32" => TokenType::U32,
            "int32" => TokenType::I32,
            "uint64" => TokenType::U64,
            "int64" => TokenType::I64,
            "float32" => TokenType::F32,
            "float64" => TokenType::F64,
            _ => return None,
        })
    }

    /// Bytes per token.
    pub fn width(self) -> usize {
        match self {
            TokenType::U8 | TokenType::I8 => 1,
            TokenType::U16 | TokenType::I16 => 2,
            TokenType::U32 | TokenType::I32 | TokenType::F32 => 4,
            TokenType::U64 | TokenType::I64 | TokenType::F64 => 8,
        }
    }

    /// Decode little-endian `bytes` into token ids appended to `out`. On a value that is no
    /// token id (negative, past u32, not an integer), returns its index in `bytes` (in
    /// tokens) and the value as text; `out` then holds the ids before it.
    pub fn decode(self, bytes: &[u8], out: &mut Vec<u32>) -> std::result::Result<(), (usize, String)> {
        fn ints<const W: usize>(
            bytes: &[u8],
            out: &mut Vec<u32>,
            f: impl Fn([u8; W]) -> Option<u32>,
            show: impl Fn([u8; W]) -> String,
        ) -> std::result::Result<(), (usize, String)> {
            out.reserve(bytes.len() / W);
            for (k, c) in bytes.chunks_exact(W).enumerate() {
                let b: [u8; W] = c.try_into().expect("chunks_exact gives W bytes");
                match f(b) {
                    Some(v) => out.push(v),
                    None => return Err((k, show(b))),
                }
            }
            Ok(())
        }
        fn float(v: f64) -> Option<u32> {
            (v >= 0.0 && v <= u32::MAX as f64 && v.fract() == 0.0).then_some(v as u32)
        }
        match self {
            TokenType::U8 => ints::<1>(bytes, out, |b| Some(b[0] as u32), |b| b[0].to_string()),
            TokenType::I8 => ints::<1>(
                bytes,
                out,
                |b| u32::try_from(i8::from_le_bytes(b)).ok(),
                |b| i8::from_le_bytes(b).to_string(),
            ),
            TokenType::U16 => ints::<2>(bytes, out, |b| Some(u16::from_le_bytes(b) as u32), |_| String::new()),
            TokenType::I16 => ints::<2>(
                bytes,
                out,
                |b| u32::try_from(i16::from_le_bytes(b)).ok(),
                |b| i16::from_le_bytes(b).to_string(),
            ),
            TokenType::U32 => ints::<4>(bytes, out, |b| Some(u32::from_le_bytes(b)), |_| String::new()),
            TokenType::I32 => ints::<4>(
                bytes,
                out,
                |b| u32::try_from(i32::from_le_bytes(b)).ok(),
                |b| i32::from_le_bytes(b).to_string(),
            ),
            TokenType::U64 => ints::<8>(
                bytes,
                out,
                |b| u32::try_from(u64::from_le_bytes(b)).ok(),
                |b| u64::from_le_bytes(b).to_string(),
            ),
            TokenType::I64 => ints::<8>(
                bytes,
                out,
                |b| u32::try_from(i64::from_le_bytes(b)).ok(),
                |b| i64::from_le_bytes(b).to_string(),
            ),
            TokenType::F32 => {
                ints::<4>(bytes, out, |b| float(f32::from_le_bytes(b) as f64), |b| f32::from_le_bytes(b).to_string())
            }
            TokenType::F64 => {
                ints::<8>(bytes, out, |b| float(f64::from_le_bytes(b)), |b| f64::from_le_bytes(b).to_string())
            }
        }
    }
}

/// Files read in place as their concatenation: each part's path and the byte of the whole
/// where it starts. Sizes are read once, when a count starts.
#[derive(Debug, Clone)]
pub struct Span {
    parts: Vec<(PathBuf, u64)>,
    len: u64,
}

impl Span {
    /// The parts `paths`, in order; `name` names the shard in errors.
    pub fn open(name: &str, paths: &[PathBuf]) -> Result<Span> {
        if paths.is_empty() {
            return Err(Error::Invalid(format!("{name}: a token file needs at least one part")));
        }
        let mut parts = Vec::with_capacity(paths.len());
        let mut len = 0u64;
        for p in paths {
            let size = std::fs::metadata(p)
                .map_err(|e| Error::corpus(&p.display().to_string(), 0, format!("cannot open: {e}")))?
                .len();
            parts.push((p.clone(), len));
            len += size;
        }
        Ok(Span { parts, len })
    }

    /// Bytes of all parts together.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The part holding byte `at` (a byte past the end maps to the last part).
    fn part(&self, at: u64) -> usize {
        self.parts.partition_point(|&(_, start)| start <= at).saturating_sub(1)
    }

    /// Read `buf.len()` bytes starting at byte `at` of the whole, across parts.
    pub fn read_at(&self, at: u64, buf: &mut [u8]) -> Result<()> {
        let mut k = self.part(at);
        let (mut pos, mut done) = (at, 0usize);
        while done < buf.len() {
            let (path, start) = &self.parts[k];
            let end = self.parts.get(k + 1).map_or(self.len, |p| p.1);
            let n = ((end - pos) as usize).min(buf.len() - done);
            let name = path.display().to_string();
            let mut f = File::open(path).map_err(|e| Error::corpus(&name, 0, format!("cannot open: {e}")))?;
            f.seek(SeekFrom::Start(pos - start))
                .and_then(|_| f.read_exact(&mut buf[done..done + n]))
                .map_err(|e| Error::corpus(&name, 0, format!("cannot read tokens at byte {}: {e}", pos - start)))?;
            done += n;
            pos += n as u64;
            k += 1;
            if done < buf.len() && k == self.parts.len() {
                return Err(Error::corpus(&name, 0, format!("truncated: no byte {pos} in the parts")));
            }
        }
        Ok(())
    }

    /// The part holding byte `at` and the byte within it, for messages.
    pub fn locate(&self, at: u64) -> (String, u64) {
        let (path, start) = &self.parts[self.part(at)];
        (path.display().to_string(), at - start)
    }
}

/// Bytes of a Megatron `.idx` header.
pub const MEGATRON_HEADER: u64 = 34;

/// The arrays of a Megatron `.idx` whose header was read (by Python): `n_seqs` sequences
/// and `n_entries` document-index entries (documents + 1), over a `.bin` of `width`-byte
/// tokens.
#[derive(Debug, Clone)]
pub struct MegatronIndex {
    pub path: PathBuf,
    pub n_seqs: usize,
    pub n_entries: usize,
    pub width: usize,
}

/// Little-endian integers of a file region, read through a buffer.
struct IntStream {
    r: BufReader<File>,
    width: usize,
}

impl IntStream {
    fn open(path: &Path, at: u64, width: usize) -> std::io::Result<Self> {
        let mut f = File::open(path)?;
        f.seek(SeekFrom::Start(at))?;
        Ok(IntStream { r: BufReader::with_capacity(1 << 20, f), width })
    }

    fn next(&mut self) -> std::io::Result<i64> {
        let mut b = [0u8; 8];
        self.r.read_exact(&mut b[..self.width])?;
        Ok(if self.width == 4 { i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64 } else { i64::from_le_bytes(b) })
    }
}

impl MegatronIndex {
    /// Documents (the last entry of the document index only ends the last document).
    pub fn n_docs(&self) -> usize {
        self.n_entries.saturating_sub(1)
    }

    fn name(&self) -> String {
        self.path.display().to_string()
    }

    fn err(&self, msg: String) -> Error {
        Error::corpus(&self.name(), 0, msg)
    }

    fn stream(&self, at: u64, width: usize, what: &str) -> Result<IntStream> {
        IntStream::open(&self.path, at, width).map_err(|e| self.err(format!("cannot read the {what}: {e}")))
    }

    fn sizes_at(&self) -> u64 {
        MEGATRON_HEADER
    }

    fn pointers_at(&self) -> u64 {
        MEGATRON_HEADER + 4 * self.n_seqs as u64
    }

    fn doc_index_at(&self) -> u64 {
        MEGATRON_HEADER + 12 * self.n_seqs as u64
    }

    /// Check the whole index against a `.bin` of `n_tokens` tokens, calling `doc(d, start)`
    /// with the first token of every document in order: sizes are not negative, pointers
    /// are the running byte total (sequences stored back to back from byte 0, as every
    /// Megatron builder writes them), the document index starts at 0, never decreases and
    /// ends at the sequence count, and the sizes add up to the `.bin`'s tokens.
    pub fn walk(&self, n_tokens: usize, mut doc: impl FnMut(usize, u64)) -> Result<()> {
        if self.n_entries == 0 {
            return Err(self.err("the document index is empty (it must hold at least the entry 0)".into()));
        }
        let read = |e: std::io::Error, what: &str, i: usize| self.err(format!("cannot read {what}[{i}]: {e}"));
        let mut sizes = self.stream(self.sizes_at(), 4, "sizes")?;
        let mut pointers = self.stream(self.pointers_at(), 8, "pointers")?;
        let mut docs = self.stream(self.doc_index_at(), 8, "document index")?;
        let w = self.width as u64;
        let (mut seq, mut tokens, mut prev) = (0usize, 0u64, 0i64);
        for d in 0..self.n_entries {
            let first = docs.next().map_err(|e| read(e, "doc_idx", d))?;
            if d == 0 && first != 0 {
                return Err(self.err(format!("the document index must start at 0, got {first}")));
            }
            if first < prev {
                return Err(self.err(format!("the document index must not decrease: doc_idx[{d}] = {first} < {prev}")));
            }
            if first as u64 > self.n_seqs as u64 {
                return Err(
                    self.err(format!("doc_idx[{d}] = {first} is past the {} sequences of the index", self.n_seqs))
                );
            }
            prev = first;
            while (seq as i64) < first {
                let size = sizes.next().map_err(|e| read(e, "sizes", seq))?;
                let ptr = pointers.next().map_err(|e| read(e, "pointers", seq))?;
                if size < 0 {
                    return Err(self.err(format!("sizes[{seq}] = {size} is negative")));
                }
                if ptr as i128 != (tokens * w) as i128 {
                    return Err(self.err(format!(
                        "pointers[{seq}] = {ptr}, expected {} (sequences stored back to back: a damaged index)",
                        tokens * w
                    )));
                }
                tokens += size as u64;
                seq += 1;
            }
            if d + 1 < self.n_entries {
                doc(d, tokens);
            }
        }
        if prev as u64 != self.n_seqs as u64 {
            return Err(self.err(format!(
                "the document index ends at sequence {prev}, but the index holds {} sequences",
                self.n_seqs
            )));
        }
        if tokens != n_tokens as u64 {
            return Err(self.err(format!(
                "its sizes add up to {tokens} tokens, but the .bin holds {n_tokens} (a truncated or mismatched .bin)"
            )));
        }
        Ok(())
    }

    /// The first token of documents `lo..hi` (checked by [`MegatronIndex::walk`] before),
    /// into `out`: the pointer of each document's first sequence, over the token width.
    pub fn doc_starts(&self, lo: usize, hi: usize, n_tokens: usize, out: &mut Vec<u64>) -> Result<()> {
        out.clear();
        if lo >= hi {
            return Ok(());
        }
        let mut docs = self.stream(self.doc_index_at() + 8 * lo as u64, 8, "document index")?;
        let mut pointers: Option<(IntStream, i64)> = None;
        for d in lo..hi {
            let first = docs.next().map_err(|e| self.err(format!("cannot read doc_idx[{d}]: {e}")))?;
            if first as u64 >= self.n_seqs as u64 {
                out.push(n_tokens as u64); // empty documents at the end
                continue;
            }
            // the pointers of a unit's documents are read in one forward pass
            let (ps, at) = match &mut pointers {
                Some(p) => p,
                None => pointers.insert((self.stream(self.pointers_at() + 8 * first as u64, 8, "pointers")?, first)),
            };
            let mut ptr = -1;
            while *at <= first {
                ptr = ps.next().map_err(|e| self.err(format!("cannot read pointers[{at}]: {e}")))?;
                *at += 1;
            }
            if ptr < 0 {
                // the same sequence as the previous document (an empty document before it)
                out.push(*out.last().unwrap_or(&0));
            } else {
                out.push(ptr as u64 / self.width as u64);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_types() {
        let mut out = Vec::new();
        TokenType::I32.decode(&[1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff], &mut out).unwrap_err();
        assert_eq!(out, vec![1]);
        out.clear();
        assert_eq!(TokenType::I32.decode(&[0xff; 4], &mut out).unwrap_err(), (0, "-1".to_string()));
        let mut bytes = Vec::new();
        for v in [0.0f64, 7.0, 65536.0] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        out.clear();
        TokenType::F64.decode(&bytes, &mut out).unwrap();
        assert_eq!(out, vec![0, 7, 65536]);
        out.clear();
        assert_eq!(TokenType::F32.decode(&1.5f32.to_le_bytes(), &mut out).unwrap_err().0, 0);
        out.clear();
        assert!(TokenType::U64.decode(&(1u64 << 32).to_le_bytes(), &mut out).is_err());
        TokenType::U8.decode(&[3, 4], &mut out).unwrap();
        assert_eq!(out, vec![3, 4]);
    }

    #[test]
    fn span_reads_across_parts() {
        let dir = std::env::temp_dir().join(format!("memscore-span-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let data: Vec<u8> = (0..100u8).collect();
        let cuts = [0, 7, 7, 50, 100]; // an empty part too
        let paths: Vec<PathBuf> = cuts
            .windows(2)
            .enumerate()
            .map(|(i, w)| {
                let p = dir.join(format!("p{i}"));
                std::fs::write(&p, &data[w[0]..w[1]]).unwrap();
                p
            })
            .collect();
        let span = Span::open("s", &paths).unwrap();
        assert_eq!(span.len(), 100);
        for (a, b) in [(0, 100), (5, 9), (7, 8), (49, 51), (99, 100), (3, 3)] {
            let mut buf = vec![0u8; b - a];
            span.read_at(a as u64, &mut buf).unwrap();
            assert_eq!(buf, &data[a..b]);
        }
        let mut buf = vec![0u8; 5];
        assert!(span.read_at(98, &mut buf).is_err());
        assert_eq!(span.locate(60), (paths[3].display().to_string(), 10));
        std::fs::remove_dir_all(&dir).ok();
    }
}
