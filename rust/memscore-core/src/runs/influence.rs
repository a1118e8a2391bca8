//! Pairwise influence across runs (Feldman & Zhang 2020):
//! `infl[j, i] = mean(outcome_j | runs with i) - mean(outcome_j | runs without i)`.
//!
//! Binary outcomes go through bit-packed AND + popcount (`a = #runs with i where test j
//! was correct`, then `infl = a / n_in - (total_j - a) / n_out`); real outcomes through
//! bit-matrix sums by 8-run lookup tables (`S = C^T M`, [`super::masked_sums`]). Both produce the matrix tile by tile, so the full matrix
//! and the streaming top-k share one evaluator and the top-k never holds more than a tile.

use rayon::prelude::*;

use super::masked_sums::masked_sums;
use super::popcount::{kernel_for, Kernel1x4};
use super::sums::{check_shape, diff_stderr, sample_var};
use super::topk::TopK;
use crate::bits::{BitColumns, BitRows, FromBitRows, PackedRows, RunWords};
use crate::cpu::{popcount_level, vector_level, VectorLevel};
use crate::error::{check_len, checked_size, ensure, try_filled, try_with_capacity, Result};
use crate::pool::Cancel;

/// Train columns per top-k tile (the tile's values are buffered, then selected).
const TILE_TRAIN: usize = 4096;
/// Largest number of test rows per parallel task.
const TILE_TEST: usize = 64;

/// Shape and options shared by every influence entry point.
#[derive(Debug, Clone, Copy)]
pub struct InfluenceArgs<'a> {
    pub runs: usize,
    pub n_train: usize,
    pub n_test: usize,
    /// Restrict to pairs of the same class: pairs whose labels differ are NaN (full
    /// matrix) or never selected (top-k).
    pub train_labels: Option<&'a [i64]>,
    pub test_labels: Option<&'a [i64]>,
    /// Stop early with `Error::Cancelled` once set (checked between blocks of test rows
    /// and tiles of train columns).
    pub cancel: Option<&'a Cancel>,
}

impl InfluenceArgs<'_> {
    fn validate(&self, masks: &BitRows<'_>, outcomes: Outcomes<'_>) -> Result<()> {
        ensure!(
            masks.rows() == self.runs && masks.cols() == self.n_train,
            "masks: expected shape ({}, {}), got ({}, {})",
            self.runs,
            self.n_train,
            masks.rows(),
            masks.cols()
        );
        match outcomes {
            Outcomes::Bool(o) => check_shape("test outcomes", o, self.runs, self.n_test)?,
            Outcomes::Float(o) => check_len("test outcomes", o.len(), self.runs, self.n_test)?,
        }
        ensure!(
            self.train_labels.is_some() == self.test_labels.is_some(),
            "train_labels and test_labels must be given together"
        );
        if let (Some(a), Some(b)) = (self.train_labels, self.test_labels) {
            ensure!(a.len() == self.n_train, "train_labels: expected {} values, got {}", self.n_train, a.len());
            ensure!(b.len() == self.n_test, "test_labels: expected {} values, got {}", self.n_test, b.len());
        }
        Ok(())
    }

    fn cancelled(&self) -> bool {
        self.cancel.is_some_and(|c| c.is_cancelled())
    }

    fn check_cancel(&self) -> Result<()> {
        self.cancel.map_or(Ok(()), |c| c.check())
    }

    #[inline]
    fn same_class(&self, j: usize, i: usize) -> bool {
        match (self.train_labels, self.test_labels) {
            (Some(a), Some(b)) => a[i] == b[j],
            _ => true,
        }
    }
}

/// Test outcomes: `(R, T)` packed bools, or `(R, T)` floats row-major.
#[derive(Debug, Clone, Copy)]
enum Outcomes<'a> {
    Bool(&'a PackedRows<'a>),
    Float(&'a [f64]),
}

/// Output element type of the full matrix.
pub trait OutFloat: Copy + Send + Sync + 'static {
    fn from_f64(x: f64) -> Self;
}
impl OutFloat for f32 {
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x as f32
    }
}
impl OutFloat for f64 {
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x
    }
}

/// Computes influence (and optionally its standard error) for a tile of test rows
/// `j0..j1` x train columns `i0..i1`, writing pair (j, i) to `infl[(j - j0) * ld + (i - i0)]`
/// (and the same place of `se`): straight into the output matrix (`ld = N`) or into a
/// tile buffer (`ld = i1 - i0`).
trait TileEval: Sync {
    #[allow(clippy::too_many_arguments)]
    fn eval<O: OutFloat>(
        &self,
        j0: usize,
        j1: usize,
        i0: usize,
        i1: usize,
        infl: &mut [O],
        ld: usize,
        se: Option<&mut [O]>,
    );
}

// ---------------------------------------------------------------- binary outcomes

struct BoolEval<'a> {
    train: BitColumns,
    test: BitColumns,
    n_in: Vec<f64>,
    n_out: Vec<f64>,
    /// `n_in * n_out` per train example, NaN when either group is empty.
    denom: Vec<f64>,
    total: Vec<f64>,
    kernel: Kernel1x4,
    args: InfluenceArgs<'a>,
}

impl<'a> BoolEval<'a> {
    fn new(masks: BitRows<'_>, outcomes: PackedRows<'_>, args: InfluenceArgs<'a>) -> Result<Self> {
        let train = BitColumns::from_rows(masks)?;
        let test = BitColumns::from_packed(outcomes)?;
        let n_in: Vec<f64> = train.counts().into_iter().map(|c| c as f64).collect();
        let n_out: Vec<f64> = n_in.iter().map(|&c| args.runs as f64 - c).collect();
        let denom = n_in.iter().zip(&n_out).map(|(&a, &b)| if a > 0.0 && b > 0.0 { a * b } else { f64::NAN }).collect();
        let total = test.counts().into_iter().map(|c| c as f64).collect();
        Ok(Self { train, test, n_in, n_out, denom, total, kernel: kernel_for(popcount_level()), args })
    }

    /// `counts[(j - j0) * (i1 - i0) + (i - i0)] = #runs with train i in the subset and test j correct`.
    fn counts(&self, j0: usize, j1: usize, i0: usize, i1: usize, counts: &mut [u32]) {
        let width = i1 - i0;
        let mut quad = vec![[0u32; 4]; width];
        for j in (j0..j1).step_by(4) {
            // Groups of four test columns; a short last group repeats column j (ignored).
            let rows = (j1 - j).min(4);
            let cols: [&[u64]; 4] =
                std::array::from_fn(|q| if q < rows { self.test.column(j + q) } else { self.test.column(j) });
            // SAFETY: `kernel_for` only returns kernels the running CPU supports, and every
            // column has the same padded length.
            unsafe { (self.kernel)(self.train.columns(i0, i1), self.train.n_words(), cols, &mut quad) };
            for q in 0..rows {
                for (c, a) in counts[(j + q - j0) * width..(j + q - j0 + 1) * width].iter_mut().zip(&quad) {
                    *c = a[q];
                }
            }
        }
    }
}

/// Train columns per sub-tile inside one evaluation: the packed train block and the
/// counts stay in L2 while every group of four test rows passes over them.
const SUB_TILE: usize = 512;

impl TileEval for BoolEval<'_> {
    #[inline(always)]
    fn eval<O: OutFloat>(
        &self,
        j0: usize,
        j1: usize,
        i0: usize,
        i1: usize,
        infl: &mut [O],
        ld: usize,
        mut se: Option<&mut [O]>,
    ) {
        let mut counts = vec![0u32; (j1 - j0) * SUB_TILE.min(i1 - i0)];
        for t0 in (i0..i1).step_by(SUB_TILE) {
            let t1 = (t0 + SUB_TILE).min(i1);
            let width = t1 - t0;
            let counts = &mut counts[..(j1 - j0) * width];
            self.counts(j0, j1, t0, t1, counts);
            // influence = a/n_in - (total - a)/n_out = (a R - total n_in) / (n_in n_out):
            // an exact integer numerator over an exact denominator, one rounding, so
            // pairs whose influences are equal as fractions get bit-identical values and
            // top-k ties break by index alone.
            let runs = self.args.runs as f64;
            let plain = se.is_none() && self.args.train_labels.is_none();
            for j in j0..j1 {
                let row = &counts[(j - j0) * width..(j - j0 + 1) * width];
                let base = (j - j0) * ld + (t0 - i0);
                let tot = self.total[j];
                if plain {
                    // Hot path: influence only, every pair defined by counts alone.
                    for (c, (d, &a)) in infl[base..base + width].iter_mut().zip(row).enumerate() {
                        let i = t0 + c;
                        *d = O::from_f64((a as f64 * runs - tot * self.n_in[i]) / self.denom[i]);
                    }
                    continue;
                }
                for (c, &a) in row.iter().enumerate() {
                    let (i, off) = (t0 + c, base + c);
                    let a = a as f64;
                    let ok = self.args.same_class(j, i);
                    infl[off] =
                        O::from_f64(if ok { (a * runs - tot * self.n_in[i]) / self.denom[i] } else { f64::NAN });
                    if let Some(se) = se.as_deref_mut() {
                        let (ni, no) = (self.n_in[i], self.n_out[i]);
                        // 0/1 outcomes: the sum of squares equals the sum.
                        let out = self.total[j] - a;
                        let (v_in, v_out) = (sample_var(a, a, ni), sample_var(out, out, no));
                        se[off] = O::from_f64(if ok { diff_stderr(v_in, ni, v_out, no) } else { f64::NAN });
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------- real outcomes

struct FloatEval<'a> {
    /// Masks as bytes of 8 runs per example (the layout the lookup-table sums read).
    masks: RunWords,
    /// Test outcomes centred per test example (influence is shift invariant; centring
    /// keeps the sums of squares well conditioned), `(R, T)`, and their squares.
    centred: Vec<f64>,
    squares: Option<Vec<f64>>,
    n_in: Vec<f64>,
    n_out: Vec<f64>,
    /// Sum over all runs of the centred outcome (zero up to rounding) and of its square.
    total: Vec<f64>,
    total_sq: Vec<f64>,
    level: VectorLevel,
    args: InfluenceArgs<'a>,
}

impl<'a> FloatEval<'a> {
    fn new(masks: BitRows<'_>, outcomes: &[f64], args: InfluenceArgs<'a>, stderr: bool) -> Result<Self> {
        let (r, t) = (args.runs, args.n_test);
        let mut mean = vec![0.0; t];
        for row in outcomes.chunks_exact(t.max(1)).take(r) {
            for (m, &x) in mean.iter_mut().zip(row) {
                *m += x;
            }
        }
        mean.iter_mut().for_each(|m| *m /= r.max(1) as f64);
        let mut centred: Vec<f64> = try_with_capacity("centred outcomes", outcomes.len())?;
        centred.extend(outcomes.iter().enumerate().map(|(k, &x)| x - mean[k % t]));
        let squares = if stderr {
            let mut sq: Vec<f64> = try_with_capacity("squared outcomes", centred.len())?;
            sq.extend(centred.iter().map(|x| x * x));
            Some(sq)
        } else {
            None
        };
        let mut total = vec![0.0; t];
        let mut total_sq = vec![0.0; t];
        for row in centred.chunks_exact(t.max(1)).take(r) {
            for k in 0..t {
                total[k] += row[k];
                total_sq[k] += row[k] * row[k];
            }
        }
        let masks = RunWords::from_rows(masks)?;
        let n_in: Vec<f64> = masks.counts().into_iter().map(|c| c as f64).collect();
        let n_out = n_in.iter().map(|&c| r as f64 - c).collect();
        Ok(Self { masks, centred, squares, n_in, n_out, total, total_sq, level: vector_level(), args })
    }

    /// `dst (j1-j0, i1-i0) = src[:, j0..j1]^T @ masks[:, i0..i1]`.
    fn masked_sums(&self, src: &[f64], j0: usize, j1: usize, i0: usize, i1: usize, dst: &mut [f64]) {
        let ld = i1 - i0;
        masked_sums(&self.masks, src, self.args.n_test, (j0, j1), (i0, i1), dst, ld, self.level);
    }
}

impl TileEval for FloatEval<'_> {
    #[inline(always)]
    fn eval<O: OutFloat>(
        &self,
        j0: usize,
        j1: usize,
        i0: usize,
        i1: usize,
        infl: &mut [O],
        ld: usize,
        mut se: Option<&mut [O]>,
    ) {
        // Wide blocks (4-run tables, cheap to rebuild) go through the train columns in
        // chunks, so the sums are reused from cache by the epilogue and their buffer is
        // allocated once, not a fresh (rows x N) one per block.
        let chunk = if j1 - j0 >= 8 { COLUMN_CHUNK } else { (i1 - i0).max(1) };
        let mut sums = vec![0.0; (j1 - j0) * chunk.min(i1 - i0)];
        let mut sq = se.as_ref().map(|_| vec![0.0; sums.len()]);
        for c0 in (i0..i1).step_by(chunk) {
            let c1 = (c0 + chunk).min(i1);
            self.chunk_eval(
                j0,
                j1,
                c0,
                c1,
                &mut sums,
                sq.as_deref_mut(),
                &mut infl[c0 - i0..],
                ld,
                se.as_deref_mut().map(|s| &mut s[c0 - i0..]),
            );
        }
    }
}

/// Train columns per chunk of a wide block of [`FloatEval`] (its sums, 64 test rows of
/// float64, fill 1 MiB).
const COLUMN_CHUNK: usize = 2048;

impl FloatEval<'_> {
    /// Influence of test rows `j0..j1` on train columns `i0..i1`, written from `infl[0]`
    /// (and `se[0]`) at leading dimension `ld`, through the scratch sums.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn chunk_eval<O: OutFloat>(
        &self,
        j0: usize,
        j1: usize,
        i0: usize,
        i1: usize,
        sums: &mut [f64],
        sq: Option<&mut [f64]>,
        infl: &mut [O],
        ld: usize,
        mut se: Option<&mut [O]>,
    ) {
        let width = i1 - i0;
        let sums = &mut sums[..(j1 - j0) * width];
        self.masked_sums(&self.centred, j0, j1, i0, i1, sums);
        let mut sq = sq.map(|q| &mut q[..(j1 - j0) * width]);
        if let (Some(sq), Some(squares)) = (sq.as_deref_mut(), self.squares.as_deref()) {
            self.masked_sums(squares, j0, j1, i0, i1, sq);
        }
        for j in j0..j1 {
            for i in i0..i1 {
                let t = (j - j0) * width + (i - i0);
                let off = (j - j0) * ld + (i - i0);
                let (ni, no) = (self.n_in[i], self.n_out[i]);
                let s_in = sums[t];
                let s_out = self.total[j] - s_in;
                let ok = ni > 0.0 && no > 0.0 && self.args.same_class(j, i);
                infl[off] = O::from_f64(if ok { s_in / ni - s_out / no } else { f64::NAN });
                if let (Some(se), Some(sq)) = (se.as_deref_mut(), sq.as_deref()) {
                    let q_in = sq[t];
                    let q_out = self.total_sq[j] - q_in;
                    let (v_in, v_out) = (sample_var(s_in, q_in, ni), sample_var(s_out, q_out, no));
                    se[off] = O::from_f64(if ok { diff_stderr(v_in, ni, v_out, no) } else { f64::NAN });
                }
            }
        }
    }
}

// ---------------------------------------------------------------- drivers

/// `eval.eval(...)` compiled for the vector level: the epilogue (a division per pair) is
/// most of the time outside the popcount kernel, and vectorizes with the level's registers.
#[allow(clippy::too_many_arguments)]
fn eval_at<O: OutFloat, E: TileEval>(
    eval: &E,
    level: VectorLevel,
    (j0, j1, i0, i1): (usize, usize, usize, usize),
    infl: &mut [O],
    ld: usize,
    se: Option<&mut [O]>,
) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        unsafe fn avx512<O: OutFloat, E: TileEval>(e: &E, t: [usize; 4], x: &mut [O], ld: usize, se: Option<&mut [O]>) {
            e.eval(t[0], t[1], t[2], t[3], x, ld, se)
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2<O: OutFloat, E: TileEval>(e: &E, t: [usize; 4], x: &mut [O], ld: usize, se: Option<&mut [O]>) {
            e.eval(t[0], t[1], t[2], t[3], x, ld, se)
        }
        match level {
            // SAFETY: levels above portable are only chosen where the CPU has them.
            VectorLevel::Avx512 => return unsafe { avx512(eval, [j0, j1, i0, i1], infl, ld, se) },
            VectorLevel::Avx2 => return unsafe { avx2(eval, [j0, j1, i0, i1], infl, ld, se) },
            VectorLevel::Portable => {}
        }
    }
    let _ = level;
    eval.eval(j0, j1, i0, i1, infl, ld, se)
}

fn test_tile_rows(n_test: usize) -> usize {
    // Enough tasks to keep every thread busy, each a multiple of the 4-row micro-kernel.
    let threads = rayon::current_num_threads().max(1);
    (n_test.div_ceil(threads * 4)).next_multiple_of(4).clamp(4, TILE_TEST)
}

fn full_matrix<O: OutFloat, E: TileEval>(
    eval: &E,
    args: &InfluenceArgs,
    out: &mut [O],
    se: Option<&mut [O]>,
) -> Result<()> {
    let (n, t) = (args.n_train, args.n_test);
    check_len("influence output", out.len(), t, n)?;
    if let Some(s) = se.as_deref() {
        check_len("stderr output", s.len(), t, n)?;
    }
    if n == 0 || t == 0 {
        return Ok(());
    }
    let rows = test_tile_rows(t);
    let level = vector_level();
    let blocks = t.div_ceil(rows);
    let tasks = 4 * rayon::current_num_threads().max(1);
    // Few test rows (a Banzhaf value is one): split the train columns instead, each task
    // through a small tile buffer, then copy the tiles into place; ranges of at least
    // 2,048 columns, so each amortizes the lookup tables it builds.
    let parts = tasks.div_ceil(blocks).min(n.div_ceil(2048));
    if blocks < tasks && parts > 1 {
        return split_columns(eval, args, out, se, parts);
    }
    let se_chunks: Vec<Option<&mut [O]>> = match se {
        Some(s) => s.chunks_mut(rows * n).map(Some).collect(),
        None => (0..blocks).map(|_| None).collect(),
    };
    out.par_chunks_mut(rows * n).zip(se_chunks).enumerate().for_each(|(b, (dst, mut se_dst))| {
        let j0 = b * rows;
        let j1 = (j0 + rows).min(t);
        if args.cancelled() {
            return;
        }
        // One call per block of test rows, written straight into the output.
        eval_at(eval, level, (j0, j1, 0, n), dst, n, se_dst.as_deref_mut());
    });
    args.check_cancel()
}

/// The full matrix with the train columns split into `parts` ranges per block of test rows.
fn split_columns<O: OutFloat, E: TileEval>(
    eval: &E,
    args: &InfluenceArgs,
    out: &mut [O],
    mut se: Option<&mut [O]>,
    parts: usize,
) -> Result<()> {
    let (n, t) = (args.n_train, args.n_test);
    let rows = test_tile_rows(t);
    let level = vector_level();
    // Ranges of whole 64-column steps, so that tiles start on word boundaries.
    let width = n.div_ceil(parts).next_multiple_of(64);
    let tiles: Vec<(usize, usize)> =
        (0..t.div_ceil(rows)).flat_map(|b| (0..n.div_ceil(width)).map(move |c| (b * rows, c * width))).collect();
    let done: Vec<(Vec<O>, Option<Vec<O>>)> = tiles
        .par_iter()
        .map(|&(j0, i0)| {
            let (j1, i1) = ((j0 + rows).min(t), (i0 + width).min(n));
            let size = (j1 - j0) * (i1 - i0);
            if args.cancelled() {
                return (Vec::new(), None);
            }
            let mut tile = vec![O::from_f64(0.0); size];
            let mut tile_se = se.is_some().then(|| vec![O::from_f64(0.0); size]);
            eval_at(eval, level, (j0, j1, i0, i1), &mut tile, i1 - i0, tile_se.as_deref_mut());
            (tile, tile_se)
        })
        .collect();
    args.check_cancel()?;
    for (&(j0, i0), (tile, tile_se)) in tiles.iter().zip(done) {
        let w = (i0 + width).min(n) - i0;
        for (q, row) in tile.chunks_exact(w).enumerate() {
            out[(j0 + q) * n + i0..][..w].copy_from_slice(row);
        }
        if let (Some(se), Some(tile_se)) = (se.as_deref_mut(), tile_se) {
            for (q, row) in tile_se.chunks_exact(w).enumerate() {
                se[(j0 + q) * n + i0..][..w].copy_from_slice(row);
            }
        }
    }
    Ok(())
}

/// The number of columns a top-`k` over `n_train` examples returns: `min(k, max(n_train, 1))`.
pub fn clamp_k(k: usize, n_train: usize) -> usize {
    k.min(n_train.max(1))
}

/// The `k` largest influences per test row: `(indices (T, k), values (T, k))`, ordered
/// by value descending then index ascending; rows with fewer than `k` defined values are
/// padded with index -1 and value NaN. `k` is clamped to `max(N, 1)` (the caller reads the
/// clamped `k` off the output length, `T * k`).
fn top_k<E: TileEval>(eval: &E, args: &InfluenceArgs, k: usize) -> Result<(Vec<i64>, Vec<f64>)> {
    let (n, t) = (args.n_train, args.n_test);
    ensure!(k >= 1, "top_k must be at least 1, got {k}");
    let k = clamp_k(k, n);
    let rows = test_tile_rows(t);
    let level = vector_level();
    let size = checked_size("top-k output", t, k)?;
    let mut idx = try_filled("top-k indices", size, -1i64)?;
    let mut val = try_filled("top-k values", size, f64::NAN)?;
    if t == 0 {
        return Ok((idx, val));
    }
    idx.par_chunks_mut(rows * k).zip(val.par_chunks_mut(rows * k)).enumerate().for_each(|(b, (idx, val))| {
        let j0 = b * rows;
        let j1 = (j0 + rows).min(t);
        let mut heaps: Vec<TopK> = (j0..j1).map(|_| TopK::new(k)).collect();
        let mut buf = vec![0.0f64; (j1 - j0) * TILE_TRAIN];
        for i0 in (0..n).step_by(TILE_TRAIN) {
            if args.cancelled() {
                return;
            }
            let i1 = (i0 + TILE_TRAIN).min(n);
            let w = i1 - i0;
            eval_at::<f64, E>(eval, level, (j0, j1, i0, i1), &mut buf[..(j1 - j0) * w], w, None);
            for (jj, heap) in heaps.iter_mut().enumerate() {
                for (c, &v) in buf[jj * w..(jj + 1) * w].iter().enumerate() {
                    heap.push(v, (i0 + c) as i64);
                }
            }
        }
        for (jj, heap) in heaps.into_iter().enumerate() {
            heap.write_sorted(&mut idx[jj * k..(jj + 1) * k], &mut val[jj * k..(jj + 1) * k]);
        }
    });
    args.check_cancel()?;
    Ok((idx, val))
}

/// Full `(T, N)` influence matrix (and standard errors) from binary outcomes; `masks`
/// `(R, N)` packed or one byte per value, `outcomes` `(R, T)` packed rows.
pub fn influence_bool<'m, O: OutFloat>(
    masks: impl Into<BitRows<'m>>,
    outcomes: PackedRows<'_>,
    args: InfluenceArgs,
    out: &mut [O],
    se: Option<&mut [O]>,
) -> Result<()> {
    let masks = masks.into();
    args.validate(&masks, Outcomes::Bool(&outcomes))?;
    full_matrix(&BoolEval::new(masks, outcomes, args)?, &args, out, se)
}

/// Full `(T, N)` influence matrix (and standard errors) from real-valued outcomes `(R, T)`.
pub fn influence_f64<'m, O: OutFloat>(
    masks: impl Into<BitRows<'m>>,
    outcomes: &[f64],
    args: InfluenceArgs,
    out: &mut [O],
    se: Option<&mut [O]>,
) -> Result<()> {
    let masks = masks.into();
    args.validate(&masks, Outcomes::Float(outcomes))?;
    let stderr = se.is_some();
    full_matrix(&FloatEval::new(masks, outcomes, args, stderr)?, &args, out, se)
}

/// Streaming top-k influence from binary outcomes (memory O(T k + tile)); `k` above the
/// number of training examples is clamped to it.
pub fn influence_topk_bool<'m>(
    masks: impl Into<BitRows<'m>>,
    outcomes: PackedRows<'_>,
    args: InfluenceArgs,
    k: usize,
) -> Result<(Vec<i64>, Vec<f64>)> {
    let masks = masks.into();
    args.validate(&masks, Outcomes::Bool(&outcomes))?;
    top_k(&BoolEval::new(masks, outcomes, args)?, &args, k)
}

/// Streaming top-k influence from real-valued outcomes (`k` clamped as above).
pub fn influence_topk_f64<'m>(
    masks: impl Into<BitRows<'m>>,
    outcomes: &[f64],
    args: InfluenceArgs,
    k: usize,
) -> Result<(Vec<i64>, Vec<f64>)> {
    let masks = masks.into();
    args.validate(&masks, Outcomes::Float(outcomes))?;
    top_k(&FloatEval::new(masks, outcomes, args, false)?, &args, k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bits::pack_rows;

    fn pk(m: &[bool], r: usize, c: usize) -> Vec<u8> {
        pack_rows(m, r, c).unwrap()
    }

    fn pr<'a>(b: &'a [u8], r: usize, c: usize) -> PackedRows<'a> {
        PackedRows::new("m", b, r, c).unwrap()
    }

    fn lcg(seed: u64) -> impl FnMut() -> f64 {
        let mut s = seed;
        move || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    fn naive(masks: &[bool], out: &[f64], r: usize, n: usize, t: usize) -> Vec<f64> {
        let mut res = vec![0.0; t * n];
        for j in 0..t {
            for i in 0..n {
                let (mut si, mut ni, mut so, mut no) = (0.0, 0.0, 0.0, 0.0);
                for q in 0..r {
                    if masks[q * n + i] {
                        si += out[q * t + j];
                        ni += 1.0;
                    } else {
                        so += out[q * t + j];
                        no += 1.0;
                    }
                }
                res[j * n + i] = if ni > 0.0 && no > 0.0 { si / ni - so / no } else { f64::NAN };
            }
        }
        res
    }

    fn close(a: &[f64], b: &[f64]) {
        for (x, y) in a.iter().zip(b) {
            assert!((x.is_nan() && y.is_nan()) || (x - y).abs() < 1e-9, "{x} vs {y}");
        }
    }

    #[test]
    fn bool_and_float_match_naive() {
        let mut rng = lcg(7);
        for &(r, n, t) in &[(1usize, 3usize, 2usize), (70, 600, 9), (129, 37, 5), (5, 1, 1)] {
            let masks: Vec<bool> = (0..r * n).map(|_| rng() < 0.6).collect();
            let ob: Vec<bool> = (0..r * t).map(|_| rng() < 0.7).collect();
            let of: Vec<f64> = ob.iter().map(|&b| b as u8 as f64).collect();
            let want = naive(&masks, &of, r, n, t);
            let args =
                InfluenceArgs { runs: r, n_train: n, n_test: t, train_labels: None, test_labels: None, cancel: None };
            let (pm, po) = (pk(&masks, r, n), pk(&ob, r, t));
            let mut a = vec![0.0f64; t * n];
            influence_bool(pr(&pm, r, n), pr(&po, r, t), args, &mut a, None).unwrap();
            close(&a, &want);
            let mut b = vec![0.0f64; t * n];
            influence_f64(pr(&pm, r, n), &of, args, &mut b, None).unwrap();
            close(&b, &want);
            // Masks at a byte per value (any nonzero byte set) give the same bits.
            let bytes: Vec<u8> = masks.iter().map(|&m| if m { 3 } else { 0 }).collect();
            let dense = crate::bits::DenseRows::new("masks", &bytes[..], r, n).unwrap();
            let mut c = vec![0.0f64; t * n];
            influence_bool(dense, pr(&po, r, t), args, &mut c, None).unwrap();
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a), bits(&c));
            let mut d = vec![0.0f64; t * n];
            influence_f64(dense, &of, args, &mut d, None).unwrap();
            assert_eq!(bits(&b), bits(&d));
        }
    }

    #[test]
    fn topk_matches_sorted_full_matrix() {
        let mut rng = lcg(11);
        let (r, n, t, k) = (40, 1100, 6, 7);
        let masks: Vec<bool> = (0..r * n).map(|_| rng() < 0.5).collect();
        let ob: Vec<bool> = (0..r * t).map(|_| rng() < 0.5).collect();
        let args =
            InfluenceArgs { runs: r, n_train: n, n_test: t, train_labels: None, test_labels: None, cancel: None };
        let (pm, po) = (pk(&masks, r, n), pk(&ob, r, t));
        let mut full = vec![0.0f64; t * n];
        influence_bool(pr(&pm, r, n), pr(&po, r, t), args, &mut full, None).unwrap();
        let (idx, val) = influence_topk_bool(pr(&pm, r, n), pr(&po, r, t), args, k).unwrap();
        for j in 0..t {
            let mut order: Vec<usize> = (0..n).filter(|&i| !full[j * n + i].is_nan()).collect();
            order.sort_by(|&a, &b| full[j * n + b].partial_cmp(&full[j * n + a]).unwrap().then(a.cmp(&b)));
            for q in 0..k {
                assert_eq!(idx[j * k + q], order[q] as i64);
                assert_eq!(val[j * k + q], full[j * n + order[q]]);
            }
        }
    }

    #[test]
    fn bad_shapes_are_errors() {
        let args = InfluenceArgs {
            runs: 2,
            n_train: 2,
            n_test: 1,
            train_labels: Some(&[0, 1]),
            test_labels: None,
            cancel: None,
        };
        let mut out = vec![0.0f64; 2];
        let (m, o) = ([0xc0u8, 0xc0], [0x80u8, 0x80]);
        assert!(influence_bool(pr(&m, 2, 2), pr(&o, 2, 1), args, &mut out, None).is_err());
        let args = InfluenceArgs { train_labels: None, ..args };
        assert!(influence_bool(pr(&m[..1], 1, 2), pr(&o, 2, 1), args, &mut out, None).is_err());
        assert!(influence_topk_bool(pr(&m, 2, 2), pr(&o, 2, 1), args, 0).is_err());
        // k above N is clamped to N.
        let (idx, val) = influence_topk_bool(pr(&m, 2, 2), pr(&o, 2, 1), args, usize::MAX).unwrap();
        assert_eq!((idx.len(), val.len()), (2, 2));
    }
}
