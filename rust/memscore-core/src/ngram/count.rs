//! The per-thread accumulator: occurrence counts, document frequency through a bitmap of
//! the n-grams present in the current document, and co-occurrence through that bitmap and
//! per-thread pair adjacency lists.
//!
//! Speed comes from memory-level parallelism, not from skipping work: every step of every
//! trie walk and every counter update is a load from a table larger than the L2 cache, so
//! the scan runs breadth-first over a block of start positions (all first steps, then all
//! second steps, ...), prefetching each level's slots before reading them, and the counter
//! updates of a block are queued and prefetched before they are applied. Counters are u32
//! (an 8-byte record per n-gram: count, document frequency) and are flushed into u64 totals
//! before they could overflow. The presence bitmap (one bit per n-gram: 13 KB for 100,000)
//! stays in the L1 cache, so the many pair checks of a document cost almost nothing.

use super::index::{prefetch, Index, PairLists, NO_UID};
use crate::error::{try_filled, Result};

/// Re-list the pairs under their rarer n-gram (by this thread's document frequencies)
/// after this many documents, and again after 16 times as many.
const RELIST_AFTER: u64 = if cfg!(test) { 64 } else { 4096 };
/// Start positions walked together (breadth-first) by [`Acc::scan`].
const BLOCK: usize = 256;
/// Queued counter updates applied at once.
const HIT_CHUNK: usize = 1 << 14;
/// Flush the u32 counters after this many count increments. Every u32 counter is bounded
/// by them: a document-frequency or co-occurrence increment needs a hit in that document.
/// (Small in tests, so that the tests go through flushes.)
const FLUSH_AFTER: u64 = if cfg!(test) { 1000 } else { u32::MAX as u64 };

/// The u32 counters of one unique n-gram.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(8))]
struct Rec {
    count: u32,
    df: u32,
}

/// Counts of one thread, indexed by unique n-gram id and pair index.
#[derive(Debug, Clone)]
pub struct Acc {
    recs: Vec<Rec>,
    /// bit u: n-gram u occurred in the current document
    seen: Vec<u64>,
    /// pairs anchored at n-gram u sit at `list[u].0..list[u].1`
    list: Vec<(u32, u32)>,
    /// pair lists in list order: the other n-gram, the pair's index, the u32 co-occurrence
    other: Vec<u32>,
    pair_id: Vec<u32>,
    co32: Vec<u32>,
    counts: Vec<u64>,
    df: Vec<u64>,
    co: Vec<u64>,
    /// counter increments since the last flush (bounds every u32 counter)
    since_flush: u64,
    hits: Vec<u32>,
    present: Vec<u32>,
    frontier: Vec<(u32, u32)>,
    next: Vec<(u32, u32)>,
    track: bool,
    relist_at: u64,
    pub n_documents: u64,
    pub n_tokens: u64,
    pub n_skipped: u64,
}

/// The final counts of a thread (or the merged total).
#[derive(Debug, Clone)]
pub struct Totals {
    pub counts: Vec<u64>,
    pub df: Vec<u64>,
    pub co: Vec<u64>,
    pub n_documents: u64,
    pub n_tokens: u64,
    pub n_skipped: u64,
}

impl Acc {
    /// A thread's counters: about 40 bytes per distinct n-gram and 12 per pair, allocated
    /// fallibly (many threads times many queries is the n-gram engine's largest allocation).
    pub fn new(ix: &Index) -> Result<Acc> {
        let mut acc = Acc {
            recs: try_filled("n-gram counters", ix.n_unique + 1, Rec::default())?,
            seen: try_filled("n-gram presence bits", ix.n_unique.div_ceil(64) + 1, 0)?,
            list: Vec::new(),
            other: Vec::new(),
            pair_id: Vec::new(),
            co32: try_filled("pair counters", ix.n_pairs, 0)?,
            counts: try_filled("n-gram counts", ix.n_unique, 0)?,
            df: try_filled("document frequencies", ix.n_unique, 0)?,
            co: try_filled("co-occurrence counts", ix.n_pairs, 0)?,
            since_flush: 0,
            hits: Vec::new(),
            present: Vec::new(),
            frontier: Vec::new(),
            next: Vec::new(),
            track: ix.has_pairs(),
            relist_at: RELIST_AFTER,
            n_documents: 0,
            n_tokens: 0,
            n_skipped: 0,
        };
        // before any statistics: longer n-grams tend to be rarer, so list under the longer
        let lens = &ix.unique_len;
        acc.set_lists(PairLists::build(ix.n_unique, &ix.pairs, |u| u64::MAX - lens[u as usize] as u64, |_| 0)?);
        Ok(acc)
    }

    fn set_lists(&mut self, l: PairLists) {
        self.list = l.range;
        self.other = l.other;
        self.pair_id = l.id;
    }

    /// Move the u32 counters into the u64 totals.
    fn flush(&mut self) {
        for ((r, c), d) in self.recs.iter_mut().zip(&mut self.counts).zip(&mut self.df) {
            *c += r.count as u64;
            *d += r.df as u64;
            r.count = 0;
            r.df = 0;
        }
        for (k, c) in self.co32.iter_mut().enumerate() {
            self.co[self.pair_id[k] as usize] += *c as u64;
            *c = 0;
        }
        self.since_flush = 0;
    }

    /// Start a new document.
    #[inline]
    pub fn begin_doc(&mut self) {
        self.n_documents += 1;
    }

    /// Apply the queued counter updates of the current document.
    fn apply_hits(&mut self) {
        if self.since_flush + self.hits.len() as u64 >= FLUSH_AFTER {
            self.flush();
        }
        self.since_flush += self.hits.len() as u64;
        // whether an n-gram is new in this document is data, not a pattern: no branches
        let mut np = self.present.len();
        self.present.resize(np + self.hits.len(), 0);
        for &u in &self.hits {
            let (w, bit) = ((u >> 6) as usize, 1u64 << (u & 63));
            let new = (self.seen[w] & bit == 0) as u32;
            self.seen[w] |= bit;
            let r = &mut self.recs[u as usize];
            r.count += 1;
            r.df += new;
            self.present[np] = u;
            np += new as usize;
        }
        self.present.truncate(np);
        self.hits.clear();
    }

    /// Count every query n-gram that starts and ends in `toks` (one document, or one
    /// segment of it). Tokens the index does not know stop the walk.
    #[inline]
    pub fn scan<T: Copy + Into<u32>>(&mut self, ix: &Index, toks: &[T]) {
        let n = toks.len();
        let sentinel = self.recs.len() - 1;
        let mut frontier = std::mem::take(&mut self.frontier);
        let mut next = std::mem::take(&mut self.next);
        let mut b = 0;
        while b < n {
            let e = (b + BLOCK).min(n);
            // level 1: the root's dense array. Whether a step finds an n-gram, and whether
            // the walk goes on, are coin flips for the CPU: slots are written always and
            // kept by advancing the length, without branches.
            let h0 = self.hits.len();
            let mut nh = h0;
            self.hits.resize(nh + (e - b), 0);
            frontier.resize(e - b, (0, 0));
            let mut nf = 0;
            for (i, &tok) in toks.iter().enumerate().take(e).skip(b) {
                let en = ix.root_child(tok.into());
                self.hits[nh] = en.uid();
                nh += (en.uid() != NO_UID) as usize;
                frontier[nf] = (i as u32, en.node);
                nf += (en.has_children() & (i + 1 < n)) as usize;
            }
            frontier.truncate(nf);
            // deeper levels, breadth-first: a level's slots are all prefetched, then read
            let mut depth = 1usize;
            while !frontier.is_empty() {
                for &(i, node) in &frontier {
                    ix.prefetch_child(node, toks[i as usize + depth].into());
                }
                self.hits.resize(nh + frontier.len(), 0);
                next.resize(frontier.len(), (0, 0));
                let mut nn = 0;
                for &(i, node) in &frontier {
                    let j = i as usize + depth;
                    let en = ix.child(node, toks[j].into());
                    self.hits[nh] = en.uid();
                    nh += (en.uid() != NO_UID) as usize;
                    next[nn] = (i, en.node);
                    nn += (en.has_children() & (j + 1 < n)) as usize;
                }
                next.truncate(nn);
                std::mem::swap(&mut frontier, &mut next);
                depth += 1;
            }
            self.hits.truncate(nh);
            // the counters this block will update, loaded while the next block is walked
            for &u in &self.hits[h0..] {
                prefetch(&self.recs[(u as usize).min(sentinel)]);
            }
            if self.hits.len() >= HIT_CHUNK {
                self.apply_hits();
            }
            b = e;
        }
        self.frontier = frontier;
        self.next = next;
    }

    /// Finish the current document: apply its counts and credit every pair whose two
    /// n-grams were both present.
    #[inline]
    pub fn end_doc(&mut self, ix: &Index) {
        self.apply_hits();
        if self.track {
            // the lists of a document's n-grams start at random places: load their ranges,
            // then their first lines, for all of them, before walking any
            for &u in &self.present {
                prefetch(&self.list[u as usize]);
            }
            for &u in &self.present {
                let lo = self.list[u as usize].0 as usize;
                prefetch(self.other.as_ptr().wrapping_add(lo));
                prefetch(self.co32.as_ptr().wrapping_add(lo));
            }
            for &u in &self.present {
                let (lo, hi) = self.list[u as usize];
                for k in lo as usize..hi as usize {
                    let o = self.other[k];
                    self.co32[k] += ((self.seen[(o >> 6) as usize] >> (o & 63)) & 1) as u32;
                }
            }
        }
        for &u in &self.present {
            self.seen[(u >> 6) as usize] = 0;
        }
        self.present.clear();
        if self.track && self.n_documents == self.relist_at {
            self.flush();
            let (df, lens) = (&self.df, &ix.unique_len);
            // anchor: the rarer n-gram; among equals, the longer. Frequent anchors first.
            let lists = PairLists::build(
                ix.n_unique,
                &ix.pairs,
                |u| (df[u as usize] << 8) | (255 - lens[u as usize].min(255)) as u64,
                |u| u64::MAX - df[u as usize],
            );
            // Re-listing only speeds the scan up: without room for new lists, keep the old.
            if let Ok(lists) = lists {
                self.set_lists(lists);
            }
            self.relist_at = self.relist_at.saturating_mul(16);
        }
    }

    /// The thread's final counts.
    pub fn finish(mut self) -> Totals {
        self.apply_hits();
        self.flush();
        Totals {
            counts: self.counts,
            df: self.df,
            co: self.co,
            n_documents: self.n_documents,
            n_tokens: self.n_tokens,
            n_skipped: self.n_skipped,
        }
    }
}

impl Totals {
    /// Add another thread's totals into these.
    pub fn merge(&mut self, o: &Totals) {
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
    pub fn from_totals(ix: &Index, t: &Totals) -> Stats {
        Stats {
            counts: ix.ngram_unique.iter().map(|&u| t.counts[u as usize]).collect(),
            doc_freq: ix.ngram_unique.iter().map(|&u| t.df[u as usize]).collect(),
            cooccurrence: t.co.clone(),
            n_documents: t.n_documents,
            n_tokens: t.n_tokens,
            n_skipped: t.n_skipped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::source::{count, Shard};
    use super::*;

    /// Brute force: every (document, position, query) compared token by token.
    fn brute(docs: &[Vec<u32>], queries: &[Vec<u32>], pairs: &[(u64, u64)]) -> (Vec<u64>, Vec<u64>, Vec<u64>) {
        let mut counts = vec![0; queries.len()];
        let mut df = vec![0; queries.len()];
        let mut co = vec![0; pairs.len()];
        for d in docs {
            let mut present = vec![false; queries.len()];
            for (q, g) in queries.iter().enumerate() {
                let c = if g.len() > d.len() { 0 } else { d.windows(g.len()).filter(|w| *w == &g[..]).count() };
                counts[q] += c as u64;
                present[q] = c > 0;
                df[q] += (c > 0) as u64;
            }
            for (p, &(a, b)) in pairs.iter().enumerate() {
                co[p] += (present[a as usize] && present[b as usize]) as u64;
            }
        }
        (counts, df, co)
    }

    #[test]
    fn random_corpora_match_brute_force() {
        let mut s = 7u64;
        let mut rnd = |m: u64| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 33) % m
        };
        for round in 0..6 {
            let vocab = [3, 8, 50, 300, 5000, 70000][round];
            let docs: Vec<Vec<u32>> = (0..400)
                .map(|_| {
                    let len = rnd(60) as usize;
                    (0..len).map(|_| rnd(vocab).min(rnd(vocab)) as u32).collect()
                })
                .collect();
            // queries: cut from the documents (mostly present) and random (mostly absent)
            let mut queries: Vec<Vec<u32>> = Vec::new();
            while queries.len() < 3000 {
                let n = 1 + rnd(4) as usize;
                let d = &docs[rnd(docs.len() as u64) as usize];
                if rnd(3) > 0 && d.len() >= n {
                    let i = rnd((d.len() - n + 1) as u64) as usize;
                    queries.push(d[i..i + n].to_vec());
                } else {
                    queries.push((0..n).map(|_| rnd(vocab) as u32).collect());
                }
            }
            let pairs: Vec<(u64, u64)> = (0..2000).map(|_| (rnd(3000), rnd(3000))).collect();
            let (mut flat, mut starts) = (Vec::new(), vec![0u64]);
            for q in &queries {
                flat.extend_from_slice(q);
                starts.push(flat.len() as u64);
            }
            let ix = Index::build(&flat, &starts, &pairs).unwrap();
            let (toks, mut offs) = (docs.concat(), vec![0u64]);
            for d in &docs[..docs.len() - 1] {
                offs.push(offs.last().unwrap() + d.len() as u64);
            }
            let sh = [Shard::Tokens32 { name: "t".into(), tokens: &toks, offsets: &offs }];
            let got = count(&sh, &ix, None, None).unwrap();
            let (c, d, co) = brute(&docs, &queries, &pairs);
            assert_eq!(got.counts, c, "vocab {vocab}");
            assert_eq!(got.doc_freq, d, "vocab {vocab}");
            assert_eq!(got.cooccurrence, co, "vocab {vocab}");
            assert_eq!(got.n_documents, docs.len() as u64);
        }
    }
}
