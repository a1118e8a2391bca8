"""What distillation does to each training example: its memorization, its confidence and its
membership exposure in a distilled student against a model of the same size trained on the
labels (Lukasik et al. 2023, *What do larger image classifiers memorise?*; Nagarajan et al.
2023, *On student-teacher deviations in distillation*).

:func:`distillation_effect` reads three run stores over the same examples (the *plain* arm
trained on the labels, the *distilled* arm trained on a teacher's soft labels, the teacher's
runs) and returns a :class:`DistillationEffect`: one row per training example, and beside it
the tables of the two papers and of a privacy audit (mean change of memorization per
trajectory class across model sizes; student against teacher confidence binned by the
teacher's; test accuracy and membership AUROC / TPR at 0.1% FPR of both arms).

Every number comes from the stores' own scans: memorization and its standard error from
:meth:`RunStore.memorization`, the probability of the label from each run's stored φ
(:func:`memscore.true_class_probability`: exactly the softmax probability of the logits),
averaged with :class:`~memscore.runs.scores.OutcomeStats`, membership from
:meth:`RunStore.lira` / :meth:`RunStore.rmia` and :func:`memscore.membership_metrics`. The
formulas are written out plainly in :mod:`memscore.reference.distillation`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from .._stats import softmax
from .._validate import MAX_BOOT, ArrayLike, check_choice, check_float, check_int, to_numpy
from ..errors import StoreError
from ..executors import ExecutorLike
from .membership import membership_metrics
from .proxies import TRAJECTORY_KINDS
from .proxies import trajectories as classify_trajectories
from .rmia import true_class_probability
from .scores import OutcomeStats
from .store import RunStore

__all__ = ["ATTACKS", "Arms", "as_store", "DistillationEffect", "check_arms", "distillation_effect", "teacher_store_of"]

F64 = npt.NDArray[np.float64]

#: The membership attacks :func:`distillation_effect` can audit the arms with.
ATTACKS = ("lira", "rmia")
#: The FPR level of the arms table's TPR (Carlini et al. 2022's headline number).
FPR_LEVEL = 0.001


@dataclass(frozen=True)
class DistillationEffect:
    """What distillation did, example by example and in summary (:func:`distillation_effect`).

    Attributes
    ----------
    table : polars.DataFrame
        One row per training example: ``index``, ``label`` (null without labels),
        ``mem_plain``, ``mem_distilled``, ``delta`` (distilled − plain), ``delta_stderr``
        (``sqrt(se_plain² + se_distilled²)``: the arms' runs are independent), ``plain_conf``
        and ``student_conf`` (probability of the label, averaged over the arm's runs that
        trained on the example); with a teacher, ``teacher_conf`` and ``deviation``
        (``student_conf − teacher_conf``); with trajectories, ``trajectory`` (a class of
        :data:`memscore.runs.proxies.TRAJECTORY_KINDS`, null where a size's score is NaN).
        NaN marks undefined estimates (no run held the example in or out).
    by_trajectory : polars.DataFrame
        Lukasik et al.'s table: ``trajectory`` (``"all"`` first, then each class present),
        ``n`` (examples with a defined delta), ``mean_mem_plain``, ``mean_mem_distilled``,
        ``mean_delta`` and its normal interval ``ci_low`` / ``ci_high`` (mean ± z·s/√n over
        the examples, s with ddof = 1: the examples' spread includes each delta's own
        estimation noise). Only the ``"all"`` row without trajectories.
    confidence : polars.DataFrame
        Nagarajan et al.'s plot: per ``split`` (``"train"``; ``"test"`` with a teacher store
        that has test examples) and ``bin`` of the teacher's confidence (equal widths
        ``teacher_low`` .. ``teacher_high`` on [0, 1], the last bin closed), ``n`` examples
        and their mean ``teacher_conf``, ``student_conf``, ``plain_conf`` and ``deviation``
        (NaN in empty bins). On train, an example's confidences are the in-run averages of
        :attr:`table`; on test, averages over all runs (every run held them out). Empty
        without a teacher.
    arms : polars.DataFrame
        One row per arm (``"plain"``, ``"distilled"``, and ``"teacher"`` for a teacher
        store): ``runs``, ``test_accuracy`` (mean over runs) and ``test_accuracy_stderr``
        (over runs), ``test_conf`` (mean probability of the test label), ``mean_memorization``,
        ``attack`` and its ``auroc``, ``tpr_at_fpr_0.001`` with bootstrap intervals over runs
        (``*_low`` / ``*_high``, null without ``n_boot``). The teacher's test numbers are those of
        the paired runs; its attack uses every run of its store as a shadow.
    teacher : str or None
        Where the teacher came from: the teacher store's path, ``"logits"`` for an array,
        or None.
    kind : str
        The outcome memorization was computed on (``"correct"`` or ``"phi"``).
    """

    table: pl.DataFrame
    by_trajectory: pl.DataFrame
    confidence: pl.DataFrame
    arms: pl.DataFrame
    teacher: str | None
    kind: str

    def __repr__(self) -> str:
        """A one-line summary (the tables are attributes)."""
        return (
            f"DistillationEffect({self.table.height} examples, kind={self.kind!r}, teacher={self.teacher!r}, "
            f"mean delta {_all_row(self.by_trajectory)})"
        )


def _all_row(by_trajectory: pl.DataFrame) -> str:
    row = by_trajectory.row(0, named=True) if by_trajectory.height else {"mean_delta": float("nan")}
    return f"{row['mean_delta']:.4f}"


# ----------------------------------------------------------------------------- inputs


def as_store(x: Any, name: str) -> RunStore:
    """A run store given as one or as its directory.

    Raises
    ------
    TypeError
        ``x`` is neither (the message names ``name``).
    StoreError
        The directory holds no readable store.
    """
    if isinstance(x, RunStore):
        return x
    if isinstance(x, (str, os.PathLike)):
        return RunStore.open(x)
    raise TypeError(f"{name}: expected a memscore.RunStore or its directory, got {type(x).__name__}")


def _check_same_examples(ref: RunStore, other: RunStore, name: str) -> None:
    """``other`` holds the examples and labels of ``ref`` (the ``plain`` store).

    Raises
    ------
    ValueError
        Another size, other labels or another class count; the message names ``name``.
    """
    sizes, want = (other.n_train, other.n_test), (ref.n_train, ref.n_test)
    if sizes != want:
        raise ValueError(
            f"{name}: expected the examples of plain ({want[0]} training / {want[1]} test), "
            f"got {sizes[0]} / {sizes[1]} in {other.path}"
        )
    for split, a, b in (("train", ref.train_labels, other.train_labels), ("test", ref.test_labels, other.test_labels)):
        if (a is None) != (b is None) or (a is not None and b is not None and not np.array_equal(a, b)):
            raise ValueError(f"{name}: expected the {split} labels of plain, got other labels in {other.path}")
    if ref.n_classes is not None and other.n_classes is not None and ref.n_classes != other.n_classes:
        raise ValueError(f"{name}: expected {ref.n_classes} classes as plain, got {other.n_classes} in {other.path}")


def _check_runs(store: RunStore, name: str) -> None:
    if not len(store):
        raise StoreError(f"{name}: {store.path} holds no runs")


def teacher_store_of(distilled: RunStore) -> RunStore | None:
    """The teacher store the distilled runs record, or None.

    The training driver records ``metadata["distill"]["teacher"]["store"]`` (an absolute
    path) in each distilled run; the first run's record is read (a store holds runs of one
    distillation setting). Teachers recorded by a hash (logits, a module) give None.

    Parameters
    ----------
    distilled : RunStore
        A store of distilled runs.

    Returns
    -------
    RunStore or None

    Raises
    ------
    StoreError
        The recorded store cannot be opened (the message names the path and the run).
    """
    ids = distilled.run_ids()
    if not ids:
        return None
    spec = distilled.run_metadata(ids[0]).get("distill")
    teacher = spec.get("teacher") if isinstance(spec, dict) else None
    path = teacher.get("store") if isinstance(teacher, dict) else None
    if not isinstance(path, str):
        return None
    try:
        return RunStore.open(path)
    except (StoreError, OSError) as exc:
        raise StoreError(
            f"distilled: run {ids[0]!r} of {distilled.path} records the teacher store {path!r}, "
            f"which cannot be opened ({exc}); pass teacher= explicitly"
        ) from None


def _teacher_logits(x: Any, plain: RunStore) -> F64:
    """The ``(n_train,)`` teacher probability of each training label from ``(n_train, C)`` logits.

    Raises
    ------
    TypeError
        Not numeric.
    ValueError
        Wrong shape or class count, NaN / infinite values, or stores without train labels.
    """
    a = to_numpy(x, "teacher")
    if a.dtype == np.bool_ or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise TypeError(f"teacher: expected a RunStore or (n_train, C) float logits, got dtype {a.dtype}")
    n, c = plain.n_train, plain.n_classes
    if a.ndim != 2 or a.shape[0] != n or a.shape[1] < 1:
        want = f"({n}, {c if c is not None else 'C'})"
        raise ValueError(f"teacher: expected logits of shape {want} (one row per training example), got {a.shape}")
    if c is not None and a.shape[1] != c:
        raise ValueError(f"teacher: expected logits of {c} classes (the stores'), got {a.shape[1]} columns")
    z = np.asarray(a, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(z).all(axis=1))
    if bad.size:
        raise ValueError(f"teacher: logits contain NaN or infinite values ({bad.size} rows, first row {int(bad[0])})")
    y = plain.train_labels
    if y is None:
        raise ValueError("teacher: logits need the training labels, and the stores have none")
    if y.size and int(y.max()) >= a.shape[1]:
        raise ValueError(f"teacher: logits have {a.shape[1]} columns, but a training label is {int(y.max())}")
    probs: F64 = softmax(z)[np.arange(n), y]
    return probs


def _paired_rows(teacher: RunStore, distilled: RunStore) -> npt.NDArray[np.int64]:
    """Row of each distilled run's teacher (the run of the same id) in ``teacher``'s run list.

    Raises
    ------
    ValueError
        A distilled run has no teacher run, or its teacher trained on another subset.
    """
    ids = distilled.run_ids()
    where = {rid: k for k, rid in enumerate(teacher.run_ids())}
    missing = [rid for rid in ids if rid not in where]
    if missing:
        raise ValueError(
            f"teacher: no run {missing[0]!r} in {teacher.path} ({len(missing)} of the {len(ids)} distilled runs "
            "have no teacher run of the same id; student run r learns from teacher run r)"
        )
    rows = np.array([where[rid] for rid in ids], dtype=np.int64)
    t_bits = teacher.masks(packed=True).bits[rows]
    differ = np.flatnonzero((t_bits != distilled.masks(packed=True).bits).any(axis=1))
    if differ.size:
        rid = ids[int(differ[0])]
        raise ValueError(
            f"teacher: run {rid!r} of {teacher.path} was trained on another subset than the distilled run "
            f"{rid!r} ({differ.size} pairs differ); a student run learns from the teacher run of its own subset"
        )
    return rows


def _size_memorization(
    trajectories: Any, plain: RunStore, kind: str, chunk_runs: int, executor: ExecutorLike
) -> dict[Any, F64]:
    """``{size: (n_train,) memorization}`` from stores or arrays."""
    if not isinstance(trajectories, Mapping):
        raise TypeError(
            f"trajectories: expected a mapping size -> RunStore or (n_train,) memorization, "
            f"got {type(trajectories).__name__}"
        )
    out: dict[Any, F64] = {}
    for size, v in trajectories.items():
        name = f"trajectories[{size!r}]"
        if isinstance(v, (RunStore, str, os.PathLike)):
            s = as_store(v, name)
            _check_same_examples(plain, s, name)
            _check_runs(s, name)
            out[size] = np.asarray(s.memorization(kind, chunk_runs=chunk_runs, executor=executor))
            continue
        a = to_numpy(v, name)
        if a.dtype == np.bool_ or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
            raise TypeError(f"{name}: expected float memorization scores, got dtype {a.dtype}")
        if a.shape != (plain.n_train,):
            raise ValueError(f"{name}: expected shape ({plain.n_train},), got {a.shape}")
        if np.isinf(a).any():
            raise ValueError(f"{name}: contains infinite values (memorization lies in [-1, 1]; NaN is undefined)")
        out[size] = np.asarray(a, dtype=np.float64)
    return out


@dataclass(frozen=True)
class Arms:
    """The checked inputs of :func:`distillation_effect` (:func:`check_arms`).

    Attributes
    ----------
    plain, distilled : RunStore
        The two arms.
    teacher : RunStore or None
        The teacher's store.
    rows : ndarray of int64 or None
        The row of each distilled run's teacher in ``teacher``'s run list.
    logits : ndarray of float64 or None
        ``(n_train,)`` teacher probability of each label, from given logits.
    """

    plain: RunStore
    distilled: RunStore
    teacher: RunStore | None
    rows: npt.NDArray[np.int64] | None
    logits: F64 | None


def check_arms(plain: Any, distilled: Any, teacher: Any = None) -> Arms:
    """Open and check the arms and the teacher of :func:`distillation_effect` (its parameters
    and errors), reading no more than the masks: a caller that scores much else first (the
    report) refuses bad input before that work.

    Returns
    -------
    Arms
    """
    p = as_store(plain, "plain")
    d = as_store(distilled, "distilled")
    _check_same_examples(p, d, "distilled")
    _check_runs(p, "plain")
    _check_runs(d, "distilled")
    t_store: RunStore | None = None
    logits: F64 | None = None
    rows: npt.NDArray[np.int64] | None = None
    if teacher is None:
        t_store = teacher_store_of(d)
    elif isinstance(teacher, (RunStore, str, os.PathLike)):
        t_store = as_store(teacher, "teacher")
    else:
        logits = _teacher_logits(teacher, p)
    if t_store is not None:
        _check_same_examples(p, t_store, "teacher")
        rows = _paired_rows(t_store, d)
    return Arms(p, d, t_store, rows, logits)


# ----------------------------------------------------------------------------- reading runs


def _rows(store: RunStore, split: str, kind: str, keep: npt.NDArray[np.int64] | None, chunk_runs: int) -> Iterator[Any]:
    """``(masks, outcomes)`` of the store's runs at rows ``keep`` (all when None), in chunks."""
    sel = None
    if keep is not None:
        sel = np.zeros(len(store), dtype=bool)
        sel[keep] = True
    start = 0
    for m, o in store.iter_chunks(chunk_runs, split=split, kind=kind):
        stop = start + m.shape[0]
        if sel is not None:
            m, o = m[sel[start:stop]], o[sel[start:stop]]
        start = stop
        if m.shape[0]:
            yield m, o


@dataclass
class _Arm:
    """What one arm's runs say: train confidence, test confidence and accuracy per run."""

    runs: int
    train_conf: F64
    test_conf: F64
    test_accuracy: F64  # (R,) per run


def _read_arm(store: RunStore, keep: npt.NDArray[np.int64] | None, chunk_runs: int) -> _Arm:
    """The probability of the label averaged over the in-runs of each training example and
    over all runs of each test example, and each run's test accuracy."""
    n, t = store.n_train, store.n_test
    stats: OutcomeStats | None = None
    runs = 0
    for m, phi in _rows(store, "train", "phi", keep, chunk_runs):
        part = OutcomeStats.from_runs(m, true_class_probability(phi), shift=np.zeros(n))
        stats = part if stats is None else stats + part
        runs += m.shape[0]
    train_conf = stats.mean_in() if stats is not None else np.full(n, np.nan)
    test_conf, acc = np.full(t, np.nan), np.zeros(0)
    if t:
        total, runs = np.zeros(t), 0
        for _, phi in _rows(store, "test", "phi", keep, chunk_runs):
            total += true_class_probability(phi).sum(axis=0)
            runs += phi.shape[0]
        test_conf = total / runs if runs else test_conf
        acc = np.concatenate([c.mean(axis=1) for _, c in _rows(store, "test", "correct", keep, chunk_runs)])
    return _Arm(runs, train_conf, test_conf, np.asarray(acc, dtype=np.float64))


def _memorization(store: RunStore, kind: str, chunk_runs: int, executor: ExecutorLike) -> tuple[F64, F64]:
    """The store's memorization and its standard error (one scan)."""
    got = store.memorization(kind, stderr=True, chunk_runs=chunk_runs, executor=executor)
    assert isinstance(got, tuple)
    return got


# ----------------------------------------------------------------------------- summaries


def trajectory_means(table: pl.DataFrame, ci: float) -> pl.DataFrame:
    """Mean delta per trajectory class with a normal interval (see :class:`DistillationEffect`)."""
    z = NormalDist().inv_cdf(0.5 + ci / 2.0)
    groups: list[tuple[str, pl.DataFrame]] = [("all", table)]
    if "trajectory" in table.columns:
        groups += [(k, table.filter(pl.col("trajectory") == k)) for k in TRAJECTORY_KINDS]
        groups = [g for g in groups if g[0] == "all" or g[1].height]
    rows = []
    for name, part in groups:
        d = part["delta"].to_numpy()
        ok = np.isfinite(d)
        d = d[ok]
        mean = float(d.mean()) if d.size else float("nan")
        half = z * float(d.std(ddof=1)) / np.sqrt(d.size) if d.size >= 2 else float("nan")
        rows.append(
            {
                "trajectory": name,
                "n": int(d.size),
                "mean_mem_plain": _mean(part["mem_plain"].to_numpy()[ok]),
                "mean_mem_distilled": _mean(part["mem_distilled"].to_numpy()[ok]),
                "mean_delta": mean,
                "ci_low": mean - half,
                "ci_high": mean + half,
            }
        )
    return pl.DataFrame(rows, schema={"trajectory": pl.String, "n": pl.Int64, **dict.fromkeys(_MEAN_COLS, pl.Float64)})


_MEAN_COLS = ("mean_mem_plain", "mean_mem_distilled", "mean_delta", "ci_low", "ci_high")


def _mean(x: F64) -> float:
    return float(x.mean()) if x.size else float("nan")


def confidence_bins(split: str, teacher: F64, student: F64, plain: F64, bins: int) -> pl.DataFrame:
    """Mean confidences of the examples in each equal-width bin of the teacher's confidence."""
    ok = np.isfinite(teacher) & np.isfinite(student)
    which = np.minimum((teacher[ok] * bins).astype(np.int64), bins - 1)
    cols: dict[str, list[Any]] = {k: [] for k in ("teacher_conf", "student_conf", "plain_conf", "deviation")}
    counts = []
    for b in range(bins):
        inside = which == b
        counts.append(int(inside.sum()))
        t, s = teacher[ok][inside], student[ok][inside]
        p = plain[ok][inside]
        p = p[np.isfinite(p)]
        cols["teacher_conf"].append(_mean(t))
        cols["student_conf"].append(_mean(s))
        cols["plain_conf"].append(_mean(p))
        cols["deviation"].append(_mean(s - t))
    edges = np.linspace(0.0, 1.0, bins + 1)
    return pl.DataFrame(
        {
            "split": [split] * bins,
            "bin": np.arange(bins, dtype=np.int64),
            "teacher_low": edges[:-1],
            "teacher_high": edges[1:],
            "n": np.array(counts, dtype=np.int64),
            **{k: np.array(v, dtype=np.float64) for k, v in cols.items()},
        }
    )


_ARM_SCHEMA = {
    "arm": pl.String,
    "runs": pl.Int64,
    "test_accuracy": pl.Float64,
    "test_accuracy_stderr": pl.Float64,
    "test_conf": pl.Float64,
    "mean_memorization": pl.Float64,
    "attack": pl.String,
    "auroc": pl.Float64,
    "auroc_low": pl.Float64,
    "auroc_high": pl.Float64,
    f"tpr_at_fpr_{FPR_LEVEL:g}": pl.Float64,
    f"tpr_at_fpr_{FPR_LEVEL:g}_low": pl.Float64,
    f"tpr_at_fpr_{FPR_LEVEL:g}_high": pl.Float64,
}


def _arm_row(
    name: str,
    store: RunStore,
    arm: _Arm,
    mem: F64,
    attack: str,
    ci: float,
    n_boot: int | None,
    seed: int,
    executor: ExecutorLike,
) -> dict[str, Any]:
    """One row of the arms table: test accuracy and the attack's AUROC / TPR at 0.1% FPR."""
    scores = store.lira(executor=executor) if attack == "lira" else store.rmia(executor=executor)
    masks = store.masks()
    if n_boot is None:
        m = membership_metrics(scores, masks, fpr_levels=(FPR_LEVEL,))
    else:
        m = membership_metrics(scores, masks, fpr_levels=(FPR_LEVEL,), ci=ci, n_boot=n_boot, seed=seed)
    iv = m.intervals.get("runs", {})
    acc = arm.test_accuracy
    tpr = f"tpr_at_fpr_{FPR_LEVEL:g}"
    return {
        "arm": name,
        "runs": arm.runs,
        "test_accuracy": _mean(acc),
        "test_accuracy_stderr": float(acc.std(ddof=1) / np.sqrt(acc.size)) if acc.size >= 2 else float("nan"),
        "test_conf": _mean(arm.test_conf),
        "mean_memorization": float(np.nanmean(mem)) if np.isfinite(mem).any() else float("nan"),
        "attack": attack,
        "auroc": m.auc,
        "auroc_low": iv["auc"][0] if iv else None,
        "auroc_high": iv["auc"][1] if iv else None,
        tpr: m.tpr_at_fpr[FPR_LEVEL],
        f"{tpr}_low": iv[tpr][0] if iv else None,
        f"{tpr}_high": iv[tpr][1] if iv else None,
    }


# ----------------------------------------------------------------------------- the function


def distillation_effect(
    plain: RunStore | str | os.PathLike[str],
    distilled: RunStore | str | os.PathLike[str],
    *,
    teacher: RunStore | str | os.PathLike[str] | ArrayLike | None = None,
    trajectories: Mapping[Any, Any] | None = None,
    kind: str = "correct",
    tol: float = 0.1,
    bins: int = 10,
    attack: str = "lira",
    ci: float = 0.95,
    n_boot: int | None = None,
    seed: int = 0,
    chunk_runs: int = 256,
    executor: ExecutorLike = None,
) -> DistillationEffect:
    """What distillation does to each training example's memorization, confidence and
    membership exposure (Lukasik et al. 2023; Nagarajan et al. 2023).

    The *plain* runs learnt the labels; the *distilled* runs learnt (partly) a teacher's soft
    labels, on random subsets of the same examples. Per training example i:

    - ``mem_plain``, ``mem_distilled``: memorization in each arm (:meth:`RunStore.memorization`
      on ``kind``), ``delta = mem_distilled − mem_plain`` and ``delta_stderr =
      sqrt(se_plain² + se_distilled²)``;
    - ``plain_conf``, ``student_conf``: the probability of the label, averaged over the arm's
      runs that trained on i; ``teacher_conf`` likewise over the paired teacher runs (the
      teacher of student run r is the teacher run with id r, trained on the same subset), or
      the softmax of the given logits; ``deviation = student_conf − teacher_conf``;
    - ``trajectory``: how the plain memorization changes across model sizes
      (:func:`memscore.trajectories` on ``trajectories``).

    Parameters
    ----------
    plain, distilled : RunStore or path
        The two arms, over the same examples and labels. Every run needs stored φ (runs
        added from logits have it).
    teacher : RunStore, path, array-like of shape (n_train, C), or None
        The teacher's runs (every distilled run's id must be a teacher run, trained on the
        same subset); or the logits of one teacher for every student; or None: the store
        the distilled runs record in ``metadata["distill"]["teacher"]["store"]``
        (:func:`teacher_store_of`), else no teacher columns.
    trajectories : mapping, optional
        ``{size: RunStore or (n_train,) memorization}``: the plain memorization of at least two
        model sizes (stores are scored on ``kind``), classified with ``tol``.
    kind : {"correct", "phi"}, default "correct"
        The outcome memorization is computed on.
    tol : float, default 0.1
        The trajectories' tolerance (:func:`memscore.trajectories`).
    bins : int, default 10
        Equal-width bins of the teacher's confidence in :attr:`DistillationEffect.confidence`.
    attack : {"lira", "rmia"}, default "lira"
        The membership attack of the arms table (online; RMIA takes the test examples as
        its population).
    ci : float, default 0.95
        Coverage of the intervals (the mean delta per trajectory class's; the attack's).
    n_boot : int, optional
        Bootstrap replicates of the attack's intervals over runs (e.g. 1000); None (default):
        none. They cost: about 7 s per arm for 30,000 (run, example) trials at 1000 replicates (2 shared cores).
    seed : int, default 0
        Seed of the bootstrap.
    chunk_runs : int, default 256
        Runs read at a time.
    executor : None, str or memscore.executors.Executor
        Who reads the runs for the stores' scans (:func:`memscore.executors.as_executor`).

    Returns
    -------
    DistillationEffect
        ``table`` (one row per training example) and the summary tables ``by_trajectory``,
        ``confidence`` and ``arms``.

    Raises
    ------
    TypeError
        A store argument that is no store or directory; teacher logits or trajectories of a
        non-numeric dtype.
    ValueError
        Stores over other examples, labels or classes (the argument is named); a teacher run
        missing or trained on another subset; teacher logits of the wrong shape or with NaN /
        inf; bad settings (``kind``, ``bins``, ``attack``, ``ci``, ``n_boot``, ``tol``).
    StoreError
        A store without runs, runs without φ, a damaged run file.

    Examples
    --------
    >>> import numpy as np, memscore, tempfile
    >>> rng = np.random.default_rng(0)
    >>> d = tempfile.mkdtemp()
    >>> arms = [memscore.RunStore.create(f"{d}/{a}", n_train=6, n_test=2, train_labels=[0, 1] * 3,
    ...                                  test_labels=[0, 1], n_classes=2) for a in ("plain", "distilled")]
    >>> for k in range(8):
    ...     m = np.arange(6) % 2 == k % 2
    ...     for s in arms:
    ...         _ = s.add_run(m, train_logits=rng.normal(size=(6, 2)), test_logits=rng.normal(size=(2, 2)))
    >>> effect = memscore.distillation_effect(*arms)
    >>> effect.table.columns[:6]
    ['index', 'label', 'mem_plain', 'mem_distilled', 'delta', 'delta_stderr']
    >>> effect.arms["arm"].to_list()
    ['plain', 'distilled']
    """
    which = check_choice(kind, "kind", ("correct", "phi"))
    n_bins = check_int(bins, "bins", 1, 10_000)
    how = check_choice(attack, "attack", ATTACKS)
    level = check_float(ci, "ci", 0.0, 1.0, low_open=True, high_open=True)
    boots = None if n_boot is None else check_int(n_boot, "n_boot", 1, MAX_BOOT)
    sd = check_int(seed, "seed", 0)
    chunk = check_int(chunk_runs, "chunk_runs", 1)
    check_float(tol, "tol", 0.0, low_open=True)
    # every input is checked before the runs are read
    arms_in = check_arms(plain, distilled, teacher)
    p, d, t_store, rows, t_logit_conf = arms_in.plain, arms_in.distilled, arms_in.teacher, arms_in.rows, arms_in.logits
    if how == "rmia" and p.n_test == 0:
        raise ValueError("attack='rmia': the stores have no test examples to serve as its population")
    mems = None if trajectories is None else _size_memorization(trajectories, p, which, chunk, executor)
    traj = None if mems is None else classify_trajectories(mems, tol=tol)["trajectory"]

    mem_p, se_p = _memorization(p, which, chunk, executor)
    mem_d, se_d = _memorization(d, which, chunk, executor)
    arm_p, arm_d = _read_arm(p, None, chunk), _read_arm(d, None, chunk)
    arm_t = None if t_store is None else _read_arm(t_store, rows, chunk)
    teacher_conf = arm_t.train_conf if arm_t is not None else t_logit_conf

    n = p.n_train
    labels = p.train_labels
    cols = [
        pl.Series("index", np.arange(n, dtype=np.int64)),
        pl.Series("label", labels if labels is not None else [None] * n, dtype=pl.Int64),
        pl.Series("mem_plain", mem_p, dtype=pl.Float64),
        pl.Series("mem_distilled", mem_d, dtype=pl.Float64),
        pl.Series("delta", mem_d - mem_p, dtype=pl.Float64),
        pl.Series("delta_stderr", np.sqrt(se_p**2 + se_d**2), dtype=pl.Float64),
        pl.Series("plain_conf", arm_p.train_conf, dtype=pl.Float64),
        pl.Series("student_conf", arm_d.train_conf, dtype=pl.Float64),
    ]
    if teacher_conf is not None:
        cols += [
            pl.Series("teacher_conf", teacher_conf, dtype=pl.Float64),
            pl.Series("deviation", arm_d.train_conf - teacher_conf, dtype=pl.Float64),
        ]
    if traj is not None:
        cols.append(traj)
    table = pl.DataFrame(cols)

    none = np.zeros(0)
    conf = [confidence_bins("train", none, none, none, n_bins).clear()]  # the columns, when no teacher
    if teacher_conf is not None:
        conf = [confidence_bins("train", teacher_conf, arm_d.train_conf, arm_p.train_conf, n_bins)]
    if arm_t is not None and p.n_test:
        conf.append(confidence_bins("test", arm_t.test_conf, arm_d.test_conf, arm_p.test_conf, n_bins))
    confidence = pl.concat(conf)

    arms = [
        _arm_row("plain", p, arm_p, mem_p, how, level, boots, sd, executor),
        _arm_row("distilled", d, arm_d, mem_d, how, level, boots, sd, executor),
    ]
    if t_store is not None and arm_t is not None:
        mem_t = np.asarray(t_store.memorization(which, chunk_runs=chunk, executor=executor))
        arms.append(_arm_row("teacher", t_store, arm_t, mem_t, how, level, boots, sd, executor))
    return DistillationEffect(
        table=table,
        by_trajectory=trajectory_means(table, level),
        confidence=confidence,
        arms=pl.DataFrame(arms, schema=_ARM_SCHEMA),
        teacher=str(t_store.path) if t_store is not None else ("logits" if t_logit_conf is not None else None),
        kind=which,
    )
