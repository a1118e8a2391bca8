//! Times the stages of the binary influence path: `cargo run --release --example profile_influence`.
use std::time::Instant;

use memscore_core::bits::BitColumns;
use memscore_core::runs::influence::{influence_bool, InfluenceArgs};

fn main() {
    let (r, n, t) = (2000usize, 20000usize, 5000usize);
    let mut s = 0x2545F4914F6CDD1Du64;
    let mut bit = |p: u64| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s % 1000) < p
    };
    let masks: Vec<bool> = (0..r * n).map(|_| bit(700)).collect();
    let outcomes: Vec<bool> = (0..r * t).map(|_| bit(800)).collect();
    for _ in 0..3 {
        let t0 = Instant::now();
        let a = BitColumns::from_rows(&masks, r, n).unwrap();
        let b = BitColumns::from_rows(&outcomes, r, t).unwrap();
        let pack = t0.elapsed();
        let args = InfluenceArgs { runs: r, n_train: n, n_test: t, train_labels: None, test_labels: None };
        let mut out = vec![0f32; n * t];
        influence_bool(&masks, &outcomes, args, &mut out, None).unwrap();
        let t1 = Instant::now();
        influence_bool(&masks, &outcomes, args, &mut out, None).unwrap();
        println!("pack {:?} (cols {} {}), influence total {:?}", pack, a.n_cols(), b.n_cols(), t1.elapsed());
        let t2 = Instant::now();
        let x = kernel_only(&a, &b);
        println!("kernel only {:?} {x}", t2.elapsed());
        println!("{}", split_only(&a, &b));
    }
}

#[allow(dead_code)]
pub fn kernel_only(a: &BitColumns, b: &BitColumns) -> u64 {
    use memscore_core::runs::popcount::kernel_for;
    use rayon::prelude::*;
    let k = kernel_for(memscore_core::cpu::popcount_level());
    (0..b.n_cols() / 4)
        .into_par_iter()
        .map(|g| {
            let c = [b.column(4 * g), b.column(4 * g + 1), b.column(4 * g + 2), b.column(4 * g + 3)];
            let mut out = vec![[0u32; 4]; 512];
            let mut acc = 0u64;
            for i0 in (0..a.n_cols()).step_by(512) {
                let i1 = (i0 + 512).min(a.n_cols());
                unsafe { k(a.columns(i0, i1), a.n_words(), c, &mut out[..i1 - i0]) };
                acc += out[0][0] as u64;
            }
            acc
        })
        .sum()
}

#[allow(dead_code)]
pub mod nib {
    use std::arch::x86_64::*;
    #[target_feature(enable = "avx2,popcnt")]
    pub unsafe fn avx2_split(train: &[u64], words: usize, c: [&[u64]; 4], out: &mut [[u32; 4]]) {
        let lut = _mm256_setr_epi8(0,1,1,2,1,2,2,3,1,2,2,3,2,3,3,4,0,1,1,2,1,2,2,3,1,2,2,3,2,3,3,4);
        let low = _mm256_set1_epi8(0x0f);
        let zero = _mm256_setzero_si256();
        let steps = words / 4;
        let cp = [c[0].as_ptr(), c[1].as_ptr(), c[2].as_ptr(), c[3].as_ptr()];
        for (m, o) in train.chunks_exact(words).zip(out.iter_mut()) {
            let mp = m.as_ptr();
            let mut bytes = [zero; 4];
            for s in 0..steps {
                let mv = _mm256_loadu_si256(mp.add(s * 4) as *const __m256i);
                let mlo = _mm256_and_si256(mv, low);
                let mhi = _mm256_and_si256(_mm256_srli_epi16(mv, 4), low);
                for q in 0..4 {
                    let clo = _mm256_loadu_si256(cp[q].add(s * 8) as *const __m256i);
                    let chi = _mm256_loadu_si256(cp[q].add(s * 8 + 4) as *const __m256i);
                    let lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(mlo, clo));
                    let hi = _mm256_shuffle_epi8(lut, _mm256_and_si256(mhi, chi));
                    bytes[q] = _mm256_add_epi8(bytes[q], _mm256_add_epi8(lo, hi));
                }
            }
            let wide: [__m256i; 4] = std::array::from_fn(|q| _mm256_sad_epu8(bytes[q], zero));
            let t01 = _mm256_add_epi64(_mm256_unpacklo_epi64(wide[0], wide[1]), _mm256_unpackhi_epi64(wide[0], wide[1]));
            let t23 = _mm256_add_epi64(_mm256_unpacklo_epi64(wide[2], wide[3]), _mm256_unpackhi_epi64(wide[2], wide[3]));
            let sum = _mm256_add_epi64(_mm256_permute2x128_si256(t01, t23, 0x20), _mm256_permute2x128_si256(t01, t23, 0x31));
            let mut lanes = [0u64; 4];
            _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, sum);
            *o = [lanes[0] as u32, lanes[1] as u32, lanes[2] as u32, lanes[3] as u32];
        }
    }
}

#[allow(dead_code)]
pub fn split_only(a: &BitColumns, b: &BitColumns) -> u64 {
    use rayon::prelude::*;
    let w = b.n_words();
    let split: Vec<u64> = (0..b.n_cols()).flat_map(|j| {
        let c = b.column(j);
        (0..w/4).flat_map(move |s| {
            let lo: Vec<u64> = (0..4).map(|k| c[s*4+k] & 0x0f0f0f0f0f0f0f0f).collect();
            let hi: Vec<u64> = (0..4).map(|k| (c[s*4+k] >> 4) & 0x0f0f0f0f0f0f0f0f).collect();
            lo.into_iter().chain(hi)
        })
    }).collect();
    let t0 = std::time::Instant::now();
    let r: u64 = (0..b.n_cols() / 4)
        .into_par_iter()
        .map(|g| {
            let c: [&[u64]; 4] = std::array::from_fn(|q| &split[(4*g+q)*2*w..(4*g+q+1)*2*w]);
            let mut out = vec![[0u32; 4]; 512];
            let mut acc = 0u64;
            for i0 in (0..a.n_cols()).step_by(512) {
                let i1 = (i0 + 512).min(a.n_cols());
                unsafe { nib::avx2_split(a.columns(i0, i1), a.n_words(), c, &mut out[..i1 - i0]) };
                acc += out[0][0] as u64;
            }
            acc
        })
        .sum();
    println!("split kernel {:?}", t0.elapsed());
    r
}
