"""Atomic file writes shared by the run store, the score reports and the n-gram partials:
write under a temporary name in the target directory, fsync, rename, fsync the directory.
A crash leaves at most a ``.tmp-*`` file, never a half-written one under the real name.
"""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

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
