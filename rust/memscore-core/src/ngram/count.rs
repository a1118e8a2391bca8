//! The per-thread accumulator: occurrence counts, document frequency through a
//! last-document stamp per n-gram, and co-occurrence through the list of n-grams present
//! in the current document and the pair adjacency lists of the index.

use super::index::{Index, PairLists, NONE};

/// Re-list the pairs under their rarer n-gram (by this thread's document frequencies)
/// after this many documents, and again after 16 times as many.
const RELIST_AFTER: u64 = 4096;

/// Counts of one thread (or the merged total), indexed by unique n-gram id and pair index.
#[derive(Debug, Clone)]
pub struct Acc {
    pub counts: Vec<u64>,
    pub df: Vec<u64>,
    pub co: Vec<u64>,
    stamp: Vec<u32>,
    doc: u32,
    present: Vec<u32>,
    track: bool,
    lists: Option<PairLists>,
    relist_at: u64,
    pub n_documents: u64,
    pub n_tokens: u64,
    pub n_skipped: u64,
}

impl Acc {
    pub fn new(ix: &Index) -> Acc {
        Acc {
            counts: vec![0; ix.n_unique],
            df: vec![0; ix.n_unique],
            co: vec![0; ix.n_pairs],
            stamp: vec![0; ix.n_unique],
            doc: 0,
            present: Vec::new(),
            track: ix.has_pairs(),
            lists: None,
            relist_at: RELIST_AFTER,
            n_documents: 0,
            n_tokens: 0,
            n_skipped: 0,
        }
    }

    /// Start a new document.
    #[inline]
    pub fn begin_doc(&mut self) {
        if self.doc == u32::MAX {
            self.stamp.fill(0);
            self.doc = 0;
        }
        self.doc += 1;
        self.n_documents += 1;
    }

    #[inline]
    fn hit(&mut self, u: u32) {
        let u = u as usize;
        self.counts[u] += 1;
        if self.stamp[u] != self.doc {
            self.stamp[u] = self.doc;
            self.df[u] += 1;
            if self.track {
                self.present.push(u as u32);
            }
        }
    }

    /// Count every query n-gram that starts in `toks` and ends in `toks` (one document, or
    /// one barrier-free segment of it). Tokens the index does not know stop the walk.
    #[inline]
    pub fn scan<T: Copy + Into<u32>>(&mut self, ix: &Index, toks: &[T]) {
        let n = toks.len();
        for i in 0..n {
            let mut node = ix.root_child(toks[i].into());
            if node == NONE {
                continue;
            }
            let mut j = i;
            loop {
                let u = ix.terminal(node);
                if u != NONE {
                    self.hit(u);
                }
                if !ix.has_children(node) {
                    break;
                }
                j += 1;
                if j >= n {
                    break;
                }
                node = ix.child(node, toks[j].into());
                if node == NONE {
                    break;
                }
            }
        }
    }

    /// Finish the current document: credit every pair whose two n-grams were both present.
    #[inline]
    pub fn end_doc(&mut self, ix: &Index) {
        if !self.track {
            return;
        }
        let doc = self.doc;
        let lists = self.lists.as_ref().unwrap_or(&ix.lists);
        for &u in &self.present {
            for (other, p) in lists.of(u) {
                if self.stamp[other as usize] == doc {
                    self.co[p as usize] += 1;
                }
            }
        }
        self.present.clear();
        if self.n_documents == self.relist_at {
            let (df, lens) = (&self.df, &ix.unique_len);
            // rarer first; among equals, the longer n-gram
            self.lists = Some(PairLists::build(ix.n_unique, &ix.pairs, |u| {
                (df[u as usize] << 8) | (255 - lens[u as usize].min(255)) as u64
            }));
            self.relist_at = self.relist_at.saturating_mul(16);
        }
    }

    /// Add another accumulator's totals into this one.
    pub fn merge(&mut self, o: &Acc) {
        for (a, b) in self.counts.iter_mut().zip(&o.counts) {
            *a += b;
        }
        for (a, b) in self.df.iter_mut().zip(&o.df) {
            *a += b;
        }
        for (a, b) in self.co.iter_mut().zip(&o.co) {
            *a += b;
        }
        self.n_documents += o.n_documents;
        self.n_tokens += o.n_tokens;
        self.n_skipped += o.n_skipped;
    }
}

/// Results in the order of the input n-grams and pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    pub counts: Vec<u64>,
    pub doc_freq: Vec<u64>,
    pub cooccurrence: Vec<u64>,
    pub n_documents: u64,
    pub n_tokens: u64,
    pub n_skipped: u64,
}

impl Stats {
    pub fn from_acc(ix: &Index, acc: &Acc) -> Stats {
        Stats {
            counts: ix.ngram_unique.iter().map(|&u| acc.counts[u as usize]).collect(),
            doc_freq: ix.ngram_unique.iter().map(|&u| acc.df[u as usize]).collect(),
            cooccurrence: acc.co.clone(),
            n_documents: acc.n_documents,
            n_tokens: acc.n_tokens,
            n_skipped: acc.n_skipped,
        }
    }
}
