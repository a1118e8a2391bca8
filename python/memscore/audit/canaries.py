"""Canaries: the examples an audit scores, marked so that a training run can be audited.

A one-run audit (:func:`~memscore.audit.one_run_epsilon`) needs m canaries, each in the
training set independently with probability ½: a :class:`~memscore.train.SubsetPlan` with
``independent=True, keep=0.5`` gives that inclusion, and :func:`canaries` picks which
examples are canaries and, for ``kind="mislabel"``, gives them a wrong label (an example
that only memorization can fit, so that members and non-members separate well). The driver
then trains on ``canaries.labels`` like any other run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .._validate import as_mask, check_choice, check_class_labels, check_int, check_optional_int, to_numpy

__all__ = ["KINDS", "Canaries", "canaries"]

I64 = npt.NDArray[np.int64]
KINDS = ("mislabel", "natural")


@dataclass(frozen=True)
class Canaries:
    """The canaries of an audit.

    Attributes
    ----------
    indices : ndarray of int64, shape (m,)
        The canaries' example indices, sorted.
    kind : str
        ``"mislabel"`` (given a uniformly random wrong label) or ``"natural"`` (as they are).
    labels : ndarray of int64, shape (N,), or None
        The labels to train with: the dataset's, with the canaries' replaced for
        ``"mislabel"``; None when no labels were given (``"natural"`` only).
    original : ndarray of int64, shape (m,), or None
        The canaries' labels before relabelling (None without labels).
    included : ndarray of bool, shape (R, m), or None
        Whether each run of the plan trains on each canary (None when given N, not a plan).
    n_examples : int
        N.
    seed : int
        The seed of the choice and of the new labels.
    """

    indices: I64
    kind: str
    labels: I64 | None
    original: I64 | None
    included: npt.NDArray[np.bool_] | None
    n_examples: int
    seed: int

    def __len__(self) -> int:
        return int(self.indices.size)

    def included_in(self, masks: Any) -> npt.NDArray[np.bool_]:
        """The canaries' columns of a plan's or a store's masks.

        Parameters
        ----------
        masks : SubsetPlan or array-like of bool, shape (R, N)
            Which run trained on which example (``plan``, ``plan.masks`` or ``store.masks()``).

        Returns
        -------
        ndarray of bool, shape (R, m)

        Raises
        ------
        ValueError
            Masks over another number of examples.
        """
        mk = as_mask(getattr(masks, "masks", masks), "masks", ndim=2)
        if mk.shape[1] != self.n_examples:
            raise ValueError(f"masks: expected {self.n_examples} examples (columns), got shape {mk.shape}")
        out: npt.NDArray[np.bool_] = mk[:, self.indices]
        return out

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready description (the indices and labels as lists).

        Returns
        -------
        dict of str to object
        """
        out = dataclasses.asdict(self)
        return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in out.items()}


def canaries(
    plan_or_n: Any,
    m: int,
    *,
    kind: str = "mislabel",
    labels: npt.ArrayLike | None = None,
    n_classes: int | None = None,
    seed: int = 0,
) -> Canaries:
    """Mark ``m`` of the examples as canaries.

    The canaries are a uniform random subset of the N examples. ``kind="mislabel"`` gives
    each a label drawn uniformly from the other classes. Train on ``result.labels`` (with
    the plan) like any other run, then score the canaries: ``result.indices`` are their
    columns in the store, ``result.included`` their membership in each run.

    Parameters
    ----------
    plan_or_n : SubsetPlan or int
        The plan of the runs to audit (its ``n_examples``, and ``included`` from its
        masks), or N.
    m : int
        Canaries, ``1 ≤ m ≤ N``.
    kind : {"mislabel", "natural"}, default "mislabel"
        Relabel the canaries, or leave them as they are.
    labels : array-like of int, shape (N,), optional
        The dataset's labels; needed for ``"mislabel"``.
    n_classes : int, optional
        Number of classes (default: the largest label + 1), ≥ 2 for ``"mislabel"``.
    seed : int, default 0
        Seed of the choice and of the new labels.

    Returns
    -------
    Canaries

    Raises
    ------
    TypeError
        ``plan_or_n`` neither a plan nor an int; labels that are not integers.
    ValueError
        ``m`` out of range; ``"mislabel"`` without labels or with fewer than 2 classes;
        labels of the wrong length or out of range.

    Examples
    --------
    >>> from memscore.audit import canaries
    >>> from memscore.train import SubsetPlan
    >>> plan = SubsetPlan(10, 1, keep=0.5, independent=True, seed=0)
    >>> c = canaries(plan, 3, labels=[0, 1] * 5, seed=0)
    >>> c.indices.tolist(), c.included.shape
    ([5, 6, 9], (1, 3))
    >>> bool((c.labels[c.indices] != c.original).all())
    True
    """
    from ..train.plan import SubsetPlan

    if isinstance(plan_or_n, SubsetPlan):
        n, masks = plan_or_n.n_examples, plan_or_n.masks
    elif isinstance(plan_or_n, (int, np.integer)) and not isinstance(plan_or_n, (bool, np.bool_)):
        n, masks = check_int(plan_or_n, "plan_or_n", 1), None
    else:
        raise TypeError(f"plan_or_n: expected a memscore.train.SubsetPlan or an int, got {type(plan_or_n).__name__}")
    k = check_int(m, "m", 1, n)
    what = check_choice(kind, "kind", KINDS)
    s = check_int(seed, "seed", 0)
    rng = np.random.default_rng(s)
    idx = np.sort(rng.choice(n, size=k, replace=False)).astype(np.int64)
    new: I64 | None = None
    original: I64 | None = None
    if labels is not None:
        y = to_numpy(labels, "labels")
        if y.ndim != 1 or y.shape[0] != n:
            raise ValueError(f"labels: expected shape ({n},), got {y.shape}")
        check_class_labels(y, "labels", check_optional_int(n_classes, "n_classes", 1))
        y = np.asarray(y, dtype=np.int64)
        c = int(n_classes) if n_classes is not None else int(y.max()) + 1
        new, original = y.copy(), y[idx].copy()
        if what == "mislabel":
            if c < 2:
                raise ValueError(f"n_classes: kind='mislabel' needs at least 2 classes, got {c}")
            # A shift by 1..C-1 (mod C) is uniform over the other classes.
            new[idx] = (original + rng.integers(1, c, size=k)) % c
    elif what == "mislabel":
        raise ValueError("labels: kind='mislabel' needs the dataset's labels, got None")
    inc = None if masks is None else np.ascontiguousarray(masks[:, idx])
    return Canaries(idx, what, new, original, inc, n, s)
