//! LiRA membership scores (Carlini et al. 2022) with exact leave-one-out shadows.
//!
//! For target run `r` and example `i` the shadow models are all runs except `r`. Per
//! example the in- and out-values of phi are sorted once; removing the target's own value
//! from a sorted list moves the median by at most one rank, and mean / sum of squares are
//! downdated in O(1), so every (run, example) score costs O(log R) instead of a fresh
//! median over R - 1 shadows.

use rayon::prelude::*;

use crate::bits::PackedRows;
use crate::error::{check_len, ensure, try_filled, Result};
use crate::pool::Cancel;

/// Standard deviations below this are raised to it, so a degenerate shadow distribution
/// (every shadow phi equal, or a single shadow) gives a finite score.
pub const SIGMA_FLOOR: f64 = 1e-12;

const CHUNK: usize = 64;
/// Chunks summed in order by one task of the pooled variance.
const GROUP: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiraMode {
    /// `log N(phi; mu_in, s_in) - log N(phi; mu_out, s_out)`.
    Online,
    /// One-sided `log Phi((phi - mu_out) / s_out)`.
    Offline,
}

/// Sorted values of one side (in or out) of one example, with mean and sum of squares.
struct Side {
    sorted: Vec<f64>,
    mean: f64,
    ss: f64,
}

impl Side {
    fn new(mut v: Vec<f64>) -> Self {
        v.sort_by(f64::total_cmp);
        let n = v.len() as f64;
        let mean = if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / n };
        let ss = v.iter().map(|x| (x - mean) * (x - mean)).sum();
        Self { sorted: v, mean, ss }
    }

    fn n(&self) -> usize {
        self.sorted.len()
    }

    /// (count, median, mean, sum of squares) with `removed` taken out of the set.
    fn without(&self, removed: Option<f64>) -> (usize, f64, f64, f64) {
        let n = self.n();
        match removed {
            None => (n, median_of(n, |k| self.sorted[k]), self.mean, self.ss),
            Some(x) => {
                let m = n - 1;
                if m == 0 {
                    return (0, f64::NAN, f64::NAN, 0.0);
                }
                let p = self.sorted.partition_point(|&v| v < x);
                let get = |k: usize| if k < p { self.sorted[k] } else { self.sorted[k + 1] };
                let mean2 = (self.mean * n as f64 - x) / m as f64;
                // One value left has no spread; say so exactly rather than via a downdate
                // that can leave rounding residue (which the sigma floor would magnify).
                let ss2 = if m == 1 { 0.0 } else { (self.ss - (x - self.mean) * (x - mean2)).max(0.0) };
                let mean2 = if m == 1 { get(0) } else { mean2 };
                (m, median_of(m, get), mean2, ss2)
            }
        }
    }
}

fn median_of(m: usize, get: impl Fn(usize) -> f64) -> f64 {
    match m {
        0 => f64::NAN,
        _ if m % 2 == 1 => get(m / 2),
        _ => 0.5 * (get(m / 2 - 1) + get(m / 2)),
    }
}

/// `log Phi(z)`, accurate in the far lower tail where `Phi(z)` underflows.
pub fn log_ndtr(z: f64) -> f64 {
    if z.is_nan() {
        return f64::NAN;
    }
    if z > 6.0 {
        // log(1 - Q) with Q = Phi(-z) tiny: log1p keeps the digits.
        return (-0.5 * libm::erfc(z / std::f64::consts::SQRT_2)).ln_1p();
    }
    if z > -20.0 {
        return (0.5 * libm::erfc(-z / std::f64::consts::SQRT_2)).ln();
    }
    // Asymptotic series: Phi(z) ~ phi(z)/(-z) * (1 - 1/z^2 + 3/z^4 - 15/z^6 + 105/z^8).
    let z2 = z * z;
    let series = 1.0 - 1.0 / z2 + 3.0 / (z2 * z2) - 15.0 / (z2 * z2 * z2) + 105.0 / (z2 * z2 * z2 * z2);
    -0.5 * z2 - (-z).ln() - 0.5 * (2.0 * std::f64::consts::PI).ln() + series.ln()
}

struct SyncPtr(*mut f64);
unsafe impl Sync for SyncPtr {}
unsafe impl Send for SyncPtr {}

/// Per-column in/out sides for columns `c0..c0+w`.
fn column_sides(masks: &PackedRows<'_>, phi: &[f64], runs: usize, n: usize, c0: usize, w: usize) -> Vec<(Side, Side)> {
    let mut ins: Vec<Vec<f64>> = vec![Vec::new(); w];
    let mut outs: Vec<Vec<f64>> = vec![Vec::new(); w];
    for r in 0..runs {
        let row = r * n + c0;
        for k in 0..w {
            let x = phi[row + k];
            if masks.get(r, c0 + k) {
                ins[k].push(x)
            } else {
                outs[k].push(x)
            }
        }
    }
    ins.into_iter().zip(outs).map(|(a, b)| (Side::new(a), Side::new(b))).collect()
}

/// Pooled (population) standard deviation per target run and side, over all examples,
/// with the target's own values left out: `sqrt(sum_i SS_i / sum_i n_i)`.
fn pooled_sigmas(masks: &PackedRows<'_>, phi: &[f64], runs: usize, n: usize) -> (Vec<f64>, Vec<f64>) {
    type Sums = (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>);
    let zero = || -> Sums { (vec![0.0f64; runs], vec![0.0f64; runs], vec![0.0f64; runs], vec![0.0f64; runs]) };
    let add = |a: &mut Sums, b: &Sums| {
        for r in 0..runs {
            a.0[r] += b.0[r];
            a.1[r] += b.1[r];
            a.2[r] += b.2[r];
            a.3[r] += b.3[r];
        }
    };
    // Fixed groups of chunks, each summed in order, then the groups in order: the float
    // sums do not depend on the thread count or on work stealing.
    let n_chunks = n.div_ceil(CHUNK);
    let groups: Vec<Sums> = (0..n_chunks.div_ceil(GROUP))
        .into_par_iter()
        .map(|g| {
            let mut acc = zero();
            for chunk in g * GROUP..((g + 1) * GROUP).min(n_chunks) {
                let c0 = chunk * CHUNK;
                let w = CHUNK.min(n - c0);
                let sides = column_sides(masks, phi, runs, n, c0, w);
                let mut part = zero();
                for r in 0..runs {
                    for (k, (si, so)) in sides.iter().enumerate() {
                        let x = phi[r * n + c0 + k];
                        let member = masks.get(r, c0 + k);
                        let (ni, _, _, qi) = si.without(member.then_some(x));
                        let (no, _, _, qo) = so.without((!member).then_some(x));
                        part.0[r] += qi;
                        part.1[r] += ni as f64;
                        part.2[r] += qo;
                        part.3[r] += no as f64;
                    }
                }
                add(&mut acc, &part);
            }
            acc
        })
        .collect();
    let mut total = zero();
    for g in &groups {
        add(&mut total, g);
    }
    let (ss_in, n_in, ss_out, n_out) = total;
    let sig = |ss: &[f64], cnt: &[f64]| -> Vec<f64> {
        ss.iter().zip(cnt).map(|(&s, &c)| if c > 0.0 { (s / c).sqrt() } else { f64::NAN }).collect()
    };
    (sig(&ss_in, &n_in), sig(&ss_out, &n_out))
}

/// `(R, N)` membership scores, higher = more likely a member.
/// `masks` are the `(R, N)` packed memberships, `phi` the `(R, N)` confidences.
/// Stops early with `Error::Cancelled` once `cancel` is set.
pub fn lira(
    masks: PackedRows<'_>,
    phi: &[f64],
    mode: LiraMode,
    fixed_variance: bool,
    cancel: &Cancel,
) -> Result<Vec<f64>> {
    let (runs, n) = (masks.rows(), masks.cols());
    check_len("phi", phi.len(), runs, n)?;
    ensure!(runs >= 1, "lira needs at least one run");
    let mut out = try_filled("LiRA scores", runs * n, f64::NAN)?;
    let masks = &masks;
    let pooled = fixed_variance.then(|| pooled_sigmas(masks, phi, runs, n));
    let dst = SyncPtr(out.as_mut_ptr());
    let dst = &dst;
    (0..n.div_ceil(CHUNK)).into_par_iter().for_each(|chunk| {
        if cancel.is_cancelled() {
            return;
        }
        let c0 = chunk * CHUNK;
        let w = CHUNK.min(n - c0);
        let sides = column_sides(masks, phi, runs, n, c0, w);
        for r in 0..runs {
            for (k, (si, so)) in sides.iter().enumerate() {
                let x = phi[r * n + c0 + k];
                let member = masks.get(r, c0 + k);
                let (no, med_out, _, ss_out) = so.without((!member).then_some(x));
                let sd_out = match &pooled {
                    Some((_, p)) => p[r],
                    None => (ss_out / no as f64).sqrt(),
                }
                .max(SIGMA_FLOOR);
                let score = match mode {
                    LiraMode::Offline => {
                        if no == 0 {
                            f64::NAN
                        } else {
                            log_ndtr((x - med_out) / sd_out)
                        }
                    }
                    LiraMode::Online => {
                        let (ni, med_in, _, ss_in) = si.without(member.then_some(x));
                        let sd_in = match &pooled {
                            Some((p, _)) => p[r],
                            None => (ss_in / ni as f64).sqrt(),
                        }
                        .max(SIGMA_FLOOR);
                        if ni == 0 || no == 0 {
                            f64::NAN
                        } else {
                            let (zi, zo) = ((x - med_in) / sd_in, (x - med_out) / sd_out);
                            sd_out.ln() - sd_in.ln() - 0.5 * zi * zi + 0.5 * zo * zo
                        }
                    }
                };
                // SAFETY: each task writes only its own columns c0..c0+w of every row.
                unsafe { *dst.0.add(r * n + c0 + k) = score };
            }
        }
    });
    cancel.check()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn median(v: &mut [f64]) -> f64 {
        v.sort_by(f64::total_cmp);
        median_of(v.len(), |k| v[k])
    }

    #[test]
    fn online_matches_direct_leave_one_out() {
        let (r, n) = (9usize, 70usize);
        let masks: Vec<bool> = (0..r * n).map(|k| (k * 13 + 5) % 7 < 4).collect();
        let phi: Vec<f64> = (0..r * n).map(|k| ((k * 37 % 17) as f64) * 0.3 - 2.0).collect();
        let packed = crate::bits::pack_rows(&masks, r, n).unwrap();
        let got =
            lira(PackedRows::new("m", &packed, r, n).unwrap(), &phi, LiraMode::Online, false, &Cancel::new()).unwrap();
        for t in 0..r {
            for i in 0..n {
                let (mut vin, mut vout) = (vec![], vec![]);
                for s in (0..r).filter(|&s| s != t) {
                    if masks[s * n + i] {
                        vin.push(phi[s * n + i])
                    } else {
                        vout.push(phi[s * n + i])
                    }
                }
                let x = phi[t * n + i];
                let want = if vin.is_empty() || vout.is_empty() {
                    f64::NAN
                } else {
                    let sd = |v: &Vec<f64>| {
                        let m = v.iter().sum::<f64>() / v.len() as f64;
                        (v.iter().map(|y| (y - m) * (y - m)).sum::<f64>() / v.len() as f64).sqrt().max(SIGMA_FLOOR)
                    };
                    let (si, so) = (sd(&vin), sd(&vout));
                    let (mi, mo) = (median(&mut vin), median(&mut vout));
                    so.ln() - si.ln() - 0.5 * ((x - mi) / si).powi(2) + 0.5 * ((x - mo) / so).powi(2)
                };
                let g = got[t * n + i];
                assert!(
                    (g.is_nan() && want.is_nan()) || (g - want).abs() <= 1e-6 * want.abs().max(1.0),
                    "{g} vs {want}"
                );
            }
        }
    }

    #[test]
    fn log_ndtr_tails() {
        assert!((log_ndtr(0.0) - 0.5f64.ln()).abs() < 1e-15);
        assert!((log_ndtr(-30.0) - (-454.321_174_9)).abs() < 1e-3);
        assert!(log_ndtr(40.0) <= 0.0 && log_ndtr(40.0) > -1e-300);
        assert!((log_ndtr(-19.9) - log_ndtr(-20.1)).abs() < 5.0);
    }

    #[test]
    fn pooled_variance_does_not_depend_on_threads() {
        let (r, n) = (7usize, 3000usize);
        let masks: Vec<bool> = (0..r * n).map(|k| (k * 13 + 5) % 7 < 4).collect();
        let phi: Vec<f64> = (0..r * n).map(|k| ((k * 37 % 101) as f64).sin() * 3.0).collect();
        let packed = crate::bits::pack_rows(&masks, r, n).unwrap();
        let m = PackedRows::new("m", &packed, r, n).unwrap();
        let run = |t| crate::pool::install(Some(t), || lira(m, &phi, LiraMode::Offline, true, &Cancel::new())).unwrap();
        let one = run(1);
        for _ in 0..3 {
            assert_eq!(
                one.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                run(2).iter().map(|x| x.to_bits()).collect::<Vec<_>>()
            );
        }
    }
}
