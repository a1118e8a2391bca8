"""How reliable is a score, given the runs at hand? Split-half reliability, standard errors,
top-k overlap and detector intervals of every run score (array level).

A score estimated from R runs is an average over runs, so classical test theory applies:
score two disjoint halves of the runs, correlate the halves (Pearson: the reliability of a
score from R/2 runs), repeat over seeded random splits, and extend the mean half
correlation ``r`` to all R runs with the Spearman–Brown formula ``2r / (1 + r)``. Beside it:
Spearman's correlation of the halves, the Jaccard overlap of the halves' top-k lists, the
median closed-form standard error at R runs (where the estimator has one), and for
detectors (LiRA / RMIA membership scores; memorization as a label-noise detector) the
bootstrap interval over runs of AUROC and TPR at low FPR.

Every score is computed by the estimator that computes it elsewhere in memscore
(:func:`memscore.memorization`, :func:`memscore.influence`, :func:`memscore.lira`, ...) on
the rows (runs) of one half. :func:`reliability` returns one tidy table; the forecast of
:mod:`memscore.runs.forecast` extrapolates it.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from .._stats import spearman
from .._validate import MAX_BOOT, check_float, check_int
from ..executors import ExecutorLike, as_executor
from .datamodels import datamodels
from .lds import lds
from .membership import lira, membership_metrics
from .rmia import rmia, true_class_probability
from .scores import holdout_accuracy, influence, memorization
from .valuation import banzhaf, data_oob, run_utility

F64 = npt.NDArray[np.float64]

__all__ = [
    "SCORES",
    "RunArrays",
    "half_splits",
    "pearson",
    "reliability",
    "spearman_brown",
    "spearman_brown_runs",
    "top_k_overlap",
]


@dataclass(frozen=True)
class ScoreSpec:
    """What a score needs and how its reliability is read.

    ``top``: +1 when the interesting examples have the largest values (memorization),
    -1 the smallest (hold-out accuracy, Data-OOB), 0 for no top-k list of examples.
    ``needs``: the :class:`RunArrays` fields it reads.
    """

    needs: tuple[str, ...]
    top: int = 1
    stderr: bool = False
    detector: bool = False


#: The scores :func:`reliability` knows, and what each needs.
SCORES: dict[str, ScoreSpec] = {
    "memorization": ScoreSpec(("train",), top=1, stderr=True),
    "holdout": ScoreSpec(("train",), top=-1),
    "influence": ScoreSpec(("test",), top=0, stderr=True),
    "influence_topk": ScoreSpec(("test",), top=0),
    "lira": ScoreSpec(("train_phi",), top=1, detector=True),
    "rmia": ScoreSpec(("train_phi", "test_phi"), top=1, detector=True),
    "banzhaf": ScoreSpec(("test",), top=1, stderr=True),
    "data_oob": ScoreSpec(("train", "multiplicities"), top=-1),
    "datamodels": ScoreSpec(("test_phi",), top=0),
    "lds": ScoreSpec(("test_phi",), top=0),
}


@dataclass(frozen=True)
class RunArrays:
    """The per-run arrays the scores are computed from (rows are runs, in one order).

    Attributes
    ----------
    masks : ndarray of bool, shape (R, N)
    train, test : ndarray, shapes (R, N) and (R, T), optional
        Train / test outcomes (bool correctness or float).
    train_phi, test_phi : ndarray of float, optional
        Confidences φ (LiRA, RMIA, datamodels, LDS).
    multiplicities : ndarray of int, shape (R, N), optional
        Bootstrap draw counts (Data-OOB).
    ratios : ndarray of float, shape (R,), optional
        Each run's subset ratio (hold-out accuracy is averaged over ratio groups).
    corrupted : ndarray of bool, shape (N,), optional
        Ground-truth wrong labels: memorization is then also scored as their detector.
    """

    masks: npt.NDArray[np.bool_]
    train: np.ndarray | None = None
    test: np.ndarray | None = None
    train_phi: F64 | None = None
    test_phi: F64 | None = None
    multiplicities: np.ndarray | None = None
    ratios: F64 | None = None
    corrupted: npt.NDArray[np.bool_] | None = field(default=None)

    @property
    def n_runs(self) -> int:
        """R, the runs."""
        return int(self.masks.shape[0])

    def rows(self, idx: npt.NDArray[np.int64]) -> RunArrays:
        """The same arrays for the runs ``idx`` only (``corrupted`` is per example: kept)."""
        per_run = ("masks", "train", "test", "train_phi", "test_phi", "multiplicities", "ratios")
        kw: dict[str, Any] = {k: None if getattr(self, k) is None else getattr(self, k)[idx] for k in per_run}
        return replace(self, **kw)

    def get(self, name: str) -> np.ndarray:
        """The array ``name``, which the caller checked is there (:func:`check_scores`)."""
        a = getattr(self, name)
        if a is None:
            raise ValueError(f"the runs have no {name}")
        return np.asarray(a)


# ----------------------------------------------------------------------------- formulas


def spearman_brown(r: float, factor: float) -> float:
    """Reliability of a score from ``factor`` times the runs of one whose reliability is ``r``.

    ``factor · r / (1 + (factor - 1) · r)`` (Spearman 1910, Brown 1910): the reliability of
    a mean of ``factor`` parallel measurements. With ``factor = 2`` it extends a split-half
    correlation to the full count.

    Parameters
    ----------
    r : float
        The reliability (a correlation) at the known count, in [-1, 1].
    factor : float
        New count / known count, > 0.

    Returns
    -------
    float
        NaN when ``r`` is NaN.

    Raises
    ------
    ValueError
        ``r`` outside [-1, 1] or ``factor`` not positive.

    Examples
    --------
    >>> spearman_brown(0.5, 2.0)
    0.6666666666666666
    """
    k = check_float(factor, "factor", 0.0, low_open=True)
    if np.isnan(r):
        return float("nan")
    r = check_float(r, "r", -1.0, 1.0)
    den = 1.0 + (k - 1.0) * r
    return float(k * r / den) if den != 0 else float("nan")


def spearman_brown_runs(r: float, runs: float, target: float) -> float:
    """Runs at which a score of reliability ``r`` at ``runs`` runs reaches ``target``.

    Spearman–Brown solved for the factor: ``target (1 - r) / (r (1 - target))`` times
    ``runs`` (not rounded).

    Parameters
    ----------
    r : float
        Reliability at ``runs`` runs.
    runs : float
        The runs ``r`` was measured at, > 0.
    target : float
        The reliability wanted, in (0, 1).

    Returns
    -------
    float
        Infinite when ``r <= 0`` (more runs never get there); NaN when ``r`` is NaN.

    Raises
    ------
    ValueError
        ``target`` outside (0, 1), ``runs`` not positive.

    Examples
    --------
    >>> round(spearman_brown_runs(0.5, 32, 0.9), 6)
    288.0
    """
    x = check_float(target, "target", 0.0, 1.0, low_open=True, high_open=True)
    n = check_float(runs, "runs", 0.0, low_open=True)
    if np.isnan(r):
        return float("nan")
    if r <= 0:
        return float("inf")
    if r >= 1:  # already perfectly reliable: any count will do
        return 0.0
    return float(n * x * (1.0 - r) / (r * (1.0 - x)))


def pearson(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Pearson's correlation of ``a`` and ``b`` over the pairs where both are finite.

    Returns
    -------
    float
        NaN with fewer than three such pairs or a constant side.

    Examples
    --------
    >>> pearson([1, 2, 3, float("nan")], [2, 4, 7, 1])
    0.9933992677987828
    """
    x, y = np.ravel(np.asarray(a, dtype=np.float64)), np.ravel(np.asarray(b, dtype=np.float64))
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 3:
        return float("nan")
    x, y = x - x.mean(), y - y.mean()
    den = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / den) if den > 0 else float("nan")


def top_k_overlap(a: npt.ArrayLike, b: npt.ArrayLike, k: int, *, largest: bool = True) -> float:
    """Jaccard overlap ``|A ∩ B| / |A ∪ B|`` of the ``k`` top entries of ``a`` and of ``b``.

    NaN entries are never in a top list; ties break toward the lower index.

    Parameters
    ----------
    a, b : array-like of float, shape (N,)
    k : int
        List length, >= 1 (clamped to the defined entries).
    largest : bool, default True
        Top = largest values (False: smallest).

    Returns
    -------
    float
        NaN when either side has no defined entry.

    Examples
    --------
    >>> top_k_overlap([3, 2, 1, 0], [3, 1, 2, 0], 2)
    0.3333333333333333
    """
    k = check_int(k, "k", 1)
    sets = []
    for v in (a, b):
        x = np.asarray(v, dtype=np.float64).ravel()
        x = x if largest else -x
        ok = np.flatnonzero(np.isfinite(x))
        order = ok[np.argsort(-x[ok], kind="stable")]
        sets.append(set(order[:k].tolist()))
    union = sets[0] | sets[1]
    return len(sets[0] & sets[1]) / len(union) if sets[0] and sets[1] else float("nan")


def half_splits(n_runs: int, splits: int, seed: int) -> list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]]:
    """``splits`` random splits of ``n_runs`` runs into two disjoint halves of equal size.

    Split ``s`` draws from ``SeedSequence(seed, spawn_key=(s,))``, so a split does not
    depend on how many are drawn; with an odd count one run sits out. Each half is sorted.

    Raises
    ------
    ValueError
        Fewer than 4 runs, ``splits < 1`` or a negative ``seed``.

    Examples
    --------
    >>> [h.tolist() for h in half_splits(4, 1, 0)[0]]
    [[0, 1], [2, 3]]
    """
    r = check_int(n_runs, "n_runs", 4)
    splits, seed = check_int(splits, "splits", 1), check_int(seed, "seed", 0)
    out = []
    for s in range(splits):
        perm = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(s,))).permutation(r)
        h = r // 2
        out.append((np.sort(perm[:h]).astype(np.int64), np.sort(perm[h : 2 * h]).astype(np.int64)))
    return out


# ----------------------------------------------------------------------------- the scores


def _phi_probs(d: RunArrays) -> tuple[F64, F64]:
    return true_class_probability(d.get("train_phi")), true_class_probability(d.get("test_phi"))


def member_gap(masks: npt.NDArray[np.bool_], scores: F64) -> F64:
    """Per example, the mean membership score of the runs that trained on it minus that of
    the runs that did not, over the defined (finite) scores: memorization's in/out
    difference, which refuses undefined outcomes, taken where LiRA / RMIA leave some."""
    s = np.where(np.isfinite(scores), scores, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: NaN
        gap: F64 = np.nanmean(np.where(masks, s, np.nan), axis=0) - np.nanmean(np.where(masks, np.nan, s), axis=0)
    return gap


def score_values(name: str, d: RunArrays, opts: Mapping[str, Any]) -> np.ndarray:
    """The score ``name`` estimated from the runs of ``d`` (the estimator memscore uses).

    Per-example scores come back as ``(N,)``, pairwise ones as ``(T, N)``;
    ``influence_topk`` as the ``(T, k)`` indices. LiRA and RMIA score (run, example)
    pairs; their per-example score here is the mean score of the runs that trained on the
    example minus that of the runs that did not (:func:`member_gap`): how much more a
    member looks like one.
    """
    m = d.masks
    if name == "memorization":
        return memorization(m, d.get("train"))
    if name == "holdout":
        return holdout_accuracy(m, d.get("train"), ratios=d.ratios)
    if name == "influence":
        return np.asarray(influence(m, d.get("test"), dtype=np.float64))
    if name == "influence_topk":
        return influence(m, d.get("test"), top_k=int(opts["influence_k"]))[0]
    if name == "lira":
        return member_gap(m, lira(m, d.get("train_phi")))
    if name == "rmia":
        return member_gap(m, rmia(m, *_phi_probs(d)))
    if name == "banzhaf":
        return banzhaf(m, run_utility(d.get("test")))
    if name == "data_oob":
        return data_oob(d.get("multiplicities"), d.get("train"))
    if name == "datamodels":
        return datamodels(m, d.get("test_phi"), lam=opts.get("lam")).weights
    raise ValueError(f"score: expected one of {sorted(SCORES)}, got {name!r}")


def _rows_overlap(a: npt.NDArray[np.int64], b: npt.NDArray[np.int64]) -> float:
    """Mean Jaccard overlap of the rows of two (T, k) index lists (-1 pads)."""
    vals = []
    for x, y in zip(a, b, strict=True):
        sx, sy = set(x[x >= 0].tolist()), set(y[y >= 0].tolist())
        if sx and sy:
            vals.append(len(sx & sy) / len(sx | sy))
    return float(np.mean(vals)) if vals else float("nan")


def split_task(
    d: RunArrays, name: str, opts: Mapping[str, Any], a: npt.NDArray[np.int64], b: npt.NDArray[np.int64]
) -> dict[str, float]:
    """One split of one score: the statistics comparing the halves ``a`` and ``b``."""
    spec = SCORES[name]
    da, db = d.rows(a), d.rows(b)
    if name == "lds":  # fit the datamodels on one half, score them on the other (both ways)
        vals = []
        for fit, ev in ((da, db), (db, da)):
            w = datamodels(fit.masks, fit.get("test_phi"), lam=opts.get("lam")).weights
            vals.append(lds(w, ev.masks, ev.get("test_phi"), n_boot=0).mean)
        return {"lds": float(np.mean(vals))}
    va, vb = score_values(name, da, opts), score_values(name, db, opts)
    if name == "influence_topk":
        return {f"top{opts['influence_k']}_overlap": _rows_overlap(va, vb)}
    out = {"half_correlation": pearson(va, vb), "split_half_spearman": spearman(va.ravel(), vb.ravel())[0]}
    if spec.top:
        out[f"top{opts['top_k']}_overlap"] = top_k_overlap(va, vb, int(opts["top_k"]), largest=spec.top > 0)
    elif name == "datamodels":
        k = int(opts["influence_k"])
        top = [np.argsort(-np.nan_to_num(v, nan=-np.inf), axis=1, kind="stable")[:, :k] for v in (va, vb)]
        out[f"top{k}_overlap"] = _rows_overlap(top[0], top[1])
    return out


def _median(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    ok = x[np.isfinite(x)]
    return float(np.median(ok)) if ok.size else float("nan")


def _metrics(scores: np.ndarray, labels: np.ndarray, levels: tuple[float, ...]) -> dict[str, float]:
    got = membership_metrics(scores, labels, fpr_levels=levels)
    return {"auc": got.auc, **{f"tpr@{f:g}": got.tpr_at_fpr[f] for f in levels}}


def full_task(d: RunArrays, name: str, opts: Mapping[str, Any]) -> dict[str, tuple[float, float, float]]:
    """The statistics of one score that use every run at once: the median standard error
    and the detectors' bootstrap intervals over runs, as (value, low, high)."""
    spec = SCORES[name]
    nan = float("nan")
    out: dict[str, tuple[float, float, float]] = {}
    m = d.masks
    if spec.stderr:
        se: np.ndarray
        if name == "memorization":
            se = memorization(m, d.get("train"), stderr=True)[1]
        elif name == "influence":
            se = influence(m, d.get("test"), stderr=True, dtype=np.float64)[1]
        else:
            se = banzhaf(m, run_utility(d.get("test")), stderr=True)[1]
        out["median_stderr"] = (_median(se), nan, nan)
    levels = tuple(opts["fpr_levels"])
    n_boot, level = int(opts["n_boot"]), float(opts["confidence"])
    rng = np.random.default_rng(np.random.SeedSequence(int(opts["seed"]), spawn_key=(len(d.masks),)))
    boots: list[dict[str, float]] = []
    point: dict[str, float] = {}
    prefix = ""
    if spec.detector:  # membership: every (run, example) a trial; resample the target runs
        s = lira(m, d.get("train_phi")) if name == "lira" else rmia(m, *_phi_probs(d))
        point = _metrics(s, m, levels)
        for _ in range(n_boot):
            idx = rng.integers(0, d.n_runs, d.n_runs)
            boots.append(_metrics(s[idx], m[idx], levels))
    elif name == "memorization" and d.corrupted is not None:  # a label-noise detector
        prefix = "noise_"
        point = _metrics(memorization(m, d.get("train")), d.corrupted, levels)
        for _ in range(n_boot):
            idx = rng.integers(0, d.n_runs, d.n_runs)
            boots.append(_metrics(memorization(m[idx], d.get("train")[idx]), d.corrupted, levels))
    for key, v in point.items():
        lo = hi = nan
        if boots:
            col = np.array([b[key] for b in boots])
            col = col[np.isfinite(col)]
            if col.size:
                lo, hi = (float(q) for q in np.quantile(col, [(1 - level) / 2, (1 + level) / 2]))
        out[prefix + key] = (v, lo, hi)
        out[prefix + key + "_width"] = (hi - lo, nan, nan)
    return out


def check_scores(scores: Sequence[str] | str, d: RunArrays | None = None) -> list[str]:
    """The score names, each known (and, with ``d``, with the arrays it needs).

    Raises
    ------
    ValueError
        An unknown score, none, or a score whose arrays ``d`` lacks.
    """
    names = [scores] if isinstance(scores, str) else list(scores)
    if not names:
        raise ValueError(f"scores: expected at least one of {sorted(SCORES)}, got none")
    for s in names:
        if s not in SCORES:
            raise ValueError(f"scores: expected names among {sorted(SCORES)}, got {s!r}")
        if d is not None:
            lack = [f for f in SCORES[s].needs if getattr(d, f) is None]
            if lack:
                raise ValueError(f"scores: {s!r} needs the runs' {', '.join(lack)}, which they do not have")
    return list(dict.fromkeys(names))


def reliability(
    data: RunArrays,
    scores: Sequence[str] | str,
    *,
    splits: int = 10,
    seed: int = 0,
    top_k: int = 100,
    influence_k: int = 10,
    n_boot: int = 200,
    confidence: float = 0.95,
    fpr_levels: Sequence[float] = (0.001,),
    lam: float | None = None,
    executor: ExecutorLike = None,
) -> pl.DataFrame:
    """The reliability of every score in ``scores`` from the runs of ``data``.

    Parameters
    ----------
    data : RunArrays
        Masks and the arrays the scores need.
    scores : str or sequence of str
        Names among :data:`SCORES`: ``memorization``, ``holdout`` (C-score),
        ``influence`` (the full matrix), ``influence_topk`` (each test example's top
        ``influence_k``), ``lira``, ``rmia``, ``banzhaf``, ``data_oob``, ``datamodels``
        (weights), ``lds`` (fitted on one half, scored on the other).
    splits : int, default 10
        Random splits into halves.
    seed : int, default 0
        Seed of the splits and the bootstrap.
    top_k : int, default 100
        Length of the examples' top lists (``top100_overlap``).
    influence_k : int, default 10
        Length of each test example's top list (``influence_topk``, ``datamodels``).
    n_boot : int, default 200
        Bootstrap resamples of the runs for detector intervals (0: none).
    confidence : float, default 0.95
        Coverage of the intervals.
    fpr_levels : sequence of float, default (0.001,)
        FPR levels of the detectors' TPR.
    lam : float, optional
        A fixed λ for datamodels (default: chosen on held-out runs of each half).
    executor : None, str or memscore.executors.Executor
        Who runs the tasks (one per score and split; one per score for the statistics of
        all runs); identical results under every executor.

    Returns
    -------
    polars.DataFrame
        Tidy: ``score``, ``statistic``, ``value``, ``runs`` (the runs the value describes),
        ``low``, ``high`` (an interval, null where none). Statistics:
        ``half_correlation`` (Pearson of the halves, at R/2 runs, the interval the 10%-90%
        range over splits), ``split_half_reliability`` (its Spearman–Brown extension to
        R), ``split_half_spearman`` (at R/2), ``top{k}_overlap`` (at R/2),
        ``median_stderr`` (at R), ``lds`` (at R/2), and for detectors ``auc``,
        ``tpr@<fpr>`` with their bootstrap intervals and ``*_width`` (memorization with
        ``corrupted``: ``noise_auc``, ...).

    Raises
    ------
    ValueError
        An unknown score, a score whose arrays are missing, fewer than 4 runs, bad options.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> masks = rng.random((40, 50)) < 0.5
    >>> correct = rng.random((40, 50)) < np.where(masks, 0.9, 0.1 + 0.8 * rng.random(50))
    >>> t = reliability(RunArrays(masks, train=correct), "memorization", splits=4)
    >>> t.filter(statistic="split_half_reliability")["runs"].item()
    40
    """
    names = check_scores(scores, data)
    splits = check_int(splits, "splits", 1)
    opts: dict[str, Any] = {
        "top_k": check_int(top_k, "top_k", 1),
        "influence_k": check_int(influence_k, "influence_k", 1),
        "n_boot": check_int(n_boot, "n_boot", 0, MAX_BOOT),
        "confidence": check_float(confidence, "confidence", 0.0, 1.0, low_open=True, high_open=True),
        "fpr_levels": tuple(check_float(f, "fpr_levels[]", 0.0, 1.0) for f in fpr_levels),
        "seed": check_int(seed, "seed", 0),
        "lam": None if lam is None else check_float(lam, "lam", 0.0, low_open=True),
    }
    pairs = half_splits(data.n_runs, splits, opts["seed"])
    r, h = data.n_runs, data.n_runs // 2
    ex = as_executor(executor)
    ex.start(gpus=0)
    shared = ex.share(data)
    args = [(shared, n, opts, a, b) for n in names for a, b in pairs]
    got = dict(ex.map(split_task, args, gpus=0, desc="reliability"))
    full = dict(ex.map(full_task, [(shared, n, opts) for n in names], gpus=0, desc="reliability"))
    rows: list[tuple[str, str, float, int, float | None, float | None]] = []
    for j, n in enumerate(names):
        per = [got[j * splits + s] for s in range(splits)]
        for stat in per[0]:
            vals = np.array([p[stat] for p in per], dtype=np.float64)
            ok = vals[np.isfinite(vals)]
            mean = float(ok.mean()) if ok.size else float("nan")
            lo, hi = (float(q) for q in np.quantile(ok, [0.1, 0.9])) if ok.size else (None, None)
            rows.append((n, stat, mean, h, lo, hi))
            if stat == "half_correlation":
                ext = [spearman_brown(x, 2.0) if x is not None else None for x in (lo, hi)]
                rows.append((n, "split_half_reliability", spearman_brown(mean, 2.0), r, ext[0], ext[1]))
        for stat, (v, lo2, hi2) in full[j].items():
            rows.append((n, stat, v, r, None if np.isnan(lo2) else lo2, None if np.isnan(hi2) else hi2))
    return pl.DataFrame(
        rows,
        schema={
            "score": pl.String,
            "statistic": pl.String,
            "value": pl.Float64,
            "runs": pl.Int64,
            "low": pl.Float64,
            "high": pl.Float64,
        },
        orient="row",
    )
