//! Time the exact kNN search at the benchmark's size with several tile sizes.
//! `cargo run --release -p memscore-core --example profile_knn [n q d k threads]`
//! (env `TILES=512x2048,256x1024` compares tile sizes; the query tile is further capped so
//! that every thread gets at least four tiles).

use std::time::Instant;

use memscore_core::knn::{Blocking, KnnIndex, Metric};

fn main() {
    let a: Vec<usize> = std::env::args().skip(1).map(|s| s.parse().unwrap()).collect();
    let (n, q, d, k, t) = match a.as_slice() {
        [n, q, d, k, t, ..] => (*n, *q, *d, *k, *t),
        _ => (200_000, 2_000, 256, 50, 2),
    };
    let mut s = 1u64;
    let mut rnd = |len: usize| -> Vec<f32> {
        (0..len)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (s >> 40) as f32 / (1u64 << 24) as f32
            })
            .collect()
    };
    let keys = rnd(n * d);
    let queries = rnd(q * d);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap();
    let mut index = KnnIndex::new(&keys, n, d, Metric::L2).unwrap();
    let tiles: Vec<(usize, usize)> = std::env::var("TILES")
        .ok()
        .map(|v| {
            v.split(',')
                .map(|p| {
                    let (a, b) = p.split_once('x').unwrap();
                    (a.parse().unwrap(), b.parse().unwrap())
                })
                .collect()
        })
        .unwrap_or_else(|| {
            let b = Blocking::default();
            vec![(b.query_tile, b.key_block)]
        });
    for (qt, kb) in tiles {
        index.set_blocking(Blocking { query_tile: qt, key_block: kb }).unwrap();
        let mut times = Vec::new();
        for _ in 0..3 {
            let t0 = Instant::now();
            let r = pool.install(|| index.search(&queries, q, k)).unwrap();
            times.push(t0.elapsed().as_secs_f64());
            std::hint::black_box(r);
        }
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let gflops = 2.0 * (n * q * d) as f64 / times[1] / 1e9;
        println!("tile {qt}x{kb}: median {:.3} s ({gflops:.0} GFLOP/s)", times[1]);
    }
}
