"""The :class:`RunStore` class: one store on disk, delegating to the modules beside it.

This module holds creating, opening, listing, adding runs, integrity and merging; the
reading methods come from :class:`~.reading.ReadMethods` and the scores from one mixin
per concept: :mod:`.memorization` (memorization, hold-out, the scores table),
:mod:`.influence`, :mod:`.membership` (LiRA, RMIA), :mod:`.valuation` (run utility,
Banzhaf, Data-OOB), :mod:`.snapshots` (training dynamics), :mod:`.attribution` and :mod:`.reliability` (are there enough runs?). Every
scan runs on an executor through :mod:`.tasks`, accumulating with :mod:`.accumulate`. The format is described in :mod:`memscore.runs.store`;
the field table in :mod:`.format`, reading run files in :mod:`.npz` and :mod:`.scan`,
writing in :mod:`.write`, integrity in :mod:`.verify` and merging in :mod:`.merge`.
"""

from __future__ import annotations

import bisect
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Union

import numpy as np
import numpy.typing as npt

from ...errors import StoreError
from . import merge as _merge
from .attribution import AttributionMethods
from .format import (
    MANIFEST,
    RUN_ID,
    RUNS_DIR,
    Layout,
    read_manifest,
    run_rel,
)
from .influence import InfluenceMethods
from .membership import MembershipMethods
from .memorization import MemorizationMethods
from .reliability import ReliabilityMethods
from .scan import RunReader
from .snapshots import SnapshotMethods
from .valuation import ValuationMethods
from .verify import DEFAULT_TMP_GRACE_S, clean_tmp, verify_store
from .write import build_run, create_tree, make_manifest, write_run

__all__ = ["RunStore"]

PathLike = Union[str, "os.PathLike[str]"]
F64 = npt.NDArray[np.float64]


class RunStore(
    MemorizationMethods,
    InfluenceMethods,
    MembershipMethods,
    ValuationMethods,
    SnapshotMethods,
    AttributionMethods,
    ReliabilityMethods,
):
    """Masks and outcomes of many training runs, stored on disk (see :mod:`memscore.runs.store`).

    Make one with :meth:`create`, reopen it with :meth:`open`, add runs with
    :meth:`add_run` (safe from many processes at once), read them back with
    :meth:`masks` / :meth:`outcomes` / :meth:`iter_chunks`, and compute scores with
    :meth:`memorization`, :meth:`holdout_accuracy`, :meth:`influence`, :meth:`lira`,
    :meth:`scores` and :meth:`influence_pairs`; fit datamodels and score attributions with
    :meth:`datamodels`, :meth:`split_runs` and :meth:`lds`. Runs are always listed sorted by run id.
    Every scan of the runs takes ``executor=`` (local, threads or Ray:
    :func:`memscore.executors.as_executor`) and gives the same numbers under each.

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
        train_phi_views: Any = None,
        test_phi_views: Any = None,
        multiplicity: Any = None,
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
        train_phi_views, test_phi_views : array_like, optional
            ``(n, K)`` float confidences of the final model on K augmented views of every
            example (LiRA's augmented queries; read back with ``outcomes(split, "phi_views")``
            and pass to :func:`memscore.lira`).
        multiplicity : array_like, optional
            ``(n_train,)`` integer draw counts of a bootstrap run (0..65535, positive
            exactly where ``mask`` is True): how often the run drew each example. Needed by
            :meth:`data_oob`; :func:`memscore.train.train_runs` stores them for bootstrap plans.

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
            phi_views={"train": train_phi_views, "test": test_phi_views},
            multiplicity=multiplicity,
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
        # this object's snapshot gains its own run; a re-listing of runs/ here made adding
        # n runs O(n^2) (40,000 runs: 19 min); other writers' runs come with refresh()
        bisect.insort(self._ids, run.run_id)
        return run.run_id

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
