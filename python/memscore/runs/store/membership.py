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

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import polars as pl

from ..._validate import check_choice
from ...executors import ExecutorLike
from ..membership import lira as _lira
from ..reference_budget import SCORES
from ..reference_budget import reference_budget as _reference_budget
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

    def lira(
        self,
        *,
        online: bool = True,
        fixed_variance: bool = False,
        references: int | None = None,
        seed: int = 0,
        executor: ExecutorLike = None,
    ) -> F64:
        """LiRA membership scores (R, n_train) on the stored train phi.

        Loads all masks (bit-packed) and phi and calls :func:`memscore.lira`; row r scores
        run r (run-id order) with every other run as a shadow.

        Parameters
        ----------
        online, fixed_variance : bool
            As :func:`memscore.lira`.
        references : int, optional
            Shadow runs per example and side, as :func:`memscore.lira` (None: all).
        seed : int, default 0
            Which runs are the ``references``.
        executor : None, str or memscore.executors.Executor
            Who reads the runs (:func:`memscore.executors.as_executor`), by run ranges;
            the scores are computed here from all of them: identical under every executor.

        Returns
        -------
        ndarray of float64, shape (R, n_train)

        Raises
        ------
        ValueError
            ``references`` larger than some example allows.
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
        masks = got.rows("mask_bits")
        return _lira(masks, phi, online=online, fixed_variance=fixed_variance, references=references, seed=seed)

    def rmia(
        self,
        *,
        online: bool = True,
        gamma: float = 1.0,
        offline_a: float = 0.3,
        references: int | None = None,
        seed: int = 0,
        executor: ExecutorLike = None,
    ) -> F64:
        """RMIA membership scores (R, n_train), the test split as the population.

        Loads all masks (bit-packed) and the stored train and test phi, turns them into
        probabilities of the true label (:func:`memscore.true_class_probability`) and
        calls :func:`memscore.rmia`; row r scores run r (run-id order) with every other run
        as a reference.

        Parameters
        ----------
        online, gamma, offline_a, references, seed
            As :func:`memscore.rmia`.
        executor : None, str or memscore.executors.Executor
            As :meth:`lira` (the tasks also turn phi into probabilities).

        Returns
        -------
        ndarray of float64, shape (R, n_train)

        Raises
        ------
        ValueError
            No test examples to serve as the population; ``references`` larger than some
            example allows.
        StoreError
            No runs, a run without train or test phi, or a damaged run file.
        TypeError, memscore.ClusterError
            As :meth:`lira`.
        """
        self._need_population("rmia")
        maps = {"train_phi": phi_probability, "test_phi": phi_probability}
        got = read_rows(self, ["mask_bits", "train_phi", "test_phi"], maps, executor)
        return _rmia(
            got.rows("mask_bits"),
            np.asarray(got.rows("train_phi")),
            np.asarray(got.rows("test_phi")),
            online=online,
            gamma=gamma,
            offline_a=offline_a,
            references=references,
            seed=seed,
        )

    def reference_budget(
        self,
        *,
        scores: Sequence[str] = SCORES,
        ks: Sequence[int | Literal["all"]] | None = None,
        online: bool = True,
        seed: int = 0,
        ci: float | None = 0.95,
        n_boot: int = 1000,
        fpr_levels: tuple[float, ...] = (0.01, 0.001, 0.0001),
        executor: ExecutorLike = None,
    ) -> pl.DataFrame:
        """The reference-budget curve of the stored runs (:func:`memscore.runs.reference_budget.reference_budget`):
        LiRA on the stored train phi and RMIA on its probabilities (the test split as the
        population), with k = 1, 2, 4, ... references per example and with all of them.

        Parameters
        ----------
        scores, ks, online, seed, ci, n_boot, fpr_levels
            As :func:`~memscore.runs.reference_budget.reference_budget`.
        executor : None, str or memscore.executors.Executor
            Who reads the runs, as :meth:`lira`.

        Returns
        -------
        polars.DataFrame
            ``score``, ``k`` (null: all references), ``auc``, ``tpr_at_fpr_<level>`` and
            their intervals.

        Raises
        ------
        ValueError
            As the function; ``"rmia"`` on a store without test examples.
        StoreError, TypeError, memscore.ClusterError
            As :meth:`lira`.
        """
        if "rmia" in scores:
            self._need_population("rmia")
        fields = ["mask_bits", "train_phi"] + (["test_phi"] if "rmia" in scores else [])
        got = read_rows(self, fields, {}, executor)
        phi = np.asarray(got.rows("train_phi"))
        rmia_inputs: dict[str, F64] = {}
        if "rmia" in scores:
            test_phi = np.asarray(got.rows("test_phi"))
            rmia_inputs = {"probs": true_class_probability(phi), "population": true_class_probability(test_phi)}
        return _reference_budget(
            got.rows("mask_bits"),
            phi=phi,
            scores=scores,
            ks=ks,
            online=online,
            seed=seed,
            ci=ci,
            n_boot=n_boot,
            fpr_levels=fpr_levels,
            **rmia_inputs,
        )

    def _need_population(self, what: str) -> None:
        if self._layout.n_test == 0:
            raise ValueError(f"{what}: this store has no test examples (n_test = 0) to serve as the population")

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
