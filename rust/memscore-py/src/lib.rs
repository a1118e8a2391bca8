//! PyO3 glue for memscore-core: numpy views in, numpy arrays out, the GIL released
//! while the core works on memscore's own rayon pool. No algorithms live here.
//!
//! Python (`memscore.scores`) validates dtypes, shapes and finiteness and passes
//! C-contiguous arrays; this layer still maps every core error to `ValueError`.

mod ngram;

use std::sync::{Arc, Mutex};

mod knn;

use memscore_core::runs::{confidence, influence, lira, sums};
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

// ------------------------------------------------------------------ thread pool

struct Pool {
    pid: u32,
    threads: usize,
    pool: Arc<rayon::ThreadPool>,
}

static POOL: Mutex<Option<Pool>> = Mutex::new(None);

fn default_threads() -> usize {
    std::env::var("MEMSCORE_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn build(threads: usize) -> PyResult<Pool> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("memscore-{i}"))
        .build()
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start {threads} threads: {e}")))?;
    Ok(Pool { pid: std::process::id(), threads, pool: Arc::new(pool) })
}

/// memscore's pool. A forked child (torch DataLoader workers fork) inherits the
/// parent's pool object but none of its threads, so a pid change rebuilds it.
pub(crate) fn pool() -> PyResult<Arc<rayon::ThreadPool>> {
    let mut guard = POOL.lock().unwrap_or_else(|e| e.into_inner());
    let stale = guard.as_ref().is_none_or(|p| p.pid != std::process::id());
    if stale {
        let threads = guard.as_ref().map_or_else(default_threads, |p| p.threads);
        *guard = Some(build(threads)?);
    }
    Ok(guard.as_ref().map(|p| p.pool.clone()).expect("pool was just built"))
}

/// Set the number of threads memscore's kernels use (`n >= 1`).
#[pyfunction]
fn set_num_threads(n: usize) -> PyResult<()> {
    if n == 0 {
        return Err(PyValueError::new_err("set_num_threads: expected n >= 1, got 0"));
    }
    let mut guard = POOL.lock().unwrap_or_else(|e| e.into_inner());
    *guard = Some(build(n)?);
    Ok(())
}

/// Number of threads memscore's kernels use.
#[pyfunction]
fn get_num_threads() -> PyResult<usize> {
    Ok(pool()?.current_num_threads())
}

/// Run `f` on memscore's pool with the GIL released.
pub(crate) fn run<T: Send>(py: Python<'_>, f: impl FnOnce() -> memscore_core::Result<T> + Send) -> PyResult<T> {
    let pool = pool()?;
    py.detach(|| pool.install(f)).map_err(|e| PyValueError::new_err(e.to_string()))
}

// ------------------------------------------------------------------ helpers

fn slice<'a, T: numpy::Element>(a: &'a PyReadonlyArray2<'_, T>, name: &str) -> PyResult<&'a [T]> {
    a.as_slice().map_err(|_| PyValueError::new_err(format!("{name} must be C-contiguous")))
}

fn slice1<'a, T: numpy::Element>(a: &'a PyReadonlyArray1<'_, T>, name: &str) -> PyResult<&'a [T]> {
    a.as_slice().map_err(|_| PyValueError::new_err(format!("{name} must be C-contiguous")))
}

fn dims(a: &PyReadonlyArray2<'_, impl numpy::Element>) -> (usize, usize) {
    let s = a.shape();
    (s[0], s[1])
}

fn matrix<'py>(py: Python<'py>, v: Vec<f64>, rows: usize, cols: usize) -> PyResult<Bound<'py, PyArray2<f64>>> {
    v.into_pyarray(py).reshape([rows, cols])
}

type SumsTuple<'py> = (
    Bound<'py, PyArray1<u64>>,
    Bound<'py, PyArray1<u64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
);

fn sums_tuple(py: Python<'_>, s: sums::OutcomeSums) -> SumsTuple<'_> {
    (
        s.n_in.into_pyarray(py),
        s.n_out.into_pyarray(py),
        s.sum_in.into_pyarray(py),
        s.sum_out.into_pyarray(py),
        s.sumsq_in.into_pyarray(py),
        s.sumsq_out.into_pyarray(py),
    )
}

// ------------------------------------------------------------------ sums

/// (n_in, n_out, sum_in, sum_out, sumsq_in, sumsq_out) of a bool outcome.
#[pyfunction]
fn outcome_sums_bool<'py>(
    py: Python<'py>,
    masks: PyReadonlyArray2<'py, bool>,
    outcomes: PyReadonlyArray2<'py, bool>,
) -> PyResult<SumsTuple<'py>> {
    let (r, n) = dims(&masks);
    let (m, o) = (slice(&masks, "masks")?, slice(&outcomes, "outcomes")?);
    let s = run(py, || sums::outcome_sums_bool(m, o, r, n))?;
    Ok(sums_tuple(py, s))
}

/// Same for a float64 outcome, sums taken of `outcome - shift`.
#[pyfunction]
#[pyo3(signature = (masks, outcomes, shift=None))]
fn outcome_sums_f64<'py>(
    py: Python<'py>,
    masks: PyReadonlyArray2<'py, bool>,
    outcomes: PyReadonlyArray2<'py, f64>,
    shift: Option<PyReadonlyArray1<'py, f64>>,
) -> PyResult<SumsTuple<'py>> {
    let (r, n) = dims(&masks);
    let (m, o) = (slice(&masks, "masks")?, slice(&outcomes, "outcomes")?);
    let sh = shift.as_ref().map(|s| slice1(s, "shift")).transpose()?;
    let s = run(py, || sums::outcome_sums_f64(m, o, sh, r, n))?;
    Ok(sums_tuple(py, s))
}

// ------------------------------------------------------------------ influence

enum Outcomes<'py> {
    Bool(PyReadonlyArray2<'py, bool>),
    Float(PyReadonlyArray2<'py, f64>),
}

fn outcomes_arg<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Outcomes<'py>> {
    if let Ok(a) = obj.extract::<PyReadonlyArray2<'py, bool>>() {
        return Ok(Outcomes::Bool(a));
    }
    obj.extract::<PyReadonlyArray2<'py, f64>>()
        .map(Outcomes::Float)
        .map_err(|_| PyValueError::new_err("outcomes must be a 2-D bool or float64 array"))
}

fn full_into<'py, O: influence::OutFloat + numpy::Element>(
    py: Python<'py>,
    masks: &[bool],
    outcomes: &Outcomes<'py>,
    args: influence::InfluenceArgs,
    stderr: bool,
) -> PyResult<(Bound<'py, PyAny>, Option<Bound<'py, PyAny>>)> {
    let (t, n) = (args.n_test, args.n_train);
    let out = PyArray2::<O>::zeros(py, [t, n], false);
    let se = stderr.then(|| PyArray2::<O>::zeros(py, [t, n], false));
    // SAFETY: both arrays were just created here and are not shared with Python yet.
    let out_s = unsafe { out.as_slice_mut()? };
    let se_s = match &se {
        Some(a) => Some(unsafe { a.as_slice_mut()? }),
        None => None,
    };
    match outcomes {
        Outcomes::Bool(o) => {
            let o = slice(o, "outcomes")?;
            run(py, || influence::influence_bool(masks, o, args, out_s, se_s))?
        }
        Outcomes::Float(o) => {
            let o = slice(o, "outcomes")?;
            run(py, || influence::influence_f64(masks, o, args, out_s, se_s))?
        }
    }
    Ok((out.into_any(), se.map(|a| a.into_any())))
}

/// Full (T, N) influence matrix; returns (influence, stderr or None).
#[pyfunction]
#[pyo3(signature = (masks, outcomes, *, train_labels=None, test_labels=None, double=false, stderr=false))]
fn influence_full<'py>(
    py: Python<'py>,
    masks: PyReadonlyArray2<'py, bool>,
    outcomes: &Bound<'py, PyAny>,
    train_labels: Option<PyReadonlyArray1<'py, i64>>,
    test_labels: Option<PyReadonlyArray1<'py, i64>>,
    double: bool,
    stderr: bool,
) -> PyResult<(Bound<'py, PyAny>, Option<Bound<'py, PyAny>>)> {
    let (r, n) = dims(&masks);
    let outcomes = outcomes_arg(outcomes)?;
    let t = match &outcomes {
        Outcomes::Bool(o) => dims(o).1,
        Outcomes::Float(o) => dims(o).1,
    };
    let a = train_labels.as_ref().map(|l| slice1(l, "train_labels")).transpose()?;
    let b = test_labels.as_ref().map(|l| slice1(l, "test_labels")).transpose()?;
    let args = influence::InfluenceArgs { runs: r, n_train: n, n_test: t, train_labels: a, test_labels: b };
    let m = slice(&masks, "masks")?;
    if double {
        full_into::<f64>(py, m, &outcomes, args, stderr)
    } else {
        full_into::<f32>(py, m, &outcomes, args, stderr)
    }
}

/// Streaming top-k influence; returns (indices (T, k) int64, values (T, k) float64).
#[pyfunction]
#[pyo3(signature = (masks, outcomes, k, *, train_labels=None, test_labels=None))]
fn influence_topk<'py>(
    py: Python<'py>,
    masks: PyReadonlyArray2<'py, bool>,
    outcomes: &Bound<'py, PyAny>,
    k: usize,
    train_labels: Option<PyReadonlyArray1<'py, i64>>,
    test_labels: Option<PyReadonlyArray1<'py, i64>>,
) -> PyResult<(Bound<'py, PyArray2<i64>>, Bound<'py, PyArray2<f64>>)> {
    let (r, n) = dims(&masks);
    let outcomes = outcomes_arg(outcomes)?;
    let m = slice(&masks, "masks")?;
    let a = train_labels.as_ref().map(|l| slice1(l, "train_labels")).transpose()?;
    let b = test_labels.as_ref().map(|l| slice1(l, "test_labels")).transpose()?;
    let (t, (idx, val)) = match &outcomes {
        Outcomes::Bool(o) => {
            let t = dims(o).1;
            let args = influence::InfluenceArgs { runs: r, n_train: n, n_test: t, train_labels: a, test_labels: b };
            let o = slice(o, "outcomes")?;
            (t, run(py, || influence::influence_topk_bool(m, o, args, k))?)
        }
        Outcomes::Float(o) => {
            let t = dims(o).1;
            let args = influence::InfluenceArgs { runs: r, n_train: n, n_test: t, train_labels: a, test_labels: b };
            let o = slice(o, "outcomes")?;
            (t, run(py, || influence::influence_topk_f64(m, o, args, k))?)
        }
    };
    Ok((idx.into_pyarray(py).reshape([t, k])?, matrix(py, val, t, k)?))
}

// ------------------------------------------------------------------ LiRA, confidence

/// (R, N) LiRA membership scores with exact leave-one-out shadows.
#[pyfunction]
#[pyo3(signature = (masks, phi, *, online=true, fixed_variance=false))]
fn lira_scores<'py>(
    py: Python<'py>,
    masks: PyReadonlyArray2<'py, bool>,
    phi: PyReadonlyArray2<'py, f64>,
    online: bool,
    fixed_variance: bool,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let (r, n) = dims(&masks);
    let (m, p) = (slice(&masks, "masks")?, slice(&phi, "phi")?);
    let mode = if online { lira::LiraMode::Online } else { lira::LiraMode::Offline };
    let out = run(py, || lira::lira(m, p, r, n, mode, fixed_variance))?;
    matrix(py, out, r, n)
}

/// phi = z_y - logsumexp_{y' != y} z_{y'} for (M, C) float32/float64 logits.
#[pyfunction]
fn logit_confidence<'py>(
    py: Python<'py>,
    logits: &Bound<'py, PyAny>,
    labels: PyReadonlyArray1<'py, i64>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let y = slice1(&labels, "labels")?;
    let out = if let Ok(z) = logits.extract::<PyReadonlyArray2<'py, f32>>() {
        let (rows, c) = dims(&z);
        let zs = slice(&z, "logits")?;
        run(py, || confidence::logit_confidence(zs, y, rows, c))?
    } else if let Ok(z) = logits.extract::<PyReadonlyArray2<'py, f64>>() {
        let (rows, c) = dims(&z);
        let zs = slice(&z, "logits")?;
        run(py, || confidence::logit_confidence(zs, y, rows, c))?
    } else {
        return Err(PyValueError::new_err("logits must be a 2-D float32 or float64 array"));
    };
    Ok(out.into_pyarray(py))
}

/// SIMD features detected at run time, and the popcount kernel chosen.
#[pyfunction]
fn cpu_info() -> (Vec<&'static str>, String) {
    (memscore_core::cpu::detected_features(), format!("{:?}", memscore_core::cpu::popcount_level()))
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(outcome_sums_bool, m)?)?;
    m.add_function(wrap_pyfunction!(outcome_sums_f64, m)?)?;
    m.add_function(wrap_pyfunction!(influence_full, m)?)?;
    m.add_function(wrap_pyfunction!(influence_topk, m)?)?;
    m.add_function(wrap_pyfunction!(lira_scores, m)?)?;
    m.add_function(wrap_pyfunction!(logit_confidence, m)?)?;
    m.add_function(wrap_pyfunction!(cpu_info, m)?)?;
    knn::register(m)?;
    ngram::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
