//! Bindings of the exact kNN engine (`memscore_core::knn`): an index class over float32
//! or float16 keys and its search, run through [`enter`] (GIL released, memscore's pool or
//! a temporary pool of `threads`, Ctrl-C cancels).

use memscore_core::knn::{Blocking, KnnIndex, Metric};
use numpy::{IntoPyArray, PyArray2, PyArrayMethods, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::errors::{enter, IntoPyResult};

fn contiguous<'a, T: numpy::Element>(a: &'a PyReadonlyArray2<'_, T>, name: &str) -> PyResult<&'a [T]> {
    a.as_slice().map_err(|_| PyValueError::new_err(format!("{name} must be C-contiguous")))
}

/// (distances, indices) of a search.
type Found<'py> = (Bound<'py, PyArray2<f32>>, Bound<'py, PyArray2<i64>>);

/// Exact brute-force kNN index (float32 keys, or float16 keys passed as uint16 bits).
#[pyclass(name = "KnnIndexCore", module = "memscore._core", frozen)]
pub struct PyKnnIndex {
    inner: KnnIndex<'static>,
}

#[pymethods]
impl PyKnnIndex {
    #[new]
    #[pyo3(signature = (keys, metric="l2", *, f16_bits=false, threads=None, query_tile=None, key_block=None))]
    fn new(
        py: Python<'_>,
        keys: &Bound<'_, PyAny>,
        metric: &str,
        f16_bits: bool,
        threads: Option<usize>,
        query_tile: Option<usize>,
        key_block: Option<usize>,
    ) -> PyResult<Self> {
        let m = Metric::parse(metric).py()?;
        let mut inner = if f16_bits {
            let a: PyReadonlyArray2<'_, u16> = keys
                .extract()
                .map_err(|_| PyValueError::new_err("keys: expected a 2-D uint16 array of float16 bits"))?;
            let (n, d) = (a.shape()[0], a.shape()[1]);
            let s = contiguous(&a, "keys")?;
            enter(py, threads, |_| KnnIndex::new_f16(s, n, d, m))?
        } else {
            let a: PyReadonlyArray2<'_, f32> =
                keys.extract().map_err(|_| PyValueError::new_err("keys: expected a 2-D float32 array"))?;
            let (n, d) = (a.shape()[0], a.shape()[1]);
            let s = contiguous(&a, "keys")?;
            enter(py, threads, |_| KnnIndex::new(s, n, d, m))?
        };
        let def = Blocking::default();
        let blocking = Blocking {
            query_tile: query_tile.unwrap_or(def.query_tile),
            key_block: key_block.unwrap_or(def.key_block),
        };
        inner.set_blocking(blocking).py()?;
        Ok(PyKnnIndex { inner })
    }

    /// (distances (Q, k) float32, indices (Q, k) int64), nearest first.
    #[pyo3(signature = (queries, k, *, threads=None))]
    fn search<'py>(
        &self,
        py: Python<'py>,
        queries: PyReadonlyArray2<'py, f32>,
        k: usize,
        threads: Option<usize>,
    ) -> PyResult<Found<'py>> {
        let q = queries.shape()[0];
        if queries.shape()[1] != self.inner.dim() {
            return Err(PyValueError::new_err(format!(
                "queries: expected dimension {}, got {}",
                self.inner.dim(),
                queries.shape()[1]
            )));
        }
        let s = contiguous(&queries, "queries")?;
        let inner = &self.inner;
        let r = enter(py, threads, |cancel| inner.search_with(s, q, k, cancel))?;
        Ok((r.distances.into_pyarray(py).reshape([q, k])?, r.indices.into_pyarray(py).reshape([q, k])?))
    }

    #[getter]
    fn ntotal(&self) -> usize {
        self.inner.ntotal()
    }

    #[getter]
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    #[getter]
    fn metric(&self) -> &'static str {
        self.inner.metric().name()
    }

    #[getter]
    fn is_f16(&self) -> bool {
        self.inner.is_f16()
    }

    /// A copy of the stored keys: (N, d) float32, or uint16 float16 bits (cosine: unit rows).
    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let shape = [self.inner.ntotal(), self.inner.dim()];
        if let Some(v) = self.inner.keys_f32() {
            return Ok(numpy::PyArray1::from_slice(py, v).reshape(shape)?.into_any());
        }
        match self.inner.keys_f16_bits() {
            Some(v) => Ok(numpy::PyArray1::from_slice(py, v).reshape(shape)?.into_any()),
            None => Err(PyValueError::new_err("internal: the index holds no keys")),
        }
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyKnnIndex>()?;
    m.add_function(wrap_pyfunction!(knn, m)?)?;
    m.add_function(wrap_pyfunction!(knn_shapley, m)?)?;
    Ok(())
}

/// One-shot exact search: the keys are read where they lie (not copied) for this call.
/// (distances (Q, k) float32, indices (Q, k) int64), nearest first.
#[pyfunction]
#[pyo3(signature = (queries, keys, k, metric="l2", *, threads=None))]
fn knn<'py>(
    py: Python<'py>,
    queries: PyReadonlyArray2<'py, f32>,
    keys: PyReadonlyArray2<'py, f32>,
    k: usize,
    metric: &str,
    threads: Option<usize>,
) -> PyResult<Found<'py>> {
    let m = Metric::parse(metric).py()?;
    let (q, n, d) = (queries.shape()[0], keys.shape()[0], keys.shape()[1]);
    if queries.shape()[1] != d {
        return Err(PyValueError::new_err(format!(
            "queries and keys: dimensions differ ({} vs {d})",
            queries.shape()[1]
        )));
    }
    let qs = contiguous(&queries, "queries")?;
    let ks = contiguous(&keys, "keys")?;
    let r = enter(py, threads, |cancel| memscore_core::knn::knn_with(qs, q, ks, n, d, k, m, cancel))?;
    Ok((r.distances.into_pyarray(py).reshape([q, k])?, r.indices.into_pyarray(py).reshape([q, k])?))
}

/// (N,) exact KNN-Shapley values of the index's keys for the test points `queries`.
#[pyfunction]
#[pyo3(signature = (index, queries, train_labels, test_labels, k, *, threads=None))]
fn knn_shapley<'py>(
    py: Python<'py>,
    index: &PyKnnIndex,
    queries: PyReadonlyArray2<'py, f32>,
    train_labels: numpy::PyReadonlyArray1<'py, i64>,
    test_labels: numpy::PyReadonlyArray1<'py, i64>,
    k: usize,
    threads: Option<usize>,
) -> PyResult<Bound<'py, numpy::PyArray1<f64>>> {
    let q = queries.shape()[0];
    if queries.shape()[1] != index.inner.dim() {
        return Err(PyValueError::new_err(format!(
            "queries: expected dimension {}, got {}",
            index.inner.dim(),
            queries.shape()[1]
        )));
    }
    let s = contiguous(&queries, "queries")?;
    let yk = train_labels.as_slice().map_err(|_| PyValueError::new_err("train_labels must be C-contiguous"))?;
    let yq = test_labels.as_slice().map_err(|_| PyValueError::new_err("test_labels must be C-contiguous"))?;
    let inner = &index.inner;
    let out = enter(py, threads, |cancel| memscore_core::knn::shapley::knn_shapley(inner, s, q, yk, yq, k, cancel))?;
    Ok(out.into_pyarray(py))
}
