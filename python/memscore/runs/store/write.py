"""Writing a run store: creating its directory atomically and building run files.

:func:`create_tree` builds a new store in a temporary directory beside the target and
publishes it with one rename, so a store is either absent or complete and, of two
concurrent creates, exactly one wins. :func:`build_run` validates what
:meth:`~memscore.RunStore.add_run` was given and returns the arrays of the run file,
named and shaped by the field table of :mod:`.format`.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from ..._io import TMP_PREFIX, _fsync_dir, _write_tmp
from ..._validate import as_labels, as_mask, as_outcomes, check_int, to_numpy
from ...errors import StoreError
from ..outcomes import logit_confidence
from .format import (
    FIELDS,
    INT64_MAX,
    MANIFEST,
    RUN_FORMAT,
    RUNS_DIR,
    SNAP_KINDS,
    SPLITS,
    VERSION,
    Layout,
    atomic_create,
    check_json,
    check_run_id,
    digest,
    json_bytes,
    new_manifest,
    now,
    outcome_name,
    snapshot_name,
)

__all__ = ["NewRun", "build_run", "check_labels", "create_tree"]

Labels = dict[str, npt.NDArray[np.int64] | None]


def check_labels(train_labels: Any, test_labels: Any, n_train: int, n_test: int, n_classes: int | None) -> Labels:
    """Validated labels for :meth:`~memscore.RunStore.create`.

    Returns
    -------
    dict
        ``{"train_labels", "test_labels"}``: int64 arrays or None.

    Raises
    ------
    ValueError, TypeError
        Wrong length, negative labels, labels at or above ``n_classes``, or test labels
        for a store with ``n_test = 0``.
    """
    labels: Labels = {}
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
        labels[name] = a.astype(np.int64, copy=False)
    return labels


def _saver(a: np.ndarray) -> Callable[[IO[bytes]], None]:
    def write(f: IO[bytes]) -> None:
        np.save(f, a)

    return write


def _exists_error(root: Path) -> StoreError:
    return StoreError(f"{root}: already holds a run store ({MANIFEST} exists); use RunStore.open")


def _write_contents(d: Path, manifest: dict[str, Any], labels: Labels) -> None:
    (d / RUNS_DIR).mkdir(exist_ok=True)
    for name, lab in labels.items():
        if lab is not None:
            tmp = _write_tmp(d, ".npy", _saver(lab))
            os.replace(tmp, d / f"{name}.npy")
    body = json_bytes(manifest)
    tmp = _write_tmp(d, ".json", lambda f: f.write(body))
    os.replace(tmp, d / MANIFEST)
    _fsync_dir(d)


def create_tree(root: Path, manifest: dict[str, Any], labels: Labels) -> None:
    """Publish a new store at ``root`` atomically.

    When ``root`` is absent or an empty directory, the store is built in
    ``<parent>/.tmp-<uuid>-<name>/`` and renamed onto ``root`` in one step (a rename onto
    an empty directory replaces it; onto a non-empty one it fails, which is how the loser
    of two concurrent creates finds out). When ``root`` is a non-empty directory without
    a store, the labels are published by exclusive hard links and the manifest last, the
    same way, so a store is never visible before it is complete.

    Parameters
    ----------
    root : Path
        The store's directory.
    manifest : dict
        The manifest to write.
    labels : dict
        As returned by :func:`check_labels`.

    Raises
    ------
    StoreError
        ``root`` already holds a store (or run files), or is not a directory.
    """
    if root.exists() and not root.is_dir():
        raise StoreError(f"{root}: exists and is not a directory")
    if (root / MANIFEST).exists():
        raise _exists_error(root)
    runs = root / RUNS_DIR
    if runs.is_dir() and any(p.suffix == ".npz" and not p.name.startswith(".") for p in runs.iterdir()):
        raise StoreError(f"{root}: {RUNS_DIR}/ already holds run files but there is no {MANIFEST}")
    if not root.exists() or not any(root.iterdir()):
        root.parent.mkdir(parents=True, exist_ok=True)
        tmp = root.parent / f"{TMP_PREFIX}{uuid.uuid4().hex}-{root.name}"
        tmp.mkdir()
        try:
            _write_contents(tmp, manifest, labels)
            try:
                os.rename(tmp, root)
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                    if (root / MANIFEST).exists():
                        raise StoreError(f"{root}: already holds a run store (created concurrently)") from None
                    raise StoreError(f"{root}: could not create the store there ({exc})") from None
                raise StoreError(f"{root}: could not create the store there ({exc})") from None
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        _fsync_dir(root.parent)
        return
    # A non-empty directory without a store: exclusive links, manifest last.
    runs.mkdir(exist_ok=True)
    for name, lab in labels.items():
        if lab is not None and not atomic_create(root / f"{name}.npy", _saver(lab)):
            if (root / MANIFEST).exists():
                raise StoreError(f"{root}: already holds a run store (created concurrently)")
            raise StoreError(f"{root}: {name}.npy exists but there is no {MANIFEST} (remove it, or create elsewhere)")
    body = json_bytes(manifest)
    if not atomic_create(root / MANIFEST, lambda f: f.write(body)):
        raise StoreError(f"{root}: already holds a run store (created concurrently)")


def make_manifest(
    n_train: Any, n_test: Any, n_classes: Any, metadata: Any, labels_given: tuple[Any, Any]
) -> tuple[dict[str, Any], Labels]:
    """Validated arguments of :meth:`~memscore.RunStore.create` as a manifest and labels.

    Raises
    ------
    ValueError, TypeError
        Bad arguments.
    """
    n_train = check_int(n_train, "n_train", 1)
    n_test = check_int(n_test, "n_test", 0)
    if n_classes is not None:
        n_classes = check_int(n_classes, "n_classes", 2)
    meta = check_json(metadata, "metadata")
    labels = check_labels(labels_given[0], labels_given[1], n_train, n_test, n_classes)
    manifest = new_manifest(
        n_train, n_test, n_classes, labels["train_labels"] is not None, labels["test_labels"] is not None, meta
    )
    return manifest, labels


# ----------------------------------------------------------------------------- run files


@dataclass
class NewRun:
    """A validated run, ready to write.

    Parameters
    ----------
    run_id : str
        Its id.
    arrays : dict of str to ndarray
        Every array of the file, ``meta`` included.
    n_classes : int or None
        The logits' class count, when given.
    """

    run_id: str
    arrays: dict[str, np.ndarray]
    n_classes: int | None


def _check_logits(x: Any, name: str, n: int, labels: npt.NDArray[np.int64] | None, n_classes: int | None) -> np.ndarray:
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
    if n_classes is not None and c != n_classes:
        raise ValueError(f"{name}: expected {n_classes} classes (the store's n_classes), got {c}")
    if labels is None:
        raise ValueError(
            f"{name}: deriving outcomes from logits needs the store's {name.split('_')[0]}_labels, "
            "and this store has none (pass *_correct / *_phi instead)"
        )
    if labels.size and labels.max() >= c:
        raise ValueError(f"{name}: has {c} classes but the labels go up to {labels.max()}")
    return z


def _check_correct(x: Any, name: str, n: int) -> npt.NDArray[np.bool_]:
    a = to_numpy(x, name)
    if a.dtype != np.bool_ and not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{name}: expected a bool array (True = predicted correctly), got dtype {a.dtype}")
    m = as_mask(a, name, ndim=1)
    if m.shape != (n,):
        raise ValueError(f"{name}: expected shape ({n},), got {m.shape}")
    return m


def _check_phi(x: Any, name: str, n: int) -> npt.NDArray[np.float32]:
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


def _check_phi_views(x: Any, name: str, n: int) -> npt.NDArray[np.float32]:
    """(n, K) finite float confidences on K >= 1 query views, as float32."""
    a = to_numpy(x, name)
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
        raise TypeError(f"{name}: expected float confidences, got dtype {a.dtype}")
    if a.ndim != 2 or a.shape[0] != n or a.shape[1] < 1:
        raise ValueError(f"{name}: expected shape ({n}, K) with K >= 1 views, got {a.shape}")
    a32 = a.astype(np.float32)
    if not np.isfinite(a32).all():
        raise ValueError(f"{name}: NaN, infinite or float32-overflowing values")
    return a32


MAX_MULTIPLICITY = int(np.iinfo(np.uint16).max)


def _check_multiplicity(x: Any, mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.uint16]:
    """(n_train,) non-negative integer draw counts, positive exactly where ``mask`` is True."""
    a = to_numpy(x, "multiplicity")
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"multiplicity: expected integer draw counts per training example, got dtype {a.dtype}")
    if a.shape != mask.shape:
        raise ValueError(f"multiplicity: expected shape {mask.shape}, got {a.shape}")
    if a.size and (int(a.min()) < 0 or int(a.max()) > MAX_MULTIPLICITY):
        raise ValueError(
            f"multiplicity: expected counts in 0..{MAX_MULTIPLICITY} (stored as uint16), "
            f"got range {int(a.min())}..{int(a.max())}"
        )
    bad = np.flatnonzero((a > 0) != mask)
    if bad.size:
        raise ValueError(
            f"multiplicity: must be > 0 exactly where mask is True; examples {bad[:5].tolist()} disagree "
            f"(e.g. mask {bool(mask[bad[0]])}, multiplicity {int(a[bad[0]])})"
        )
    return a.astype(np.uint16)


def _check_epochs(x: Any) -> npt.NDArray[np.int64]:
    ep = to_numpy(x, "snapshots['epochs']")
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
    # Compare in the array's own type: a float or uint64 epoch past int64 would wrap.
    too_big = ep.max() >= float(2**63) if ep.dtype.kind == "f" else int(ep.max()) > INT64_MAX
    if too_big:
        raise ValueError(f"snapshots['epochs']: expected epochs below 2**63 (stored as int64), got max {ep.max()}")
    return ep.astype(np.int64)


def _check_snapshots(snapshots: Mapping[str, Any], layout: Layout) -> dict[str, np.ndarray]:
    if not isinstance(snapshots, Mapping):
        raise TypeError(f"snapshots: expected a dict, got {type(snapshots).__name__}")
    allowed = {"epochs"} | {f"{sp}_{k}" for sp in SPLITS for k in SNAP_KINDS}
    unknown = sorted(set(snapshots) - allowed)
    if unknown:
        raise ValueError(
            f"snapshots: unknown keys {unknown}; expected 'epochs' and keys of {sorted(allowed - {'epochs'})}"
        )
    if "epochs" not in snapshots:
        raise ValueError("snapshots: expected an 'epochs' entry, the (S,) epoch of each snapshot")
    ep = _check_epochs(snapshots["epochs"])
    s = ep.size
    out: dict[str, np.ndarray] = {"snap_epochs": ep}
    for key in sorted(set(snapshots) - {"epochs"}):
        split, kind = key.split("_", 1)
        n = layout.n_train if split == "train" else layout.n_test
        if n == 0:
            raise ValueError(f"snapshots['{key}']: given, but the store has n_test = 0")
        name = f"snapshots['{key}']"
        if kind == "correct":
            a = as_mask(snapshots[key], name, ndim=2)
            if a.shape != (s, n):
                raise ValueError(f"{name}: expected shape ({s}, {n}), got {a.shape}")
            out[snapshot_name(split, kind)] = a
        else:
            f = as_outcomes(snapshots[key], name, ndim=2)
            if f.shape != (s, n):
                raise ValueError(f"{name}: expected shape ({s}, {n}), got {f.shape}")
            out[snapshot_name(split, kind)] = f
    if len(out) == 1:
        raise ValueError("snapshots: expected at least one outcome array beside 'epochs'")
    return out


def _encode(layout: Layout, values: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every array of a run file, encoded and checked by the field table.

    Raises
    ------
    ValueError
        A value the stored dtype cannot hold (e.g. a float past float32, which would be
        stored as inf): what :meth:`~memscore.RunStore.verify` would report later.
    """
    out: dict[str, np.ndarray] = {}
    for name, v in values.items():
        f = FIELDS[name]
        a = layout.encode(f, v)
        why = layout.problem(f, a, strict=True)
        if why is not None:
            raise ValueError(f"{f.field}: {why}")
        out[name] = a
    return out


def _check_ratio(subset_ratio: Any) -> float | None:
    if subset_ratio is None:
        return None
    if isinstance(subset_ratio, bool) or not isinstance(subset_ratio, (int, float, np.integer, np.floating)):
        raise TypeError(f"subset_ratio: expected a float, got {type(subset_ratio).__name__}")
    ratio = float(subset_ratio)
    if not math.isfinite(ratio) or not 0.0 <= ratio <= 1.0:
        raise ValueError(f"subset_ratio: expected a fraction in [0, 1], got {ratio}")
    return ratio


def build_run(
    layout: Layout,
    labels: Mapping[str, npt.NDArray[np.int64] | None],
    mask: Any,
    given: Mapping[str, tuple[Any, Any, Any]],
    *,
    subset_ratio: Any,
    run_id: str | None,
    metadata: Any,
    keep_logits: bool,
    snapshots: Mapping[str, Any] | None,
    phi_views: Mapping[str, Any] | None = None,
    multiplicity: Any = None,
) -> NewRun:
    """Validate the arguments of :meth:`~memscore.RunStore.add_run` and build the file's arrays.

    Parameters
    ----------
    layout : Layout
        The store's sizes.
    labels : mapping
        ``{"train_labels", "test_labels"}`` of the store.
    mask : array_like
        ``(n_train,)`` bool membership.
    given : mapping
        ``{"train": (logits, correct, phi), "test": (...)}`` as passed.
    subset_ratio, run_id, metadata, keep_logits, snapshots
        As in :meth:`~memscore.RunStore.add_run`.
    phi_views : mapping, optional
        ``{"train": (n, K) or None, "test": ...}`` confidences on K query views.
    multiplicity : array_like, optional
        ``(n_train,)`` bootstrap draw counts (see :meth:`~memscore.RunStore.add_run`).

    Returns
    -------
    NewRun

    Raises
    ------
    ValueError, TypeError
        Wrong shapes, dtypes, NaN, class counts, epochs past int64, test outcomes in a
        store with n_test = 0, logits together with correct / phi.
    """
    if run_id is None:
        run_id = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
    run_id = check_run_id(run_id)
    meta_user = check_json(metadata, "metadata")
    ratio = _check_ratio(subset_ratio)
    m = as_mask(mask, "mask", ndim=1)
    if m.shape != (layout.n_train,):
        raise ValueError(f"mask: expected shape ({layout.n_train},), got {m.shape}")
    values: dict[str, np.ndarray] = {"mask_bits": m}  # by stored name, before encoding
    if multiplicity is not None:
        values["multiplicity"] = _check_multiplicity(multiplicity, m)
    classes: set[int] = set()
    for split, (logits, correct, phi) in given.items():
        n = layout.n_train if split == "train" else layout.n_test
        lab = labels[f"{split}_labels"]
        if n == 0 and (logits is not None or correct is not None or phi is not None):
            raise ValueError(f"{split} outcomes given, but the store has n_test = 0 (create it with n_test > 0)")
        if logits is not None:
            for other, val in (("correct", correct), ("phi", phi)):
                if val is not None:
                    raise ValueError(
                        f"{split}_logits and {split}_{other} given together: {split}_{other} is "
                        f"derived from {split}_logits; pass one or the other"
                    )
            z = _check_logits(logits, f"{split}_logits", n, lab, layout.n_classes)
            assert lab is not None
            pred = np.argmax(z, axis=1)
            values[outcome_name(split, "pred")] = pred
            values[outcome_name(split, "correct")] = pred == lab
            values[outcome_name(split, "phi")] = _check_phi(logit_confidence(z, lab), f"{split}_phi", n)
            classes.add(z.shape[1])
            if keep_logits:
                values[outcome_name(split, "logits")] = z
            continue
        if correct is not None:
            values[outcome_name(split, "correct")] = _check_correct(correct, f"{split}_correct", n)
        if phi is not None:
            values[outcome_name(split, "phi")] = _check_phi(phi, f"{split}_phi", n)
    if keep_logits and not classes:
        raise ValueError("keep_logits=True but no train_logits / test_logits were given")
    if snapshots is not None:
        values.update(_check_snapshots(snapshots, layout))
    for split, views in (phi_views or {}).items():
        if views is not None:
            n = layout.n_train if split == "train" else layout.n_test
            values[f"{split}_phi_views"] = _check_phi_views(views, f"{split}_phi_views", n)
    arrays = _encode(layout, values)
    n_classes: int | None = None
    if classes:
        if len(classes) > 1:
            raise ValueError(f"train_logits and test_logits have different class counts: {sorted(classes)}")
        n_classes = classes.pop()
    meta = {
        "format": RUN_FORMAT,
        "version": VERSION,
        "run_id": run_id,
        "subset_ratio": ratio,
        "metadata": meta_user,
        "n_train": layout.n_train,
        "n_test": layout.n_test,
        "n_classes": n_classes,
        "fields": sorted(FIELDS[k].field for k in arrays if k != "mask_bits"),
        "arrays": sorted(arrays),
        "created": now(),
        "sha256": digest(arrays),
    }
    arrays["meta"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode("utf-8"), dtype=np.uint8)
    return NewRun(run_id, arrays, n_classes)


def write_run(runs_dir: Path, run: NewRun) -> bool:
    """Write a run file atomically and exclusively; False when the id is taken."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    return atomic_create(runs_dir / f"{run.run_id}.npz", lambda f: np.savez(f, **run.arrays))  # type: ignore[arg-type]
