//! Query n-grams as a trie over `u32` token ids, plus the pairs as adjacency lists.
//!
//! Node 0 is the root. Children of the root for small token ids sit in a dense array (one
//! load per corpus token); every other edge is a hash-map entry keyed by
//! `(node << 32) | token`. A node that ends some query n-gram carries that n-gram's unique
//! id; duplicate queries share a unique id. Matching walks the trie from every corpus
//! position, so counts are exact: tokens are compared, never only hashes.

use rustc_hash::FxHashMap;

use super::{NgramError, NgramResult};

pub const NONE: u32 = u32::MAX;
/// Root children for token ids below this bound live in a dense array.
const DENSE_ROOT_MAX: usize = 1 << 24;

#[inline]
fn key(node: u32, token: u32) -> u64 {
    ((node as u64) << 32) | token as u64
}

/// Frozen edge map: open addressing, linear probing, load factor <= 1/2, one 16-byte slot
/// per probe (key and child together). Keys are `(node << 32) | token` with node < 2^32 - 1,
/// so `u64::MAX` never is a key and marks empty slots.
#[derive(Debug, Clone, Default)]
struct EdgeTable {
    slots: Vec<Slot>,
    shift: u32,
}

#[derive(Debug, Clone, Copy)]
#[repr(C, align(16))]
struct Slot {
    key: u64,
    child: u32,
}

const EMPTY: u64 = u64::MAX;

impl EdgeTable {
    fn from_map(map: &FxHashMap<u64, u32>) -> EdgeTable {
        let cap = (map.len().max(4) * 2).next_power_of_two();
        let mut slots = vec![Slot { key: EMPTY, child: NONE }; cap];
        let shift = 64 - cap.trailing_zeros();
        let mask = cap - 1;
        for (&k, &v) in map {
            let mut i = Self::home(k, shift);
            while slots[i].key != EMPTY {
                i = (i + 1) & mask;
            }
            slots[i] = Slot { key: k, child: v };
        }
        EdgeTable { slots, shift }
    }

    #[inline]
    fn home(k: u64, shift: u32) -> usize {
        (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> shift) as usize
    }

    #[inline]
    fn get(&self, k: u64) -> u32 {
        let mask = self.slots.len() - 1;
        let mut i = Self::home(k, self.shift);
        loop {
            // SAFETY-free: i is always masked into range
            let s = self.slots[i & mask];
            if s.key == k {
                return s.child;
            }
            if s.key == EMPTY {
                return NONE;
            }
            i = (i + 1) & mask;
        }
    }
}

#[derive(Debug, Clone)]
pub struct Index {
    root_dense: Vec<u32>,
    sparse_root: bool,
    edges: FxHashMap<u64, u32>,
    table: EdgeTable,
    has_children: Vec<bool>,
    terminal: Vec<u32>,
    /// input n-gram -> unique id
    pub ngram_unique: Vec<u32>,
    pub n_unique: usize,
    pub max_n: usize,
    /// pairs as (unique id, unique id)
    pub pairs: Vec<(u32, u32)>,
    /// length of each unique n-gram
    pub unique_len: Vec<u32>,
    /// pairs listed under one of their n-grams (the longer one, a guess at the rarer)
    pub lists: PairLists,
    pub n_pairs: usize,
}

impl Index {
    /// Build from `ngrams` (flat tokens with `starts`, n-gram `k` is
    /// `tokens[starts[k]..starts[k+1]]`) and `pairs` of n-gram indices.
    pub fn build(tokens: &[u32], starts: &[u64], pairs: &[(u64, u64)]) -> NgramResult<Index> {
        if starts.is_empty() || starts[0] != 0 || *starts.last().unwrap_or(&0) != tokens.len() as u64 {
            return Err(NgramError::Invalid(format!(
                "query offsets: expected {} values from 0 to {}, got {} values",
                "n+1",
                tokens.len(),
                starts.len()
            )));
        }
        let n_ngrams = starts.len() - 1;
        if n_ngrams >= NONE as usize || tokens.len() >= NONE as usize {
            return Err(NgramError::Invalid("too many query n-grams for one pass (limit 2^32 - 1)".into()));
        }
        let max_tok = tokens.iter().copied().max().unwrap_or(0) as usize;
        let dense_len = if tokens.is_empty() { 0 } else { (max_tok + 1).min(DENSE_ROOT_MAX) };
        let mut ix = Index {
            root_dense: vec![NONE; dense_len],
            sparse_root: max_tok >= DENSE_ROOT_MAX,
            edges: FxHashMap::default(),
            table: EdgeTable::default(),
            has_children: vec![false],
            terminal: vec![NONE],
            ngram_unique: Vec::with_capacity(n_ngrams),
            n_unique: 0,
            max_n: 0,
            pairs: Vec::new(),
            unique_len: Vec::new(),
            lists: PairLists::default(),
            n_pairs: pairs.len(),
        };
        for k in 0..n_ngrams {
            let (a, b) = (starts[k] as usize, starts[k + 1] as usize);
            if b <= a {
                return Err(NgramError::Invalid(format!(
                    "query {k}: an n-gram needs at least one token, got {}",
                    if b == a { "none".to_string() } else { "decreasing offsets".to_string() }
                )));
            }
            ix.max_n = ix.max_n.max(b - a);
            let mut node = 0u32;
            for &t in &tokens[a..b] {
                node = ix.child_or_insert(node, t);
            }
            let term = &mut ix.terminal[node as usize];
            if *term == NONE {
                *term = ix.n_unique as u32;
                ix.n_unique += 1;
            }
            ix.ngram_unique.push(*term);
        }
        ix.table = EdgeTable::from_map(&ix.edges);
        ix.edges = FxHashMap::default();
        ix.unique_len = vec![0; ix.n_unique];
        for k in 0..n_ngrams {
            ix.unique_len[ix.ngram_unique[k] as usize] = (starts[k + 1] - starts[k]) as u32;
        }
        for (p, &(a, b)) in pairs.iter().enumerate() {
            if a as usize >= n_ngrams || b as usize >= n_ngrams {
                return Err(NgramError::Invalid(format!(
                    "pair {p}: n-gram index ({a}, {b}) out of range for {n_ngrams} n-grams"
                )));
            }
            ix.pairs.push((ix.ngram_unique[a as usize], ix.ngram_unique[b as usize]));
        }
        // longer n-grams tend to be rarer: list the pair under its longer n-gram
        let lens = &ix.unique_len;
        ix.lists = PairLists::build(ix.n_unique, &ix.pairs, |u| u64::MAX - lens[u as usize] as u64);
        Ok(ix)
    }

    fn child_or_insert(&mut self, node: u32, t: u32) -> u32 {
        let existing = self.child_any(node, t);
        if existing != NONE {
            return existing;
        }
        let new = self.terminal.len() as u32;
        self.terminal.push(NONE);
        self.has_children.push(false);
        self.has_children[node as usize] = true;
        if node == 0 && (t as usize) < self.root_dense.len() {
            self.root_dense[t as usize] = new;
        } else {
            self.edges.insert(key(node, t), new);
        }
        new
    }

    #[inline]
    fn child_any(&self, node: u32, t: u32) -> u32 {
        // while building: the root's dense array, else the growable map
        if node == 0 && (t as usize) < self.root_dense.len() {
            return self.root_dense[t as usize];
        }
        self.edges.get(&key(node, t)).copied().unwrap_or(NONE)
    }

    #[inline]
    pub fn root_child(&self, t: u32) -> u32 {
        match self.root_dense.get(t as usize) {
            Some(&c) => c,
            None if self.sparse_root => self.table.get(key(0, t)),
            None => NONE,
        }
    }

    #[inline]
    pub fn child(&self, node: u32, t: u32) -> u32 {
        self.table.get(key(node, t))
    }

    #[inline]
    pub fn has_children(&self, node: u32) -> bool {
        self.has_children[node as usize]
    }

    #[inline]
    pub fn terminal(&self, node: u32) -> u32 {
        self.terminal[node as usize]
    }

    pub fn has_pairs(&self) -> bool {
        self.n_pairs > 0
    }

}

/// Pairs in adjacency lists (CSR): each pair is listed under one of its two n-grams, the
/// "anchor"; a document credits the pair when the anchor is present and the other n-gram's
/// stamp says it is present too. Listing under the rarer n-gram keeps the lists walked per
/// document short, so the accumulator re-lists pairs by the document frequencies it has seen.
#[derive(Debug, Clone, Default)]
pub struct PairLists {
    start: Vec<u32>,
    other: Vec<u32>,
    id: Vec<u32>,
}

impl PairLists {
    /// List each pair under the n-gram with the smaller `rank` (ties: the first one).
    pub fn build(n_unique: usize, pairs: &[(u32, u32)], rank: impl Fn(u32) -> u64) -> PairLists {
        let anchor = |&(a, b): &(u32, u32)| if rank(b) < rank(a) { (b, a) } else { (a, b) };
        let mut start = vec![0u32; n_unique + 1];
        for pr in pairs {
            start[anchor(pr).0 as usize + 1] += 1;
        }
        for u in 0..n_unique {
            start[u + 1] += start[u];
        }
        let mut fill = start.clone();
        let mut other = vec![0u32; pairs.len()];
        let mut id = vec![0u32; pairs.len()];
        for (p, pr) in pairs.iter().enumerate() {
            let (a, b) = anchor(pr);
            let at = fill[a as usize] as usize;
            other[at] = b;
            id[at] = p as u32;
            fill[a as usize] += 1;
        }
        PairLists { start, other, id }
    }

    /// Pairs anchored at unique id `u`: (other unique id, pair index).
    #[inline]
    pub fn of(&self, u: u32) -> impl Iterator<Item = (u32, u32)> + '_ {
        let (a, b) = (self.start[u as usize] as usize, self.start[u as usize + 1] as usize);
        self.other[a..b].iter().copied().zip(self.id[a..b].iter().copied())
    }
}
