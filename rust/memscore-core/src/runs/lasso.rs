//! Datamodels (Ilyas et al. 2022): per test example, ℓ1-regularized least squares of its
//! outcome on the training runs' masks, with an intercept, for all targets at once.
//!
//! Objective per target `t` (scikit-learn's `Lasso` objective, so `alpha = lam`):
//! `(1 / 2R) ‖y_t − X w_t − b_t‖² + lam_t ‖w_t‖₁`, with `X` the `(R, N)` 0/1 masks.
//!
//! Solver: cyclic coordinate descent over a regularization path from `lam_max` down
//! (warm starts), sequential strong-rule screening with a full KKT check after each λ, and
//! a λ done for a target when no coordinate moved by more than `tol` times its largest
//! weight or its duality gap is at most `tol ‖y_c‖²/R` (scikit-learn's two tests); a λ cut
//! short by `max_iter` is reported per target (`LassoFit::converged`). The design matrix is shared: targets are
//! fitted in blocks of [`BLOCK`], and one pass over the runs holding feature `j` serves
//! every target of the block (a residual row is one `[f32; BLOCK]`).
//!
//! The intercept is handled without centering the 0/1 matrix (that would make it dense):
//! the stored residual is `s = y_c − X w` with `y_c` the centered outcome; the true residual
//! `r = s + μᵀw` has zero mean, so `X_cⱼᵀ r = Σ_{runs ∋ j} s − μⱼ Σ_all s` and the
//! coordinate update touches only the runs that hold `j`.
//!
//! The full gradient `X_cᵀ r` (λ_max and the KKT check) is computed a byte column (8
//! features) at a time: every run adds its residual row to one of 256 buckets indexed by
//! its mask byte, and the 8 features' sums are read off the buckets (four-Russians), one
//! row add per run instead of one per set bit.
//!
//! Memory: the residual `(R, T)` f32, weights `(N, T)` f32 twice (current and best), the
//! gradient `(N, T)` f32, the masks' bit columns; never an `(R, N)` float copy (and a
//! held-out split of the runs is read by row index from the caller's masks, not copied).

use rayon::prelude::*;

use crate::bits::{BitColumns, PackedRows};
use crate::cpu::{vector_level, VectorLevel};
use crate::error::{check_len, ensure, try_filled, try_with_capacity, Result};
use crate::pool::Cancel;

/// Targets fitted together by one task (a residual row of this many f32 is two 512-bit
/// registers).
pub const BLOCK: usize = 32;
const _: () = assert!(BLOCK <= 64, "a sweep reports its targets as a u64 bit mask");
type Row = [f32; BLOCK];
type Acc = [f64; BLOCK];

/// The smallest effective `tol`: a few f32 rounding steps, relative.
pub const TOL_FLOOR: f64 = 4.0 * f32::EPSILON as f64;

/// Rows added in f32 before the partial sum is carried into f64.
const FLUSH_ROWS: usize = 2048;

/// Solver settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LassoArgs {
    /// Points on the regularization path (geometric from `lam_max`).
    pub n_lambdas: usize,
    /// Smallest λ of the path as a fraction of each target's `lam_max` (path mode only).
    pub lambda_ratio: f64,
    /// Stop a λ when no weight of any target moved by more than `tol` x its largest weight
    /// (raised to [`TOL_FLOOR`]).
    pub tol: f64,
    /// Coordinate-descent sweeps per λ at most.
    pub max_iter: usize,
    /// Path mode: stop a block's path once no target of it improved its validation MSE
    /// for this many consecutive λ (0: the whole path).
    pub patience: usize,
    /// Instruction set the row kernels run with (default: [`vector_level`], the best this
    /// machine has unless `MEMSCORE_VECTOR_LEVEL` asks for less;
    /// every level gives bit-identical results, as no sum is reordered across lanes).
    pub level: VectorLevel,
}

impl Default for LassoArgs {
    fn default() -> Self {
        Self { n_lambdas: 100, lambda_ratio: 1e-3, tol: 1e-4, max_iter: 1000, patience: 0, level: vector_level() }
    }
}

/// The runs of a packed mask matrix: every row, or the rows `rows` of it (so a split into
/// fitting and held-out runs needs no copy of the masks).
#[derive(Debug, Clone, Copy)]
pub struct RunMasks<'a> {
    pub packed: PackedRows<'a>,
    pub rows: Option<&'a [usize]>,
}

impl<'a> RunMasks<'a> {
    /// Every row of `packed`.
    pub fn all(packed: PackedRows<'a>) -> Self {
        Self { packed, rows: None }
    }

    /// The rows `rows` of `packed`, in that order (checked when the fit starts).
    pub fn selected(packed: PackedRows<'a>, rows: &'a [usize]) -> Self {
        Self { packed, rows: Some(rows) }
    }

    /// Runs.
    pub fn len(&self) -> usize {
        self.rows.map_or(self.packed.rows(), <[usize]>::len)
    }

    /// Whether there are no runs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn columns(&self) -> Result<BitColumns> {
        match self.rows {
            None => BitColumns::from_packed(self.packed),
            Some(rows) => BitColumns::from_packed_selected(self.packed, rows),
        }
    }
}

/// Held-out runs for the choice of λ: their `(R_v, N)` masks and `(R_v, T)` outcomes.
#[derive(Debug, Clone, Copy)]
pub struct Validation<'a> {
    pub masks: RunMasks<'a>,
    pub outcomes: &'a [f64],
}

/// A fitted datamodel per target.
#[derive(Debug, Clone, PartialEq)]
pub struct LassoFit {
    /// `(T, N)` weights, row-major.
    pub weights: Vec<f32>,
    /// `(T,)` intercepts.
    pub bias: Vec<f64>,
    /// `(T,)` the λ of each target's returned weights.
    pub lam: Vec<f64>,
    /// `(T,)` the smallest λ with all-zero weights.
    pub lam_max: Vec<f64>,
    /// `(T,)` mean squared error on the validation runs (NaN without them).
    pub val_mse: Vec<f64>,
    /// Coordinate-descent sweeps run, summed over blocks.
    pub sweeps: u64,
    /// `(T, n_lambdas)` row-major: whether step `k` of target `t`'s path met `tol` within
    /// `max_iter` sweeps (steps after the path stopped early count as met).
    pub converged: Vec<bool>,
    /// `(T,)` steps of each target's path that were run (fewer than `n_lambdas` when
    /// `patience` stopped it).
    pub steps: Vec<usize>,
}

/// Fit datamodels for `T = outcomes.len() / R` targets on the `(R, N)` packed `masks`.
///
/// - `lam = Some(l)` (`T` values > 0): each target's weights at `l[t]`, reached by a path
///   of `n_lambdas` steps from `lam_max` (no step when `l[t] >= lam_max`).
/// - `lam = None`: the path `lam_max · ratio^(k / (n_lambdas − 1))`, and per target the
///   weights of the λ with the smallest MSE on `val` (required then).
pub fn datamodels(
    masks: RunMasks<'_>,
    outcomes: &[f64],
    n_targets: usize,
    val: Option<Validation<'_>>,
    lam: Option<&[f64]>,
    args: LassoArgs,
    cancel: Option<&Cancel>,
) -> Result<LassoFit> {
    let (runs, n) = (masks.len(), masks.packed.cols());
    ensure!(runs >= 1, "datamodels need at least one training run, got 0");
    check_len("outcomes", outcomes.len(), runs, n_targets)?;
    ensure!(outcomes.iter().all(|x| x.is_finite()), "outcomes must be finite (found NaN or inf)");
    ensure!(args.n_lambdas >= 1, "n_lambdas must be at least 1, got {}", args.n_lambdas);
    ensure!(
        args.lambda_ratio > 0.0 && args.lambda_ratio <= 1.0,
        "lambda_ratio must lie in (0, 1], got {}",
        args.lambda_ratio
    );
    ensure!(args.tol > 0.0 && args.tol.is_finite(), "tol must be a positive number, got {}", args.tol);
    ensure!(args.max_iter >= 1, "max_iter must be at least 1, got {}", args.max_iter);
    if let Some(l) = lam {
        ensure!(l.len() == n_targets, "lam: expected {n_targets} values (one per target), got {}", l.len());
        if let Some(bad) = l.iter().find(|x| !(x.is_finite() && **x > 0.0)) {
            return Err(crate::Error::Invalid(format!("lam must be positive and finite, got {bad}")));
        }
    } else {
        ensure!(val.is_some(), "datamodels without a fixed lam need validation runs to choose it");
    }
    if let Some(v) = &val {
        let vn = v.masks.packed.cols();
        ensure!(!v.masks.is_empty(), "validation: need at least one run, got 0");
        ensure!(vn == n, "validation masks: expected {n} columns (as masks), got {vn}");
        check_len("validation outcomes", v.outcomes.len(), v.masks.len(), n_targets)?;
        ensure!(v.outcomes.iter().all(|x| x.is_finite()), "validation outcomes must be finite (found NaN or inf)");
    }
    let cols = masks.columns()?;
    let counts = cols.counts();
    let mu: Vec<f64> = counts.iter().map(|&c| c as f64 / runs as f64).collect();
    let val_cols = val.as_ref().map(|v| v.masks.columns()).transpose()?;
    let shared = Shared {
        masks,
        cols: &cols,
        counts: &counts,
        mu: &mu,
        y: outcomes,
        n_targets,
        val: val.as_ref().zip(val_cols.as_ref()).map(|(v, c)| (v.outcomes, c)),
        lam,
        args,
        cancel,
    };
    let n_blocks = n_targets.div_ceil(BLOCK);
    let blocks: Vec<Result<BlockFit>> = (0..n_blocks).into_par_iter().map(|b| shared.fit_block(b)).collect();
    let mut fit = LassoFit {
        weights: try_filled("datamodel weights", crate::error::checked_size("weights", n_targets, n)?, 0f32)?,
        bias: vec![0.0; n_targets],
        lam: vec![0.0; n_targets],
        lam_max: vec![0.0; n_targets],
        val_mse: vec![f64::NAN; n_targets],
        sweeps: 0,
        converged: vec![true; crate::error::checked_size("converged", n_targets, args.n_lambdas)?],
        steps: vec![0; n_targets],
    };
    for (b, block) in blocks.into_iter().enumerate() {
        let block = block?;
        let t0 = b * BLOCK;
        for k in 0..BLOCK.min(n_targets - t0) {
            let row = &mut fit.weights[(t0 + k) * n..(t0 + k + 1) * n];
            for (j, w) in row.iter_mut().enumerate() {
                *w = block.best[j][k];
            }
            fit.bias[t0 + k] = block.bias[k];
            fit.lam[t0 + k] = block.lam[k];
            fit.lam_max[t0 + k] = block.lam_max[k];
            fit.val_mse[t0 + k] = block.val_mse[k];
            fit.steps[t0 + k] = block.converged.len();
            for (step, ok) in block.converged.iter().enumerate() {
                fit.converged[(t0 + k) * args.n_lambdas + step] = ok[k];
            }
        }
        fit.sweeps += block.sweeps;
    }
    Ok(fit)
}

struct Shared<'a> {
    masks: RunMasks<'a>,
    cols: &'a BitColumns,
    counts: &'a [u32],
    mu: &'a [f64],
    y: &'a [f64],
    n_targets: usize,
    val: Option<(&'a [f64], &'a BitColumns)>,
    lam: Option<&'a [f64]>,
    args: LassoArgs,
    cancel: Option<&'a Cancel>,
}

/// A block's coordinate-descent state: weights `(N, BLOCK)`, gradients `(N, BLOCK)`, the
/// residual `s = y_c − X w` `(R, BLOCK)` and its sum over runs.
struct Coords {
    w: Vec<Row>,
    g: Vec<Row>,
    s: Vec<Row>,
    ssum: Acc,
}

/// What a fresh (f64) residual gives per target: `Σ_runs s`, and for the duality gap the
/// true residual `r = s + μᵀw`'s `‖r‖²` and `rᵀ y_c`.
struct Fresh {
    ssum: Acc,
    rr: Acc,
    ry: Acc,
}

/// Sweeps of the first round of a λ step; each further round doubles (a KKT check and
/// the duality gap come between rounds). Most steps converge within it: the full gradient
/// of a check costs as much as many sweeps over a small active set.
const FIRST_ROUND: u64 = 64;

struct BlockFit {
    best: Vec<Row>,
    bias: Acc,
    lam: Acc,
    lam_max: Acc,
    val_mse: Acc,
    sweeps: u64,
    /// Per path step run, per target: met `tol` within `max_iter` sweeps.
    converged: Vec<[bool; BLOCK]>,
}

/// The set bits (row indices) of a bit column.
#[inline(always)]
fn for_each_row(col: &[u64], mut f: impl FnMut(usize)) {
    for (w, &word) in col.iter().enumerate() {
        let mut x = word;
        while x != 0 {
            f(w * 64 + x.trailing_zeros() as usize);
            x &= x - 1;
        }
    }
}

/// `Σ_{rows r in col} s[r]`, in f32 blocks carried into f64.
#[inline(always)]
fn column_sum(col: &[u64], s: &[Row]) -> Acc {
    let mut acc = [0f64; BLOCK];
    let mut part = [0f32; BLOCK];
    let mut rows = 0;
    for_each_row(col, |r| {
        add(&mut part, &s[r]);
        rows += 1;
        if rows == FLUSH_ROWS {
            carry(&mut acc, &mut part);
            rows = 0;
        }
    });
    carry(&mut acc, &mut part);
    acc
}

#[inline(always)]
fn add(a: &mut Row, b: &Row) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

#[inline(always)]
fn carry(acc: &mut Acc, part: &mut Row) {
    for (a, p) in acc.iter_mut().zip(part.iter_mut()) {
        *a += *p as f64;
        *p = 0.0;
    }
}

/// Copies of the `#[inline(always)]` method `$body`, one per `$feature`, each compiled with
/// that feature enabled so that the loops inlined into it vectorize with its registers.
/// Callers must only call a copy on a machine with its feature ([`vector_level`]).
macro_rules! vector_variants {
    ($body:ident -> $ret:ty, $args:tt, $($feature:literal: $name:ident),+ $(,)?) => {
        $(vector_variants!(@one $body -> $ret, $args, $feature, $name);)+
    };
    (@one $body:ident -> $ret:ty, ($($arg:ident: $ty:ty),* $(,)?), $feature:literal, $name:ident) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $feature)]
        #[allow(clippy::too_many_arguments)]
        unsafe fn $name(&self, $($arg: $ty),*) -> $ret {
            self.$body($($arg),*)
        }
    };
}

fn zeros<T: Clone + Send + Sync>(what: &str, n: usize, v: T) -> Result<Vec<T>> {
    try_filled(what, n, v)
}

impl Shared<'_> {
    fn check_cancel(&self) -> Result<()> {
        self.cancel.map_or(Ok(()), |c| c.check())
    }

    fn fit_block(&self, b: usize) -> Result<BlockFit> {
        let (runs, n, tt) = (self.masks.len(), self.masks.packed.cols(), self.n_targets);
        let t0 = b * BLOCK;
        let nt = BLOCK.min(tt - t0);
        let rf = runs as f64;
        // Centered outcomes (f64 means), stored as the f32 residual of w = 0.
        let mut ymean = [0f64; BLOCK];
        for row in self.y.chunks_exact(tt) {
            for (m, &v) in ymean.iter_mut().zip(&row[t0..t0 + nt]) {
                *m += v;
            }
        }
        ymean.iter_mut().for_each(|m| *m /= rf);
        let mut c = Coords {
            s: zeros("datamodel residuals", runs, [0f32; BLOCK])?,
            w: zeros("datamodel weights", n, [0f32; BLOCK])?,
            g: zeros("datamodel gradients", n, [0f32; BLOCK])?,
            ssum: [0.0; BLOCK],
        };
        let mut best: Vec<Row> = zeros("datamodel weights", n, [0f32; BLOCK])?;
        let fresh = self.refresh_residual(t0, nt, &ymean, &c.w, &mut c.s)?;
        let yy = fresh.rr; // ‖y_c‖², the scale of the gap's tolerance
        c.ssum = fresh.ssum;
        self.full_gradient(&c.s, &c.ssum, &mut c.g);
        let mut lam_max = [0f64; BLOCK];
        for gj in &c.g {
            for k in 0..nt {
                lam_max[k] = lam_max[k].max(gj[k].abs() as f64);
            }
        }
        let k_steps = self.args.n_lambdas;
        let path = |step: usize, k: usize| -> f64 {
            let frac = if k_steps == 1 { 1.0 } else { step as f64 / (k_steps - 1) as f64 };
            match self.lam {
                Some(l) if l[t0 + k] >= lam_max[k] => l[t0 + k],
                Some(l) => lam_max[k] * (l[t0 + k] / lam_max[k]).powf(frac),
                None => lam_max[k] * self.args.lambda_ratio.powf(frac),
            }
        };
        let mut out = BlockFit {
            best: Vec::new(),
            bias: [0.0; BLOCK],
            lam: [0.0; BLOCK],
            lam_max,
            val_mse: [f64::NAN; BLOCK],
            sweeps: 0,
            converged: Vec::new(),
        };
        let mut best_mse = [f64::INFINITY; BLOCK];
        let mut stale = 0; // λ steps since some target of the block last improved
        let mut active: Vec<usize> = try_with_capacity("active set", n)?;
        let mut in_active: Vec<bool> = zeros("active set", n, false)?;
        let mut prev = [0f64; BLOCK];
        for step in 0..k_steps {
            let mut lam = [0f64; BLOCK];
            for (k, l) in lam.iter_mut().enumerate().take(nt) {
                *l = path(step, k);
            }
            if step == 0 {
                prev = lam;
            }
            // Sequential strong rule: keep j when some target may leave zero at this λ.
            for (j, (wj, gj)) in c.w.iter().zip(&c.g).enumerate() {
                if !in_active[j] && (0..nt).any(|k| wj[k] != 0.0 || gj[k].abs() as f64 >= 2.0 * lam[k] - prev[k]) {
                    in_active[j] = true;
                    active.push(j);
                }
            }
            // `max_iter` bounds the sweeps of the whole step. They run in rounds of doubling
            // length; after each, a fresh residual and gradient give each target's duality
            // gap and, once every target has met `tol`, the KKT check over every feature.
            let mut budget = self.args.max_iter as u64;
            let mut round = FIRST_ROUND;
            // λ ≥ lam_max (the first step): zero weights are the solution, by definition of
            // lam_max. Sweeping would only let a gradient within rounding of λ move one.
            let at_zero = (0..nt).all(|k| lam[k] >= lam_max[k] && c.w.iter().all(|wj| wj[k] == 0.0));
            let converged = if at_zero {
                [true; BLOCK]
            } else {
                loop {
                    let (done, ok) = self.sweeps(&active, &lam, nt, budget.min(round), &mut c)?;
                    out.sweeps += done;
                    budget -= done;
                    round = round.saturating_mul(2);
                    self.check_cancel()?;
                    let fresh = self.refresh_residual(t0, nt, &ymean, &c.w, &mut c.s)?;
                    c.ssum = fresh.ssum;
                    self.full_gradient(&c.s, &c.ssum, &mut c.g);
                    let small_gap = self.small_gap(&fresh, &c, &lam, &yy, nt);
                    let met: [bool; BLOCK] = std::array::from_fn(|k| ok[k] || small_gap[k]);
                    if met[..nt].iter().all(|&x| x) {
                        // Only now: mid-descent gradients of features left out overshoot λ,
                        // and an active set grown on them slows every later sweep.
                        let mut violated = [false; BLOCK];
                        for (j, gj) in c.g.iter().enumerate() {
                            if in_active[j] {
                                continue;
                            }
                            let mut any = false;
                            for k in 0..nt {
                                if gj[k].abs() as f64 > lam[k] {
                                    violated[k] = true;
                                    any = true;
                                }
                            }
                            if any {
                                in_active[j] = true;
                                active.push(j);
                            }
                        }
                        if !violated.iter().any(|&v| v) {
                            break met;
                        }
                        if budget == 0 {
                            // Features left out violate KKT: only the gap vouches for a target.
                            break std::array::from_fn(|k| small_gap[k] || (ok[k] && !violated[k]));
                        }
                    } else if budget == 0 {
                        break met;
                    }
                }
            };
            out.converged.push(converged);
            prev = lam;
            let bias = self.bias(&ymean, &c.w, nt);
            match self.val {
                Some((yv, vc)) => {
                    let mse = self.val_mse(yv, vc, t0, nt, &bias, &c.w)?;
                    let improved: Vec<usize> = (0..nt).filter(|&k| mse[k] < best_mse[k]).collect();
                    stale = if improved.is_empty() { stale + 1 } else { 0 };
                    for &k in &improved {
                        best_mse[k] = mse[k];
                        out.lam[k] = lam[k];
                        out.bias[k] = bias[k];
                        out.val_mse[k] = mse[k];
                    }
                    if !improved.is_empty() {
                        for (bj, wj) in best.iter_mut().zip(&c.w) {
                            for &k in &improved {
                                bj[k] = wj[k];
                            }
                        }
                    }
                }
                None => {
                    out.lam = lam;
                    out.bias = bias;
                }
            }
            if self.lam.is_none() && self.args.patience > 0 && stale >= self.args.patience {
                break; // lower λ only overfit the held-out runs further
            }
        }
        if self.val.is_none() || self.lam.is_some() {
            // A fixed λ returns the end of its path (validation MSE is reported for it).
            best = c.w;
            out.bias = self.bias(&ymean, &best, nt);
            for k in 0..nt {
                out.lam[k] = path(k_steps - 1, k);
            }
            if let Some((yv, vc)) = self.val {
                out.val_mse = self.val_mse(yv, vc, t0, nt, &out.bias, &best)?;
            }
        }
        out.best = best;
        Ok(out)
    }

    /// Coordinate-descent sweeps over `active` at `lam` until every target stops moving
    /// (or `max` sweeps); returns the sweeps run and, per target, whether its last sweep
    /// over the whole active set met `tol`. As glmnet does, after a sweep over the whole
    /// active set the sweeps repeat over the features with a nonzero weight only (most of
    /// the active set stays at zero), until they converge; then the active set is swept
    /// again, until a sweep over it converges.
    fn sweeps(&self, active: &[usize], lam: &Acc, nt: usize, max: u64, c: &mut Coords) -> Result<(u64, [bool; BLOCK])> {
        let mut done = 0;
        let mut ok = [false; BLOCK];
        while done < max {
            done += 1;
            ok = self.sweep(active, lam, nt, c);
            if ok[..nt].iter().all(|&x| x) {
                break;
            }
            let nonzero: Vec<usize> = active.iter().copied().filter(|&j| c.w[j].iter().any(|&x| x != 0.0)).collect();
            while done < max {
                done += 1;
                self.check_cancel()?;
                if self.sweep(&nonzero, lam, nt, c)[..nt].iter().all(|&x| x) {
                    break;
                }
            }
            self.check_cancel()?;
        }
        Ok((done, ok))
    }

    /// One sweep over `set`; per target, whether no weight moved by more than `tol` x the
    /// target's largest weight.
    fn sweep(&self, set: &[usize], lam: &Acc, nt: usize, c: &mut Coords) -> [bool; BLOCK] {
        let met = match self.args.level {
            // SAFETY: `VectorLevel::Avx512`/`Avx2` are only chosen (by `vector_level`, or
            // by a caller) on a machine that has those features.
            #[cfg(target_arch = "x86_64")]
            VectorLevel::Avx512 => unsafe { self.sweep_avx512(set, lam, nt, c) },
            #[cfg(target_arch = "x86_64")]
            VectorLevel::Avx2 => unsafe { self.sweep_avx2(set, lam, nt, c) },
            _ => self.sweep_body(set, lam, nt, c),
        };
        std::array::from_fn(|k| k >= nt || met >> k & 1 == 1)
    }

    vector_variants!(sweep_body -> u64, (set: &[usize], lam: &Acc, nt: usize, c: &mut Coords),
        "avx512f": sweep_avx512, "avx2": sweep_avx2);

    #[inline(always)]
    fn sweep_body(&self, set: &[usize], lam: &Acc, nt: usize, c: &mut Coords) -> u64 {
        let Coords { w, g, s, ssum } = c;
        let rf = self.masks.len() as f64;
        {
            let mut max_d = [0f64; BLOCK];
            let mut max_w = [0f64; BLOCK];
            for &j in set {
                let v = self.mu[j] * (1.0 - self.mu[j]);
                if v <= 0.0 {
                    continue; // a feature in every run or in none: its weight stays 0
                }
                let col = self.cols.column(j);
                let sum = column_sum(col, s);
                let mut delta = [0f32; BLOCK];
                let mut moved = false;
                for k in 0..nt {
                    let gk = (sum[k] - self.mu[j] * ssum[k]) / rf;
                    g[j][k] = gk as f32;
                    let old = w[j][k] as f64;
                    let z = old + gk / v;
                    let t = lam[k] / v;
                    let new = if z > t {
                        z - t
                    } else if z < -t {
                        z + t
                    } else {
                        0.0
                    };
                    let new32 = new as f32;
                    let d = new32 - w[j][k];
                    if d != 0.0 {
                        delta[k] = d;
                        w[j][k] = new32;
                        moved = true;
                        max_d[k] = max_d[k].max(d.abs() as f64);
                    }
                    max_w[k] = max_w[k].max(new.abs());
                }
                if moved {
                    for_each_row(col, |r| {
                        for (x, d) in s[r].iter_mut().zip(&delta) {
                            *x -= d;
                        }
                    });
                    let c = self.counts[j] as f64;
                    for k in 0..nt {
                        ssum[k] -= c * delta[k] as f64;
                    }
                }
            }
            // f32 weights move by a rounding step at best: a tolerance below that never stops.
            let tol = self.args.tol.max(TOL_FLOOR);
            // (a bit mask, not a `[bool; BLOCK]`: returning that array from the
            // `target_feature` copies made the whole sweep 2.5x slower)
            (0..nt).filter(|&k| max_d[k] <= tol * max_w[k]).fold(0, |m, k| m | 1 << k)
        }
    }

    /// Per target, whether the duality gap of the current weights is at most `tol ‖y_c‖²/R`
    /// (scikit-learn's test, on the objective divided by `R`): the gap bounds how far the
    /// objective is from its minimum, whatever the weights still do. It settles what the
    /// relative-move test cannot: at the top of the path the f32 gradient of a feature is
    /// within rounding of λ, and its weight can cycle between 0 and ~1e-9 forever, a move
    /// as large as the weight itself.
    fn small_gap(&self, fresh: &Fresh, c: &Coords, lam: &Acc, yy: &Acc, nt: usize) -> [bool; BLOCK] {
        let rf = self.masks.len() as f64;
        let (mut gmax, mut l1) = ([0f64; BLOCK], [0f64; BLOCK]);
        for (gj, wj) in c.g.iter().zip(&c.w) {
            for k in 0..nt {
                gmax[k] = gmax[k].max(gj[k].abs() as f64);
                l1[k] += wj[k].abs() as f64;
            }
        }
        let tol = self.args.tol.max(TOL_FLOOR);
        std::array::from_fn(|k| {
            if k >= nt {
                return true;
            }
            // The dual point is the residual scaled into the feasible set `‖X_cᵀθ‖∞ ≤ λ`.
            let scale = if gmax[k] > lam[k] { lam[k] / gmax[k] } else { 1.0 };
            let gap = 0.5 * fresh.rr[k] / rf * (1.0 + scale * scale) + lam[k] * l1[k] - scale * fresh.ry[k] / rf;
            gap <= tol * yy[k] / rf
        })
    }

    /// Recompute `s = y_c − X w` in f64 (no drift from the incremental f32 updates), with
    /// the sums the duality gap needs.
    fn refresh_residual(&self, t0: usize, nt: usize, ymean: &Acc, w: &[Row], s: &mut [Row]) -> Result<Fresh> {
        let (runs, tt) = (self.masks.len(), self.n_targets);
        let mut exact: Vec<Acc> = zeros("datamodel residuals", runs, [0f64; BLOCK])?;
        for (r, e) in exact.iter_mut().enumerate() {
            for k in 0..nt {
                e[k] = self.y[r * tt + t0 + k] - ymean[k];
            }
        }
        for (j, wj) in w.iter().enumerate() {
            if wj.iter().all(|&x| x == 0.0) {
                continue;
            }
            for_each_row(self.cols.column(j), |r| {
                for (e, &x) in exact[r].iter_mut().zip(wj) {
                    *e -= x as f64;
                }
            });
        }
        // The true residual is `s` plus `μᵀw` (the centering of X the stored `s` leaves out).
        let mut shift = [0f64; BLOCK];
        for (wj, &m) in w.iter().zip(self.mu) {
            for k in 0..nt {
                shift[k] += m * wj[k] as f64;
            }
        }
        let mut f = Fresh { ssum: [0.0; BLOCK], rr: [0.0; BLOCK], ry: [0.0; BLOCK] };
        for (r, (sr, e)) in s.iter_mut().zip(&exact).enumerate() {
            for k in 0..BLOCK {
                sr[k] = e[k] as f32;
                f.ssum[k] += e[k];
            }
            for k in 0..nt {
                let true_r = e[k] + shift[k];
                f.rr[k] += true_r * true_r;
                f.ry[k] += true_r * (self.y[r * tt + t0 + k] - ymean[k]);
            }
        }
        Ok(f)
    }

    /// `g[j] = X_cⱼᵀ r / R` for every feature, by byte columns of the packed rows: each run
    /// adds its residual row to the bucket of its mask byte, and feature `8c + i`'s sum is
    /// the sum of the buckets whose bit `7 − i` is set.
    fn full_gradient(&self, s: &[Row], ssum: &Acc, g: &mut [Row]) {
        g.par_chunks_mut(8 * 16).enumerate().for_each(|(chunk, gc)| match self.args.level {
            // SAFETY: as in `sweep`.
            #[cfg(target_arch = "x86_64")]
            VectorLevel::Avx512 => unsafe { self.gradient_chunk_avx512(chunk, gc, s, ssum) },
            #[cfg(target_arch = "x86_64")]
            VectorLevel::Avx2 => unsafe { self.gradient_chunk_avx2(chunk, gc, s, ssum) },
            _ => self.gradient_chunk(chunk, gc, s, ssum),
        });
    }

    vector_variants!(gradient_chunk -> (), (chunk: usize, gc: &mut [Row], s: &[Row], ssum: &Acc),
        "avx512f": gradient_chunk_avx512, "avx2": gradient_chunk_avx2);

    /// [`Self::full_gradient`] for the 16 byte columns (128 features) of chunk `chunk`.
    #[inline(always)]
    fn gradient_chunk(&self, chunk: usize, gc: &mut [Row], s: &[Row], ssum: &Acc) {
        let p = self.masks.packed;
        let (runs, n, stride, bytes) = (self.masks.len(), p.cols(), p.stride(), p.bytes());
        let rf = runs as f64;
        // This chunk's (up to 16) byte columns of every run, gathered once: the passes below
        // then read 16-byte rows, not one byte from each `stride`-byte (selected) mask row.
        let (b0, nb) = (chunk * 16, gc.len().div_ceil(8));
        let mut local_bytes = vec![0u8; runs * nb];
        for (r, dst) in local_bytes.chunks_exact_mut(nb).enumerate() {
            let src = self.masks.rows.map_or(r, |ix| ix[r]) * stride + b0;
            dst.copy_from_slice(&bytes[src..src + nb]);
        }
        let mut part = vec![[0f32; BLOCK]; 256];
        let mut acc = vec![[0f64; BLOCK]; 256];
        for (local, gb) in gc.chunks_mut(8).enumerate() {
            acc.iter_mut().for_each(|a| *a = [0.0; BLOCK]);
            for r0 in (0..runs).step_by(FLUSH_ROWS) {
                for r in r0..(r0 + FLUSH_ROWS).min(runs) {
                    add(&mut part[local_bytes[r * nb + local] as usize], &s[r]);
                }
                for (a, p) in acc.iter_mut().zip(part.iter_mut()) {
                    carry(a, p);
                }
            }
            // Fold the top bit away one bit at a time: its half's sum is that feature's.
            let mut len = 256;
            for (i, gj) in gb.iter_mut().enumerate() {
                let half = len / 2;
                let mut sum = [0f64; BLOCK];
                for a in &acc[half..len] {
                    for (x, y) in sum.iter_mut().zip(a) {
                        *x += y;
                    }
                }
                let (lo, hi) = acc.split_at_mut(half);
                for (a, b) in lo.iter_mut().zip(&hi[..half]) {
                    for k in 0..BLOCK {
                        a[k] += b[k];
                    }
                }
                len = half;
                let j = 8 * (b0 + local) + i;
                if j < n {
                    let mu = self.mu[j];
                    for k in 0..BLOCK {
                        gj[k] = ((sum[k] - mu * ssum[k]) / rf) as f32;
                    }
                }
            }
        }
    }

    /// Intercepts `b = ȳ − μᵀ w`.
    fn bias(&self, ymean: &Acc, w: &[Row], nt: usize) -> Acc {
        let mut b = *ymean;
        for (wj, &m) in w.iter().zip(self.mu) {
            for k in 0..nt {
                b[k] -= m * wj[k] as f64;
            }
        }
        b
    }

    /// Mean squared error of `b + X_val w` on the validation runs.
    fn val_mse(&self, yv: &[f64], vc: &BitColumns, t0: usize, nt: usize, bias: &Acc, w: &[Row]) -> Result<Acc> {
        let rv = vc.n_rows();
        let mut pred: Vec<Acc> = zeros("validation predictions", rv, *bias)?;
        for (j, wj) in w.iter().enumerate() {
            if wj.iter().all(|&x| x == 0.0) {
                continue;
            }
            for_each_row(vc.column(j), |r| {
                for (p, &x) in pred[r].iter_mut().zip(wj) {
                    *p += x as f64;
                }
            });
        }
        let mut mse = [0f64; BLOCK];
        for (r, p) in pred.iter().enumerate() {
            for k in 0..nt {
                let e = yv[r * self.n_targets + t0 + k] - p[k];
                mse[k] += e * e;
            }
        }
        mse.iter_mut().for_each(|m| *m /= rv as f64);
        Ok(mse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bits::pack_rows;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    fn problem(runs: usize, n: usize, t: usize, seed: u64) -> (Vec<bool>, Vec<f64>, Vec<f64>) {
        let mut rng = Rng(seed);
        let masks: Vec<bool> = (0..runs * n).map(|_| rng.next() < 0.5).collect();
        let mut wt = vec![0.0; t * n];
        for k in 0..t {
            for j in 0..n.min(3) {
                wt[k * n + (j * 7 + k) % n] = 1.0 + j as f64;
            }
        }
        let y: Vec<f64> = (0..runs * t)
            .map(|i| {
                let (r, k) = (i / t, i % t);
                (0..n).map(|j| if masks[r * n + j] { wt[k * n + j] } else { 0.0 }).sum::<f64>()
                    + 0.5
                    + 0.05 * (rng.next() - 0.5)
            })
            .collect();
        (masks, y, wt)
    }

    /// Subgradient optimality of the plain objective, checked densely.
    fn kkt_gap(masks: &[bool], y: &[f64], runs: usize, n: usize, t: usize, fit: &LassoFit, k: usize) -> f64 {
        let resid: Vec<f64> = (0..runs)
            .map(|r| {
                let pred: f64 =
                    (0..n).map(|j| if masks[r * n + j] { fit.weights[k * n + j] as f64 } else { 0.0 }).sum();
                y[r * t + k] - pred - fit.bias[k]
            })
            .collect();
        let mean: f64 = resid.iter().sum::<f64>() / runs as f64;
        let mut worst = mean.abs();
        for j in 0..n {
            let g: f64 = (0..runs).filter(|&r| masks[r * n + j]).map(|r| resid[r]).sum::<f64>() / runs as f64;
            let w = fit.weights[k * n + j] as f64;
            let viol = if w != 0.0 { (g - fit.lam[k] * w.signum()).abs() } else { (g.abs() - fit.lam[k]).max(0.0) };
            worst = worst.max(viol);
        }
        worst
    }

    #[test]
    fn fixed_lambda_is_optimal_and_sparse() {
        let (runs, n, t) = (300, 40, 35);
        let (masks, y, _) = problem(runs, n, t, 3);
        let packed = pack_rows(&masks, runs, n).unwrap();
        let p = PackedRows::new("m", &packed, runs, n).unwrap();
        let lam = vec![0.01; t];
        let args = LassoArgs { tol: 1e-9, ..LassoArgs::default() };
        assert_eq!(args.patience, 0);
        let fit = datamodels(RunMasks::all(p), &y, t, None, Some(&lam), args, None).unwrap();
        for k in 0..t {
            assert!(kkt_gap(&masks, &y, runs, n, t, &fit, k) < 1e-4, "target {k}");
        }
        // Exactly three planted features per target are the largest.
        let nnz = fit.weights.iter().filter(|w| **w != 0.0).count();
        assert!(nnz >= 3 * t && nnz < n * t / 2, "{nnz}");
    }

    #[test]
    fn lam_max_gives_zero_weights_and_mean_bias() {
        let (runs, n, t) = (50, 20, 3);
        let (masks, y, _) = problem(runs, n, t, 5);
        let packed = pack_rows(&masks, runs, n).unwrap();
        let p = PackedRows::new("m", &packed, runs, n).unwrap();
        let probe = datamodels(RunMasks::all(p), &y, t, None, Some(&[1e9; 3]), LassoArgs::default(), None).unwrap();
        assert!(probe.weights.iter().all(|w| *w == 0.0));
        let fit = datamodels(RunMasks::all(p), &y, t, None, Some(&probe.lam_max), LassoArgs::default(), None).unwrap();
        assert!(fit.weights.iter().all(|w| *w == 0.0));
        for k in 0..t {
            let mean = (0..runs).map(|r| y[r * t + k]).sum::<f64>() / runs as f64;
            assert!((fit.bias[k] - mean).abs() < 1e-9);
        }
    }

    /// A path fit with λ chosen on `val_runs` more runs of the same problem; with the
    /// planted weights.
    fn fit_validated(
        runs: usize,
        val_runs: usize,
        n: usize,
        t: usize,
        seed: u64,
        args: LassoArgs,
    ) -> (LassoFit, Vec<f64>) {
        let (masks, y, wt) = problem(runs + val_runs, n, t, seed);
        let packed = pack_rows(&masks[..runs * n], runs, n).unwrap();
        let vpacked = pack_rows(&masks[runs * n..], val_runs, n).unwrap();
        let p = PackedRows::new("m", &packed, runs, n).unwrap();
        let vm = PackedRows::new("v", &vpacked, val_runs, n).unwrap();
        let v = Validation { masks: RunMasks::all(vm), outcomes: &y[runs * t..] };
        (datamodels(RunMasks::all(p), &y[..runs * t], t, Some(v), None, args, None).unwrap(), wt)
    }

    #[test]
    fn validation_picks_a_lambda_and_recovers_the_plant() {
        let (n, t) = (30, 4);
        let (fit, wt) = fit_validated(400, 100, n, t, 9, LassoArgs::default());
        for k in 0..t {
            assert!(fit.lam[k] < fit.lam_max[k] && fit.val_mse[k] < 0.01, "{:?}", fit.val_mse);
            for j in 0..n {
                assert!((fit.weights[k * n + j] as f64 - wt[k * n + j]).abs() < 0.05);
            }
            assert!((fit.bias[k] - 0.5).abs() < 0.05);
        }
    }

    #[test]
    fn every_vector_level_gives_the_same_fit() {
        // Lane-wise row kernels: each level must return bit-identical weights (the
        // masks span several 64-run words and a partial last byte column).
        let levels = crate::cpu::vector_levels();
        assert_eq!(levels.last(), Some(&VectorLevel::Portable));
        let fits: Vec<LassoFit> = levels
            .iter()
            .map(|&level| {
                let args = LassoArgs { n_lambdas: 12, level, ..LassoArgs::default() };
                fit_validated(333, 60, 75, 40, 11, args).0
            })
            .collect();
        for (level, fit) in levels.iter().zip(&fits) {
            assert_eq!(fit, &fits[0], "level {level:?} differs from {:?}", levels[0]);
        }
    }

    #[test]
    fn selected_rows_fit_as_a_copy_of_them() {
        // Fitting and held-out runs picked by index from one matrix = the same runs copied.
        let (runs, n, t) = (300, 45, 33);
        let (masks, y, _) = problem(runs, n, t, 13);
        let packed = pack_rows(&masks, runs, n).unwrap();
        let all = PackedRows::new("m", &packed, runs, n).unwrap();
        let fit_rows: Vec<usize> = (0..runs).filter(|r| r % 5 != 2).rev().collect();
        let val_rows: Vec<usize> = (0..runs).filter(|r| r % 5 == 2).collect();
        let take = |rows: &[usize]| -> (Vec<u8>, Vec<f64>) {
            let m: Vec<bool> = rows.iter().flat_map(|&r| masks[r * n..(r + 1) * n].to_vec()).collect();
            (pack_rows(&m, rows.len(), n).unwrap(), rows.iter().flat_map(|&r| y[r * t..(r + 1) * t].to_vec()).collect())
        };
        let ((fm, fy), (vm, vy)) = (take(&fit_rows), take(&val_rows));
        let args = LassoArgs { n_lambdas: 15, ..LassoArgs::default() };
        let copied = datamodels(
            RunMasks::all(PackedRows::new("f", &fm, fit_rows.len(), n).unwrap()),
            &fy,
            t,
            Some(Validation {
                masks: RunMasks::all(PackedRows::new("v", &vm, val_rows.len(), n).unwrap()),
                outcomes: &vy,
            }),
            None,
            args,
            None,
        )
        .unwrap();
        let v = Validation { masks: RunMasks::selected(all, &val_rows), outcomes: &vy };
        let picked = datamodels(RunMasks::selected(all, &fit_rows), &fy, t, Some(v), None, args, None).unwrap();
        assert_eq!(picked, copied);
        let bad = [0usize, runs];
        assert!(datamodels(RunMasks::selected(all, &bad), &y[..2 * t], t, None, Some(&[0.1; 33]), args, None).is_err());
    }

    #[test]
    fn every_step_reports_whether_it_converged() {
        let (runs, n, t) = (200, 30, 5);
        let (masks, y, _) = problem(runs, n, t, 17);
        let packed = pack_rows(&masks, runs, n).unwrap();
        let p = PackedRows::new("m", &packed, runs, n).unwrap();
        let args = LassoArgs { n_lambdas: 8, tol: 1e-6, ..LassoArgs::default() };
        let fit = datamodels(RunMasks::all(p), &y, t, None, Some(&[1e-3; 5]), args, None).unwrap();
        assert_eq!((fit.converged.len(), fit.steps.clone()), (t * 8, vec![8; t]));
        assert!(fit.converged.iter().all(|&c| c));
        let cut = LassoArgs { max_iter: 1, ..args };
        let fit = datamodels(RunMasks::all(p), &y, t, None, Some(&[1e-3; 5]), cut, None).unwrap();
        assert!(fit.converged.iter().any(|&c| !c));
        assert!(fit.sweeps <= (t.div_ceil(BLOCK) * 8) as u64, "max_iter bounds each step's sweeps");
    }

    #[test]
    fn bad_input_is_an_error() {
        let packed = pack_rows(&[true, false, false, true], 2, 2).unwrap();
        let p = PackedRows::new("m", &packed, 2, 2).unwrap();
        let a = LassoArgs::default();
        assert!(datamodels(RunMasks::all(p), &[1.0, f64::NAN], 1, None, Some(&[0.1]), a, None).is_err());
        assert!(datamodels(RunMasks::all(p), &[1.0, 2.0], 1, None, Some(&[0.0]), a, None).is_err());
        assert!(datamodels(RunMasks::all(p), &[1.0, 2.0], 1, None, None, a, None).is_err());
        assert!(datamodels(RunMasks::all(p), &[1.0, 2.0, 3.0], 1, None, Some(&[0.1]), a, None).is_err());
        // Constant outcomes: zero weights, bias = the constant.
        let fit = datamodels(RunMasks::all(p), &[2.0, 2.0], 1, None, Some(&[0.1]), a, None).unwrap();
        assert_eq!(fit.weights, vec![0.0, 0.0]);
        assert_eq!(fit.bias, vec![2.0]);
    }
}
