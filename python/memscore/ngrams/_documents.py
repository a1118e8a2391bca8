"""Documents of text shards read in Python, for the code that needs the documents
themselves rather than counts (tokenizing a text corpus into token shards, indexing it):
jsonl files (one JSON object per line, the document in a field; ``.gz`` / ``.zst``) and
text files read whole (one document per file). The streaming engine reads the same files in
Rust; a test checks that both see the same documents.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from ..errors import CorpusError
from ._paths import JSONL_EXT

__all__ = ["documents", "open_text"]


def open_text(path: Path) -> IO[str]:
    """A UTF-8 text stream of ``path``, decompressed for ``.gz`` / ``.zst`` / ``.zstd``."""
    name = path.name.lower()
    if name.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    if name.endswith((".zst", ".zstd")):
        try:
            import zstandard
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(f"{path}: reading .zst needs the zstandard package: pip install zstandard") from exc
        return io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(open(path, "rb")), encoding="utf-8")
    return open(path, encoding="utf-8")


def documents(path: Path, text_field: str, *, skip_errors: bool = False) -> Iterator[str]:
    """The documents of a jsonl file (blank lines ignored; a malformed line raises
    :class:`memscore.CorpusError` naming file and line, or is skipped with
    ``skip_errors``), or of a text file read whole."""
    is_jsonl = any(path.name.lower().endswith(e) for e in JSONL_EXT)
    with open_text(path) as f:
        if not is_jsonl:
            yield f.read()
            return
        for k, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)[text_field]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                if skip_errors:
                    continue
                raise CorpusError(f"{path}, line {k}: expected a JSON object with a string {text_field!r}") from exc
            if not isinstance(doc, str):
                if skip_errors:
                    continue
                raise CorpusError(f"{path}, line {k}: expected a string {text_field!r}, got {type(doc).__name__}")
            yield doc
