//! Times the stages of the binary influence path: `cargo run --release --example profile_influence`.
use std::time::Instant;

use memscore_core::bits::{pack_rows, BitColumns, PackedRows};
use memscore_core::runs::influence::{influence_bool, InfluenceArgs};

fn main() {
    let (r, n, t) = (2000usize, 20000usize, 5000usize);
    let mut s = 0x2545F4914F6CDD1Du64;
    let mut bit = |p: u64| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s % 1000) < p
    };
    let masks: Vec<bool> = (0..r * n).map(|_| bit(700)).collect();
    let outcomes: Vec<bool> = (0..r * t).map(|_| bit(800)).collect();
    let (masks, outcomes) = (pack_rows(&masks, r, n).unwrap(), pack_rows(&outcomes, r, t).unwrap());
    let pm = PackedRows::new("masks", &masks, r, n).unwrap();
    let po = PackedRows::new("outcomes", &outcomes, r, t).unwrap();
    for _ in 0..3 {
        let t0 = Instant::now();
        let a = BitColumns::from_packed(pm).unwrap();
        let b = BitColumns::from_packed(po).unwrap();
        let pack = t0.elapsed();
        let args =
            InfluenceArgs { runs: r, n_train: n, n_test: t, train_labels: None, test_labels: None, cancel: None };
        let mut out = vec![0f32; n * t];
        influence_bool(pm, po, args, &mut out, None).unwrap();
        let t1 = Instant::now();
        influence_bool(pm, po, args, &mut out, None).unwrap();
        println!("pack {:?} (cols {} {}), influence total {:?}", pack, a.n_cols(), b.n_cols(), t1.elapsed());
        let t2 = Instant::now();
        let x = kernel_only(&a, &b);
        println!("kernel only {:?} {x}", t2.elapsed());
    }
}

/// AND + popcount over every (train, test) pair, without the epilogue.
fn kernel_only(a: &BitColumns, b: &BitColumns) -> u64 {
    use memscore_core::runs::popcount::kernel_for;
    use rayon::prelude::*;
    let k = kernel_for(memscore_core::cpu::popcount_level());
    (0..b.n_cols() / 4)
        .into_par_iter()
        .map(|g| {
            let c = [b.column(4 * g), b.column(4 * g + 1), b.column(4 * g + 2), b.column(4 * g + 3)];
            let mut out = vec![[0u32; 4]; 512];
            let mut acc = 0u64;
            for i0 in (0..a.n_cols()).step_by(512) {
                let i1 = (i0 + 512).min(a.n_cols());
                unsafe { k(a.columns(i0, i1), a.n_words(), c, &mut out[..i1 - i0]) };
                acc += out[0][0] as u64;
            }
            acc
        })
        .sum()
}
