//! PyO3 glue for memscore-core, one file per engine (`runs`, `knn`, `ngram`, `sa`: the corpus index) plus `errors`
//! (the one error conversion and the one `enter` helper: GIL released, memscore's pool,
//! Ctrl-C, error mapping). No algorithms and no orchestration live here: the binding turns
//! numpy arrays into slices and calls one core function.
//!
//! This file registers the module, plus the three module-level settings functions (thread
//! count and CPU features), each a one-line call into the core.

mod errors;
mod knn;
mod ngram;
mod runs;
mod sa;

use pyo3::prelude::*;

use errors::IntoPyResult;

/// Set the number of threads memscore's kernels use (`1 <= n <= 4 x available CPUs`).
#[pyfunction]
fn set_num_threads(n: usize) -> PyResult<()> {
    memscore_core::pool::set_num_threads(n).py()
}

/// Number of threads memscore's kernels use.
#[pyfunction]
fn get_num_threads() -> PyResult<usize> {
    memscore_core::pool::get_num_threads().py()
}

/// SIMD features detected at run time, the popcount kernel chosen and the vector level of
/// the float row kernels (the datamodels solver).
#[pyfunction]
fn cpu_info() -> (Vec<&'static str>, String, String) {
    use memscore_core::cpu;
    (cpu::detected_features(), format!("{:?}", cpu::popcount_level()), format!("{:?}", cpu::vector_level()))
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(cpu_info, m)?)?;
    runs::register(m)?;
    knn::register(m)?;
    ngram::register(m)?;
    sa::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
