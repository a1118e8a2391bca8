"""Pairwise influence of a run store's training examples on its test examples.

:class:`InfluenceMethods` is the part of :class:`~memscore.RunStore` that computes it.
The pairwise statistic needs every run's mask for every pair, and its cost grows with
runs × train × test examples, so the work is split by *test* examples: each task
(:func:`influence_columns`) reads the masks and its test columns and runs the kernel of
:func:`memscore.influence`. A test example's row depends on its own column and every mask
alone, so the rows of the tasks, concatenated, are the one-task result bit for bit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from ..._validate import check_int
from ...executors import ExecutorLike
from ..bits import PackedBits
from ..scores import influence as _influence
from .accumulate import check_kind
from .format import outcome_name
from .reading import ReadMethods
from .scan import load
from .tasks import StoreRef, column_ranges, in_order, start_scan

__all__ = ["InfluenceMethods", "influence_columns"]


def influence_columns(
    ref: StoreRef,
    ids: list[str],
    t0: int,
    t1: int,
    kind: str,
    top_k: int | None,
    dtype: Any,
    train_labels: npt.NDArray[np.int64] | None,
    test_labels: npt.NDArray[np.int64] | None,
) -> Any:
    """Task: influence on test examples ``t0 .. t1 - 1`` (``t0`` a multiple of 8, so
    packed test bits are sliced on whole bytes), from every run in ``ids``.

    ``test_labels`` are those of the range (None with ``train_labels`` None: all pairs).
    Returns what :func:`memscore.influence` returns for these columns.
    """
    name = outcome_name("test", kind)
    got = load(ref.reader(), ids, ["mask_bits", name], unpack=False)
    o = got[name]
    if (t0, t1) != (0, ref.layout.n_test):
        if isinstance(o, PackedBits):
            # t1 is a multiple of 8 or the last column: no bit of another column comes along
            o = PackedBits(np.ascontiguousarray(o.bits[:, t0 // 8 : -(-t1 // 8)]), t1 - t0)
        else:
            o = np.ascontiguousarray(o[:, t0:t1])
    labels: dict[str, Any] = {} if train_labels is None else {"train_labels": train_labels, "test_labels": test_labels}
    return _influence(got["mask_bits"], o, top_k=top_k, dtype=dtype, **labels)


class InfluenceMethods(ReadMethods):
    """Influence of the training examples on the test examples (a part of
    :class:`~memscore.RunStore`)."""

    _train_labels: npt.NDArray[np.int64] | None
    _test_labels: npt.NDArray[np.int64] | None

    def influence(
        self,
        kind: str = "correct",
        *,
        top_k: int | None = None,
        same_class: bool = False,
        dtype: Any = np.float32,
        executor: ExecutorLike = None,
    ) -> Any:
        """Influence of every training example on every test example.

        The pairwise statistic needs all runs at once: a task loads all masks and the test
        outcomes of its test examples (bit-packed for bool outcomes: R·(n_train + n_test)/8
        bytes; 8·R·n_test more for phi) and calls :func:`memscore.influence`.

        Parameters
        ----------
        kind : {"correct", "phi"}
            Test outcomes.
        top_k : int, optional
            Return ``(indices (T, k), values (T, k))`` instead of the (T, N) matrix.
        same_class : bool
            Only pairs with equal labels (needs train and test labels).
        dtype : dtype
            float32 or float64 for the full matrix.
        executor : None, str or memscore.executors.Executor
            Who computes it (:func:`memscore.executors.as_executor`): the test examples
            are split over the executor's workers (one task when it runs one at a time),
            every task reading every run; identical results under every executor. Workers
            must see the store's directory.

        Returns
        -------
        ndarray or tuple of ndarray
            As :func:`memscore.influence`.

        Raises
        ------
        ValueError
            No test examples, or ``same_class`` without labels.
        StoreError
            No runs, or a damaged run file.
        TypeError
            ``executor`` names no executor.
        memscore.ClusterError
            The executor's workers cannot run a task or do not see the store.

        Examples
        --------
        >>> import memscore, tempfile
        >>> s = memscore.RunStore.create(tempfile.mkdtemp() + "/s", n_train=2, n_test=1)
        >>> _ = s.add_run([1, 0], train_correct=[1, 0], test_correct=[1])
        >>> _ = s.add_run([0, 1], train_correct=[0, 1], test_correct=[0])
        >>> s.influence(executor="threads:2")
        array([[ 1., -1.]], dtype=float32)
        """
        check_kind(kind)
        if self._layout.n_test == 0:
            raise ValueError("influence: this store has no test examples (n_test = 0)")
        if same_class and (self._train_labels is None or self._test_labels is None):
            raise ValueError("same_class=True needs the store's train_labels and test_labels")
        if top_k is not None:
            top_k = check_int(top_k, "top_k", 1)
        elif np.dtype(dtype) not in (np.float32, np.float64):
            raise TypeError(f"dtype: expected float32 or float64, got {np.dtype(dtype)}")
        ids = self._ids_or_raise()
        ex, ref = start_scan(self._path, self._layout, executor)
        train = ex.share(self._train_labels) if same_class else None
        test = self._test_labels if same_class else None
        ranges = column_ranges(self._layout.n_test, ex)
        args = [
            (ref, ids, t0, t1, kind, top_k, dtype, train, None if test is None else test[t0:t1]) for t0, t1 in ranges
        ]
        results = ex.map(influence_columns, args, units=[t1 - t0 for t0, t1 in ranges], desc="influence", unit="tests")
        parts = list(in_order(results))
        if len(parts) == 1:
            return parts[0]
        if top_k is None:
            return np.concatenate(parts)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def influence_pairs(
        self, top_k: int = 10, *, same_class: bool = False, kind: str = "correct", executor: ExecutorLike = None
    ) -> pl.DataFrame:
        """The ``top_k`` most influential training examples of each test example, as a table.

        Parameters
        ----------
        top_k : int
            Pairs per test example.
        same_class : bool
            Only pairs with equal labels.
        kind : {"correct", "phi"}
            Test outcomes.
        executor : None, str or memscore.executors.Executor
            As :meth:`influence`.

        Returns
        -------
        polars.DataFrame
            Columns ``test_index``, ``rank`` (0 = most influential), ``train_index``
            (int64), ``influence`` (float64), ``test_label``, ``train_label`` (int64, null
            without labels). Test examples with fewer than ``top_k`` defined influences get
            fewer rows. Memory as :meth:`influence`. Save with ``.write_parquet(path)``.

        Raises
        ------
        ValueError, StoreError, TypeError, memscore.ClusterError
            As :meth:`influence`.
        """
        idx, val = self.influence(kind, top_k=top_k, same_class=same_class, executor=executor)
        idx = np.asarray(idx, dtype=np.int64)
        t, k = idx.shape
        test_index = np.repeat(np.arange(t, dtype=np.int64), k)
        rank = np.tile(np.arange(k, dtype=np.int64), t)
        train_index = idx.reshape(-1)
        keep = train_index >= 0
        test_index, rank, train_index = test_index[keep], rank[keep], train_index[keep]
        values = np.asarray(val, dtype=np.float64).reshape(-1)[keep]

        def lab(labels: np.ndarray | None, at: np.ndarray, name: str) -> pl.Series:
            if labels is None:
                return pl.Series(name, [None] * at.size, dtype=pl.Int64)
            return pl.Series(name, labels[at], dtype=pl.Int64)

        return pl.DataFrame(
            [
                pl.Series("test_index", test_index),
                pl.Series("rank", rank),
                pl.Series("train_index", train_index),
                pl.Series("influence", values, dtype=pl.Float64),
                lab(self._test_labels, test_index, "test_label"),
                lab(self._train_labels, train_index, "train_label"),
            ]
        )
