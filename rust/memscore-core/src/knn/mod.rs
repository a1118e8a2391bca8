//! Exact k-nearest-neighbour search by brute force, as blocked matrix products with a
//! fused per-query top-k.
//!
//! For a tile of queries and a block of keys the kernel computes, with one GEMM call
//! (the `gemm` crate's micro-kernels at the search's vector level: AVX-512, AVX2 + FMA or
//! scalar, see [`product`]),
//!
//! * `l2`:     `s = ‖x‖² − 2 q·x`  (the product `−2 q·x`, then the key norms added per row)
//! * `ip`:     `s = −q·x`
//! * `cosine`: `s = −q̂·x̂`         (keys normalised once when the index is built)
//!
//! into a small per-task buffer (one row per query, `key_block` scores long) and offers
//! each row to a bounded max-heap of the k smallest `s` before the next block overwrites
//! it: blocks of 16 scores are compared with the heap's threshold at once, so almost all
//! of them are rejected by one vector compare. The `Q × N` distance matrix never exists.
//!
//! Exactness. float32 GEMM scores carry round-off that grows with the norms, not with
//! the distances: with values ≈ 100 that differ by ≈ 0.01, `‖x‖² − 2q·x + ‖q‖²` cancels
//! to noise. So
//!
//! * for `l2` the keys' mean `μ` (computed in f64, rounded to float32) is subtracted from
//!   keys and queries when it is large against their spread (translation does not change
//!   L2 neighbours); the centred key block is formed on the fly, so the stored keys stay
//!   the caller's;
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
//!
//! Building an index reads the keys once (float64 row norms and column sums in one pass;
//! a second pass only when centring). [`knn`], the one-shot search, borrows the caller's
//! keys instead of copying them (cosine keys are normalised into a copy).

pub mod product;
pub mod shapley;
mod topk;

use std::borrow::Cow;

/// Query tiles per thread to aim for (load balance when other processes share the cores).
const TILES_PER_THREAD: usize = 4;

use half::f16;
use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;

use crate::cpu::{vector_level, vector_levels, VectorLevel};
use crate::error::{ensure, Error, Result};
use crate::pool::Cancel;
use topk::{Heap, Heaps};

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

/// Key storage: float32 (the index's own, or the caller's for a one-shot search), or
/// float16 converted to float32 one block at a time.
#[derive(Debug, Clone)]
enum Keys<'a> {
    F32(Cow<'a, [f32]>),
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
///
/// `KnnIndex<'static>` owns its keys ([`KnnIndex::new`]); [`KnnIndex::borrowed`] searches
/// the caller's float32 keys in place for as long as they are borrowed.
#[derive(Debug, Clone)]
pub struct KnnIndex<'a> {
    n: usize,
    d: usize,
    metric: Metric,
    keys: Keys<'a>,
    /// Squared norms of the (centred) keys for `l2`; empty otherwise.
    norms: Vec<f32>,
    /// `l2`: the keys' mean (rounded to float32), subtracted from keys and queries before
    /// the GEMM (None when the mean is small against the spread and centring would only
    /// cost time). Any translation keeps L2 neighbours; norms are those of the rows as
    /// centred in float32, which the GEMM sees.
    center: Option<Vec<f32>>,
    /// Largest norm of a key as the GEMM sees it (centred for l2, unit for cosine).
    radius: f64,
    blocking: Blocking,
    /// Instruction set of the GEMM and the vector loops.
    level: VectorLevel,
}

/// `$name(level, args…)` runs the `#[inline(always)]` function `$body` compiled for
/// `level`'s instruction set, so that its loops vectorize with that level's registers.
macro_rules! leveled {
    ($(#[$doc:meta])* fn $name:ident = $body:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?) => {
        $(#[$doc])*
        fn $name(level: VectorLevel, $($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f")]
            unsafe fn v4($($arg: $ty),*) $(-> $ret)? {
                $body($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2")]
            unsafe fn v3($($arg: $ty),*) $(-> $ret)? {
                $body($($arg),*)
            }
            match level {
                // SAFETY: `Avx512` / `Avx2` are only chosen on machines that have them
                // (`vector_level`, or `set_level`, which checks `vector_levels`).
                #[cfg(target_arch = "x86_64")]
                VectorLevel::Avx512 => unsafe { v4($($arg),*) },
                #[cfg(target_arch = "x86_64")]
                VectorLevel::Avx2 => unsafe { v3($($arg),*) },
                _ => $body($($arg),*),
            }
        }
    };
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
/// `Σ (q − x)²` for l2, `−q·x` for ip and cosine (unit rows). The same bits at every
/// vector level: lane `j` sums terms `j, j + 8, …` in order and the lanes are added in
/// order (Rust never fuses a multiply and an add on its own).
#[inline(always)]
fn exact_score_body(metric: Metric, q: &[f32], x: &[f32]) -> f64 {
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

leveled!(
    /// [`exact_score_body`] at a vector level.
    fn exact_score = exact_score_body(metric: Metric, q: &[f32], x: &[f32]) -> f64
);

fn by_score_then_index(a: &(f64, i64), b: &(f64, i64)) -> std::cmp::Ordering {
    a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal).then(a.1.cmp(&b.1))
}

/// A u64 whose unsigned order is the order of the finite float `x` (-0.0 and 0.0 equal).
fn order_key(x: f64) -> u64 {
    let b = (x + 0.0).to_bits();
    if b >> 63 == 1 {
        !b
    } else {
        b | 1 << 63
    }
}

/// Stable LSD radix sort of `(key, index)` pairs by key, a byte per pass; passes where all
/// keys share the byte are skipped. Stable: equal keys keep their input order.
fn radix_sort_by_key(items: &mut Vec<(u64, u32)>) {
    let n = items.len();
    let mut hist = [[0usize; 256]; 8];
    for &(k, _) in items.iter() {
        for (b, h) in hist.iter_mut().enumerate() {
            h[(k >> (8 * b)) as usize & 255] += 1;
        }
    }
    let mut tmp = vec![(0u64, 0u32); n];
    for (b, h) in hist.iter().enumerate() {
        if h.contains(&n) {
            continue;
        }
        let mut at = [0usize; 256];
        let mut start = 0;
        for (a, &c) in at.iter_mut().zip(h) {
            *a = start;
            start += c;
        }
        for &it in items.iter() {
            let digit = (it.0 >> (8 * b)) as usize & 255;
            tmp[at[digit]] = it;
            at[digit] += 1;
        }
        std::mem::swap(items, &mut tmp);
    }
}

/// Rows per task of the passes over the keys (fixed, so that float64 sums do not depend on
/// the number of threads).
const STATS_ROWS: usize = 1024;

/// Squared norm of `row` in f64 (no round-off of its own that matters: the float32
/// squares are exact in f64). Eight independent lanes, so that the loop vectorizes.
#[inline(always)]
fn sqnorm64(row: &[f32]) -> f64 {
    const L: usize = 8;
    let mut acc = [0.0f64; L];
    let c = row.chunks_exact(L);
    let tail: f64 = c.remainder().iter().map(|&v| (v as f64) * (v as f64)).sum();
    for a in c {
        for j in 0..L {
            acc[j] += a[j] as f64 * a[j] as f64;
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// Squared norms of the rows of `chunk` appended to `norms`; their column sums added to
/// `sums` unless it is empty.
#[inline(always)]
fn stats_body(chunk: &[f32], d: usize, norms: &mut Vec<f64>, sums: &mut [f64]) {
    for r in chunk.chunks_exact(d) {
        norms.push(sqnorm64(r));
        if !sums.is_empty() {
            sums.iter_mut().zip(r).for_each(|(s, &v)| *s += v as f64);
        }
    }
}

leveled!(
    /// [`stats_body`] at a vector level.
    fn stats_at = stats_body(chunk: &[f32], d: usize, norms: &mut Vec<f64>, sums: &mut [f64])
);

/// Squared norms (f64) of `rows - centre` as float32 rows, the GEMM's view of them.
#[inline(always)]
fn centred_norms_body(chunk: &[f32], centre: &[f32], norms: &mut Vec<f64>, buf: &mut [f32]) {
    for r in chunk.chunks_exact(centre.len()) {
        buf.iter_mut().zip(r).zip(centre).for_each(|((o, &v), &m)| *o = v - m);
        norms.push(sqnorm64(buf));
    }
}

leveled!(
    /// [`centred_norms_body`] at a vector level.
    fn centred_norms_at = centred_norms_body(chunk: &[f32], centre: &[f32], norms: &mut Vec<f64>, buf: &mut [f32])
);

/// `out = rows - centre` row by row in float32 (`out` may be `rows` widened from f16).
#[inline(always)]
fn centre_body(rows: &[f32], centre: &[f32], out: &mut [f32]) {
    for (o, r) in out.chunks_exact_mut(centre.len()).zip(rows.chunks_exact(centre.len())) {
        o.iter_mut().zip(r).zip(centre).for_each(|((o, &v), &m)| *o = v - m);
    }
}

leveled!(
    /// [`centre_body`] at a vector level.
    fn centre_at = centre_body(rows: &[f32], centre: &[f32], out: &mut [f32])
);

/// In-place [`centre_body`].
#[inline(always)]
fn centre_in_place_body(rows: &mut [f32], centre: &[f32]) {
    for r in rows.chunks_exact_mut(centre.len()) {
        r.iter_mut().zip(centre).for_each(|(o, &m)| *o -= m);
    }
}

leveled!(
    /// [`centre_in_place_body`] at a vector level.
    fn centre_in_place_at = centre_in_place_body(rows: &mut [f32], centre: &[f32])
);

/// Squared norms (f64) of the rows of `data` and, when `sums`, their column sums (f64):
/// one parallel pass.
fn row_stats(level: VectorLevel, data: &[f32], d: usize, sums: bool) -> (Vec<f64>, Vec<f64>) {
    let parts: Vec<(Vec<f64>, Vec<f64>)> = data
        .par_chunks(STATS_ROWS * d)
        .map(|chunk| {
            let mut norms = Vec::with_capacity(chunk.len() / d);
            let mut s = vec![0.0f64; if sums { d } else { 0 }];
            stats_at(level, chunk, d, &mut norms, &mut s);
            (norms, s)
        })
        .collect();
    let mut norms = Vec::with_capacity(data.len() / d);
    let mut total = vec![0.0f64; if sums { d } else { 0 }];
    for (n, s) in parts {
        norms.extend_from_slice(&n);
        total.iter_mut().zip(&s).for_each(|(t, v)| *t += v);
    }
    (norms, total)
}

/// Squared norms of the rows of `data` centred on `centre` (float32 arithmetic).
fn centred_norms(level: VectorLevel, data: &[f32], centre: &[f32]) -> Vec<f64> {
    let d = centre.len();
    let parts: Vec<Vec<f64>> = data
        .par_chunks(STATS_ROWS * d)
        .map(|chunk| {
            let mut norms = Vec::with_capacity(chunk.len() / d);
            let mut buf = vec![0.0f32; d];
            centred_norms_at(level, chunk, centre, &mut norms, &mut buf);
            norms
        })
        .collect();
    parts.concat()
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

/// Divide `row` by its norm `norm` (in f64: the squared norm of large rows does not fit
/// float32); zero rows stay zero.
fn normalize(row: &mut [f32], norm: f64) {
    if norm > 0.0 {
        row.iter_mut().for_each(|v| *v = (*v as f64 / norm) as f32);
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

/// Largest value of `v` (0 for none); NaN is never the largest.
fn largest(v: &[f64]) -> f64 {
    v.iter().cloned().fold(0.0, f64::max)
}

/// What the search needs besides the keys: norms, centre and radius (see [`KnnIndex`]).
struct Prepared {
    keys: Option<Vec<f32>>,
    norms: Vec<f32>,
    center: Option<Vec<f32>>,
    radius: f64,
}

/// Norms, centre and radius of float32 keys `data` (n × d), read once (twice when
/// centring); cosine keys are normalised into `Prepared::keys`. Errors on keys that are
/// not finite or whose squared norms overflow float32.
fn prepare(level: VectorLevel, data: &[f32], d: usize, metric: Metric) -> Result<Prepared> {
    let n = data.len() / d;
    let (sq, sums) = row_stats(level, data, d, metric == Metric::L2);
    // A row with a NaN or infinite value has a non-finite norm (squares of finite float32
    // values cannot overflow float64).
    ensure!(sq.iter().all(|v| v.is_finite()), "keys: contains NaN or infinite values");
    let mut out = Prepared { keys: None, norms: Vec::new(), center: None, radius: 0.0 };
    match metric {
        Metric::L2 => {
            let mu: Vec<f64> = sums.iter().map(|s| s / n as f64).collect();
            let mu2: f64 = mu.iter().map(|m| m * m).sum();
            // Mean squared distance to the mean: E‖x‖² − ‖μ‖² (its cancellation only
            // matters when the spread is far below ‖μ‖², where centring is chosen anyway).
            let spread = (sq.iter().sum::<f64>() / n as f64 - mu2).max(0.0);
            // Centring costs one pass over each key block per query tile; it is worth it
            // when the offset dominates the spread (the cancellation grows with ‖μ‖² / spread).
            let norms = if mu2 > spread / 64.0 {
                let centre: Vec<f32> = mu.iter().map(|&m| m as f32).collect();
                let norms = centred_norms(level, data, &centre);
                out.center = Some(centre);
                norms
            } else {
                sq
            };
            out.radius = largest(&norms).sqrt();
            out.norms = norms.into_iter().map(|v| v as f32).collect();
        }
        Metric::InnerProduct => out.radius = largest(&sq).sqrt(),
        Metric::Cosine => {
            let mut unit = crate::error::try_with_capacity("the kNN keys", data.len())?;
            unit.extend_from_slice(data);
            unit.par_chunks_mut(d).zip(sq.par_iter()).for_each(|(r, &s)| normalize(r, s.sqrt()));
            out.radius = largest(&row_stats(level, &unit, d, false).0).sqrt();
            out.keys = Some(unit);
        }
    }
    check_radius(out.radius)?;
    Ok(out)
}

impl KnnIndex<'static> {
    /// Index `n` float32 keys of dimension `d` (row-major `keys`, `n * d` values), copied.
    pub fn new(keys: &[f32], n: usize, d: usize, metric: Metric) -> Result<KnnIndex<'static>> {
        check_shape("keys", keys.len(), n, d)?;
        let level = vector_level();
        let mut p = prepare(level, keys, d, metric)?;
        let data = match p.keys.take() {
            Some(own) => own,
            None => {
                let mut data = crate::error::try_with_capacity("the kNN keys", keys.len())?;
                data.extend_from_slice(keys);
                data
            }
        };
        Ok(Self::assemble(n, d, metric, Keys::F32(Cow::Owned(data)), p, level))
    }

    /// Index float16 keys given as their raw bits (numpy's `float16.view(uint16)`).
    ///
    /// Keys stay float16 in memory (half the size) and are widened to float32 one block
    /// at a time during the search; norms are those of the float16 values.
    pub fn new_f16(bits: &[u16], n: usize, d: usize, metric: Metric) -> Result<KnnIndex<'static>> {
        check_shape("keys", bits.len(), n, d)?;
        let level = vector_level();
        let mut data: Vec<f16> = crate::error::try_with_capacity("the kNN keys", bits.len())?;
        data.extend(bits.iter().map(|&b| f16::from_bits(b)));
        ensure!(data.iter().all(|v| v.is_finite()), "keys: contains NaN or infinite values");
        // Norms, centre and radius from the widened values (exactly the stored ones).
        let mut wide = vec![0.0f32; data.len()];
        data.convert_to_f32_slice(&mut wide);
        let mut p = prepare(level, &wide, d, metric)?;
        if let Some(unit) = p.keys.take() {
            // Cosine: the unit rows rounded to float16 are the stored keys; the radius is theirs.
            data.convert_from_f32_slice(&unit);
            data.convert_to_f32_slice(&mut wide);
            p.radius = largest(&row_stats(level, &wide, d, false).0).sqrt();
            check_radius(p.radius)?;
        }
        drop(wide);
        Ok(Self::assemble(n, d, metric, Keys::F16(data), p, level))
    }
}

impl<'a> KnnIndex<'a> {
    /// Index the caller's float32 keys without copying them (l2 and ip; cosine keys are
    /// normalised into a copy): for a one-shot search, see [`knn`].
    pub fn borrowed(keys: &'a [f32], n: usize, d: usize, metric: Metric) -> Result<KnnIndex<'a>> {
        check_shape("keys", keys.len(), n, d)?;
        let level = vector_level();
        let mut p = prepare(level, keys, d, metric)?;
        let data = match p.keys.take() {
            Some(own) => Cow::Owned(own),
            None => Cow::Borrowed(keys),
        };
        Ok(Self::assemble(n, d, metric, Keys::F32(data), p, level))
    }

    /// The index over `keys` with what [`prepare`] found (its `keys` already taken).
    fn assemble(n: usize, d: usize, metric: Metric, keys: Keys<'a>, p: Prepared, level: VectorLevel) -> KnnIndex<'a> {
        let Prepared { norms, center, radius, .. } = p;
        KnnIndex { n, d, metric, keys, norms, center, radius, blocking: Blocking::default(), level }
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

    /// The stored float32 keys (n × d, row-major; unit rows for cosine), if float32.
    pub fn keys_f32(&self) -> Option<&[f32]> {
        match &self.keys {
            Keys::F32(v) => Some(v),
            Keys::F16(_) => None,
        }
    }

    /// The stored float16 keys as their raw bits (unit rows for cosine), if float16.
    pub fn keys_f16_bits(&self) -> Option<&[u16]> {
        match &self.keys {
            Keys::F16(v) => Some(v.reinterpret_cast()),
            Keys::F32(_) => None,
        }
    }

    /// Override the tile sizes (benchmarks and tests; results do not depend on them).
    pub fn set_blocking(&mut self, blocking: Blocking) -> Result<()> {
        ensure!(blocking.query_tile > 0 && blocking.key_block > 0, "blocking: tile sizes must be >= 1");
        self.blocking = blocking;
        Ok(())
    }

    /// Run the search's GEMM and vector loops at `level` (tests and benchmarks; results do
    /// not depend on it). Levels this machine lacks are refused.
    pub fn set_level(&mut self, level: VectorLevel) -> Result<()> {
        ensure!(vector_levels().contains(&level), "level: {level:?} is not supported by this CPU");
        self.level = level;
        Ok(())
    }

    /// Key row `j` as float32 (widened into `buf` for float16 keys).
    fn key_row<'b>(&'b self, j: usize, buf: &'b mut [f32]) -> &'b [f32] {
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
        let level = self.level;
        match (self.metric, &self.center) {
            (Metric::L2, Some(mu)) => {
                qdata = crate::error::try_filled("centred queries", queries.len(), 0.0f32)?;
                qdata
                    .par_chunks_mut(STATS_ROWS * d)
                    .zip(queries.par_chunks(STATS_ROWS * d))
                    .for_each(|(out, rows)| centre_at(level, rows, mu, out));
            }
            (Metric::Cosine, _) => {
                qdata = crate::error::try_with_capacity("normalized queries", queries.len())?;
                qdata.extend_from_slice(queries);
                qdata.par_chunks_mut(d).for_each(|r| {
                    let n = sqnorm64(r).sqrt();
                    normalize(r, n)
                });
            }
            _ => {}
        }
        let qnorm: Vec<f64> = row_stats(level, if qdata.is_empty() { queries } else { &qdata }, d, false)
            .0
            .into_iter()
            .map(f64::sqrt)
            .collect();
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
        // slowed by other processes does not hold up the whole search; tiles are whole
        // micro-kernel row blocks (`sub` queries), except the last.
        let sub = product::kernel_rows(self.level).max(1);
        let mt = self.blocking.query_tile.min(q.div_ceil(TILES_PER_THREAD * threads).max(64));
        let mt = mt.div_ceil(sub).saturating_mul(sub).min(q).max(1);
        let n_tiles = q.div_ceil(mt);
        let n_blocks = self.n.div_ceil(kb);
        let want_tasks = 2 * threads;
        let splits = if n_tiles >= want_tasks { 1 } else { want_tasks.div_ceil(n_tiles).min(n_blocks) };
        let blocks_per_split = n_blocks.div_ceil(splits);
        let splits = n_blocks.div_ceil(blocks_per_split);

        // The queries transposed (coordinate-major), the layout the GEMM reads them in.
        let qt = transpose(gq, q, d)?;
        let tasks: Vec<(usize, usize)> = (0..n_tiles).flat_map(|t| (0..splits).map(move |s| (t, s))).collect();
        let parts: Vec<Result<Partial>> = tasks
            .par_iter()
            .map(|&(t, s)| {
                cancel.check()?;
                let q0 = t * mt;
                let q1 = (q0 + mt).min(q);
                let k0 = s * blocks_per_split * kb;
                let k1 = ((s + 1) * blocks_per_split * kb).min(self.n);
                self.scan_task(&qt, q, q0, q1 - q0, k0, k1, kk.min(k1 - k0), kb)
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
                .map(|&(_, i)| (exact_score(self.level, self.metric, qrow, self.key_row(i as usize, &mut buf)), i))
                .collect();
            exact.sort_unstable_by(by_score_then_index);
            // Every key outside the candidates has an approximate score >= the worst kept
            // one, so an exact score >= that minus err: certified when the k-th is below.
            if all_keys || exact[k - 1].0 < cands[kk - 1].0 as f64 + offset - err {
                exact.truncate(k);
                return exact;
            }
        }
        let mut exact = self.exact_scores(qrow, &mut buf);
        if k < exact.len() {
            exact.select_nth_unstable_by(k - 1, by_score_then_index);
        }
        exact.truncate(k);
        exact.sort_unstable_by(by_score_then_index);
        exact
    }

    /// `(exact f64 score, index)` of every key for `qrow` (original values; unit for cosine).
    fn exact_scores(&self, qrow: &[f32], buf: &mut [f32]) -> Vec<(f64, i64)> {
        (0..self.n).map(|i| (exact_score(self.level, self.metric, qrow, self.key_row(i, buf)), i as i64)).collect()
    }

    /// Every key's index for one query, nearest first in exact f64 scores, ties toward the
    /// lower index: the order [`KnnIndex::search`] gives with `k = N`, without its
    /// approximate scan (which would only prune, and at `k = N` prunes nothing).
    pub fn full_order(&self, query: &[f32]) -> Result<Vec<i64>> {
        check_shape("query", query.len(), 1, self.d)?;
        ensure!(query.iter().all(|v| v.is_finite()), "queries: contains NaN or infinite values");
        let mut unit = Vec::new();
        let qrow = if self.metric == Metric::Cosine {
            unit.extend_from_slice(query);
            normalize(&mut unit, sqnorm64(query).sqrt());
            &unit[..]
        } else {
            query
        };
        let mut buf = vec![0.0f32; self.d];
        if u32::try_from(self.n).is_err() {
            let mut exact = self.exact_scores(qrow, &mut buf);
            exact.sort_unstable_by(by_score_then_index);
            return Ok(exact.into_iter().map(|(_, i)| i).collect());
        }
        // A radix sort of order-preserving integer keys: 3-4x a comparison sort of the
        // (score, index) pairs, which took three quarters of `knn_shapley`.
        let mut keyed: Vec<(u64, u32)> = (0..self.n)
            .map(|i| (order_key(exact_score(self.level, self.metric, qrow, self.key_row(i, &mut buf))), i as u32))
            .collect();
        radix_sort_by_key(&mut keyed);
        Ok(keyed.into_iter().map(|(_, i)| i64::from(i)).collect())
    }

    /// Top-`kk` of queries `q0..q0 + rows` (columns of the transposed queries `qt`, whose
    /// rows are `ldq` long) over keys `k0..k1`: sorted per-row `(score, index)` slots of
    /// width `kk` plus the number filled per row.
    #[allow(clippy::too_many_arguments)]
    fn scan_task(
        &self,
        qt: &[f32],
        ldq: usize,
        q0: usize,
        rows: usize,
        k0: usize,
        k1: usize,
        kk: usize,
        kb: usize,
    ) -> Result<Partial> {
        let d = self.d;
        let level = self.level;
        let size = crate::error::checked_size("search tile", rows, kk)?;
        let mut scores = crate::error::try_filled("kNN tile scores", size, 0.0f32)?;
        let mut idx = crate::error::try_filled("kNN tile indices", size, 0i64)?;
        let mut lens = vec![0usize; rows];
        // Queries per GEMM: one micro-kernel row block (64 with AVX-512, 16 with AVX2).
        // The driver then reads the keys in place (no copy into panels); one block
        // measured faster than two (both sizes skip the copy).
        let sub = product::kernel_rows(level).clamp(1, rows.max(1));
        let mut buf =
            crate::error::try_filled("kNN tile scores", crate::error::checked_size("search tile", sub, kb)?, 0.0f32)?;
        let mut widened = match (&self.keys, &self.center) {
            (Keys::F32(_), None) => Vec::new(),
            _ => vec![0.0f32; kb * d],
        };
        // l2: the product holds −2 q·x and each key's norm is added to its scores; ip and
        // cosine score −q·x.
        let beta = if self.metric == Metric::L2 { -2.0f32 } else { -1.0f32 };
        let mut heaps = Heaps::new(&mut scores, &mut idx, &mut lens, kk);
        let mut b0 = k0;
        while b0 < k1 {
            let b1 = (b0 + kb).min(k1);
            let nb = b1 - b0;
            let block: &[f32] = match (&self.keys, &self.center) {
                (Keys::F32(v), None) => &v[b0 * d..b1 * d],
                (Keys::F32(v), Some(mu)) => {
                    centre_at(level, &v[b0 * d..b1 * d], mu, &mut widened[..nb * d]);
                    &widened[..nb * d]
                }
                (Keys::F16(v), centre) => {
                    v[b0 * d..b1 * d].convert_to_f32_slice(&mut widened[..nb * d]);
                    if let Some(mu) = centre {
                        centre_in_place_at(level, &mut widened[..nb * d], mu);
                    }
                    &widened[..nb * d]
                }
            };
            let add: &[f32] = if self.metric == Metric::L2 { &self.norms[b0..b1] } else { &[] };
            let mut s0 = 0;
            while s0 < rows {
                let m = sub.min(rows - s0);
                let out = &mut buf[..m * nb];
                product::scores(level, &qt[q0 + s0..], ldq, m, block, nb, d, beta, out)?;
                heaps.offer(level, out, s0, m, add, b0 as i64);
                s0 += m;
            }
            b0 = b1;
        }
        drop(heaps);
        for r in 0..rows {
            let h = Heap::new(&mut scores[r * kk..(r + 1) * kk], &mut idx[r * kk..(r + 1) * kk], lens[r]);
            lens[r] = h.into_sorted();
        }
        Ok((scores, idx, lens))
    }
}

/// `rows` (q × d, row-major) transposed to d × q.
fn transpose(rows: &[f32], q: usize, d: usize) -> Result<Vec<f32>> {
    let mut out = crate::error::try_filled("transposed queries", rows.len(), 0.0f32)?;
    // 16 rows at a time: the writes to each output row stay contiguous.
    for (b, chunk) in rows.chunks(16 * d).enumerate() {
        for (i, r) in chunk.chunks_exact(d).enumerate() {
            for (p, &v) in r.iter().enumerate() {
                out[p * q + 16 * b + i] = v;
            }
        }
    }
    Ok(out)
}

/// One-shot search: index `keys` (n × d, borrowed: not copied) and search `queries`
/// (q × d) for `k` neighbours.
pub fn knn(queries: &[f32], q: usize, keys: &[f32], n: usize, d: usize, k: usize, metric: Metric) -> Result<Neighbors> {
    knn_with(queries, q, keys, n, d, k, metric, &Cancel::new())
}

/// [`knn`] that stops with `Error::Cancelled` once `cancel` is set.
#[allow(clippy::too_many_arguments)]
pub fn knn_with(
    queries: &[f32],
    q: usize,
    keys: &[f32],
    n: usize,
    d: usize,
    k: usize,
    metric: Metric,
    cancel: &Cancel,
) -> Result<Neighbors> {
    // Shape checks first: a bad query shape should not wait for a pass over the keys.
    check_shape("queries", queries.len(), q, d)?;
    check_shape("keys", keys.len(), n, d)?;
    ensure!(k >= 1 && k <= n, "k: expected 1 <= k <= number of keys ({n}), got {k}");
    cancel.check()?;
    KnnIndex::borrowed(keys, n, d, metric)?.search_with(queries, q, k, cancel)
}

#[cfg(test)]
mod tests;
