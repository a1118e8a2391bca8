"""Path types and file-name conventions shared by the n-gram modules."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TypeAlias

#: A file path: ``str`` or ``os.PathLike[str]`` (``pathlib.Path``).
PathLike: TypeAlias = str | os.PathLike[str]
#: One path or several.
Paths: TypeAlias = PathLike | Iterable[PathLike]

#: Sidecar of a token shard ``NAME.npy``: ``NAME.offsets.npy``, the start index of each document.
TOKEN_OFFSETS_SUFFIX = ".offsets.npy"

JSONL_EXT = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".jsonl.zstd", ".ndjson", ".json.gz", ".json")
TEXT_EXT = (".txt", ".txt.gz", ".txt.zst", ".txt.zstd", ".text", ".md")
