"""Exception hierarchy: one base class, a subclass per subsystem.

Bad arguments raise the built-in ``TypeError`` (wrong type) or ``ValueError`` (wrong
value); failures of the store, of a corpus or of a dataset file raise :class:`StoreError` /
:class:`CorpusError` / :class:`DatasetError`; using an estimator before ``fit`` raises :class:`NotFittedError`.

:class:`NotFittedError` subclasses ``sklearn.exceptions.NotFittedError`` when scikit-learn
is installed (so ``except sklearn.exceptions.NotFittedError`` catches it), else
``ValueError`` and ``AttributeError`` as scikit-learn's does. scikit-learn takes a second
to import, so the class is made on first use (``memscore.NotFittedError`` or the first
raise), and is the same object from then on.

Examples
--------
>>> import memscore
>>> issubclass(memscore.StoreError, memscore.MemscoreError)
True
>>> issubclass(memscore.NotFittedError, ValueError)
True
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

__all__ = [
    "ClusterError",
    "CorpusError",
    "CorpusIndexError",
    "DatasetError",
    "DivergedError",
    "ImportFileError",
    "IndexMismatchError",
    "MemscoreError",
    "NotFittedError",
    "RunNotFoundError",
    "StoreError",
]


class MemscoreError(Exception):
    """Base class of memscore's own errors."""


class StoreError(MemscoreError):
    """A run store is missing, damaged, or disagrees with what was added to it."""


class RunNotFoundError(StoreError, KeyError):
    """No run with the asked id in the store (a :class:`StoreError`; also a ``KeyError``)."""

    def __str__(self) -> str:
        """The message itself (``KeyError`` would quote it)."""
        return str(self.args[0]) if self.args else ""


class CorpusError(MemscoreError):
    """A corpus shard cannot be read or parsed."""


class CorpusIndexError(MemscoreError):
    """A corpus index is missing, unfinished or damaged: no manifest, a manifest of another
    format, a part file missing, of the wrong size, or whose checksum differs; the message
    names the file."""


class IndexMismatchError(CorpusIndexError):
    """A corpus index was built from another corpus than the one given (other shards,
    files changed since the build, other tokens)."""


class DatasetError(MemscoreError):
    """A dataset file cannot be read, or holds what its format does not allow (images and
    labels that disagree in number, labels that are not integers of the declared classes,
    images of another shape, a pickle that names code); the message names the file, the
    field, what was expected and what came."""


class ImportFileError(MemscoreError, ValueError):
    """A file another project wrote (a datamodels release, a LiRA log directory, TRAK,
    dattri or Kronfluence scores) cannot be read, or holds what its format does not allow
    (malformed JSON, a header that declares more bytes than the file has, a dtype or shape
    other than the format's, values that do not fit float32, keep flags that are not 0/1);
    the message names the file, what was expected and what came. Also a ``ValueError``."""


class ClusterError(MemscoreError):
    """An executor cannot run the work: no cluster answers at the address, no worker has
    the resources of one task, the workers do not see a path, or a task's workers kept
    dying."""


class DivergedError(MemscoreError):
    """A training run's loss turned NaN or infinite (too high a learning rate, bad data):
    the message names each such run, the epoch and the step; the runs trained with it
    were stored."""


_NOT_FITTED_DOC = """An estimator (:class:`~memscore.ResMem`) was used before ``fit``.

Subclasses ``sklearn.exceptions.NotFittedError`` when scikit-learn is installed, else
``ValueError`` and ``AttributeError`` (as scikit-learn's does), and
:class:`MemscoreError`.
"""


@functools.cache
def _not_fitted_error() -> type[Exception]:
    """The :class:`NotFittedError` class, made once."""
    try:
        from sklearn.exceptions import NotFittedError as _SkNotFitted
    except ImportError:
        bases: tuple[type[Exception], ...] = (MemscoreError, ValueError, AttributeError)
    else:
        bases = (MemscoreError, _SkNotFitted)
    cls = type("NotFittedError", bases, {"__doc__": _NOT_FITTED_DOC, "__module__": __name__})
    return cls


if TYPE_CHECKING:

    class NotFittedError(MemscoreError, ValueError, AttributeError):
        """An estimator was used before ``fit`` (see the module notes)."""

else:

    def __getattr__(name: str) -> object:
        if name == "NotFittedError":
            return _not_fitted_error()
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
