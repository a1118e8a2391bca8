"""Exception hierarchy: one base class, a subclass per subsystem.

Bad arguments raise the built-in ``ValueError`` / ``TypeError``; failures of the
store or of a corpus raise these.
"""


class MemscoreError(Exception):
    """Base class of memscore's own errors."""


class StoreError(MemscoreError):
    """A run store is missing, damaged, or disagrees with what was added to it."""


class CorpusError(MemscoreError):
    """A corpus shard cannot be read or parsed."""
