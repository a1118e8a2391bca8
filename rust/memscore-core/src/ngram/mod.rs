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
pub mod token_file;
