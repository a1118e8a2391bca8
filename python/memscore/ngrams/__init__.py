"""Corpus n-gram counting: occurrences, document frequency and document co-occurrence.

A :class:`Corpus` is a list of shards (token arrays, token ``.npy`` files, jsonl files,
text files, in-memory texts). :func:`ngram_stats` streams every shard once, in parallel on
memscore's thread pool with the GIL released, and counts many query n-grams and n-gram
pairs at a time:

- ``counts[q]``: occurrences of query n-gram ``q`` (overlapping occurrences count);
- ``doc_freq[q]``: documents containing ``q`` at least once;
- ``cooccurrence[p]``: documents containing both n-grams of pair ``p`` (they may have
  different lengths; a pair of an n-gram with itself counts the documents containing it).

N-grams never span two documents. Text corpora and text queries go through the same
:class:`Normalizer`, so ``"The Cat!"`` as a query matches ``the cat`` in the corpus.
Counts of separate shards add up: :meth:`NgramStats.merge` sums partial results, which
:meth:`NgramStats.write_parquet` stores as Parquet. A :class:`QuerySet` prepares queries
and pairs once and counts any subset of shards with them (``qs.count(corpus.shards()[i])``);
``memscore ngrams count`` is built on it.

A :class:`CorpusIndex` (suffix arrays, built once) answers the same counts without
reading the corpus again, plus positions, next-token counts, ∞-gram probabilities, the
longest match at each position and the maximal matching spans of a text.
"""

from __future__ import annotations

from ._paths import TOKEN_OFFSETS_SUFFIX
from .contamination import contamination
from .corpus import Corpus, open_corpus
from .counting import cooccurrence, count_ngrams, document_frequency, ngram_stats
from .index import CorpusIndex, InfgramProb
from .normalizer import ENGLISH_STOPWORDS, Normalizer
from .queries import ProgressCounter, QuerySet
from .stats import NgramStats

__all__ = [
    "ENGLISH_STOPWORDS",
    "Corpus",
    "CorpusIndex",
    "InfgramProb",
    "NgramStats",
    "Normalizer",
    "ProgressCounter",
    "QuerySet",
    "TOKEN_OFFSETS_SUFFIX",
    "contamination",
    "cooccurrence",
    "count_ngrams",
    "document_frequency",
    "ngram_stats",
    "open_corpus",
]
