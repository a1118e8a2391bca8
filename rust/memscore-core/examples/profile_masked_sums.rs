//! Times the real-valued influence path by stage:
//! `cargo run --release --example profile_masked_sums -- [T ...]`.
use std::time::Instant;

use memscore_core::bits::{pack_rows, PackedRows, RunWords};
use memscore_core::cpu::vector_level;
use memscore_core::runs::influence::{influence_f64, InfluenceArgs};
use memscore_core::runs::masked_sums::masked_sums;

/// CPU time of this thread (seconds): robust to other processes sharing the cores.
fn thread_cpu() -> f64 {
    #[repr(C)]
    struct Timespec {
        sec: i64,
        nsec: i64,
    }
    extern "C" {
        fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
    }
    let mut ts = Timespec { sec: 0, nsec: 0 };
    // CLOCK_THREAD_CPUTIME_ID = 3 on Linux.
    unsafe { clock_gettime(3, &mut ts) };
    ts.sec as f64 + ts.nsec as f64 * 1e-9
}

fn main() {
    let (r, n) = (4000usize, 20000usize);
    let ts: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().unwrap()).collect();
    let mut s = 0x2545F4914F6CDD1Du64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let masks: Vec<bool> = (0..r * n).map(|_| next() % 2 == 0).collect();
    let packed = pack_rows(&masks, r, n).unwrap();
    let pm = PackedRows::new("masks", &packed, r, n).unwrap();
    for &t in if ts.is_empty() { &[1usize, 16, 256][..] } else { &ts[..] } {
        let values: Vec<f64> = (0..r * t).map(|_| (next() % 1000) as f64 / 1000.0).collect();
        for _ in 0..3 {
            let t0 = Instant::now();
            let cols = RunWords::from_packed(pm).unwrap();
            let pack = t0.elapsed();
            let mut dst = vec![0.0; t * n];
            let c1 = thread_cpu();
            masked_sums(&cols, &values, t, (0, t), (0, n), &mut dst, n, vector_level());
            let one = thread_cpu() - c1;
            let rate = (r * n * t) as f64 / one / 1e9;
            let args =
                InfluenceArgs { runs: r, n_train: n, n_test: t, train_labels: None, test_labels: None, cancel: None };
            let mut out = vec![0f32; n * t];
            let t2 = Instant::now();
            influence_f64(pm, &values, args, &mut out, None).unwrap();
            println!(
                "T={t}: transpose {pack:?}, sums on one thread {:.1} ms CPU ({rate:.1} G run-pairs/s), influence {:?}",
                one * 1e3,
                t2.elapsed()
            );
        }
    }
}
