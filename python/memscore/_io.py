"""Atomic file writes shared by the run store, the score reports and the n-gram partials:
write under a temporary name in the target directory, fsync, rename, fsync the directory.
A crash leaves at most a ``.tmp-*`` file, never a half-written one under the real name.

Also the two rules every file memscore writes follows: JSON is strict (:func:`dump_json`:
NaN and infinities written as ``null``), and a name read from a file that becomes a path
stays inside its folder (:func:`resolve_inside`).
"""

from __future__ import annotations

import json
import math
import os
import stat
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

TMP_PREFIX = ".tmp-"


def _fsync_dir(d: Path) -> None:
    """Make a directory entry durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _tmp_name(d: Path, suffix: str) -> Path:
    """A fresh temporary name in ``d`` (listings skip names starting with ``.``)."""
    return d / f"{TMP_PREFIX}{uuid.uuid4().hex}{suffix}"


def _write_tmp(d: Path, suffix: str, write: Callable[[IO[bytes]], Any]) -> Path:
    """Write a file under a temporary name in ``d`` with ``write(fileobj)``, fsynced."""
    tmp = _tmp_name(d, suffix)
    try:
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _atomic_replace(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Write ``path`` atomically: temporary name in the same directory, fsync, rename."""
    tmp = _write_tmp(path.parent, path.suffix, write)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], Any]) -> None:
    """Write ``path`` atomically: temporary name in the same directory, fsync, rename.

    A crash leaves at most a ``.tmp-*`` file, never a half-written one under the real name.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write (its directory must exist).
    write : callable
        ``write(fileobj)`` writes the bytes into a binary file object.

    Raises
    ------
    OSError
        The directory is missing or not writable, or the disk is full (the temporary file
        is removed).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> atomic_write(d / "x.txt", lambda f: f.write(b"hi"))
    >>> (d / "x.txt").read_bytes()
    b'hi'
    """
    _atomic_replace(Path(path), write)


def remove_tmp_files(directory: Any, older_than: float = 3600.0) -> list[Path]:
    """Remove the ``.tmp-*`` files an interrupted atomic write left in ``directory``.

    Parameters
    ----------
    directory : str or os.PathLike
        The directory to clean (not recursive).
    older_than : float, default 3600
        Only files last modified at least this many seconds ago: a younger one may belong
        to a write still in progress in another process. ``0`` removes them all.

    Returns
    -------
    list of pathlib.Path
        The files removed.
    """
    import time

    d = Path(directory)
    if not d.is_dir():
        return []
    now = time.time()
    removed = []
    for p in sorted(d.iterdir()):
        if not p.name.startswith(TMP_PREFIX):
            continue
        try:
            st = p.lstat()  # a link or a FIFO named like a temporary file is not ours to remove
            if stat.S_ISREG(st.st_mode) and now - st.st_mtime >= older_than:
                p.unlink()
                removed.append(p)
        except FileNotFoundError:
            continue  # finished (renamed) or removed meanwhile
    return removed


# ----------------------------------------------------------------------------- strict JSON


def _finite(obj: Any, default: Callable[[Any], Any] | None) -> Any:
    """``obj`` with every non-finite float as None, numpy scalars and arrays as Python
    values, tuples as lists; anything else goes through ``default`` (then the same)."""
    if obj is None or isinstance(obj, (str, bool, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v, default) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v, default) for v in obj]
    if isinstance(obj, (np.generic, np.ndarray)):
        return _finite(obj.tolist(), default)
    if default is None:
        raise TypeError(f"expected JSON values, got {type(obj).__name__}")
    return _finite(default(obj), None)


def dump_json(
    obj: Any, *, indent: int | None = 2, sort_keys: bool = False, default: Callable[[Any], Any] | None = None
) -> bytes:
    """Strict JSON (UTF-8, trailing newline) as memscore writes it: NaN and infinities
    become ``null`` (strict readers refuse bare ``NaN``), numpy scalars and arrays become
    numbers and lists.

    Parameters
    ----------
    obj : object
        Dicts, lists, tuples, str, int, float, bool, None and numpy values.
    indent : int or None, default 2
    sort_keys : bool, default False
    default : callable, optional
        Converts any other object (e.g. ``str``); without it such an object is a TypeError.

    Returns
    -------
    bytes

    Examples
    --------
    >>> dump_json({"auc": float("nan"), "n": 3}, indent=None)
    b'{"auc": null, "n": 3}\\n'
    """
    clean = _finite(obj, default)
    return (json.dumps(clean, indent=indent, sort_keys=sort_keys, allow_nan=False) + "\n").encode("utf-8")


def write_json(path: str | os.PathLike[str], obj: Any, **kwargs: Any) -> None:
    """Write :func:`dump_json` of ``obj`` to ``path`` atomically (``kwargs`` as there)."""
    body = dump_json(obj, **kwargs)
    atomic_write(path, lambda f: f.write(body))


# ----------------------------------------------------------------------------- names from files


def resolve_inside(
    root: str | os.PathLike[str],
    name: Any,
    what: str,
    error: Callable[[str], Exception] = ValueError,
) -> Path:
    """``root / name`` resolved, when it lies strictly inside ``root``.

    Every name that memscore reads from a file and turns into a path goes through here
    (sweep store names and sizes, ...), so no file can make memscore read or write outside
    the folder it was given. Symbolic links are followed: a link out of ``root`` is refused.

    Parameters
    ----------
    root : str or os.PathLike
        The folder the name belongs to.
    name : object
        The name read from the file: a relative path (str).
    what : str
        Where the name comes from, for the message (e.g. ``"runs/sweep.json: stores[1]"``).
    error : callable, default ValueError
        The exception class raised (e.g. :class:`memscore.errors.StoreError`).

    Returns
    -------
    pathlib.Path
        ``root / name``, resolved.

    Raises
    ------
    ValueError (or ``error``)
        ``name`` is not a non-empty str, is absolute, holds a NUL, or resolves to ``root``
        itself or outside it.
    """
    if not isinstance(name, str) or not name or "\x00" in name or os.path.isabs(name):
        raise error(f"{what}: expected a relative name inside {os.fspath(root)}, got {name!r}")
    base = Path(root).resolve()
    path = (base / name).resolve()
    if path == base or not path.is_relative_to(base):
        raise error(f"{what}: {name!r} is not a name inside {os.fspath(root)} (it resolves to {path})")
    return path
