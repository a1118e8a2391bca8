"""Reading a run store's runs back: masks, outcomes, snapshots and per-run records.

:class:`ReadMethods` is the part of :class:`~memscore.RunStore` that returns stored arrays
as they were added, over the store object's snapshot of the run list.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt

from ..._validate import check_int
from ...errors import RunNotFoundError, StoreError
from ..bits import PackedBits
from .format import (
    FIELDS,
    KINDS,
    SNAP_KINDS,
    SPLITS,
    Layout,
    check_run_id,
    outcome_name,
    snapshot_name,
)
from .scan import RunReader, chunks, load

__all__ = ["ReadMethods"]

F64 = npt.NDArray[np.float64]


class ReadMethods:
    """Reading runs back (a part of :class:`~memscore.RunStore`)."""

    _path: Path
    _layout: Layout
    _reader: RunReader
    _ids: list[str]

    def _ids_or_raise(self) -> list[str]:
        if not self._ids:
            raise StoreError(f"{self._path}: the store holds no runs yet")
        return list(self._ids)

    # ------------------------------------------------------------------ reading runs

    def _field_name(self, split: str, kind: str) -> str:
        if split not in SPLITS:
            raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
        if kind not in KINDS:
            raise ValueError(f"kind: expected 'correct', 'phi', 'logits', 'pred' or 'phi_views', got {kind!r}")
        if split == "test" and self._layout.n_test == 0:
            raise ValueError("split='test': this store has no test examples (n_test = 0)")
        return outcome_name(split, kind)

    def _check_exists(self, run_id: str) -> None:
        check_run_id(run_id)
        if not self._reader.path(run_id).exists():
            raise RunNotFoundError(f"no run {run_id!r} in store {self._path}")

    def run_info(self, run_id: str) -> dict[str, Any]:
        """The full JSON record kept with a run.

        Parameters
        ----------
        run_id : str
            The run.

        Returns
        -------
        dict
            Ids, fields, subset ratio, metadata, created time, checksum.

        Raises
        ------
        RunNotFoundError
            No such run (a :class:`StoreError` and a ``KeyError``).
        StoreError
            The run file is damaged or does not belong to this store.
        """
        self._check_exists(run_id)
        return self._reader.read(run_id).meta

    def run_metadata(self, run_id: str) -> dict[str, Any]:
        """The ``metadata`` dict given to :meth:`add_run` for this run ({} if none).

        Raises
        ------
        RunNotFoundError, StoreError
            As :meth:`run_info`.
        """
        meta = self.run_info(run_id).get("metadata")
        return meta if isinstance(meta, dict) else {}

    def mask(self, run_id: str) -> npt.NDArray[np.bool_]:
        """The ``(n_train,)`` bool mask of one run.

        Raises
        ------
        RunNotFoundError, StoreError
            As :meth:`run_info`.
        """
        self._check_exists(run_id)
        a = self._reader.read(run_id, ["mask_bits"]).arrays["mask_bits"]
        out: npt.NDArray[np.bool_] = self._layout.decode(FIELDS["mask_bits"], a)
        return out

    def multiplicity(self, run_id: str) -> npt.NDArray[np.int64] | None:
        """The ``(n_train,)`` bootstrap draw counts of one run, or None (a subset run).

        Raises
        ------
        RunNotFoundError, StoreError
            As :meth:`run_info`.
        """
        self._check_exists(run_id)
        rec = self._reader.read(run_id, (), ["multiplicity"])
        if "multiplicity" not in rec.arrays:
            return None
        out: npt.NDArray[np.int64] = self._layout.decode(FIELDS["multiplicity"], rec.arrays["multiplicity"])
        return out

    def multiplicities(self) -> npt.NDArray[np.int64]:
        """Bootstrap draw counts of all runs in the snapshot, in run-id order.

        Returns
        -------
        ndarray of int64, shape (R, n_train)
            ``masks() == (multiplicities() > 0)``.

        Raises
        ------
        StoreError
            No runs, or a run without multiplicities (added from a subset plan, not a
            bootstrap one: ``SubsetPlan(..., bootstrap=True)``), or a damaged run file.
        """
        got = load(self._reader, self._ids_or_raise(), ["multiplicity"])["multiplicity"]
        return np.asarray(got, dtype=np.int64)

    @overload
    def masks(self, *, packed: Literal[False] = ...) -> npt.NDArray[np.bool_]: ...
    @overload
    def masks(self, *, packed: Literal[True]) -> PackedBits: ...

    def masks(self, *, packed: bool = False) -> npt.NDArray[np.bool_] | PackedBits:
        """Masks of all runs in the snapshot, in run-id order.

        Parameters
        ----------
        packed : bool
            Return the stored rows as :class:`~memscore.runs.bits.PackedBits` (one bit per
            entry, what the array-level scores take) instead of an unpacked bool array.

        Returns
        -------
        ndarray of bool, shape (R, n_train), or PackedBits

        Raises
        ------
        StoreError
            A damaged run file, or one that disagrees with the manifest (named).
        """
        got = load(self._reader, self._ids, ["mask_bits"], unpack=not packed)["mask_bits"]
        return got

    def outcomes(self, split: str = "train", kind: str = "correct", *, runs: Sequence[str] | None = None) -> np.ndarray:
        """Outcomes of all runs in the snapshot, in run-id order (or of the runs ``runs``).

        Parameters
        ----------
        split : {"train", "test"}
            Whose examples.
        kind : {"correct", "phi", "pred", "logits", "phi_views"}
            ``"correct"`` ((R, n) bool), ``"phi"`` ((R, n) float64), ``"pred"`` ((R, n)
            int64 predicted class; runs added from logits have it), ``"logits"``
            ((R, n, C) float32; only runs added with ``keep_logits=True`` have them) or
            ``"phi_views"`` ((R, n, K) float64 confidences on K augmented views, for
            :func:`memscore.lira`; runs added with ``*_phi_views``).
        runs : sequence of str, optional
            Only these runs, in this order (one read of each run file).

        Returns
        -------
        ndarray

        Raises
        ------
        ValueError
            Bad ``split`` / ``kind``.
        StoreError
            A run lacks that field (the message names its file) or is damaged.
        RunNotFoundError
            A run of ``runs`` is not in the store.
        """
        name = self._field_name(split, kind)
        ids = self._ids
        if runs is not None:
            ids = list(runs)
            for rid in ids:
                self._check_exists(rid)
        out = load(self._reader, ids, [name])[name]
        assert isinstance(out, np.ndarray)
        return out

    def iter_chunks(
        self, chunk_runs: int = 256, *, split: str = "train", kind: str = "correct"
    ) -> Iterator[tuple[npt.NDArray[np.bool_], np.ndarray]]:
        """Stream ``(masks_chunk, outcomes_chunk)`` over at most ``chunk_runs`` runs at a time.

        Chunks follow run-id order; their concatenation equals ``(masks(), outcomes(split,
        kind))``. The snapshot of the run list is taken when iteration starts; each chunk
        is read when it is reached.

        Parameters
        ----------
        chunk_runs : int
            Runs per chunk.
        split, kind : str
            As in :meth:`outcomes`.

        Returns
        -------
        iterator of (ndarray, ndarray)

        Raises
        ------
        ValueError
            Bad arguments (raised here, not at the first ``next()``).
        """
        chunk_runs = check_int(chunk_runs, "chunk_runs", 1)
        name = self._field_name(split, kind)

        def gen() -> Iterator[tuple[npt.NDArray[np.bool_], np.ndarray]]:
            for part in chunks(list(self._ids), chunk_runs):
                got = load(self._reader, part, ["mask_bits", name])
                m, o = got["mask_bits"], got[name]
                assert isinstance(m, np.ndarray) and isinstance(o, np.ndarray)
                yield m, o

        return gen()

    def snapshots(self, split: str = "train", kind: str = "correct") -> tuple[npt.NDArray[np.int64], np.ndarray]:
        """Outcomes recorded at training snapshots, in run-id order.

        Parameters
        ----------
        split : {"train", "test"}
            Whose examples.
        kind : {"correct", "loss", "el2n", "grand"}
            ``"correct"`` (bool) or a float64 statistic.

        Returns
        -------
        (ndarray of int64, ndarray)
            ``(epochs (S,), values (R, S, n))``.

        Raises
        ------
        StoreError
            A run has no such snapshots, or runs disagree on the epochs.
        """
        if split not in SPLITS:
            raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
        if kind not in SNAP_KINDS:
            raise ValueError(f"kind: expected one of {list(SNAP_KINDS)}, got {kind!r}")
        name = snapshot_name(split, kind)
        got = load(self._reader, self._ids_or_raise(), ["snap_epochs", name])
        epochs, values = got["snap_epochs"], got[name]
        assert isinstance(epochs, np.ndarray) and isinstance(values, np.ndarray)
        if epochs.shape[0] and np.any(epochs != epochs[0]):
            raise StoreError("runs disagree on their snapshot epochs")
        return epochs[0], values

    def subset_ratios(self) -> F64:
        """(R,) float64 subset ratio of each run in run-id order, NaN where not given.

        Raises
        ------
        StoreError
            A damaged run file.
        """
        out = np.full(len(self._ids), np.nan)
        for k, rid in enumerate(self._ids):
            r = self._reader.read(rid).meta.get("subset_ratio")
            if r is not None:
                out[k] = float(r)
        return out
