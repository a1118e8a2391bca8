"""Plain reference of LiRA and RMIA with a budget of k references per example
(:mod:`memscore.runs.references`): one target and one example at a time, the references
picked by sorting the candidate runs by their keys, the scores written from the papers'
formulas (no kernel, no gathered matrices).

The keys are drawn as the documented rule says: ``rng = default_rng(seed)``,
``u = rng.random((R, N))``, then ``v = rng.random(R)``.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from .scores import SIGMA_FLOOR

F64 = npt.NDArray[np.float64]

__all__ = ["lira_references", "rmia_references"]


def _keys(r: int, n: int, seed: int) -> tuple[F64, F64]:
    rng = np.random.default_rng(seed)
    u = rng.random((r, n))
    return u, rng.random(r)


def _pick(candidates: list[int], key: F64, k: int) -> list[int]:
    """The k candidates with the smallest keys."""
    return sorted(candidates, key=lambda s: key[s])[:k]


def lira_references(masks: npt.ArrayLike, phi: npt.ArrayLike, k: int, *, online: bool = True, seed: int = 0) -> F64:
    """LiRA scores ``(R, N)`` with, for target t and example i, the k out-runs (online also
    k in-runs) s != t of smallest key ``u[s, i]`` as shadows; median and population std
    (floored at :data:`SIGMA_FLOOR`) of their phi.

    Parameters
    ----------
    masks : (R, N) bool
    phi : (R, N) float
    k : int
    online : bool
    seed : int

    Returns
    -------
    ndarray of float64
    """
    from scipy.special import log_ndtr  # type: ignore[import-untyped, unused-ignore]

    m = np.asarray(masks, dtype=bool)
    p = np.asarray(phi, dtype=np.float64)
    r, n = m.shape
    u, _ = _keys(r, n, seed)
    out = np.full((r, n), np.nan)
    for t in range(r):
        for i in range(n):
            x = p[t, i]
            outs = [p[s, i] for s in _pick([s for s in range(r) if s != t and not m[s, i]], u[:, i], k)]
            mu_out = float(np.median(outs))
            sd_out = max(float(np.std(outs)), SIGMA_FLOOR)
            z_out = (x - mu_out) / sd_out
            if not online:
                out[t, i] = float(log_ndtr(z_out))  # log Phi, accurate far in the tail
                continue
            ins = [p[s, i] for s in _pick([s for s in range(r) if s != t and m[s, i]], u[:, i], k)]
            mu_in = float(np.median(ins))
            sd_in = max(float(np.std(ins)), SIGMA_FLOOR)
            z_in = (x - mu_in) / sd_in
            # log N(x; mu_in, sd_in) - log N(x; mu_out, sd_out)
            out[t, i] = math.log(sd_out) - math.log(sd_in) - z_in**2 / 2 + z_out**2 / 2
    return out


def rmia_references(
    masks: npt.ArrayLike,
    probs: npt.ArrayLike,
    population: npt.ArrayLike,
    k: int,
    *,
    online: bool = True,
    gamma: float = 1.0,
    offline_a: float = 0.3,
    seed: int = 0,
) -> F64:
    """RMIA scores ``(R, N)``: for target t and example i, ``Pr(x)`` is the mean of
    ``probs`` over the k out-runs (online also the k in-runs) of smallest key ``u[s, i]``,
    offline scaled to ``((1 + a) mean + 1 - a) / 2``; ``Pr(z)`` the same over the 2k (online)
    or k (offline) runs s != t of smallest ``v[s]``; the score is the fraction of
    population z (with a defined ratio) where ``p_t(x) / Pr(x) >= gamma p_t(z) / Pr(z)``.

    Parameters
    ----------
    masks : (R, N) bool
    probs : (R, N) float
    population : (R, Z) float
    k : int
    online : bool
    gamma, offline_a : float
    seed : int

    Returns
    -------
    ndarray of float64
    """
    m = np.asarray(masks, dtype=bool)
    p = np.asarray(probs, dtype=np.float64)
    z = np.asarray(population, dtype=np.float64)
    r, n = m.shape
    u, v = _keys(r, n, seed)

    def marginal(mean: float) -> float:
        return mean if online else ((1 + offline_a) * mean + (1 - offline_a)) / 2

    out = np.full((r, n), np.nan)
    size = 2 * k if online else k
    for t in range(r):
        pop_refs = _pick([s for s in range(r) if s != t], v, size)
        ratio_z = []
        with np.errstate(divide="ignore", invalid="ignore"):  # IEEE: x / 0 = inf, 0 / 0 = NaN
            for j in range(z.shape[1]):
                rz = z[t, j] / np.float64(marginal(sum(z[s, j] for s in pop_refs) / size))
                if not np.isnan(rz):  # an undefined ratio is left out
                    ratio_z.append(rz)
            for i in range(n):
                refs = _pick([s for s in range(r) if s != t and not m[s, i]], u[:, i], k)
                if online:
                    refs += _pick([s for s in range(r) if s != t and m[s, i]], u[:, i], k)
                ratio_x = p[t, i] / np.float64(marginal(sum(p[s, i] for s in refs) / len(refs)))
                if ratio_z and not np.isnan(ratio_x):
                    out[t, i] = sum(bool(ratio_x >= gamma * rz) for rz in ratio_z) / len(ratio_z)
    return out
