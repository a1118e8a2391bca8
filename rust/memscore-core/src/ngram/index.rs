//! Query n-grams as a trie over `u32` token ids, plus the pairs as adjacency lists.
//!
//! Node 0 is the root. Children of the root for small token ids sit in a dense array (one
//! load per corpus token); every other edge is a slot of one open-addressing table keyed by
//! `(node << 32) | token`. What a walk needs next about a node (the unique id of the query
//! n-gram ending there, whether it has children) travels with the edge in an [`Entry`], so
//! one step is one memory access. Duplicate queries share a unique id. Matching walks the
//! trie from every corpus position, so counts are exact: tokens are compared, never only
//! hashes.

use rustc_hash::FxHashMap;

pub use super::table::prefetch;
use super::table::BucketMap;
use crate::error::{try_filled, try_with_capacity, Error, Result};

pub const NONE: u32 = u32::MAX;
/// `Entry::info` bit: the node has children.
pub const HAS_CHILDREN: u32 = 1 << 31;
/// `Entry::info & UID_MASK` is the unique id of the n-gram ending at the node, or `NO_UID`.
pub const UID_MASK: u32 = HAS_CHILDREN - 1;
pub const NO_UID: u32 = UID_MASK;
/// Root children for token ids below this bound live in a dense array.
const DENSE_ROOT_MAX: usize = 1 << 24;

#[inline]
fn key(node: u32, token: u32) -> u64 {
    ((node as u64) << 32) | token as u64
}

/// A trie node as seen from its parent's edge: its id (`NONE`: no such edge) and `info`
/// (`HAS_CHILDREN` bit, unique id of the n-gram ending there or `NO_UID`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Entry {
    pub node: u32,
    pub info: u32,
}

impl Entry {
    pub const ABSENT: Entry = Entry { node: NONE, info: NO_UID };

    #[inline(always)]
    fn packed(self) -> u64 {
        ((self.info as u64) << 32) | self.node as u64
    }

    #[inline(always)]
    fn unpack(x: u64) -> Entry {
        Entry { node: x as u32, info: (x >> 32) as u32 }
    }

    #[inline]
    pub fn uid(self) -> u32 {
        self.info & UID_MASK
    }

    #[inline]
    pub fn has_children(self) -> bool {
        self.info & HAS_CHILDREN != 0
    }
}

#[derive(Debug, Clone)]
pub struct Index {
    root_dense: Vec<Entry>,
    sparse_root: bool,
    /// `(node << 32) | token` -> packed child [`Entry`]
    table: BucketMap,
    /// input n-gram -> unique id
    pub ngram_unique: Vec<u32>,
    pub n_unique: usize,
    pub max_n: usize,
    /// pairs as (unique id, unique id)
    pub pairs: Vec<(u32, u32)>,
    /// length of each unique n-gram
    pub unique_len: Vec<u32>,
    pub n_pairs: usize,
}

/// The growable trie used while building an [`Index`].
struct Builder {
    dense: Vec<u32>,
    edges: FxHashMap<u64, u32>,
    terminal: Vec<u32>,
    has_children: Vec<bool>,
}

impl Builder {
    fn child_or_insert(&mut self, node: u32, t: u32) -> u32 {
        let dense = node == 0 && (t as usize) < self.dense.len();
        let existing =
            if dense { self.dense[t as usize] } else { self.edges.get(&key(node, t)).copied().unwrap_or(NONE) };
        if existing != NONE {
            return existing;
        }
        let new = self.terminal.len() as u32;
        self.terminal.push(NO_UID);
        self.has_children.push(false);
        self.has_children[node as usize] = true;
        if dense {
            self.dense[t as usize] = new;
        } else {
            self.edges.insert(key(node, t), new);
        }
        new
    }

    fn entry(&self, node: u32) -> Entry {
        if node == NONE {
            return Entry::ABSENT;
        }
        let flag = if self.has_children[node as usize] { HAS_CHILDREN } else { 0 };
        Entry { node, info: self.terminal[node as usize] | flag }
    }
}

impl Index {
    /// Build from `ngrams` (flat tokens with `starts`, n-gram `k` is
    /// `tokens[starts[k]..starts[k+1]]`) and `pairs` of n-gram indices.
    pub fn build(tokens: &[u32], starts: &[u64], pairs: &[(u64, u64)]) -> Result<Index> {
        if starts.is_empty() || starts[0] != 0 || *starts.last().unwrap_or(&0) != tokens.len() as u64 {
            return Err(Error::Invalid(format!(
                "query offsets: expected {} values from 0 to {}, got {} values",
                "n+1",
                tokens.len(),
                starts.len()
            )));
        }
        let n_ngrams = starts.len() - 1;
        if n_ngrams >= NO_UID as usize || tokens.len() >= NO_UID as usize {
            return Err(Error::Invalid("too many query n-grams for one pass (limit 2^31 - 1)".into()));
        }
        let max_tok = tokens.iter().copied().max().unwrap_or(0) as usize;
        let dense_len = if tokens.is_empty() { 0 } else { (max_tok + 1).min(DENSE_ROOT_MAX) };
        let mut b = Builder {
            dense: try_filled("the query trie", dense_len, NONE)?,
            edges: FxHashMap::default(),
            terminal: vec![NO_UID],
            has_children: vec![false],
        };
        // Every query token adds at most one node and one edge: reserve for all of them up
        // front, fallibly, so that building the trie never grows (or aborts) midway.
        let nodes = tokens.len() + 1;
        let room = |what: &str, item: usize| Error::memory(what, nodes as u128 * item as u128);
        b.edges.try_reserve(tokens.len()).map_err(|_| room("the query trie's edges", 16))?;
        b.terminal.try_reserve_exact(nodes).map_err(|_| room("the query trie", 4))?;
        b.has_children.try_reserve_exact(nodes).map_err(|_| room("the query trie", 1))?;
        let mut ngram_unique = try_with_capacity("query ids", n_ngrams)?;
        let mut n_unique = 0usize;
        let mut max_n = 0;
        for k in 0..n_ngrams {
            let (a, z) = (starts[k] as usize, starts[k + 1] as usize);
            if z <= a {
                return Err(Error::Invalid(format!(
                    "query {k}: an n-gram needs at least one token, got {}",
                    if z == a { "none".to_string() } else { "decreasing offsets".to_string() }
                )));
            }
            if z > tokens.len() {
                return Err(Error::Invalid(format!(
                    "query {k}: offset {z} is past the end of the {} query tokens",
                    tokens.len()
                )));
            }
            max_n = max_n.max(z - a);
            let mut node = 0u32;
            for &t in &tokens[a..z] {
                node = b.child_or_insert(node, t);
            }
            let term = &mut b.terminal[node as usize];
            if *term == NO_UID {
                *term = n_unique as u32;
                n_unique += 1;
            }
            ngram_unique.push(*term);
        }
        let root_dense = b.dense.iter().map(|&c| b.entry(c)).collect();
        let edges: Vec<(u64, u64)> = b.edges.iter().map(|(&k, &c)| (k, b.entry(c).packed())).collect();
        let table = BucketMap::build(&edges, Entry::ABSENT.packed())?;
        let mut unique_len = try_filled("query lengths", n_unique, 0)?;
        for k in 0..n_ngrams {
            unique_len[ngram_unique[k] as usize] = (starts[k + 1] - starts[k]) as u32;
        }
        let mut upairs = Vec::with_capacity(pairs.len());
        for (p, &(x, y)) in pairs.iter().enumerate() {
            if x as usize >= n_ngrams || y as usize >= n_ngrams {
                return Err(Error::Invalid(format!(
                    "pair {p}: n-gram index ({x}, {y}) out of range for {n_ngrams} n-grams"
                )));
            }
            upairs.push((ngram_unique[x as usize], ngram_unique[y as usize]));
        }
        Ok(Index {
            root_dense,
            sparse_root: max_tok >= DENSE_ROOT_MAX,
            table,
            ngram_unique,
            n_unique,
            max_n,
            pairs: upairs,
            unique_len,
            n_pairs: pairs.len(),
        })
    }

    /// The root's child for token `t`.
    #[inline]
    pub fn root_child(&self, t: u32) -> Entry {
        match self.root_dense.get(t as usize) {
            Some(&e) => e,
            None if self.sparse_root => Entry::unpack(self.table.get(key(0, t))),
            None => Entry::ABSENT,
        }
    }

    /// The child of `node` (not the root) for token `t`.
    #[inline]
    pub fn child(&self, node: u32, t: u32) -> Entry {
        Entry::unpack(self.table.get(key(node, t)))
    }

    /// Start loading the slot [`Index::child`] will read for `(node, t)`.
    #[inline]
    pub fn prefetch_child(&self, node: u32, t: u32) {
        self.table.prefetch(key(node, t))
    }

    pub fn has_pairs(&self) -> bool {
        self.n_pairs > 0
    }
}

/// Pairs in adjacency lists: each pair is listed under one of its two n-grams, the
/// "anchor"; a document credits the pair when the anchor is present and the other n-gram
/// is present too. Listing under the rarer n-gram keeps the lists walked per document
/// short, so the accumulator re-lists pairs by the document frequencies it has seen, and
/// lays the lists of frequent anchors out first, next to each other, where they stay cached.
#[derive(Debug, Clone, Default)]
pub struct PairLists {
    /// pairs anchored at unique id `u` sit at `range[u].0..range[u].1`
    pub range: Vec<(u32, u32)>,
    /// the pair's other n-gram
    pub other: Vec<u32>,
    /// the pair's index in the input
    pub id: Vec<u32>,
}

impl PairLists {
    /// List each pair under the n-gram with the smaller `rank` (ties: the first one), and
    /// lay the lists out by increasing `place` of their anchor (ties: by unique id).
    pub fn build(
        n_unique: usize,
        pairs: &[(u32, u32)],
        rank: impl Fn(u32) -> u64,
        place: impl Fn(u32) -> u64,
    ) -> Result<PairLists> {
        let anchor = |&(a, b): &(u32, u32)| if rank(b) < rank(a) { (b, a) } else { (a, b) };
        let mut len = try_filled("pair lists", n_unique, 0u32)?;
        for pr in pairs {
            len[anchor(pr).0 as usize] += 1;
        }
        let mut order: Vec<u32> = (0..n_unique as u32).filter(|&u| len[u as usize] > 0).collect();
        order.sort_by_key(|&u| (place(u), u));
        let mut range = try_filled("pair lists", n_unique, (0u32, 0u32))?;
        let mut at = 0u32;
        for &u in &order {
            range[u as usize] = (at, at);
            at += len[u as usize];
        }
        let mut other = try_filled("pair lists", pairs.len(), 0u32)?;
        let mut id = try_filled("pair lists", pairs.len(), 0u32)?;
        for (p, pr) in pairs.iter().enumerate() {
            let (a, b) = anchor(pr);
            let end = &mut range[a as usize].1;
            other[*end as usize] = b;
            id[*end as usize] = p as u32;
            *end += 1;
        }
        Ok(PairLists { range, other, id })
    }
}
