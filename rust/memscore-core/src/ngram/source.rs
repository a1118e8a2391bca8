//! Corpus shards and the parallel counting driver.
//!
//! A corpus is a list of shards: token arrays (u16 / u32 with document start offsets) in
//! memory or in files read piece by piece, in-memory texts, jsonl files (one JSON object per
//! line, the text in a named field) and text files (one document per file, paragraph or
//! line). Files ending in `.gz` or `.zst` / `.zstd` are decompressed on the fly. Work units
//! (a text file, or about 4M tokens / 2048 texts of the other shards) go to the threads of
//! the current rayon pool; each thread keeps its own [`Acc`], summed at the end, so memory
//! does not grow with the corpus.

use std::borrow::Cow;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use rayon::prelude::*;
use rustc_hash::FxHashMap;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};

use super::count::{Acc, Stats, Totals};
use super::index::Index;
use super::normalize::Normalizer;
use super::subword::Subword;
use super::table::BucketMap;
use super::token_file::{MegatronIndex, Span, TokenType};
use crate::error::{Error, Result};
use crate::pool::Cancel;

/// Document start offsets of a token file: in memory, or a file of little-endian integers
/// (an `.npy` body) read piece by piece, so memory does not grow with the documents either.
#[derive(Debug, Clone)]
pub enum Offsets<'a> {
    Mem(&'a [u64]),
    File {
        path: PathBuf,
        /// byte of the first value
        start: u64,
        /// 4 or 8 bytes per value
        width: usize,
        signed: bool,
        n_docs: usize,
    },
    /// The documents of a Megatron `.idx` (the token file is its `.bin`), streamed and
    /// checked as the count goes.
    Megatron(MegatronIndex),
}

/// How a text file is cut into documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// the whole file is one document
    File,
    /// runs of non-blank lines are documents; blank lines separate them
    Paragraph,
    /// every non-blank line is a document
    Line,
}

/// One shard of a corpus.
#[derive(Debug, Clone)]
pub enum Shard<'a> {
    Tokens16 {
        name: String,
        tokens: &'a [u16],
        offsets: &'a [u64],
    },
    Tokens32 {
        name: String,
        tokens: &'a [u32],
        offsets: &'a [u64],
    },
    /// A file of little-endian `dtype` tokens starting at byte `start` (an `.npy` body, a
    /// Megatron `.bin`), stored whole or in `parts` read in place as their concatenation:
    /// read unit by unit, so memory does not grow with the file.
    TokenFile {
        name: String,
        parts: Vec<PathBuf>,
        start: u64,
        dtype: TokenType,
        n_tokens: usize,
        offsets: Offsets<'a>,
    },
    Texts {
        texts: &'a [String],
    },
    Jsonl {
        path: PathBuf,
        field: String,
    },
    TextFile {
        path: PathBuf,
        split: Split,
    },
}

/// The id given to stopwords in a [`Vocab`]: dropped from the token stream, not a barrier.
pub const STOP: u32 = u32::MAX - 1;
/// The id a text document's out-of-vocabulary words get: no query n-gram contains it.
const BARRIER: u32 = u32::MAX - 2;

/// Word -> token id, for the words of the queries (and stopwords, as [`STOP`]).
#[derive(Debug, Clone, Default)]
pub struct Vocab {
    pub map: FxHashMap<Box<str>, u32>,
    /// after [`Vocab::freeze`]: the words of at most 7 bytes, packed into a u64 with their
    /// length (exact, no hashing of strings, no string compare)
    short: Option<BucketMap>,
}

const NOT_A_WORD: u64 = u64::MAX;

/// A word of at most 7 bytes as a u64: its bytes, then its length in the top byte.
#[inline(always)]
fn pack_short(b: &[u8]) -> u64 {
    let mut x = [0u8; 8];
    x[..b.len()].copy_from_slice(b);
    x[7] = b.len() as u8;
    u64::from_le_bytes(x)
}

impl Vocab {
    /// Id of `word`, adding it if new.
    pub fn id(&mut self, word: &str) -> u32 {
        self.short = None;
        if let Some(&id) = self.map.get(word) {
            return id;
        }
        let id = self.map.len() as u32;
        self.map.insert(word.into(), id);
        id
    }
    pub fn add_stopwords<'s>(&mut self, words: impl IntoIterator<Item = &'s str>) {
        self.short = None;
        for w in words {
            self.map.entry(w.into()).or_insert(STOP);
        }
    }

    /// Build the fast lookup of short words; call once all words are in.
    pub fn freeze(&mut self) -> Result<()> {
        let items: Vec<(u64, u64)> = self
            .map
            .iter()
            .filter(|(w, _)| w.len() <= 7)
            .map(|(w, &id)| (pack_short(w.as_bytes()), id as u64))
            .collect();
        self.short = Some(BucketMap::build(&items, NOT_A_WORD)?);
        Ok(())
    }

    /// A lookup key for `word`, its table slot requested from memory: the packed word
    /// (short words, top bit clear), or the id already looked up with the top bit set.
    #[inline]
    fn key(&self, word: &str) -> u64 {
        match &self.short {
            Some(t) if word.len() <= 7 => {
                let k = pack_short(word.as_bytes());
                t.prefetch(k);
                k
            }
            _ => (1 << 63) | self.get(word).map_or(NOT_A_WORD >> 1, |id| id as u64),
        }
    }

    /// The id (or [`STOP`]) behind a [`Vocab::key`], if the word is in the vocabulary.
    #[inline]
    fn resolve(&self, k: u64) -> Option<u32> {
        let v = match &self.short {
            Some(t) if k >> 63 == 0 => t.get(k),
            _ if k == (1 << 63) | (NOT_A_WORD >> 1) => NOT_A_WORD,
            _ => k & !(1 << 63),
        };
        (v != NOT_A_WORD).then_some(v as u32)
    }

    /// The id of `word` (or [`STOP`]), if it is in the vocabulary.
    #[inline]
    pub fn get(&self, word: &str) -> Option<u32> {
        match &self.short {
            Some(t) if word.len() <= 7 => {
                let v = t.get(pack_short(word.as_bytes()));
                (v != NOT_A_WORD).then_some(v as u32)
            }
            _ => self.map.get(word).copied(),
        }
    }
}

/// How the text of a document becomes token ids.
pub enum TextTokens<'a> {
    /// normalized words, mapped to ids by the vocabulary of the queries
    Words { normalizer: &'a Normalizer, vocab: &'a Vocab },
    /// token ids of a subword tokenizer (queries are id n-grams of the same tokenizer)
    Subword(&'a Subword),
}

/// Text settings of a count: the tokenization, and what to do with bad lines.
pub struct TextCtx<'a> {
    pub tokens: TextTokens<'a>,
    /// skip (and count) unparsable lines instead of failing
    pub skip_errors: bool,
}

/// Reusable per-thread scratch space.
#[derive(Default)]
struct Scratch {
    seg: Vec<u32>,
    line: Vec<u8>,
    word: String,
    bytes: Vec<u8>,
    tok16: Vec<u16>,
    tok32: Vec<u32>,
    offs: Vec<u64>,
    keys: Vec<u64>,
}

/// Count one document; a document the tokenizer fails on is not counted at all.
fn text_doc(acc: &mut Acc, ix: &Index, ctx: &TextCtx<'_>, sc: &mut Scratch, text: &str) -> Result<(), String> {
    match ctx.tokens {
        TextTokens::Subword(sw) => {
            let ids = sw.ids(text)?;
            acc.begin_doc();
            acc.scan(ix, &ids);
            acc.n_tokens += ids.len() as u64;
            acc.end_doc(ix);
        }
        TextTokens::Words { normalizer, vocab } => {
            // two passes: the words' vocabulary slots are all requested (prefetched) before
            // any is read, as the trie walk does; long words are looked up at once
            sc.keys.clear();
            let keys = &mut sc.keys;
            normalizer.words_keep_stop(text, &mut sc.word, |w: &str| keys.push(vocab.key(w)));
            sc.seg.clear();
            let mut ntok = 0u64;
            for &k in &sc.keys {
                match vocab.resolve(k) {
                    Some(STOP) => {}
                    Some(id) => {
                        ntok += 1;
                        sc.seg.push(id);
                    }
                    None => {
                        // words outside the vocabulary become barriers no n-gram crosses
                        ntok += 1;
                        if sc.seg.last() != Some(&BARRIER) {
                            sc.seg.push(BARRIER);
                        }
                    }
                }
            }
            acc.begin_doc();
            acc.scan(ix, &sc.seg);
            acc.n_tokens += ntok;
            acc.end_doc(ix);
        }
    }
    Ok(())
}

/// Count the documents of one work unit: `tokens` are the unit's tokens, which start at
/// token `base` of the shard, and `offsets` the start offsets (in the shard) of its
/// documents; the last document runs to the end of `tokens`.
fn token_docs<T: Copy + Into<u32>>(acc: &mut Acc, ix: &Index, tokens: &[T], base: usize, offsets: &[u64]) {
    for (d, &o) in offsets.iter().enumerate() {
        let a = o as usize - base;
        let b = offsets.get(d + 1).map_or(tokens.len(), |&x| x as usize - base);
        acc.begin_doc();
        acc.scan(ix, &tokens[a..b]);
        acc.n_tokens += (b - a) as u64;
        acc.end_doc(ix);
    }
}

/// The rules for the document offsets of a token shard (start at 0, never decrease, stay
/// within the tokens), checked one offset at a time so that files can stream through.
struct OffsetRules<'n> {
    name: &'n str,
    n_tokens: usize,
    prev: u64,
}

impl<'n> OffsetRules<'n> {
    fn new(name: &'n str, n_tokens: usize, n_docs: usize) -> Result<Self> {
        if n_docs == 0 && n_tokens > 0 {
            return Err(Error::corpus(name, 0, format!("{n_tokens} tokens but no document offsets")));
        }
        Ok(OffsetRules { name, n_tokens, prev: 0 })
    }

    #[inline]
    fn check(&mut self, d: usize, o: u64) -> Result<()> {
        let msg = if d == 0 && o != 0 {
            format!("document offsets must start at 0, got {o}")
        } else if o < self.prev {
            format!("document offsets must not decrease: offset[{d}] = {o} < offset[{}] = {}", d - 1, self.prev)
        } else if o > self.n_tokens as u64 {
            format!("document offset {o} is past the end of the {} tokens", self.n_tokens)
        } else {
            self.prev = o;
            return Ok(());
        };
        Err(Error::corpus(self.name, 0, msg))
    }
}

/// Check document offsets of a token shard held in memory.
pub fn check_offsets(name: &str, n_tokens: usize, offsets: &[u64]) -> Result<()> {
    let mut rules = OffsetRules::new(name, n_tokens, offsets.len())?;
    offsets.iter().enumerate().try_for_each(|(d, &o)| rules.check(d, o))
}

// ------------------------------------------------------------------ files

/// Bytes of input consumed so far, shared with whoever shows a progress bar: file bytes as
/// stored (compressed bytes for .gz / .zst), token-array bytes, text bytes.
pub type Progress = Arc<AtomicU64>;

/// A file reader that adds what it reads to a [`Progress`].
struct Counted {
    file: File,
    progress: Option<Progress>,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buf)?;
        if let Some(p) = &self.progress {
            p.fetch_add(n as u64, Ordering::Relaxed);
        }
        Ok(n)
    }
}

fn open(path: &Path, progress: Option<&Progress>) -> Result<Box<dyn BufRead + Send>> {
    let name = path.display().to_string();
    let file = File::open(path).map_err(|e| Error::corpus(&name, 0, format!("cannot open: {e}")))?;
    let f = Counted { file, progress: progress.cloned() };
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    const CAP: usize = 1 << 20;
    Ok(match ext.as_str() {
        "gz" | "gzip" => {
            Box::new(BufReader::with_capacity(CAP, flate2::read::MultiGzDecoder::new(BufReader::with_capacity(CAP, f))))
        }
        "zst" | "zstd" => {
            let d = zstd::stream::read::Decoder::new(f)
                .map_err(|e| Error::corpus(&name, 0, format!("cannot start zstd decoding: {e}")))?;
            Box::new(BufReader::with_capacity(CAP, d))
        }
        _ => Box::new(BufReader::with_capacity(CAP, f)),
    })
}

/// Borrowed-when-possible JSON string.
struct CowStr<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Any JSON value: `Some` of a string, `None` of anything else (skipped without building it).
struct MaybeStr<'de>(Option<Cow<'de, str>>);

impl<'de> serde::Deserialize<'de> for MaybeStr<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MaybeStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(MaybeStr(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(MaybeStr(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(MaybeStr(Some(Cow::Owned(v))))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(MaybeStr(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(MaybeStr(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// Pulls one string field out of a JSON object, skipping the rest without building it.
/// A key given twice takes its last value, as Python's `json` does.
struct FieldSeed<'f> {
    field: &'f str,
}

impl<'de> DeserializeSeed<'de> for FieldSeed<'_> {
    /// `None`: no such key; `Some(None)`: its (last) value is not a string.
    type Value = Option<Option<Cow<'de, str>>>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FieldSeed<'_> {
    type Value = Option<Option<Cow<'de, str>>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(k) = map.next_key::<CowStr<'de>>()? {
            // A repeated key keeps its last value, as Python's `json` does.
            if k.0 == self.field {
                found = Some(map.next_value::<MaybeStr<'de>>()?.0);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// The text field of one jsonl line, or a message saying what is wrong with it.
pub fn json_field<'l>(line: &'l [u8], field: &str) -> Result<Cow<'l, str>, String> {
    let s = std::str::from_utf8(line).map_err(|e| format!("invalid UTF-8 at byte {}", e.valid_up_to()))?;
    let mut de = serde_json::Deserializer::from_str(s);
    let v = (FieldSeed { field }).deserialize(&mut de).map_err(|e| format!("invalid JSON ({e})"))?;
    de.end().map_err(|e| format!("invalid JSON: trailing characters ({e})"))?;
    match v {
        None => Err(format!("no field {field:?} in this JSON object")),
        Some(None) => Err(format!("field {field:?} is not a string")),
        Some(Some(text)) => Ok(text),
    }
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|b| b.is_ascii_whitespace())
}

/// Read a line (with its newline) into `buf`; false at end of file.
fn next_line(r: &mut dyn BufRead, buf: &mut Vec<u8>, name: &str, lineno: u64) -> Result<bool> {
    buf.clear();
    match r.read_until(b'\n', buf) {
        Ok(0) => Ok(false),
        Ok(_) => Ok(true),
        Err(e) => Err(Error::corpus(name, lineno, format!("read error: {e}"))),
    }
}

fn bad_line(acc: &mut Acc, ctx: &TextCtx<'_>, name: &str, lineno: u64, msg: String) -> Result<()> {
    if ctx.skip_errors {
        acc.n_skipped += 1;
        Ok(())
    } else {
        Err(Error::corpus(name, lineno, msg))
    }
}

fn jsonl_file(
    acc: &mut Acc,
    ix: &Index,
    ctx: &TextCtx<'_>,
    sc: &mut Scratch,
    path: &Path,
    field: &str,
    env: &Env<'_>,
) -> Result<()> {
    let name = path.display().to_string();
    let mut r = open(path, env.progress)?;
    let mut line = std::mem::take(&mut sc.line);
    let mut lineno = 0u64;
    let res = (|| {
        while next_line(&mut *r, &mut line, &name, lineno + 1)? {
            lineno += 1;
            if lineno.is_multiple_of(4096) && env.halted() {
                return Ok(());
            }
            if is_blank(&line) {
                continue;
            }
            match json_field(&line, field) {
                Ok(text) => {
                    if let Err(m) = text_doc(acc, ix, ctx, sc, &text) {
                        bad_line(acc, ctx, &name, lineno, m)?;
                    }
                }
                Err(m) => bad_line(acc, ctx, &name, lineno, m)?,
            }
        }
        Ok(())
    })();
    sc.line = line;
    res
}

fn utf8_line(line: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(line).map_err(|e| format!("invalid UTF-8 at byte {}", e.valid_up_to()))
}

fn text_file(
    acc: &mut Acc,
    ix: &Index,
    ctx: &TextCtx<'_>,
    sc: &mut Scratch,
    path: &Path,
    split: Split,
    env: &Env<'_>,
) -> Result<()> {
    let name = path.display().to_string();
    let mut r = open(path, env.progress)?;
    match split {
        Split::File => {
            let mut all = Vec::new();
            r.read_to_end(&mut all).map_err(|e| Error::corpus(&name, 0, format!("read error: {e}")))?;
            match std::str::from_utf8(&all) {
                Ok(text) => text_doc(acc, ix, ctx, sc, text).or_else(|m| bad_line(acc, ctx, &name, 0, m)),
                Err(e) => {
                    let at = e.valid_up_to();
                    let lineno = all[..at].iter().filter(|&&b| b == b'\n').count() as u64 + 1;
                    bad_line(acc, ctx, &name, lineno, "invalid UTF-8".into())
                }
            }
        }
        Split::Line | Split::Paragraph => {
            let mut line = Vec::new();
            let mut para = String::new();
            let mut lineno = 0u64;
            let mut bad_para = false;
            while next_line(&mut *r, &mut line, &name, lineno + 1)? {
                lineno += 1;
                if lineno.is_multiple_of(4096) && env.halted() {
                    return Ok(());
                }
                let blank = is_blank(&line);
                if split == Split::Line {
                    if blank {
                        continue;
                    }
                    match utf8_line(&line) {
                        Ok(t) => text_doc(acc, ix, ctx, sc, t).or_else(|m| bad_line(acc, ctx, &name, lineno, m))?,
                        Err(m) => bad_line(acc, ctx, &name, lineno, m)?,
                    }
                } else if blank {
                    if !para.is_empty() && !bad_para {
                        text_doc(acc, ix, ctx, sc, &para).or_else(|m| bad_line(acc, ctx, &name, lineno, m))?;
                    }
                    para.clear();
                    bad_para = false;
                } else {
                    match utf8_line(&line) {
                        Ok(t) => para.push_str(t),
                        Err(m) => {
                            bad_line(acc, ctx, &name, lineno, m)?;
                            bad_para = true;
                        }
                    }
                }
            }
            if split == Split::Paragraph && !para.is_empty() && !bad_para {
                text_doc(acc, ix, ctx, sc, &para).or_else(|m| bad_line(acc, ctx, &name, lineno, m))?;
            }
            Ok(())
        }
    }
}

// ------------------------------------------------------------------ driver

/// A piece of work: shard `shard`, documents `lo..hi` (tokens `a..b` of token shards) for
/// in-memory and token shards; a whole file otherwise.
#[derive(Debug, Clone, Copy)]
struct Unit {
    shard: usize,
    lo: usize,
    hi: usize,
    a: usize,
    b: usize,
}

/// Tokens per work unit of a token shard, texts per unit of an in-memory text shard.
const TOKENS_PER_UNIT: usize = if cfg!(test) { 1000 } else { 1 << 22 };
const TEXTS_PER_UNIT: usize = 2048;
/// Offsets read at once from an offsets file.
const OFFSETS_CHUNK: usize = if cfg!(test) { 77 } else { 1 << 20 };

/// Cut a token shard into units of about [`TOKENS_PER_UNIT`] tokens at document starts:
/// a unit ends before the first document starting at or after its first token + the bound.
struct Splitter {
    shard: usize,
    lo: usize,
    a: usize,
    out: Vec<Unit>,
}

impl Splitter {
    #[inline]
    fn doc(&mut self, d: usize, o: usize) {
        if d > self.lo && o >= self.a.saturating_add(TOKENS_PER_UNIT) {
            self.out.push(Unit { shard: self.shard, lo: self.lo, hi: d, a: self.a, b: o });
            self.lo = d;
            self.a = o;
        }
    }
    fn finish(mut self, n_docs: usize, n_tokens: usize) -> Vec<Unit> {
        if self.lo < n_docs {
            self.out.push(Unit { shard: self.shard, lo: self.lo, hi: n_docs, a: self.a, b: n_tokens });
        }
        self.out
    }
}

/// Read offsets `lo..hi` of an offsets file into `out` (as u64), with checks.
fn read_offsets(
    out: &mut Vec<u64>,
    bytes: &mut Vec<u8>,
    name: &str,
    src: &Offsets<'_>,
    lo: usize,
    hi: usize,
) -> Result<()> {
    let Offsets::File { path, start, width, signed, .. } = src else {
        return Err(Error::Invalid("internal: read_offsets needs an offsets file".into()));
    };
    let mut f = File::open(path).map_err(|e| Error::corpus(name, 0, format!("cannot open offsets: {e}")))?;
    bytes.resize((hi - lo) * width, 0);
    let at = start + (lo * width) as u64;
    {
        use std::io::{Seek, SeekFrom};
        f.seek(SeekFrom::Start(at)).and_then(|_| f.read_exact(bytes))
    }
    .map_err(|e| Error::corpus(name, 0, format!("cannot read document offsets at byte {at}: {e}")))?;
    out.clear();
    for (k, c) in bytes.chunks_exact(*width).enumerate() {
        // Widths are 4 or 8 (checked in `count_with`): sign- or zero-extend to 8 bytes.
        let mut b = [0u8; 8];
        let w = c.len().min(8);
        b[..w].copy_from_slice(&c[..w]);
        if *signed && w < 8 && c[w - 1] & 0x80 != 0 {
            b[w..].fill(0xff);
        }
        let v: i128 = if *signed { i64::from_le_bytes(b) as i128 } else { u64::from_le_bytes(b) as i128 };
        if v < 0 {
            return Err(Error::corpus(name, 0, format!("document offset {} is negative ({v})", lo + k)));
        }
        out.push(v as u64);
    }
    Ok(())
}

/// Units of an offsets file, checking the offsets as they stream by.
fn file_units(shard: usize, name: &str, src: &Offsets<'_>, n_tokens: usize) -> Result<Vec<Unit>> {
    let Offsets::File { n_docs, .. } = src else {
        return Err(Error::Invalid("internal: file_units needs an offsets file".into()));
    };
    let n_docs = *n_docs;
    let mut rules = OffsetRules::new(name, n_tokens, n_docs)?;
    let mut sp = Splitter { shard, lo: 0, a: 0, out: Vec::new() };
    let (mut vals, mut bytes) = (Vec::new(), Vec::new());
    let mut d0 = 0;
    while d0 < n_docs {
        let d1 = (d0 + OFFSETS_CHUNK).min(n_docs);
        read_offsets(&mut vals, &mut bytes, name, src, d0, d1)?;
        for (k, &o) in vals.iter().enumerate() {
            rules.check(d0 + k, o)?;
            sp.doc(d0 + k, o as usize);
        }
        d0 = d1;
    }
    Ok(sp.finish(n_docs, n_tokens))
}

fn units(shards: &[Shard<'_>]) -> Result<Vec<Unit>> {
    let mut out = Vec::new();
    for (s, sh) in shards.iter().enumerate() {
        let mem_units = |n_tokens: usize, offsets: &[u64]| {
            let mut sp = Splitter { shard: s, lo: 0, a: 0, out: Vec::new() };
            for (d, &o) in offsets.iter().enumerate() {
                sp.doc(d, o as usize);
            }
            sp.finish(offsets.len(), n_tokens)
        };
        match sh {
            Shard::TokenFile { name, n_tokens, offsets, .. } => match offsets {
                Offsets::Mem(o) => out.extend(mem_units(*n_tokens, o)),
                f @ Offsets::File { .. } => out.extend(file_units(s, name, f, *n_tokens)?),
                Offsets::Megatron(ix) => {
                    let mut sp = Splitter { shard: s, lo: 0, a: 0, out: Vec::new() };
                    ix.walk(*n_tokens, |d, o| sp.doc(d, o as usize))?;
                    out.extend(sp.finish(ix.n_docs(), *n_tokens));
                }
            },
            Shard::Tokens16 { tokens, offsets, .. } => out.extend(mem_units(tokens.len(), offsets)),
            Shard::Tokens32 { tokens, offsets, .. } => out.extend(mem_units(tokens.len(), offsets)),
            Shard::Texts { texts } => {
                let mut lo = 0;
                while lo < texts.len() {
                    let hi = (lo + TEXTS_PER_UNIT).min(texts.len());
                    out.push(Unit { shard: s, lo, hi, a: 0, b: 0 });
                    lo = hi;
                }
            }
            Shard::Jsonl { .. } | Shard::TextFile { .. } => out.push(Unit { shard: s, lo: 0, hi: 0, a: 0, b: 0 }),
        }
    }
    Ok(out)
}

/// What every work unit shares: the stop flag (set on the first error) and the progress.
struct Env<'a> {
    stop: &'a AtomicBool,
    cancel: &'a Cancel,
    progress: Option<&'a Progress>,
    /// per shard, the parts of a token file (sizes read once)
    spans: &'a [Option<Span>],
}

impl Env<'_> {
    /// Another unit failed, or the caller cancelled: stop reading.
    fn halted(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.cancel.is_cancelled()
    }

    fn advance(&self, bytes: u64) {
        if let Some(p) = self.progress {
            p.fetch_add(bytes, Ordering::Relaxed);
        }
    }
}

fn process(
    acc: &mut Acc,
    ix: &Index,
    text: Option<&TextCtx<'_>>,
    sc: &mut Scratch,
    sh: &Shard<'_>,
    u: Unit,
    env: &Env<'_>,
) -> Result<()> {
    let need_text = || text.ok_or_else(|| Error::Invalid("a text shard needs text settings".into()));
    match sh {
        Shard::Tokens16 { tokens, offsets, .. } => {
            token_docs(acc, ix, &tokens[u.a..u.b], u.a, &offsets[u.lo..u.hi]);
            env.advance(((u.b - u.a) * 2) as u64);
        }
        Shard::Tokens32 { tokens, offsets, .. } => {
            token_docs(acc, ix, &tokens[u.a..u.b], u.a, &offsets[u.lo..u.hi]);
            env.advance(((u.b - u.a) * 4) as u64);
        }
        Shard::TokenFile { name, start, dtype, n_tokens, offsets, .. } => {
            let span = env.spans[u.shard]
                .as_ref()
                .ok_or_else(|| Error::Invalid("internal: a token file without its parts".into()))?;
            let size = dtype.width();
            let mut offs = std::mem::take(&mut sc.offs);
            let res = (|| -> Result<()> {
                let offs_unit: &[u64] = match offsets {
                    Offsets::Mem(o) => &o[u.lo..u.hi],
                    f @ Offsets::File { .. } => {
                        read_offsets(&mut offs, &mut sc.bytes, name, f, u.lo, u.hi)?;
                        &offs
                    }
                    Offsets::Megatron(ix) => {
                        ix.doc_starts(u.lo, u.hi, *n_tokens, &mut offs)?;
                        &offs
                    }
                };
                let at = start + (u.a * size) as u64;
                sc.bytes.resize((u.b - u.a) * size, 0);
                span.read_at(at, &mut sc.bytes)?;
                match dtype {
                    TokenType::U16 => {
                        sc.tok16.clear();
                        sc.tok16.extend(sc.bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])));
                        token_docs(acc, ix, &sc.tok16, u.a, offs_unit);
                    }
                    _ => {
                        sc.tok32.clear();
                        if let Err((k, v)) = dtype.decode(&sc.bytes, &mut sc.tok32) {
                            let (file, byte) = span.locate(at + (k * size) as u64);
                            return Err(Error::corpus(
                                &file,
                                0,
                                format!(
                                    "token {} of {name} is {v}, not a token id (0 ..= 4294967295) at byte {byte}",
                                    u.a + k
                                ),
                            ));
                        }
                        token_docs(acc, ix, &sc.tok32, u.a, offs_unit);
                    }
                }
                Ok(())
            })();
            sc.offs = offs;
            res?;
            env.advance(((u.b - u.a) * size) as u64);
        }
        Shard::Texts { texts } => {
            let ctx = need_text()?;
            for (i, t) in texts[u.lo..u.hi].iter().enumerate() {
                if let Err(m) = text_doc(acc, ix, ctx, sc, t) {
                    bad_line(acc, ctx, "<texts>", (u.lo + i + 1) as u64, m)?;
                }
            }
            env.advance(texts[u.lo..u.hi].iter().map(|t| t.len() as u64).sum());
        }
        Shard::Jsonl { path, field } => jsonl_file(acc, ix, need_text()?, sc, path, field, env)?,
        Shard::TextFile { path, split } => text_file(acc, ix, need_text()?, sc, path, *split, env)?,
    }
    Ok(())
}

/// Count every n-gram of `ix` over all `shards`, in parallel on the current rayon pool,
/// adding the input consumed to `progress` as it goes.
pub fn count(
    shards: &[Shard<'_>],
    ix: &Index,
    text: Option<&TextCtx<'_>>,
    progress: Option<&Progress>,
) -> Result<Stats> {
    count_with(shards, ix, text, progress, &Cancel::new())
}

/// [`count`] that stops with `Error::Cancelled` once `cancel` is set (polled between work
/// units and every 4096 lines of a text file).
pub fn count_with(
    shards: &[Shard<'_>],
    ix: &Index,
    text: Option<&TextCtx<'_>>,
    progress: Option<&Progress>,
    cancel: &Cancel,
) -> Result<Stats> {
    let mut spans: Vec<Option<Span>> = vec![None; shards.len()];
    for (k, sh) in shards.iter().enumerate() {
        match sh {
            Shard::Tokens16 { name, tokens, offsets } => check_offsets(name, tokens.len(), offsets)?,
            Shard::Tokens32 { name, tokens, offsets } => check_offsets(name, tokens.len(), offsets)?,
            Shard::TokenFile { name, parts, start, dtype, n_tokens, offsets } => {
                match offsets {
                    Offsets::Mem(o) => check_offsets(name, *n_tokens, o)?,
                    Offsets::File { width, .. } => {
                        if *width != 4 && *width != 8 {
                            return Err(Error::Invalid(format!("{name}: offset width must be 4 or 8, got {width}")));
                        }
                    }
                    Offsets::Megatron(ix) => {
                        if ix.width != dtype.width() {
                            return Err(Error::Invalid(format!(
                                "{name}: index of {}-byte tokens over a file of {}-byte tokens",
                                ix.width,
                                dtype.width()
                            )));
                        }
                    }
                }
                let span = Span::open(name, parts)?;
                let need = *start as u128 + *n_tokens as u128 * dtype.width() as u128;
                let have = span.len();
                if (have as u128) < need {
                    return Err(Error::corpus(
                        name,
                        0,
                        format!("truncated: {n_tokens} tokens need {need} bytes, the file has {have}"),
                    ));
                }
                spans[k] = Some(span);
            }
            _ => {}
        }
    }
    let work = units(shards)?;
    let threads = rayon::current_num_threads().min(work.len()).max(1);
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let env = Env { stop: &stop, cancel, progress, spans: &spans };
    let results: Vec<Result<Totals>> = (0..threads)
        .into_par_iter()
        .map(|_| {
            let mut acc = Acc::new(ix)?;
            let mut sc = Scratch::default();
            loop {
                if env.halted() {
                    break;
                }
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= work.len() {
                    break;
                }
                let u = work[k];
                if let Err(e) = process(&mut acc, ix, text, &mut sc, &shards[u.shard], u, &env) {
                    stop.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
            Ok(acc.finish())
        })
        .collect();
    cancel.check()?;
    let mut total: Option<Totals> = None;
    for r in results {
        let a = r?;
        match &mut total {
            None => total = Some(a),
            Some(t) => t.merge(&a),
        }
    }
    let total = match total {
        Some(t) => t,
        None => Acc::new(ix)?.finish(),
    };
    Ok(Stats::from_totals(ix, &total))
}

/// Build the vocabulary and the token-id n-grams of text queries: each query is already
/// split into tokens by the caller's normalizer. Returns (flat ids, offsets).
pub fn text_queries(vocab: &mut Vocab, queries: &[Vec<String>]) -> Result<(Vec<u32>, Vec<u64>)> {
    let mut ids = Vec::new();
    let mut starts = vec![0u64];
    for (k, q) in queries.iter().enumerate() {
        if q.is_empty() {
            return Err(Error::Invalid(format!("query {k}: normalizes to zero tokens")));
        }
        for w in q {
            ids.push(vocab.id(w));
        }
        starts.push(ids.len() as u64);
    }
    Ok((ids, starts))
}

/// Count token-id queries (flat `q_tokens` split at `q_starts`, `n + 1` offsets) and pairs
/// of them (indices into the queries) over `shards`: builds the query index, then counts.
/// `text` is needed for text shards (tokenized with its subword tokenizer).
pub fn count_token_queries(
    shards: &[Shard<'_>],
    q_tokens: &[u32],
    q_starts: &[u64],
    pairs: &[(u64, u64)],
    text: Option<&TextCtx<'_>>,
    progress: Option<&Progress>,
    cancel: &Cancel,
) -> Result<Stats> {
    let ix = Index::build(q_tokens, q_starts, pairs)?;
    count_with(shards, &ix, text, progress, cancel)
}

/// Count text queries (each already normalized into words by `normalizer`) and pairs of
/// them over text shards: builds the vocabulary of the query words (plus the stopwords,
/// so they act as barriers), freezes it, builds the query index, then counts.
pub fn count_text_queries(
    shards: &[Shard<'_>],
    normalizer: &Normalizer,
    queries: &[Vec<String>],
    pairs: &[(u64, u64)],
    skip_errors: bool,
    progress: Option<&Progress>,
    cancel: &Cancel,
) -> Result<Stats> {
    let mut vocab = Vocab::default();
    let (ids, starts) = text_queries(&mut vocab, queries)?;
    vocab.add_stopwords(normalizer.stopwords.iter().map(|s| &**s));
    vocab.freeze()?;
    let ix = Index::build(&ids, &starts, pairs)?;
    let ctx = TextCtx { tokens: TextTokens::Words { normalizer, vocab: &vocab }, skip_errors };
    count_with(shards, &ix, Some(&ctx), progress, cancel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_field_cases() {
        assert_eq!(json_field(br#"{"a": [1, {"x": "}"}], "text": "h\u00e9 \"q\""}"#, "text").unwrap(), "hé \"q\"");
        assert_eq!(json_field(br#"{"text": "first", "text": "last"}"#, "text").unwrap(), "last");
        assert!(json_field(br#"{"text": 3}"#, "text").is_err());
        assert!(json_field(br#"{"other": "x"}"#, "text").unwrap_err().contains("no field"));
        assert!(json_field(br#"{"text": "x"} x"#, "text").is_err());
        assert!(json_field(b"{\"text\": \"\xff\"}", "text").unwrap_err().contains("UTF-8"));
        assert!(json_field(br#"[1]"#, "text").is_err());
        // A duplicate key takes its last value, as Python's json does.
        assert_eq!(json_field(br#"{"text": "first", "text": "last"}"#, "text").unwrap(), "last");
        assert_eq!(json_field(br#"{"text": 3, "text": "last"}"#, "text").unwrap(), "last");
        assert!(json_field(br#"{"text": "first", "text": [1, {"a": 2}]}"#, "text")
            .unwrap_err()
            .contains("not a string"));
        assert!(json_field(br#"{"text": null}"#, "text").unwrap_err().contains("not a string"));
    }

    #[test]
    fn tokens_edges_and_pairs() {
        // queries: [1], [1,2], [2,3], [9]
        let ix = Index::build(&[1, 1, 2, 2, 3, 9], &[0, 1, 3, 5, 6], &[(0, 2), (1, 3), (0, 0)]).unwrap();
        let toks: Vec<u16> = vec![1, 2, 3, 1, /* doc 2 */ 2, 3, 1, 2];
        let offs = vec![0u64, 4, 4];
        let sh = [Shard::Tokens16 { name: "t".into(), tokens: &toks, offsets: &offs }];
        let s = count(&sh, &ix, None, None).unwrap();
        assert_eq!(s.counts, vec![3, 2, 2, 0]);
        assert_eq!(s.doc_freq, vec![2, 2, 2, 0]);
        assert_eq!(s.cooccurrence, vec![2, 0, 2]);
        assert_eq!((s.n_documents, s.n_tokens), (3, 8));
    }

    #[test]
    fn token_files_match_in_memory_tokens() {
        let ix = Index::build(&[1, 1, 2, 2, 3, 9], &[0, 1, 3, 5, 6], &[(0, 2), (1, 3)]).unwrap();
        let toks: Vec<u16> = (0..100_000u32).map(|i| ((i * 7919) % 13) as u16).collect();
        let offs: Vec<u64> = (0..toks.len() as u64).step_by(37).collect();
        let mem =
            count(&[Shard::Tokens16 { name: "m".into(), tokens: &toks, offsets: &offs }], &ix, None, None).unwrap();
        let dir = std::env::temp_dir().join(format!("memscore-tokfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for wide in [false, true] {
            let path = dir.join(format!("t{}.bin", wide as u8));
            let mut bytes = vec![7u8; 13]; // a header to skip
            for &t in &toks {
                if wide {
                    bytes.extend_from_slice(&(t as u32).to_le_bytes());
                } else {
                    bytes.extend_from_slice(&t.to_le_bytes());
                }
            }
            std::fs::write(&path, &bytes).unwrap();
            // offsets in memory, and in a file of i64 / u32 after a 5-byte header
            let opath = dir.join(format!("o{}.bin", wide as u8));
            let mut ob = vec![1u8; 5];
            for &o in &offs {
                if wide {
                    ob.extend_from_slice(&(o as u32).to_le_bytes());
                } else {
                    ob.extend_from_slice(&(o as i64).to_le_bytes());
                }
            }
            std::fs::write(&opath, &ob).unwrap();
            let ofile = Offsets::File {
                path: opath.clone(),
                start: 5,
                width: if wide { 4 } else { 8 },
                signed: !wide,
                n_docs: offs.len(),
            };
            for o in [Offsets::Mem(&offs), ofile.clone()] {
                let sh = |n: usize| Shard::TokenFile {
                    name: "f".into(),
                    parts: vec![path.clone()],
                    start: 13,
                    dtype: if wide { TokenType::U32 } else { TokenType::U16 },
                    n_tokens: n,
                    offsets: o.clone(),
                };
                let progress = Progress::default();
                let got = count(&[sh(toks.len())], &ix, None, Some(&progress)).unwrap();
                assert_eq!(got, mem);
                assert_eq!(progress.load(Ordering::Relaxed), (toks.len() * if wide { 4 } else { 2 }) as u64);
                let e = count(&[sh(toks.len() + 1)], &ix, None, None).unwrap_err();
                assert!(e.to_string().contains("truncated"), "{e}");
                let e = count(&[sh(offs[offs.len() - 1] as usize - 1)], &ix, None, None).unwrap_err();
                assert!(e.to_string().contains("past the end"), "{e}");
            }
            // a decreasing offset deep in the file is found by the streaming check
            let mut bad = ob.clone();
            let w = if wide { 4 } else { 8 };
            let k = 5 + 300 * w;
            bad[k..k + w].fill(0);
            std::fs::write(&opath, &bad).unwrap();
            let sh = Shard::TokenFile {
                name: "f".into(),
                parts: vec![path.clone()],
                start: 13,
                dtype: if wide { TokenType::U32 } else { TokenType::U16 },
                n_tokens: toks.len(),
                offsets: ofile,
            };
            let e = count(&[sh], &ix, None, None).unwrap_err();
            assert!(e.to_string().contains("must not decrease: offset[300]"), "{e}");
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    /// Write a Megatron `.idx` (header, sizes, pointers, document index) of `seqs` grouped
    /// into documents by `doc_idx`, and the `.bin` of their tokens as `dtype` in `n_parts`.
    fn write_megatron(
        dir: &Path,
        seqs: &[Vec<u32>],
        doc_idx: &[i64],
        dtype: TokenType,
        n_parts: usize,
    ) -> (MegatronIndex, Vec<PathBuf>) {
        let w = dtype.width();
        let mut bin = Vec::new();
        let mut idx = b"MMIDIDX\0\0".to_vec();
        idx.extend_from_slice(&1u64.to_le_bytes());
        idx.push(0); // the dtype code is read by Python, not here
        idx.extend_from_slice(&(seqs.len() as u64).to_le_bytes());
        idx.extend_from_slice(&(doc_idx.len() as u64).to_le_bytes());
        for s in seqs {
            idx.extend_from_slice(&(s.len() as i32).to_le_bytes());
        }
        for s in seqs {
            idx.extend_from_slice(&(bin.len() as i64).to_le_bytes());
            for &t in s {
                match dtype {
                    TokenType::U16 => bin.extend_from_slice(&(t as u16).to_le_bytes()),
                    TokenType::I32 => bin.extend_from_slice(&(t as i32).to_le_bytes()),
                    TokenType::F64 => bin.extend_from_slice(&(t as f64).to_le_bytes()),
                    _ => bin.extend_from_slice(&(t as u8).to_le_bytes()),
                }
            }
        }
        for &d in doc_idx {
            idx.extend_from_slice(&d.to_le_bytes());
        }
        let ipath = dir.join(format!("m{}.idx", w));
        std::fs::write(&ipath, &idx).unwrap();
        let per = bin.len().div_ceil(n_parts);
        let parts = (0..n_parts)
            .map(|k| {
                let p = dir.join(format!("m{w}-{k:05}-of-{n_parts:05}.bin"));
                std::fs::write(&p, &bin[(k * per).min(bin.len())..((k + 1) * per).min(bin.len())]).unwrap();
                p
            })
            .collect();
        (MegatronIndex { path: ipath, n_seqs: seqs.len(), n_entries: doc_idx.len(), width: w }, parts)
    }

    #[test]
    fn megatron_matches_in_memory_tokens() {
        let ix = Index::build(&[1, 1, 2, 2, 3, 9], &[0, 1, 3, 5, 6], &[(0, 2), (1, 3)]).unwrap();
        // 3000 sequences of 0..40 tokens (some empty), in documents of 1..4 sequences, with
        // empty documents too
        let seqs: Vec<Vec<u32>> =
            (0..3000u32).map(|i| (0..(i * 7) % 41).map(|j| (i * 31 + j * 7) % 11).collect()).collect();
        let mut doc_idx = vec![0i64];
        let mut s = 0i64;
        while s < seqs.len() as i64 {
            s = (s + 1 + s % 4).min(seqs.len() as i64);
            doc_idx.push(s);
            if s % 5 == 0 {
                doc_idx.push(s); // an empty document
            }
        }
        let mut toks = Vec::new();
        let mut offs = Vec::new();
        for w in doc_idx.windows(2) {
            offs.push(toks.len() as u64);
            for q in &seqs[w[0] as usize..w[1] as usize] {
                toks.extend_from_slice(q);
            }
        }
        let mem =
            count(&[Shard::Tokens32 { name: "m".into(), tokens: &toks, offsets: &offs }], &ix, None, None).unwrap();
        let dir = std::env::temp_dir().join(format!("memscore-megatron-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (dtype, n_parts) in [(TokenType::U16, 3), (TokenType::I32, 1), (TokenType::F64, 5), (TokenType::U8, 2)] {
            let (mx, parts) = write_megatron(&dir, &seqs, &doc_idx, dtype, n_parts);
            let sh = |n: usize, mx: &MegatronIndex| Shard::TokenFile {
                name: "mg".into(),
                parts: parts.clone(),
                start: 0,
                dtype,
                n_tokens: n,
                offsets: Offsets::Megatron(mx.clone()),
            };
            assert_eq!(count(&[sh(toks.len(), &mx)], &ix, None, None).unwrap(), mem, "{dtype:?}");
            // a .bin shorter than the index's sizes
            let e = count(&[sh(toks.len() + 1, &mx)], &ix, None, None).unwrap_err();
            assert!(e.to_string().contains("truncated"), "{e}");
            let e = count(&[sh(toks.len() - 1, &mx)], &ix, None, None).unwrap_err();
            assert!(e.to_string().contains("add up to"), "{e}");
            // damaged arrays: a pointer, a size, the document index
            let good = std::fs::read(&mx.path).unwrap();
            let n = seqs.len();
            for (at, what) in [
                (34 + 4 * n + 8 * 1234, "pointers[1234]"),
                (34 + 4 * 77, "sizes[77]"),
                (34 + 12 * n + 8 * 100, "doc_idx"),
            ] {
                let mut bad = good.clone();
                bad[at..at + 4].copy_from_slice(&(-3i32).to_le_bytes());
                std::fs::write(&mx.path, &bad).unwrap();
                let e = count(&[sh(toks.len(), &mx)], &ix, None, None).unwrap_err();
                assert!(e.to_string().contains(what) || e.to_string().contains("document index"), "{what}: {e}");
                assert!(e.to_string().contains(&mx.path.display().to_string()), "{e}");
            }
            std::fs::write(&mx.path, &good).unwrap();
        }
        // a negative token of an int32 .bin is named with its file and position
        let mut neg = seqs.clone();
        neg[2998][3] = u32::MAX; // -1 as i32
        let (mx, parts) = write_megatron(&dir, &neg, &doc_idx, TokenType::I32, 2);
        let sh = Shard::TokenFile {
            name: "mg".into(),
            parts: parts.clone(),
            start: 0,
            dtype: TokenType::I32,
            n_tokens: toks.len(),
            offsets: Offsets::Megatron(mx),
        };
        let e = count(&[sh], &ix, None, None).unwrap_err().to_string();
        assert!(e.contains("is -1, not a token id") && e.contains("-00001-of-00002.bin"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn bad_offsets() {
        let toks: Vec<u32> = vec![1, 2];
        for offs in [vec![1u64], vec![0, 3], vec![0, 2, 1]] {
            let sh = [Shard::Tokens32 { name: "t".into(), tokens: &toks, offsets: &offs }];
            let ix = Index::build(&[1], &[0, 1], &[]).unwrap();
            assert!(matches!(count(&sh, &ix, None, None), Err(Error::Corpus { .. })));
        }
    }
}
