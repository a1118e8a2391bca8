"""Checks the commands run on their options before they create or train anything."""

from __future__ import annotations

import errno
import os
from pathlib import Path

__all__ = ["check_existing_dir", "check_out_file", "check_output_dir"]


def check_output_dir(path: Path, option: str) -> None:
    """``path`` can be used as an output directory: it is a directory already, or it can be
    made (its nearest existing ancestor is a writable directory).

    Parameters
    ----------
    path : pathlib.Path
        The directory a command writes into.
    option : str
        The option or argument that named it, for the message (``"--out"``, ``"STORE"``).

    Raises
    ------
    NotADirectoryError
        ``path`` or one of its ancestors is a file.
    PermissionError
        The directory (or the one it would be made in) is not writable.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"{option} must be a directory, but this is a file", str(p))
    probe = p
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"{option}: cannot make a directory under a file", str(probe))
    if not os.access(probe, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, f"{option}: this directory is not writable", str(probe))


def check_existing_dir(path: Path, option: str) -> None:
    """``path`` is an existing directory (a store or sweep to read).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    NotADirectoryError
        ``path`` is a file.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(errno.ENOENT, f"{option}: no such store or sweep directory", str(p))
    if not p.is_dir():
        raise NotADirectoryError(
            errno.ENOTDIR, f"{option} must be a store or sweep directory, but this is a file", str(p)
        )


def check_out_file(target: Path, option: str) -> None:
    """``target`` can be written: not a directory, in an existing writable directory.

    Raises
    ------
    IsADirectoryError, FileNotFoundError, NotADirectoryError, PermissionError
        Named with ``option`` and the path given.
    """
    parent = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, f"{option}: expected a file to write, got a directory", str(target))
    if not parent.exists():
        raise FileNotFoundError(errno.ENOENT, f"{option}: the directory of this file does not exist", str(target))
    if not parent.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"{option}: the directory of this file is a file", str(target))
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, f"{option}: the directory of this file is not writable", str(target))
