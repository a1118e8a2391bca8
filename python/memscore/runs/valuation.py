"""Data valuation from the runs: the maximum-sample-reuse Banzhaf value (Wang & Jia 2023)
and Data-OOB (Kwon & Zou 2023).

Runs trained on uniform random subsets are exactly the samples the MSR estimator needs:
the Banzhaf value of example i is the mean utility of the runs that trained on i minus the
mean utility of the runs that did not, every run serving every example. The utility is one
number per run (test accuracy by default). The estimate and its standard error are the
pairwise influence kernel of :func:`memscore.influence` with the utility as the outcome of
a single "test example", so no kernel of its own. Data-OOB is the hold-out mean of
:func:`memscore.holdout_accuracy` over bootstrap runs, with "held out" meaning "not drawn".
"""

from __future__ import annotations

from typing import Literal, overload

import numpy as np
import numpy.typing as npt

from .. import _core
from .._validate import (
    ArrayLike,
    RunsLike,
    as_mask_rows,
    as_outcomes,
    check_bool,
    check_runs,
    check_summable,
    core_masks,
    to_numpy,
)
from .bits import PackedBits
from .scores import OutcomeStats, train_runs

F64 = npt.NDArray[np.float64]

__all__ = ["banzhaf", "data_oob", "run_utility"]


def run_utility(test_outcomes: RunsLike) -> F64:
    """Utility of every run: the mean of its test outcomes.

    Bool outcomes (correct or not) give test accuracy; float outcomes such as the test
    confidences φ (:func:`memscore.logit_confidence`, a soft margin) give the mean test
    margin.

    Parameters
    ----------
    test_outcomes : array-like of bool or float, shape (R, T)
        Outcomes of each run on the test examples (:class:`PackedBits` too), T >= 1.

    Returns
    -------
    ndarray of float64, shape (R,)

    Raises
    ------
    TypeError
        Outcomes are neither bool nor numeric.
    ValueError
        Not 2-D, no test examples, NaN or infinite values.

    Examples
    --------
    >>> import numpy as np
    >>> run_utility(np.array([[True, False], [True, True]]))
    array([0.5, 1. ])
    """
    o = as_outcomes(test_outcomes, "test_outcomes", packed=True)
    if o.shape[1] == 0:
        raise ValueError("test_outcomes: need at least one test example (T = 0) to measure a run's utility")
    if isinstance(o, PackedBits):
        # Padding bits of np.packbits rows are zero, so a row's popcount is its count.
        counts = np.unpackbits(o.bits, axis=1).sum(axis=1, dtype=np.int64)
        acc: F64 = counts / float(o.n)
        return acc
    out: F64 = o.mean(axis=1)
    return out


@overload
def banzhaf(masks: RunsLike, utility: ArrayLike, *, stderr: Literal[False] = ...) -> F64: ...
@overload
def banzhaf(masks: RunsLike, utility: ArrayLike, *, stderr: Literal[True]) -> tuple[F64, F64]: ...
@overload
def banzhaf(masks: RunsLike, utility: ArrayLike, *, stderr: bool) -> F64 | tuple[F64, F64]: ...


def banzhaf(masks: RunsLike, utility: ArrayLike, *, stderr: bool = False) -> F64 | tuple[F64, F64]:
    """Maximum-sample-reuse Banzhaf value of every training example (Wang & Jia 2023).

    ``value[i] = mean(utility[r] | masks[r, i]) - mean(utility[r] | not masks[r, i])``:
    each run is one sample of a uniform random subset, reused for every example. With
    runs drawn at subset ratio 1/2 this is the MSR estimator of the Banzhaf value; other
    ratios give the same difference for that ratio's subset distribution.

    Parameters
    ----------
    masks : array-like of bool, shape (R, N)
        True where run r trained on example i (0/1 integers and :class:`PackedBits` too).
    utility : array-like of float, shape (R,)
        One utility per run: its test accuracy (:func:`run_utility` of the bool test
        outcomes), its mean test margin, or any number.
    stderr : bool, default False
        Also return the standard error ``sqrt(s_in²/n_in + s_out²/n_out)`` (ddof=1; NaN
        with fewer than two runs on a side).

    Returns
    -------
    value : ndarray of float64, shape (N,)
        NaN where no run held the example in or out.
    (value, stderr) : tuple of two such arrays
        With ``stderr=True``.

    Raises
    ------
    TypeError
        ``masks`` not bool / 0-1, ``utility`` not numeric, ``stderr`` not a bool.
    ValueError
        ``utility`` is not one finite number per run.

    Examples
    --------
    >>> import numpy as np, memscore
    >>> masks = np.array([[1, 0], [0, 1], [1, 1]], dtype=bool)
    >>> memscore.banzhaf(masks, np.array([0.9, 0.5, 0.8]))
    array([ 0.35, -0.25])
    """
    want_se = check_bool(stderr, "stderr")
    m = as_mask_rows(masks)
    if m.shape[0] == 0:
        raise ValueError("masks: need at least one run (R = 0)")
    u = to_numpy(utility, "utility")
    if u.dtype == np.bool_ or not (np.issubdtype(u.dtype, np.floating) or np.issubdtype(u.dtype, np.integer)):
        raise TypeError(f"utility: expected one real number per run, got dtype {u.dtype}")
    if u.shape != (m.shape[0],):
        raise ValueError(f"utility: expected one value per run, shape ({m.shape[0]},), got {u.shape}")
    col = np.ascontiguousarray(u, dtype=np.float64).reshape(-1, 1)
    if not np.isfinite(col).all():
        raise ValueError("utility: contains NaN or infinite values")
    check_summable(col, "utility", m.shape[0], squares=want_se)
    # The utility is the outcome of one "test example": influence's (1, N) row is the value.
    bits, dense = core_masks(m)
    value, se = _core.influence_full(bits, col, m.shape[1], 1, double=True, stderr=want_se, dense_masks=dense)
    v: F64 = np.asarray(value[0], dtype=np.float64)
    if want_se:
        assert se is not None
        return v, np.asarray(se[0], dtype=np.float64)
    return v


def data_oob(multiplicities: ArrayLike, outcomes: RunsLike) -> F64:
    """Data-OOB value of every training example (Kwon & Zou 2023).

    Each run trained on a bootstrap sample: ``multiplicities[r, i]`` draws of example i.
    The value of i is its mean outcome over the runs that did not draw it (its out-of-bag
    runs): with bool outcomes (correct or not), the out-of-bag accuracy
    ``sum_r 1[w_ri = 0] correct_ri / sum_r 1[w_ri = 0]``. Low values flag examples the
    models trained without get wrong, e.g. mislabelled ones.

    Parameters
    ----------
    multiplicities : array-like of int, shape (R, N)
        Non-negative draw counts (:attr:`memscore.train.SubsetPlan.multiplicities`,
        :meth:`memscore.RunStore.multiplicities`).
    outcomes : array-like of bool or float, shape (R, N)
        Per-run outcomes of the training examples (:class:`PackedBits` too).

    Returns
    -------
    ndarray of float64, shape (N,)
        NaN where every run drew the example.

    Raises
    ------
    TypeError
        ``multiplicities`` not integers, or outcomes of a wrong dtype.
    ValueError
        Not 2-D, negative counts, shapes that disagree, NaN / infinite outcomes.

    Examples
    --------
    >>> import numpy as np, memscore
    >>> w = np.array([[2, 0], [0, 1], [0, 1]])
    >>> memscore.data_oob(w, np.array([[1, 0], [1, 1], [0, 1]], dtype=bool))
    array([0.5, 0. ])
    """
    w = to_numpy(multiplicities, "multiplicities")
    if w.dtype == np.bool_ or not np.issubdtype(w.dtype, np.integer):
        raise TypeError(f"multiplicities: expected integer draw counts, got dtype {w.dtype}")
    if w.ndim != 2:
        raise ValueError(f"multiplicities: expected a 2-D (runs, examples) array, got shape {w.shape}")
    if w.dtype == np.uint16 and not isinstance(outcomes, PackedBits):
        # SubsetPlan's draw counts: the core reads them as masks (nonzero = drawn) as they
        # are, which saves a pass over them and the (R, N) bool array of ``w > 0``.
        dense = as_outcomes(outcomes, "outcomes")
        counts = np.ascontiguousarray(w)
        check_runs(counts, dense, "outcomes", same_cols=True, masks_name="multiplicities")
        check_summable(dense, "outcomes", w.shape[0])
        return OutcomeStats._from_checked(counts, dense).mean_out()
    if w.size and int(w.min()) < 0:
        raise ValueError(f"multiplicities: expected counts >= 0, got a minimum of {int(w.min())}")
    m, o = train_runs(w > 0, outcomes, masks_name="multiplicities")
    return OutcomeStats._from_checked(m, o).mean_out()
