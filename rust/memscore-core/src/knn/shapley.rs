//! Exact KNN-Shapley values (Jia et al. 2019) on the exact kNN engine.
//!
//! For one test point with label `y`, let `a_1 .. a_N` be the training points sorted by
//! distance (nearest first, ties toward the lower index, as the engine orders them) and
//! `m_i = 1[label(a_i) = y]`. The Shapley value of each training point for the utility of
//! a K-nearest-neighbour classifier (the fraction of the K nearest with label `y`) is
//!
//! ```text
//! s(a_N) = m_N / max(N, K)
//! s(a_i) = s(a_{i+1}) + (m_i - m_{i+1}) / K * min(K, i) / i      (i = N-1 .. 1)
//! ```
//!
//! and a training point's value is the mean of `s` over the test points. Each test point
//! needs the full ordering (`k = N`), so it is taken straight from exact f64 scores
//! ([`KnnIndex::full_order`]); test points run in parallel in fixed groups, and memory is
//! a few `(N,)` orderings and sums, never `T x N`.

use rayon::prelude::*;

use crate::error::{check_len, ensure, try_filled, Result};
use crate::knn::KnnIndex;
use crate::pool::Cancel;

/// Test points summed in one fixed group: the value sums are added group by group in
/// order, so they do not depend on the number of threads.
const GROUP: usize = 8;
/// The recursion for one test point: adds its `s` values to `values` (indexed by key).
fn add_one(order: &[i64], train_labels: &[i64], y: i64, k: usize, values: &mut [f64]) {
    let n = order.len();
    let m = |r: usize| f64::from(u8::from(train_labels[order[r] as usize] == y));
    // The farthest point is among the k nearest of a random subset with probability
    // min(k, N) / N, adding m / k then: m / max(N, k).
    let mut s = m(n - 1) / n.max(k) as f64;
    values[order[n - 1] as usize] += s;
    for r in (0..n - 1).rev() {
        let i = (r + 1) as f64; // 1-based rank of order[r]
        s += (m(r) - m(r + 1)) / k as f64 * (k as f64).min(i) / i;
        values[order[r] as usize] += s;
    }
}

/// `(N,)` KNN-Shapley values of the index's keys for the `q` test points `queries`
/// (row-major, `q * dim`) with labels `test_labels`, the keys' labels `train_labels`, and
/// `k` neighbours (any `k >= 1`; `k >= N` is the whole set). The mean over test points.
pub fn knn_shapley(
    index: &KnnIndex,
    queries: &[f32],
    q: usize,
    train_labels: &[i64],
    test_labels: &[i64],
    k: usize,
    cancel: &Cancel,
) -> Result<Vec<f64>> {
    let n = index.ntotal();
    ensure!(n >= 1, "keys: need at least one training point, got 0");
    ensure!(k >= 1, "k: expected k >= 1, got {k}");
    ensure!(train_labels.len() == n, "train_labels: expected {n} labels (one per key), got {}", train_labels.len());
    ensure!(test_labels.len() == q, "test_labels: expected {q} labels (one per query), got {}", test_labels.len());
    ensure!(q >= 1, "queries: need at least one test point, got 0");
    let d = index.dim();
    check_len("queries", queries.len(), q, d)?;
    ensure!(queries.iter().all(|v| v.is_finite()), "queries: contains NaN or infinite values");
    let mut values = try_filled("KNN-Shapley values", n, 0.0f64)?;
    let groups = q.div_ceil(GROUP);
    // Groups in waves of a few per thread: each group holds one (N,) sum while it runs.
    let wave = 2 * rayon::current_num_threads().max(1);
    for w0 in (0..groups).step_by(wave) {
        cancel.check()?;
        let sums: Vec<Result<Vec<f64>>> = (w0..(w0 + wave).min(groups))
            .into_par_iter()
            .map(|g| {
                let mut sum = try_filled("KNN-Shapley partial sums", n, 0.0f64)?;
                for j in g * GROUP..((g + 1) * GROUP).min(q) {
                    cancel.check()?;
                    let order = index.full_order(&queries[j * d..(j + 1) * d])?;
                    add_one(&order, train_labels, test_labels[j], k, &mut sum);
                }
                Ok(sum)
            })
            .collect();
        for sum in sums {
            values.iter_mut().zip(sum?).for_each(|(v, s)| *v += s);
        }
    }
    values.iter_mut().for_each(|v| *v /= q as f64);
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knn::Metric;

    /// Shapley values by definition: average marginal contribution over all orderings
    /// (N! permutations, tiny N), with the K-NN utility of a subset.
    fn brute(order: &[usize], labels: &[i64], y: i64, k: usize) -> Vec<f64> {
        let n = order.len();
        let rank: Vec<usize> = {
            let mut r = vec![0; n];
            for (pos, &i) in order.iter().enumerate() {
                r[i] = pos;
            }
            r
        };
        let utility = |set: &[usize]| -> f64 {
            let mut s: Vec<usize> = set.to_vec();
            s.sort_by_key(|&i| rank[i]);
            s.iter().take(k).filter(|&&i| labels[i] == y).count() as f64 / k as f64
        };
        let mut perm: Vec<usize> = (0..n).collect();
        let mut out = vec![0.0; n];
        let mut count = 0.0;
        // Heap's algorithm over all permutations.
        let mut c = vec![0usize; n];
        let visit = |p: &[usize], out: &mut Vec<f64>| {
            for t in 0..n {
                out[p[t]] += utility(&p[..=t]) - utility(&p[..t]);
            }
        };
        visit(&perm, &mut out);
        count += 1.0;
        let mut i = 0;
        while i < n {
            if c[i] < i {
                if i % 2 == 0 {
                    perm.swap(0, i)
                } else {
                    perm.swap(c[i], i)
                }
                visit(&perm, &mut out);
                count += 1.0;
                c[i] += 1;
                i = 0;
            } else {
                c[i] = 0;
                i += 1;
            }
        }
        out.iter().map(|v| v / count).collect()
    }

    #[test]
    fn recursion_equals_the_definition() {
        // 1-D keys at distinct positions: the order is known.
        let keys: Vec<f32> = vec![0.0, 3.0, 1.0, 7.0, 2.0, 5.0];
        let labels: Vec<i64> = vec![1, 0, 1, 1, 0, 0];
        let index = KnnIndex::new(&keys, 6, 1, Metric::L2).unwrap();
        for k in [1usize, 2, 3, 6, 9] {
            let got = knn_shapley(&index, &[0.1], 1, &labels, &[1], k, &Cancel::new()).unwrap();
            let order: Vec<usize> = vec![0, 2, 4, 1, 5, 3];
            let want = brute(&order, &labels, 1, k);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-12, "k={k}: {got:?} vs {want:?}");
            }
            // Efficiency: the values add up to the utility of the whole set.
            let total: f64 = got.iter().sum();
            let full = order.iter().take(k).filter(|&&i| labels[i] == 1).count() as f64 / k as f64;
            assert!((total - full).abs() < 1e-12);
        }
    }

    #[test]
    fn bad_arguments() {
        let index = KnnIndex::new(&[0.0, 1.0], 2, 1, Metric::L2).unwrap();
        let c = Cancel::new();
        assert!(knn_shapley(&index, &[0.0], 1, &[0, 1], &[0], 0, &c).is_err());
        assert!(knn_shapley(&index, &[0.0], 1, &[0], &[0], 1, &c).is_err());
        assert!(knn_shapley(&index, &[0.0], 1, &[0, 1], &[0, 1], 1, &c).is_err());
        assert!(knn_shapley(&index, &[f32::NAN], 1, &[0, 1], &[0], 1, &c).is_err());
        // An empty index cannot be built, so the recursion never sees N = 0 (knn_shapley
        // also refuses it itself).
        assert!(KnnIndex::new(&[], 0, 1, Metric::L2).is_err());
    }
}
