//! Run-time CPU feature detection: kernels are compiled for several instruction sets
//! and the best one the running machine supports is chosen on each call.

/// Instruction-set level used by the popcount kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PopcountLevel {
    /// AVX-512F + VPOPCNTDQ: 512-bit vector popcount.
    Avx512Vpopcnt,
    /// AVX2: 256-bit nibble-lookup popcount.
    Avx2,
    /// Portable code (scalar POPCNT where the compiler targets it).
    Portable,
}

/// The best popcount level this machine supports.
pub fn popcount_level() -> PopcountLevel {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vpopcntdq")
            && std::arch::is_x86_feature_detected!("avx512bw")
        {
            return PopcountLevel::Avx512Vpopcnt;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("popcnt") {
            return PopcountLevel::Avx2;
        }
    }
    PopcountLevel::Portable
}

/// Names of the SIMD features detected at run time (for diagnostics).
pub fn detected_features() -> Vec<&'static str> {
    #[allow(unused_mut)]
    let mut out = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! probe {
            ($($f:tt),*) => {$(
                if std::arch::is_x86_feature_detected!($f) { out.push($f); }
            )*};
        }
        probe!("popcnt", "avx2", "fma", "avx512f", "avx512bw", "avx512vpopcntdq");
    }
    out
}
