"""Results of a counting pass (:class:`NgramStats`) and their Parquet partials."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .._io import atomic_write
from ..errors import CorpusError
from ._paths import PathLike


@dataclass
class NgramStats:
    """Counts of one pass: arrays in the order of the queries / pairs given.

    Attributes
    ----------
    counts : numpy.ndarray
        int64 ``(Q,)``: occurrences of each query n-gram.
    doc_freq : numpy.ndarray
        int64 ``(Q,)``: documents containing each query n-gram.
    cooccurrence : numpy.ndarray
        int64 ``(P,)``: documents containing both n-grams of each pair.
    n_documents, n_tokens, n_skipped : int
        Documents and tokens read; malformed lines skipped (``on_error="skip"``).
    key : str
        The :attr:`QuerySet.key` of the queries and pairs counted.
    shards : list of str
        The names of the shards counted.
    sources : list of dict
        Per shard, what its counts depend on besides the key: reading options and file
        size / mtime (:meth:`Corpus.sources`); a resumed count reuses a partial only when
        they match.
    """

    counts: npt.NDArray[np.int64]
    doc_freq: npt.NDArray[np.int64]
    cooccurrence: npt.NDArray[np.int64]
    n_documents: int
    n_tokens: int
    n_skipped: int = 0
    key: str = ""
    shards: list[str] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def merge(cls, parts: Sequence[NgramStats]) -> NgramStats:
        """Sum partial results of the same queries and pairs.

        Parameters
        ----------
        parts : sequence of NgramStats
            Partial results with one :attr:`key`.

        Returns
        -------
        NgramStats
            Summed counts; ``shards`` and ``sources`` concatenated.

        Raises
        ------
        ValueError
            No parts, or parts of other queries / pairs (keys or shapes differ).
        """
        parts = list(parts)
        if not parts:
            raise ValueError("NgramStats.merge: need at least one partial result")
        first = parts[0]
        for k, p in enumerate(parts[1:], 1):
            if p.key != first.key:
                raise ValueError(
                    f"NgramStats.merge: part {k} counts other queries/pairs (key {p.key[:12]}…) "
                    f"than part 0 (key {first.key[:12]}…)"
                )
            if p.counts.shape != first.counts.shape or p.cooccurrence.shape != first.cooccurrence.shape:
                raise ValueError(f"NgramStats.merge: part {k} has other array shapes than part 0")
        return cls(
            counts=np.asarray(np.sum([p.counts for p in parts], axis=0, dtype=np.int64)).reshape(first.counts.shape),
            doc_freq=np.asarray(np.sum([p.doc_freq for p in parts], axis=0, dtype=np.int64)).reshape(
                first.doc_freq.shape
            ),
            cooccurrence=np.asarray(np.sum([p.cooccurrence for p in parts], axis=0, dtype=np.int64)).reshape(
                first.cooccurrence.shape
            ),
            n_documents=sum(p.n_documents for p in parts),
            n_tokens=sum(p.n_tokens for p in parts),
            n_skipped=sum(p.n_skipped for p in parts),
            key=first.key,
            shards=[s for p in parts for s in p.shards],
            sources=[s for p in parts for s in p.sources],
        )

    def __add__(self, other: NgramStats) -> NgramStats:
        return NgramStats.merge([self, other])

    def write_parquet(self, path: PathLike) -> None:
        """Write as Parquet, atomically (unique temporary file, fsync, rename).

        See README "Partial results" for the layout; the key, totals, shards and sources
        are in the file's key-value metadata.

        Parameters
        ----------
        path : str or os.PathLike
            The destination file.
        """
        import polars as pl

        q, p = len(self.counts), len(self.cooccurrence)
        df = pl.DataFrame(
            {
                "kind": ["query"] * q + ["pair"] * p,
                "index": np.concatenate([np.arange(q), np.arange(p)]).astype(np.int64),
                "count": pl.Series(list(self.counts) + [None] * p, dtype=pl.Int64),
                "doc_freq": pl.Series(list(self.doc_freq) + [None] * p, dtype=pl.Int64),
                "cooccurrence": pl.Series([None] * q + list(self.cooccurrence), dtype=pl.Int64),
            }
        )
        meta = {
            "memscore.ngrams.format": "1",
            "memscore.ngrams.key": self.key,
            "memscore.ngrams.n_documents": str(self.n_documents),
            "memscore.ngrams.n_tokens": str(self.n_tokens),
            "memscore.ngrams.n_skipped": str(self.n_skipped),
            "memscore.ngrams.n_queries": str(q),
            "memscore.ngrams.n_pairs": str(p),
            "memscore.ngrams.shards": json.dumps(self.shards),
            "memscore.ngrams.sources": json.dumps(self.sources),
        }
        meta[_DIGEST_KEY] = _digest(self.counts, self.doc_freq, self.cooccurrence, meta)
        atomic_write(Path(path), lambda f: df.write_parquet(f, metadata=meta))

    @classmethod
    def read_parquet(cls, path: PathLike) -> NgramStats:
        """Read a file written by :meth:`write_parquet`.

        Parameters
        ----------
        path : str or os.PathLike
            The file.

        Returns
        -------
        NgramStats
            Its counts and metadata (``sources`` is empty for files written before it).

        Raises
        ------
        memscore.CorpusError
            The file cannot be read or is not a memscore n-gram partial result.
        """
        import polars as pl

        try:
            meta = pl.read_parquet_metadata(os.fspath(path))
            df = pl.read_parquet(os.fspath(path))
        # polars' reader can panic on a damaged file (PanicException is a BaseException).
        except (Exception, pl.exceptions.PanicException) as exc:
            raise CorpusError(f"{path}: cannot read partial n-gram result: {exc}") from exc
        if meta.get("memscore.ngrams.format") != "1":
            raise CorpusError(f"{path}: not a memscore n-gram partial result (format key missing)")
        try:
            q = df.filter(pl.col("kind") == "query").sort("index")
            p = df.filter(pl.col("kind") == "pair").sort("index")
            out = cls(
                counts=q["count"].to_numpy().astype(np.int64),
                doc_freq=q["doc_freq"].to_numpy().astype(np.int64),
                cooccurrence=p["cooccurrence"].to_numpy().astype(np.int64),
                n_documents=int(meta["memscore.ngrams.n_documents"]),
                n_tokens=int(meta["memscore.ngrams.n_tokens"]),
                n_skipped=int(meta.get("memscore.ngrams.n_skipped", "0")),
                key=meta["memscore.ngrams.key"],
                shards=json.loads(meta.get("memscore.ngrams.shards", "[]")),
                sources=json.loads(meta.get("memscore.ngrams.sources", "[]")),
            )
            ok = (
                len(q) == int(meta["memscore.ngrams.n_queries"])
                and len(p) == int(meta["memscore.ngrams.n_pairs"])
                and len(q) + len(p) == len(df)
            )
        except Exception as exc:  # noqa: BLE001 - damaged values raise many types
            raise CorpusError(f"{path}: damaged partial n-gram result ({type(exc).__name__}: {exc})") from None
        # Parquet checksums cover pages, not the key-value metadata: a digest over both
        # makes any change to counts or metadata an error, never a silently different count.
        want = meta.get(_DIGEST_KEY)
        if not ok or (want is not None and want != _digest(out.counts, out.doc_freq, out.cooccurrence, meta)):
            raise CorpusError(f"{path}: damaged partial n-gram result (checksum or row counts do not match)")
        return out


_DIGEST_KEY = "memscore.ngrams.sha256"


def _digest(
    counts: npt.NDArray[np.int64],
    doc_freq: npt.NDArray[np.int64],
    cooccurrence: npt.NDArray[np.int64],
    meta: dict[str, str],
) -> str:
    """sha256 of the counts and of memscore's metadata entries but the digest itself."""
    h = hashlib.sha256()
    for a in (counts, doc_freq, cooccurrence):
        h.update(np.ascontiguousarray(a, dtype="<i8").tobytes())
        h.update(b"|")
    ours = {k: v for k, v in meta.items() if k.startswith("memscore.ngrams.") and k != _DIGEST_KEY}
    h.update(json.dumps(ours, sort_keys=True).encode())
    return h.hexdigest()
