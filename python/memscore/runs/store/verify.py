"""Integrity checks of a run store, and cleaning up after killed writers.

:func:`verify_run` checks one run file against the field table of :mod:`.format` (zip
CRCs, every array's name, dtype, shape and values, the fields recorded in its meta, the
manifest's sizes and the sha256); :func:`verify_store` does so for every file in
``runs/``; :func:`clean_tmp` removes the ``.tmp-*`` files interrupted writes leave behind.
Nothing here raises on a damaged file: damage is a listed problem.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..._io import TMP_PREFIX, remove_tmp_files
from ...errors import StoreError
from .format import FIELDS, RUN_ID, RUNS_DIR, Layout, digest
from .npz import open_regular_fd

__all__ = ["DEFAULT_TMP_GRACE_S", "clean_tmp", "verify_run", "verify_store"]

DEFAULT_TMP_GRACE_S = 3600.0
"""Age (seconds since last modification) past which :func:`clean_tmp` removes a ``.tmp-*`` file."""


def _load_all(path: Path, rel: str) -> tuple[dict[str, np.ndarray] | None, str | None]:
    """Every array of a run file, or a problem line."""
    try:
        f = os.fdopen(open_regular_fd(path, rel), "rb")
    except StoreError as exc:
        return None, str(exc)
    with f:
        try:
            with zipfile.ZipFile(f) as zf:
                bad = zf.testzip()
                if bad is not None:
                    return None, f"{rel}: bad CRC in member {bad}"
                arrays = {}
                for member in zf.namelist():
                    if not member.endswith(".npy"):
                        return None, f"{rel}: unexpected member {member} (not an .npy array)"
                    with zf.open(member) as g:
                        arrays[member[:-4]] = np.lib.format.read_array(g, allow_pickle=False)
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - zipfile raises many types on damage
            return None, f"{rel}: not a readable zip/npz file ({type(exc).__name__}: {exc})"
    return arrays, None


def verify_run(path: Path, rel: str, stem: str, layout: Layout) -> tuple[list[str], int | None]:
    """Problems of one run file, and its logits' class count.

    Parameters
    ----------
    path : Path
        The file.
    rel : str
        How problem lines name it (``runs/<id>.npz``).
    stem : str
        The run id its name implies.
    layout : Layout
        The manifest's sizes.

    Returns
    -------
    (list of str, int or None)
        One line per problem (empty when healthy), and the class count of its logits
        (or of its meta) when known.
    """
    arrays, why = _load_all(path, rel)
    if arrays is None:
        return [why or f"{rel}: unreadable"], None
    if "meta" not in arrays:
        return [f"{rel}: missing array meta"], None
    try:
        meta: Any = json.loads(arrays["meta"].tobytes().decode("utf-8"))
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        return [f"{rel}: meta is not valid JSON ({exc})"], None
    problems: list[str] = []
    if meta.get("run_id") != stem:
        problems.append(f"{rel}: meta run_id {meta.get('run_id')!r} does not match the file name")
    for key, want in (("n_train", layout.n_train), ("n_test", layout.n_test)):
        if meta.get(key) != want:
            problems.append(f"{rel}: {key} {meta.get(key)!r} does not match the manifest ({want})")
    others = {k: v for k, v in arrays.items() if k != "meta"}
    raw_fields = meta.get("fields")
    fields: list[Any] = raw_fields if isinstance(raw_fields, list) else []
    expect = {"mask_bits"} | {f"{f}_bits" if f"{f}_bits" in FIELDS else str(f) for f in fields}
    if set(others) != expect:
        problems.append(f"{rel}: arrays {sorted(others)} do not match the fields in meta (expected {sorted(expect)})")
    n_snap = {a.shape[0] for k, a in others.items() if k in FIELDS and FIELDS[k].snapshot and a.ndim >= 1}
    if len(n_snap) > 1:
        problems.append(f"{rel}: snapshot arrays disagree on the number of snapshots ({sorted(n_snap)})")
    n_classes = None
    for name, a in others.items():
        f = FIELDS.get(name)
        if f is None:
            problems.append(f"{rel}: unexpected array {name}")
            continue
        why = layout.problem(f, a, strict=True)
        if why is not None:
            problems.append(f"{rel}: {why}")
        if f.shape == "nC" and a.ndim == 2:
            n_classes = int(a.shape[1])
    problems += _multiplicity_problems(rel, others, layout)
    if meta.get("sha256") != digest(others):
        problems.append(f"{rel}: sha256 checksum mismatch (contents changed since written)")
    nc = meta.get("n_classes")
    if layout.n_classes is not None and isinstance(nc, int) and nc != layout.n_classes:
        problems.append(f"{rel}: n_classes {nc} does not match the manifest ({layout.n_classes})")
    if n_classes is None and isinstance(nc, int) and not isinstance(nc, bool):
        n_classes = nc
    return problems, n_classes


def _multiplicity_problems(rel: str, arrays: dict[str, np.ndarray], layout: Layout) -> list[str]:
    """Bootstrap draw counts must be positive exactly where the mask is set (``add_run``
    refuses other runs; a file written by other code may still hold them)."""
    m, bits = arrays.get("multiplicity"), arrays.get("mask_bits")
    f, fb = FIELDS["multiplicity"], FIELDS["mask_bits"]
    if m is None or bits is None or layout.problem(f, m) or layout.problem(fb, bits):
        return []  # absent, or already reported as malformed
    mask = layout.decode(fb, bits)
    bad = np.flatnonzero((m > 0) != mask)
    if not bad.size:
        return []
    return [f"{rel}: multiplicity disagrees with the mask at {bad.size} examples (e.g. {int(bad[0])}: "
            f"mask {bool(mask[bad[0]])}, multiplicity {int(m[bad[0]])})"]  # fmt: skip


def verify_store(runs_dir: Path, layout: Layout) -> list[str]:
    """Check every file in ``runs/``; one line per problem (see :meth:`~memscore.RunStore.verify`).

    Parameters
    ----------
    runs_dir : Path
        The store's ``runs/`` directory.
    layout : Layout
        The manifest's sizes.

    Returns
    -------
    list of str
        Problem lines, ``"runs/<name>: ..."``; empty when healthy.
    """
    try:
        names = sorted(os.listdir(runs_dir))
    except FileNotFoundError:
        return [f"{RUNS_DIR}/: directory is missing"]
    problems: list[str] = []
    classes: dict[int, str] = {}
    for name in names:
        rel = f"{RUNS_DIR}/{name}"
        if name.startswith(TMP_PREFIX):
            problems.append(f"{rel}: leftover temporary file from an interrupted write (not a run; safe to delete)")
            continue
        if not name.endswith(".npz") or not RUN_ID.fullmatch(name[:-4]):
            problems.append(f"{rel}: unexpected file (not a run)")
            continue
        found, nc = verify_run(runs_dir / name, rel, name[:-4], layout)
        problems += found
        if nc is not None:
            classes.setdefault(nc, rel)
    if len(classes) > 1:
        problems.append(
            "runs disagree on the logits' class count: "
            + ", ".join(f"{c} (e.g. {rel})" for c, rel in sorted(classes.items()))
        )
    return problems


def clean_tmp(root: Path, grace_s: float = DEFAULT_TMP_GRACE_S) -> list[str]:
    """Remove the ``.tmp-*`` files that killed writers left in a store.

    A writer names its file ``.tmp-<uuid>...`` until it is complete, so a live writer's
    file is young: only files not modified for ``grace_s`` seconds are removed.

    Parameters
    ----------
    root : Path
        The store's directory (its top level and ``runs/`` are cleaned).
    grace_s : float
        Minimum age in seconds (default one hour); 0 removes every temporary file, which
        is only safe when no process is writing to the store.

    Returns
    -------
    list of str
        The removed files, relative to the store (``"runs/.tmp-....npz"``), sorted.
    """
    removed = [p.name for p in remove_tmp_files(root, grace_s)]
    removed += [f"{RUNS_DIR}/{p.name}" for p in remove_tmp_files(root / RUNS_DIR, grace_s)]
    return sorted(removed)
