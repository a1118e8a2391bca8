"""Membership inference on a run store's runs: LiRA and RMIA views, and the per-example ε audit.

:class:`MembershipMethods` is the part of :class:`~memscore.RunStore` that computes them.
Every run is in turn the target and every other run a shadow (reference), so each score
needs per-example statistics of all runs that are not sums (LiRA's medians, RMIA's
pairwise comparisons). The tasks do the part that is a map over runs: read run ranges,
and for RMIA turn phi into probabilities of the true label (:class:`~.accumulate.RowScan`);
the driver concatenates them in run order and runs the kernel once, so the result is
that of one process bit for bit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from ..._validate import check_choice
from ...executors import ExecutorLike
from ..membership import lira as _lira
from ..rmia import rmia as _rmia
from ..rmia import true_class_probability
from .accumulate import F64
from .reading import ReadMethods
from .scan import Stacked
from .tasks import read_rows

__all__ = ["EPSILON_SCORES", "MembershipMethods", "phi_probability"]

#: The per-run scores :meth:`MembershipMethods.epsilon` audits with.
EPSILON_SCORES = ("lira", "rmia", "phi")


def phi_probability(phi: Stacked) -> Stacked:
    """A chunk's probability of the true label from its stored phi (runs stay rows)."""
    return true_class_probability(np.asarray(phi))


class MembershipMethods(ReadMethods):
    """Membership scores of every run's training examples (a part of
    :class:`~memscore.RunStore`)."""

    def lira(self, *, online: bool = True, fixed_variance: bool = False, executor: ExecutorLike = None) -> F64:
        """LiRA membership scores (R, n_train) on the stored train phi.

        Loads all masks (bit-packed) and phi and calls :func:`memscore.lira`; row r scores
        run r (run-id order) with every other run as a shadow.

        Parameters
        ----------
        online, fixed_variance : bool
            As :func:`memscore.lira`.
        executor : None, str or memscore.executors.Executor
            Who reads the runs (:func:`memscore.executors.as_executor`), by run ranges;
            the scores are computed here from all of them: identical under every executor.

        Returns
        -------
        ndarray of float64, shape (R, n_train)

        Raises
        ------
        StoreError
            No runs, a run without phi, or a damaged run file.
        TypeError
            ``executor`` names no executor.
        memscore.ClusterError
            The executor's workers cannot run a task or do not see the store.
        """
        got = read_rows(self, ["mask_bits", "train_phi"], {}, executor)
        phi = got.rows("train_phi")
        assert isinstance(phi, np.ndarray)  # float fields come back as arrays, bits as PackedBits
        return _lira(got.rows("mask_bits"), phi, online=online, fixed_variance=fixed_variance)

    def rmia(
        self, *, online: bool = True, gamma: float = 1.0, offline_a: float = 0.3, executor: ExecutorLike = None
    ) -> F64:
        """RMIA membership scores (R, n_train), the test split as the population.

        Loads all masks (bit-packed) and the stored train and test phi, turns them into
        probabilities of the true label (:func:`memscore.true_class_probability`) and
        calls :func:`memscore.rmia`; row r scores run r (run-id order) with every other run
        as a reference.

        Parameters
        ----------
        online, gamma, offline_a
            As :func:`memscore.rmia`.
        executor : None, str or memscore.executors.Executor
            As :meth:`lira` (the tasks also turn phi into probabilities).

        Returns
        -------
        ndarray of float64, shape (R, n_train)

        Raises
        ------
        ValueError
            No test examples to serve as the population.
        StoreError
            No runs, a run without train or test phi, or a damaged run file.
        TypeError, memscore.ClusterError
            As :meth:`lira`.
        """
        if self._layout.n_test == 0:
            raise ValueError("rmia: this store has no test examples (n_test = 0) to serve as the population")
        maps = {"train_phi": phi_probability, "test_phi": phi_probability}
        got = read_rows(self, ["mask_bits", "train_phi", "test_phi"], maps, executor)
        return _rmia(
            got.rows("mask_bits"),
            np.asarray(got.rows("train_phi")),
            np.asarray(got.rows("test_phi")),
            online=online,
            gamma=gamma,
            offline_a=offline_a,
        )

    def epsilon(
        self,
        score: str = "lira",
        *,
        delta: float = 0.0,
        alpha: float = 0.05,
        threshold: Any = None,
        method: str = "clopper-pearson",
        direction: str = "greater",
        seed: int = 0,
        online: bool = True,
        executor: ExecutorLike = None,
    ) -> pl.DataFrame:
        """An ε lower bound per training example, its in-runs and out-runs as the trials.

        Every run scores every example (row r of :meth:`lira`, :meth:`rmia`, or the stored
        φ); :func:`memscore.audit.per_example_epsilon` bounds each example's ε from them.
        LiRA and RMIA score run r with every *other* run as a shadow, so one example's
        trials share their shadows and are not quite independent; ``score="phi"`` (each
        run's own confidence, which depends on that run alone) meets the bound's
        assumption exactly. docs/audit.md has the details.

        Parameters
        ----------
        score : {"lira", "rmia", "phi"}, default "lira"
            The per-run score: LiRA's or RMIA's (``online`` as there), or φ.
        delta, alpha, threshold, method, direction, seed
            As :func:`memscore.audit.per_example_epsilon`.
        online : bool, default True
            LiRA's or RMIA's online variant.
        executor : None, str or memscore.executors.Executor
            Who reads the runs (:meth:`lira`).

        Returns
        -------
        polars.DataFrame
            One row per training example (``index`` as in :meth:`scores`), see
            :func:`memscore.audit.per_example_epsilon`.

        Raises
        ------
        ValueError
            An unknown score; bad audit parameters.
        StoreError
            No runs, a run without phi, or a damaged run file.
        ImportError
            scipy is not installed.
        """
        from ...audit.per_example import per_example_epsilon

        which = check_choice(score, "score", EPSILON_SCORES)
        if which == "lira":
            scores = self.lira(online=online, executor=executor)
        elif which == "rmia":
            scores = self.rmia(online=online, executor=executor)
        else:
            scores = self.outcomes("train", "phi")
        return per_example_epsilon(
            scores,
            self.masks(),
            delta=delta,
            alpha=alpha,
            threshold=threshold,
            method=method,
            direction=direction,
            seed=seed,
        )
