"""Text documents from columnar sources: Parquet files (read one row group at a time),
Arrow IPC files (the ``.arrow`` files of HuggingFace ``datasets`` caches, memory-mapped)
and HuggingFace ``datasets`` objects (``Dataset`` and ``IterableDataset``, or a folder
written by ``save_to_disk``).

Each yields batches of texts that the engine counts as in-memory text shards (one engine
pass per batch, the next batch read on a helper thread meanwhile), so memory follows one
row group / batch, not the file. A null text is an error naming the file, row group and
row, or (``on_error="skip"``) a skipped, counted document, as a malformed jsonl line is.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..errors import CorpusError

__all__ = ["BATCHED_KINDS", "arrow_nbytes", "check_arrow", "check_parquet", "prefetch", "text_batches"]

#: Shard kinds read here, batch by batch, rather than by the engine itself.
BATCHED_KINDS = ("parquet", "arrow", "hf")
#: Rows per batch of an Arrow file or a dataset.
BATCH_ROWS = 65536


def _check_type(field: Any, text_field: str, where: str) -> None:
    import pyarrow as pa

    if field is None:
        raise CorpusError(f"{where}: no column {text_field!r} (text_field)")
    t = field.type
    if not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)):
        raise CorpusError(f"{where}: column {text_field!r} holds {t}, expected strings (text_field)")


def _schema_field(schema: Any, name: str) -> Any:
    i = schema.get_field_index(name)
    return None if i < 0 else schema.field(i)


def check_parquet(path: str, text_field: str) -> int:
    """Check that ``path`` is Parquet with a string column ``text_field``; return the
    uncompressed bytes of that column (what the count will read).

    Raises
    ------
    memscore.CorpusError
        Not Parquet (or damaged metadata), no such column, not strings.
    """
    import pyarrow.parquet as pq

    try:
        f = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError on bad files
        raise CorpusError(f"{path}: cannot read as Parquet: {exc}") from exc
    _check_type(_schema_field(f.schema_arrow, text_field), text_field, path)
    md = f.metadata
    col = f.schema_arrow.get_field_index(text_field)
    leaf = [i for i in range(md.num_columns) if md.schema.column(i).path.split(".")[0] == text_field]
    if col < 0 or not leaf:
        return 0
    return sum(md.row_group(g).column(leaf[0]).total_uncompressed_size for g in range(md.num_row_groups))


def _open_arrow(path: str) -> Any:
    """A reader of the record batches of an Arrow IPC file or stream, memory-mapped."""
    import pyarrow as pa

    source = pa.memory_map(path, "r")
    try:
        return pa.ipc.open_file(source)
    except pa.ArrowInvalid:
        source.seek(0)
        return pa.ipc.open_stream(source)


def check_arrow(path: str, text_field: str) -> None:
    """Check that ``path`` is an Arrow IPC file or stream with a string column ``text_field``.

    Raises
    ------
    memscore.CorpusError
        Not Arrow, no such column, not strings.
    """
    try:
        reader = _open_arrow(path)
    except Exception as exc:
        raise CorpusError(f"{path}: cannot read as an Arrow IPC file or stream: {exc}") from exc
    _check_type(_schema_field(reader.schema, text_field), text_field, path)


def arrow_nbytes(path: str) -> int:
    """Bytes of an Arrow file on disk (its record batches are memory-mapped)."""
    return os.path.getsize(path)


def _texts(column: Any, where: str, first_row: int, skip: bool) -> tuple[list[str], int]:
    """The strings of an Arrow column (a null is an error, or skipped and counted)."""
    nulls = column.null_count
    if nulls and not skip:
        import pyarrow.compute as pc

        row = pc.index(pc.is_null(column), True).as_py()
        raise CorpusError(f"{where}, row {first_row + row}: the text is null")
    if nulls:
        column = column.drop_null()
    return column.to_pylist(), nulls


def _parquet_batches(path: str, field: str, skip: bool) -> Iterator[tuple[list[str], int]]:
    import pyarrow.parquet as pq

    f = pq.ParquetFile(path)
    first = 0
    for g in range(f.num_row_groups):
        try:
            table = f.read_row_group(g, columns=[field])
        except Exception as exc:
            raise CorpusError(f"{path}, row group {g}: cannot read: {exc}") from exc
        yield _texts(table.column(0), f"{path}, row group {g}", first, skip)
        first += table.num_rows


def _arrow_batches(path: str, field: str, skip: bool) -> Iterator[tuple[list[str], int]]:
    reader = _open_arrow(path)
    first = 0
    batches = (
        (reader.get_batch(i) for i in range(reader.num_record_batches)) if hasattr(reader, "get_batch") else reader
    )
    for batch in batches:
        col = batch.column(batch.schema.get_field_index(field))
        for lo in range(0, len(col), BATCH_ROWS):
            yield _texts(col.slice(lo, BATCH_ROWS), path, first + lo, skip)
        first += len(col)


def load_dataset_folder(path: str) -> Any:
    """``datasets.load_from_disk(path)``, with a missing package or folder as a clear error."""
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("reading HuggingFace datasets needs datasets: pip install 'memscore[hf]'") from exc
    try:
        return datasets.load_from_disk(path)
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise CorpusError(f"{path}: cannot load as a HuggingFace dataset (save_to_disk folder): {exc}") from exc


def _hf_batches(dataset: Any, field: str, skip: bool, name: str) -> Iterator[tuple[list[str], int]]:
    if isinstance(dataset, (str, os.PathLike)):
        dataset = load_dataset_folder(os.fspath(dataset))
    first = 0
    if hasattr(dataset, "with_format") and hasattr(dataset, "num_rows") and hasattr(dataset, "data"):
        # a map-style Dataset: Arrow tables of its memory-mapped files (its select/shuffle
        # indices respected)
        for table in dataset.with_format("arrow").iter(batch_size=BATCH_ROWS):
            yield _texts(table.column(field), name, first, skip)
            first += table.num_rows
        return
    for batch in dataset.iter(batch_size=BATCH_ROWS):  # an IterableDataset: dicts of lists
        values = batch[field]
        bad = [i for i, v in enumerate(values) if not isinstance(v, str)]
        if bad and not skip:
            v = values[bad[0]]
            raise CorpusError(f"{name}, row {first + bad[0]}: the text is {type(v).__name__}, not a str")
        yield [v for v in values if isinstance(v, str)], len(bad)
        first += len(values)


def text_batches(kind: str, payload: Any, field: str, skip: bool, name: str) -> Iterator[tuple[list[str], int]]:
    """(texts, skipped) batches of one shard of a :data:`BATCHED_KINDS` kind.

    Raises
    ------
    memscore.CorpusError
        A null text (unless ``skip``), an unreadable row group or batch.
    """
    if kind == "parquet":
        return _parquet_batches(payload, field, skip)
    if kind == "arrow":
        return _arrow_batches(payload, field, skip)
    return _hf_batches(payload, field, skip, name)


def prefetch(items: Iterator[Any]) -> Iterator[Any]:
    """The items of ``items``, the next one read on a helper thread while the caller works
    on the current (pyarrow releases the GIL while it reads and decompresses)."""
    with ThreadPoolExecutor(1, thread_name_prefix="memscore-read") as pool:
        nxt = pool.submit(next, items, None)
        while True:
            item = nxt.result()
            if item is None:
                return
            nxt = pool.submit(next, items, None)
            yield item


def dataset_files(dataset: Any) -> tuple[str, ...]:
    """The Arrow files behind a map-style HuggingFace ``Dataset`` (its cache files), or
    those of a ``save_to_disk`` folder."""
    if isinstance(dataset, (str, os.PathLike)):
        return tuple(sorted(str(p) for p in Path(dataset).glob("*.arrow")))
    return tuple(str(c["filename"]) for c in getattr(dataset, "cache_files", []) or [])
