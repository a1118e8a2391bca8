//! Sums of real values over the runs that held each example:
//! `S[j, i] = sum_r mask[r, i] * values[r, j]`, the product of a bit matrix and a real one.
//!
//! A float GEMM over unpacked masks does one multiply-add per run. Here the masks stay
//! bits, and each group of 8 runs is one table lookup ("four Russians"): for runs
//! `8k..8k+7` the table holds, for each of the 256 byte values `b`, the sum of the value
//! rows whose bit is set in `b`. One 8-bit slice of an example's mask column then selects
//! one precomputed row of sums, a vector over up to 16 value columns `j`, so a lookup and
//! an add stand for 8 runs × 16 columns. Tables are rebuilt per word of 64 runs and per
//! tile of examples, which keeps them and the accumulators in L2.
//!
//! Every level (AVX-512, AVX2, portable) runs the same lane-wise adds in the same order,
//! so results are bit-identical across machines.

use crate::bits::RunWords;
use crate::cpu::VectorLevel;

/// Widest group of value columns a lookup covers (two AVX-512 registers of f64).
const MAX_LANES: usize = 16;
/// Bytes of accumulators per tile of examples. Each tile rebuilds the tables of every word
/// (8 × 256 rows of up to 16 f64, 256 KiB), so the larger the tile the better, up to whole
/// ranges of examples (`examples/profile_masked_sums.rs` on a Zen 5 core, T=256, thread CPU
/// time: 256 KiB 52, 1 MiB 73, 4 MiB 80, 16 MiB 84 G run-pairs/s). The lookups then stream
/// their accumulators and read the tables from L2 at about 31 bytes a cycle: the limit of
/// this kernel (one f64 table entry, 8 bytes, per 8 runs of one value column). Rows of 32
/// columns measured the same, rows of 8 a little slower.
const ACC_BYTES: usize = 4096 * 1024;

/// `dst[(j - j0) * ld + (i - i0)] = sum_r bit(r, i) * values[r * n_values + j]` for `j` in
/// `j0..j1` and `i` in `i0..i1`; `masks` holds `(R, N)` as columns of run bits and
/// `values` is `(R, n_values)` row-major. Sequential: callers split the work.
#[allow(clippy::too_many_arguments)]
pub fn masked_sums(
    masks: &RunWords,
    values: &[f64],
    n_values: usize,
    (j0, j1): (usize, usize),
    (i0, i1): (usize, usize),
    dst: &mut [f64],
    ld: usize,
    level: VectorLevel,
) {
    assert!(j1 <= n_values && i1 <= masks.n_cols() && values.len() >= masks.n_rows() * n_values);
    assert!(j0 >= j1 || i0 >= i1 || dst.len() >= (j1 - j0 - 1) * ld + (i1 - i0));
    let job = Job { masks, values, n_values, dst_ld: ld };
    match level {
        // SAFETY: `VectorLevel::Avx512` / `Avx2` are only chosen on machines that have the
        // feature (`crate::cpu::vector_level`).
        #[cfg(target_arch = "x86_64")]
        VectorLevel::Avx512 => unsafe { job.run_avx512(j0, j1, i0, i1, dst) },
        #[cfg(target_arch = "x86_64")]
        VectorLevel::Avx2 => unsafe { job.run_avx2(j0, j1, i0, i1, dst) },
        _ => job.run(j0, j1, i0, i1, dst),
    }
}

struct Job<'a> {
    masks: &'a RunWords,
    values: &'a [f64],
    n_values: usize,
    dst_ld: usize,
}

/// The 8 tables of one word of 64 runs: `tables[k][b]` sums the value rows `64 w + 8 k + q`
/// over the bits `q` set in `b`.
type Tables<const J: usize> = [[[f64; J]; 256]];

impl Job<'_> {
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn run_avx512(&self, j0: usize, j1: usize, i0: usize, i1: usize, dst: &mut [f64]) {
        self.run(j0, j1, i0, i1, dst)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_avx2(&self, j0: usize, j1: usize, i0: usize, i1: usize, dst: &mut [f64]) {
        self.run(j0, j1, i0, i1, dst)
    }

    /// Value columns in groups of 16, then 8, 4, 2 and 1 for the remainder.
    #[inline(always)]
    fn run(&self, j0: usize, j1: usize, i0: usize, i1: usize, dst: &mut [f64]) {
        let mut j = j0;
        while j < j1 {
            let left = j1 - j;
            let off = (j - j0) * self.dst_ld;
            let d = &mut dst[off..];
            j += match left {
                _ if left >= MAX_LANES => self.lanes::<MAX_LANES>(j, i0, i1, d),
                _ if left >= 8 => self.lanes::<8>(j, i0, i1, d),
                _ if left >= 4 => self.lanes::<4>(j, i0, i1, d),
                _ if left >= 2 => self.lanes::<2>(j, i0, i1, d),
                _ => self.lanes::<1>(j, i0, i1, d),
            };
        }
    }

    /// Value columns `j..j + J` for examples `i0..i1`; returns `J`.
    #[inline(always)]
    fn lanes<const J: usize>(&self, j: usize, i0: usize, i1: usize, dst: &mut [f64]) -> usize {
        let words = self.masks.n_words();
        let tile = (ACC_BYTES / (8 * J)).max(64);
        let mut tables: Vec<[[f64; J]; 256]> = vec![[[0.0; J]; 256]; 8];
        let mut acc: Vec<[f64; J]> = vec![[0.0; J]; tile.min(i1 - i0)];
        for t0 in (i0..i1).step_by(tile) {
            let t1 = (t0 + tile).min(i1);
            let acc = &mut acc[..t1 - t0];
            acc.iter_mut().for_each(|a| *a = [0.0; J]);
            for w in 0..words {
                self.build::<J>(j, w, &mut tables);
                self.lookup::<J>(&tables, w, t0, acc);
            }
            for (c, a) in acc.iter().enumerate() {
                for (l, &v) in a.iter().enumerate() {
                    dst[l * self.dst_ld + (t0 - i0) + c] = v;
                }
            }
        }
        J
    }

    /// Tables of word `w` for value columns `j..j + J` (rows past R count as zero).
    #[inline(always)]
    fn build<const J: usize>(&self, j: usize, w: usize, tables: &mut Tables<J>) {
        let runs = self.masks.n_rows();
        for (k, table) in tables.iter_mut().enumerate() {
            let mut rows = [[0.0; J]; 8];
            for (q, row) in rows.iter_mut().enumerate() {
                let r = 64 * w + 8 * k + q;
                if r < runs {
                    row.copy_from_slice(&self.values[r * self.n_values + j..r * self.n_values + j + J]);
                }
            }
            // Entry `16 h + l` = (sum of rows 4..8 picked by h) + (sum of rows 0..4 picked
            // by l): 32 sums of four rows, then 256 independent adds (no entry waits on
            // another through memory).
            let mut lo = [[0.0; J]; 16];
            let mut hi = [[0.0; J]; 16];
            for m in 1..16usize {
                let (low, q) = (m & (m - 1), m.trailing_zeros() as usize);
                for l in 0..J {
                    lo[m][l] = lo[low][l] + rows[q][l];
                    hi[m][l] = hi[low][l] + rows[4 + q][l];
                }
            }
            for (h, chunk) in table.chunks_exact_mut(16).enumerate() {
                for (e, lo) in chunk.iter_mut().zip(&lo) {
                    for l in 0..J {
                        e[l] = hi[h][l] + lo[l];
                    }
                }
            }
        }
    }

    /// Adds word `w`'s 8 lookups into the accumulators of examples `t0..t0 + acc.len()`.
    #[inline(always)]
    fn lookup<const J: usize>(&self, tables: &Tables<J>, w: usize, t0: usize, acc: &mut [[f64; J]]) {
        let tables: &[[[f64; J]; 256]; 8] = tables.try_into().expect("8 tables per word");
        let words = &self.masks.row(w)[t0..t0 + acc.len()];
        for (a, &word) in acc.iter_mut().zip(words) {
            let e: [&[f64; J]; 8] = std::array::from_fn(|k| &tables[k][(word >> (8 * k)) as u8 as usize]);
            let mut v = *a;
            for l in 0..J {
                // A fixed tree: short dependency chains, the same order on every level.
                v[l] += ((e[0][l] + e[1][l]) + (e[2][l] + e[3][l])) + ((e[4][l] + e[5][l]) + (e[6][l] + e[7][l]));
            }
            *a = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bits::{pack_rows, PackedRows};
    use crate::cpu::vector_levels;

    fn lcg(seed: u64) -> impl FnMut() -> f64 {
        let mut s = seed;
        move || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    #[test]
    fn every_level_matches_the_plain_sum_bit_for_bit_across_levels() {
        let mut rng = lcg(3);
        for &(r, n, t) in &[(0usize, 5usize, 3usize), (1, 1, 1), (7, 9, 2), (64, 70, 17), (130, 300, 37), (9, 2, 33)] {
            let masks: Vec<bool> = (0..r * n).map(|_| rng() < 0.4).collect();
            let values: Vec<f64> = (0..r * t).map(|_| rng() * 2.0 - 1.0).collect();
            let packed = pack_rows(&masks, r, n).unwrap();
            let cols = RunWords::from_packed(PackedRows::new("m", &packed, r, n).unwrap()).unwrap();
            let mut first: Option<Vec<f64>> = None;
            for level in vector_levels() {
                // A tile inside the matrix, written at a wider leading dimension.
                let (j0, j1, i0, i1) = (t / 3, t, n / 4, n);
                let ld = i1 - i0 + 3;
                let mut dst = vec![f64::NAN; (j1 - j0) * ld];
                masked_sums(&cols, &values, t, (j0, j1), (i0, i1), &mut dst, ld, level);
                for j in j0..j1 {
                    for i in i0..i1 {
                        let want: f64 = (0..r).filter(|&q| masks[q * n + i]).map(|q| values[q * t + j]).sum();
                        let got = dst[(j - j0) * ld + (i - i0)];
                        assert!(
                            (got - want).abs() <= 1e-12 * (1.0 + want.abs()),
                            "{level:?} ({r},{n},{t}) {got} {want}"
                        );
                    }
                }
                match &first {
                    None => first = Some(dst),
                    Some(f) => assert!(f.iter().zip(&dst).all(|(a, b)| a.to_bits() == b.to_bits()), "{level:?}"),
                }
            }
        }
    }

    #[test]
    fn extreme_values_sum_exactly_where_f64_can() {
        // Integers up to 2^52 add exactly in f64 in any order: the tables must not lose them.
        let (r, n, t) = (200, 3, 1);
        let masks: Vec<bool> = (0..r * n).map(|k| k % 3 != 1).collect();
        let values: Vec<f64> = (0..r).map(|q| (1u64 << 40) as f64 + q as f64).collect();
        let packed = pack_rows(&masks, r, n).unwrap();
        let cols = RunWords::from_packed(PackedRows::new("m", &packed, r, n).unwrap()).unwrap();
        let mut dst = vec![0.0; n];
        masked_sums(&cols, &values, t, (0, 1), (0, n), &mut dst, n, crate::cpu::vector_level());
        for i in 0..n {
            let want: f64 = (0..r).filter(|&q| masks[q * n + i]).map(|q| values[q]).sum();
            assert_eq!(dst[i], want);
        }
    }
}
