"""Per-example scores across training runs (array level).

Every function takes ``masks`` of shape ``(R, N)`` (``masks[r, i]`` is True when run ``r``
trained on example ``i``) and per-run outcomes, bool (correct or not) or float (any
per-example score such as the probability of the true label), as numpy arrays or torch CPU
tensors. Bool outcomes take the bit-packed popcount path in the Rust core; float outcomes a
masked-sum kernel. Scores come back as float64 and are NaN where the estimate is undefined.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt

from .. import _core
from .._validate import (
    ArrayLike,
    RunsLike,
    as_labels,
    as_mask,
    as_mask_rows,
    as_outcomes,
    check_bool,
    check_int,
    check_real,
    check_runs,
    check_summable,
    core_masks,
    to_numpy,
)
from .bits import PackedBits

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

__all__ = [
    "OutcomeStats",
    "holdout_accuracy",
    "influence",
    "mean_over_groups",
    "memorization",
]


# Float outcome rows as a run store holds them (float32) or as validated (float64).
FloatRows = npt.NDArray[np.float64] | npt.NDArray[np.float32]


def _float_outcomes(o: Any) -> F64:
    """Float64 outcomes from validated outcomes (packed bools, bools or float64)."""
    if isinstance(o, PackedBits):
        return np.unpackbits(o.bits, axis=1, count=o.n).astype(np.float64)
    return np.ascontiguousarray(o, dtype=np.float64)


def _is_float32(o: Any) -> bool:
    return isinstance(o, np.ndarray) and o.dtype == np.float32


def _core_outcomes(o: Any) -> Any:
    """What the core takes for validated outcomes: packed bytes, or float64 as they are."""
    return o.bits if isinstance(o, PackedBits) else o


@dataclass
class OutcomeStats:
    """Sufficient statistics of an outcome split by membership, per example.

    Counts of runs that did (``n_in``) and did not (``n_out``) train on each example, and
    sums / sums of squares of ``outcome - shift`` over each group. Statistics of disjoint
    sets of runs add up (``a + b``), which is how a :class:`~memscore.RunStore` streams
    over its runs in chunks.
    """

    n_in: npt.NDArray[np.int64]
    n_out: npt.NDArray[np.int64]
    sum_in: F64
    sum_out: F64
    sumsq_in: F64
    sumsq_out: F64
    shift: F64

    @classmethod
    def from_runs(cls, masks: RunsLike, outcomes: RunsLike, *, shift: ArrayLike | None = None) -> OutcomeStats:
        """Statistics of ``outcomes`` split by ``masks``.

        Parameters
        ----------
        masks : array-like of bool, shape (R, N)
            True where run r trained on example i.
        outcomes : array-like of bool or float, shape (R, N)
            Per-run outcomes.
        shift : array-like of float, shape (N,), optional
            Subtracted before summing, keeping sums of squares well conditioned for float
            outcomes; by default the first run's outcome (0 for bool outcomes). Statistics you
            intend to add must share one shift.

        Returns
        -------
        OutcomeStats

        Raises
        ------
        TypeError
            Wrong dtypes.
        ValueError
            Shapes disagree, NaN / infinite / overflowing outcomes, a shift of the wrong shape.

        Examples
        --------
        >>> import numpy as np
        >>> m = np.array([[1, 0], [0, 1]], dtype=bool)
        >>> a = OutcomeStats.from_runs(m, m, shift=np.zeros(2))
        >>> (a + a).n_in.tolist()
        [2, 2]
        """
        m, o = train_runs(masks, outcomes)
        return cls._from_checked(m, o, shift)

    @classmethod
    def _from_checked(
        cls,
        m: PackedBits | npt.NDArray[Any],
        o: PackedBits | FloatRows | npt.NDArray[Any],
        shift: ArrayLike | None = None,
    ) -> OutcomeStats:
        """:meth:`from_runs` on arrays already checked by :func:`train_runs`: both packed,
        or both as numpy holds them (bool or uint16 masks, nonzero = in; bool or float64
        outcomes), which the core reads without packing; float32 outcomes as a run store
        holds them (with packed masks)."""
        n = m.shape[1]
        if isinstance(o, PackedBits) and isinstance(m, PackedBits) and shift is None:
            raw = _core.outcome_sums_bool(m.bits, o.bits, n)
            sh = np.zeros(n)
        elif not isinstance(m, PackedBits) and isinstance(o, np.ndarray) and o.dtype == np.bool_ and shift is None:
            raw = _core.outcome_sums_dense(m, np.asarray(o, dtype=np.bool_))
            sh = np.zeros(n)
        else:
            # float32 rows (as a run store holds them) are widened by the core as it reads.
            packed_masks = isinstance(m, PackedBits)
            of = np.ascontiguousarray(o) if packed_masks and _is_float32(o) else _float_outcomes(o)
            sh = (
                of[0].astype(np.float64)
                if shift is None
                else np.ascontiguousarray(to_numpy(shift, "shift"), dtype=np.float64)
            )
            if sh.shape != (n,):
                raise ValueError(f"shift: expected shape ({n},), got {sh.shape}")
            if isinstance(m, PackedBits):
                raw = _core.outcome_sums_f64(m.bits, of, n, sh)
            else:
                raw = _core.outcome_sums_dense(m, np.asarray(of, dtype=np.float64), sh)
            # Non-finite outcomes leave non-finite sums: one check of N sums instead of a
            # pass over the (R, N) outcomes. (Squares may overflow where the plain score
            # does not need them; the standard error's check is the caller's.)
            bad = ~(np.isfinite(raw[2]) & np.isfinite(raw[3]))
            if bad.any():
                raise ValueError(
                    f"outcomes: NaN or infinite values, or a sum that overflows (example {int(np.argmax(bad))})"
                )
        n_in, n_out, s_in, s_out, q_in, q_out = raw
        return cls(n_in.astype(np.int64), n_out.astype(np.int64), s_in, s_out, q_in, q_out, sh)

    def __add__(self, other: OutcomeStats) -> OutcomeStats:
        if self.n_in.shape != other.n_in.shape:
            raise ValueError(f"cannot add statistics of {self.n_in.size} and {other.n_in.size} examples")
        if not np.array_equal(self.shift, other.shift):
            raise ValueError("cannot add statistics computed with different shifts")
        return OutcomeStats(
            self.n_in + other.n_in,
            self.n_out + other.n_out,
            self.sum_in + other.sum_in,
            self.sum_out + other.sum_out,
            self.sumsq_in + other.sumsq_in,
            self.sumsq_out + other.sumsq_out,
            self.shift,
        )

    @staticmethod
    def _mean(s: F64, n: npt.NDArray[np.int64], shift: F64) -> F64:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, s / np.maximum(n, 1) + shift, np.nan)

    def mean_in(self) -> F64:
        """Mean outcome over runs that trained on each example.

        Returns
        -------
        ndarray of float64, shape (N,)
            NaN where no run is on that side.
        """
        return self._mean(self.sum_in, self.n_in, self.shift)

    def mean_out(self) -> F64:
        """Mean outcome over runs that held each example out (hold-out accuracy).

        Returns
        -------
        ndarray of float64, shape (N,)
            NaN where no run is on that side.
        """
        return self._mean(self.sum_out, self.n_out, self.shift)

    def memorization(self) -> F64:
        """``mean_in - mean_out`` (Feldman & Zhang 2020).

        Returns
        -------
        ndarray of float64, shape (N,)
            NaN where either side has no run.
        """
        return self.mean_in() - self.mean_out()

    def memorization_stderr(self) -> F64:
        """``sqrt(s_in²/n_in + s_out²/n_out)`` with ddof=1 variances.

        Computed in the core by the same function as :func:`influence`'s standard errors.

        Returns
        -------
        ndarray of float64, shape (N,)
            NaN where a side has fewer than two runs.
        """
        f = np.float64
        out: F64 = _core.stderr_from_sums(
            np.ascontiguousarray(self.sum_in, dtype=f),
            np.ascontiguousarray(self.sumsq_in, dtype=f),
            self.n_in.astype(f),
            np.ascontiguousarray(self.sum_out, dtype=f),
            np.ascontiguousarray(self.sumsq_out, dtype=f),
            self.n_out.astype(f),
        )
        return out


@overload
def memorization(masks: RunsLike, outcomes: RunsLike, *, stderr: Literal[False] = ...) -> F64: ...
@overload
def memorization(masks: RunsLike, outcomes: RunsLike, *, stderr: Literal[True]) -> tuple[F64, F64]: ...
@overload
def memorization(masks: RunsLike, outcomes: RunsLike, *, stderr: bool) -> F64 | tuple[F64, F64]: ...


def memorization(masks: RunsLike, outcomes: RunsLike, *, stderr: bool = False) -> F64 | tuple[F64, F64]:
    """Memorization score of every training example (Feldman & Zhang 2020).

    ``mem[i] = mean(outcomes[r, i] | masks[r, i]) - mean(outcomes[r, i] | not masks[r, i])``,
    the subsampled estimator over runs trained on random subsets.

    Parameters
    ----------
    masks : array-like of bool, shape (R, N)
        True where run r trained on example i (0/1 integers and :class:`PackedBits` too).
    outcomes : array-like of bool or float, shape (R, N)
        Correct or not, or any per-example score (e.g. the probability of the true label).
    stderr : bool, default False
        Also return the standard error ``sqrt(s_in²/n_in + s_out²/n_out)`` (sample
        variances, ddof=1; NaN with fewer than two runs on a side).

    Returns
    -------
    mem : ndarray of float64, shape (N,)
        NaN where no run held the example in or out.
    (mem, stderr) : tuple of two such arrays
        With ``stderr=True``.

    Raises
    ------
    TypeError
        ``masks`` is not bool / 0-1, ``outcomes`` not bool or numeric, ``stderr`` not a bool.
    ValueError
        Shapes disagree, no runs, NaN / infinite outcomes, or outcomes so large that their
        sums would overflow float64.

    Examples
    --------
    >>> import numpy as np, memscore
    >>> masks = np.array([[1, 0], [0, 1], [1, 1]], dtype=bool)
    >>> correct = np.array([[1, 0], [0, 1], [1, 1]], dtype=bool)
    >>> memscore.memorization(masks, correct)
    array([1., 1.])
    """
    want_se = check_bool(stderr, "stderr")
    m, o = train_runs(masks, outcomes, squares=want_se)
    stats = OutcomeStats._from_checked(m, o)
    mem = stats.memorization()
    return (mem, stats.memorization_stderr()) if want_se else mem


def train_runs(
    masks: RunsLike, outcomes: RunsLike, *, squares: bool = False, masks_name: str = "masks"
) -> tuple[PackedBits | npt.NDArray[np.bool_], PackedBits | npt.NDArray[Any]]:
    """Checked masks and outcomes of the training examples, ``(R, N)`` each.

    Both come back packed (:class:`PackedBits`) when either arrives packed; otherwise both
    stay as numpy holds them (bool masks, bool or float64 outcomes), which the core reads
    directly: packing two byte-per-value arrays would cost more than the sums themselves.
    ``masks_name`` names the masks in messages as the caller's argument (Data-OOB's masks
    come from ``multiplicities``); ``squares`` as :func:`memscore._validate.check_summable`.

    Raises
    ------
    TypeError, ValueError
        As :func:`memscore._validate.as_mask`, ``as_outcomes``, ``check_runs``, ``check_summable``.
    """
    m: PackedBits | npt.NDArray[np.bool_]
    o: PackedBits | npt.NDArray[Any]
    if isinstance(masks, PackedBits) or isinstance(outcomes, PackedBits):
        m, o = as_mask(masks, masks_name, packed=True), as_outcomes(outcomes, "outcomes", packed=True)
    else:
        m, o = as_mask(masks, masks_name), as_outcomes(outcomes, "outcomes")
    check_runs(m, o, "outcomes", same_cols=True, masks_name=masks_name)
    check_summable(o, "outcomes", m.shape[0], squares=squares)
    return m, o


def holdout_accuracy(masks: RunsLike, outcomes: RunsLike, *, ratios: ArrayLike | None = None) -> F64:
    """Hold-out accuracy, the C-score estimator of Jiang et al. (2021).

    Mean outcome of example i over the runs that did *not* train on it. With ``ratios``
    giving each run's subset ratio, the estimate is taken within each group of runs
    sharing a ratio and averaged over the groups where it is defined (the C-score as an
    expectation over subset sizes).

    Parameters
    ----------
    masks : array-like of bool, shape (R, N)
        True where run r trained on example i.
    outcomes : array-like of bool or float, shape (R, N)
        Per-run outcomes of the training examples.
    ratios : array-like of float, shape (R,), optional
        The subset ratio of each run.

    Returns
    -------
    ndarray of float64, shape (N,)
        NaN where no run held the example out.

    Raises
    ------
    TypeError
        Wrong dtypes.
    ValueError
        Shapes disagree, NaN / infinite / overflowing outcomes.

    Examples
    --------
    >>> import numpy as np, memscore
    >>> masks = np.array([[1, 0], [0, 1]], dtype=bool)
    >>> memscore.holdout_accuracy(masks, np.array([[1, 1], [0, 1]], dtype=bool))
    array([0., 1.])
    """
    m, o = train_runs(masks, outcomes)
    if ratios is None:
        return OutcomeStats._from_checked(m, o).mean_out()
    ra = to_numpy(ratios, "ratios")
    check_real(ra, "ratios")
    r = np.asarray(ra, dtype=np.float64)
    if r.shape != (m.shape[0],):
        raise ValueError(f"ratios: expected one subset ratio per run, shape ({m.shape[0]},), got {r.shape}")
    return mean_over_groups([OutcomeStats._from_checked(m[r == g], o[r == g]).mean_out() for g in np.unique(r)])


def mean_over_groups(per_group: Sequence[F64]) -> F64:
    """Average per-group estimates over the groups where each is defined.

    The C-score as an expectation over subset sizes: :func:`holdout_accuracy` with
    ``ratios`` and :meth:`memscore.RunStore.holdout_accuracy` both reduce their per-ratio
    hold-out means with it.

    Parameters
    ----------
    per_group : sequence of ndarray of float64
        One ``(N,)`` estimate per group, NaN where the group leaves it undefined.

    Returns
    -------
    ndarray of float64
        ``(N,)`` mean over the groups where defined; NaN where no group defines it.

    Raises
    ------
    ValueError
        No groups given.
    """
    if len(per_group) == 0:
        raise ValueError("mean_over_groups: expected at least one group")
    if len(per_group) == 1:
        return per_group[0]
    stacked = np.stack(per_group)
    defined = ~np.isnan(stacked)
    with np.errstate(invalid="ignore"):
        out: F64 = np.where(defined.any(0), np.nansum(stacked, 0) / np.maximum(defined.sum(0), 1), np.nan)
    return out


@overload
def influence(
    masks: RunsLike,
    outcomes: RunsLike,
    *,
    top_k: None = ...,
    stderr: Literal[False] = ...,
    train_labels: ArrayLike | None = ...,
    test_labels: ArrayLike | None = ...,
    dtype: npt.DTypeLike = ...,
) -> npt.NDArray[np.floating[Any]]: ...
@overload
def influence(
    masks: RunsLike,
    outcomes: RunsLike,
    *,
    top_k: None = ...,
    stderr: Literal[True],
    train_labels: ArrayLike | None = ...,
    test_labels: ArrayLike | None = ...,
    dtype: npt.DTypeLike = ...,
) -> tuple[npt.NDArray[np.floating[Any]], npt.NDArray[np.floating[Any]]]: ...
@overload
def influence(
    masks: RunsLike,
    outcomes: RunsLike,
    *,
    top_k: int,
    stderr: Literal[False] = ...,
    train_labels: ArrayLike | None = ...,
    test_labels: ArrayLike | None = ...,
    dtype: npt.DTypeLike = ...,
) -> tuple[I64, F64]: ...
@overload
def influence(
    masks: RunsLike,
    outcomes: RunsLike,
    *,
    top_k: int | None = ...,
    stderr: bool = ...,
    train_labels: ArrayLike | None = ...,
    test_labels: ArrayLike | None = ...,
    dtype: npt.DTypeLike = ...,
) -> npt.NDArray[Any] | tuple[npt.NDArray[Any], npt.NDArray[Any]]: ...


def influence(
    masks: RunsLike,
    outcomes: RunsLike,
    *,
    top_k: int | None = None,
    stderr: bool = False,
    train_labels: ArrayLike | None = None,
    test_labels: ArrayLike | None = None,
    dtype: npt.DTypeLike = np.float32,
) -> npt.NDArray[Any] | tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """Influence of every training example on every test example (Feldman & Zhang 2020).

    ``infl[j, i] = mean(outcomes[r, j] | masks[r, i]) - mean(outcomes[r, j] | not masks[r, i])``.

    Parameters
    ----------
    masks : array-like of bool, shape (R, N)
        True where run r trained on example i.
    outcomes : array-like of bool or float, shape (R, T)
        Outcomes on the test examples.
    top_k : int, optional
        Instead of the full matrix, return ``(indices (T, k) int64, values (T, k)
        float64)``: the k most influential training examples per test example, largest
        first, ties toward the lower index, computed tile by tile without the (T, N)
        matrix. Rows with fewer than k defined values are padded with -1 / NaN. A
        ``top_k`` above N is clamped to N (the result has ``min(top_k, N)`` columns).
    stderr : bool, default False
        Also return the (T, N) standard errors (full matrix only).
    train_labels, test_labels : array-like of int, shapes (N,) and (T,), optional
        Restrict to pairs of the same class, as Feldman & Zhang publish: other pairs are
        NaN (full matrix) or never selected (top-k). Give both or neither.
    dtype : {numpy.float32, numpy.float64}, default float32
        Type of the full matrix (it is T x N).

    Returns
    -------
    infl : ndarray, shape (T, N)
        The full matrix.
    (infl, stderr) : tuple of ndarrays
        With ``stderr=True``.
    (indices, values) : tuple of ndarrays, shapes (T, k)
        With ``top_k``.

    Raises
    ------
    TypeError
        Wrong dtypes, a non-integer ``top_k``, a non-bool ``stderr``, an unsupported ``dtype``.
    ValueError
        Shapes disagree, ``top_k < 1``, ``stderr`` with ``top_k``, only one of the label
        arrays, NaN / infinite / overflowing outcomes.

    Examples
    --------
    >>> import numpy as np, memscore
    >>> masks = np.array([[1, 0], [0, 1]], dtype=bool)
    >>> memscore.influence(masks, np.array([[1.0], [0.0]]))
    array([[ 1., -1.]], dtype=float32)
    """
    want_se = check_bool(stderr, "stderr")
    m = as_mask_rows(masks)
    o = as_outcomes(outcomes, "outcomes", packed=True)
    check_runs(m, o, "outcomes", same_cols=False)
    if (train_labels is None) != (test_labels is None):
        raise ValueError("train_labels and test_labels must be given together")
    labels: dict[str, npt.NDArray[np.int64]] = {}
    if train_labels is not None:
        labels = {
            "train_labels": as_labels(train_labels, "train_labels", m.shape[1]),
            "test_labels": as_labels(test_labels, "test_labels", o.shape[1]),
        }
    if top_k is not None:
        if want_se:
            raise ValueError("stderr is available for the full matrix only, not with top_k")
        k = check_int(top_k, "top_k", 1)
        check_summable(o, "outcomes", m.shape[0])
        packed = m if isinstance(m, PackedBits) else PackedBits.pack(m)
        idx, vals = _core.influence_topk(packed.bits, _core_outcomes(o), packed.n, o.shape[1], k, **labels)
        return idx, vals
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"dtype: expected float32 or float64, got {dt}")
    check_summable(o, "outcomes", m.shape[0], squares=want_se)
    bits, dense = core_masks(m)
    infl, se = _core.influence_full(
        bits, _core_outcomes(o), m.shape[1], o.shape[1], double=dt == np.float64, stderr=want_se,
        dense_masks=dense, **labels,
    )  # fmt: skip
    return (infl, se) if want_se and se is not None else infl
