//! RMIA membership scores (Zarifzadeh et al. 2024) with exact leave-one-out references.
//!
//! Every run `t` in turn is the target; its reference models are all other runs. For a
//! training example `x` the target's probability of the true label is compared with its
//! expectation over the references, `ratio(x) = p_t(x) / Pr(x)`:
//!
//! - online: `Pr(x)` is the mean of `p_s(x)` over every reference `s != t`;
//! - offline: only the references that held `x` out are used, and their mean is scaled to
//!   approximate the in/out mixture: `Pr(x) = ((1 + a) * mean_out(x) + (1 - a)) / 2`.
//!
//! Population examples `z` (never trained on) get the same ratio (every reference holds
//! them out), and the score of `x` is the fraction of population examples it dominates:
//! `mean_z [ ratio(x) >= gamma * ratio(z) ]` (the pairwise likelihood ratio `ratio(x) /
//! ratio(z) >= gamma`, written without the division so that `ratio(z) = 0` counts).
//!
//! Sums over all runs are taken once ([`sums::outcome_sums_f64`]) and the target's own
//! value is subtracted, so a target costs O(N + Z) (expected: its population ratios are
//! bucketed by their bit patterns, [`RankIndex`]) instead of O(R (N + Z)).

use rayon::prelude::*;

use super::sums;
use crate::bits::PackedRows;
use crate::error::{check_len, ensure, try_filled, Result};
use crate::pool::Cancel;

/// The attack's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RmiaParams {
    /// Use every reference (online) or only those that held the example out (offline).
    pub online: bool,
    /// The pairwise likelihood-ratio threshold (`>= gamma` dominates).
    pub gamma: f64,
    /// The offline scaling `a` of `Pr(x) = ((1 + a) * mean_out + (1 - a)) / 2`, in [0, 1].
    pub offline_a: f64,
}

impl RmiaParams {
    /// `Pr(.)` from the mean probability over the references used.
    #[inline(always)]
    fn marginal(&self, mean: f64) -> f64 {
        if self.online {
            mean
        } else {
            0.5 * ((1.0 + self.offline_a) * mean + (1.0 - self.offline_a))
        }
    }
}

/// Sum over runs of every column of a row-major `(runs, cols)` matrix.
fn column_sums(x: &[f64], runs: usize, cols: usize) -> Result<Vec<f64>> {
    let mut out = try_filled("population sums", cols, 0.0)?;
    out.par_chunks_mut(super::COL_CHUNK).enumerate().for_each(|(chunk, o)| {
        let c0 = chunk * super::COL_CHUNK;
        for r in 0..runs {
            for (k, v) in o.iter_mut().enumerate() {
                *v += x[r * cols + c0 + k];
            }
        }
    });
    Ok(out)
}

/// Counts of values `<= q` among a fixed set of non-NaN values, in O(1) expected per query.
///
/// The finite values are counting-sorted into buckets of equal width in their order-keyed
/// bit patterns (for floats of one sign the bit pattern grows with the value, so buckets
/// are narrow where values are dense on a log scale), and each bucket is sorted; a query
/// finds its bucket by arithmetic and binary-searches only within it. The count is exact:
/// the same as a binary search over all values sorted.
pub(crate) struct RankIndex {
    /// The finite values, sorted, then two +inf sentinels (so that a bucket's first two
    /// slots can always be read).
    sorted: Vec<f64>,
    /// How many values are finite.
    finite: usize,
    /// Values that are -inf / +inf.
    neg_inf: usize,
    pos_inf: usize,
    /// Key of the smallest finite value, and the shift from key offsets to buckets.
    base: u64,
    shift: u32,
    /// `start[b]`: index in `sorted` of bucket `b`'s first value (`start[nb]` = len).
    start: Vec<u32>,
    /// Scratch of the counting sort.
    spare: Vec<f64>,
}

/// A u64 that orders like the float (`-0.0` taken as `0.0`): sign-magnitude to biased.
#[inline(always)]
fn order_key(v: f64) -> u64 {
    let b = (v + 0.0).to_bits();
    if b >> 63 == 1 {
        !b
    } else {
        b | (1 << 63)
    }
}

impl RankIndex {
    /// An empty index; [`RankIndex::rebuild`] fills it.
    pub fn new() -> Self {
        Self {
            sorted: Vec::new(),
            finite: 0,
            neg_inf: 0,
            pos_inf: 0,
            base: 0,
            shift: 0,
            start: Vec::new(),
            spare: Vec::new(),
        }
    }

    /// Index `values` (NaN dropped). Buffers are reused across calls.
    pub fn rebuild(&mut self, values: impl Iterator<Item = f64>) -> Result<()> {
        self.sorted.clear();
        self.neg_inf = 0;
        self.pos_inf = 0;
        let hint = values.size_hint().0;
        self.sorted.try_reserve(hint).map_err(|_| crate::Error::memory("RMIA population ratios", 8 * hint as u128))?;
        for v in values {
            if v.is_finite() {
                self.sorted.push(v);
            } else if v == f64::INFINITY {
                self.pos_inf += 1;
            } else if v == f64::NEG_INFINITY {
                self.neg_inf += 1;
            }
        }
        let len = self.sorted.len();
        ensure!(len < u32::MAX as usize, "RMIA: too many population examples ({len})");
        let (lo, hi) = self.sorted.iter().fold((u64::MAX, 0u64), |(lo, hi), &v| {
            let k = order_key(v);
            (lo.min(k), hi.max(k))
        });
        // About two buckets per value: the span's offsets shifted below that count.
        let target = (2 * len).next_power_of_two().max(1) as u64;
        let span = hi.saturating_sub(lo);
        let mut shift = 0u32;
        while (span >> shift) >= target {
            shift += 1;
        }
        let nb = if len == 0 { 0 } else { (span >> shift) as usize + 1 };
        self.base = lo;
        self.shift = shift;
        self.start.clear();
        self.start.try_reserve(nb + 2).map_err(|_| crate::Error::memory("RMIA buckets", 4 * (nb as u128 + 2)))?;
        self.start.resize(nb + 2, 0);
        let bucket = |v: f64| ((order_key(v) - lo) >> shift) as usize;
        // Counting sort: counts, offsets, scatter (into a copy), then each bucket sorted.
        for &v in &self.sorted {
            self.start[bucket(v) + 2] += 1;
        }
        for b in 2..nb + 2 {
            self.start[b] += self.start[b - 1];
        }
        self.spare.clear();
        self.spare.try_reserve(len).map_err(|_| crate::Error::memory("RMIA population ratios", 8 * len as u128))?;
        self.spare.resize(len, 0.0);
        for &v in &self.sorted {
            let at = &mut self.start[bucket(v) + 1];
            self.spare[*at as usize] = v;
            *at += 1;
        }
        std::mem::swap(&mut self.sorted, &mut self.spare);
        for b in 0..nb {
            let (a, z) = (self.start[b] as usize, self.start[b + 1] as usize);
            if z - a > 1 {
                self.sorted[a..z].sort_unstable_by(f64::total_cmp);
            }
        }
        self.finite = len;
        self.sorted.try_reserve(2).map_err(|_| crate::Error::memory("RMIA population ratios", 16))?;
        self.sorted.extend([f64::INFINITY; 2]);
        Ok(())
    }

    /// Number of indexed values (NaN excluded).
    pub fn len(&self) -> usize {
        self.finite + self.neg_inf + self.pos_inf
    }

    /// Whether no value was indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many indexed values are `<= q` (`q` not NaN).
    #[inline]
    pub fn count_le(&self, q: f64) -> usize {
        // -inf <= any q; +inf <= q only for q = +inf; finite values by their bucket.
        let finite = if self.finite == 0 || q == f64::NEG_INFINITY {
            0
        } else if q == f64::INFINITY {
            self.finite
        } else {
            let k = order_key(q);
            if k < self.base {
                0
            } else {
                let b = ((k - self.base) >> self.shift) as usize;
                if b + 1 >= self.start.len() - 1 {
                    self.finite
                } else {
                    let (a, z) = (self.start[b] as usize, self.start[b + 1] as usize);
                    if z - a <= 2 {
                        // Most buckets hold at most two values: counted without a branch
                        // (a mispredicted one cost more than the rest of the query).
                        let (s0, s1) = (self.sorted[a], self.sorted[a + 1]);
                        a + usize::from((a < z) & (s0 <= q)) + usize::from((a + 1 < z) & (s1 <= q))
                    } else {
                        a + self.sorted[a..z].partition_point(|&g| g <= q)
                    }
                }
            }
        };
        self.neg_inf + finite + if q == f64::INFINITY { self.pos_inf } else { 0 }
    }
}

impl Default for RankIndex {
    fn default() -> Self {
        Self::new()
    }
}

/// `(R, N)` RMIA scores in [0, 1], higher = more likely a member; NaN where the target has
/// no reference to compare with (one run, or offline with no other run holding `x` out)
/// or no population ratio is defined.
///
/// `masks` are the packed `(R, N)` memberships, `probs` the `(R, N)` probabilities of the
/// true label on the training examples, `pop` the `(R, n_pop)` probabilities on the
/// population examples (held out by every run). Stops early with `Error::Cancelled`.
pub fn rmia(
    masks: PackedRows<'_>,
    probs: &[f64],
    pop: &[f64],
    n_pop: usize,
    params: RmiaParams,
    cancel: &Cancel,
) -> Result<Vec<f64>> {
    let (runs, n) = (masks.rows(), masks.cols());
    check_len("probs", probs.len(), runs, n)?;
    check_len("population probs", pop.len(), runs, n_pop)?;
    ensure!(runs >= 1, "rmia needs at least one run");
    ensure!(n_pop >= 1, "rmia needs at least one population example");
    ensure!(params.gamma.is_finite() && params.gamma > 0.0, "gamma: expected a finite value > 0, got {}", params.gamma);
    ensure!((0.0..=1.0).contains(&params.offline_a), "offline_a: expected a value in [0, 1], got {}", params.offline_a);
    let mut out = try_filled("RMIA scores", runs * n, f64::NAN)?;
    if n == 0 || runs == 1 {
        return Ok(out);
    }
    let s = sums::outcome_sums_f64(masks, probs, None)?;
    let pop_sum = column_sums(pop, runs, n_pop)?;
    let refs = (runs - 1) as f64;
    // Counts as floats once, not a u64 conversion per score.
    let n_out: Vec<f64> = s.n_out.iter().map(|&c| c as f64).collect();
    let n_out = &n_out;
    let masks = &masks;
    // Sums over every run (online), taken once.
    let sum_all: Vec<f64> = s.sum_in.iter().zip(&s.sum_out).map(|(a, b)| a + b).collect();
    let sum_all = &sum_all;
    let init = || (RankIndex::new(), vec![0u8; n]);
    out.par_chunks_mut(n).enumerate().try_for_each_init(init, |(index, own_in), (t, row)| -> Result<()> {
        if cancel.is_cancelled() {
            return Ok(());
        }
        // gamma * ratio(z) of the target's population, undefined ones dropped.
        let thresholds = pop[t * n_pop..(t + 1) * n_pop]
            .iter()
            .enumerate()
            .map(|(j, &pz)| params.gamma * (pz / params.marginal((pop_sum[j] - pz) / refs)));
        index.rebuild(thresholds)?;
        if index.is_empty() {
            return Ok(());
        }
        let total = index.len() as f64;
        if params.online {
            for ((o, &x), &sum) in row.iter_mut().zip(&probs[t * n..(t + 1) * n]).zip(sum_all) {
                let ratio = x / params.marginal((sum - x) / refs);
                if !ratio.is_nan() {
                    *o = index.count_le(ratio) as f64 / total;
                }
            }
        } else {
            // The target's membership row as 0 / 1 bytes, unpacked once.
            masks.unpack_into(t, 0, own_in);
            for (i, o) in row.iter_mut().enumerate() {
                let x = probs[t * n + i];
                let own_out = own_in[i] == 0;
                // n_out as f64 less 1.0 is exactly (n_out - 1) as f64 (counts below 2^53).
                let k = n_out[i] - f64::from(u8::from(own_out));
                if k == 0.0 {
                    continue;
                }
                let ratio = x / params.marginal((s.sum_out[i] - if own_out { x } else { 0.0 }) / k);
                if !ratio.is_nan() {
                    *o = index.count_le(ratio) as f64 / total;
                }
            }
        }
        Ok(())
    })?;
    cancel.check()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The score written out per (target, example, population example), no sums reused.
    fn direct(masks: &[bool], p: &[f64], pop: &[f64], r: usize, n: usize, z: usize, prm: RmiaParams) -> Vec<f64> {
        let mut out = vec![f64::NAN; r * n];
        for t in 0..r {
            let others: Vec<usize> = (0..r).filter(|&s| s != t).collect();
            let ratio_z: Vec<f64> = (0..z)
                .map(|j| {
                    let m = others.iter().map(|&s| pop[s * z + j]).sum::<f64>() / others.len() as f64;
                    pop[t * z + j] / prm.marginal(m)
                })
                .collect();
            for i in 0..n {
                let used: Vec<usize> = others.iter().copied().filter(|&s| prm.online || !masks[s * n + i]).collect();
                if used.is_empty() {
                    continue;
                }
                let m = used.iter().map(|&s| p[s * n + i]).sum::<f64>() / used.len() as f64;
                let rx = p[t * n + i] / prm.marginal(m);
                out[t * n + i] = ratio_z.iter().filter(|&&rz| rx >= prm.gamma * rz).count() as f64 / z as f64;
            }
        }
        out
    }

    #[test]
    fn matches_direct_leave_one_out() {
        let (r, n, z) = (7usize, 45usize, 13usize);
        let masks: Vec<bool> = (0..r * n).map(|k| (k * 13 + 5) % 7 < 3).collect();
        // Dyadic probabilities: every sum and difference is exact, so ties compare alike.
        let p: Vec<f64> = (0..r * n).map(|k| ((k * 37 % 16) as f64 + 1.0) / 32.0).collect();
        let pop: Vec<f64> = (0..r * z).map(|k| ((k * 11 % 16) as f64 + 1.0) / 32.0).collect();
        let packed = crate::bits::pack_rows(&masks, r, n).unwrap();
        for prm in [
            RmiaParams { online: true, gamma: 1.0, offline_a: 0.0 },
            RmiaParams { online: true, gamma: 2.0, offline_a: 0.0 },
            RmiaParams { online: false, gamma: 1.0, offline_a: 0.5 },
            RmiaParams { online: false, gamma: 1.5, offline_a: 1.0 },
        ] {
            let m = PackedRows::new("m", &packed, r, n).unwrap();
            let got = rmia(m, &p, &pop, z, prm, &Cancel::new()).unwrap();
            let want = direct(&masks, &p, &pop, r, n, z, prm);
            for (g, w) in got.iter().zip(&want) {
                assert!((g.is_nan() && w.is_nan()) || g == w, "{prm:?}: {g} vs {w}");
            }
        }
    }

    #[test]
    fn rank_index_counts_like_a_sorted_search() {
        let mut idx = RankIndex::new();
        let sets: Vec<Vec<f64>> = vec![
            vec![],
            vec![f64::NAN],
            vec![0.5],
            vec![0.0, -0.0, 0.0, 1.0, 1.0, 1.0, f64::INFINITY, f64::NAN],
            vec![f64::NEG_INFINITY, -3.0, -1e-300, 5e-324, 1e-300, 2.5, 1e300, f64::MAX, f64::INFINITY],
            (0..5000).map(|k| ((k * 7919 % 5003) as f64 / 997.0).exp() * 1e-3).collect(),
            (0..3000).map(|k| ((k % 13) as f64) * 0.125).collect(),
        ];
        for set in sets {
            idx.rebuild(set.iter().copied()).unwrap();
            let mut sorted: Vec<f64> = set.iter().copied().filter(|v| !v.is_nan()).collect();
            sorted.sort_by(f64::total_cmp);
            assert_eq!(idx.len(), sorted.len());
            let mut queries: Vec<f64> = sorted.clone();
            queries.extend([f64::NEG_INFINITY, f64::INFINITY, -0.0, 0.0, 1e-310, -1e9, 1e9, 0.4999, 0.5, 0.5001]);
            queries.extend(sorted.iter().map(|v| v * (1.0 + 1e-15)));
            for q in queries {
                let want = sorted.iter().filter(|&&g| g <= q).count();
                assert_eq!(idx.count_le(q), want, "q = {q:e}");
            }
        }
    }

    #[test]
    fn one_run_and_bad_settings() {
        let packed = crate::bits::pack_rows(&[true, false], 1, 2).unwrap();
        let m = PackedRows::new("m", &packed, 1, 2).unwrap();
        let prm = RmiaParams { online: true, gamma: 1.0, offline_a: 0.3 };
        assert!(rmia(m, &[0.5, 0.5], &[0.5], 1, prm, &Cancel::new()).unwrap().iter().all(|x| x.is_nan()));
        assert!(rmia(m, &[0.5, 0.5], &[], 0, prm, &Cancel::new()).is_err());
        assert!(rmia(m, &[0.5], &[0.5], 1, prm, &Cancel::new()).is_err());
        assert!(rmia(m, &[0.5, 0.5], &[0.5], 1, RmiaParams { gamma: 0.0, ..prm }, &Cancel::new()).is_err());
        assert!(rmia(m, &[0.5, 0.5], &[0.5], 1, RmiaParams { offline_a: 1.5, ..prm }, &Cancel::new()).is_err());
    }
}
