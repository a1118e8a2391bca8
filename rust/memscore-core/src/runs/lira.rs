//! LiRA membership scores (Carlini et al. 2022) with exact leave-one-out shadows.
//!
//! For target run `r` and example `i` the shadow models are all runs except `r`. Removing
//! the target's own value from a side moves its median by at most one rank, so per example
//! and side only the three order statistics around the median are selected (O(R), no
//! sort), and mean / sum of squares are downdated in O(1): every (run, example) score costs
//! O(1) instead of a fresh median over R - 1 shadows.

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

/// One side (in or out) of one example: its count, mean, sum of squares, and the few
/// order statistics around its median that every leave-one-out median is made of.
///
/// Removing one value `x` from `n` sorted values moves the median by at most one rank, so
/// the medians of the full side and of the side less any one of its values all lie among
/// the order statistics `lo ..= lo + 2` with `lo = (n - 2) / 2`. They are found by
/// selection in O(n) rather than a sort, and each (target, example) then costs O(1).
struct Side {
    n: usize,
    mean: f64,
    ss: f64,
    /// Rank of `near[0]` in the sorted side.
    lo: usize,
    /// Order statistics `lo, lo + 1, lo + 2` (those past `n - 1` unused).
    near: [f64; 3],
}

impl Side {
    /// The side of the values `v` (reordered in place).
    fn new(v: &mut [f64]) -> Self {
        let n = v.len();
        let mean = if n == 0 { f64::NAN } else { v.iter().sum::<f64>() / n as f64 };
        let ss = v.iter().map(|x| (x - mean) * (x - mean)).sum();
        let lo = n.saturating_sub(2) / 2;
        let mut near = [f64::NAN; 3];
        if n > 0 {
            // Selection leaves the lo-th smallest at lo and larger-or-equal values after it;
            // the next order statistics are the smallest of those.
            let (_, &mut a, rest) = v.select_nth_unstable_by(lo, f64::total_cmp);
            near[0] = a;
            let want = (n - 1 - lo).min(2);
            if want > 0 {
                let (_, &mut b, rest) = rest.select_nth_unstable_by(0, f64::total_cmp);
                near[1] = b;
                if want > 1 {
                    near[2] = rest.iter().copied().min_by(f64::total_cmp).unwrap_or(f64::NAN);
                }
            }
        }
        Self { n, mean, ss, lo, near }
    }

    /// The `k`-th smallest value (`lo <= k <= lo + 2`, `k < n`).
    #[inline(always)]
    fn at(&self, k: usize) -> f64 {
        self.near[k - self.lo]
    }

    /// (count, median, mean, sum of squares) with `removed` taken out of the set.
    #[inline]
    fn without(&self, removed: Option<f64>) -> (usize, f64, f64, f64) {
        let n = self.n;
        match removed {
            None => (n, median_of(n, |k| self.at(k)), self.mean, self.ss),
            Some(x) => {
                let m = n - 1;
                if m == 0 {
                    return (0, f64::NAN, f64::NAN, 0.0);
                }
                // With p the number of values below x, the k-th of the rest is the k-th of
                // all for k < p, else the (k + 1)-th; and k < p exactly when that value < x.
                let get = |k: usize| {
                    let v = self.at(k);
                    if v < x {
                        v
                    } else {
                        self.at(k + 1)
                    }
                };
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

/// A side's Gaussian for one target: count, median, floored sigma and its logarithm.
#[derive(Clone, Copy)]
struct Fit {
    n: usize,
    med: f64,
    sd: f64,
    ln_sd: f64,
}

impl Fit {
    /// The fit of `side` with the target's value `removed` (None: not on this side);
    /// `ln` says whether the logarithm is wanted (else NaN).
    #[inline]
    fn new(side: &Side, removed: Option<f64>, ln: bool) -> Self {
        let (n, med, _, ss) = side.without(removed);
        let sd = (ss / n as f64).sqrt().max(SIGMA_FLOOR);
        Self { n, med, sd, ln_sd: if ln { sd.ln() } else { f64::NAN } }
    }
}

/// Pooled sigmas per target run (floored) and their logarithms.
struct Pooled {
    in_sd: Vec<f64>,
    in_ln: Vec<f64>,
    out_sd: Vec<f64>,
    out_ln: Vec<f64>,
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

/// Per-column in/out sides for columns `c0..c0+w`; `buf` holds the gathered values.
fn column_sides(
    masks: &PackedRows<'_>,
    phi: &[f64],
    c0: usize,
    w: usize,
    buf: &mut Vec<f64>,
    need_in: bool,
) -> Vec<(Side, Side)> {
    let (runs, n) = (masks.rows(), masks.cols());
    // Column k's in-values go to buf[k * runs ..], its out-values to buf[(w + k) * runs ..].
    // Every value is written to both and only the count of its side moves on, so the
    // gather has no branch on the (unpredictable) membership.
    buf.resize(2 * w * runs, 0.0);
    let (ins, outs) = buf.split_at_mut(w * runs);
    let (mut n_in, mut n_out) = (vec![0usize; w], vec![0usize; w]);
    for r in 0..runs {
        let row = &phi[r * n + c0..r * n + c0 + w];
        for (k, &x) in row.iter().enumerate() {
            let member = usize::from(masks.get(r, c0 + k));
            ins[k * runs + n_in[k]] = x;
            outs[k * runs + n_out[k]] = x;
            n_in[k] += member;
            n_out[k] += 1 - member;
        }
    }
    let (ins, outs) = (ins.chunks_exact_mut(runs), outs.chunks_exact_mut(runs));
    // Without `need_in` (offline, sigmas not pooled) the in-sides are never read: left empty.
    let n_in = |k: usize| if need_in { n_in[k] } else { 0 };
    ins.zip(outs).enumerate().map(|(k, (a, b))| (Side::new(&mut a[..n_in(k)]), Side::new(&mut b[..n_out[k]]))).collect()
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
            let mut buf: Vec<f64> = Vec::new();
            for chunk in g * GROUP..((g + 1) * GROUP).min(n_chunks) {
                let c0 = chunk * CHUNK;
                let w = CHUNK.min(n - c0);
                let sides = column_sides(masks, phi, c0, w, &mut buf, true);
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
    let pooled = fixed_variance.then(|| {
        let (in_sd, out_sd) = pooled_sigmas(masks, phi, runs, n);
        let floor_ln = |v: &Vec<f64>| -> (Vec<f64>, Vec<f64>) {
            let sd: Vec<f64> = v.iter().map(|s| s.max(SIGMA_FLOOR)).collect();
            let ln = sd.iter().map(|s| s.ln()).collect();
            (sd, ln)
        };
        let ((in_sd, in_ln), (out_sd, out_ln)) = (floor_ln(&in_sd), floor_ln(&out_sd));
        Pooled { in_sd, in_ln, out_sd, out_ln }
    });
    let want_ln = mode == LiraMode::Online && pooled.is_none();
    let dst = SyncPtr(out.as_mut_ptr());
    let dst = &dst;
    (0..n.div_ceil(CHUNK)).into_par_iter().for_each_init(Vec::new, |buf, chunk| {
        if cancel.is_cancelled() {
            return;
        }
        let c0 = chunk * CHUNK;
        let w = CHUNK.min(n - c0);
        let sides = column_sides(masks, phi, c0, w, buf, mode == LiraMode::Online || pooled.is_some());
        // The side a target is not on is the whole side: its fit is the same for every
        // target, so it is taken once per column (a logarithm per score saved).
        let whole: Vec<[Fit; 2]> =
            sides.iter().map(|(si, so)| [Fit::new(si, None, true), Fit::new(so, None, true)]).collect();
        for r in 0..runs {
            for (k, ((si, so), [whole_in, whole_out])) in sides.iter().zip(&whole).enumerate() {
                let x = phi[r * n + c0 + k];
                let member = masks.get(r, c0 + k);
                let score = match mode {
                    LiraMode::Offline => {
                        // Only the out-side: whole for a member, less the target's value
                        // for a non-member.
                        let fit_out = if member { *whole_out } else { Fit::new(so, Some(x), false) };
                        let sd_out = pooled.as_ref().map_or(fit_out.sd, |p| p.out_sd[r]);
                        if fit_out.n == 0 {
                            f64::NAN
                        } else {
                            log_ndtr((x - fit_out.med) / sd_out)
                        }
                    }
                    LiraMode::Online => {
                        // The target's own side less its value, the other side whole;
                        // chosen by selects rather than branches (membership is a coin flip
                        // per score).
                        let own = Fit::new(if member { si } else { so }, Some(x), want_ln);
                        let (fit_in, fit_out) = if member { (own, *whole_out) } else { (*whole_in, own) };
                        let ((sd_in, ln_in), (sd_out, ln_out)) = match &pooled {
                            Some(p) => ((p.in_sd[r], p.in_ln[r]), (p.out_sd[r], p.out_ln[r])),
                            None => ((fit_in.sd, fit_in.ln_sd), (fit_out.sd, fit_out.ln_sd)),
                        };
                        if fit_in.n == 0 || fit_out.n == 0 {
                            f64::NAN
                        } else {
                            let (zi, zo) = ((x - fit_in.med) / sd_in, (x - fit_out.med) / sd_out);
                            ln_out - ln_in - 0.5 * zi * zi + 0.5 * zo * zo
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
    fn selected_medians_match_a_sort() {
        // Every size from 0 to 12, ties (values from a small set, -0.0 beside 0.0), every
        // value removed in turn: the median of the rest equals the sorted rest's median.
        let pool = [-1.5, -0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 3.25, -7.0];
        for n in 0..13usize {
            for seed in 0..5usize {
                let v: Vec<f64> = (0..n).map(|k| pool[(k * 7 + seed * 5 + k * k) % pool.len()]).collect();
                let side = Side::new(&mut v.clone());
                assert_eq!(side.n, n);
                let mut all = v.clone();
                let (cnt, med, _, _) = side.without(None);
                assert_eq!(cnt, n);
                let want = median(&mut all);
                assert!(med == want || (med.is_nan() && want.is_nan()), "n={n}: {med} vs {want}");
                for i in 0..n {
                    let mut rest: Vec<f64> = v.iter().enumerate().filter(|&(j, _)| j != i).map(|(_, &x)| x).collect();
                    let (cnt, med, mean, ss) = side.without(Some(v[i]));
                    assert_eq!(cnt, n - 1);
                    if n == 1 {
                        assert!(med.is_nan());
                        continue;
                    }
                    let m = rest.iter().sum::<f64>() / rest.len() as f64;
                    let q: f64 = rest.iter().map(|x| (x - m) * (x - m)).sum();
                    assert_eq!(med, median(&mut rest), "n={n}, removed {}", v[i]);
                    assert!((mean - m).abs() < 1e-12 && (ss - q).abs() < 1e-9, "{mean} {m} {ss} {q}");
                }
            }
        }
    }

    #[test]
    fn offline_and_pooled_match_direct_leave_one_out_with_ties() {
        // Few distinct values (ties at the medians), sides as small as one shadow.
        let (r, n) = (6usize, 40usize);
        let masks: Vec<bool> = (0..r * n).map(|k| (k * 11 + 3) % 5 < 2).collect();
        let phi: Vec<f64> = (0..r * n).map(|k| ((k * 7 % 4) as f64) - 1.0).collect();
        let packed = crate::bits::pack_rows(&masks, r, n).unwrap();
        let m = PackedRows::new("m", &packed, r, n).unwrap();
        let off = lira(m, &phi, LiraMode::Offline, false, &Cancel::new()).unwrap();
        let on_fixed = lira(m, &phi, LiraMode::Online, true, &Cancel::new()).unwrap();
        let (p_in, p_out) = pooled_sigmas(&m, &phi, r, n);
        for t in 0..r {
            for i in 0..n {
                let side = |member: bool| -> Vec<f64> {
                    (0..r).filter(|&s| s != t && masks[s * n + i] == member).map(|s| phi[s * n + i]).collect()
                };
                let (mut vin, mut vout) = (side(true), side(false));
                let x = phi[t * n + i];
                let got = off[t * n + i];
                if vout.is_empty() {
                    assert!(got.is_nan());
                } else {
                    let mu = vout.iter().sum::<f64>() / vout.len() as f64;
                    let sd = (vout.iter().map(|y| (y - mu) * (y - mu)).sum::<f64>() / vout.len() as f64).sqrt();
                    let want = log_ndtr((x - median(&mut vout)) / sd.max(SIGMA_FLOOR));
                    assert!((got - want).abs() <= 1e-9 * want.abs().max(1.0), "{got} vs {want}");
                }
                let got = on_fixed[t * n + i];
                if vin.is_empty() || vout.is_empty() {
                    assert!(got.is_nan());
                } else {
                    let (si, so) = (p_in[t].max(SIGMA_FLOOR), p_out[t].max(SIGMA_FLOOR));
                    let (zi, zo) = ((x - median(&mut vin)) / si, (x - median(&mut vout)) / so);
                    let want = so.ln() - si.ln() - 0.5 * zi * zi + 0.5 * zo * zo;
                    assert!((got - want).abs() <= 1e-9 * want.abs().max(1.0), "{got} vs {want}");
                }
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
