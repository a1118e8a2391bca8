//! Time the exact kNN at the benchmark's size: index build, search, and the one-shot
//! `knn` (build + search on borrowed keys), wall-clock and process CPU time (a fairer
//! figure on a machine that other jobs share).
//! `cargo run --release -p memscore-core --example profile_knn [n q d k threads]`
//! Env: `TILES=512x2048,256x1024` compares tile sizes (the query tile is further capped so
//! that every thread gets at least four tiles); `OFFSET=100` adds a common offset to every
//! value (the centred path); `MEMSCORE_VECTOR_LEVEL=avx2` forces the AVX2 kernels.

use std::time::Instant;

use memscore_core::knn::{knn, Blocking, KnnIndex, Metric};

/// Process CPU time (user + system), seconds.
fn cpu_s() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 * 1e-6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// Median wall and CPU seconds of `reps` runs of `f`.
fn time<R>(reps: usize, mut f: impl FnMut() -> R) -> (f64, f64) {
    let (mut w, mut c) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let (t0, c0) = (Instant::now(), cpu_s());
        std::hint::black_box(f());
        w.push(t0.elapsed().as_secs_f64());
        c.push(cpu_s() - c0);
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    (med(&mut w), med(&mut c))
}

fn main() {
    let a: Vec<usize> = std::env::args().skip(1).map(|s| s.parse().unwrap()).collect();
    let (n, q, d, k, t) = match a.as_slice() {
        [n, q, d, k, t, ..] => (*n, *q, *d, *k, *t),
        _ => (200_000, 2_000, 256, 50, 2),
    };
    let offset: f32 = std::env::var("OFFSET").ok().map(|v| v.parse().unwrap()).unwrap_or(0.0);
    let reps: usize = std::env::var("REPS").ok().map(|v| v.parse().unwrap()).unwrap_or(3);
    // Standard-normal values (Box-Muller on a 64-bit LCG), like the Python benchmark.
    let mut s = 1u64;
    let mut rnd = |len: usize| -> Vec<f32> {
        let mut u = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        (0..len).map(|_| ((-2.0 * u().ln()).sqrt() * (std::f64::consts::TAU * u()).cos()) as f32 + offset).collect()
    };
    let keys = rnd(n * d);
    let queries = rnd(q * d);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap();
    println!("n={n} q={q} d={d} k={k} threads={t} offset={offset} level={:?}", memscore_core::cpu::vector_level());
    let (w, c) = time(reps, || pool.install(|| KnnIndex::new(&keys, n, d, Metric::L2)).unwrap());
    println!("build (copy):          {w:.3} s wall, {c:.3} s cpu");
    let (w, c) = time(reps, || pool.install(|| KnnIndex::borrowed(&keys, n, d, Metric::L2)).unwrap());
    println!("build (borrowed):      {w:.3} s wall, {c:.3} s cpu");
    let (w, c) = time(reps, || pool.install(|| knn(&queries, q, &keys, n, d, k, Metric::L2)).unwrap());
    println!("one-shot knn:          {w:.3} s wall, {c:.3} s cpu");
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
        let (w, c) = time(reps, || pool.install(|| index.search(&queries, q, k)).unwrap());
        let gflops = 2.0 * (n * q * d) as f64 / 1e9;
        println!(
            "search, tile {qt}x{kb}: {w:.3} s wall ({:.0} GFLOP/s), {c:.3} s cpu ({:.0} GFLOP/cpu-s)",
            gflops / w,
            gflops / c
        );
    }
}
