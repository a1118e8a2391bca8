//! Bindings of the run-scores engine (`memscore_core::runs`). Masks and bool outcomes cross
//! as packed rows (`np.packbits(m, axis=1)`: uint8 `(R, ceil(n / 8))`) plus their column
//! count; float outcomes as float64 `(R, n)`. Python (`memscore.runs.scores`) validates
//! shapes, dtypes and finiteness first.

use memscore_core::bits::{BitRows, DenseRows, PackedRows};
use memscore_core::error::{checked_size, try_filled};
use memscore_core::runs::{confidence, influence, lasso, lira, sums};
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::errors::{enter, enter_sized, IntoPyResult};

pub(crate) fn slice<'a, T: numpy::Element>(a: &'a PyReadonlyArray2<'_, T>, name: &str) -> PyResult<&'a [T]> {
    a.as_slice().map_err(|_| PyValueError::new_err(format!("{name} must be C-contiguous")))
}

pub(crate) fn slice1<'a, T: numpy::Element>(a: &'a PyReadonlyArray1<'_, T>, name: &str) -> PyResult<&'a [T]> {
    a.as_slice().map_err(|_| PyValueError::new_err(format!("{name} must be C-contiguous")))
}

pub(crate) fn dims(a: &PyReadonlyArray2<'_, impl numpy::Element>) -> (usize, usize) {
    let s = a.shape();
    (s[0], s[1])
}

/// A packed `(rows, n)` bit matrix from its uint8 `(rows, ceil(n / 8))` array.
fn packed<'a>(a: &'a PyReadonlyArray2<'_, u8>, n: usize, name: &str) -> PyResult<PackedRows<'a>> {
    let rows = dims(a).0;
    PackedRows::new(name, slice(a, name)?, rows, n).py()
}

fn matrix<'py, T: numpy::Element>(
    py: Python<'py>,
    v: Vec<T>,
    rows: usize,
    cols: usize,
) -> PyResult<Bound<'py, PyArray2<T>>> {
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

/// (n_in, n_out, sum_in, sum_out, sumsq_in, sumsq_out) of a bool outcome; masks and
/// outcomes are packed `(R, n)`.
#[pyfunction]
fn outcome_sums_bool<'py>(
    py: Python<'py>,
    masks: PyReadonlyArray2<'py, u8>,
    outcomes: PyReadonlyArray2<'py, u8>,
    n: usize,
) -> PyResult<SumsTuple<'py>> {
    let (m, o) = (packed(&masks, n, "masks")?, packed(&outcomes, n, "outcomes")?);
    let s = enter_sized(py, None, m.rows().saturating_mul(n), |_| sums::outcome_sums_bool(m, o))?;
    Ok(sums_tuple(py, s))
}

/// Same for a float64 or float32 outcome `(R, n)`, sums taken of `outcome - shift`.
#[pyfunction]
#[pyo3(signature = (masks, outcomes, n, shift=None))]
fn outcome_sums_f64<'py>(
    py: Python<'py>,
    masks: PyReadonlyArray2<'py, u8>,
    outcomes: &Bound<'py, PyAny>,
    n: usize,
    shift: Option<PyReadonlyArray1<'py, f64>>,
) -> PyResult<SumsTuple<'py>> {
    let m = packed(&masks, n, "masks")?;
    let sh = shift.as_ref().map(|s| slice1(s, "shift")).transpose()?;
    let s = if let Ok(o) = outcomes.extract::<PyReadonlyArray2<'py, f32>>() {
        let o = slice(&o, "outcomes")?;
        enter_sized(py, None, o.len(), |_| sums::outcome_sums_f64(m, o, sh))?
    } else {
        let o = outcomes.extract::<PyReadonlyArray2<'py, f64>>()?;
        let o = slice(&o, "outcomes")?;
        enter_sized(py, None, o.len(), |_| sums::outcome_sums_f64(m, o, sh))?
    };
    Ok(sums_tuple(py, s))
}

/// The same sums with the masks and outcomes as numpy holds them, nothing packed: `masks`
/// a `(R, n)` bool array or uint16 draw counts (nonzero = in), `outcomes` `(R, n)` bool, or
/// float64 with sums taken of `outcome - shift` (bool outcomes take no shift).
#[pyfunction]
#[pyo3(signature = (masks, outcomes, shift=None))]
fn outcome_sums_dense<'py>(
    py: Python<'py>,
    masks: &Bound<'py, PyAny>,
    outcomes: &Bound<'py, PyAny>,
    shift: Option<PyReadonlyArray1<'py, f64>>,
) -> PyResult<SumsTuple<'py>> {
    let sh = shift.as_ref().map(|s| slice1(s, "shift")).transpose()?;
    if let Ok(m) = masks.extract::<PyReadonlyArray2<'py, bool>>() {
        let (r, n) = dims(&m);
        dense_sums(py, &DenseRows::new("masks", slice(&m, "masks")?, r, n).py()?, outcomes, sh)
    } else if let Ok(m) = masks.extract::<PyReadonlyArray2<'py, u16>>() {
        let (r, n) = dims(&m);
        dense_sums(py, &DenseRows::new("masks", slice(&m, "masks")?, r, n).py()?, outcomes, sh)
    } else {
        Err(PyValueError::new_err("masks must be a 2-D bool or uint16 array"))
    }
}

fn dense_sums<'py, M: sums::ZeroOneRows>(
    py: Python<'py>,
    masks: &M,
    outcomes: &Bound<'py, PyAny>,
    shift: Option<&[f64]>,
) -> PyResult<SumsTuple<'py>> {
    let s = if let Ok(o) = outcomes.extract::<PyReadonlyArray2<'py, bool>>() {
        if shift.is_some() {
            return Err(PyValueError::new_err("shift: bool outcomes are summed unshifted"));
        }
        let (r, n) = dims(&o);
        let o = DenseRows::new("outcomes", slice(&o, "outcomes")?, r, n).py()?;
        enter_sized(py, None, r.saturating_mul(n), |_| sums::outcome_sums_zero_one(masks, &o))?
    } else if let Ok(o) = outcomes.extract::<PyReadonlyArray2<'py, f64>>() {
        let o = slice(&o, "outcomes")?;
        enter_sized(py, None, o.len(), |_| sums::outcome_sums_f64_rows(masks, o, shift))?
    } else {
        return Err(PyValueError::new_err("outcomes must be a 2-D bool or float64 array"));
    };
    Ok(sums_tuple(py, s))
}

/// (min, max, all finite) of a C-contiguous float64 array of any shape, on memscore's
/// threads (min and max skip NaN).
#[pyfunction]
fn value_range(py: Python<'_>, x: numpy::PyReadonlyArrayDyn<'_, f64>) -> PyResult<(f64, f64, bool)> {
    let v = x.as_slice().map_err(|_| PyValueError::new_err("x must be C-contiguous"))?;
    enter_sized(py, None, v.len(), |_| Ok(sums::value_range(v)))
}

/// `np.packbits(m, axis=1)` of a C-contiguous `(R, n)` bool matrix viewed as uint8 (nonzero
/// = set), on memscore's threads.
#[pyfunction]
fn pack_rows<'py>(py: Python<'py>, m: PyReadonlyArray2<'py, u8>) -> PyResult<Bound<'py, PyArray2<u8>>> {
    let (rows, cols) = dims(&m);
    let v = slice(&m, "masks")?;
    let out = enter_sized(py, None, v.len() / 8, |_| memscore_core::bits::pack_bytes(v, rows, cols))?;
    matrix(py, out, rows, cols.div_ceil(8))
}

/// Standard error of `mean_in - mean_out` per example from the sums of the two groups.
#[pyfunction]
fn stderr_from_sums<'py>(
    py: Python<'py>,
    sum_in: PyReadonlyArray1<'py, f64>,
    sumsq_in: PyReadonlyArray1<'py, f64>,
    n_in: PyReadonlyArray1<'py, f64>,
    sum_out: PyReadonlyArray1<'py, f64>,
    sumsq_out: PyReadonlyArray1<'py, f64>,
    n_out: PyReadonlyArray1<'py, f64>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let (a, b, c) = (slice1(&sum_in, "sum_in")?, slice1(&sumsq_in, "sumsq_in")?, slice1(&n_in, "n_in")?);
    let (d, e, f) = (slice1(&sum_out, "sum_out")?, slice1(&sumsq_out, "sumsq_out")?, slice1(&n_out, "n_out")?);
    let out = enter_sized(py, None, a.len(), |_| sums::stderr_from_sums(a, b, c, d, e, f))?;
    Ok(out.into_pyarray(py))
}

/// Test outcomes as they cross: packed bools (uint8) or float64.
enum Outcomes<'py> {
    Bool(PyReadonlyArray2<'py, u8>),
    Float(PyReadonlyArray2<'py, f64>),
}

/// The same, borrowed as slices (what the GIL-free work sees).
#[derive(Clone, Copy)]
enum OutSlice<'a> {
    Bool(PackedRows<'a>),
    Float(&'a [f64]),
}

fn outcomes_arg<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Outcomes<'py>> {
    if let Ok(a) = obj.extract::<PyReadonlyArray2<'py, u8>>() {
        return Ok(Outcomes::Bool(a));
    }
    obj.extract::<PyReadonlyArray2<'py, f64>>()
        .map(Outcomes::Float)
        .map_err(|_| PyValueError::new_err("outcomes must be a 2-D packed uint8 or float64 array"))
}

/// Slices of the outcomes with `n_test` columns, checked against it.
fn out_slice<'a>(o: &'a Outcomes<'_>, n_test: usize) -> PyResult<OutSlice<'a>> {
    match o {
        Outcomes::Bool(a) => Ok(OutSlice::Bool(packed(a, n_test, "outcomes")?)),
        Outcomes::Float(a) => {
            if dims(a).1 != n_test {
                return Err(PyValueError::new_err(format!("outcomes: expected {n_test} columns, got {}", dims(a).1)));
            }
            Ok(OutSlice::Float(slice(a, "outcomes")?))
        }
    }
}

fn full_into<'py, O: influence::OutFloat + numpy::Element + Default>(
    py: Python<'py>,
    masks: BitRows<'_>,
    outcomes: OutSlice<'_>,
    args: influence::InfluenceArgs,
    stderr: bool,
) -> PyResult<(Bound<'py, PyAny>, Option<Bound<'py, PyAny>>)> {
    let (t, n) = (args.n_test, args.n_train);
    // Allocated fallibly here (a MemoryError naming the size, never a null array).
    // In words of 64 run-pairs: the kernels take a run-pair at about the cost of a bit.
    let work = masks.rows().saturating_mul(n).saturating_mul(t.max(1)) / 64;
    let (out, se) = enter_sized(py, None, work, |cancel| {
        let size = checked_size("influence matrix", t, n)?;
        let mut out = try_filled("the influence matrix", size, O::default())?;
        let mut se = if stderr { Some(try_filled("the standard errors", size, O::default())?) } else { None };
        let args = influence::InfluenceArgs { cancel: Some(cancel), ..args };
        match outcomes {
            OutSlice::Bool(o) => influence::influence_bool(masks, o, args, &mut out, se.as_deref_mut())?,
            OutSlice::Float(o) => influence::influence_f64(masks, o, args, &mut out, se.as_deref_mut())?,
        }
        Ok((out, se))
    })?;
    let se = se.map(|s| matrix(py, s, t, n)).transpose()?;
    Ok((matrix(py, out, t, n)?.into_any(), se.map(|a| a.into_any())))
}

/// Full (T, N) influence matrix; returns (influence, stderr or None). `masks` are packed
/// `(R, n_train)`, or with `dense_masks` a bool `(R, n_train)` array viewed as uint8 (read
/// as it is: the transpose into run words packs it); `outcomes` packed `(R, n_test)` bools
/// or float64 `(R, n_test)`.
#[pyfunction]
#[pyo3(signature = (masks, outcomes, n_train, n_test, *, train_labels=None, test_labels=None, double=false, stderr=false, dense_masks=false))]
#[allow(clippy::too_many_arguments)]
fn influence_full<'py>(
    py: Python<'py>,
    masks: PyReadonlyArray2<'py, u8>,
    outcomes: &Bound<'py, PyAny>,
    n_train: usize,
    n_test: usize,
    train_labels: Option<PyReadonlyArray1<'py, i64>>,
    test_labels: Option<PyReadonlyArray1<'py, i64>>,
    double: bool,
    stderr: bool,
    dense_masks: bool,
) -> PyResult<(Bound<'py, PyAny>, Option<Bound<'py, PyAny>>)> {
    let m: BitRows<'_> = if dense_masks {
        DenseRows::new("masks", slice(&masks, "masks")?, dims(&masks).0, n_train).py()?.into()
    } else {
        packed(&masks, n_train, "masks")?.into()
    };
    let outcomes = outcomes_arg(outcomes)?;
    let o = out_slice(&outcomes, n_test)?;
    let a = train_labels.as_ref().map(|l| slice1(l, "train_labels")).transpose()?;
    let b = test_labels.as_ref().map(|l| slice1(l, "test_labels")).transpose()?;
    let args =
        influence::InfluenceArgs { runs: m.rows(), n_train, n_test, train_labels: a, test_labels: b, cancel: None };
    if double {
        full_into::<f64>(py, m, o, args, stderr)
    } else {
        full_into::<f32>(py, m, o, args, stderr)
    }
}

/// (indices, values) of a top-k.
type TopK<'py> = (Bound<'py, PyArray2<i64>>, Bound<'py, PyArray2<f64>>);

/// Streaming top-k influence; returns (indices (T, k') int64, values (T, k') float64) with
/// k' = min(k, max(n_train, 1)).
#[pyfunction]
#[pyo3(signature = (masks, outcomes, n_train, n_test, k, *, train_labels=None, test_labels=None))]
#[allow(clippy::too_many_arguments)]
fn influence_topk<'py>(
    py: Python<'py>,
    masks: PyReadonlyArray2<'py, u8>,
    outcomes: &Bound<'py, PyAny>,
    n_train: usize,
    n_test: usize,
    k: usize,
    train_labels: Option<PyReadonlyArray1<'py, i64>>,
    test_labels: Option<PyReadonlyArray1<'py, i64>>,
) -> PyResult<TopK<'py>> {
    let m = packed(&masks, n_train, "masks")?;
    let outcomes = outcomes_arg(outcomes)?;
    let o = out_slice(&outcomes, n_test)?;
    let a = train_labels.as_ref().map(|l| slice1(l, "train_labels")).transpose()?;
    let b = test_labels.as_ref().map(|l| slice1(l, "test_labels")).transpose()?;
    let args =
        influence::InfluenceArgs { runs: m.rows(), n_train, n_test, train_labels: a, test_labels: b, cancel: None };
    let (idx, val) = enter(py, None, |cancel| {
        let args = influence::InfluenceArgs { cancel: Some(cancel), ..args };
        match o {
            OutSlice::Bool(o) => influence::influence_topk_bool(m, o, args, k),
            OutSlice::Float(o) => influence::influence_topk_f64(m, o, args, k),
        }
    })?;
    let kk = influence::clamp_k(k, n_train);
    Ok((matrix(py, idx, n_test, kk)?, matrix(py, val, n_test, kk)?))
}

/// (R, n) LiRA membership scores with exact leave-one-out shadows; masks packed `(R, n)`.
#[pyfunction]
#[pyo3(signature = (masks, phi, n, *, online=true, fixed_variance=false))]
fn lira_scores<'py>(
    py: Python<'py>,
    masks: PyReadonlyArray2<'py, u8>,
    phi: PyReadonlyArray2<'py, f64>,
    n: usize,
    online: bool,
    fixed_variance: bool,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let (m, p) = (packed(&masks, n, "masks")?, slice(&phi, "phi")?);
    let mode = if online { lira::LiraMode::Online } else { lira::LiraMode::Offline };
    let out = enter(py, None, |cancel| lira::lira(m, p, mode, fixed_variance, cancel))?;
    matrix(py, out, m.rows(), n)
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
        enter_sized(py, None, zs.len(), |_| confidence::logit_confidence(zs, y, rows, c))?
    } else if let Ok(z) = logits.extract::<PyReadonlyArray2<'py, f64>>() {
        let (rows, c) = dims(&z);
        let zs = slice(&z, "logits")?;
        enter_sized(py, None, zs.len(), |_| confidence::logit_confidence(zs, y, rows, c))?
    } else {
        return Err(PyValueError::new_err("logits must be a 2-D float32 or float64 array"));
    };
    Ok(out.into_pyarray(py))
}

/// (weights (T, n) float32, bias, lam, lam_max, val_mse (T,) float64, sweeps, converged
/// (T, n_lambdas) bool, steps (T,) uint64) of datamodels
/// fitted on packed `(R, n)` masks and float64 `(R, T)` outcomes; `lam` fixes λ per target,
/// else `val_masks` / `val_outcomes` choose it on the path. `rows` picks the fitting runs
/// among the rows of `masks` and `val_rows` the held-out ones among those of `val_masks`
/// (or, without it, of `masks`): a split without copying the masks.
#[pyfunction]
#[pyo3(signature = (masks, outcomes, n, *, lam=None, val_masks=None, val_outcomes=None, rows=None, val_rows=None, n_lambdas=100, lambda_ratio=1e-3, tol=1e-4, max_iter=1000, patience=0))]
#[allow(clippy::too_many_arguments)]
fn datamodels_fit<'py>(
    py: Python<'py>,
    masks: PyReadonlyArray2<'py, u8>,
    outcomes: PyReadonlyArray2<'py, f64>,
    n: usize,
    lam: Option<PyReadonlyArray1<'py, f64>>,
    val_masks: Option<PyReadonlyArray2<'py, u8>>,
    val_outcomes: Option<PyReadonlyArray2<'py, f64>>,
    rows: Option<PyReadonlyArray1<'py, i64>>,
    val_rows: Option<PyReadonlyArray1<'py, i64>>,
    n_lambdas: usize,
    lambda_ratio: f64,
    tol: f64,
    max_iter: usize,
    patience: usize,
) -> PyResult<DatamodelsTuple<'py>> {
    let all = packed(&masks, n, "masks")?;
    let fit_rows = rows.as_ref().map(|r| indices(r, "rows")).transpose()?;
    let held_rows = val_rows.as_ref().map(|r| indices(r, "val_rows")).transpose()?;
    let m = lasso::RunMasks { packed: all, rows: fit_rows.as_deref() };
    let (r, t) = dims(&outcomes);
    if r != m.len() {
        return Err(PyValueError::new_err(format!("outcomes: expected {} rows (one per run), got {r}", m.len())));
    }
    let y = slice(&outcomes, "outcomes")?;
    let l = lam.as_ref().map(|l| slice1(l, "lam")).transpose()?;
    let val = match (&val_masks, &val_outcomes) {
        (Some(vm), Some(vo)) => Some(lasso::Validation {
            masks: lasso::RunMasks { packed: packed(vm, n, "val_masks")?, rows: held_rows.as_deref() },
            outcomes: slice(vo, "val_outcomes")?,
        }),
        (None, Some(vo)) if held_rows.is_some() => {
            let masks = lasso::RunMasks { packed: all, rows: held_rows.as_deref() };
            Some(lasso::Validation { masks, outcomes: slice(vo, "val_outcomes")? })
        }
        (None, None) => None,
        _ => return Err(PyValueError::new_err("val_outcomes go with val_masks or val_rows")),
    };
    let args = lasso::LassoArgs { n_lambdas, lambda_ratio, tol, max_iter, patience, ..Default::default() };
    let fit = enter(py, None, |cancel| lasso::datamodels(m, y, t, val, l, args, Some(cancel)))?;
    Ok((
        matrix(py, fit.weights, t, n)?,
        fit.bias.into_pyarray(py),
        fit.lam.into_pyarray(py),
        fit.lam_max.into_pyarray(py),
        fit.val_mse.into_pyarray(py),
        fit.sweeps,
        matrix(py, fit.converged, t, n_lambdas)?,
        fit.steps.into_iter().map(|s| s as u64).collect::<Vec<_>>().into_pyarray(py),
    ))
}

/// Non-negative row indices as `usize` (range-checked against the masks by the fit).
fn indices(a: &PyReadonlyArray1<'_, i64>, what: &str) -> PyResult<Vec<usize>> {
    a.as_array()
        .iter()
        .map(|&i| {
            usize::try_from(i).map_err(|_| PyValueError::new_err(format!("{what}: expected row indices >= 0, got {i}")))
        })
        .collect()
}

type DatamodelsTuple<'py> = (
    Bound<'py, PyArray2<f32>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
    u64,
    Bound<'py, PyArray2<bool>>,
    Bound<'py, PyArray1<u64>>,
);

/// CRC-32 (zip's, as `zlib.crc32`) of a 1-D uint8 array, without the GIL: the run store
/// checks every member it reads, and zlib's 7 GB/s was a tenth of `RunStore.scores()`.
#[pyfunction]
fn crc32<'py>(py: Python<'py>, data: PyReadonlyArray1<'py, u8>) -> PyResult<u32> {
    let bytes = slice1(&data, "data")?;
    Ok(py.detach(|| crc32fast::hash(bytes)))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(crc32, m)?)?;
    m.add_function(wrap_pyfunction!(outcome_sums_bool, m)?)?;
    m.add_function(wrap_pyfunction!(outcome_sums_f64, m)?)?;
    m.add_function(wrap_pyfunction!(outcome_sums_dense, m)?)?;
    m.add_function(wrap_pyfunction!(value_range, m)?)?;
    m.add_function(wrap_pyfunction!(pack_rows, m)?)?;
    m.add_function(wrap_pyfunction!(stderr_from_sums, m)?)?;
    m.add_function(wrap_pyfunction!(influence_full, m)?)?;
    m.add_function(wrap_pyfunction!(influence_topk, m)?)?;
    m.add_function(wrap_pyfunction!(lira_scores, m)?)?;
    m.add_function(wrap_pyfunction!(logit_confidence, m)?)?;
    m.add_function(wrap_pyfunction!(rmia_scores, m)?)?;
    m.add_function(wrap_pyfunction!(datamodels_fit, m)?)?;
    Ok(())
}

/// (R, n) RMIA membership scores with exact leave-one-out references; masks packed `(R, n)`,
/// `probs` `(R, n)` and `population` `(R, Z)` probabilities of the true label.
#[pyfunction]
#[pyo3(signature = (masks, probs, population, n, *, online=true, gamma=1.0, offline_a=0.3))]
#[allow(clippy::too_many_arguments)]
fn rmia_scores<'py>(
    py: Python<'py>,
    masks: PyReadonlyArray2<'py, u8>,
    probs: PyReadonlyArray2<'py, f64>,
    population: PyReadonlyArray2<'py, f64>,
    n: usize,
    online: bool,
    gamma: f64,
    offline_a: f64,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let (m, p) = (packed(&masks, n, "masks")?, slice(&probs, "probs")?);
    let (z, n_pop) = (slice(&population, "population")?, dims(&population).1);
    let params = memscore_core::runs::rmia::RmiaParams { online, gamma, offline_a };
    let out = enter(py, None, |cancel| memscore_core::runs::rmia::rmia(m, p, z, n_pop, params, cancel))?;
    matrix(py, out, m.rows(), n)
}
