"""The :class:`RunStore` class: one store on disk, delegating to the modules beside it.

The format is described in :mod:`memscore.runs.store`; the field table in :mod:`.format`,
reading and streamed statistics in :mod:`.scan`, writing in :mod:`.write`, integrity in
:mod:`.verify` and merging in :mod:`.merge`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, Union, overload

import numpy as np
import numpy.typing as npt
import polars as pl

from ...errors import StoreError
from ..bits import PackedBits
from ..scores import influence as _influence
from ..scores import lira as _lira
from . import merge as _merge
from .format import (
    FIELDS,
    KINDS,
    MANIFEST,
    RUN_ID,
    RUNS_DIR,
    SNAP_KINDS,
    SPLITS,
    Layout,
    RunNotFoundError,
    check_int,
    check_run_id,
    outcome_name,
    read_manifest,
    run_rel,
    snapshot_name,
)
from .scan import (
    SNAP_COLUMNS,
    GroupedStats,
    RunReader,
    RunRecord,
    SnapshotStats,
    Stacked,
    chunks,
    load,
    ratio_keys,
    scan,
    stack_records,
)
from .verify import DEFAULT_TMP_GRACE_S, clean_tmp, verify_store
from .write import build_run, create_tree, make_manifest, write_run

__all__ = ["RunStore"]

PathLike = Union[str, "os.PathLike[str]"]
F64 = npt.NDArray[np.float64]
_SNAP_OPTIONAL = ("snap_epochs", "snap_train_correct_bits", "snap_train_loss", "snap_train_el2n", "snap_train_grand")


class RunStore:
    """Masks and outcomes of many training runs, stored on disk (see :mod:`memscore.runs.store`).

    Make one with :meth:`create`, reopen it with :meth:`open`, add runs with
    :meth:`add_run` (safe from many processes at once), read them back with
    :meth:`masks` / :meth:`outcomes` / :meth:`iter_chunks`, and compute scores with
    :meth:`memorization`, :meth:`holdout_accuracy`, :meth:`influence`, :meth:`lira`,
    :meth:`scores` and :meth:`influence_pairs`. Runs are always listed sorted by run id.

    A store object reads one consistent list of runs: the one taken when it was opened
    or created, refreshed by :meth:`refresh` and after each of its own :meth:`add_run`.
    Runs other processes add meanwhile appear after :meth:`refresh`, so ``masks()`` and
    ``outcomes()`` always describe the same runs.

    >>> import numpy as np, memscore, tempfile, os
    >>> d = os.path.join(tempfile.mkdtemp(), "store")
    >>> store = memscore.RunStore.create(d, n_train=4, train_labels=[0, 1, 0, 1])
    >>> rid = store.add_run([1, 0, 1, 0], train_correct=[1, 1, 1, 0])
    >>> store.masks().shape
    (1, 4)
    """

    def __init__(
        self,
        path: PathLike,
        manifest: dict[str, Any],
        train_labels: npt.NDArray[np.int64] | None,
        test_labels: npt.NDArray[np.int64] | None,
    ) -> None:
        """Internal: use :meth:`create` or :meth:`open`."""
        self._path = Path(path)
        self._manifest = manifest
        self._layout = Layout(manifest["n_train"], manifest["n_test"], manifest["n_classes"])
        for lab in (train_labels, test_labels):
            if lab is not None:
                lab.flags.writeable = False
        self._train_labels = train_labels
        self._test_labels = test_labels
        self._reader = RunReader(self._path / RUNS_DIR, self._layout)
        # Class count of logits seen in earlier runs, when the manifest fixes none.
        self._seen_classes: int | None = None
        self._scanned_for_classes: set[str] = set()
        self._ids: list[str] = []
        self.refresh()

    # ------------------------------------------------------------------ create / open

    @classmethod
    def create(
        cls,
        path: PathLike,
        *,
        n_train: int,
        n_test: int = 0,
        train_labels: Any = None,
        test_labels: Any = None,
        n_classes: int | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> RunStore:
        """Create an empty store in directory ``path``, atomically.

        The store is built in a temporary directory beside ``path`` and renamed into place
        in one step, so it is either absent or complete; of two processes creating the
        same store, one wins and the other gets :class:`StoreError`.

        Parameters
        ----------
        path : str or PathLike
            Directory; it may exist (empty, or without a store), but must not already
            hold a store.
        n_train : int
            Number of training examples (length of every mask).
        n_test : int
            Number of test examples (0: the store keeps no test outcomes).
        train_labels, test_labels : array_like, optional
            ``(n,)`` non-negative integer class labels, needed to derive outcomes from
            logits; stored as int64 ``.npy``.
        n_classes : int, optional
            Number of classes; when set, logits must have this many columns and labels
            must be below it. When not set, all runs with logits must agree on the class
            count.
        metadata : dict, optional
            JSON-serializable dict stored in the manifest.

        Returns
        -------
        RunStore

        Raises
        ------
        StoreError
            ``path`` already holds a store (also when another process created it first).
        ValueError, TypeError
            Bad arguments.
        """
        manifest, labels = make_manifest(n_train, n_test, n_classes, metadata, (train_labels, test_labels))
        root = Path(path)
        create_tree(root, manifest, labels)
        return cls(root, manifest, labels["train_labels"], labels["test_labels"])

    @classmethod
    def open(cls, path: PathLike) -> RunStore:
        """Open an existing store.

        Parameters
        ----------
        path : str or PathLike
            The store's directory.

        Returns
        -------
        RunStore

        Raises
        ------
        StoreError
            No manifest, an unparseable one, another format or version, or a missing /
            malformed labels file.
        """
        root = Path(path)
        manifest, labels = read_manifest(root)
        return cls(root, manifest, labels["train_labels"], labels["test_labels"])

    # ------------------------------------------------------------------ properties

    @property
    def path(self) -> Path:
        """The store's directory."""
        return self._path

    @property
    def n_train(self) -> int:
        """Number of training examples."""
        return self._layout.n_train

    @property
    def n_test(self) -> int:
        """Number of test examples (0 when the store keeps no test outcomes)."""
        return self._layout.n_test

    @property
    def n_classes(self) -> int | None:
        """Number of classes fixed at creation, or None."""
        return self._layout.n_classes

    @property
    def layout(self) -> Layout:
        """The manifest's sizes, applied to the field table (:class:`~.format.Layout`)."""
        return self._layout

    @property
    def train_labels(self) -> npt.NDArray[np.int64] | None:
        """(n_train,) int64 labels (read-only), or None."""
        return self._train_labels

    @property
    def test_labels(self) -> npt.NDArray[np.int64] | None:
        """(n_test,) int64 labels (read-only), or None."""
        return self._test_labels

    @property
    def metadata(self) -> dict[str, Any]:
        """A copy of the store's metadata dict (from the manifest)."""
        out: dict[str, Any] = json.loads(json.dumps(self._manifest.get("metadata", {})))
        return out

    def __repr__(self) -> str:
        """``RunStore('<path>', n_train=..., n_test=..., runs=...)``."""
        return f"RunStore({str(self._path)!r}, n_train={self.n_train}, n_test={self.n_test}, runs={len(self)})"

    # ------------------------------------------------------------------ listing

    @property
    def _runs(self) -> Path:
        return self._path / RUNS_DIR

    def refresh(self) -> list[str]:
        """Take a new snapshot of the run list (runs other processes added since).

        Returns
        -------
        list of str
            The run ids now seen, sorted.
        """
        try:
            names = os.listdir(self._runs)
        except FileNotFoundError:
            names = []
        self._ids = sorted(n[:-4] for n in names if n.endswith(".npz") and RUN_ID.fullmatch(n[:-4]))
        return list(self._ids)

    def run_ids(self) -> list[str]:
        """Ids of the runs in this object's snapshot, sorted (insertion order for default ids).

        Leftover ``.tmp-*`` files of interrupted writes are not runs and are not listed.
        See :meth:`refresh`.

        Returns
        -------
        list of str
        """
        return list(self._ids)

    def __len__(self) -> int:
        """Number of runs in the snapshot."""
        return len(self._ids)

    def __contains__(self, run_id: object) -> bool:
        """Whether a run with this id is in the snapshot."""
        return isinstance(run_id, str) and run_id in set(self._ids)

    def _ids_or_raise(self) -> list[str]:
        if not self._ids:
            raise StoreError(f"{self._path}: the store holds no runs yet")
        return list(self._ids)

    # ------------------------------------------------------------------ adding runs

    def _recorded_classes(self) -> int | None:
        """The class count of the first stored run (in id order) that had logits."""
        if self._seen_classes is not None:
            return self._seen_classes
        for rid in self.refresh():
            if rid in self._scanned_for_classes:
                continue
            try:
                meta = self._reader.read(rid).meta
            except StoreError:
                continue  # damaged runs are reported by verify(), not here
            nc = meta.get("n_classes")
            if isinstance(nc, int):
                self._seen_classes = nc
                return nc
            self._scanned_for_classes.add(rid)
        return None

    def add_run(
        self,
        mask: Any,
        *,
        train_logits: Any = None,
        test_logits: Any = None,
        train_correct: Any = None,
        test_correct: Any = None,
        train_phi: Any = None,
        test_phi: Any = None,
        subset_ratio: float | None = None,
        run_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        keep_logits: bool = False,
        snapshots: Mapping[str, Any] | None = None,
    ) -> str:
        """Store one training run atomically and return its run id.

        Parameters
        ----------
        mask : array_like
            ``(n_train,)`` bool (or 0/1), True where the run trained on the example.
        train_logits, test_logits : array_like, optional
            ``(n, C)`` logits of the trained model. From them the run stores ``correct =
            argmax == label`` (ties toward the lower class) and ``phi =
            logit_confidence(logits, labels)``; needs the store's labels. The logits
            themselves are kept (float32) only with ``keep_logits=True``.
        train_correct, test_correct : array_like, optional
            ``(n,)`` bool, given instead of logits.
        train_phi, test_phi : array_like, optional
            ``(n,)`` float confidences, given instead of logits (stored as float32).
        subset_ratio : float, optional
            Fraction of the training set the run drew (groups hold-out accuracy).
        run_id : str, optional
            Default ``f"{time.time_ns():020d}-{uuid4().hex[:8]}"`` (sorts in insertion
            order); otherwise it must match ``[A-Za-z0-9][A-Za-z0-9_.-]*``.
        metadata : dict, optional
            JSON-serializable dict kept with the run (:meth:`run_metadata`).
        keep_logits : bool
            Also store the logits.
        snapshots : mapping, optional
            Outcomes recorded during training: ``{"epochs": (S,) increasing ints below
            2**63, "train_correct": (S, n_train) bool, "train_loss", "train_el2n",
            "train_grand": (S, n_train) float, and the same ``test_*`` keys}``; every key
            but ``epochs`` is optional. :func:`memscore.snapshot_outcomes` derives them.

        Returns
        -------
        str
            The run id. The store's snapshot of the run list is refreshed.

        Raises
        ------
        ValueError, TypeError
            Wrong shapes, dtypes, NaN, class counts, epochs outside int64, test outcomes
            in a store with n_test = 0, logits together with correct / phi.
        StoreError
            A run with this id already exists.
        """
        labels = {"train_labels": self._train_labels, "test_labels": self._test_labels}
        run = build_run(
            self._layout,
            labels,
            mask,
            {"train": (train_logits, train_correct, train_phi), "test": (test_logits, test_correct, test_phi)},
            subset_ratio=subset_ratio,
            run_id=run_id,
            metadata=metadata,
            keep_logits=keep_logits,
            snapshots=snapshots,
        )
        if run.n_classes is not None and self.n_classes is None:
            seen = self._recorded_classes()
            if seen is not None and seen != run.n_classes:
                raise ValueError(
                    f"logits: expected {seen} classes (as in the store's earlier runs), got {run.n_classes}"
                )
        if not write_run(self._runs, run):
            raise StoreError(f"{run_rel(run.run_id)}: run id already exists ({run.run_id!r})")
        if run.n_classes is not None and self._seen_classes is None and self.n_classes is None:
            self._seen_classes = run.n_classes
        self.refresh()
        return run.run_id

    # ------------------------------------------------------------------ reading runs

    def _field_name(self, split: str, kind: str) -> str:
        if split not in SPLITS:
            raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
        if kind not in KINDS:
            raise ValueError(f"kind: expected 'correct', 'phi', 'logits' or 'pred', got {kind!r}")
        if split == "test" and self.n_test == 0:
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

    def outcomes(self, split: str = "train", kind: str = "correct") -> np.ndarray:
        """Outcomes of all runs in the snapshot, in run-id order.

        Parameters
        ----------
        split : {"train", "test"}
            Whose examples.
        kind : {"correct", "phi", "pred", "logits"}
            ``"correct"`` ((R, n) bool), ``"phi"`` ((R, n) float64), ``"pred"`` ((R, n)
            int64 predicted class; runs added from logits have it) or ``"logits"``
            ((R, n, C) float32; only runs added with ``keep_logits=True`` have them).

        Returns
        -------
        ndarray

        Raises
        ------
        ValueError
            Bad ``split`` / ``kind``.
        StoreError
            A run lacks that field (the message names its file) or is damaged.
        """
        name = self._field_name(split, kind)
        out = load(self._reader, self._ids, [name])[name]
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

    # ------------------------------------------------------------------ streamed scores

    @staticmethod
    def _check_score_kind(kind: str) -> None:
        if kind not in ("correct", "phi"):
            raise ValueError(f"kind: expected 'correct' or 'phi', got {kind!r}")

    def _outcome_scan(self, kind: str, chunk_runs: int, *, grouped: bool, total: bool) -> GroupedStats:
        """Train-outcome statistics of ``kind``, one read of every run file."""
        self._check_score_kind(kind)
        ids = self._ids_or_raise()
        chunk_runs = check_int(chunk_runs, "chunk_runs", 1)
        name = outcome_name("train", kind)
        stats = GroupedStats(grouped=grouped, total=total)

        def feed(recs: list[RunRecord]) -> None:
            got = stack_records(self._layout, recs, ["mask_bits", name])
            stats.add(_packed(got["mask_bits"]), _outcome(got[name]), ratio_keys(r.meta for r in recs))

        scan(self._reader, ids, ["mask_bits", name], (), chunk_runs, feed)
        return stats

    def memorization(
        self, kind: str = "correct", *, stderr: bool = False, chunk_runs: int = 256
    ) -> F64 | tuple[F64, F64]:
        """Memorization of every training example, streamed over the runs.

        Equals :func:`memscore.memorization` on ``(masks(), outcomes("train", kind))``
        while holding only ``chunk_runs`` runs in memory; each run file is read once.

        Parameters
        ----------
        kind : {"correct", "phi"}
            Bool outcomes or float confidences.
        stderr : bool
            Also return the standard error.
        chunk_runs : int
            Runs loaded at a time.

        Returns
        -------
        ndarray of float64 or (ndarray, ndarray)
            ``(n_train,)``, NaN where undefined; or ``(mem, stderr)``.

        Raises
        ------
        StoreError
            No runs, or a run lacks the outcome or is damaged (named).
        """
        stats = self._outcome_scan(kind, chunk_runs, grouped=False, total=True).total()
        mem = stats.memorization()
        return (mem, stats.memorization_stderr()) if stderr else mem

    def holdout_accuracy(self, kind: str = "correct", chunk_runs: int = 256) -> F64:
        """Hold-out accuracy (C-score), streamed over the runs.

        When the runs carry several distinct subset ratios, the estimate is taken per
        group of runs sharing a ratio and averaged over the groups where it is defined,
        as :func:`memscore.holdout_accuracy` with ``ratios=subset_ratios()``; runs added
        without a ratio form one group of their own.

        Parameters
        ----------
        kind : {"correct", "phi"}
            Outcomes to average.
        chunk_runs : int
            Runs loaded at a time.

        Returns
        -------
        ndarray of float64
            ``(n_train,)``, NaN where no run held the example out.

        Raises
        ------
        StoreError
            As :meth:`memorization`.
        """
        return self._outcome_scan(kind, chunk_runs, grouped=True, total=False).holdout()

    def influence(
        self,
        kind: str = "correct",
        *,
        top_k: int | None = None,
        same_class: bool = False,
        dtype: Any = np.float32,
    ) -> Any:
        """Influence of every training example on every test example.

        The pairwise statistic needs all runs at once: this loads all masks and test
        outcomes (bit-packed for bool outcomes: R·(n_train + n_test)/8 bytes; 8·R·n_test
        more for phi) and calls :func:`memscore.influence`.

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
        """
        self._check_score_kind(kind)
        if self.n_test == 0:
            raise ValueError("influence: this store has no test examples (n_test = 0)")
        labels: dict[str, Any] = {}
        if same_class:
            if self._train_labels is None or self._test_labels is None:
                raise ValueError("same_class=True needs the store's train_labels and test_labels")
            labels = {"train_labels": self._train_labels, "test_labels": self._test_labels}
        name = outcome_name("test", kind)
        got = load(self._reader, self._ids_or_raise(), ["mask_bits", name], unpack=False)
        return _influence(got["mask_bits"], got[name], top_k=top_k, dtype=dtype, **labels)

    def lira(self, *, online: bool = True, fixed_variance: bool = False) -> F64:
        """LiRA membership scores (R, n_train) on the stored train phi.

        Loads all masks (bit-packed) and phi and calls :func:`memscore.lira`; row r scores
        run r (run-id order) with every other run as a shadow.

        Parameters
        ----------
        online, fixed_variance : bool
            As :func:`memscore.lira`.

        Returns
        -------
        ndarray of float64, shape (R, n_train)

        Raises
        ------
        StoreError
            No runs, a run without phi, or a damaged run file.
        """
        got = load(self._reader, self._ids_or_raise(), ["mask_bits", "train_phi"], unpack=False)
        return _lira(got["mask_bits"], got["train_phi"], online=online, fixed_variance=fixed_variance)

    def snapshot_scores(self, *, el2n_epoch: int | None = None, chunk_runs: int = 256) -> pl.DataFrame:
        """Per training example, training-dynamics scores averaged over the in-runs.

        Streamed over the runs, each run file read once. Columns (float64, NaN where no
        in-run has the snapshot field):

        * ``el2n``: ‖softmax(z) − onehot(y)‖₂ (Paul et al. 2021) at snapshot epoch
          ``el2n_epoch`` (default: the earliest snapshot);
        * ``grand``: the per-example gradient norm at the same epoch (when recorded);
        * ``loss``: cross-entropy at the last snapshot;
        * ``forgetting_events``: correct → incorrect transitions between consecutive
          snapshots (Toneva et al. 2019);
        * ``never_learned``: fraction of in-runs misclassifying the example at every
          snapshot;
        * ``learning_speed``: mean correctness over the snapshots (a C-score proxy);
        * ``n_snapshot_runs``: number of in-runs averaged (int64).

        Parameters
        ----------
        el2n_epoch : int, optional
            Epoch for ``el2n`` / ``grand``.
        chunk_runs : int
            Runs loaded at a time.

        Returns
        -------
        polars.DataFrame

        Raises
        ------
        StoreError
            No runs, runs without train snapshots, or disagreeing epochs.
        ValueError
            ``el2n_epoch`` is not a snapshot epoch.
        """
        ids = self._ids_or_raise()
        chunk_runs = check_int(chunk_runs, "chunk_runs", 1)
        snap = SnapshotStats(self.n_train, el2n_epoch)
        missing: list[str] = []

        def feed(recs: list[RunRecord]) -> None:
            missing.extend(r.run_id for r in recs if not SnapshotStats.has(r))
            if not missing:
                m = stack_records(self._layout, recs, ["mask_bits"])["mask_bits"]
                snap.add(_packed(m), recs)

        scan(self._reader, ids, ["mask_bits"], _SNAP_OPTIONAL, chunk_runs, feed)
        if missing:
            raise StoreError(
                f"snapshot_scores: {len(missing)} of {len(ids)} runs have no train snapshots "
                f"(first: {missing[0]!r}); train with snapshot_epochs=... to record them"
            )
        cols = snap.columns()
        return pl.DataFrame(
            [pl.Series(k, cols[k], dtype=pl.Float64) for k in SNAP_COLUMNS] + [pl.Series("n_snapshot_runs", snap.n_in)]
        )

    def scores(self, kind: str = "correct", *, chunk_runs: int = 256) -> pl.DataFrame:
        """A table with one row per training example, from one read of every run file.

        Memory does not grow with the number of runs (``chunk_runs`` runs at a time).

        Parameters
        ----------
        kind : {"correct", "phi"}
            Outcomes for memorization and hold-out accuracy.
        chunk_runs : int
            Runs loaded at a time.

        Returns
        -------
        polars.DataFrame
            Columns: ``index`` (int64), ``label`` (int64, null without labels), ``n_in``,
            ``n_out`` (int64 run counts), ``memorization``, ``memorization_stderr``,
            ``holdout_accuracy`` (float64, from ``kind`` outcomes, grouped by subset
            ratio as in :meth:`holdout_accuracy`), ``phi_mean_in``, ``phi_mean_out``
            (float64 mean train phi; null when some run has no phi), and the
            training-dynamics columns of :meth:`snapshot_scores` (null when some run has
            no snapshots). NaN marks undefined estimates. Save with
            ``store.scores().write_parquet(path)``.

        Raises
        ------
        StoreError
            No runs, a run without ``kind`` outcomes, or a damaged run file (named).
        """
        self._check_score_kind(kind)
        ids = self._ids_or_raise()
        chunk_runs = check_int(chunk_runs, "chunk_runs", 1)
        name = outcome_name("train", kind)
        stats = GroupedStats(grouped=True, total=True)
        phi = stats if kind == "phi" else GroupedStats(grouped=False, total=True)
        snap = SnapshotStats(self.n_train, None)
        state = {"phi": True, "snap": True}

        def feed(recs: list[RunRecord]) -> None:
            got = stack_records(self._layout, recs, ["mask_bits", name])
            m = _packed(got["mask_bits"])
            stats.add(m, _outcome(got[name]), ratio_keys(r.meta for r in recs))
            if phi is not stats and state["phi"]:
                state["phi"] = all("train_phi" in r.arrays for r in recs)
                if state["phi"]:
                    phi.add(m, _outcome(stack_records(self._layout, recs, ["train_phi"])["train_phi"]))
            if state["snap"]:
                state["snap"] = all(SnapshotStats.has(r) for r in recs)
                if state["snap"]:
                    snap.add(m, recs)

        optional = ("train_phi", *_SNAP_OPTIONAL) if kind == "correct" else _SNAP_OPTIONAL
        scan(self._reader, ids, ["mask_bits", name], optional, chunk_runs, feed)
        total = stats.total()
        n = self.n_train

        def col(c: str, values: Any) -> pl.Series:
            if values is None:
                return pl.Series(c, [None] * n, dtype=pl.Float64)
            return pl.Series(c, values, dtype=pl.Float64, nan_to_null=False)

        p = phi.total() if state["phi"] else None
        cols = snap.columns() if state["snap"] else {}
        label = pl.Series("label", self._train_labels if self._train_labels is not None else [None] * n, dtype=pl.Int64)
        return pl.DataFrame(
            [
                pl.Series("index", np.arange(n, dtype=np.int64)),
                label,
                pl.Series("n_in", total.n_in.astype(np.int64)),
                pl.Series("n_out", total.n_out.astype(np.int64)),
                pl.Series("memorization", total.memorization(), dtype=pl.Float64),
                pl.Series("memorization_stderr", total.memorization_stderr(), dtype=pl.Float64),
                pl.Series("holdout_accuracy", stats.holdout(), dtype=pl.Float64),
                col("phi_mean_in", None if p is None else p.mean_in()),
                col("phi_mean_out", None if p is None else p.mean_out()),
                *[col(c, cols.get(c)) for c in SNAP_COLUMNS],
            ]
        )

    def influence_pairs(self, top_k: int = 10, *, same_class: bool = False, kind: str = "correct") -> pl.DataFrame:
        """The ``top_k`` most influential training examples of each test example, as a table.

        Parameters
        ----------
        top_k : int
            Pairs per test example.
        same_class : bool
            Only pairs with equal labels.
        kind : {"correct", "phi"}
            Test outcomes.

        Returns
        -------
        polars.DataFrame
            Columns ``test_index``, ``rank`` (0 = most influential), ``train_index``
            (int64), ``influence`` (float64), ``test_label``, ``train_label`` (int64, null
            without labels). Test examples with fewer than ``top_k`` defined influences get
            fewer rows. Memory as :meth:`influence`. Save with ``.write_parquet(path)``.

        Raises
        ------
        ValueError, StoreError
            As :meth:`influence`.
        """
        idx, val = self.influence(kind, top_k=top_k, same_class=same_class)
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

    # ------------------------------------------------------------------ integrity

    def verify(self) -> list[str]:
        """Check every file in ``runs/``; return one line per problem (empty when healthy).

        Checks the zip CRCs, that every array loads, that the arrays match the fields
        recorded in the run's meta and the field table's dtypes, shapes and values for the
        manifest's sizes, the sha256 checksum, and that runs agree on the class count.
        Files that are not regular files are reported, never opened for a blocking read.
        Leftover ``.tmp-*`` files of interrupted writes are reported (see
        :meth:`clean_tmp`). Lines look like ``"runs/<run_id>.npz: bad CRC in member
        train_phi.npy"``.

        Returns
        -------
        list of str
        """
        return verify_store(self._runs, self._layout)

    def clean_tmp(self, grace_s: float = DEFAULT_TMP_GRACE_S) -> list[str]:
        """Remove ``.tmp-*`` files left by killed writers, older than ``grace_s`` seconds.

        A writer publishes its run by a hard link within moments of creating its
        temporary file, so a temporary file untouched for the grace period (default one
        hour) belongs to a writer that died. ``grace_s=0`` removes them all: only safe
        while no process writes to the store.

        Parameters
        ----------
        grace_s : float
            Minimum age (seconds since last modification) of a file to remove.

        Returns
        -------
        list of str
            The removed files, relative to the store, sorted.
        """
        if isinstance(grace_s, bool) or not isinstance(grace_s, (int, float)) or not grace_s >= 0:
            raise ValueError(f"grace_s: expected a number of seconds >= 0, got {grace_s!r}")
        return clean_tmp(self._path, float(grace_s))

    # ------------------------------------------------------------------ merging

    @classmethod
    def merge(cls, paths: Iterable[PathLike | RunStore], out: PathLike) -> RunStore:
        """Combine stores built separately for the same examples into ``out``.

        ``out`` is created (with the first store's settings and metadata) if it holds no
        store, or added to if it holds a compatible one. Every store must agree on
        n_train, n_test, labels and class count (the manifest's, else the one its runs
        recorded). Every input run file is checked before anything is written, so a
        damaged input leaves no partial output. Each run file is copied atomically; a run
        already in ``out`` with the same id and bytes is skipped, one with different bytes
        is a conflict.

        Parameters
        ----------
        paths : iterable of path or RunStore
            The stores to merge.
        out : str or PathLike
            The destination store's directory.

        Returns
        -------
        RunStore
            The destination, reopened.

        Raises
        ------
        StoreError
            Incompatible stores, a conflicting run id, or a damaged run file.
        ValueError
            No store given.
        """
        sources = [p if isinstance(p, RunStore) else cls.open(p) for p in paths]
        for s in sources:
            s.refresh()
        out_path = Path(out)
        dest = cls.open(out_path) if (out_path / MANIFEST).exists() else None
        _merge.check_inputs(sources, dest)
        if dest is None:
            nc = next((s.n_classes for s in sources if s.n_classes is not None), None)
            first = sources[0]
            dest = cls.create(
                out_path,
                n_train=first.n_train,
                n_test=first.n_test,
                train_labels=first.train_labels,
                test_labels=first.test_labels,
                n_classes=nc,
                metadata=first.metadata,
            )
        _merge.copy_runs(sources, dest)
        return cls.open(out_path)


def _packed(x: Stacked) -> PackedBits:
    assert isinstance(x, PackedBits)
    return x


def _outcome(x: Stacked) -> PackedBits | F64:
    if isinstance(x, PackedBits):
        return x
    return np.asarray(x, dtype=np.float64)
