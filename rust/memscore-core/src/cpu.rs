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

/// Instruction-set level used by the floating-point row kernels (the datamodels solver):
/// plain loops over `[f32; 32]` rows, compiled once per level so that the compiler
/// vectorizes them with that level's registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VectorLevel {
    /// AVX-512F: a 32-float row is two registers.
    Avx512,
    /// AVX2: four registers.
    Avx2,
    /// Portable code (SSE2 on x86-64: eight).
    Portable,
}

/// The vector level the float row kernels use: the best this machine supports, or a lower
/// one named by the environment variable `MEMSCORE_VECTOR_LEVEL` (`avx512`, `avx2` or
/// `portable`; for benchmarks and checks of each path). A level above the machine's, or
/// an unknown name, gives the machine's best: never an instruction the CPU lacks.
pub fn vector_level() -> VectorLevel {
    let best = best_vector_level();
    let asked = match std::env::var("MEMSCORE_VECTOR_LEVEL").as_deref() {
        Ok("portable") => VectorLevel::Portable,
        Ok("avx2") => VectorLevel::Avx2,
        _ => return best,
    };
    if vector_levels().contains(&asked) {
        asked
    } else {
        best
    }
}

fn best_vector_level() -> VectorLevel {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return VectorLevel::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return VectorLevel::Avx2;
        }
    }
    VectorLevel::Portable
}

/// Every vector level this machine can run, best first (tests run each).
pub fn vector_levels() -> Vec<VectorLevel> {
    let all = [VectorLevel::Avx512, VectorLevel::Avx2, VectorLevel::Portable];
    let best = all.iter().position(|&l| l == best_vector_level()).unwrap_or(2);
    all[best..].to_vec()
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
