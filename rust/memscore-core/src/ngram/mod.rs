//! Corpus n-gram counting: occurrences, document frequency and document co-occurrence of
//! many query n-grams in one streaming pass over a corpus.
//!
//! - [`normalize`]: the word normalizer shared by corpus text and query text.
//! - [`index`]: the query n-grams as a trie over token ids (exact, no hash collisions), and
//!   the pairs as adjacency lists.
//! - [`table`]: the frozen hash map under the trie edges and the text vocabulary.
//! - [`subword`]: subword tokens of a HuggingFace `tokenizer.json` (the `tokenizers` crate).
//! - [`count`]: the per-thread accumulator (u32 counters, document-presence bitmap,
//!   co-occurrence through pair lists).
//! - [`source`]: corpus shards (token arrays and files, jsonl / text files, plain / gz / zst) and the
//!   parallel driver.
//!
//! N-grams never span two documents. Text corpora keep only the words that occur in some
//! query (a vocabulary built from the queries); every other word is a barrier no query
//! n-gram can cross, so a corpus word costs one normalization and one hash lookup.

pub mod count;
pub mod index;
pub mod normalize;
mod punct_table;
pub mod source;
pub mod subword;
pub mod table;

use std::fmt;

/// Errors of the n-gram engine. `Corpus` maps to `memscore.CorpusError` in Python,
/// `Invalid` to `ValueError`.
#[derive(Debug, Clone, PartialEq)]
pub enum NgramError {
    /// A bad argument (maps to `ValueError`).
    Invalid(String),
    /// A shard cannot be read or parsed: file, 1-based line (0 when unknown), message.
    Corpus { path: String, line: u64, msg: String },
}

impl NgramError {
    pub(crate) fn corpus(path: &str, line: u64, msg: impl Into<String>) -> Self {
        NgramError::Corpus { path: path.to_string(), line, msg: msg.into() }
    }
}

impl fmt::Display for NgramError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NgramError::Invalid(m) => write!(f, "{m}"),
            NgramError::Corpus { path, line, msg } if *line > 0 => {
                write!(f, "{path}, line {line}: {msg}")
            }
            NgramError::Corpus { path, msg, .. } => write!(f, "{path}: {msg}"),
        }
    }
}

impl std::error::Error for NgramError {}

pub type NgramResult<T> = std::result::Result<T, NgramError>;
