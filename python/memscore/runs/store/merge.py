"""Merging run stores built separately for the same examples.

:func:`check_inputs` refuses incompatible stores (sizes, labels, class counts, including
the class counts runs recorded when a manifest fixes none) and checks every input run
file before anything is written, so a damaged input leaves no partial output.
:func:`copy_runs` then publishes each run atomically in the destination.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np
import numpy.typing as npt

from ...errors import StoreError
from .format import Layout, atomic_create, read_regular, run_rel
from .verify import verify_run

__all__ = ["MergeStore", "check_inputs", "copy_runs", "publish_run_bytes"]


class MergeStore(Protocol):
    """What merging reads of a store (a :class:`~memscore.RunStore`; a protocol, so that
    this module does not import the class that calls it)."""

    @property
    def path(self) -> Path: ...
    @property
    def n_train(self) -> int: ...
    @property
    def n_test(self) -> int: ...
    @property
    def n_classes(self) -> int | None: ...
    @property
    def layout(self) -> Layout: ...
    @property
    def train_labels(self) -> npt.NDArray[np.int64] | None: ...
    @property
    def test_labels(self) -> npt.NDArray[np.int64] | None: ...
    def run_ids(self) -> list[str]: ...
    def run_info(self, run_id: str) -> dict[str, Any]: ...


def _same_labels(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and bool(np.array_equal(a, b))


def _check_compatible(a: MergeStore, b: MergeStore) -> None:
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


def _checked_classes(store: MergeStore, *, full: bool) -> int | None:
    """The store's class count (manifest, else what its runs recorded), checking its runs.

    With ``full`` every run file is verified (CRCs, shapes, sha256); otherwise only the
    class count is gathered from the runs' meta.

    Raises
    ------
    StoreError
        A damaged run (with ``full``), or runs that disagree on the class count.
    """
    seen: dict[int, str] = {}
    if store.n_classes is not None:
        seen[store.n_classes] = "the manifest"
    for rid in store.run_ids():
        rel = run_rel(rid)
        if full:
            problems, nc = verify_run(store.path / rel, rel, rid, store.layout)
            if problems:
                more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
                raise StoreError(f"{store.path / rel}: damaged run file, nothing merged: {problems[0]}{more}")
        else:
            info = store.run_info(rid)
            raw = info.get("n_classes")
            nc = raw if isinstance(raw, int) and not isinstance(raw, bool) else None
        if nc is not None:
            seen.setdefault(nc, f"{store.path / rel}")
    if len(seen) > 1:
        raise StoreError(
            f"cannot merge {store.path}: class counts disagree: "
            + ", ".join(f"{c} ({w})" for c, w in sorted(seen.items()))
        )
    return next(iter(seen), None)


def check_inputs(sources: Sequence[MergeStore], dest: MergeStore | None) -> None:
    """Refuse incompatible stores or damaged input runs, before anything is written.

    Parameters
    ----------
    sources : sequence of MergeStore
        The stores to merge.
    dest : MergeStore or None
        The destination when it already holds a store.

    Raises
    ------
    ValueError
        No store to merge.
    StoreError
        Sizes, labels or class counts differ (the class count of a store being its
        manifest's, else the one its runs recorded), or an input run file is damaged.
    """
    ref = dest if dest is not None else (sources[0] if sources else None)
    if ref is None:
        raise ValueError("merge: expected at least one store to merge")
    for s in sources:
        _check_compatible(ref, s)
    classes: dict[int, Path] = {}
    stores: list[tuple[MergeStore, bool]] = [(s, True) for s in sources if dest is None or not _same_dir(s, dest)]
    if dest is not None:
        stores.append((dest, False))
    for s, full in stores:
        nc = _checked_classes(s, full=full)
        if nc is not None:
            classes.setdefault(nc, s.path)
    if len(classes) > 1:
        raise StoreError(
            "cannot merge stores with different class counts: "
            + ", ".join(f"{c} ({p})" for c, p in sorted(classes.items()))
        )


def _writer(data: bytes) -> Callable[[IO[bytes]], None]:
    def write(f: IO[bytes]) -> None:
        f.write(data)

    return write


def _same_dir(a: MergeStore, b: MergeStore) -> bool:
    return a.path.resolve() == b.path.resolve()


def copy_runs(sources: Sequence[MergeStore], dest: MergeStore) -> None:
    """Publish every run of ``sources`` in ``dest``, atomically, one file at a time.

    A run already in ``dest`` with the same bytes is skipped. Each file's zip CRCs are
    checked again on the bytes that are written.

    Raises
    ------
    StoreError
        A run id present in ``dest`` with different bytes, or a file damaged since
        :func:`check_inputs` read it.
    """
    runs = dest.path / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    for s in sources:
        if _same_dir(s, dest):
            continue
        for rid in s.run_ids():
            src = s.path / run_rel(rid)
            data = read_regular(src)
            target = runs / f"{rid}.npz"
            if publish_run_bytes(target, data, str(src)):
                continue
            if read_regular(target) != data:
                raise StoreError(f"merge: run id {rid!r} exists in {dest.path} with different contents than {src}")


def publish_run_bytes(target: Path, data: bytes, src: str) -> bool:
    """Check the zip CRCs of a run file's bytes and publish them atomically at ``target``.

    Parameters
    ----------
    target : Path
        ``<store>/runs/<run id>.npz``.
    data : bytes
        The run file.
    src : str
        Where the bytes come from (for messages).

    Returns
    -------
    bool
        False (nothing written) when ``target`` already exists.

    Raises
    ------
    StoreError
        Damaged bytes (bad CRC, not a zip file).
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            bad = zf.testzip()
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - zipfile raises many types on damage
        raise StoreError(f"{src}: damaged run file, not merged ({type(exc).__name__}: {exc})") from None
    if bad is not None:
        raise StoreError(f"{src}: damaged run file (bad CRC in {bad}), not merged")
    return not target.exists() and atomic_create(target, _writer(data))
