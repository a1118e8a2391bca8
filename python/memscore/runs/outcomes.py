"""Outcomes from logits: the logit-scaled confidence φ that LiRA and the run store keep, and
the per-example correctness, loss and EL2N recorded at training snapshots."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from .. import _core
from .._stats import log_softmax
from .._validate import (
    ArrayLike,
    as_labels,
    check_real,
    to_numpy,
)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

__all__ = ["logit_confidence", "snapshot_outcomes"]


def logit_confidence(logits: ArrayLike, labels: ArrayLike) -> F64:
    """Logit-scaled confidence ``phi = z_y - logsumexp_{y' != y} z_{y'}``.

    Equal to ``log p_y - log(1 - p_y)`` but computed stably from the logits, so it stays
    finite where ``p_y`` rounds to 1. This is the statistic LiRA models as Gaussian. The
    exponentials are vectorized, within 2 ulp of libm's (terms below ``e^-708`` of the
    largest other logit's are dropped: next to its ``e^0 = 1`` they cannot change the sum).

    Parameters
    ----------
    logits : array-like of float, shape (..., C)
        Logits, e.g. (R, N, C) for R runs on N examples; C >= 2.
    labels : array-like of int
        Labels in ``[0, C)``, broadcastable to ``logits.shape[:-1]``, e.g. (N,).

    Returns
    -------
    ndarray of float64, shape ``logits.shape[:-1]``

    Raises
    ------
    TypeError
        Non-float logits or non-integer labels.
    ValueError
        NaN / infinite logits, fewer than 2 classes, labels out of range or of a shape that
        does not broadcast.

    Examples
    --------
    >>> import numpy as np, memscore
    >>> memscore.logit_confidence(np.array([[0.0, 0.0]]), np.array([0]))
    array([0.])
    """
    z = to_numpy(logits, "logits")
    if z.ndim < 1:
        raise ValueError("logits: expected an array (..., C)")
    if z.dtype not in (np.float32, np.float64):
        if not np.issubdtype(z.dtype, np.number) or np.issubdtype(z.dtype, np.complexfloating):
            raise TypeError(f"logits: expected a float array, got dtype {z.dtype}")
        z = z.astype(np.float64)
    if not np.isfinite(z).all():
        raise ValueError("logits: contains NaN or infinite values")
    y = to_numpy(labels, "labels")
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"labels: expected integer labels, got dtype {y.dtype}")
    lead = z.shape[:-1]
    try:
        y = np.broadcast_to(y, lead)
    except ValueError:
        raise ValueError(f"labels: shape {y.shape} does not broadcast to logits' leading shape {lead}") from None
    c = z.shape[-1]
    flat = np.ascontiguousarray(z.reshape(-1, c))
    phi = _core.logit_confidence(flat, np.ascontiguousarray(y.reshape(-1), dtype=np.int64))
    out: F64 = phi.reshape(lead)
    return out


def snapshot_outcomes(logits: ArrayLike, labels: ArrayLike) -> dict[str, npt.NDArray[Any]]:
    """Per-example outcomes of one model's logits, as :meth:`RunStore.add_run` stores at
    training snapshots.

    Parameters
    ----------
    logits : array-like of float, shape (..., n, C)
        Finite logits (e.g. (S, n, C) for S snapshots of one run).
    labels : array-like of int, shape (n,)
        Class labels in ``[0, C)``.

    Returns
    -------
    dict of str to ndarray, each of shape (..., n)
        ``"correct"`` (bool), ``"loss"`` (float64 cross-entropy) and ``"el2n"`` (float64
        ``‖softmax(z) − onehot(y)‖₂``, Paul et al. 2021).

    Raises
    ------
    TypeError
        Non-numeric logits or non-integer labels.
    ValueError
        Wrong shapes, labels out of range, NaN / infinite logits.

    Examples
    --------
    >>> import numpy as np, memscore
    >>> memscore.snapshot_outcomes(np.array([[2.0, 0.0]]), [0])["correct"]
    array([ True])
    """
    za = to_numpy(logits, "logits")
    check_real(za, "logits")
    z = np.asarray(za, dtype=np.float64)
    if z.ndim < 2:
        raise ValueError(f"logits: expected shape (..., n, C), got {z.shape}")
    n, c = z.shape[-2:]
    y = as_labels(labels, "labels", n)
    if y.size and (y.min() < 0 or y.max() >= c):
        raise ValueError(f"labels: expected classes in 0..{c - 1}, got range {y.min()}..{y.max()}")
    if not np.isfinite(z).all():
        raise ValueError("logits: contains NaN or infinite values")
    logp = log_softmax(z)
    loss = -np.take_along_axis(logp, np.broadcast_to(y[:, None], z.shape[:-1] + (1,)), axis=-1)[..., 0]
    prob = np.exp(logp)
    onehot = np.zeros_like(prob)
    np.put_along_axis(onehot, np.broadcast_to(y[:, None], z.shape[:-1] + (1,)), 1.0, axis=-1)
    el2n = np.sqrt(((prob - onehot) ** 2).sum(axis=-1))
    correct = z.argmax(axis=-1) == y
    return {"correct": correct, "loss": loss, "el2n": el2n}
