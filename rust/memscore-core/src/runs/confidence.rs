//! Logit-scaled confidence `phi = z_y - logsumexp_{y' != y} z_{y'}` (= log p_y - log(1 - p_y)),
//! the statistic LiRA fits Gaussians to (Carlini et al. 2022).

use rayon::prelude::*;

use crate::cpu::{vector_level, VectorLevel};
use crate::error::{check_len, ensure, try_filled, Error, Result};

/// Rows per parallel task, and per block of the exponential pass inside it.
const TASK_ROWS: usize = 4096;
const BLOCK_ROWS: usize = 256;
const BLOCK_VALUES: usize = 1 << 15;

/// `phi[m]` for each row `m` of a `(rows, classes)` logit matrix and its label.
pub fn logit_confidence<T: Copy + Into<f64> + Sync>(
    logits: &[T],
    labels: &[i64],
    rows: usize,
    classes: usize,
) -> Result<Vec<f64>> {
    logit_confidence_at(logits, labels, rows, classes, vector_level())
}

/// [`logit_confidence`] on a given vector level (every level gives the same bits).
pub fn logit_confidence_at<T: Copy + Into<f64> + Sync>(
    logits: &[T],
    labels: &[i64],
    rows: usize,
    classes: usize,
    level: VectorLevel,
) -> Result<Vec<f64>> {
    check_len("logits", logits.len(), rows, classes)?;
    ensure!(labels.len() == rows, "labels: expected {rows} values, got {}", labels.len());
    ensure!(classes >= 2, "logits need at least 2 classes, got {classes}");
    if let Some(&bad) = labels.iter().find(|&&y| y < 0 || y as usize >= classes) {
        return Err(Error::Invalid(format!("labels must lie in [0, {classes}), found {bad}")));
    }
    let mut out = try_filled("logit confidences", rows, 0.0)?;
    out.par_chunks_mut(TASK_ROWS).enumerate().try_for_each(|(c, dst)| -> Result<()> {
        let m0 = c * TASK_ROWS;
        let z = &logits[m0 * classes..(m0 + dst.len()) * classes];
        let y = &labels[m0..m0 + dst.len()];
        // Fewer rows per block for wide rows (a language model's vocabulary): the scratch
        // stays at most BLOCK_VALUES floats, in L2.
        let per_block = (BLOCK_VALUES / classes).clamp(1, BLOCK_ROWS);
        let mut scratch = try_filled("logit confidence scratch", per_block.min(dst.len()) * classes, 0.0)?;
        let blocks = dst.chunks_mut(per_block).zip(z.chunks(per_block * classes)).zip(y.chunks(per_block));
        for ((dst, z), y) in blocks {
            let e = &mut scratch[..dst.len() * classes];
            match level {
                // SAFETY: levels above portable are only chosen where the CPU has them.
                #[cfg(target_arch = "x86_64")]
                VectorLevel::Avx512 => unsafe { block_avx512(z, y, classes, e, dst) },
                #[cfg(target_arch = "x86_64")]
                VectorLevel::Avx2 => unsafe { block_avx2(z, y, classes, e, dst) },
                _ => block(z, y, classes, e, dst),
            }
        }
        Ok(())
    })?;
    Ok(out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn block_avx512<T: Copy + Into<f64>>(z: &[T], y: &[i64], c: usize, e: &mut [f64], out: &mut [f64]) {
    block(z, y, c, e, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn block_avx2<T: Copy + Into<f64>>(z: &[T], y: &[i64], c: usize, e: &mut [f64], out: &mut [f64]) {
    block(z, y, c, e, out)
}

/// One block of rows: the shifted logits into `e`, their exponentials in one flat pass
/// (the part that vectorizes: libm's scalar `exp` was half of the call), then the sums.
#[inline(always)]
fn block<T: Copy + Into<f64>>(z: &[T], y: &[i64], c: usize, e: &mut [f64], out: &mut [f64]) {
    let mut tops = [0.0; BLOCK_ROWS];
    for (((row, e), &y), t) in z.chunks_exact(c).zip(e.chunks_exact_mut(c)).zip(y).zip(&mut tops) {
        let y = y as usize;
        let mut top = f64::NEG_INFINITY;
        for (q, &v) in row.iter().enumerate() {
            if q != y {
                top = top.max(v.into());
            }
        }
        for (x, &v) in e.iter_mut().zip(row) {
            *x = v.into() - top;
        }
        // The label's own term is left out of the sum: e^-inf is exactly 0.
        e[y] = f64::NEG_INFINITY;
        if top == f64::NEG_INFINITY {
            e.iter_mut().for_each(|x| *x = f64::NEG_INFINITY);
        }
        *t = top;
    }
    e.iter_mut().for_each(|x| *x = exp_nonpositive(*x));
    for ((((phi, row), e), &y), &top) in out.iter_mut().zip(z.chunks_exact(c)).zip(e.chunks_exact(c)).zip(y).zip(&tops)
    {
        let zy: f64 = row[y as usize].into();
        if top == f64::NEG_INFINITY {
            *phi = f64::INFINITY;
            continue;
        }
        let s: f64 = e.iter().fold(0.0, |s, &x| s + x);
        *phi = zy - (top + s.ln());
    }
}

/// `e^x` for `x <= 0`, -inf and NaN (NaN stays NaN), within about 1 ulp of libm, as plain
/// arithmetic that vectorizes. `x = k ln 2 + r` with `|r| <= ln 2 / 2` (Cody and Waite's
/// two-part ln 2), `e^r` by its Taylor series to degree 13 (the first term left out is
/// below 5e-18 of the result), `2^k` built from its bits. Below -708 the result is 0:
/// every sum it enters also holds the term `e^0 = 1`, next to which 2^-1021 vanishes.
#[inline(always)]
fn exp_nonpositive(x: f64) -> f64 {
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000); // low bits zero: k * LN2_HI is exact
    const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76); // ln 2 - LN2_HI
    const ROUND: f64 = 6_755_399_441_055_744.0; // 1.5 * 2^52: adding it rounds to an integer
    let flushed = x < -708.0; // false for NaN
    let x = if flushed { 0.0 } else { x };
    let t = x * LOG2E + ROUND;
    let k = t - ROUND;
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let mut p = 1.0 / 6_227_020_800.0; // 1 / 13!
    for d in [479_001_600.0, 39_916_800.0, 3_628_800.0, 362_880.0, 40_320.0, 5_040.0, 720.0, 120.0, 24.0, 6.0, 2.0] {
        p = p * r + 1.0 / d;
    }
    p = p * r + 1.0;
    p = p * r + 1.0;
    // t's low mantissa bits hold k (two's complement): 2^k = (k + 1023) << 52.
    let scale = f64::from_bits(t.to_bits().wrapping_add(1023) << 52);
    if flushed {
        0.0
    } else {
        p * scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_log_odds() {
        let logits: [f64; 6] = [1.0, 2.0, 0.5, -3.0, 4.0, 4.0];
        let phi = logit_confidence(&logits, &[1, 2], 2, 3).unwrap();
        for (row, y) in [(0usize, 1usize), (1, 2)] {
            let z = &logits[row * 3..row * 3 + 3];
            let norm: f64 = z.iter().map(|v: &f64| v.exp()).sum();
            let p = z[y].exp() / norm;
            assert!((phi[row] - (p.ln() - (1.0 - p).ln())).abs() < 1e-12);
        }
    }

    /// The formula with libm's `exp` and `ln`, one value at a time.
    fn scalar_phi(row: &[f32], y: usize) -> f64 {
        let z: Vec<f64> = row.iter().map(|&v| v as f64).collect();
        let top = z.iter().enumerate().filter(|&(q, _)| q != y).fold(f64::NEG_INFINITY, |t, (_, &v)| t.max(v));
        if top == f64::NEG_INFINITY {
            return f64::INFINITY;
        }
        let s: f64 = z.iter().enumerate().filter(|&(q, _)| q != y).map(|(_, &v)| (v - top).exp()).sum();
        z[y] - (top + s.ln())
    }

    #[test]
    fn exp_is_within_two_ulps_of_libm() {
        let mut s = 11u64;
        let mut xs: Vec<f64> =
            vec![0.0, -0.0, -1e-300, -1e-17, -0.3465, -0.3466, -std::f64::consts::LN_2, -1.0, -700.0, -707.9, -708.0];
        for _ in 0..200_000 {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let u = (s >> 11) as f64 / (1u64 << 53) as f64;
            xs.push(-u * if s & 1 == 0 { 708.0 } else { 2.0 });
        }
        for x in xs {
            let (got, want) = (exp_nonpositive(x), x.exp());
            assert!((got - want).abs() <= 2.0 * f64::EPSILON * want, "{x}: {got} vs {want}");
        }
        assert_eq!(exp_nonpositive(-708.5), 0.0);
        assert_eq!(exp_nonpositive(-1e300), 0.0);
        assert_eq!(exp_nonpositive(f64::NEG_INFINITY), 0.0);
        assert!(exp_nonpositive(f64::NAN).is_nan());
    }

    #[test]
    fn every_level_gives_the_same_bits_as_the_scalar_formula() {
        let (rows, c) = (BLOCK_ROWS * 2 + 37, 7);
        let mut s = 5u64;
        let mut logits: Vec<f32> = (0..rows * c)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 60.0
            })
            .collect();
        // Rows with -inf, +inf, NaN and huge gaps among the other logits.
        logits[0..c].copy_from_slice(&[f32::NEG_INFINITY; 7]);
        logits[c] = f32::INFINITY;
        logits[2 * c + 3] = f32::NAN;
        logits[3 * c] = 1e30;
        let labels: Vec<i64> = (0..rows as i64).map(|m| m % c as i64).collect();
        let naive: Vec<f64> = (0..rows).map(|m| scalar_phi(&logits[m * c..(m + 1) * c], labels[m] as usize)).collect();
        let mut first: Option<Vec<f64>> = None;
        for level in crate::cpu::vector_levels() {
            let got = logit_confidence_at(&logits, &labels, rows, c, level).unwrap();
            for (m, (g, w)) in got.iter().zip(&naive).enumerate() {
                let close = (g - w).abs() <= 1e-13 * (1.0 + w.abs()) || (g.is_nan() && w.is_nan()) || g == w;
                assert!(close, "{level:?} row {m}: {g} vs {w}");
            }
            match &first {
                None => first = Some(got),
                Some(f) => assert!(f.iter().zip(&got).all(|(a, b)| a.to_bits() == b.to_bits()), "{level:?}"),
            }
        }
    }

    #[test]
    fn wide_rows_match_the_scalar_formula() {
        // More classes than a block holds: one row per block.
        let (rows, c) = (3, BLOCK_VALUES + 5);
        let logits: Vec<f32> = (0..rows * c).map(|k| ((k * 7919) % 1000) as f32 / 100.0 - 5.0).collect();
        let labels = [0i64, (c / 2) as i64, (c - 1) as i64];
        let got = logit_confidence(&logits, &labels, rows, c).unwrap();
        for m in 0..rows {
            let want = scalar_phi(&logits[m * c..(m + 1) * c], labels[m] as usize);
            assert!((got[m] - want).abs() <= 1e-12 * (1.0 + want.abs()), "row {m}: {} vs {want}", got[m]);
        }
    }

    #[test]
    fn extreme_logits_stay_finite() {
        let phi = logit_confidence(&[1000.0f32, -1000.0], &[0], 1, 2).unwrap();
        assert_eq!(phi[0], 2000.0);
        assert!(logit_confidence(&[0.0f32, 0.0], &[2], 1, 2).is_err());
        assert!(logit_confidence(&[0.0f32], &[0], 1, 1).is_err());
    }
}
