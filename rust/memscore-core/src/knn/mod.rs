//! Exact k-nearest-neighbour search by brute force, as blocked matrix products with a
//! fused per-query top-k.
//!
//! For a tile of queries and a block of keys the kernel computes, with one GEMM call
//! (the `gemm` crate, which picks AVX-512 / AVX2+FMA / SSE micro-kernels at run time),
//!
//! * `l2`:     `s = ‖x‖² − 2 q·x`  (the block is pre-filled with the key norms)
//! * `ip`:     `s = −q·x`
//! * `cosine`: `s = −q̂·x̂`         (keys normalised once when the index is built)
//!
//! into a small per-task buffer (tile × block: at most 512 × 2048 floats, 4 MiB) and offers each row to a
//! bounded max-heap of the k smallest `s` before the next block overwrites it. The
//! `Q × N` distance matrix never exists. After the scan the reported distance is
//! `max(s + ‖q‖², 0)` for `l2` (squared Euclidean; the clamp removes round-off below
//! zero, as faiss does), `−s` for `ip` (inner product, largest first) and `1 + s` for
//! `cosine` (cosine distance `1 − cos`, zero vectors have similarity 0).
//!
//! Work is split into (query tile × key range) tasks run on the caller's rayon pool:
//! many queries → one task per query tile over all keys; few queries (Q = 1, say) →
//! the keys are cut into ranges whose top-k lists are merged. Each GEMM runs
//! single-threaded inside its task. Ties break toward the lower key index.

mod topk;

/// Query tiles per thread to aim for (load balance when other processes share the cores).
const TILES_PER_THREAD: usize = 4;

use gemm::{gemm, Parallelism};
use half::f16;
use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;

use crate::error::{ensure, Error, Result};
use crate::pool::Cancel;
use topk::Heap;

/// Distance used by the search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Squared Euclidean distance, smallest first.
    L2,
    /// Inner product, largest first.
    InnerProduct,
    /// Cosine distance `1 − cos(q, x)`, smallest first.
    Cosine,
}

impl Metric {
    /// Parse `"l2"`, `"ip"` or `"cosine"`.
    pub fn parse(name: &str) -> Result<Metric> {
        match name {
            "l2" => Ok(Metric::L2),
            "ip" => Ok(Metric::InnerProduct),
            "cosine" => Ok(Metric::Cosine),
            other => Err(Error::Invalid(format!("metric: expected 'l2', 'ip' or 'cosine', got {other:?}"))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Metric::L2 => "l2",
            Metric::InnerProduct => "ip",
            Metric::Cosine => "cosine",
        }
    }
}

/// Key storage: float32, or float16 converted to float32 one block at a time.
#[derive(Debug, Clone)]
enum Keys {
    F32(Vec<f32>),
    F16(Vec<f16>),
}

/// Tuning knobs of the blocked search (defaults suit AVX2 / AVX-512 machines).
#[derive(Debug, Clone, Copy)]
pub struct Blocking {
    /// Most queries per tile (rows of one GEMM).
    pub query_tile: usize,
    /// Keys per block (columns of one GEMM).
    pub key_block: usize,
}

impl Default for Blocking {
    fn default() -> Self {
        Blocking { query_tile: 512, key_block: 2048 }
    }
}

/// A prepared set of keys: row-major layout, squared norms (l2) or unit rows (cosine).
#[derive(Debug, Clone)]
pub struct KnnIndex {
    n: usize,
    d: usize,
    metric: Metric,
    keys: Keys,
    /// Squared norms for `l2`; empty otherwise.
    norms: Vec<f32>,
    blocking: Blocking,
}

/// Result of a search: `(Q, k)` row-major distances and key indices, nearest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbors {
    pub distances: Vec<f32>,
    pub indices: Vec<i64>,
}

/// Per-task result: `rows` sorted `(score, index)` lists of width `kk` (row-major) and
/// how many slots of each row are filled.
type Partial = (Vec<f32>, Vec<i64>, Vec<usize>);

fn sqnorm(row: &[f32]) -> f32 {
    // Accumulate in f64 so that the norm does not add round-off of its own.
    row.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() as f32
}

fn normalize(row: &mut [f32]) {
    let n = sqnorm(row).sqrt();
    if n > 0.0 {
        let inv = 1.0 / n;
        row.iter_mut().for_each(|v| *v *= inv);
    }
}

fn check_shape(name: &str, len: usize, rows: usize, d: usize) -> Result<()> {
    ensure!(rows > 0, "{name}: need at least one row, got 0");
    ensure!(d > 0, "{name}: need at least one dimension, got 0");
    crate::error::check_len(name, len, rows, d)
}

impl KnnIndex {
    /// Index `n` float32 keys of dimension `d` (row-major `keys`, `n * d` values).
    pub fn new(keys: &[f32], n: usize, d: usize, metric: Metric) -> Result<KnnIndex> {
        check_shape("keys", keys.len(), n, d)?;
        let mut data = crate::error::try_with_capacity("the kNN keys", keys.len())?;
        data.extend_from_slice(keys);
        let mut norms = Vec::new();
        match metric {
            Metric::L2 => norms = data.par_chunks(d).map(sqnorm).collect(),
            Metric::Cosine => data.par_chunks_mut(d).for_each(normalize),
            Metric::InnerProduct => {}
        }
        Ok(KnnIndex { n, d, metric, keys: Keys::F32(data), norms, blocking: Blocking::default() })
    }

    /// Index float16 keys given as their raw bits (numpy's `float16.view(uint16)`).
    ///
    /// Keys stay float16 in memory (half the size) and are widened to float32 one block
    /// at a time during the search; norms are those of the float16 values.
    pub fn new_f16(bits: &[u16], n: usize, d: usize, metric: Metric) -> Result<KnnIndex> {
        check_shape("keys", bits.len(), n, d)?;
        let mut data: Vec<f16> = crate::error::try_with_capacity("the kNN keys", bits.len())?;
        data.extend(bits.iter().map(|&b| f16::from_bits(b)));
        ensure!(data.iter().all(|v| v.is_finite()), "keys: contains NaN or infinite values");
        let mut norms = Vec::new();
        match metric {
            Metric::L2 => {
                norms = data
                    .par_chunks(d)
                    .map(|r| r.iter().map(|v| (v.to_f64()) * (v.to_f64())).sum::<f64>() as f32)
                    .collect()
            }
            Metric::Cosine => data.par_chunks_mut(d).for_each(|r| {
                let mut w = vec![0.0f32; r.len()];
                r.convert_to_f32_slice(&mut w);
                normalize(&mut w);
                r.convert_from_f32_slice(&w);
            }),
            Metric::InnerProduct => {}
        }
        Ok(KnnIndex { n, d, metric, keys: Keys::F16(data), norms, blocking: Blocking::default() })
    }

    pub fn ntotal(&self) -> usize {
        self.n
    }

    pub fn dim(&self) -> usize {
        self.d
    }

    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// Whether keys are stored as float16.
    pub fn is_f16(&self) -> bool {
        matches!(self.keys, Keys::F16(_))
    }

    /// Override the tile sizes (benchmarks and tests; results do not depend on them).
    pub fn set_blocking(&mut self, blocking: Blocking) -> Result<()> {
        ensure!(blocking.query_tile > 0 && blocking.key_block > 0, "blocking: tile sizes must be >= 1");
        self.blocking = blocking;
        Ok(())
    }

    /// The `k` nearest keys of each of the `q` queries (row-major, `q * d` values).
    pub fn search(&self, queries: &[f32], q: usize, k: usize) -> Result<Neighbors> {
        self.search_with(queries, q, k, &Cancel::new())
    }

    /// [`KnnIndex::search`] that stops with `Error::Cancelled` once `cancel` is set.
    pub fn search_with(&self, queries: &[f32], q: usize, k: usize, cancel: &Cancel) -> Result<Neighbors> {
        check_shape("queries", queries.len(), q, self.d)?;
        ensure!(k >= 1, "k: expected k >= 1, got {k}");
        ensure!(k <= self.n, "k: expected k <= number of keys ({}), got {k}", self.n);
        let d = self.d;

        let mut qdata: Vec<f32>;
        let queries = if self.metric == Metric::Cosine {
            qdata = crate::error::try_with_capacity("normalized queries", queries.len())?;
            qdata.extend_from_slice(queries);
            qdata.par_chunks_mut(d).for_each(normalize);
            &qdata[..]
        } else {
            queries
        };

        // Partition into (query tile × key range) tasks.
        let threads = rayon::current_num_threads().max(1);
        let kb = self.blocking.key_block.min(self.n);
        // At least four tiles per thread when there are enough queries, so that a thread
        // slowed by other processes does not hold up the whole search.
        let mt = self.blocking.query_tile.min(q.div_ceil(TILES_PER_THREAD * threads).max(64)).min(q).max(1);
        let n_tiles = q.div_ceil(mt);
        let n_blocks = self.n.div_ceil(kb);
        let want_tasks = 2 * threads;
        let splits = if n_tiles >= want_tasks { 1 } else { want_tasks.div_ceil(n_tiles).min(n_blocks) };
        let blocks_per_split = n_blocks.div_ceil(splits);
        let splits = n_blocks.div_ceil(blocks_per_split);

        let tasks: Vec<(usize, usize)> = (0..n_tiles).flat_map(|t| (0..splits).map(move |s| (t, s))).collect();
        let parts: Vec<Result<Partial>> = tasks
            .par_iter()
            .map(|&(t, s)| {
                cancel.check()?;
                let q0 = t * mt;
                let q1 = (q0 + mt).min(q);
                let k0 = s * blocks_per_split * kb;
                let k1 = ((s + 1) * blocks_per_split * kb).min(self.n);
                self.scan_task(&queries[q0 * d..q1 * d], q1 - q0, k0, k1, k.min(k1 - k0), kb)
            })
            .collect();

        // Merge the key ranges of each tile and finish the distances.
        cancel.check()?;
        let size = crate::error::checked_size("search output", q, k)?;
        let mut distances = crate::error::try_filled("kNN distances", size, 0.0f32)?;
        let mut indices = crate::error::try_filled("kNN indices", size, 0i64)?;
        let mut parts = parts.into_iter();
        for t in 0..n_tiles {
            let q0 = t * mt;
            let rows = (q0 + mt).min(q) - q0;
            let mut pieces = Vec::with_capacity(splits);
            for _ in 0..splits {
                pieces.push(parts.next().ok_or_else(|| Error::Invalid("internal: missing task".into()))??);
            }
            for r in 0..rows {
                let out = (q0 + r) * k;
                let (ds, is) = (&mut distances[out..out + k], &mut indices[out..out + k]);
                if splits == 1 {
                    let (s, i, lens) = &pieces[0];
                    let kk = s.len() / rows;
                    ensure!(
                        lens[r] == k,
                        "distances overflowed float32 for query {}: inputs too large in magnitude",
                        q0 + r
                    );
                    ds.copy_from_slice(&s[r * kk..r * kk + k]);
                    is.copy_from_slice(&i[r * kk..r * kk + k]);
                } else {
                    let mut all: Vec<(f32, i64)> = Vec::new();
                    for (s, i, lens) in &pieces {
                        let kk = s.len() / rows;
                        all.extend((0..lens[r]).map(|j| (s[r * kk + j], i[r * kk + j])));
                    }
                    ensure!(
                        all.len() >= k,
                        "distances overflowed float32 for query {}: inputs too large in magnitude",
                        q0 + r
                    );
                    all.sort_unstable_by(|a, b| {
                        a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal).then(a.1.cmp(&b.1))
                    });
                    for (j, (s, i)) in all.into_iter().take(k).enumerate() {
                        ds[j] = s;
                        is[j] = i;
                    }
                }
                let qrow = &queries[(q0 + r) * d..(q0 + r + 1) * d];
                match self.metric {
                    Metric::L2 => {
                        let qn = sqnorm(qrow);
                        ds.iter_mut().for_each(|v| *v = (*v + qn).max(0.0));
                    }
                    Metric::InnerProduct => ds.iter_mut().for_each(|v| *v = -*v),
                    Metric::Cosine => ds.iter_mut().for_each(|v| *v += 1.0),
                }
            }
        }
        Ok(Neighbors { distances, indices })
    }

    /// Top-`kk` of `rows` queries over keys `k0..k1`: sorted per-row `(score, index)`
    /// slots of width `kk` plus the number filled per row.
    fn scan_task(&self, queries: &[f32], rows: usize, k0: usize, k1: usize, kk: usize, kb: usize) -> Result<Partial> {
        let d = self.d;
        let size = crate::error::checked_size("search tile", rows, kk)?;
        let mut scores = crate::error::try_filled("kNN tile scores", size, 0.0f32)?;
        let mut idx = crate::error::try_filled("kNN tile indices", size, 0i64)?;
        let mut lens = vec![0usize; rows];
        let mut buf = vec![0.0f32; rows * kb];
        let mut widened = match self.keys {
            Keys::F16(_) => vec![0.0f32; kb * d],
            Keys::F32(_) => Vec::new(),
        };
        let (beta, prefill) = match self.metric {
            Metric::L2 => (-2.0f32, true),
            _ => (-1.0f32, false),
        };
        let mut b0 = k0;
        while b0 < k1 {
            let b1 = (b0 + kb).min(k1);
            let nb = b1 - b0;
            let block: &[f32] = match &self.keys {
                Keys::F32(v) => &v[b0 * d..b1 * d],
                Keys::F16(v) => {
                    v[b0 * d..b1 * d].convert_to_f32_slice(&mut widened[..nb * d]);
                    &widened[..nb * d]
                }
            };
            let out = &mut buf[..rows * nb];
            if prefill {
                let norms = &self.norms[b0..b1];
                out.chunks_exact_mut(nb).for_each(|row| row.copy_from_slice(norms));
            }
            // SAFETY: dst is rows×nb row-major (rs = nb, cs = 1) inside `out`; lhs is the
            // rows×d query tile (rs = d, cs = 1); rhs is the d×nb transpose of the key
            // block (element (i, j) = block[j*d + i]: rs = 1, cs = d). All extents were
            // checked above, and the three buffers do not overlap.
            unsafe {
                gemm(
                    rows,
                    nb,
                    d,
                    out.as_mut_ptr(),
                    1,
                    nb as isize,
                    prefill,
                    queries.as_ptr(),
                    1,
                    d as isize,
                    block.as_ptr(),
                    d as isize,
                    1,
                    1.0f32,
                    beta,
                    false,
                    false,
                    false,
                    Parallelism::None,
                );
            }
            for r in 0..rows {
                let mut h = Heap::new(&mut scores[r * kk..(r + 1) * kk], &mut idx[r * kk..(r + 1) * kk], lens[r]);
                h.scan(&out[r * nb..(r + 1) * nb], b0 as i64);
                lens[r] = h.len();
            }
            b0 = b1;
        }
        for r in 0..rows {
            let h = Heap::new(&mut scores[r * kk..(r + 1) * kk], &mut idx[r * kk..(r + 1) * kk], lens[r]);
            lens[r] = h.into_sorted();
        }
        Ok((scores, idx, lens))
    }
}

/// One-shot search: index `keys` (n × d) and search `queries` (q × d) for `k` neighbours.
pub fn knn(queries: &[f32], q: usize, keys: &[f32], n: usize, d: usize, k: usize, metric: Metric) -> Result<Neighbors> {
    KnnIndex::new(keys, n, d, metric)?.search(queries, q, k)
}

#[cfg(test)]
mod tests;
