//! AND + popcount micro-kernels: counts of runs where a train example was in the
//! subset *and* a test example was correct, for one train column against four test
//! columns at a time (the train words are loaded once, the four test columns stay in
//! registers' reach). Compiled for AVX-512 VPOPCNTDQ, AVX2 and portable code; the
//! caller picks one with [`crate::cpu::popcount_level`].

use crate::cpu::PopcountLevel;

/// Words per SIMD step; [`crate::bits::BitColumns`] pads columns to a multiple of this.
pub const WORD_ALIGN: usize = 8;

/// For each train column `i` of `train` (columns of `words` words, contiguous):
/// `out[i][q] = popcount(train_i & c[q])` summed over all words, for q in 0..4.
/// One call covers a whole tile of train columns so set-up and dispatch are amortized.
pub type Kernel1x4 = unsafe fn(train: &[u64], words: usize, c: [&[u64]; 4], out: &mut [[u32; 4]]);

pub fn kernel_for(level: PopcountLevel) -> Kernel1x4 {
    match level {
        #[cfg(target_arch = "x86_64")]
        PopcountLevel::Avx512Vpopcnt => x86::avx512_1x4,
        #[cfg(target_arch = "x86_64")]
        PopcountLevel::Avx2 => x86::avx2_1x4,
        _ => portable_1x4,
    }
}

#[inline(always)]
fn generic_1x4(m: &[u64], c: [&[u64]; 4]) -> [u32; 4] {
    let mut acc = [0u32; 4];
    for (w, &x) in m.iter().enumerate() {
        for q in 0..4 {
            acc[q] += (x & c[q][w]).count_ones();
        }
    }
    acc
}

/// Portable kernel (safe to call on any CPU; `unsafe fn` only to share the signature).
///
/// # Safety
///
/// None beyond the slice bounds, which are checked.
pub unsafe fn portable_1x4(train: &[u64], words: usize, c: [&[u64]; 4], out: &mut [[u32; 4]]) {
    for (m, o) in train.chunks_exact(words).zip(out.iter_mut()) {
        *o = generic_1x4(m, c);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// AVX2: nibble lookup (vpshufb) gives per-byte counts, accumulated in bytes for up
    /// to 31 steps (31 * 8 < 256) before a `vpsadbw` widens them to u64 lanes.
    #[target_feature(enable = "avx2,popcnt")]
    pub unsafe fn avx2_1x4(train: &[u64], words: usize, c: [&[u64]; 4], out: &mut [[u32; 4]]) {
        debug_assert!(words.is_multiple_of(4) && c.iter().all(|s| s.len() == words));
        let lut = _mm256_setr_epi8(
            0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
        );
        let low = _mm256_set1_epi8(0x0f);
        let zero = _mm256_setzero_si256();
        let steps = words / 4;
        let cp = [c[0].as_ptr(), c[1].as_ptr(), c[2].as_ptr(), c[3].as_ptr()];
        for (m, o) in train.chunks_exact(words).zip(out.iter_mut()) {
            let mp = m.as_ptr();
            let mut wide = [zero; 4];
            let mut s = 0;
            while s < steps {
                let end = (s + 31).min(steps);
                let mut bytes = [zero; 4];
                while s < end {
                    let mv = _mm256_loadu_si256(mp.add(s * 4) as *const __m256i);
                    for q in 0..4 {
                        let v = _mm256_and_si256(mv, _mm256_loadu_si256(cp[q].add(s * 4) as *const __m256i));
                        let lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(v, low));
                        let hi = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v, 4), low));
                        bytes[q] = _mm256_add_epi8(bytes[q], _mm256_add_epi8(lo, hi));
                    }
                    s += 1;
                }
                for q in 0..4 {
                    wide[q] = _mm256_add_epi64(wide[q], _mm256_sad_epu8(bytes[q], zero));
                }
            }
            // Horizontal sums of the four accumulators into one vector [q0, q1, q2, q3].
            let t01 =
                _mm256_add_epi64(_mm256_unpacklo_epi64(wide[0], wide[1]), _mm256_unpackhi_epi64(wide[0], wide[1]));
            let t23 =
                _mm256_add_epi64(_mm256_unpacklo_epi64(wide[2], wide[3]), _mm256_unpackhi_epi64(wide[2], wide[3]));
            let sum =
                _mm256_add_epi64(_mm256_permute2x128_si256(t01, t23, 0x20), _mm256_permute2x128_si256(t01, t23, 0x31));
            let mut lanes = [0u64; 4];
            _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, sum);
            *o = [lanes[0] as u32, lanes[1] as u32, lanes[2] as u32, lanes[3] as u32];
        }
    }

    /// AVX-512 with VPOPCNTDQ: one `vpopcntq` per 8 words.
    #[target_feature(enable = "avx512f,avx512vpopcntdq,avx512bw,popcnt")]
    pub unsafe fn avx512_1x4(train: &[u64], words: usize, c: [&[u64]; 4], out: &mut [[u32; 4]]) {
        debug_assert!(words.is_multiple_of(8) && c.iter().all(|s| s.len() == words));
        let cp = [c[0].as_ptr(), c[1].as_ptr(), c[2].as_ptr(), c[3].as_ptr()];
        for (m, o) in train.chunks_exact(words).zip(out.iter_mut()) {
            let mp = m.as_ptr();
            let mut acc = [_mm512_setzero_si512(); 4];
            for s in 0..words / 8 {
                let mv = _mm512_loadu_si512(mp.add(s * 8) as *const _);
                for q in 0..4 {
                    let v = _mm512_and_si512(mv, _mm512_loadu_si512(cp[q].add(s * 8) as *const _));
                    acc[q] = _mm512_add_epi64(acc[q], _mm512_popcnt_epi64(v));
                }
            }
            *o = [
                _mm512_reduce_add_epi64(acc[0]) as u32,
                _mm512_reduce_add_epi64(acc[1]) as u32,
                _mm512_reduce_add_epi64(acc[2]) as u32,
                _mm512_reduce_add_epi64(acc[3]) as u32,
            ];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::popcount_level;

    #[test]
    fn kernels_match_portable() {
        let mut state = 0x9e3779b97f4a7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for &words in &[8usize, 16, 256, 512] {
            let m: Vec<u64> = (0..words).map(|_| next()).collect();
            let cs: Vec<Vec<u64>> = (0..4).map(|_| (0..words).map(|_| next()).collect()).collect();
            let c = [&cs[0][..], &cs[1][..], &cs[2][..], &cs[3][..]];
            // Three train columns against the four test columns.
            let train: Vec<u64> = (0..3 * words).map(|_| next()).collect();
            let mut want = [[0u32; 4]; 3];
            unsafe { portable_1x4(&train, words, c, &mut want) };
            for (col, w) in train.chunks_exact(words).zip(&want) {
                assert_eq!(*w, generic_1x4(col, c));
                assert_eq!(w[0], col.iter().zip(c[0]).map(|(a, b)| (a & b).count_ones()).sum::<u32>());
            }
            let mut got = [[0u32; 4]; 3];
            unsafe { kernel_for(popcount_level())(&train, words, c, &mut got) };
            assert_eq!(want, got, "level {:?} words {words}", popcount_level());
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                let mut got = [[0u32; 4]; 3];
                unsafe { x86::avx2_1x4(&train, words, c, &mut got) };
                assert_eq!(want, got);
            }
            let _ = &m;
        }
    }
}
