//! The search's float32 matrix product, `dst = beta · A · Bᵀ`, at a chosen vector level.
//!
//! The `gemm` crate's float32 micro-kernels (AVX-512, AVX2 + FMA, scalar) and its blocked
//! driver are called directly rather than through `gemm::gemm`, which always takes the
//! best kernel of the machine: here the level follows [`crate::cpu::vector_level`], so a
//! lower one can be forced (`MEMSCORE_VECTOR_LEVEL`) for benchmarks and tests.

use gemm_common::gemm::gemm_basic_generic;
use gemm_common::simd::MixedSimd;
use gemm_common::Parallelism;

use crate::cpu::VectorLevel;
use crate::error::{ensure, Result};

/// Run the crate's blocked driver with the micro-kernels of module `$ukr` (`$n` floats per
/// register) and SIMD token `$simd`; false when the machine lacks the instruction set.
macro_rules! run_with {
    ($simd:ty, $ukr:path, $n:expr, $args:expr) => {{
        use $ukr as u;
        let (m, n, k, dst, a, lda, b, beta) = $args;
        match <$simd as MixedSimd<f32, f32, f32, f32>>::try_new() {
            // SAFETY: the caller (`scores`) checked the extents of the three buffers for
            // these strides; dst does not overlap the inputs (a `&mut` borrow).
            Some(simd) => unsafe {
                gemm_basic_generic::<
                    _,
                    f32,
                    $n,
                    { u::MR_DIV_N * $n },
                    { u::NR },
                    { u::MR_DIV_N },
                    { u::H_M },
                    { u::H_N },
                >(
                    simd,
                    m,
                    n,
                    k,
                    dst,
                    m as isize,
                    1,
                    false,
                    a,
                    lda as isize,
                    1,
                    b,
                    k as isize,
                    1,
                    0.0,
                    beta,
                    false,
                    false,
                    false,
                    |x: f32, y: f32, z: f32| x * y + z,
                    &u::UKR,
                    &u::H_UKR,
                    false,
                    Parallelism::None,
                );
                true
            },
            None => false,
        }
    }};
}

/// Rows of the micro-kernel of `level` (queries per register block): 64 with AVX-512,
/// 16 with AVX2. The driver reads the keys in place, without copying them into panels,
/// for up to two such blocks of queries.
pub(super) fn kernel_rows(level: VectorLevel) -> usize {
    match level {
        #[cfg(target_arch = "x86_64")]
        VectorLevel::Avx512 => gemm_f32::microkernel::avx512f::f32::MR_DIV_N * 16,
        #[cfg(target_arch = "x86_64")]
        VectorLevel::Avx2 => gemm_f32::microkernel::fma::f32::MR_DIV_N * 8,
        _ => gemm_f32::microkernel::scalar::f32::MR_DIV_N,
    }
}

/// `dst[j·m + i] = beta · Σ_p a[p·lda + i] · b[j·k + p]` for `i < m`, `j < n`: the scores
/// of `m` queries, stored transposed in `a` (query `i`'s coordinate `p` at `p·lda + i`),
/// against `n` row-major keys `b`, written key by key (the `m` scores of key `j` side by
/// side). Both operands are in the layouts the `gemm` driver reads without reshuffling
/// (the keys in place when `m <= 2 · kernel_rows(level)`), and its stores stay contiguous.
#[allow(clippy::too_many_arguments)]
pub(super) fn scores(
    level: VectorLevel,
    a: &[f32],
    lda: usize,
    m: usize,
    b: &[f32],
    n: usize,
    k: usize,
    beta: f32,
    dst: &mut [f32],
) -> Result<()> {
    if m == 0 || n == 0 || k == 0 {
        dst.iter_mut().take(m * n).for_each(|v| *v = 0.0);
        return Ok(());
    }
    let a_len = (k - 1).checked_mul(lda).and_then(|v| v.checked_add(m));
    ensure!(
        lda >= m
            && a_len.is_some_and(|v| v <= a.len())
            && n.checked_mul(k).is_some_and(|v| v <= b.len())
            && m.checked_mul(n).is_some_and(|v| v <= dst.len()),
        "internal: matrix product extents"
    );
    let args = (m, n, k, dst.as_mut_ptr(), a.as_ptr(), lda, b.as_ptr(), beta);
    // One query is a matrix-vector product, bound by reading the keys: the driver's
    // AVX-512 version of it measured twice as slow as its AVX2 one, so that one runs.
    #[cfg(target_arch = "x86_64")]
    let level = if m == 1 && level == VectorLevel::Avx512 { VectorLevel::Avx2 } else { level };
    let done = match level {
        #[cfg(target_arch = "x86_64")]
        VectorLevel::Avx512 => {
            run_with!(gemm_common::simd::V4, gemm_f32::microkernel::avx512f::f32, 16, args)
        }
        #[cfg(target_arch = "x86_64")]
        VectorLevel::Avx2 => run_with!(gemm_common::simd::V3, gemm_f32::microkernel::fma::f32, 8, args),
        _ => false,
    };
    if !done {
        run_with!(gemm_common::simd::Scalar, gemm_f32::microkernel::scalar::f32, 1, args);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_level_computes_the_product() {
        let (m, n, k, lda) = (37, 11, 29, 41);
        let a: Vec<f32> = (0..k * lda).map(|v| ((v * 7) % 13) as f32 - 6.0).collect();
        let b: Vec<f32> = (0..n * k).map(|v| ((v * 5) % 11) as f32 - 5.0).collect();
        for level in crate::cpu::vector_levels() {
            assert!(kernel_rows(level) >= 1);
            for rows in [1, 16, m] {
                let mut dst = vec![f32::NAN; rows * n];
                scores(level, &a, lda, rows, &b, n, k, -2.0, &mut dst).unwrap();
                for j in 0..n {
                    for i in 0..rows {
                        // Small integers: every sum is exact in float32, in any order.
                        let want: f32 = -2.0 * (0..k).map(|p| a[p * lda + i] * b[j * k + p]).sum::<f32>();
                        assert_eq!(dst[j * rows + i], want, "{level:?} rows={rows} ({i}, {j})");
                    }
                }
            }
        }
        let mut small = vec![0.0f32; 3];
        assert!(scores(VectorLevel::Portable, &a, lda, m, &b, n, k, 1.0, &mut small).is_err());
        assert!(scores(VectorLevel::Portable, &a, 3, m, &b, n, k, 1.0, &mut small).is_err());
    }
}
