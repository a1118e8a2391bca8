"""RMIA, the robust membership inference attack (Zarifzadeh et al. 2024), from the runs.

Every run in turn is the target and every other run a reference model, as in
:func:`memscore.lira`. RMIA compares the target's probability of the true label on an
example ``x`` with its expectation over the references, ``ratio(x) = p(x | target) /
Pr(x)``, against the same ratio on population examples ``z`` that no run trained on, and
scores ``x`` by the fraction of ``z`` it dominates: ``mean_z [ratio(x) / ratio(z) >= gamma]``.
Online, ``Pr(x)`` is the mean over all references; offline, only the references that held
``x`` out are averaged and the mean is scaled toward the in/out mixture, ``Pr(x) = ((1 +
a) * mean_out(x) + (1 - a)) / 2`` (the paper's offline approximation with coefficient a).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .. import _core
from .._validate import (
    ArrayLike,
    RunsLike,
    as_mask,
    as_outcomes,
    check_bool,
    check_float,
    check_int,
    check_runs,
    to_numpy,
)
from .references import score_with_references

F64 = npt.NDArray[np.float64]

__all__ = ["rmia", "true_class_probability"]


def true_class_probability(phi: ArrayLike) -> F64:
    """Softmax probability of the true label from the logit-scaled confidence φ.

    ``phi = z_y - logsumexp_{y' != y} z_{y'}`` (:func:`memscore.logit_confidence`, what a
    run store keeps) is the logit of ``p_y = softmax(z)_y``, so ``p_y = sigmoid(phi)``
    exactly: RMIA's signal can be read from any store, logits kept or not.

    Parameters
    ----------
    phi : array-like of float
        Confidences, any shape.

    Returns
    -------
    ndarray of float64, same shape, in [0, 1]

    Raises
    ------
    TypeError
        ``phi`` is bool or not numeric.
    ValueError
        NaN values.

    Examples
    --------
    >>> true_class_probability(np.array([0.0, np.log(3.0)]))
    array([0.5 , 0.75])
    """
    a = to_numpy(phi, "phi")
    if a.dtype == np.bool_ or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise TypeError(f"phi: expected float confidences, got dtype {a.dtype}")
    x = np.asarray(a, dtype=np.float64)
    if np.isnan(x).any():
        raise ValueError("phi: contains NaN values")
    # Two branches so that exp never overflows: sigmoid(x) = 1 / (1 + e^-x) = e^x / (1 + e^x).
    e = np.exp(-np.abs(x))
    out: F64 = np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return out


def _probs(x: ArrayLike, name: str) -> F64:
    a = as_outcomes(x, name)
    if a.dtype == np.bool_:
        raise TypeError(f"{name}: expected probabilities of the true label in [0, 1], got dtype bool")
    if a.size and (a.min() < 0.0 or a.max() > 1.0):
        raise ValueError(f"{name}: expected probabilities in [0, 1], got values in [{a.min():g}, {a.max():g}]")
    return np.ascontiguousarray(a, dtype=np.float64)


def rmia(
    masks: RunsLike,
    probs: ArrayLike,
    population: ArrayLike,
    *,
    online: bool = True,
    gamma: float = 1.0,
    offline_a: float = 0.3,
    references: int | None = None,
    seed: int = 0,
) -> F64:
    """RMIA membership scores (Zarifzadeh et al. 2024), higher = more likely a member.

    For target run t (every run in turn; its references are all other runs), training
    example i and population example j:

    - ``Pr(x) = mean_{s != t} probs[s, i]`` online; offline ``((1 + a) m + (1 - a)) / 2``
      with ``m`` the mean over the references that held i out;
    - ``Pr(z)`` the same over ``population[s, j]`` (every reference holds z out);
    - ``score[t, i] = mean_j [ probs[t, i] / Pr(x) >= gamma * population[t, j] / Pr(z) ]``,
      population examples with an undefined ratio (0 / 0) left out.

    With ``references=k``, ``Pr(x)`` averages k seeded runs that held x out (online also k
    that trained on it) instead of all other runs, and ``Pr(z)`` as many seeded runs
    (:mod:`memscore.runs.references`).

    Parameters
    ----------
    masks : array-like of bool, shape (R, N)
        Membership of each run.
    probs : array-like of float, shape (R, N)
        Probability of the true label of each training example under each run (e.g.
        :func:`true_class_probability` of the stored phi).
    population : array-like of float, shape (R, Z)
        The same on Z >= 1 examples that no run trained on (a test split).
    online : bool, default True
        Use every reference (else only those that held the example out).
    gamma : float, default 1.0
        Threshold of the pairwise likelihood ratio, > 0.
    offline_a : float, default 0.3
        The offline coefficient a, in [0, 1] (ignored online).
    references : int, optional
        Reference runs per example and side (>= 1); None (default): every other run.
    seed : int, default 0
        Which runs serve as the ``references`` (ignored without them).

    Returns
    -------
    ndarray of float64, shape (R, N)
        Scores in [0, 1]; NaN where the target has no reference to compare with (one run;
        offline, no other run holding the example out).

    Raises
    ------
    TypeError
        Bool or non-numeric probabilities; non-bool ``online``; non-numeric ``gamma`` /
        ``offline_a``.
    ValueError
        Shapes disagree, no population example, probabilities outside [0, 1] or NaN,
        ``gamma <= 0``, ``offline_a`` outside [0, 1]; ``references`` larger than some
        example's runs on a side allow (the message names the example and counts).

    Examples
    --------
    >>> import numpy as np, memscore
    >>> masks = np.array([[1, 0], [0, 1], [1, 0], [0, 1]], dtype=bool)
    >>> p = np.where(masks, 0.9, 0.5)
    >>> memscore.rmia(masks, p, np.full((4, 3), 0.5))[0]
    array([1., 0.])
    """
    on = check_bool(online, "online")
    g = check_float(gamma, "gamma", 0.0, low_open=True)
    a = check_float(offline_a, "offline_a", 0.0, 1.0)
    m = as_mask(masks, packed=True)
    p = _probs(probs, "probs")
    check_runs(m, p, "probs", same_cols=True)
    z = _probs(population, "population")
    check_runs(m, z, "population", same_cols=False)
    if z.shape[1] == 0:
        raise ValueError("population: need at least one population example (Z = 0), e.g. the test split")
    if references is not None:
        k = check_int(references, "references", 1)

        def kernel(vm: npt.NDArray[np.bool_], vp: F64, vz: F64 | None) -> F64:
            bits = as_mask(vm, packed=True)
            got: F64 = _core.rmia_scores(
                bits.bits, np.ascontiguousarray(vp), np.ascontiguousarray(vz), bits.n, online=on, gamma=g, offline_a=a
            )
            return got

        sd = check_int(seed, "seed", 0)
        return score_with_references(kernel, m.unpack(), p, z, k, online=on, seed=sd, name="rmia")
    out: F64 = _core.rmia_scores(m.bits, p, z, m.n, online=on, gamma=g, offline_a=a)
    return out
