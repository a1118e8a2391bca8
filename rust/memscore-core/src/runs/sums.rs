//! Per-example sufficient statistics of an outcome split by membership.
//!
//! For each example `i`: how many runs trained on it (`n_in`) or not (`n_out`), and the
//! sum and sum of squares of its outcome over each group. Memorization, its standard
//! error and hold-out accuracy are closed-form functions of these, and sums over disjoint
//! sets of runs add up, so a run store can stream over chunks of runs.

use rayon::prelude::*;

use crate::bits::{DenseRows, PackedRows, ZeroOne};
use crate::cpu::{vector_level, VectorLevel};
use crate::error::{check_len, ensure, try_filled, Result};

/// Sample variance (ddof=1) of `n` values from their sum and sum of squares; NaN below
/// two values, never negative (round-off in `sumsq - sum²/n` is clamped).
#[inline(always)]
pub fn sample_var(sum: f64, sumsq: f64, n: f64) -> f64 {
    if n < 2.0 {
        f64::NAN
    } else {
        ((sumsq - sum * sum / n) / (n - 1.0)).max(0.0)
    }
}

/// Standard error of a difference of two means, `sqrt(var_in / n_in + var_out / n_out)`
/// from ddof=1 variances; NaN when either side has fewer than two values. The one home of
/// this formula: memorization's and influence's standard errors both use it.
#[inline(always)]
pub fn diff_stderr(var_in: f64, n_in: f64, var_out: f64, n_out: f64) -> f64 {
    if n_in < 2.0 || n_out < 2.0 {
        f64::NAN
    } else {
        (var_in / n_in + var_out / n_out).max(0.0).sqrt()
    }
}

/// Standard error of `mean_in - mean_out` per example from sums over the two groups
/// (slices of equal length: sums, sums of squares and counts of each group).
pub fn stderr_from_sums(
    sum_in: &[f64],
    sumsq_in: &[f64],
    n_in: &[f64],
    sum_out: &[f64],
    sumsq_out: &[f64],
    n_out: &[f64],
) -> Result<Vec<f64>> {
    let n = sum_in.len();
    for (name, len) in [
        ("sumsq_in", sumsq_in.len()),
        ("n_in", n_in.len()),
        ("sum_out", sum_out.len()),
        ("sumsq_out", sumsq_out.len()),
        ("n_out", n_out.len()),
    ] {
        ensure!(len == n, "{name}: expected {n} values (as sum_in), got {len}");
    }
    let mut out = try_filled("standard errors", n, 0.0)?;
    out.par_iter_mut().enumerate().for_each(|(i, o)| {
        let v_in = sample_var(sum_in[i], sumsq_in[i], n_in[i]);
        let v_out = sample_var(sum_out[i], sumsq_out[i], n_out[i]);
        *o = diff_stderr(v_in, n_in[i], v_out, n_out[i]);
    });
    Ok(out)
}

/// `(min, max, all finite)` of `x`, in parallel: the checks of float outcomes (no NaN or
/// infinity; no value so large that its sums overflow) in one pass over memory instead of
/// numpy's three single-threaded ones. Min and max skip NaN (then `all finite` is false).
pub fn value_range(x: &[f64]) -> (f64, f64, bool) {
    // Eight lanes of plain compares and adds, which vectorize (f64::min / max and
    // is_finite per value did not, and ran at a fifth of the memory's speed). `v * 0` is
    // 0 for a finite value and NaN for NaN or an infinity, so its running sum stays 0 until
    // the first of those.
    let part = |c: &[f64]| {
        let (mut lo, mut hi, mut bad) = ([f64::INFINITY; 8], [f64::NEG_INFINITY; 8], [0.0f64; 8]);
        let mut eights = c.chunks_exact(8);
        for e in &mut eights {
            for l in 0..8 {
                let v = e[l];
                lo[l] = if v < lo[l] { v } else { lo[l] };
                hi[l] = if v > hi[l] { v } else { hi[l] };
                bad[l] += v * 0.0;
            }
        }
        for (l, &v) in eights.remainder().iter().enumerate() {
            lo[l] = if v < lo[l] { v } else { lo[l] };
            hi[l] = if v > hi[l] { v } else { hi[l] };
            bad[l] += v * 0.0;
        }
        let lo = lo.iter().fold(f64::INFINITY, |a, &b| a.min(b));
        let hi = hi.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
        (lo, hi, bad.iter().all(|&b| b == 0.0))
    };
    x.par_chunks(1 << 16)
        .map(part)
        .reduce(|| (f64::INFINITY, f64::NEG_INFINITY, true), |a, b| (a.0.min(b.0), a.1.max(b.1), a.2 & b.2))
}

/// Sums over the runs that did (`*_in`) and did not (`*_out`) train on each example.
/// Float sums are of `outcome - shift[i]` (see [`outcome_sums_f64`]).
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeSums {
    pub n_in: Vec<u64>,
    pub n_out: Vec<u64>,
    pub sum_in: Vec<f64>,
    pub sum_out: Vec<f64>,
    pub sumsq_in: Vec<f64>,
    pub sumsq_out: Vec<f64>,
}

impl OutcomeSums {
    fn zeros(n: usize) -> Result<Self> {
        Ok(Self {
            n_in: try_filled("outcome counts", n, 0)?,
            n_out: try_filled("outcome counts", n, 0)?,
            sum_in: try_filled("outcome sums", n, 0.0)?,
            sum_out: try_filled("outcome sums", n, 0.0)?,
            sumsq_in: try_filled("outcome sums", n, 0.0)?,
            sumsq_out: try_filled("outcome sums", n, 0.0)?,
        })
    }
}

/// `SPREAD[b]`: the 8 bits of `b`, most significant first, as 8 bytes of 0 / 1 (byte `j`
/// of the little-endian u64 holds bit `7 - j`, i.e. column `j` of the packed byte).
static SPREAD: [u64; 256] = {
    let mut t = [0u64; 256];
    let mut b = 0;
    while b < 256 {
        let mut j = 0;
        while j < 8 {
            t[b] |= (((b >> (7 - j)) & 1) as u64) << (8 * j);
            j += 1;
        }
        b += 1;
    }
    t
};

/// Check that a packed matrix has the expected shape.
pub(crate) fn check_shape(name: &str, m: &PackedRows<'_>, rows: usize, cols: usize) -> Result<()> {
    ensure!(
        m.rows() == rows && m.cols() == cols,
        "{name}: expected shape ({rows}, {cols}), got ({}, {})",
        m.rows(),
        m.cols()
    );
    Ok(())
}

/// A `(rows, cols)` matrix of 0 / 1 as the row-streaming sums read it: packed bits
/// ([`PackedRows`]) or one element per value ([`DenseRows`]: a bool array as numpy holds
/// it, or draw counts where nonzero means 1), so that neither side has to be converted.
pub trait ZeroOneRows: Sync {
    fn rows(&self) -> usize;
    fn cols(&self) -> usize;
    /// Columns `c0 ..` of row `r` as 8-column words: byte `j` of `out[k]` is the 0 / 1 of
    /// column `c0 + 8k + j`, 0 past the last column (`c0` a multiple of 8, within the row).
    fn words(&self, r: usize, c0: usize, out: &mut [u64]);
    /// Columns `c0 .. c0 + out.len()` of row `r` as 0.0 / 1.0 (`c0` a multiple of 8).
    fn floats(&self, r: usize, c0: usize, out: &mut [f64]);
}

impl ZeroOneRows for PackedRows<'_> {
    fn rows(&self) -> usize {
        PackedRows::rows(self)
    }
    fn cols(&self) -> usize {
        PackedRows::cols(self)
    }
    #[inline]
    fn words(&self, r: usize, c0: usize, out: &mut [u64]) {
        // Padding bits of a packed row are zero, so the last byte spreads to zeros past cols.
        let bytes = &self.bytes()[r * self.stride() + c0 / 8..(r + 1) * self.stride()];
        for (o, &b) in out.iter_mut().zip(bytes) {
            *o = SPREAD[b as usize];
        }
    }
    #[inline]
    fn floats(&self, r: usize, c0: usize, out: &mut [f64]) {
        self.unpack_into(r, c0, out);
    }
}

impl<T: ZeroOne> ZeroOneRows for DenseRows<'_, T> {
    fn rows(&self) -> usize {
        DenseRows::rows(self)
    }
    fn cols(&self) -> usize {
        DenseRows::cols(self)
    }
    #[inline]
    fn words(&self, r: usize, c0: usize, out: &mut [u64]) {
        let row = &self.row(r)[c0..];
        // 64 columns at a time through a fixed-size byte array, which the compiler turns
        // into vector compares and packs (word by word it did not: uint16 counts were 3x
        // slower than bools).
        let mut k = 0;
        while k + 8 <= out.len() && 8 * k + 64 <= row.len() {
            let seg: &[T; 64] = row[8 * k..8 * k + 64].try_into().expect("64 columns");
            let bytes: [u8; 64] = std::array::from_fn(|j| u8::from(seg[j].one()));
            for (q, o) in out[k..k + 8].iter_mut().enumerate() {
                *o = u64::from_le_bytes(bytes[8 * q..8 * q + 8].try_into().expect("8 columns"));
            }
            k += 8;
        }
        // The last words, the final one partial: only what is there, zeros past it.
        for (kk, o) in out.iter_mut().enumerate().skip(k) {
            let seg = &row[(8 * kk).min(row.len())..(8 * kk + 8).min(row.len())];
            *o = seg.iter().enumerate().fold(0u64, |w, (j, &v)| w | (u64::from(v.one()) << (8 * j)));
        }
    }
    #[inline]
    fn floats(&self, r: usize, c0: usize, out: &mut [f64]) {
        let row = &self.row(r)[c0..c0 + out.len()];
        for (o, &v) in out.iter_mut().zip(row) {
            *o = f64::from(u8::from(v.one()));
        }
    }
}

/// Columns per task of the row-streaming sums: as wide as two tasks per thread allow. Each
/// task reads a run's columns as one stretch of memory, and stretches much shorter than a
/// few pages (512 float columns were 4 KiB) defeat the hardware prefetcher: the sums ran
/// at a third of a plain streaming read. The accumulators of a wide task live in L2.
fn col_chunk(n: usize) -> usize {
    let tasks = 2 * rayon::current_num_threads().max(1);
    n.div_ceil(tasks).next_multiple_of(64).clamp(1024, 1 << 16)
}
/// Runs added per pass over the float accumulators.
const ROWS: usize = 4;
/// Columns kept in registers at a time on the portable level (4 x 5 accumulators fit
/// SSE2's 16 registers); [`ChunkSums`] widens it per vector level.
const LANES: usize = 4;

/// The float accumulators of one chunk of columns.
struct Acc<'a> {
    s_in: &'a mut [f64],
    q_in: &'a mut [f64],
    s_all: &'a mut [f64],
    q_all: &'a mut [f64],
    cnt: &'a mut [f64],
    sh: &'a [f64],
}

impl Acc<'_> {
    /// Add K runs (their 0.0 / 1.0 masks and outcomes), in order, to every column.
    #[inline(always)]
    fn add<const K: usize, const L: usize, T: Real>(&mut self, m: [&[f64]; K], o: [&[T]; K]) {
        let w = self.sh.len();
        let full = w - w % L;
        for k0 in (0..full).step_by(L) {
            self.add_block::<K, L, T>(k0, m, o);
        }
        for k0 in full..w {
            self.add_block::<K, 1, T>(k0, m, o);
        }
    }

    /// Columns `k0 .. k0 + L` of [`Acc::add`], held in fixed-size arrays so that the
    /// compiler keeps them in vector registers across the K runs (with slices it did not
    /// vectorize the loop at all).
    #[inline(always)]
    fn add_block<const K: usize, const L: usize, T: Real>(&mut self, k0: usize, m: [&[f64]; K], o: [&[T]; K]) {
        let get = |v: &[f64]| -> [f64; L] { v[k0..k0 + L].try_into().expect("L columns") };
        let (mut si, mut qi, mut sa, mut qa, mut c) =
            (get(self.s_in), get(self.q_in), get(self.s_all), get(self.q_all), get(self.cnt));
        let sh = get(self.sh);
        for j in 0..K {
            // Through a fixed-size array: one bounds check, and the widening vectorizes
            // (element by element it compiled to scalar loads and converts).
            let oj: &[T; L] = o[j][k0..k0 + L].try_into().expect("L columns");
            let oj: [f64; L] = oj.map(|v| v.to_f64());
            let mj = get(m[j]);
            for l in 0..L {
                let x = oj[l] - sh[l];
                let mf = mj[l];
                c[l] += mf;
                si[l] += mf * x;
                qi[l] += mf * x * x;
                sa[l] += x;
                qa[l] += x * x;
            }
        }
        self.s_in[k0..k0 + L].copy_from_slice(&si);
        self.q_in[k0..k0 + L].copy_from_slice(&qi);
        self.s_all[k0..k0 + L].copy_from_slice(&sa);
        self.q_all[k0..k0 + L].copy_from_slice(&qa);
        self.cnt[k0..k0 + L].copy_from_slice(&c);
    }
}

/// Sums of a binary outcome (`sumsq == sum` since 0² = 0 and 1² = 1); masks and outcomes
/// are `(R, N)` packed rows.
pub fn outcome_sums_bool(masks: PackedRows<'_>, outcomes: PackedRows<'_>) -> Result<OutcomeSums> {
    check_shape("outcomes", &outcomes, masks.rows(), masks.cols())?;
    outcome_sums_zero_one(&masks, &outcomes)
}

/// [`outcome_sums_bool`] for masks and outcomes of any 0 / 1 layout (shapes must agree).
pub fn outcome_sums_zero_one<M: ZeroOneRows, O: ZeroOneRows>(masks: &M, outcomes: &O) -> Result<OutcomeSums> {
    let (runs, n) = (masks.rows(), masks.cols());
    ensure!(
        outcomes.rows() == runs && outcomes.cols() == n,
        "outcomes: expected shape ({runs}, {n}), got ({}, {})",
        outcomes.rows(),
        outcomes.cols()
    );
    let mut out = OutcomeSums::zeros(n)?;
    type Part = (usize, Vec<u32>, Vec<u32>, Vec<u32>);
    let width = col_chunk(n);
    let parts: Vec<Part> = (0..n.div_ceil(width))
        .into_par_iter()
        .map(|chunk| {
            let c0 = chunk * width;
            let w = width.min(n - c0);
            let nb = w.div_ceil(8);
            // u32 counters: one increment per run, so they hold any R below 2^32. Words past
            // the last column are zero, so the counters past w stay zero and are dropped.
            // The runs are added 8 columns at a time as 8 one-byte lanes of a u64 (SWAR),
            // flushed into the u32 counters every 255 runs, before a lane can overflow.
            let (mut n_in, mut s_in, mut s_all) = (vec![0u32; 8 * nb], vec![0u32; 8 * nb], vec![0u32; 8 * nb]);
            let (mut l_in, mut l_s, mut l_all) = (vec![0u64; nb], vec![0u64; nb], vec![0u64; nb]);
            let (mut mw, mut ow) = (vec![0u64; ROWS * nb], vec![0u64; ROWS * nb]);
            let flush = |lanes: &mut [u64], counts: &mut [u32]| {
                for (l, c) in lanes.iter_mut().zip(counts.chunks_exact_mut(8)) {
                    for (j, x) in c.iter_mut().enumerate() {
                        *x += ((*l >> (8 * j)) & 0xff) as u32;
                    }
                    *l = 0;
                }
            };
            for r0 in (0..runs).step_by(255) {
                let end = (r0 + 255).min(runs);
                // ROWS runs per pass over the lanes (integer sums: any order is exact).
                for r in (r0..end).step_by(ROWS) {
                    let rows = ROWS.min(end - r);
                    for j in 0..rows {
                        masks.words(r + j, c0, &mut mw[j * nb..(j + 1) * nb]);
                        outcomes.words(r + j, c0, &mut ow[j * nb..(j + 1) * nb]);
                    }
                    // A last pass of fewer runs adds zeros for the missing ones.
                    mw[rows * nb..].fill(0);
                    ow[rows * nb..].fill(0);
                    let [m0, m1, m2, m3]: [&[u64]; ROWS] = std::array::from_fn(|j| &mw[j * nb..(j + 1) * nb]);
                    let [o0, o1, o2, o3]: [&[u64]; ROWS] = std::array::from_fn(|j| &ow[j * nb..(j + 1) * nb]);
                    for k in 0..nb {
                        l_in[k] += m0[k] + m1[k] + m2[k] + m3[k];
                        l_s[k] += (m0[k] & o0[k]) + (m1[k] & o1[k]) + (m2[k] & o2[k]) + (m3[k] & o3[k]);
                        l_all[k] += o0[k] + o1[k] + o2[k] + o3[k];
                    }
                }
                flush(&mut l_in, &mut n_in);
                flush(&mut l_s, &mut s_in);
                flush(&mut l_all, &mut s_all);
            }
            n_in.truncate(w);
            s_in.truncate(w);
            s_all.truncate(w);
            (c0, n_in, s_in, s_all)
        })
        .collect();
    for (c0, n_in, s_in, s_all) in parts {
        for k in 0..n_in.len() {
            let i = c0 + k;
            out.n_in[i] = n_in[k] as u64;
            out.n_out[i] = runs as u64 - n_in[k] as u64;
            out.sum_in[i] = s_in[k] as f64;
            out.sum_out[i] = (s_all[k] - s_in[k]) as f64;
            out.sumsq_in[i] = out.sum_in[i];
            out.sumsq_out[i] = out.sum_out[i];
        }
    }
    Ok(out)
}

/// An outcome's element type: float64, or float32 as runs store it (widened exactly).
pub trait Real: Copy + Send + Sync {
    fn to_f64(self) -> f64;
}
impl Real for f64 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
}
impl Real for f32 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
}

/// Sums of a real-valued outcome `(R, N)` split by packed masks, shifted by `shift[i]`
/// per example (pass the first run's outcome, or any typical value, to keep the sum of
/// squares well conditioned; the same shift must be used for every chunk whose sums are
/// added together).
pub fn outcome_sums_f64<T: Real>(masks: PackedRows<'_>, outcomes: &[T], shift: Option<&[f64]>) -> Result<OutcomeSums> {
    outcome_sums_f64_rows(&masks, outcomes, shift)
}

/// [`outcome_sums_f64`] for masks of any 0 / 1 layout.
pub fn outcome_sums_f64_rows<M: ZeroOneRows, T: Real>(
    masks: &M,
    outcomes: &[T],
    shift: Option<&[f64]>,
) -> Result<OutcomeSums> {
    outcome_sums_f64_at(masks, outcomes, shift, vector_level())
}

/// [`outcome_sums_f64_rows`] on a given vector level (every level gives the same bits).
pub fn outcome_sums_f64_at<M: ZeroOneRows, T: Real>(
    masks: &M,
    outcomes: &[T],
    shift: Option<&[f64]>,
    level: VectorLevel,
) -> Result<OutcomeSums> {
    let (runs, n) = (masks.rows(), masks.cols());
    check_len("outcomes", outcomes.len(), runs, n)?;
    if let Some(s) = shift {
        ensure!(s.len() == n, "shift: expected {n} values, got {}", s.len());
    }
    let mut out = OutcomeSums::zeros(n)?;
    let width = col_chunk(n);
    out.n_in
        .par_chunks_mut(width)
        .zip(out.n_out.par_chunks_mut(width))
        .zip(out.sum_in.par_chunks_mut(width))
        .zip(out.sum_out.par_chunks_mut(width))
        .zip(out.sumsq_in.par_chunks_mut(width))
        .zip(out.sumsq_out.par_chunks_mut(width))
        .enumerate()
        .for_each(|(chunk, (((((n_in, n_out), s_in), s_out), q_in), q_out))| {
            let c0 = chunk * width;
            let w = n_in.len();
            let zero = vec![0.0; w];
            let sh = shift.map_or(&zero[..], |s| &s[c0..c0 + w]);
            let mut sums = ChunkSums { masks, outcomes, n, c0, sh, n_in, n_out, s_in, s_out, q_in, q_out };
            match level {
                // SAFETY: levels above portable are only chosen where the CPU has them.
                #[cfg(target_arch = "x86_64")]
                VectorLevel::Avx512 => unsafe { sums.run_avx512() },
                #[cfg(target_arch = "x86_64")]
                VectorLevel::Avx2 => unsafe { sums.run_avx2() },
                _ => sums.run::<LANES>(),
            }
        });
    Ok(out)
}

/// One chunk of columns `c0..c0 + n_in.len()` of [`outcome_sums_f64_rows`].
struct ChunkSums<'a, M, T> {
    masks: &'a M,
    outcomes: &'a [T],
    n: usize,
    c0: usize,
    sh: &'a [f64],
    n_in: &'a mut [u64],
    n_out: &'a mut [u64],
    s_in: &'a mut [f64],
    s_out: &'a mut [f64],
    q_in: &'a mut [f64],
    q_out: &'a mut [f64],
}

impl<M: ZeroOneRows, T: Real> ChunkSums<'_, M, T> {
    /// 16 columns in registers: 10 of AVX-512's 32 vector registers.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn run_avx512(&mut self) {
        self.run::<16>()
    }

    /// 8 columns: 10 of AVX2's 16 registers.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn run_avx2(&mut self) {
        self.run::<8>()
    }

    /// `L` columns at a time kept in registers. Each column adds its runs in order, so the
    /// sums are the same bits at every `L` (and every vector level).
    #[inline(always)]
    fn run<const L: usize>(&mut self) {
        let (runs, n, c0, w) = (self.masks.rows(), self.n, self.c0, self.n_in.len());
        // Sums over all runs, then the in-part; out = all - in (exact for counts,
        // and the float sums stay well conditioned thanks to the shift). Each column
        // adds its runs in order, so the sums depend neither on the chunking nor on
        // the unrolling (ROWS runs per load and store of the accumulators).
        let (mut s_all, mut q_all) = (vec![0.0f64; w], vec![0.0f64; w]);
        // Counted in f64, exact below 2^53 runs, so the loop stays in one type.
        let mut cnt = vec![0.0f64; w];
        let mut m = vec![0.0f64; ROWS * w];
        let mut r = 0;
        while r < runs {
            let rows = ROWS.min(runs - r);
            for (j, mj) in m.chunks_exact_mut(w).take(rows).enumerate() {
                self.masks.floats(r + j, c0, mj);
            }
            let outcomes = self.outcomes;
            let o = |j: usize| &outcomes[(r + j) * n + c0..(r + j) * n + c0 + w];
            let mut acc = Acc {
                s_in: &mut *self.s_in,
                q_in: &mut *self.q_in,
                s_all: &mut s_all,
                q_all: &mut q_all,
                cnt: &mut cnt,
                sh: self.sh,
            };
            if rows == ROWS {
                acc.add::<ROWS, L, T>(std::array::from_fn(|j| &m[j * w..(j + 1) * w]), std::array::from_fn(o));
            } else {
                for j in 0..rows {
                    acc.add::<1, L, T>([&m[j * w..(j + 1) * w]], [o(j)]);
                }
            }
            r += rows;
        }
        for k in 0..w {
            self.n_in[k] = cnt[k] as u64;
            self.n_out[k] = runs as u64 - self.n_in[k];
            self.s_out[k] = s_all[k] - self.s_in[k];
            self.q_out[k] = q_all[k] - self.q_in[k];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bits::pack_rows;

    fn packed(m: &[bool], r: usize, n: usize) -> Vec<u8> {
        pack_rows(m, r, n).unwrap()
    }

    #[test]
    fn bool_and_float_agree() {
        for &(r, n) in &[(70usize, 9000usize), (1, 1), (3, 13), (65, 4097), (600, 37)] {
            let m: Vec<bool> = (0..r * n).map(|k| (k * 31 + 7) % 11 < 6).collect();
            let o: Vec<bool> = (0..r * n).map(|k| (k * 17 + 3) % 7 < 4).collect();
            let of: Vec<f64> = o.iter().map(|&b| b as u8 as f64).collect();
            let (pm, po) = (packed(&m, r, n), packed(&o, r, n));
            let pm = PackedRows::new("masks", &pm, r, n).unwrap();
            let a = outcome_sums_bool(pm, PackedRows::new("outcomes", &po, r, n).unwrap()).unwrap();
            let b = outcome_sums_f64(pm, &of, None).unwrap();
            assert_eq!(a, b);
            // direct check of one column
            let i = n / 2;
            let n_in = (0..r).filter(|&q| m[q * n + i]).count() as u64;
            let s_in = (0..r).filter(|&q| m[q * n + i] && o[q * n + i]).count() as f64;
            assert_eq!(a.n_in[i], n_in);
            assert_eq!(a.sum_in[i], s_in);
        }
    }

    #[test]
    fn dense_and_packed_agree() {
        // Tails (n not a multiple of 8), more than 255 runs (the lane flush), one column,
        // and draw counts above 1 (nonzero = in).
        for &(r, n) in &[(600usize, 4109usize), (1, 1), (3, 13), (300, 2048), (7, 2049)] {
            let w: Vec<u16> = (0..r * n).map(|k| ((k * 31 + 7) % 11).saturating_sub(5) as u16).collect();
            let m: Vec<bool> = w.iter().map(|&x| x > 0).collect();
            let o: Vec<bool> = (0..r * n).map(|k| (k * 17 + 3) % 7 < 4).collect();
            let of: Vec<f64> = (0..r * n).map(|k| ((k * 13 % 29) as f64) * 0.25 - 3.0).collect();
            let (pm, po) = (packed(&m, r, n), packed(&o, r, n));
            let pm = PackedRows::new("masks", &pm, r, n).unwrap();
            let want = outcome_sums_bool(pm, PackedRows::new("outcomes", &po, r, n).unwrap()).unwrap();
            let dm = DenseRows::new("masks", &m, r, n).unwrap();
            let dw = DenseRows::new("masks", &w, r, n).unwrap();
            let dout = DenseRows::new("outcomes", &o, r, n).unwrap();
            assert_eq!(outcome_sums_zero_one(&dm, &dout).unwrap(), want);
            assert_eq!(outcome_sums_zero_one(&dw, &dout).unwrap(), want);
            assert_eq!(outcome_sums_zero_one(&pm, &dout).unwrap(), want);
            let shift: Vec<f64> = (0..n).map(|i| i as f64 * 0.5).collect();
            let fp = outcome_sums_f64(pm, &of, Some(&shift)).unwrap();
            assert_eq!(outcome_sums_f64_rows(&dm, &of, Some(&shift)).unwrap(), fp);
            for level in crate::cpu::vector_levels() {
                assert_eq!(outcome_sums_f64_at(&pm, &of, Some(&shift), level).unwrap(), fp, "{level:?}");
                assert_eq!(outcome_sums_f64_at(&dw, &of, Some(&shift), level).unwrap(), fp, "{level:?}");
            }
            // Bit for bit the sums of a plain loop adding the runs in order (the unrolled
            // kernel must not reassociate).
            for i in [0, n / 2, n - 1] {
                let (mut si, mut qi, mut sa, mut qa) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
                for q in 0..r {
                    let x = of[q * n + i] - shift[i];
                    let mf = f64::from(u8::from(m[q * n + i]));
                    si += mf * x;
                    qi += mf * x * x;
                    sa += x;
                    qa += x * x;
                }
                assert_eq!((fp.sum_in[i], fp.sumsq_in[i]), (si, qi));
                assert_eq!((fp.sum_out[i], fp.sumsq_out[i]), (sa - si, qa - qi));
            }
            assert_eq!(outcome_sums_f64_rows(&dw, &of, Some(&shift)).unwrap(), fp);
        }
        let m = [true; 6];
        let d = DenseRows::new("m", &m, 2, 3).unwrap();
        assert!(DenseRows::new("m", &m, 2, 2).is_err());
        assert!(outcome_sums_zero_one(&d, &DenseRows::new("o", &m, 3, 2).unwrap()).is_err());
    }

    #[test]
    fn value_range_finds_extremes_and_non_finite_values() {
        let mut v: Vec<f64> = (0..200_000).map(|k| ((k * 37 % 1001) as f64) - 500.0).collect();
        assert_eq!(value_range(&v), (-500.0, 500.0, true));
        assert_eq!(value_range(&[]), (f64::INFINITY, f64::NEG_INFINITY, true));
        v[150_000] = f64::NAN;
        assert_eq!(value_range(&v), (-500.0, 500.0, false));
        v[150_000] = f64::NEG_INFINITY;
        assert_eq!(value_range(&v), (f64::NEG_INFINITY, 500.0, false));
    }

    #[test]
    fn shapes_are_checked() {
        let m = PackedRows::new("m", &[0xff, 0xff], 2, 2).unwrap();
        assert!(outcome_sums_bool(m, PackedRows::new("o", &[0xff], 1, 2).unwrap()).is_err());
        assert!(outcome_sums_f64(m, &[0.0; 4], Some(&[0.0])).is_err());
        assert!(outcome_sums_f64(m, &[0.0; 3], None).is_err());
    }

    #[test]
    fn zero_runs_give_zero_counts() {
        let e = PackedRows::new("m", &[], 0, 3).unwrap();
        let s = outcome_sums_bool(e, e).unwrap();
        assert_eq!(s.n_in, vec![0, 0, 0]);
        assert_eq!(s.n_out, vec![0, 0, 0]);
    }
}
