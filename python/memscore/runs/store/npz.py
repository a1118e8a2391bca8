"""Reading the arrays of one ``.npz`` run file: without blocking, every array's CRC-32 checked.

Run files are written by ``np.savez`` (a zip of uncompressed ``.npy`` members). For those
:class:`NpzFile` reads the zip's central directory and each asked member with one
``pread`` each and parses the ``.npy``
header ``np.save`` writes directly: a store's ``scores()`` opens thousands of files, and
:mod:`zipfile` with :func:`numpy.lib.format.read_array` spends more time on bookkeeping
than on the bytes. Anything else (zip64 directories, compressed members, other ``.npy``
headers) goes through :mod:`zipfile` / :mod:`numpy.lib.format`. Damage raises some
exception; callers turn it into a :class:`~memscore.StoreError` naming the file.
"""

from __future__ import annotations

import io
import math
import os
import re
import stat
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np

from ... import _core
from ...errors import StoreError

__all__ = ["NpzFile", "parse_npy"]

_TAIL = 4096  # bytes read from the end for the directory (np.savez writes ~60 per member)
_LOCAL_EXTRA = 64  # local header extra field read along with a member (zip64: 20)
_EOCD = b"PK\x05\x06"
_CDH = b"PK\x01\x02"
_LFH = b"PK\x03\x04"
_NPY_MAGIC = b"\x93NUMPY"
_NPY_HEADER = re.compile(
    r"\{'descr': '([<>|=]?[a-zA-Z][0-9]*)', 'fortran_order': (False|True), 'shape': \(([0-9, ]*)\), \} *\n?"
)


def parse_npy(data: bytes | memoryview) -> np.ndarray:
    """The array in the bytes of an ``.npy`` file (a read-only view of them).

    Parameters
    ----------
    data : bytes
        The whole ``.npy`` file.

    Returns
    -------
    numpy.ndarray

    Raises
    ------
    ValueError
        Not an ``.npy`` file, an object dtype, or a size that does not match the header.
    """
    data = memoryview(data)
    if len(data) < 10 or bytes(data[:6]) != _NPY_MAGIC:
        raise ValueError("not an .npy array (bad magic)")
    if data[6] == 1:
        start, hlen = 10, int.from_bytes(data[8:10], "little")
    else:
        start, hlen = 12, int.from_bytes(data[8:12], "little")
    header = bytes(data[start : start + hlen])
    parsed = _headers.get(header)
    if parsed is None:
        parsed = _parse_header(header)
        if parsed is None:
            out: np.ndarray = np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
            return out
        if len(_headers) < 4096:
            _headers[header] = parsed
    dtype, shape, order = parsed
    count = math.prod(shape)
    body = data[start + hlen :]
    if len(body) != count * dtype.itemsize:
        raise ValueError(f"array data is {len(body)} bytes, the header says {count} x {dtype.itemsize}")
    return np.frombuffer(body, dtype=dtype, count=count).reshape(shape, order=order)


# A store's run files repeat a handful of headers: parse each once.
_headers: dict[bytes, tuple[np.dtype[Any], tuple[int, ...], Literal["C", "F"]]] = {}


def _parse_header(header: bytes) -> tuple[np.dtype[Any], tuple[int, ...], Literal["C", "F"]] | None:
    m = _NPY_HEADER.fullmatch(header.decode("latin1"))
    if m is None:
        return None
    dtype = np.dtype(m.group(1))
    if dtype.hasobject:
        raise ValueError("object arrays are refused (allow_pickle=False)")
    shape = tuple(int(x) for x in m.group(3).replace(" ", "").split(",") if x)
    return dtype, shape, "F" if m.group(2) == "True" else "C"


@dataclass(frozen=True)
class _Member:
    offset: int  # of the local file header
    size: int
    crc: int
    n_name: int


def open_regular_fd(path: Path, rel: str) -> int:
    """A file descriptor of ``path`` opened without blocking; only regular files.

    Raises
    ------
    StoreError
        Missing, not a regular file (a FIFO never blocks the reader), or unreadable.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise StoreError(f"{rel}: run file is missing") from None
    except OSError as exc:
        raise StoreError(f"{rel}: cannot open ({exc})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise StoreError(f"{rel}: not a regular file (refused; a run file must be a plain file)")
    except BaseException:
        os.close(fd)
        raise
    return fd


class NpzFile:
    """The arrays of one ``.npz`` file.

    Parameters
    ----------
    path : Path
        The file.
    rel : str
        How messages name it.

    Raises
    ------
    StoreError
        Missing, not a regular file, or unreadable.
    """

    def __init__(self, path: Path, rel: str) -> None:
        """See the class docstring."""
        self._fd = open_regular_fd(path, rel)
        self._zip: zipfile.ZipFile | None = None
        self._members: dict[str, _Member] = {}
        try:
            self._size = os.fstat(self._fd).st_size
            if not self._directory():
                self._zip = zipfile.ZipFile(os.fdopen(os.dup(self._fd), "rb"))
        except BaseException:
            self.close()
            raise

    def _pread(self, n: int, offset: int, *, exact: bool = True) -> memoryview:
        out = memoryview(os.pread(self._fd, n, offset))
        if exact and len(out) != n:
            raise EOFError(f"file ends at {self._size} bytes, expected {n} bytes at offset {offset}")
        return out

    def _directory(self) -> bool:
        """Parse the central directory; False when :mod:`zipfile` must take over.

        Anything not laid out exactly as ``np.savez`` writes it goes to :mod:`zipfile`, so
        this path is never stricter than :meth:`~memscore.RunStore.verify`, which uses it.
        """
        tail_len = min(self._size, _TAIL)
        tail = self._pread(tail_len, self._size - tail_len)
        pos = bytes(tail).rfind(_EOCD)
        if (pos < 0 or pos + 22 > len(tail)) and self._size > tail_len:  # a long zip comment
            tail_len = min(self._size, 22 + 65535)
            tail = self._pread(tail_len, self._size - tail_len)
            pos = bytes(tail).rfind(_EOCD)
        if pos < 0 or pos + 22 > len(tail):
            return False
        n_disk, n_cd_disk, n_here, n_total, cd_size, cd_offset = struct.unpack("<HHHHII", tail[pos + 4 : pos + 20])
        if 0xFFFF in (n_here, n_total) or 0xFFFFFFFF in (cd_size, cd_offset):
            return False  # zip64
        if n_disk or n_cd_disk or n_here != n_total:
            return False
        tail_at = self._size - tail_len
        if cd_offset + cd_size != tail_at + pos:
            return False  # not laid out as np.savez writes; let zipfile judge
        cd = tail[cd_offset - tail_at : pos] if cd_offset >= tail_at else self._pread(cd_size, cd_offset)
        at = 0
        for _ in range(n_total):
            if bytes(cd[at : at + 4]) != _CDH or at + 46 > cd_size:
                return False
            flags, method = struct.unpack("<HH", cd[at + 8 : at + 12])
            crc, csize, usize = struct.unpack("<III", cd[at + 16 : at + 28])
            n_name, n_extra, n_comment = struct.unpack("<HHH", cd[at + 28 : at + 34])
            offset = struct.unpack("<I", cd[at + 42 : at + 46])[0]
            name = bytes(cd[at + 46 : at + 46 + n_name]).decode("utf-8" if flags & 0x800 else "cp437")
            if method != 0 or flags & 1 or csize != usize or 0xFFFFFFFF in (csize, usize, offset):
                return False  # compressed, encrypted, zip64 or odd member: zipfile decides
            self._members[name] = _Member(offset, usize, crc, n_name)
            at += 46 + n_name + n_extra + n_comment
        return bool(at == cd_size)

    def names(self) -> set[str]:
        """Member names (``"<array>.npy"``)."""
        if self._zip is not None:
            return set(self._zip.namelist())
        return set(self._members)

    def read(self, name: str) -> np.ndarray:
        """The array stored as ``<name>.npy``, its CRC-32 checked.

        Raises
        ------
        KeyError
            No such member.
        zipfile.BadZipFile, EOFError, ValueError
            Damage.
        """
        member = f"{name}.npy"
        if self._zip is not None:
            with self._zip.open(member) as g:
                return parse_npy(g.read())
        m = self._members[member]
        # local header, name, extra field and data in one read when the extra is short
        blob = self._pread(30 + m.n_name + _LOCAL_EXTRA + m.size, m.offset, exact=False)
        if len(blob) < 30 or bytes(blob[:4]) != _LFH:
            raise zipfile.BadZipFile(f"bad local file header of member {member}")
        n_name, n_extra = struct.unpack("<HH", blob[26:30])
        start = 30 + n_name + n_extra
        if start + m.size <= len(blob):
            data = blob[start : start + m.size]
        else:
            data = self._pread(m.size, m.offset + start)
        if _core.crc32(np.frombuffer(data, np.uint8)) != m.crc:  # zlib's CRC-32, 7x faster
            raise zipfile.BadZipFile(f"Bad CRC-32 for file {member!r}")
        return parse_npy(data)

    def close(self) -> None:
        """Release the file."""
        if self._zip is not None:
            self._zip.close()
            self._zip = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> NpzFile:
        """Use in ``with``."""
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close."""
        self.close()
