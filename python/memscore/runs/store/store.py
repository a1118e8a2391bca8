"""A run store: the masks and outcomes of many training runs, on disk, in open formats.

A :class:`RunStore` is a directory that numpy (and polars, for the score tables) reads
without memscore::

    <store>/
      manifest.json          {"format": "memscore-runstore", "version": 1, "n_train", "n_test",
                              "n_classes", "has_train_labels", "has_test_labels",
                              "metadata", "created"}
      train_labels.npy       (n_train,) int64, present when has_train_labels
      test_labels.npy        (n_test,) int64, present when has_test_labels
      runs/<run_id>.npz      one file per training run (``np.savez``, uncompressed):
        mask_bits            np.packbits(mask), uint8; mask is (n_train,) bool, True = trained on
        train_correct_bits   np.packbits(correct) of the run's prediction on each train example
        test_correct_bits    the same on the test examples
        train_phi, test_phi  (n,) float32 logit-scaled confidence of the true label
        train_logits         (n_train, C) float32, only when added with keep_logits=True
        test_logits          (n_test, C) float32, idem
        train_pred, test_pred  (n,) int32 predicted class (argmax of the logits), when
                             the run was added from logits
        snap_epochs          (S,) int64 epochs of the training snapshots, when recorded
        snap_<split>_correct_bits  (S, ceil(n/8)) uint8, np.packbits(correct, axis=1)
        snap_<split>_loss, snap_<split>_el2n, snap_<split>_grand
                             (S, n) float32 per-example cross-entropy, EL2N and gradient
                             norm at each snapshot (each optional)
        meta                 uint8 array holding UTF-8 JSON: run_id, subset_ratio, metadata,
                             n_train, n_test, n_classes (when logits were given), fields,
                             arrays, created, and "sha256", the hex digest of the bytes of
                             every other array concatenated in sorted name order

Every outcome array is optional; ``mask_bits`` and ``meta`` are always there. Unpack a bit
array with ``np.unpackbits(bits, count=n).astype(bool)``.

Integrity: every read checks the zip CRC-32 of the arrays it reads, so a damaged array
raises :class:`~memscore.StoreError` naming the run file instead of returning wrong
numbers; :meth:`RunStore.verify` checks every array of every run, including the sha256.

Writes are atomic. A run is written to ``runs/.tmp-<uuid>.npz``, flushed and fsynced, then
hard-linked to its final name (``os.link`` fails if the name exists, so two writers can
never overwrite each other's run) and the temporary name removed: a crash leaves at most a
``.tmp-*`` file, which listings ignore and :meth:`RunStore.verify` reports. Many processes,
on one machine or several sharing a file system, can add runs to one store concurrently.
Default run ids start with the time in nanoseconds, so **runs are always listed sorted by
run id**, which is insertion order for default ids; every array a store returns is indexed
by runs in that order.

The score methods stream over the runs in chunks, so their memory does not grow with the
number of runs (except :meth:`RunStore.influence` and :meth:`RunStore.lira`, which need all
runs at once). Score tables are polars DataFrames: ``store.scores().write_parquet(path)``.
"""

from __future__ import annotations

import filecmp
import hashlib
import json
import math
import os
import re
import shutil
import time
import uuid
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Union

import numpy as np
import numpy.typing as npt
import polars as pl

from ..._io import TMP_PREFIX, _atomic_replace, _fsync_dir, _write_tmp
from ..._validate import as_labels, as_mask, as_outcomes, to_numpy
from ...errors import StoreError
from ..scores import OutcomeStats, logit_confidence
from ..scores import influence as _influence
from ..scores import lira as _lira

__all__ = ["RunStore"]

FORMAT = "memscore-runstore"
VERSION = 1
RUN_FORMAT = "memscore-run"
MANIFEST = "manifest.json"
RUNS_DIR = "runs"

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_SPLITS = ("train", "test")
_KINDS = ("correct", "phi", "logits", "pred")
# Per-snapshot statistics a run may carry (see add_run(snapshots=...)).
_SNAP_KINDS = ("correct", "loss", "el2n", "grand")
# Errors that reading a damaged or vanished file can raise; they become StoreError.
_READ_ERRORS = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error, UnicodeDecodeError)

PathLike = Union[str, "os.PathLike[str]"]
F64 = npt.NDArray[np.float64]


# ----------------------------------------------------------------------------- file helpers


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _atomic_create(path: Path, write: Any) -> bool:
    """Write ``path`` atomically and exclusively; False (nothing written) if it exists."""
    tmp = _write_tmp(path.parent, path.suffix, write)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError as exc:
        # Publishing by hard link is what keeps concurrent writers from overwriting each
        # other; a file system without links cannot host a store safely.
        raise StoreError(f"cannot publish {path}: the file system refused a hard link ({exc})") from exc
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return True


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n").encode("utf-8")


def _nbytes(n: int) -> int:
    return (n + 7) // 8


def _digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        if name != "meta":
            h.update(np.ascontiguousarray(arrays[name]).tobytes())
    return h.hexdigest()


def _check_json(obj: Any, name: str) -> Any:
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise TypeError(f"{name}: expected a dict (JSON object), got {type(obj).__name__}")
    try:
        return json.loads(json.dumps(obj, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: expected a JSON-serializable dict ({exc})") from None


def _check_int(x: Any, name: str, minimum: int) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)):
        raise TypeError(f"{name}: expected an int, got {type(x).__name__}")
    if x < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {x}")
    return int(x)


def _check_run_id(run_id: Any) -> str:
    if not isinstance(run_id, str):
        raise TypeError(f"run_id: expected a str, got {type(run_id).__name__}")
    if not _RUN_ID.fullmatch(run_id):
        raise ValueError(
            f"run_id: expected letters, digits, '_', '.', '-' starting with a letter or digit "
            f"(pattern [A-Za-z0-9][A-Za-z0-9_.-]*), got {run_id!r}"
        )
    return run_id


def _same_labels(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and bool(np.array_equal(a, b))


# ----------------------------------------------------------------------------- the store


class RunStore:
    """Masks and outcomes of many training runs, stored on disk (see the module docstring).

    Make one with :meth:`create`, reopen it with :meth:`open`, add runs with
    :meth:`add_run` (safe from many processes at once), read them back with
    :meth:`masks` / :meth:`outcomes` / :meth:`iter_chunks`, and compute scores with
    :meth:`memorization`, :meth:`holdout_accuracy`, :meth:`influence`, :meth:`lira`,
    :meth:`scores` and :meth:`influence_pairs`. Runs are always listed sorted by run id.

    >>> import numpy as np, memscore, tempfile, os
    >>> d = os.path.join(tempfile.mkdtemp(), "store")
    >>> store = memscore.RunStore.create(d, n_train=4, train_labels=[0, 1, 0, 1])
    >>> rid = store.add_run([1, 0, 1, 0], train_correct=[1, 1, 1, 0])
    >>> store.masks().shape
    (1, 4)
    """

    def __init__(
        self, path: PathLike, manifest: dict[str, Any], train_labels: np.ndarray | None, test_labels: np.ndarray | None
    ) -> None:
        """Internal: use :meth:`create` or :meth:`open`."""
        self._path = Path(path)
        self._manifest = manifest
        self._n_train: int = manifest["n_train"]
        self._n_test: int = manifest["n_test"]
        self._n_classes: int | None = manifest["n_classes"]
        for lab in (train_labels, test_labels):
            if lab is not None:
                lab.flags.writeable = False
        self._train_labels = train_labels
        self._test_labels = test_labels
        # Class count of logits seen in earlier runs, when the manifest fixes none.
        self._seen_classes: int | None = None
        self._scanned_for_classes: set[str] = set()

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
        """Create an empty store in directory ``path`` (made if missing).

        Args:
            path: directory; it may exist, but must not already hold a store.
            n_train: number of training examples (length of every mask).
            n_test: number of test examples (0: the store keeps no test outcomes).
            train_labels, test_labels: (n,) non-negative integer class labels, needed to
                derive outcomes from logits; stored as int64 ``.npy``.
            n_classes: number of classes; when set, logits must have this many columns
                and labels must be below it. When not set, all runs with logits must
                agree on the class count.
            metadata: JSON-serializable dict stored in the manifest.

        Raises:
            StoreError: ``path`` already holds a store.
            ValueError, TypeError: bad arguments.
        """
        n_train = _check_int(n_train, "n_train", 1)
        n_test = _check_int(n_test, "n_test", 0)
        if n_classes is not None:
            n_classes = _check_int(n_classes, "n_classes", 2)
        meta = _check_json(metadata, "metadata")
        labels: dict[str, np.ndarray | None] = {}
        for name, lab, n in (("train_labels", train_labels, n_train), ("test_labels", test_labels, n_test)):
            if lab is None:
                labels[name] = None
                continue
            if n == 0:
                raise ValueError(f"{name}: given, but the store has n_test = 0")
            a = as_labels(lab, name, n)
            if a.size and a.min() < 0:
                raise ValueError(f"{name}: expected non-negative class labels, got minimum {a.min()}")
            if n_classes is not None and a.size and a.max() >= n_classes:
                raise ValueError(f"{name}: expected labels below n_classes = {n_classes}, got maximum {a.max()}")
            labels[name] = a

        root = Path(path)
        if root.exists() and not root.is_dir():
            raise StoreError(f"{root}: exists and is not a directory")
        if (root / MANIFEST).exists():
            raise StoreError(f"{root}: already holds a run store ({MANIFEST} exists); use RunStore.open")
        runs = root / RUNS_DIR
        if runs.is_dir() and any(p.suffix == ".npz" and not p.name.startswith(".") for p in runs.iterdir()):
            raise StoreError(f"{root}: {RUNS_DIR}/ already holds run files but there is no {MANIFEST}")
        runs.mkdir(parents=True, exist_ok=True)

        for name, lab_arr in labels.items():
            if lab_arr is not None:
                _atomic_replace(root / f"{name}.npy", lambda f, a=lab_arr: np.save(f, a))
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "n_train": n_train,
            "n_test": n_test,
            "n_classes": n_classes,
            "has_train_labels": labels["train_labels"] is not None,
            "has_test_labels": labels["test_labels"] is not None,
            "metadata": meta,
            "created": _now(),
        }
        body = _json_bytes(manifest)
        if not _atomic_create(root / MANIFEST, lambda f: f.write(body)):
            raise StoreError(f"{root}: already holds a run store (created concurrently)")
        return cls(root, manifest, labels["train_labels"], labels["test_labels"])

    @classmethod
    def open(cls, path: PathLike) -> RunStore:
        """Open an existing store.

        Raises:
            StoreError: no manifest, an unparseable one, another format or version, or
                a missing / malformed labels file.
        """
        root = Path(path)
        mpath = root / MANIFEST
        try:
            raw = mpath.read_bytes()
        except FileNotFoundError:
            raise StoreError(f"{root}: not a run store (no {MANIFEST}); create one with RunStore.create") from None
        except OSError as exc:
            raise StoreError(f"{mpath}: cannot read ({exc})") from None
        try:
            manifest = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise StoreError(f"{mpath}: not valid JSON ({exc})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            got = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
            raise StoreError(f"{mpath}: expected format {FORMAT!r}, got {got!r}")
        if manifest.get("version") != VERSION:
            raise StoreError(
                f"{mpath}: store format version {manifest.get('version')!r} is not supported "
                f"(this memscore reads version {VERSION})"
            )
        for key, lo in (("n_train", 1), ("n_test", 0)):
            v = manifest.get(key)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise StoreError(f"{mpath}: expected {key} to be an int >= {lo}, got {v!r}")
        nc = manifest.get("n_classes")
        if nc is not None and (isinstance(nc, bool) or not isinstance(nc, int) or nc < 2):
            raise StoreError(f"{mpath}: expected n_classes to be null or an int >= 2, got {nc!r}")
        manifest.setdefault("metadata", {})
        labels: dict[str, np.ndarray | None] = {}
        for split in _SPLITS:
            n = manifest[f"n_{split}"]
            name = f"{split}_labels"
            if not manifest.get(f"has_{name}"):
                labels[name] = None
                continue
            lpath = root / f"{name}.npy"
            try:
                a = np.load(lpath, allow_pickle=False)
            except _READ_ERRORS as exc:
                raise StoreError(f"{lpath}: cannot load ({exc})") from None
            if a.shape != (n,) or not np.issubdtype(a.dtype, np.integer):
                raise StoreError(f"{lpath}: expected ({n},) integer labels, got {a.shape} {a.dtype}")
            labels[name] = np.ascontiguousarray(a, dtype=np.int64)
        return cls(root, manifest, labels["train_labels"], labels["test_labels"])

    # ------------------------------------------------------------------ properties

    @property
    def path(self) -> Path:
        """The store's directory."""
        return self._path

    @property
    def n_train(self) -> int:
        """Number of training examples."""
        return self._n_train

    @property
    def n_test(self) -> int:
        """Number of test examples (0 when the store keeps no test outcomes)."""
        return self._n_test

    @property
    def n_classes(self) -> int | None:
        """Number of classes fixed at creation, or None."""
        return self._n_classes

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
        return json.loads(json.dumps(self._manifest.get("metadata", {})))

    def __repr__(self) -> str:
        return f"RunStore({str(self._path)!r}, n_train={self._n_train}, n_test={self._n_test}, runs={len(self)})"

    # ------------------------------------------------------------------ listing

    @property
    def _runs(self) -> Path:
        return self._path / RUNS_DIR

    def _run_path(self, run_id: str) -> Path:
        return self._runs / f"{run_id}.npz"

    def _rel(self, run_id: str) -> str:
        return f"{RUNS_DIR}/{run_id}.npz"

    def run_ids(self) -> list[str]:
        """Ids of the stored runs, sorted (insertion order for default ids).

        Leftover ``.tmp-*`` files of interrupted writes are not runs and are not listed.
        """
        try:
            names = os.listdir(self._runs)
        except FileNotFoundError:
            return []
        ids = [n[:-4] for n in names if n.endswith(".npz") and _RUN_ID.fullmatch(n[:-4])]
        return sorted(ids)

    def __len__(self) -> int:
        """Number of stored runs."""
        return len(self.run_ids())

    def __contains__(self, run_id: object) -> bool:
        """Whether a run with this id is stored."""
        return isinstance(run_id, str) and bool(_RUN_ID.fullmatch(run_id)) and self._run_path(run_id).is_file()

    # ------------------------------------------------------------------ adding runs

    def _check_logits(self, x: Any, name: str, n: int, labels: np.ndarray | None) -> np.ndarray:
        z = to_numpy(x, name)
        if z.ndim != 2 or z.shape[0] != n:
            raise ValueError(f"{name}: expected shape ({n}, n_classes), got {z.shape}")
        if z.dtype == np.bool_ or not (np.issubdtype(z.dtype, np.floating) or np.issubdtype(z.dtype, np.integer)):
            raise TypeError(f"{name}: expected a float array of logits, got dtype {z.dtype}")
        c = z.shape[1]
        if c < 2:
            raise ValueError(f"{name}: expected at least 2 classes (columns), got {c}")
        if not np.isfinite(z).all():
            raise ValueError(f"{name}: contains NaN or infinite values")
        if self._n_classes is not None and c != self._n_classes:
            raise ValueError(f"{name}: expected {self._n_classes} classes (the store's n_classes), got {c}")
        if labels is None:
            raise ValueError(
                f"{name}: deriving outcomes from logits needs the store's {name.split('_')[0]}_labels, "
                "and this store has none (pass *_correct / *_phi instead)"
            )
        if labels.size and labels.max() >= c:
            raise ValueError(f"{name}: has {c} classes but the labels go up to {labels.max()}")
        return z

    def _recorded_classes(self) -> int | None:
        """The class count of the first stored run (in id order) that had logits."""
        if self._seen_classes is not None:
            return self._seen_classes
        for rid in self.run_ids():
            if rid in self._scanned_for_classes:
                continue
            try:
                meta = self._read_meta(rid)
            except StoreError:
                continue  # damaged runs are reported by verify(), not here
            nc = meta.get("n_classes")
            if isinstance(nc, int):
                self._seen_classes = nc
                return nc
            self._scanned_for_classes.add(rid)
        return None

    @staticmethod
    def _check_correct(x: Any, name: str, n: int) -> np.ndarray:
        a = to_numpy(x, name)
        if a.dtype != np.bool_ and not np.issubdtype(a.dtype, np.integer):
            raise TypeError(f"{name}: expected a bool array (True = predicted correctly), got dtype {a.dtype}")
        a = as_mask(a, name, ndim=1)
        if a.shape != (n,):
            raise ValueError(f"{name}: expected shape ({n},), got {a.shape}")
        return a

    @staticmethod
    def _check_phi(x: Any, name: str, n: int) -> np.ndarray:
        a = to_numpy(x, name)
        if a.dtype == np.bool_:
            raise TypeError(f"{name}: expected float confidences, got a bool array (pass it as *_correct)")
        a = as_outcomes(a, name, ndim=1)
        if a.shape != (n,):
            raise ValueError(f"{name}: expected shape ({n},), got {a.shape}")
        a32 = a.astype(np.float32)
        if not np.isfinite(a32).all():
            raise ValueError(f"{name}: values overflow float32 (the stored precision)")
        return a32

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

        Args:
            mask: (n_train,) bool (or 0/1), True where the run trained on the example.
            train_logits, test_logits: (n, C) logits of the trained model. From them the
                run stores ``correct = argmax == label`` (ties toward the lower class) and
                ``phi = logit_confidence(logits, labels)``; needs the store's labels.
                The logits themselves are kept (float32) only with ``keep_logits=True``.
            train_correct, test_correct: (n,) bool, given instead of logits.
            train_phi, test_phi: (n,) float confidences, given instead of logits
                (stored as float32).
            subset_ratio: fraction of the training set the run drew (groups hold-out
                accuracy); None if not applicable.
            run_id: default ``f"{time.time_ns():020d}-{uuid4().hex[:8]}"`` (sorts in
                insertion order); otherwise it must match ``[A-Za-z0-9][A-Za-z0-9_.-]*``.
            metadata: JSON-serializable dict kept with the run (:meth:`run_metadata`).
            keep_logits: also store the logits.
            snapshots: outcomes recorded during training (for EL2N, forgetting events and
                learning speed): ``{"epochs": (S,) increasing ints, "train_correct": (S,
                n_train) bool, "train_loss", "train_el2n", "train_grand": (S, n_train)
                float, and the same ``test_*`` keys}``; every key but ``epochs`` is
                optional. :func:`memscore.snapshot_outcomes` derives them from logits.

        Raises:
            ValueError, TypeError: wrong shapes, dtypes, NaN, class counts, test
                outcomes in a store with n_test = 0, logits together with correct / phi.
            StoreError: a run with this id already exists.
        """
        if run_id is None:
            run_id = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        run_id = _check_run_id(run_id)
        meta_user = _check_json(metadata, "metadata")
        ratio: float | None = None
        if subset_ratio is not None:
            if isinstance(subset_ratio, bool) or not isinstance(subset_ratio, (int, float, np.integer, np.floating)):
                raise TypeError(f"subset_ratio: expected a float, got {type(subset_ratio).__name__}")
            ratio = float(subset_ratio)
            if not math.isfinite(ratio) or not 0.0 <= ratio <= 1.0:
                raise ValueError(f"subset_ratio: expected a fraction in [0, 1], got {ratio}")

        m = as_mask(mask, "mask", ndim=1)
        if m.shape != (self._n_train,):
            raise ValueError(f"mask: expected shape ({self._n_train},), got {m.shape}")
        arrays: dict[str, np.ndarray] = {"mask_bits": np.packbits(m)}
        fields: list[str] = []
        classes: set[int] = set()
        given = {
            "train": (train_logits, train_correct, train_phi),
            "test": (test_logits, test_correct, test_phi),
        }
        for split, (logits, correct, phi) in given.items():
            n = self._n_train if split == "train" else self._n_test
            labels = self._train_labels if split == "train" else self._test_labels
            if n == 0 and (logits is not None or correct is not None or phi is not None):
                raise ValueError(f"{split} outcomes given, but the store has n_test = 0 (create it with n_test > 0)")
            if logits is not None:
                for other, val in (("correct", correct), ("phi", phi)):
                    if val is not None:
                        raise ValueError(
                            f"{split}_logits and {split}_{other} given together: {split}_{other} is "
                            f"derived from {split}_logits; pass one or the other"
                        )
                z = self._check_logits(logits, f"{split}_logits", n, labels)
                assert labels is not None
                pred = np.argmax(z, axis=1)
                correct_arr = pred == labels
                arrays[f"{split}_pred"] = pred.astype(np.int32)
                fields.append(f"{split}_pred")
                phi_arr = self._check_phi(logit_confidence(z, labels), f"{split}_phi", n)
                arrays[f"{split}_correct_bits"] = np.packbits(correct_arr)
                arrays[f"{split}_phi"] = phi_arr
                fields += [f"{split}_correct", f"{split}_phi"]
                classes.add(z.shape[1])
                if keep_logits:
                    arrays[f"{split}_logits"] = np.ascontiguousarray(z, dtype=np.float32)
                    fields.append(f"{split}_logits")
                continue
            if correct is not None:
                arrays[f"{split}_correct_bits"] = np.packbits(self._check_correct(correct, f"{split}_correct", n))
                fields.append(f"{split}_correct")
            if phi is not None:
                arrays[f"{split}_phi"] = self._check_phi(phi, f"{split}_phi", n)
                fields.append(f"{split}_phi")
        if keep_logits and not classes:
            raise ValueError("keep_logits=True but no train_logits / test_logits were given")
        if snapshots is not None:
            snap_arrays = self._check_snapshots(snapshots)
            arrays.update(snap_arrays)
            fields += [k[:-5] if k.endswith("_bits") else k for k in snap_arrays]
        n_classes: int | None = None
        if classes:
            if len(classes) > 1:
                raise ValueError(f"train_logits and test_logits have different class counts: {sorted(classes)}")
            n_classes = classes.pop()
            if self._n_classes is None:
                seen = self._recorded_classes()
                if seen is not None and seen != n_classes:
                    raise ValueError(
                        f"logits: expected {seen} classes (as in the store's earlier runs), got {n_classes}"
                    )

        meta = {
            "format": RUN_FORMAT,
            "version": VERSION,
            "run_id": run_id,
            "subset_ratio": ratio,
            "metadata": meta_user,
            "n_train": self._n_train,
            "n_test": self._n_test,
            "n_classes": n_classes,
            "fields": sorted(fields),
            "arrays": sorted(arrays),
            "created": _now(),
            "sha256": _digest(arrays),
        }
        arrays["meta"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode("utf-8"), dtype=np.uint8)
        self._runs.mkdir(parents=True, exist_ok=True)
        if not _atomic_create(self._run_path(run_id), lambda f: np.savez(f, **arrays)):  # type: ignore[arg-type]
            raise StoreError(f"{self._rel(run_id)}: run id already exists ({run_id!r})")
        if n_classes is not None and self._seen_classes is None and self._n_classes is None:
            self._seen_classes = n_classes
        return run_id

    def _check_snapshots(self, snapshots: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Validated snapshot arrays, named as stored (``snap_*``)."""
        if not isinstance(snapshots, Mapping):
            raise TypeError(f"snapshots: expected a dict, got {type(snapshots).__name__}")
        allowed = {"epochs"} | {f"{sp}_{k}" for sp in _SPLITS for k in _SNAP_KINDS}
        unknown = sorted(set(snapshots) - allowed)
        if unknown:
            raise ValueError(
                f"snapshots: unknown keys {unknown}; expected 'epochs' and keys of {sorted(allowed - {'epochs'})}"
            )
        if "epochs" not in snapshots:
            raise ValueError("snapshots: expected an 'epochs' entry, the (S,) epoch of each snapshot")
        ep = to_numpy(snapshots["epochs"], "snapshots['epochs']")
        if (
            ep.ndim != 1
            or ep.size == 0
            or not (np.issubdtype(ep.dtype, np.integer) or np.issubdtype(ep.dtype, np.floating))
        ):
            raise ValueError(
                f"snapshots['epochs']: expected a non-empty 1-D array of epochs, got shape {ep.shape} {ep.dtype}"
            )
        if not np.all(np.isfinite(ep)) or np.any(ep != np.round(ep)) or np.any(np.diff(ep) <= 0) or ep.min() < 0:
            raise ValueError(f"snapshots['epochs']: expected increasing non-negative integers, got {ep.tolist()}")
        s = ep.size
        out: dict[str, np.ndarray] = {"snap_epochs": ep.astype(np.int64)}
        for key in sorted(set(snapshots) - {"epochs"}):
            split, kind = key.split("_", 1)
            n = self._n_train if split == "train" else self._n_test
            if n == 0:
                raise ValueError(f"snapshots['{key}']: given, but the store has n_test = 0")
            name = f"snapshots['{key}']"
            if kind == "correct":
                a = as_mask(snapshots[key], name, ndim=2)
                if a.shape != (s, n):
                    raise ValueError(f"{name}: expected shape ({s}, {n}), got {a.shape}")
                out[f"snap_{key}_bits"] = np.packbits(a, axis=1)
            else:
                f = as_outcomes(snapshots[key], name, ndim=2)
                if f.shape != (s, n):
                    raise ValueError(f"{name}: expected shape ({s}, {n}), got {f.shape}")
                out[f"snap_{key}"] = np.ascontiguousarray(f, dtype=np.float32)
        if len(out) == 1:
            raise ValueError("snapshots: expected at least one outcome array beside 'epochs'")
        return out

    # ------------------------------------------------------------------ reading runs

    def _read(self, run_id: str, names: Sequence[str]) -> dict[str, np.ndarray]:
        """Named arrays of one run; StoreError naming the file if damaged or missing."""
        rel = self._rel(run_id)
        out: dict[str, np.ndarray] = {}
        try:
            with np.load(self._run_path(run_id), allow_pickle=False) as z:
                for name in names:
                    if name not in z.files:
                        hint = " (add runs with keep_logits=True to keep logits)" if name.endswith("_logits") else ""
                        raise StoreError(f"{rel}: this run has no {name.replace('_bits', '')}{hint}")
                    out[name] = z[name]
        except StoreError:
            raise
        except FileNotFoundError:
            raise StoreError(f"{rel}: run file is missing") from None
        except _READ_ERRORS as exc:
            raise StoreError(f"{rel}: damaged run file ({type(exc).__name__}: {exc}); see RunStore.verify()") from None
        return out

    def _read_meta(self, run_id: str) -> dict[str, Any]:
        raw = self._read(run_id, ["meta"])["meta"]
        try:
            meta = json.loads(raw.tobytes().decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise StoreError(f"{self._rel(run_id)}: damaged run file (meta is not JSON: {exc})") from None
        if not isinstance(meta, dict):
            raise StoreError(f"{self._rel(run_id)}: damaged run file (meta is not a JSON object)")
        return meta

    def _unpack(self, run_id: str, bits: np.ndarray, n: int, name: str) -> np.ndarray:
        if bits.dtype != np.uint8 or bits.shape != (_nbytes(n),):
            raise StoreError(
                f"{self._rel(run_id)}: {name} has shape {bits.shape} {bits.dtype}, expected ({_nbytes(n)},) uint8"
            )
        return np.unpackbits(bits, count=n).astype(np.bool_)

    def _field_name(self, split: str, kind: str) -> str:
        if split not in _SPLITS:
            raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
        if kind not in _KINDS:
            raise ValueError(f"kind: expected 'correct', 'phi', 'logits' or 'pred', got {kind!r}")
        if split == "test" and self._n_test == 0:
            raise ValueError("split='test': this store has no test examples (n_test = 0)")
        return f"{split}_correct_bits" if kind == "correct" else f"{split}_{kind}"

    def _n_of(self, name: str) -> int:
        """Number of examples an array named ``name`` covers."""
        split = name.removeprefix("snap_").split("_", 1)[0]
        return self._n_train if split in ("mask", "train") else self._n_test

    def _decode(self, run_id: str, name: str, a: np.ndarray) -> np.ndarray:
        n = self._n_of(name)
        if name.startswith("snap_"):
            return self._decode_snapshot(run_id, name, a, n)
        if name.endswith("_bits"):
            return self._unpack(run_id, a, n, name)
        if name.endswith("_pred"):
            if a.shape != (n,) or a.dtype.kind not in "iu":
                raise StoreError(f"{self._rel(run_id)}: {name} has shape {a.shape} {a.dtype}, expected ({n},) int32")
            return a.astype(np.int64)
        if name.endswith("_phi"):
            if a.shape != (n,) or a.dtype.kind != "f":
                raise StoreError(f"{self._rel(run_id)}: {name} has shape {a.shape} {a.dtype}, expected ({n},) float32")
            return a.astype(np.float64)
        if name.endswith("_logits"):
            if a.ndim != 2 or a.shape[0] != n or a.dtype.kind != "f":
                raise StoreError(
                    f"{self._rel(run_id)}: {name} has shape {a.shape} {a.dtype}, expected ({n}, C) float32"
                )
            return a.astype(np.float32, copy=False)
        raise AssertionError(name)  # pragma: no cover

    def _decode_snapshot(self, run_id: str, name: str, a: np.ndarray, n: int) -> np.ndarray:
        rel = self._rel(run_id)
        if name == "snap_epochs":
            if a.ndim != 1 or a.dtype.kind not in "iu":
                raise StoreError(f"{rel}: snap_epochs has shape {a.shape} {a.dtype}, expected (S,) int64")
            return a.astype(np.int64)
        if name.endswith("_bits"):
            if a.dtype != np.uint8 or a.ndim != 2 or a.shape[1] != _nbytes(n):
                raise StoreError(f"{rel}: {name} has shape {a.shape} {a.dtype}, expected (S, {_nbytes(n)}) uint8")
            return np.unpackbits(a, axis=1, count=n).astype(np.bool_)
        if a.ndim != 2 or a.shape[1] != n or a.dtype.kind != "f":
            raise StoreError(f"{rel}: {name} has shape {a.shape} {a.dtype}, expected (S, {n}) float32")
        return a.astype(np.float64)

    def _load_chunk(self, ids: Sequence[str], names: Sequence[str]) -> dict[str, np.ndarray]:
        """Stacked, decoded arrays (R, ...) of the given runs."""
        rows: dict[str, list[np.ndarray]] = {n: [] for n in names}
        for rid in ids:
            got = self._read(rid, names)
            for name in names:
                rows[name].append(self._decode(rid, name, got[name]))
        out: dict[str, np.ndarray] = {}
        for name in names:
            if (name.endswith("_logits") or name.startswith("snap_")) and rows[name]:
                shapes = {r.shape for r in rows[name]}
                if len(shapes) > 1:
                    what = "the number of snapshots" if name.startswith("snap_") else "the logits' class count"
                    raise StoreError(f"runs disagree on {what} ({name}: shapes {sorted(shapes)})")
            if rows[name]:
                out[name] = np.stack(rows[name])
            else:
                n = self._n_of(name)
                if name.startswith("snap_"):
                    out[name] = np.zeros((0, 0) if name == "snap_epochs" else (0, 0, n))
                elif name.endswith("_pred"):
                    out[name] = np.zeros((0, n), dtype=np.int64)
                elif name.endswith("_bits"):
                    out[name] = np.zeros((0, n), dtype=np.bool_)
                elif name.endswith("_phi"):
                    out[name] = np.zeros((0, n), dtype=np.float64)
                else:
                    out[name] = np.zeros((0, n, self._n_classes or 0), dtype=np.float32)
        return out

    def masks(self) -> npt.NDArray[np.bool_]:
        """(R, n_train) bool masks of all runs, in run-id order."""
        return self._load_chunk(self.run_ids(), ["mask_bits"])["mask_bits"]

    def outcomes(self, split: str = "train", kind: str = "correct") -> np.ndarray:
        """Outcomes of all runs, in run-id order.

        Args:
            split: ``"train"`` or ``"test"``.
            kind: ``"correct"`` ((R, n) bool), ``"phi"`` ((R, n) float64), ``"pred"``
                ((R, n) int64 predicted class, the argmax of the logits; runs added from
                logits have it) or ``"logits"`` ((R, n, C) float32; only runs added with
                ``keep_logits=True`` have them).

        Raises:
            StoreError: a run lacks that field (the message names its file) or is damaged.
        """
        name = self._field_name(split, kind)
        return self._load_chunk(self.run_ids(), [name])[name]

    def iter_chunks(
        self, chunk_runs: int = 256, *, split: str = "train", kind: str = "correct"
    ) -> Iterator[tuple[npt.NDArray[np.bool_], np.ndarray]]:
        """Stream ``(masks_chunk, outcomes_chunk)`` over at most ``chunk_runs`` runs at a time.

        Chunks follow run-id order; their concatenation equals ``(masks(), outcomes(split,
        kind))``. The list of runs is taken when iteration starts; each chunk is
        read when it is reached.
        """
        chunk_runs = _check_int(chunk_runs, "chunk_runs", 1)
        name = self._field_name(split, kind)  # bad arguments raise here, not at first next()

        def chunks() -> Iterator[tuple[npt.NDArray[np.bool_], np.ndarray]]:
            ids = self.run_ids()
            for start in range(0, len(ids), chunk_runs):
                got = self._load_chunk(ids[start : start + chunk_runs], ["mask_bits", name])
                yield got["mask_bits"], got[name]

        return chunks()

    def snapshots(self, split: str = "train", kind: str = "correct") -> tuple[npt.NDArray[np.int64], np.ndarray]:
        """Outcomes recorded at training snapshots, in run-id order.

        Args:
            split: ``"train"`` or ``"test"``.
            kind: ``"correct"`` (bool), ``"loss"``, ``"el2n"`` or ``"grand"`` (float64).

        Returns:
            ``(epochs (S,), values (R, S, n))``.

        Raises:
            StoreError: a run has no such snapshots, or runs disagree on the epochs.
        """
        if split not in _SPLITS:
            raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
        if kind not in _SNAP_KINDS:
            raise ValueError(f"kind: expected one of {list(_SNAP_KINDS)}, got {kind!r}")
        name = f"snap_{split}_{kind}" + ("_bits" if kind == "correct" else "")
        got = self._load_chunk(self._ids_or_raise(), ["snap_epochs", name])
        epochs = got["snap_epochs"]
        if epochs.shape[0] and np.any(epochs != epochs[0]):
            raise StoreError("runs disagree on their snapshot epochs")
        return epochs[0], got[name]

    def snapshot_scores(self, *, el2n_epoch: int | None = None, chunk_runs: int = 256) -> pl.DataFrame:
        """Per training example, training-dynamics scores averaged over the runs that
        trained on it, streamed over the runs.

        Columns (float64, NaN where no in-run has the snapshot field):

        * ``el2n``: ‖softmax(z) − onehot(y)‖₂ (Paul et al. 2021) at snapshot epoch
          ``el2n_epoch`` (default: the earliest snapshot, as EL2N is an early-training score);
        * ``grand``: the per-example gradient norm at the same epoch (when recorded);
        * ``loss``: cross-entropy at the last snapshot;
        * ``forgetting_events``: number of correct → incorrect transitions between
          consecutive snapshots (Toneva et al. 2019);
        * ``never_learned``: fraction of in-runs in which the example was misclassified at
          every snapshot (Toneva et al. count these as unforgettable-never-learned, the
          hardest group);
        * ``learning_speed``: mean correctness over the snapshots (a C-score proxy,
          Jiang et al. 2021);
        * ``n_snapshot_runs``: number of in-runs averaged (int64).
        """
        ids = self._ids_or_raise()
        chunk_runs = _check_int(chunk_runs, "chunk_runs", 1)
        metas = [self._read_meta(rid) for rid in ids]
        have = set.intersection(*[set(m.get("fields") or []) for m in metas])
        if "snap_epochs" not in have or "snap_train_correct" not in have:
            missing = [rid for rid, m in zip(ids, metas) if "snap_train_correct" not in (m.get("fields") or [])]
            raise StoreError(
                f"snapshot_scores: {len(missing)} of {len(ids)} runs have no train snapshots "
                f"(first: {missing[0]!r}); train with snapshot_epochs=... to record them"
            )
        floats = [k for k in ("loss", "el2n", "grand") if f"snap_train_{k}" in have]
        names = ["mask_bits", "snap_epochs", "snap_train_correct_bits", *[f"snap_train_{k}" for k in floats]]
        n = self._n_train
        sums = {
            k: np.zeros(n) for k in ("el2n", "grand", "loss", "forgetting_events", "never_learned", "learning_speed")
        }
        n_in = np.zeros(n, dtype=np.int64)
        epochs0: np.ndarray | None = None
        s_el2n = 0
        for start in range(0, len(ids), chunk_runs):
            got = self._load_chunk(ids[start : start + chunk_runs], names)
            if epochs0 is None:
                epochs0 = got["snap_epochs"][0]
                if el2n_epoch is not None:
                    hit = np.flatnonzero(epochs0 == el2n_epoch)
                    if hit.size == 0:
                        raise ValueError(
                            f"el2n_epoch: expected one of the snapshot epochs {epochs0.tolist()}, got {el2n_epoch}"
                        )
                    s_el2n = int(hit[0])
            if np.any(got["snap_epochs"] != epochs0):
                raise StoreError("runs disagree on their snapshot epochs")
            m = got["mask_bits"]
            c = got["snap_train_correct_bits"]  # (r, S, n)
            n_in += m.sum(0)
            sums["forgetting_events"] += ((c[:, :-1] & ~c[:, 1:]).sum(1) * m).sum(0)
            sums["never_learned"] += ((~c.any(1)) & m).sum(0)
            sums["learning_speed"] += (c.mean(1) * m).sum(0)
            for k in floats:
                v = got[f"snap_train_{k}"]
                at = v[:, -1] if k == "loss" else v[:, s_el2n]
                sums[k] += np.where(m, at, 0.0).sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            cols = {k: np.where(n_in > 0, v / n_in, np.nan) for k, v in sums.items()}
        for k in ("el2n", "grand", "loss"):
            if k not in floats:
                cols[k] = np.full(n, np.nan)
        return pl.DataFrame(
            [
                pl.Series(k, cols[k], dtype=pl.Float64)
                for k in ("el2n", "grand", "loss", "forgetting_events", "never_learned", "learning_speed")
            ]
            + [pl.Series("n_snapshot_runs", n_in)]
        )

    def run_info(self, run_id: str) -> dict[str, Any]:
        """The full JSON record kept with a run (ids, fields, subset ratio, metadata,
        created time, checksum)."""
        _check_run_id(run_id)
        if not self._run_path(run_id).is_file():
            raise KeyError(f"no run {run_id!r} in store {self._path}")
        return self._read_meta(run_id)

    def run_metadata(self, run_id: str) -> dict[str, Any]:
        """The ``metadata`` dict given to :meth:`add_run` for this run ({} if none)."""
        meta = self.run_info(run_id).get("metadata")
        return meta if isinstance(meta, dict) else {}

    def _ratios(self, ids: Sequence[str]) -> F64:
        out = np.full(len(ids), np.nan)
        for k, rid in enumerate(ids):
            r = self._read_meta(rid).get("subset_ratio")
            if r is not None:
                out[k] = float(r)
        return out

    def subset_ratios(self) -> F64:
        """(R,) float64 subset ratio of each run in run-id order, NaN where not given."""
        return self._ratios(self.run_ids())

    # ------------------------------------------------------------------ streamed scores

    def _ids_or_raise(self) -> list[str]:
        ids = self.run_ids()
        if not ids:
            raise StoreError(f"{self._path}: the store holds no runs yet")
        return ids

    def _stream(
        self,
        ids: Sequence[str],
        kinds: Sequence[str],
        groups: np.ndarray | None,
        chunk_runs: int,
    ) -> dict[str, dict[int, OutcomeStats]]:
        """Per kind, per group of runs: train-outcome statistics, summed over chunks.

        Bool outcomes take the bit-packed path (shift 0 in every chunk); float outcomes
        use one shift per group, the group's first run, so chunk statistics add up.
        """
        chunk_runs = _check_int(chunk_runs, "chunk_runs", 1)
        names = [self._field_name("train", k) for k in kinds]
        g_all = np.zeros(len(ids), dtype=np.int64) if groups is None else groups
        acc: dict[str, dict[int, OutcomeStats]] = {k: {} for k in kinds}
        shifts: dict[str, dict[int, np.ndarray]] = {k: {} for k in kinds}
        for start in range(0, len(ids), chunk_runs):
            sl = slice(start, start + chunk_runs)
            got = self._load_chunk(ids[sl], ["mask_bits", *names])
            m = got["mask_bits"]
            g = g_all[sl]
            for kind, name in zip(kinds, names):
                o = got[name]
                for grp in np.unique(g):
                    sel = g == grp
                    key = int(grp)
                    if o.dtype == np.bool_:
                        st = OutcomeStats.from_runs(m[sel], o[sel])
                    else:
                        sh = shifts[kind].setdefault(key, o[sel][0].copy())
                        st = OutcomeStats.from_runs(m[sel], o[sel], shift=sh)
                    prev = acc[kind].get(key)
                    acc[kind][key] = st if prev is None else prev + st
        return acc

    @staticmethod
    def _group_ids(ratios: F64) -> np.ndarray:
        """Integer group of each run by subset ratio; runs without a ratio form one group."""
        key = np.where(np.isnan(ratios), -1.0, ratios)
        return np.unique(key, return_inverse=True)[1].reshape(-1).astype(np.int64)

    @staticmethod
    def _mean_over_groups(stats: dict[int, OutcomeStats]) -> F64:
        if len(stats) == 1:
            return next(iter(stats.values())).mean_out()
        per_group = np.stack([stats[k].mean_out() for k in sorted(stats)])
        defined = ~np.isnan(per_group)
        with np.errstate(invalid="ignore"):
            return np.where(defined.any(0), np.nansum(per_group, 0) / np.maximum(defined.sum(0), 1), np.nan)

    @staticmethod
    def _check_score_kind(kind: str) -> None:
        if kind not in ("correct", "phi"):
            raise ValueError(f"kind: expected 'correct' or 'phi', got {kind!r}")

    def memorization(
        self, kind: str = "correct", *, stderr: bool = False, chunk_runs: int = 256
    ) -> F64 | tuple[F64, F64]:
        """Memorization of every training example, streamed over the runs.

        Equals :func:`memscore.memorization` on ``(masks(), outcomes("train", kind))``
        while holding only ``chunk_runs`` runs in memory.

        Args:
            kind: ``"correct"`` (bool outcomes) or ``"phi"`` (float confidences).
            stderr: also return the standard error.
            chunk_runs: runs loaded at a time.

        Returns:
            (n_train,) float64, NaN where undefined; or ``(mem, stderr)``.
        """
        self._check_score_kind(kind)
        stats = self._stream(self._ids_or_raise(), [kind], None, chunk_runs)[kind][0]
        mem = stats.memorization()
        return (mem, stats.memorization_stderr()) if stderr else mem

    def holdout_accuracy(self, kind: str = "correct", chunk_runs: int = 256) -> F64:
        """Hold-out accuracy (C-score), streamed over the runs.

        When the runs carry several distinct subset ratios, the estimate is taken per
        group of runs sharing a ratio and averaged over the groups where it is defined,
        as :func:`memscore.holdout_accuracy` with ``ratios=subset_ratios()``; runs added
        without a ratio form one group of their own.

        Returns:
            (n_train,) float64, NaN where no run held the example out.
        """
        self._check_score_kind(kind)
        ids = self._ids_or_raise()
        groups = self._group_ids(self._ratios(ids))
        return self._mean_over_groups(self._stream(ids, [kind], groups, chunk_runs)[kind])

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
        outcomes, R·(n_train + n_test) bytes for bool outcomes (8·R·n_test more for phi),
        and calls :func:`memscore.influence`.

        Args:
            kind: ``"correct"`` or ``"phi"`` test outcomes.
            top_k: return ``(indices (T, k), values (T, k))`` instead of the (T, N) matrix.
            same_class: only pairs with equal labels (needs train and test labels).
            dtype: float32 or float64 for the full matrix.
        """
        self._check_score_kind(kind)
        if self._n_test == 0:
            raise ValueError("influence: this store has no test examples (n_test = 0)")
        labels: dict[str, Any] = {}
        if same_class:
            if self._train_labels is None or self._test_labels is None:
                raise ValueError("same_class=True needs the store's train_labels and test_labels")
            labels = {"train_labels": self._train_labels, "test_labels": self._test_labels}
        ids = self._ids_or_raise()
        name = self._field_name("test", kind)
        got = self._load_chunk(ids, ["mask_bits", name])
        return _influence(got["mask_bits"], got[name], top_k=top_k, dtype=dtype, **labels)

    def lira(self, *, online: bool = True, fixed_variance: bool = False) -> F64:
        """LiRA membership scores (R, n_train) on the stored train phi.

        Loads all masks and phi (R·n_train·9 bytes) and calls :func:`memscore.lira`;
        row r scores run r (run-id order) with every other run as a shadow.
        """
        ids = self._ids_or_raise()
        got = self._load_chunk(ids, ["mask_bits", "train_phi"])
        return _lira(got["mask_bits"], got["train_phi"], online=online, fixed_variance=fixed_variance)

    def scores(self, kind: str = "correct", *, chunk_runs: int = 256) -> pl.DataFrame:
        """A table with one row per training example, streamed over the runs.

        Columns: ``index`` (int64), ``label`` (int64, null without labels), ``n_in``,
        ``n_out`` (int64 run counts), ``memorization``, ``memorization_stderr``,
        ``holdout_accuracy`` (float64, from ``kind`` outcomes, hold-out grouped by subset
        ratio as in :meth:`holdout_accuracy`), ``phi_mean_in``, ``phi_mean_out`` (float64
        mean train phi; null when some run has no phi), and the training-dynamics columns
        of :meth:`snapshot_scores` (``el2n``, ``grand``, ``loss``, ``forgetting_events``,
        ``never_learned``, ``learning_speed``; null when some run has no snapshots).
        NaN marks undefined estimates.
        Save with ``store.scores().write_parquet(path)``.
        """
        self._check_score_kind(kind)
        ids = self._ids_or_raise()
        metas = [self._read_meta(rid) for rid in ids]
        ratios = np.array([np.nan if m.get("subset_ratio") is None else float(m["subset_ratio"]) for m in metas])
        groups = self._group_ids(ratios)
        have_phi = all("train_phi" in (m.get("fields") or []) for m in metas)
        multi = len(np.unique(groups)) > 1
        # One pass when possible: bool stats of all groups add up (shift 0); else two.
        if multi and kind == "correct":
            acc = self._stream(ids, [kind], groups, chunk_runs)[kind]
            total = acc[min(acc)]
            for k in sorted(acc)[1:]:
                total = total + acc[k]
            holdout = self._mean_over_groups(acc)
        else:
            total = self._stream(ids, [kind], None, chunk_runs)[kind][0]
            holdout = (
                self._mean_over_groups(self._stream(ids, [kind], groups, chunk_runs)[kind])
                if multi
                else total.mean_out()
            )
        n = self._n_train
        if have_phi:
            ps = self._stream(ids, ["phi"], None, chunk_runs)["phi"][0]
            phi_in: pl.Series = pl.Series("phi_mean_in", ps.mean_in(), dtype=pl.Float64, nan_to_null=False)
            phi_out: pl.Series = pl.Series("phi_mean_out", ps.mean_out(), dtype=pl.Float64, nan_to_null=False)
        else:
            phi_in = pl.Series("phi_mean_in", [None] * n, dtype=pl.Float64)
            phi_out = pl.Series("phi_mean_out", [None] * n, dtype=pl.Float64)
        label = (
            pl.Series("label", self._train_labels, dtype=pl.Int64)
            if self._train_labels is not None
            else pl.Series("label", [None] * n, dtype=pl.Int64)
        )
        snap_cols: list[pl.Series]
        if all("snap_train_correct" in (m.get("fields") or []) for m in metas):
            snap = self.snapshot_scores(chunk_runs=chunk_runs)
            snap_cols = [
                snap[c] for c in ("el2n", "grand", "loss", "forgetting_events", "never_learned", "learning_speed")
            ]
        else:
            snap_cols = [
                pl.Series(c, [None] * n, dtype=pl.Float64)
                for c in ("el2n", "grand", "loss", "forgetting_events", "never_learned", "learning_speed")
            ]
        return pl.DataFrame(
            [
                pl.Series("index", np.arange(n, dtype=np.int64)),
                label,
                pl.Series("n_in", total.n_in.astype(np.int64)),
                pl.Series("n_out", total.n_out.astype(np.int64)),
                pl.Series("memorization", total.memorization(), dtype=pl.Float64),
                pl.Series("memorization_stderr", total.memorization_stderr(), dtype=pl.Float64),
                pl.Series("holdout_accuracy", holdout, dtype=pl.Float64),
                phi_in,
                phi_out,
                *snap_cols,
            ]
        )

    def influence_pairs(self, top_k: int = 10, *, same_class: bool = False, kind: str = "correct") -> pl.DataFrame:
        """The ``top_k`` most influential training examples of each test example, as a table.

        Columns: ``test_index``, ``rank`` (0 = most influential), ``train_index`` (int64),
        ``influence`` (float64), ``test_label``, ``train_label`` (int64, null without
        labels). Test examples with fewer than ``top_k`` defined influences get fewer
        rows. Memory as :meth:`influence`. Save with ``.write_parquet(path)``.
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

    def _verify_run(self, path: Path, rel: str, stem: str) -> tuple[list[str], int | None]:
        """Problems of one run file, and its logits' class count."""
        try:
            with zipfile.ZipFile(path) as zf:
                bad = zf.testzip()
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error, ValueError) as exc:
            return [f"{rel}: not a readable zip/npz file ({type(exc).__name__}: {exc})"], None
        if bad is not None:
            return [f"{rel}: bad CRC in member {bad}"], None
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {name: z[name] for name in z.files}
        except _READ_ERRORS as exc:
            return [f"{rel}: cannot load ({type(exc).__name__}: {exc})"], None
        if "meta" not in arrays:
            return [f"{rel}: missing array meta"], None
        try:
            meta = json.loads(arrays["meta"].tobytes().decode("utf-8"))
            if not isinstance(meta, dict):
                raise ValueError("not a JSON object")
        except (UnicodeDecodeError, ValueError) as exc:
            return [f"{rel}: meta is not valid JSON ({exc})"], None
        problems: list[str] = []
        if meta.get("run_id") != stem:
            problems.append(f"{rel}: meta run_id {meta.get('run_id')!r} does not match the file name")
        for key in ("n_train", "n_test"):
            if meta.get(key) != getattr(self, f"_{key}"):
                problems.append(
                    f"{rel}: {key} {meta.get(key)!r} does not match the manifest ({getattr(self, f'_{key}')})"
                )
        others = {k: v for k, v in arrays.items() if k != "meta"}
        expect = {"mask_bits"} | {f"{f}_bits" if f.endswith("_correct") else f for f in meta.get("fields") or []}
        if set(others) != expect:
            problems.append(
                f"{rel}: arrays {sorted(others)} do not match the fields in meta (expected {sorted(expect)})"
            )
        n_classes = None
        n_snap = {a.shape[0] for k, a in others.items() if k.startswith("snap_") and a.ndim >= 1}
        if len(n_snap) > 1:
            problems.append(f"{rel}: snapshot arrays disagree on the number of snapshots ({sorted(n_snap)})")
        for name, a in others.items():
            n = self._n_of(name)
            if name == "snap_epochs":
                ok = a.dtype == np.int64 and a.ndim == 1 and a.size > 0 and bool(np.all(np.diff(a) > 0))
                want = "(S,) increasing int64"
            elif name.startswith("snap_") and name.endswith("_bits"):
                ok = a.dtype == np.uint8 and a.ndim == 2 and a.shape[1] == _nbytes(n)
                want = f"(S, {_nbytes(n)}) uint8"
            elif name.startswith("snap_"):
                ok = a.dtype == np.float32 and a.ndim == 2 and a.shape[1] == n and bool(np.isfinite(a).all())
                want = f"(S, {n}) finite float32"
            elif name.endswith("_pred"):
                ok = a.dtype == np.int32 and a.shape == (n,) and bool((a >= 0).all())
                want = f"({n},) non-negative int32"
            elif name.endswith("_bits"):
                ok = a.dtype == np.uint8 and a.shape == (_nbytes(n),)
                want = f"({_nbytes(n)},) uint8"
            elif name.endswith("_phi"):
                ok = a.dtype == np.float32 and a.shape == (n,) and bool(np.isfinite(a).all())
                want = f"({n},) finite float32"
            elif name.endswith("_logits"):
                ok = (
                    a.dtype == np.float32
                    and a.ndim == 2
                    and a.shape[0] == n
                    and (self._n_classes is None or a.shape[1] == self._n_classes)
                )
                want = f"({n}, {self._n_classes or 'C'}) float32"
                if a.ndim == 2:
                    n_classes = int(a.shape[1])
            else:
                problems.append(f"{rel}: unexpected array {name}")
                continue
            if not ok:
                problems.append(f"{rel}: {name} has shape {a.shape} {a.dtype}, expected {want}")
        if meta.get("sha256") != _digest(others):
            problems.append(f"{rel}: sha256 checksum mismatch (contents changed since written)")
        if n_classes is None and isinstance(meta.get("n_classes"), int):
            n_classes = meta["n_classes"]
        return problems, n_classes

    def verify(self) -> list[str]:
        """Check every run file; return one line per problem (empty when healthy).

        Checks the zip CRCs, that every array loads, that the arrays match the fields
        recorded in the run's meta and the manifest's shapes, the sha256 checksum, and
        that runs agree on the class count. Leftover ``.tmp-*`` files of interrupted
        writes are reported (they are safe to delete). Lines look like
        ``"runs/<run_id>.npz: bad CRC in member train_phi.npy"``.
        """
        problems: list[str] = []
        try:
            names = sorted(os.listdir(self._runs))
        except FileNotFoundError:
            return [f"{RUNS_DIR}/: directory is missing"]
        classes: dict[int, str] = {}
        for name in names:
            rel = f"{RUNS_DIR}/{name}"
            path = self._runs / name
            if name.startswith(TMP_PREFIX):
                problems.append(f"{rel}: leftover temporary file from an interrupted write (not a run; safe to delete)")
                continue
            if not name.endswith(".npz") or not _RUN_ID.fullmatch(name[:-4]):
                problems.append(f"{rel}: unexpected file (not a run)")
                continue
            found, nc = self._verify_run(path, rel, name[:-4])
            problems += found
            if nc is not None:
                classes.setdefault(nc, rel)
        if len(classes) > 1:
            problems.append(
                "runs disagree on the logits' class count: "
                + ", ".join(f"{c} (e.g. {rel})" for c, rel in sorted(classes.items()))
            )
        return problems

    # ------------------------------------------------------------------ merging

    @classmethod
    def merge(cls, paths: Iterable[PathLike | RunStore], out: PathLike) -> RunStore:
        """Combine stores built separately for the same examples into ``out``.

        ``out`` is created (with the first store's settings and metadata) if it holds no
        store, or added to if it holds a compatible one. Every store must agree on
        n_train, n_test, labels and (where set) n_classes. Each run file is copied
        atomically; a run already in ``out`` with the same id and the same bytes is
        skipped, one with different bytes is a conflict.

        Raises:
            StoreError: incompatible stores, a conflicting run id, or a damaged run file.
        """
        sources = [p if isinstance(p, RunStore) else cls.open(p) for p in paths]
        out_path = Path(out)
        dest = cls.open(out_path) if (out_path / MANIFEST).exists() else None
        ref = dest if dest is not None else (sources[0] if sources else None)
        if ref is None:
            raise ValueError("merge: expected at least one store to merge")
        for s in sources:
            cls._check_compatible(ref, s)
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
        dest._runs.mkdir(parents=True, exist_ok=True)
        for s in sources:
            if s._path.resolve() == dest._path.resolve():
                continue
            for rid in s.run_ids():
                src = s._run_path(rid)
                try:
                    with zipfile.ZipFile(src) as zf:
                        bad = zf.testzip()
                except (zipfile.BadZipFile, OSError, EOFError, zlib.error, ValueError) as exc:
                    raise StoreError(f"{src}: damaged run file, not merged ({exc})") from None
                if bad is not None:
                    raise StoreError(f"{src}: damaged run file (bad CRC in {bad}), not merged")
                target = dest._run_path(rid)
                if not target.exists():

                    def copy(f: Any, src: Path = src) -> None:
                        with open(src, "rb") as g:
                            shutil.copyfileobj(g, f)

                    if _atomic_create(target, copy):
                        continue
                if not filecmp.cmp(src, target, shallow=False):
                    raise StoreError(f"merge: run id {rid!r} exists in {dest._path} with different contents than {src}")
        return cls.open(out_path)

    @staticmethod
    def _check_compatible(a: RunStore, b: RunStore) -> None:
        why = None
        if (a.n_train, a.n_test) != (b.n_train, b.n_test):
            why = f"n_train/n_test {a.n_train}/{a.n_test} vs {b.n_train}/{b.n_test}"
        elif not _same_labels(a.train_labels, b.train_labels):
            why = "train_labels differ"
        elif not _same_labels(a.test_labels, b.test_labels):
            why = "test_labels differ"
        elif a.n_classes is not None and b.n_classes is not None and a.n_classes != b.n_classes:
            why = f"n_classes {a.n_classes} vs {b.n_classes}"
        if why:
            raise StoreError(f"cannot merge {b.path} into stores like {a.path}: {why}")
