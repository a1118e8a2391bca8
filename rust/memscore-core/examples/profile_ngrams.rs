//! Time n-gram counting over the benchmark's token shards (built by benches/bench_ngrams.py).
//! `cargo run --release -p memscore-core --example profile_ngrams [DIR QUERIES.json threads repeats]`
//! e.g. `... benches/out/ngrams/tokens-quick benches/out/ngrams/queries-quick.json 1 3`.
//! Env `NOPAIRS=1` drops the pairs; `SMAPS=1` prints how much of the memory has 2 MiB pages.

use std::time::Instant;

use memscore_core::ngram::index::Index;
use memscore_core::ngram::source::{count, Shard};

/// Tokens of a version-1 `.npy` file of little-endian uint16.
fn load_npy_u16(path: &std::path::Path) -> Vec<u16> {
    let b = std::fs::read(path).unwrap();
    let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
    b[10 + hlen..].chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect()
}

fn load_npy_i64(path: &std::path::Path) -> Vec<u64> {
    let b = std::fs::read(path).unwrap();
    let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
    b[10 + hlen..].chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect()
}

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let dir = a.first().map(String::as_str).unwrap_or("benches/out/ngrams/tokens-quick");
    let qpath = a.get(1).map(String::as_str).unwrap_or("benches/out/ngrams/queries-quick.json");
    let threads: usize = a.get(2).map(|s| s.parse().unwrap()).unwrap_or(1);
    let repeats: usize = a.get(3).map(|s| s.parse().unwrap()).unwrap_or(3);
    let q: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(qpath).unwrap()).unwrap();
    let (mut toks, mut starts) = (Vec::<u32>::new(), vec![0u64]);
    let mut pairs = Vec::new();
    let push = |g: &serde_json::Value, toks: &mut Vec<u32>, starts: &mut Vec<u64>| {
        toks.extend(g.as_array().unwrap().iter().map(|t| t.as_u64().unwrap() as u32));
        starts.push(toks.len() as u64);
        (starts.len() - 2) as u64
    };
    for g in q["tok_q"].as_array().unwrap() {
        push(g, &mut toks, &mut starts);
    }
    for p in q["tok_p"].as_array().unwrap() {
        let x = push(&p[0], &mut toks, &mut starts);
        let y = push(&p[1], &mut toks, &mut starts);
        pairs.push((x, y));
    }
    if std::env::var("NOPAIRS").is_ok() {
        pairs.clear();
    }
    let t0 = Instant::now();
    let ix = Index::build(&toks, &starts, &pairs).unwrap();
    eprintln!(
        "index: {} n-grams, {} pairs, built in {:.3} s",
        starts.len() - 1,
        pairs.len(),
        t0.elapsed().as_secs_f64()
    );
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".npy") && !p.to_string_lossy().ends_with(".offsets.npy"))
        .collect();
    files.sort();
    let data: Vec<(Vec<u16>, Vec<u64>)> = files
        .iter()
        .map(|f| {
            let o = f.with_file_name(format!("{}.offsets.npy", f.file_stem().unwrap().to_string_lossy()));
            (load_npy_u16(f), load_npy_i64(&o))
        })
        .collect();
    let n_tokens: usize = data.iter().map(|d| d.0.len()).sum();
    let shards: Vec<Shard> = data
        .iter()
        .enumerate()
        .map(|(k, (t, o))| Shard::Tokens16 { name: format!("s{k}"), tokens: t, offsets: o })
        .collect();
    if std::env::var("SMAPS").is_ok() {
        let s = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap();
        eprintln!("{}", s.lines().filter(|l| l.contains("Huge")).collect::<Vec<_>>().join("; "));
    }
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    for _ in 0..repeats {
        let t0 = Instant::now();
        let s = pool.install(|| count(&shards, &ix, None, None)).unwrap();
        let dt = t0.elapsed().as_secs_f64();
        eprintln!(
            "{} M tokens in {:.3} s: {:.1} M tokens/s ({} threads); checksum {} {} {}",
            n_tokens / 1_000_000,
            dt,
            n_tokens as f64 / dt / 1e6,
            threads,
            s.counts.iter().sum::<u64>(),
            s.doc_freq.iter().sum::<u64>(),
            s.cooccurrence.iter().sum::<u64>()
        );
    }
}
