//! Sums of real values over the runs that held each example:
//! `S[j, i] = sum_r mask[r, i] * values[r, j]`, the product of a bit matrix and a real one.
//!
//! A float GEMM over unpacked masks does one multiply-add per run. Here the masks stay
//! bits, and each group of 8 runs is one table lookup ("four Russians"): for runs
//! `8k..8k+7` the table holds, for each of the 256 byte values `b`, the sum of the value
//! rows whose bit is set in `b`. One 8-bit slice of an example's mask column then selects
//! one precomputed row of sums, a vector over up to 16 value columns `j`, so a lookup and
//! an add stand for 8 runs × 16 columns. With 8 or more columns the groups are of 4 runs
//! (16 rows per table), which keeps the tables in L1. Tables are rebuilt per word of 64
//! runs and per tile of examples.
//!
//! Tables and accumulators start on 64-byte boundaries: a row of 8 or 16 f64 then loads
//! as whole cache lines. With the 16-byte alignment of a plain `Vec<f64>` every 64-byte
//! load straddled two lines, and the kernel ran at 91 instead of 152 G run-pairs/s
//! (T=256, one Zen 5 thread).
//!
//! Every level (AVX-512, AVX2, portable) runs the same lane-wise adds in the same order,
//! so results are bit-identical across machines.

use crate::bits::RunWords;
use crate::cpu::VectorLevel;

/// Widest group of value columns a lookup covers (two AVX-512 registers of f64).
const MAX_LANES: usize = 16;
/// Bytes of accumulators per tile with 8-run lookups (fewer than 8 value columns). Each
/// tile rebuilds the tables of every word (8 × 256 rows of up to 4 f64, 64 KiB), so the
/// larger the tile the better, up to whole ranges of examples (measured when these tables
/// also served 16 columns, unaligned, T=256: 256 KiB 52, 1 MiB 73, 4 MiB 80, 16 MiB 84 G
/// run-pairs/s on a Zen 5 core, `examples/profile_masked_sums.rs`).
const ACC_BYTES: usize = 4096 * 1024;
/// Bytes of accumulators per tile with 4-run lookups (thread CPU time, T=256, same Zen 5
/// core, rows on cache lines: 256 KiB 136-145, 1 MiB 149-154, 4 MiB 152 G run-pairs/s).
const NIBBLE_ACC_BYTES: usize = 1024 * 1024;

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
    ///
    /// From 8 columns on a lookup covers 4 runs: 16 tables of 16 rows per word (16 or
    /// 32 KiB) stay in L1, where 8-run tables (256 KiB at 16 columns, 128 KiB at 8) are
    /// read from L2. It is twice the adds, from L1, and measured 150 against 126 (16
    /// columns) and 70-112 (8 columns) G run-pairs/s at T=256
    /// (`examples/profile_masked_sums.rs`, Zen 5, one thread). Narrow groups keep 8-run
    /// tables: they fit L1 already.
    #[inline(always)]
    fn run(&self, j0: usize, j1: usize, i0: usize, i1: usize, dst: &mut [f64]) {
        let mut j = j0;
        while j < j1 {
            let left = j1 - j;
            let off = (j - j0) * self.dst_ld;
            let d = &mut dst[off..];
            j += match left {
                _ if left >= MAX_LANES => self.lanes::<MAX_LANES, 4>(j, i0, i1, d),
                _ if left >= 8 => self.lanes::<8, 4>(j, i0, i1, d),
                _ if left >= 4 => self.lanes::<4, 8>(j, i0, i1, d),
                _ if left >= 2 => self.lanes::<2, 8>(j, i0, i1, d),
                _ => self.lanes::<1, 8>(j, i0, i1, d),
            };
        }
    }

    /// Value columns `j..j + J` for examples `i0..i1`, `B` runs per lookup; returns `J`.
    #[inline(always)]
    fn lanes<const J: usize, const B: usize>(&self, j: usize, i0: usize, i1: usize, dst: &mut [f64]) -> usize {
        let words = self.masks.n_words();
        let acc_bytes = if B == 4 { NIBBLE_ACC_BYTES } else { ACC_BYTES };
        let tile = (acc_bytes / (8 * J)).max(64);
        // 64 / B tables of 2^B rows for one word of 64 runs, flat: table k, entry e at k 2^B + e.
        let (mut table_buf, mut acc_buf) = (Vec::new(), Vec::new());
        let tables = cache_aligned::<J>(&mut table_buf, (64 / B) << B);
        let acc = cache_aligned::<J>(&mut acc_buf, tile.min(i1 - i0));
        for t0 in (i0..i1).step_by(tile) {
            let t1 = (t0 + tile).min(i1);
            let acc = &mut acc[..t1 - t0];
            acc.iter_mut().for_each(|a| *a = [0.0; J]);
            for w in 0..words {
                self.build::<J, B>(j, w, tables);
                self.lookup::<J, B>(tables, w, t0, acc);
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
    fn build<const J: usize, const B: usize>(&self, j: usize, w: usize, tables: &mut [[f64; J]]) {
        let runs = self.masks.n_rows();
        for (k, table) in tables.chunks_exact_mut(1 << B).enumerate() {
            let mut rows = [[0.0; J]; 8];
            for (q, row) in rows.iter_mut().enumerate().take(B) {
                let r = 64 * w + B * k + q;
                if r < runs {
                    row.copy_from_slice(&self.values[r * self.n_values + j..r * self.n_values + j + J]);
                }
            }
            // Sums of subsets of four rows, each one add from a smaller subset.
            let mut lo = [[0.0; J]; 16];
            let mut hi = [[0.0; J]; 16];
            for m in 1..16usize {
                let (low, q) = (m & (m - 1), m.trailing_zeros() as usize);
                for l in 0..J {
                    lo[m][l] = lo[low][l] + rows[q][l];
                    hi[m][l] = hi[low][l] + rows[4 + q][l];
                }
            }
            if B == 4 {
                table.copy_from_slice(&lo);
                continue;
            }
            // Entry `16 h + l` = (sum of rows 4..8 picked by h) + (sum of rows 0..4 picked
            // by l): 256 independent adds (no entry waits on another through memory).
            for (h, chunk) in table.chunks_exact_mut(16).enumerate() {
                for (e, lo) in chunk.iter_mut().zip(&lo) {
                    for l in 0..J {
                        e[l] = hi[h][l] + lo[l];
                    }
                }
            }
        }
    }

    /// Adds word `w`'s lookups into the accumulators of examples `t0..t0 + acc.len()`.
    #[inline(always)]
    fn lookup<const J: usize, const B: usize>(&self, tables: &[[f64; J]], w: usize, t0: usize, acc: &mut [[f64; J]]) {
        let words = &self.masks.row(w)[t0..t0 + acc.len()];
        for (a, &word) in acc.iter_mut().zip(words) {
            let mut v = *a;
            if B == 4 {
                let at: [usize; 16] = std::array::from_fn(|k| (k << 4) + ((word >> (4 * k)) as usize & 15));
                // Two trees of 8 in turn (each needs 8 entries live; all 16 at once spill).
                let mut lo = [0.0; J];
                for (l, s) in lo.iter_mut().enumerate() {
                    *s = tree8(std::array::from_fn(|k| tables[at[k]][l]));
                }
                let mut hi = [0.0; J];
                for (l, s) in hi.iter_mut().enumerate() {
                    *s = tree8(std::array::from_fn(|k| tables[at[8 + k]][l]));
                }
                for l in 0..J {
                    v[l] += lo[l] + hi[l];
                }
            } else {
                let at: [usize; 8] = std::array::from_fn(|k| (k << 8) + ((word >> (8 * k)) as usize & 255));
                for l in 0..J {
                    v[l] += tree8(std::array::from_fn(|k| tables[at[k]][l]));
                }
            }
            *a = v;
        }
    }
}

/// `rows` zeroed rows of `J` f64 in `buf`, starting on a 64-byte boundary: a vector load
/// of a row then never straddles two cache lines (a Vec of f64 is only 16-byte aligned).
fn cache_aligned<const J: usize>(buf: &mut Vec<f64>, rows: usize) -> &mut [[f64; J]] {
    *buf = vec![0.0; rows * J + 8];
    let off = buf.as_ptr().align_offset(64).min(8);
    buf[off..off + rows * J].as_chunks_mut::<J>().0
}

/// A fixed tree of adds: short dependency chains, the same order on every level.
#[inline(always)]
fn tree8(e: [f64; 8]) -> f64 {
    ((e[0] + e[1]) + (e[2] + e[3])) + ((e[4] + e[5]) + (e[6] + e[7]))
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
