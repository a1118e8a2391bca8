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
//! `Q × N` distance matrix never exists.
//!
//! Exactness. float32 GEMM scores carry round-off that grows with the norms, not with
//! the distances: with values ≈ 100 that differ by ≈ 0.01, `‖x‖² − 2q·x + ‖q‖²` cancels
//! to noise. So
//!
//! * for `l2` the keys' mean `μ` (computed in f64) is subtracted from keys and queries
//!   when it is large against their spread (translation does not change L2 neighbours);
//!   the centred key block is formed on the fly, so the stored keys stay the caller's;
//! * each query keeps more candidates than `k` (`k + max(k / 4, 8)`); those that can be in
//!   the top k are re-ranked with distances recomputed in f64 from the original vectors; the returned distances are these true
//!   distances (`Σ (q − x)²`, `q·x`, `1 − q̂·x̂` clamped to `[0, 2]`);
//! * a bound `E` on the float32 error of a score (from the norms and `d`) certifies the
//!   result: when the k-th exact distance is not below the worst kept approximate score
//!   minus `E`, a key outside the candidates might be nearer, and that query is scanned
//!   again over all keys in f64. Results therefore equal a float64 brute force on the
//!   float32 inputs (ties toward the lower index);
//! * inputs whose squared norms or products would overflow float32 are refused.
//!
//! Work is split into (query tile × key range) tasks run on the caller's rayon pool:
//! many queries → one task per query tile over all keys; few queries (Q = 1, say) →
//! the keys are cut into ranges whose top-k lists are merged. Each GEMM runs
//! single-threaded inside its task. Ties break toward the lower key index.

pub mod shapley;
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
    /// Squared norms of the (centred) keys for `l2`; empty otherwise.
    norms: Vec<f32>,
    /// `l2`: the keys' mean, subtracted from keys and queries before the GEMM (None when
    /// the mean is small against the spread and centring would only cost time).
    center: Option<Vec<f64>>,
    /// Largest norm of a key as the GEMM sees it (centred for l2, unit for cosine).
    radius: f64,
    blocking: Blocking,
}

/// Unit round-off of float32.
const U32: f64 = 1.0 / (1u64 << 24) as f64;
/// Largest squared norm / product the float32 scores may reach.
const F32_LIMIT: f64 = f32::MAX as f64 / 8.0;

/// `x < F32_LIMIT`, false for NaN (a NaN bound is refused like an overflow).
fn below_f32_limit(x: f64) -> bool {
    matches!(x.partial_cmp(&F32_LIMIT), Some(std::cmp::Ordering::Less))
}

/// Exact (f64) score of query `q` and key `x` in the search's order (smaller is nearer):
/// `Σ (q − x)²` for l2, `−q·x` for ip and cosine (unit rows).
#[inline]
fn exact_score(metric: Metric, q: &[f32], x: &[f32]) -> f64 {
    // Eight independent f64 sums over lanes: the loop vectorizes and the additions
    // pipeline instead of waiting on each other.
    const L: usize = 8;
    let mut acc = [0.0f64; L];
    let (qc, xc) = (q.chunks_exact(L), x.chunks_exact(L));
    let (qr, xr) = (qc.remainder(), xc.remainder());
    let mut tail = 0.0f64;
    match metric {
        Metric::L2 => {
            for (a, b) in qc.zip(xc) {
                for j in 0..L {
                    let t = a[j] as f64 - b[j] as f64;
                    acc[j] += t * t;
                }
            }
            for (&a, &b) in qr.iter().zip(xr) {
                let t = a as f64 - b as f64;
                tail += t * t;
            }
        }
        _ => {
            for (a, b) in qc.zip(xc) {
                for j in 0..L {
                    acc[j] += a[j] as f64 * b[j] as f64;
                }
            }
            for (&a, &b) in qr.iter().zip(xr) {
                tail += a as f64 * b as f64;
            }
        }
    }
    let total = acc.iter().sum::<f64>() + tail;
    if metric == Metric::L2 {
        total
    } else {
        -total
    }
}

fn by_score_then_index(a: &(f64, i64), b: &(f64, i64)) -> std::cmp::Ordering {
    a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal).then(a.1.cmp(&b.1))
}

/// Mean of the rows (f64), the mean squared distance to it and whether centring pays off.
fn mean_and_spread(rows: &[f32], d: usize) -> (Vec<f64>, bool) {
    let n = rows.len() / d;
    let sum = rows
        .par_chunks(d)
        .fold(
            || vec![0.0f64; d],
            |mut acc, r| {
                acc.iter_mut().zip(r).for_each(|(a, &v)| *a += v as f64);
                acc
            },
        )
        .reduce(
            || vec![0.0f64; d],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            },
        );
    let mu: Vec<f64> = sum.iter().map(|s| s / n as f64).collect();
    let spread: f64 =
        rows.par_chunks(d).map(|r| r.iter().zip(&mu).map(|(&v, m)| (v as f64 - m).powi(2)).sum::<f64>()).sum::<f64>()
            / n as f64;
    let mu2: f64 = mu.iter().map(|m| m * m).sum();
    // Centring costs one pass over each key block per query tile; it is worth it when
    // the offset dominates the spread (the cancellation grows with ‖μ‖² / spread).
    (mu, mu2 > spread / 64.0)
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

fn sqnorm64(row: &[f32]) -> f64 {
    // Accumulate in f64 so that the norm does not add round-off of its own.
    row.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>()
}

fn normalize(row: &mut [f32]) {
    // In f64 throughout: the squared norm of large rows does not fit float32.
    let n = sqnorm64(row).sqrt();
    if n > 0.0 {
        row.iter_mut().for_each(|v| *v = (*v as f64 / n) as f32);
    }
}

/// Refuse keys whose squared norms would overflow the float32 scores.
fn check_radius(radius: f64) -> Result<()> {
    ensure!(
        below_f32_limit(radius * radius),
        "keys: squared norms overflowed float32 (largest {:.3e}, limit {:.3e}): scale the data down",
        radius * radius,
        F32_LIMIT
    );
    Ok(())
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
        let (norms, center) = Self::prepare(&mut data, d, metric);
        let radius = Self::radius(&data, d, metric, &norms);
        check_radius(radius)?;
        let norms = norms.into_iter().map(|v| v as f32).collect();
        Ok(KnnIndex { n, d, metric, keys: Keys::F32(data), norms, center, radius, blocking: Blocking::default() })
    }

    /// Squared norms (of the centred rows, l2) and the centre; unit rows for cosine.
    fn prepare(data: &mut [f32], d: usize, metric: Metric) -> (Vec<f64>, Option<Vec<f64>>) {
        match metric {
            Metric::L2 => {
                let (mu, centre) = mean_and_spread(data, d);
                if centre {
                    let norms = data
                        .par_chunks(d)
                        .map(|r| r.iter().zip(&mu).map(|(&v, m)| ((v as f64 - m) as f32 as f64).powi(2)).sum())
                        .collect();
                    (norms, Some(mu))
                } else {
                    (data.par_chunks(d).map(sqnorm64).collect(), None)
                }
            }
            Metric::Cosine => {
                data.par_chunks_mut(d).for_each(normalize);
                (Vec::new(), None)
            }
            Metric::InnerProduct => (Vec::new(), None),
        }
    }

    /// Largest norm of a key as the GEMM sees it.
    fn radius(data: &[f32], d: usize, metric: Metric, norms: &[f64]) -> f64 {
        let max2 = match metric {
            Metric::L2 => norms.iter().cloned().fold(0.0, f64::max),
            _ => data.par_chunks(d).map(sqnorm64).reduce(|| 0.0, f64::max),
        };
        max2.sqrt()
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
        if metric == Metric::Cosine {
            data.par_chunks_mut(d).for_each(|r| {
                let mut w = vec![0.0f32; r.len()];
                r.convert_to_f32_slice(&mut w);
                normalize(&mut w);
                r.convert_from_f32_slice(&w);
            });
        }
        // Norms, centre and radius from the widened values (exactly the stored ones).
        let mut wide = vec![0.0f32; data.len()];
        data.convert_to_f32_slice(&mut wide);
        let (norms, center) =
            Self::prepare(&mut wide, d, if metric == Metric::Cosine { Metric::InnerProduct } else { metric });
        let radius = Self::radius(&wide, d, metric, &norms);
        drop(wide);
        check_radius(radius)?;
        let norms = norms.into_iter().map(|v| v as f32).collect();
        Ok(KnnIndex { n, d, metric, keys: Keys::F16(data), norms, center, radius, blocking: Blocking::default() })
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

    /// Key row `j` as float32 (widened into `buf` for float16 keys).
    fn key_row<'a>(&'a self, j: usize, buf: &'a mut [f32]) -> &'a [f32] {
        let d = self.d;
        match &self.keys {
            Keys::F32(v) => &v[j * d..(j + 1) * d],
            Keys::F16(v) => {
                v[j * d..(j + 1) * d].convert_to_f32_slice(buf);
                buf
            }
        }
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

        // Queries as the GEMM sees them: centred (l2 with a centre), unit (cosine), or
        // as given; `qnorm` is their norm (f64), which bounds the float32 error.
        let mut qdata: Vec<f32> = Vec::new();
        let mut qnorm: Vec<f64> = vec![0.0; q];
        match (self.metric, &self.center) {
            (Metric::L2, Some(mu)) => {
                qdata = crate::error::try_filled("centred queries", queries.len(), 0.0f32)?;
                qdata.par_chunks_mut(d).zip(queries.par_chunks(d)).zip(qnorm.par_iter_mut()).for_each(
                    |((out, row), qn)| {
                        let mut acc = 0.0f64;
                        for ((o, &v), m) in out.iter_mut().zip(row).zip(mu) {
                            let c = v as f64 - m;
                            acc += c * c;
                            *o = c as f32;
                        }
                        *qn = acc.sqrt();
                    },
                );
            }
            (Metric::Cosine, _) => {
                qdata = crate::error::try_with_capacity("normalized queries", queries.len())?;
                qdata.extend_from_slice(queries);
                qdata.par_chunks_mut(d).for_each(normalize);
                qnorm.par_iter_mut().zip(qdata.par_chunks(d)).for_each(|(qn, r)| *qn = sqnorm64(r).sqrt());
            }
            _ => qnorm.par_iter_mut().zip(queries.par_chunks(d)).for_each(|(qn, r)| *qn = sqnorm64(r).sqrt()),
        }
        let gq: &[f32] = if qdata.is_empty() { queries } else { &qdata };
        for (j, &qn) in qnorm.iter().enumerate() {
            let bound = match self.metric {
                Metric::L2 => (qn + self.radius).powi(2),
                _ => qn * self.radius,
            };
            ensure!(
                below_f32_limit(bound),
                "query {j}: distances overflowed float32 (norms {qn:.3e} and {:.3e}): scale the data down",
                self.radius
            );
        }

        // Candidates per query: more than k, so that the f64 re-ranking below can be
        // certified without a second scan on all but adversarial data.
        let kk = (k + (k / 4).max(8)).min(self.n);
        // The outputs and the candidate lists are the large allocations of a search: take
        // the outputs, and check that room for the candidates (and the tiles' partial lists)
        // can be had, before scanning, so that too large a request is a MemoryError up front.
        let size = crate::error::checked_size("search output", q, k)?;
        let mut distances = crate::error::try_filled("kNN distances", size, 0.0f32)?;
        let mut indices = crate::error::try_filled("kNN indices", size, 0i64)?;
        let n_cands = crate::error::checked_size("kNN candidates", q, kk)?;
        crate::error::try_with_capacity::<(f32, i64)>("kNN candidates", n_cands.saturating_mul(2))?;

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
                self.scan_task(&gq[q0 * d..q1 * d], q1 - q0, k0, k1, kk.min(k1 - k0), kb)
            })
            .collect();

        cancel.check()?;
        // Merge the key ranges of each tile: the kk best approximate scores per query.
        let mut cands: Vec<Vec<(f32, i64)>> = crate::error::try_with_capacity("kNN candidates", q)?;
        let mut parts = parts.into_iter();
        for t in 0..n_tiles {
            let q0 = t * mt;
            let rows = (q0 + mt).min(q) - q0;
            let mut pieces = Vec::with_capacity(splits);
            for _ in 0..splits {
                pieces.push(parts.next().ok_or_else(|| Error::Invalid("internal: missing task".into()))??);
            }
            for r in 0..rows {
                let mut all: Vec<(f32, i64)> = Vec::new();
                for (s, i, lens) in &pieces {
                    let w = s.len() / rows;
                    all.extend((0..lens[r]).map(|j| (s[r * w + j], i[r * w + j])));
                }
                if splits > 1 {
                    all.sort_unstable_by(|a, b| {
                        a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal).then(a.1.cmp(&b.1))
                    });
                    all.truncate(kk);
                }
                cands.push(all);
            }
        }

        // Re-rank the candidates in f64, certify, rescan where not certified.
        distances.par_chunks_mut(k).zip(indices.par_chunks_mut(k)).enumerate().for_each(|(j, (ds, is))| {
            let qrow = match self.metric {
                Metric::Cosine => &gq[j * d..(j + 1) * d],
                _ => &queries[j * d..(j + 1) * d],
            };
            let best = self.rerank(qrow, &cands[j], qnorm[j], kk, k);
            for (slot, (v, i)) in best.into_iter().enumerate() {
                ds[slot] = match self.metric {
                    Metric::L2 => v.max(0.0) as f32,
                    Metric::InnerProduct => (-v) as f32,
                    Metric::Cosine => (1.0 + v).clamp(0.0, 2.0) as f32,
                };
                is[slot] = i;
            }
        });
        Ok(Neighbors { distances, indices })
    }

    /// The `k` best keys of query `qrow` (original values; unit for cosine) in exact f64
    /// scores, from its approximate candidates `cands` (sorted, at most `kk`).
    fn rerank(&self, qrow: &[f32], cands: &[(f32, i64)], qn: f64, kk: usize, k: usize) -> Vec<(f64, i64)> {
        let d = self.d;
        let mut buf = vec![0.0f32; d];
        // Approximate score + `offset` estimates the exact one within `err`.
        let (offset, bound) = match self.metric {
            Metric::L2 => (qn * qn, (qn + self.radius).powi(2)),
            _ => (0.0, qn * self.radius),
        };
        let err = 2.0 * (d as f64 + 8.0) * U32 * bound;
        let all_keys = cands.len() == self.n;
        // Fewer candidates than asked: some scores were not finite; rescan.
        if cands.len() >= k && (all_keys || cands.len() >= kk) {
            // The k-th exact score is at most the k-th approximate one + err, so a candidate
            // whose approximate score is more than 2·err above that cannot be in the top k.
            let limit = cands[k - 1].0 as f64 + offset + 2.0 * err;
            let mut exact: Vec<(f64, i64)> = cands
                .iter()
                .take_while(|c| c.0 as f64 + offset <= limit)
                .map(|&(_, i)| (exact_score(self.metric, qrow, self.key_row(i as usize, &mut buf)), i))
                .collect();
            exact.sort_unstable_by(by_score_then_index);
            // Every key outside the candidates has an approximate score >= the worst kept
            // one, so an exact score >= that minus err: certified when the k-th is below.
            if all_keys || exact[k - 1].0 < cands[kk - 1].0 as f64 + offset - err {
                exact.truncate(k);
                return exact;
            }
        }
        let mut exact: Vec<(f64, i64)> =
            (0..self.n).map(|i| (exact_score(self.metric, qrow, self.key_row(i, &mut buf)), i as i64)).collect();
        if k < exact.len() {
            exact.select_nth_unstable_by(k - 1, by_score_then_index);
        }
        exact.truncate(k);
        exact.sort_unstable_by(by_score_then_index);
        exact
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
        let mut widened = match (&self.keys, &self.center) {
            (Keys::F32(_), None) => Vec::new(),
            _ => vec![0.0f32; kb * d],
        };
        let (beta, prefill) = match self.metric {
            Metric::L2 => (-2.0f32, true),
            _ => (-1.0f32, false),
        };
        let mut b0 = k0;
        while b0 < k1 {
            let b1 = (b0 + kb).min(k1);
            let nb = b1 - b0;
            let block: &[f32] = match (&self.keys, &self.center) {
                (Keys::F32(v), None) => &v[b0 * d..b1 * d],
                (Keys::F32(v), Some(mu)) => {
                    for (out, row) in widened[..nb * d].chunks_exact_mut(d).zip(v[b0 * d..b1 * d].chunks_exact(d)) {
                        for ((o, &x), m) in out.iter_mut().zip(row).zip(mu) {
                            *o = (x as f64 - m) as f32;
                        }
                    }
                    &widened[..nb * d]
                }
                (Keys::F16(v), centre) => {
                    v[b0 * d..b1 * d].convert_to_f32_slice(&mut widened[..nb * d]);
                    if let Some(mu) = centre {
                        for row in widened[..nb * d].chunks_exact_mut(d) {
                            for (o, m) in row.iter_mut().zip(mu) {
                                *o = (*o as f64 - m) as f32;
                            }
                        }
                    }
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
