"""Datamodels and the LDS from a run store (a part of :class:`~memscore.RunStore`).

A store of training runs fits datamodels (:meth:`AttributionMethods.datamodels`, holding
out a fraction of its runs for the choice of λ); a store of evaluation runs (subsets
trained a few times each, e.g. a :class:`~memscore.train.SubsetPlan` with ``repeats``)
scores any attribution with :meth:`AttributionMethods.lds`, averaging the runs that
trained on the same subset.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..bits import PackedBits
from ..datamodels import Datamodels, split_rows
from ..datamodels import datamodels as _datamodels
from ..lds import LDS
from ..lds import lds as _lds
from .format import outcome_name
from .reading import ReadMethods
from .scan import load

__all__ = ["AttributionMethods"]


class AttributionMethods(ReadMethods):
    """Datamodels and the LDS over the stored runs."""

    def split_runs(self, fraction: float, seed: int = 0) -> tuple[list[str], list[str]]:
        """(kept, held-out) run ids: ``round(fraction · R)`` runs (at least one) drawn with ``seed``.

        Raises
        ------
        ValueError
            Fewer than two runs, or ``fraction`` outside (0, 1).
        """
        ids = self._ids_or_raise()
        keep, held = split_rows(len(ids), fraction, seed)
        return [ids[i] for i in keep], [ids[i] for i in held]

    def _runs_of(self, run_ids: Sequence[str] | None, kind: str) -> tuple[PackedBits, np.ndarray]:
        """Packed masks and test outcomes of ``run_ids`` (all runs when None)."""
        if kind not in ("correct", "phi"):
            raise ValueError(f"kind: expected 'correct' or 'phi', got {kind!r}")
        if self._layout.n_test == 0:
            raise ValueError("this store has no test examples (n_test = 0)")
        ids = self._ids_or_raise() if run_ids is None else list(run_ids)
        for rid in ids:
            self._check_exists(rid)
        name = outcome_name("test", kind)
        got = load(self._reader, ids, ["mask_bits"], unpack=False)["mask_bits"]
        out = load(self._reader, ids, [name])[name]
        assert isinstance(got, PackedBits) and isinstance(out, np.ndarray)
        return got, out

    def datamodels(
        self,
        kind: str = "phi",
        *,
        run_ids: Sequence[str] | None = None,
        val_fraction: float = 0.1,
        seed: int = 0,
        lam: float | None = None,
        **settings: Any,
    ) -> Datamodels:
        """Datamodels of the test examples fitted on the stored runs (:func:`memscore.datamodels`).

        Parameters
        ----------
        kind : {"phi", "correct"}, default "phi"
            The test outcome (the margin φ, or correctness).
        run_ids : sequence of str, optional
            Fit on these runs only (e.g. the first of :meth:`split_runs`).
        val_fraction, seed : float, int
            Without ``lam``: the fraction of the runs held out for the choice of λ, and the
            seed of that draw.
        lam : float, optional
            A fixed λ for every target (no runs held out).
        **settings
            ``n_lambdas``, ``lambda_ratio``, ``tol``, ``max_iter`` of :func:`memscore.datamodels`.

        Returns
        -------
        Datamodels

        Raises
        ------
        ValueError
            No test examples, a bad ``kind``, too few runs.
        RunNotFoundError
            An unknown run id.
        StoreError
            No runs, or a damaged run file.
        """
        masks, outcomes = self._runs_of(run_ids, kind)
        return _datamodels(masks, outcomes, lam=lam, val_fraction=val_fraction, seed=seed, **settings)

    def lds(
        self,
        attributions: Any,
        kind: str = "phi",
        *,
        run_ids: Sequence[str] | None = None,
        n_boot: int = 1000,
        seed: int = 0,
    ) -> LDS:
        """LDS of an attribution on these (evaluation) runs (:func:`memscore.lds`).

        Runs with identical masks trained on the same subset: their outcomes are averaged
        before the correlation (Park et al. 2023).

        Parameters
        ----------
        attributions : array-like, shape (n_test, n_train)
            The attribution to score (fitted on *other* runs).
        kind : {"phi", "correct"}, default "phi"
            The test outcome.
        run_ids : sequence of str, optional
            Use these runs only.
        n_boot, seed : int
            The bootstrap of the interval.

        Returns
        -------
        LDS

        Raises
        ------
        ValueError
            Fewer than three distinct subsets, attributions of the wrong shape, bad ``kind``.
        StoreError
            No runs, or a damaged run file.
        """
        masks, outcomes = self._runs_of(run_ids, kind)
        groups = _mask_groups(masks.bits)
        return _lds(attributions, masks, outcomes, groups=groups, n_boot=n_boot, seed=seed)


def _mask_groups(bits: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
    """One label per run: runs with identical packed masks share it."""
    _, inverse = np.unique(bits, axis=0, return_inverse=True)
    return np.asarray(inverse, dtype=np.int64).ravel()
