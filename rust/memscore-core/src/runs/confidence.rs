//! Logit-scaled confidence `phi = z_y - logsumexp_{y' != y} z_{y'}` (= log p_y - log(1 - p_y)),
//! the statistic LiRA fits Gaussians to (Carlini et al. 2022).

use rayon::prelude::*;

use crate::error::{check_len, ensure, Error, Result};

/// `phi[m]` for each row `m` of a `(rows, classes)` logit matrix and its label.
pub fn logit_confidence<T: Copy + Into<f64> + Sync>(
    logits: &[T],
    labels: &[i64],
    rows: usize,
    classes: usize,
) -> Result<Vec<f64>> {
    check_len("logits", logits.len(), rows, classes)?;
    ensure!(labels.len() == rows, "labels: expected {rows} values, got {}", labels.len());
    ensure!(classes >= 2, "logits need at least 2 classes, got {classes}");
    if let Some(&bad) = labels.iter().find(|&&y| y < 0 || y as usize >= classes) {
        return Err(Error::Invalid(format!("labels must lie in [0, {classes}), found {bad}")));
    }
    let mut out = vec![0.0; rows];
    out.par_chunks_mut(4096).enumerate().for_each(|(c, dst)| {
        for (k, phi) in dst.iter_mut().enumerate() {
            let m = c * 4096 + k;
            let z = &logits[m * classes..(m + 1) * classes];
            let y = labels[m] as usize;
            let zy: f64 = z[y].into();
            let mut top = f64::NEG_INFINITY;
            for (q, &v) in z.iter().enumerate() {
                if q != y {
                    top = top.max(v.into());
                }
            }
            if top == f64::NEG_INFINITY {
                *phi = f64::INFINITY;
                continue;
            }
            let mut s = 0.0;
            for (q, &v) in z.iter().enumerate() {
                if q != y {
                    s += (v.into() - top).exp();
                }
            }
            *phi = zy - (top + s.ln());
        }
    });
    Ok(out)
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

    #[test]
    fn extreme_logits_stay_finite() {
        let phi = logit_confidence(&[1000.0f32, -1000.0], &[0], 1, 2).unwrap();
        assert_eq!(phi[0], 2000.0);
        assert!(logit_confidence(&[0.0f32, 0.0], &[2], 1, 2).is_err());
        assert!(logit_confidence(&[0.0f32], &[0], 1, 1).is_err());
    }
}
