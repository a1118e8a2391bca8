//! Per-example sufficient statistics of an outcome split by membership.
//!
//! For each example `i`: how many runs trained on it (`n_in`) or not (`n_out`), and the
//! sum and sum of squares of its outcome over each group. Memorization, its standard
//! error and hold-out accuracy are closed-form functions of these, and sums over disjoint
//! sets of runs add up, so a run store can stream over chunks of runs.

use rayon::prelude::*;

use super::COL_CHUNK;
use crate::bits::PackedRows;
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

/// Sums of a binary outcome (`sumsq == sum` since 0² = 0 and 1² = 1); masks and outcomes
/// are `(R, N)` packed rows.
pub fn outcome_sums_bool(masks: PackedRows<'_>, outcomes: PackedRows<'_>) -> Result<OutcomeSums> {
    let (runs, n) = (masks.rows(), masks.cols());
    check_shape("outcomes", &outcomes, runs, n)?;
    let mut out = OutcomeSums::zeros(n)?;
    let stride = masks.stride();
    let (mb, ob) = (masks.bytes(), outcomes.bytes());
    type Part = (usize, Vec<u32>, Vec<u32>, Vec<u32>);
    let parts: Vec<Part> = (0..n.div_ceil(COL_CHUNK))
        .into_par_iter()
        .map(|chunk| {
            let c0 = chunk * COL_CHUNK;
            let w = COL_CHUNK.min(n - c0);
            let nb = w.div_ceil(8);
            // u32 counters: one increment per run, so they hold any R below 2^32. Padding
            // bits are zero, so the counters past w stay zero and are dropped. The runs are
            // added 8 columns at a time as 8 one-byte lanes of a u64 (SPREAD turns a byte of
            // bits into 8 bytes of 0 / 1), flushed into the u32 counters every 255 runs.
            let (mut n_in, mut s_in, mut s_all) = (vec![0u32; 8 * nb], vec![0u32; 8 * nb], vec![0u32; 8 * nb]);
            let (mut l_in, mut l_s, mut l_all) = (vec![0u64; nb], vec![0u64; nb], vec![0u64; nb]);
            let flush = |lanes: &mut [u64], counts: &mut [u32]| {
                for (l, c) in lanes.iter_mut().zip(counts.chunks_exact_mut(8)) {
                    for (j, x) in c.iter_mut().enumerate() {
                        *x += ((*l >> (8 * j)) & 0xff) as u32;
                    }
                    *l = 0;
                }
            };
            for r0 in (0..runs).step_by(255) {
                for r in r0..(r0 + 255).min(runs) {
                    let at = r * stride + c0 / 8;
                    let (m, o) = (&mb[at..at + nb], &ob[at..at + nb]);
                    for k in 0..nb {
                        let (mk, ok) = (m[k] as usize, o[k] as usize);
                        l_in[k] += SPREAD[mk];
                        l_s[k] += SPREAD[mk & ok];
                        l_all[k] += SPREAD[ok];
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
    let (runs, n) = (masks.rows(), masks.cols());
    check_len("outcomes", outcomes.len(), runs, n)?;
    if let Some(s) = shift {
        ensure!(s.len() == n, "shift: expected {n} values, got {}", s.len());
    }
    let mut out = OutcomeSums::zeros(n)?;
    let level = vector_level();
    out.n_in
        .par_chunks_mut(COL_CHUNK)
        .zip(out.n_out.par_chunks_mut(COL_CHUNK))
        .zip(out.sum_in.par_chunks_mut(COL_CHUNK))
        .zip(out.sum_out.par_chunks_mut(COL_CHUNK))
        .zip(out.sumsq_in.par_chunks_mut(COL_CHUNK))
        .zip(out.sumsq_out.par_chunks_mut(COL_CHUNK))
        .enumerate()
        .for_each(|(chunk, (((((n_in, n_out), s_in), s_out), q_in), q_out))| {
            let c0 = chunk * COL_CHUNK;
            let w = n_in.len();
            let zero = vec![0.0; w];
            let sh = shift.map_or(&zero[..], |s| &s[c0..c0 + w]);
            // Sums over all runs, then the in-part; out = all - in (exact for counts,
            // and the float sums stay well conditioned thanks to the shift).
            let mut acc = FloatSums { cnt: vec![0.0; w], s_in, q_in, s_all: vec![0.0; w], q_all: vec![0.0; w] };
            match level {
                // SAFETY: levels above portable are only chosen where the CPU has them.
                #[cfg(target_arch = "x86_64")]
                VectorLevel::Avx512 => unsafe { acc.add_runs_avx512(masks, outcomes, sh, c0) },
                #[cfg(target_arch = "x86_64")]
                VectorLevel::Avx2 => unsafe { acc.add_runs_avx2(masks, outcomes, sh, c0) },
                _ => acc.add_runs(masks, outcomes, sh, c0),
            }
            for k in 0..w {
                n_in[k] = acc.cnt[k] as u64;
                n_out[k] = runs as u64 - n_in[k];
                s_out[k] = acc.s_all[k] - acc.s_in[k];
                q_out[k] = acc.q_all[k] - acc.q_in[k];
            }
        });
    Ok(out)
}

/// `BIT_LANES[b][j]`: bit `7 - j` of `b` (column `j` of a packed byte) as 0.0 / 1.0.
static BIT_LANES: [[f64; 8]; 256] = {
    let mut t = [[0.0; 8]; 256];
    let mut b = 0;
    while b < 256 {
        let mut j = 0;
        while j < 8 {
            t[b][j] = ((b >> (7 - j)) & 1) as f64;
            j += 1;
        }
        b += 1;
    }
    t
};

/// Running sums of one chunk of columns for [`outcome_sums_f64`] (counts as f64: exact
/// below 2^53 runs, and they vectorize with the sums).
struct FloatSums<'a> {
    cnt: Vec<f64>,
    s_in: &'a mut [f64],
    q_in: &'a mut [f64],
    s_all: Vec<f64>,
    q_all: Vec<f64>,
}

impl FloatSums<'_> {
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn add_runs_avx512<T: Real>(&mut self, masks: PackedRows<'_>, outcomes: &[T], sh: &[f64], c0: usize) {
        self.add_runs(masks, outcomes, sh, c0)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn add_runs_avx2<T: Real>(&mut self, masks: PackedRows<'_>, outcomes: &[T], sh: &[f64], c0: usize) {
        self.add_runs(masks, outcomes, sh, c0)
    }

    /// Adds every run's outcomes of columns `c0..c0 + w`, 8 columns (one mask byte) at a time.
    #[inline(always)]
    fn add_runs<T: Real>(&mut self, masks: PackedRows<'_>, outcomes: &[T], sh: &[f64], c0: usize) {
        let (n, w) = (masks.cols(), self.cnt.len());
        let stride = masks.stride();
        for r in 0..masks.rows() {
            let mrow = &masks.bytes()[r * stride + c0 / 8..];
            let orow = &outcomes[r * n + c0..r * n + c0 + w];
            let full = w / 8;
            for b in 0..full {
                // Whole bytes as fixed-length lanes the compiler turns into vectors.
                let m = &BIT_LANES[mrow[b] as usize];
                let at = 8 * b..8 * b + 8;
                let o: &[T; 8] = orow[at.clone()].try_into().expect("8 lanes");
                let h: &[f64; 8] = sh[at.clone()].try_into().expect("8 lanes");
                let cnt: &mut [f64; 8] = (&mut self.cnt[at.clone()]).try_into().expect("8 lanes");
                let s_in: &mut [f64; 8] = (&mut self.s_in[at.clone()]).try_into().expect("8 lanes");
                let q_in: &mut [f64; 8] = (&mut self.q_in[at.clone()]).try_into().expect("8 lanes");
                let s_all: &mut [f64; 8] = (&mut self.s_all[at.clone()]).try_into().expect("8 lanes");
                let q_all: &mut [f64; 8] = (&mut self.q_all[at]).try_into().expect("8 lanes");
                // On local copies: the compiler cannot tell these rows apart in memory.
                let (mut c, mut si, mut qi, mut sa, mut qa) = (*cnt, *s_in, *q_in, *s_all, *q_all);
                for l in 0..8 {
                    let x = o[l].to_f64() - h[l];
                    c[l] += m[l];
                    si[l] += m[l] * x;
                    qi[l] += m[l] * x * x;
                    sa[l] += x;
                    qa[l] += x * x;
                }
                (*cnt, *s_in, *q_in, *s_all, *q_all) = (c, si, qi, sa, qa);
            }
            for k in 8 * full..w {
                let m = BIT_LANES[mrow[full] as usize][k - 8 * full];
                let x = orow[k].to_f64() - sh[k];
                self.cnt[k] += m;
                self.s_in[k] += m * x;
                self.q_in[k] += m * x * x;
                self.s_all[k] += x;
                self.q_all[k] += x * x;
            }
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
