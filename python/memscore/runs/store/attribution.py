"""Datamodels and the LDS from a run store (a part of :class:`~memscore.RunStore`).

A store of training runs fits datamodels (:meth:`AttributionMethods.datamodels`, holding
out a fraction of its runs for the choice of λ); a store of evaluation runs (subsets
trained a few times each, e.g. a :class:`~memscore.train.SubsetPlan` with ``repeats``)
scores any attribution with :meth:`AttributionMethods.lds`, averaging the runs that
trained on the same subset.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..._validate import check_int, check_summable
from ...executors import ExecutorLike, as_executor
from ..bits import PackedBits
from ..datamodels import (
    Datamodels,
    FitArgs,
    check_lam,
    check_settings,
    fit_block,
    map_kw,
    merge_blocks,
    split_rows,
    target_blocks,
    task_threads,
)
from ..datamodels import datamodels as _datamodels
from ..lds import LDS
from ..lds import lds as _lds
from .format import RUNS_DIR, Layout, outcome_name, read_manifest
from .reading import ReadMethods
from .scan import RunReader, chunks, load, stack

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
        ids, name = self._run_ids_of(run_ids, kind)
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
        executor: ExecutorLike = None,
        targets_per_task: int | None = None,
        progress: bool = False,
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
        executor : None, str or Executor, optional
            Who fits the blocks of targets (see :func:`memscore.datamodels`). Each task
            reads the masks and its block's outcomes from the store itself (which must be
            on a file system the workers see; with ``RayExecutor(storage="object")`` this
            process reads the runs and sends them). The result is the same under every
            executor, bit for bit.
        targets_per_task : int, optional
            Targets one task fits (rounded up to a multiple of 32).
        progress : bool, default False
            Show a progress bar over the targets.
        **settings
            ``n_lambdas``, ``lambda_ratio``, ``tol``, ``max_iter``, ``patience`` of
            :func:`memscore.datamodels`.

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
        memscore.ClusterError
            The workers do not see the store, or cannot run a task.

        Examples
        --------
        >>> import numpy as np, memscore, tempfile, os
        >>> store = memscore.RunStore.create(os.path.join(tempfile.mkdtemp(), "s"), n_train=3, n_test=1)
        >>> for m in np.random.default_rng(0).random((40, 3)) < 0.5:
        ...     _ = store.add_run(m, test_phi=[2.0 * m[1]])
        >>> dm = store.datamodels(lam=1e-3, executor="threads:2")
        >>> round(float(dm.weights[0, 1]), 2)
        2.0
        """
        ex = as_executor(executor)
        if not ex.shares_files:  # the workers do not see the store: send them the runs
            masks, outcomes = self._runs_of(run_ids, kind)
            return _datamodels(
                masks, outcomes, lam=lam, val_fraction=val_fraction, seed=seed, executor=ex,
                targets_per_task=targets_per_task, progress=progress, **settings,
            )  # fmt: skip
        ids, name = self._run_ids_of(run_ids, kind)
        t = self._layout.n_test
        lam_arr = check_lam(lam, t)
        solver = check_settings(**settings)
        rows = val_rows = None
        if lam_arr is None:
            rows, val_rows = split_rows(len(ids), val_fraction, check_int(seed, "seed"), "val_fraction")
        ex.start(gpus=0)
        ex.check_dir(self._path.resolve() / RUNS_DIR, write=False)
        blocks = target_blocks(t, ex, targets_per_task)
        fit = FitArgs(lam=lam_arr, rows=rows, val_rows=val_rows, settings=solver, threads=task_threads(ex))
        path = os.fspath(self._path.resolve())
        args = [(path, ids, name, t0, t1, fit.block(t0, t1)) for t0, t1 in blocks]
        done = ex.map(fit_store_block, args, units=[b - a for a, b in blocks], **map_kw(progress))
        return merge_blocks(done, blocks, self._layout.n_train, solver)

    def _run_ids_of(self, run_ids: Sequence[str] | None, kind: str) -> tuple[list[str], str]:
        """The run ids (all when None, each checked to exist) and the stored name of the
        test outcome ``kind``."""
        if kind not in ("correct", "phi"):
            raise ValueError(f"kind: expected 'correct' or 'phi', got {kind!r}")
        if self._layout.n_test == 0:
            raise ValueError("this store has no test examples (n_test = 0)")
        ids = self._ids_or_raise() if run_ids is None else list(run_ids)
        for rid in ids:
            self._check_exists(rid)
        return ids, outcome_name("test", kind)

    def lds(
        self,
        attributions: Any,
        kind: str = "phi",
        *,
        run_ids: Sequence[str] | None = None,
        n_boot: int = 1000,
        seed: int = 0,
        executor: ExecutorLike = None,
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
        executor : None, str or Executor, optional
            Who computes the correlations and the bootstrap (:func:`memscore.lds`); the
            score is the same under every executor.

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
        return _lds(attributions, masks, outcomes, groups=groups, n_boot=n_boot, seed=seed, executor=executor)


#: Runs a datamodels task reads at a time (its memory: their full test outcomes).
READ_CHUNK = 1024


def fit_store_block(path: str, ids: list[str], name: str, t0: int, t1: int, fit: FitArgs) -> Any:
    """The task of :meth:`AttributionMethods.datamodels`: read the masks of ``ids`` and
    their outcome ``name`` (test columns ``[t0, t1)``) from the store at ``path``
    (:func:`read_block`), then fit that block (:func:`memscore.runs.datamodels.fit_block`)."""
    bits, n, y = read_block(path, ids, name, t0, t1)
    return fit_block(bits, n, y, None, None, fit)


def read_block(
    path: str, ids: list[str], name: str, t0: int, t1: int
) -> tuple[npt.NDArray[np.uint8], int, npt.NDArray[np.float64]]:
    """Packed masks ``(R, ceil(N / 8))`` of ``ids``, N, and their outcome ``name`` in test
    columns ``[t0, t1)`` as float64 ``(R, t1 - t0)``, read from the store at ``path``
    :data:`READ_CHUNK` runs at a time (only the block's columns are kept).

    Raises
    ------
    StoreError
        A missing or damaged run file.
    ValueError
        NaN or infinite outcomes.
    """
    root = Path(path)
    manifest, _ = read_manifest(root)
    layout = Layout(manifest["n_train"], manifest["n_test"], manifest["n_classes"])
    reader = RunReader(root / RUNS_DIR, layout)
    bits = np.empty((len(ids), -(-layout.n_train // 8)), dtype=np.uint8)
    y = np.empty((len(ids), t1 - t0), dtype=np.float64)
    r = 0
    for part in chunks(ids, READ_CHUNK):
        recs = [reader.read(rid, ["mask_bits", name]) for rid in part]
        bits[r : r + len(part)] = np.stack([rec.arrays["mask_bits"] for rec in recs])
        out = stack(layout, name, [rec.arrays[name] for rec in recs])
        assert isinstance(out, np.ndarray)
        y[r : r + len(part)] = out[:, t0:t1]
        r += len(part)
    if not np.isfinite(y).all():
        raise ValueError(f"outcomes: the stored {name} contain NaN or infinite values")
    # the core sums them in float32, as for datamodels() given the arrays
    check_summable(y, f"stored {name}", len(ids), dtype=np.float32)
    return bits, layout.n_train, y


def _mask_groups(bits: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
    """One label per run: runs with identical packed masks share it."""
    _, inverse = np.unique(bits, axis=0, return_inverse=True)
    return np.asarray(inverse, dtype=np.int64).ravel()
