use super::*;

/// Naive search: f64 distances, stable sort on (distance, index).
fn naive(queries: &[f32], keys: &[f32], d: usize, k: usize, metric: Metric) -> (Vec<f64>, Vec<i64>) {
    let unit = |r: &[f32]| -> Vec<f64> {
        let n = r.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
        r.iter().map(|&v| if n > 0.0 { v as f64 / n } else { 0.0 }).collect()
    };
    let mut dist = Vec::new();
    let mut idx = Vec::new();
    for qr in queries.chunks(d) {
        let mut all: Vec<(f64, i64)> = keys
            .chunks(d)
            .enumerate()
            .map(|(j, x)| {
                let v = match metric {
                    Metric::L2 => qr.iter().zip(x).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum::<f64>(),
                    Metric::InnerProduct => -qr.iter().zip(x).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>(),
                    Metric::Cosine => 1.0 - unit(qr).iter().zip(unit(x)).map(|(a, b)| a * b).sum::<f64>(),
                };
                (v, j as i64)
            })
            .collect();
        all.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap().then(a.1.cmp(&b.1)));
        for &(v, j) in &all[..k] {
            dist.push(if metric == Metric::InnerProduct { -v } else { v });
            idx.push(j);
        }
    }
    (dist, idx)
}

/// Small-integer data: every product and sum is exact in f32, so ties are real ties.
fn ints(len: usize, seed: u64, range: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) % range) as f32 - (range / 2) as f32
        })
        .collect()
}

fn floats(len: usize, seed: u64) -> Vec<f32> {
    ints(len, seed, 1 << 20).into_iter().map(|v| v / (1 << 19) as f32).collect()
}

fn check_exact(q: usize, n: usize, d: usize, k: usize, metric: Metric, blocking: Blocking, seed: u64) {
    let keys = ints(n * d, seed, 5);
    let queries = ints(q * d, seed + 1, 5);
    let (wd, wi) = naive(&queries, &keys, d, k, metric);
    let mut index = KnnIndex::new(&keys, n, d, metric).unwrap();
    index.set_blocking(blocking).unwrap();
    for level in crate::cpu::vector_levels() {
        index.set_level(level).unwrap();
        let got = index.search(&queries, q, k).unwrap();
        if metric != Metric::Cosine {
            assert_eq!(got.indices, wi, "q={q} n={n} d={d} k={k} {metric:?} {blocking:?} {level:?}");
            for (a, b) in got.distances.iter().zip(&wd) {
                assert_eq!(*a as f64, *b);
            }
        } else {
            for (a, b) in got.distances.iter().zip(&wd) {
                assert!((*a as f64 - b).abs() < 1e-5, "{a} vs {b}");
            }
        }
    }
}

#[test]
fn exact_on_integer_data_with_many_ties() {
    let small = Blocking { query_tile: 3, key_block: 7 };
    let big = Blocking::default();
    for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
        for &(q, n, d, k) in &[(5, 40, 3, 4), (1, 100, 8, 10), (17, 33, 1, 5), (4, 20, 2, 20), (9, 300, 16, 1)] {
            for b in [small, big] {
                check_exact(q, n, d, k, metric, b, (q * n + d + k) as u64);
            }
        }
    }
}

/// Query counts around the GEMM's row blocks (16 with AVX2, 64 with AVX-512) and the
/// tiles: every vector level, the borrowed and the owned index give the same bits.
#[test]
fn every_level_and_layout_gives_the_same_result() {
    let (n, d, k) = (1500, 37, 9);
    let keys = floats(n * d, 51);
    for q in [1, 15, 17, 64, 150] {
        let queries = floats(q * d, 52 + q as u64);
        for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
            let want = knn(&queries, q, &keys, n, d, k, metric).unwrap();
            let (_, wi) = naive(&queries, &keys, d, k, metric);
            if metric != Metric::Cosine {
                assert_eq!(want.indices, wi, "q={q} {metric:?}");
            }
            let mut own = KnnIndex::new(&keys, n, d, metric).unwrap();
            let mut lent = KnnIndex::borrowed(&keys, n, d, metric).unwrap();
            for level in crate::cpu::vector_levels() {
                for blocking in [Blocking::default(), Blocking { query_tile: 20, key_block: 100 }] {
                    for index in [&mut own, &mut lent] {
                        index.set_level(level).unwrap();
                        index.set_blocking(blocking).unwrap();
                        assert_eq!(index.search(&queries, q, k).unwrap(), want, "q={q} {metric:?} {level:?}");
                    }
                }
            }
        }
    }
}

#[test]
fn non_finite_keys_are_refused() {
    let d = 3;
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut keys = floats(5 * d, 61);
        keys[7] = bad;
        for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
            for r in
                [KnnIndex::new(&keys, 5, d, metric).map(|_| ()), KnnIndex::borrowed(&keys, 5, d, metric).map(|_| ())]
            {
                let e = r.unwrap_err().to_string();
                assert!(e.contains("keys: contains NaN or infinite values"), "{e}");
            }
            assert!(knn(&keys[..d], 1, &keys, 5, d, 1, metric).is_err());
        }
    }
}

#[test]
fn float_data_matches_naive_within_round_off() {
    let (q, n, d, k) = (37, 2500, 24, 10);
    let keys = floats(n * d, 3);
    let queries = floats(q * d, 4);
    for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
        let got = knn(&queries, q, &keys, n, d, k, metric).unwrap();
        let (wd, wi) = naive(&queries, &keys, d, k, metric);
        for r in 0..q {
            for j in 0..k {
                let (a, b) = (got.distances[r * k + j] as f64, wd[r * k + j]);
                assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{metric:?} row {r}: {a} vs {b}");
            }
            // Same set unless the k-th distance is nearly tied with the (k+1)-th.
            let mut gi = got.indices[r * k..(r + 1) * k].to_vec();
            let mut w = wi[r * k..(r + 1) * k].to_vec();
            gi.sort();
            w.sort();
            assert_eq!(gi, w, "{metric:?} row {r}");
        }
    }
}

#[test]
fn duplicates_break_ties_toward_lower_index() {
    let d = 4;
    let row = [1.0f32, 2.0, 3.0, 4.0];
    let mut keys = Vec::new();
    for _ in 0..50 {
        keys.extend_from_slice(&row);
    }
    let idx = KnnIndex::new(&keys, 50, d, Metric::L2).unwrap();
    let got = idx.search(&[0.0, 0.0, 0.0, 0.0], 1, 5).unwrap();
    assert_eq!(got.indices, vec![0, 1, 2, 3, 4]);
    assert!(got.distances.iter().all(|&v| v == 30.0));
    // k = N returns every key in index order.
    let all = idx.search(&row, 1, 50).unwrap();
    assert_eq!(all.indices, (0..50).collect::<Vec<i64>>());
    assert!(all.distances.iter().all(|&v| v == 0.0));
}

#[test]
fn f16_keys_match_f32_keys_of_the_same_values() {
    let (q, n, d, k) = (6, 500, 12, 7);
    let keys = ints(n * d, 11, 9);
    let queries = ints(q * d, 12, 9);
    let bits: Vec<u16> = keys.iter().map(|&v| f16::from_f32(v).to_bits()).collect();
    for metric in [Metric::L2, Metric::InnerProduct] {
        let a = KnnIndex::new(&keys, n, d, metric).unwrap().search(&queries, q, k).unwrap();
        let b = KnnIndex::new_f16(&bits, n, d, metric).unwrap().search(&queries, q, k).unwrap();
        assert_eq!(a, b);
    }
}

#[test]
fn few_queries_split_over_key_ranges() {
    let (n, d, k) = (5000, 5, 13);
    let keys = ints(n * d, 21, 7);
    let queries = ints(d, 22, 7);
    let mut index = KnnIndex::new(&keys, n, d, Metric::L2).unwrap();
    index.set_blocking(Blocking { query_tile: 256, key_block: 64 }).unwrap();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(4).build().unwrap();
    let got = pool.install(|| index.search(&queries, 1, k)).unwrap();
    let (_, wi) = naive(&queries, &keys, d, k, Metric::L2);
    assert_eq!(got.indices, wi);
}

#[test]
fn bad_arguments_are_errors() {
    let keys = vec![0.0f32; 12];
    assert!(KnnIndex::new(&keys, 4, 3, Metric::L2).is_ok());
    assert!(KnnIndex::new(&keys, 5, 3, Metric::L2).is_err());
    assert!(KnnIndex::new(&[], 0, 3, Metric::L2).is_err());
    assert!(KnnIndex::new(&[], 4, 0, Metric::L2).is_err());
    let idx = KnnIndex::new(&keys, 4, 3, Metric::L2).unwrap();
    assert!(idx.search(&[0.0; 3], 1, 0).is_err());
    assert!(idx.search(&[0.0; 3], 1, 5).is_err());
    assert!(idx.search(&[0.0; 4], 1, 1).is_err());
    assert!(idx.search(&[], 0, 1).is_err());
    assert!(Metric::parse("l1").is_err());
    assert!(KnnIndex::new_f16(&[0x7c00, 0, 0], 1, 3, Metric::L2).is_err());
    // Overflowing distances are reported, not returned as garbage.
    let huge = vec![3e38f32; 6];
    let idx = KnnIndex::new(&huge, 2, 3, Metric::L2).unwrap();
    assert!(idx.search(&[-3e38; 3], 1, 2).is_err());
}

/// Values ≈ 100 that differ by ≈ 0.01: float32 `‖x‖² − 2q·x + ‖q‖²` cancels to noise, so
/// the search must centre and re-rank to match the f64 brute force.
#[test]
fn large_common_offset_matches_f64_brute_force() {
    let (q, n, d, k) = (20, 3000, 16, 5);
    let jitter = |len, seed| floats(len, seed).into_iter().map(|v| 100.0 + 0.01 * v).collect::<Vec<f32>>();
    let keys = jitter(n * d, 31);
    let queries = jitter(q * d, 32);
    for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
        let got = knn(&queries, q, &keys, n, d, k, metric).unwrap();
        let (wd, wi) = naive(&queries, &keys, d, k, metric);
        if metric == Metric::L2 {
            assert_eq!(got.indices, wi, "{metric:?}");
        }
        for (a, b) in got.distances.iter().zip(&wd) {
            assert!(*a >= 0.0 || metric == Metric::InnerProduct);
            assert!((*a as f64 - b).abs() <= 1e-6 * b.abs().max(1e-12) + 1e-7, "{metric:?}: {a} vs {b}");
        }
    }
    // The same with float16-representable offsets on the f16 path.
    let bits: Vec<u16> = keys.iter().map(|&v| f16::from_f32(v).to_bits()).collect();
    let wide: Vec<f32> = bits.iter().map(|&b| f16::from_bits(b).to_f32()).collect();
    let got = KnnIndex::new_f16(&bits, n, d, Metric::L2).unwrap().search(&queries, q, k).unwrap();
    assert_eq!(got.indices, naive(&queries, &wide, d, k, Metric::L2).1);
}

/// Two far-apart tight clusters: centring on the mean does not help, the certificate
/// must send the queries to the exact f64 rescan.
#[test]
fn far_apart_tight_clusters_are_exact() {
    let (q, n, d, k) = (6, 400, 8, 3);
    let mut keys = floats(n * d, 41);
    for (j, v) in keys.iter_mut().enumerate() {
        let side = if (j / d) % 2 == 0 { 1e3 } else { -1e3 };
        *v = side + 1e-3 * *v;
    }
    let mut queries = floats(q * d, 42);
    queries.iter_mut().for_each(|v| *v = 1e3 + 1e-3 * *v);
    let got = knn(&queries, q, &keys, n, d, k, Metric::L2).unwrap();
    let (wd, wi) = naive(&queries, &keys, d, k, Metric::L2);
    assert_eq!(got.indices, wi);
    for (a, b) in got.distances.iter().zip(&wd) {
        assert!((*a as f64 - b).abs() <= 1e-6 * b + 1e-12, "{a} vs {b}");
    }
}

#[test]
fn cosine_distances_are_never_negative_and_overflow_is_refused() {
    let keys = vec![1.0f32, 1e-3, 1.0, 1e-3, 3.0, 0.0];
    let got = knn(&[1.0, 1e-3], 1, &keys, 3, 2, 3, Metric::Cosine).unwrap();
    assert!(got.distances.iter().all(|&v| (0.0..=2.0).contains(&v)), "{:?}", got.distances);
    // Squared norms above float32's range are refused when the index is built.
    assert!(KnnIndex::new(&[3e38f32, 0.0, 0.0, 3e38], 2, 2, Metric::InnerProduct).is_err());
    // Huge cosine rows are normalised in f64 (not turned into zero vectors).
    let got = knn(&[3e38f32, 0.0], 1, &[0.0f32, 3e38, 3e38, 1.0], 2, 2, 1, Metric::Cosine).unwrap();
    assert_eq!(got.indices, vec![1]);
}

#[test]
fn stored_keys_are_the_given_ones_for_l2_and_ip() {
    let (n, d) = (30, 5);
    let keys = floats(n * d, 71);
    let bits: Vec<u16> = keys.iter().map(|&v| f16::from_f32(v).to_bits()).collect();
    for metric in [Metric::L2, Metric::InnerProduct] {
        let a = KnnIndex::new(&keys, n, d, metric).unwrap();
        assert_eq!(a.keys_f32(), Some(&keys[..]));
        assert_eq!(a.keys_f16_bits(), None);
        let b = KnnIndex::new_f16(&bits, n, d, metric).unwrap();
        assert_eq!(b.keys_f16_bits(), Some(&bits[..]));
        assert_eq!(b.keys_f32(), None);
    }
    // Cosine keys are stored as unit rows.
    let c = KnnIndex::new(&keys, n, d, Metric::Cosine).unwrap();
    let unit = c.keys_f32().unwrap();
    for r in unit.chunks(d) {
        assert!((sqnorm64(r) - 1.0).abs() < 1e-6);
    }
}

#[test]
fn order_keys_sort_as_the_floats_do() {
    let xs = [f64::MIN, -1e300, -2.5, -1.0, -1e-300, -0.0, 0.0, 1e-300, 1.0, 2.5, 1e300, f64::MAX];
    for w in xs.windows(2) {
        assert!(order_key(w[0]) <= order_key(w[1]), "{} {}", w[0], w[1]);
        assert_eq!(order_key(w[0]) == order_key(w[1]), w[0] == w[1], "{} {}", w[0], w[1]);
    }
}

#[test]
fn radix_sort_is_a_stable_sort_by_key() {
    let mut s = 0x9E3779B97F4A7C15u64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    // Empty, one item, keys with many ties, keys differing only in their low or high byte.
    for (n, spread) in [(0usize, 1u64), (1, 1), (500, 7), (3000, u64::MAX), (2000, 0xff), (2000, 0xff << 56)] {
        let items: Vec<(u64, u32)> = (0..n)
            .map(|i| (if spread == u64::MAX { next() } else { next() % 8 * (spread / 7).max(1) }, i as u32))
            .collect();
        let mut want = items.clone();
        want.sort_by_key(|&(k, i)| (k, i));
        let mut got = items;
        radix_sort_by_key(&mut got);
        assert_eq!(got, want, "n={n} spread={spread:#x}");
    }
}

#[test]
fn full_order_is_the_search_at_k_equal_n() {
    // Duplicated keys tie: the lower index comes first, as in the search.
    let (n, d) = (300, 5);
    let mut s = 7u64;
    let mut rnd = move || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((s >> 40) % 7) as f32 - 3.0
    };
    let keys: Vec<f32> = (0..n * d).map(|_| rnd()).collect();
    let queries: Vec<f32> = (0..4 * d).map(|_| rnd() + 0.5).collect();
    for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
        let index = KnnIndex::new(&keys, n, d, metric).unwrap();
        let found = index.search(&queries, 4, n).unwrap();
        for (j, q) in queries.chunks(d).enumerate() {
            assert_eq!(index.full_order(q).unwrap(), found.indices[j * n..(j + 1) * n], "{metric:?} query {j}");
        }
    }
    let index = KnnIndex::new(&keys, n, d, Metric::L2).unwrap();
    assert!(index.full_order(&[f32::NAN; 5]).is_err());
    assert!(index.full_order(&[0.0; 4]).is_err());
}
