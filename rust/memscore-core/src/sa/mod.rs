//! A corpus index: one suffix array per part of a token shard, memory-mapped, answering
//! exact n-gram queries in a few binary searches instead of a pass over the corpus.
//!
//! - [`build`]: a part's files from its tokens and document offsets. The suffix array is
//!   built by libsais (through the `libsais` crate); this crate only lays out its input
//!   and writes its output.
//! - [`part`]: the on-disk layout of one part (token file, suffix array, document starts),
//!   opened through memory maps and checked against its manifest entry.
//! - [`query`]: count, positions, next-token counts, the longest match at each position
//!   and the maximal matching spans, over every part of an index.
//!
//! # Documents are never crossed
//!
//! A part's token file holds its documents with one *separator* between two documents: a
//! token value absent from the part (the largest such u16 value, or the largest token + 1
//! for u32), recorded in the manifest. The suffix array sorts the suffixes of that text, so
//! the suffixes that start with a query n-gram form one range, and a suffix whose document
//! ends before the n-gram does compares unequal at the separator: n-grams never span two
//! documents, as in the streaming engine. Suffixes that start at a separator are left out
//! of the suffix array, which holds one entry per corpus token.

pub mod build;
pub mod part;
pub mod query;

/// A token id type of a part's token file.
pub trait Tok: Copy + Send + Sync + 'static {
    /// Bytes per token on disk.
    const WIDTH: usize;
    fn id(self) -> u32;
}

impl Tok for u16 {
    const WIDTH: usize = 2;
    #[inline(always)]
    fn id(self) -> u32 {
        self as u32
    }
}

impl Tok for u32 {
    const WIDTH: usize = 4;
    #[inline(always)]
    fn id(self) -> u32 {
        self
    }
}

/// Bytes a suffix-array pointer needs to address `text_len` positions (at least 1).
pub fn pointer_width(text_len: u64) -> usize {
    let max = text_len.saturating_sub(1);
    (((64 - max.leading_zeros()) as usize).div_ceil(8)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_widths() {
        assert_eq!(pointer_width(0), 1);
        assert_eq!(pointer_width(256), 1);
        assert_eq!(pointer_width(257), 2);
        assert_eq!(pointer_width(1 << 32), 4);
        assert_eq!(pointer_width((1 << 32) + 1), 5);
    }
}

#[cfg(test)]
mod roundtrip {
    use super::build::{build_part, Input};
    use super::part::{Part, PartMeta};
    use super::query::{Entry, SuffixIndex};
    use crate::pool::Cancel;

    fn naive(docs: &[Vec<u16>], q: &[u32]) -> u64 {
        docs.iter()
            .map(|d| d.windows(q.len()).filter(|w| w.iter().zip(q).all(|(&a, &b)| a as u32 == b)).count() as u64)
            .sum()
    }

    #[test]
    fn counts_equal_a_scan() {
        let dir = std::env::temp_dir().join(format!("memscore-sa-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut seed = 7u64;
        let mut rnd = |k: u64| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) % k
        };
        let docs: Vec<Vec<u16>> = (0..20).map(|_| (0..rnd(30)).map(|_| rnd(4) as u16).collect()).collect();
        let tokens: Vec<u16> = docs.concat();
        let mut offsets = vec![0u64];
        for d in &docs[..docs.len() - 1] {
            offsets.push(offsets.last().unwrap() + d.len() as u64);
        }
        for wide in [false, true] {
            let prefix = dir.join(if wide { "p32" } else { "p16" });
            let t32: Vec<u32> = tokens.iter().map(|&t| t as u32).collect();
            let input = if wide { Input::U32(&t32) } else { Input::U16(&tokens) };
            let b = build_part(input, &offsets, &prefix, &Cancel::new()).unwrap();
            let meta = PartMeta {
                text_len: b.text_len,
                n_tokens: b.n_tokens,
                n_docs: b.n_docs,
                token_width: b.token_width,
                sa_width: b.sa_width,
                separator: b.separator,
                checksums: b.checksums,
            };
            let part = Part::open(&prefix, meta, true).unwrap();
            let ix = SuffixIndex { parts: vec![Entry { part, shard: 0, doc_base: 0, token_base: 0 }] };
            for _ in 0..200 {
                let q: Vec<u32> = (0..1 + rnd(4)).map(|_| rnd(5) as u32).collect();
                assert_eq!(ix.count(&q).unwrap(), naive(&docs, &q), "{q:?}");
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
