"""The normalizer: how text becomes the words n-grams are made of (lowercase, punctuation,
stopwords), or subword tokens through a HuggingFace ``tokenizer.json``."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .. import _core
from ._paths import PathLike

#: The English stopword list shipped with memscore (normalized form: lowercase, no
#: apostrophes). Written for memscore, Apache-2.0; see ``stopwords_en.txt`` in the core crate.
ENGLISH_STOPWORDS: frozenset[str] = frozenset(_core.english_stopword_list())


class Normalizer:
    """Text -> tokens, identical for corpus text and query text.

    Word mode (default), in this order: split on whitespace (the characters Python's
    ``str.split()`` splits on); with ``strip_punctuation`` delete every character whose
    Unicode general category is punctuation (P*) or symbol (S*) — deleted, not replaced by a
    space, so ``"don't" -> "dont"``, ``"well-known" -> "wellknown"``, ``"$5" -> "5"``; with
    ``lowercase`` apply Unicode lowercase (``str.lower()``); drop empty words; drop
    stopwords (``None``, ``"english"`` for :data:`ENGLISH_STOPWORDS`, or your own words,
    which are normalized the same way).

    Subword mode (:meth:`from_tokenizer`): the tokens of a HuggingFace ``tokenizer.json``.
    """

    def __init__(
        self,
        lowercase: bool = True,
        strip_punctuation: bool = True,
        stopwords: None | str | Iterable[str] = None,
    ) -> None:
        for name, v in (("lowercase", lowercase), ("strip_punctuation", strip_punctuation)):
            if not isinstance(v, bool):
                raise TypeError(f"Normalizer: {name} must be a bool, got {type(v).__name__}")
        if stopwords is None:
            words: list[str] = []
        elif isinstance(stopwords, str):
            if stopwords != "english":
                raise ValueError(
                    f"Normalizer: stopwords must be None, 'english' or an iterable of str, got {stopwords!r}"
                )
            words = sorted(ENGLISH_STOPWORDS)
        else:
            words = list(stopwords)
            bad = [w for w in words if not isinstance(w, str)]
            if bad:
                raise TypeError(f"Normalizer: stopwords must be strings, got {type(bad[0]).__name__}")
        self.lowercase = lowercase
        self.strip_punctuation = strip_punctuation
        self._stop_arg = None if stopwords is None else ("english" if isinstance(stopwords, str) else "custom")
        self._core = _core.NormalizerCore(lowercase, strip_punctuation, words)
        self._subword: Any = None  # _core.SubwordCore, for from_tokenizer
        self._tokenizer_path: str | None = None

    @classmethod
    def from_tokenizer(cls, path: PathLike) -> Normalizer:
        """Subword tokens of a HuggingFace ``tokenizer.json`` (no special tokens added).

        The file is loaded by the Rust ``tokenizers`` crate inside memscore's extension (no
        Python package needed); corpora with this normalizer are tokenized document by
        document inside the parallel counting pass, and queries are n-grams of its tokens.
        """
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"Normalizer.from_tokenizer: no tokenizer file at {p}")
        self = cls(lowercase=False, strip_punctuation=False)
        try:
            self._subword = _core.SubwordCore(str(p))
        except ValueError as exc:
            raise ValueError(f"Normalizer.from_tokenizer: {exc}") from exc
        self._tokenizer_path = str(p.resolve())
        return self

    @property
    def is_subword(self) -> bool:
        """True for a tokenizer.json normalizer."""
        return self._subword is not None

    @property
    def stopwords(self) -> frozenset[str]:
        """The (normalized) stopwords removed from the token stream."""
        return frozenset(self._core.stopwords())

    def __call__(self, text: str) -> list[str]:
        """Normalized tokens of ``text``, in order."""
        if not isinstance(text, str):
            raise TypeError(f"Normalizer: expected a str, got {type(text).__name__}")
        if self._subword is not None:
            return self._subword.tokens(text)
        return self._core.normalize(text)

    def batch(self, texts: Sequence[str]) -> list[list[str]]:
        """Normalized tokens of each text (in parallel, GIL released)."""
        texts = list(texts)
        bad = [t for t in texts if not isinstance(t, str)]
        if bad:
            raise TypeError(f"Normalizer.batch: expected strings, got {type(bad[0]).__name__}")
        if self._subword is not None:
            return self._subword.batch_tokens(texts)
        return self._core.batch(texts)

    def describe(self) -> dict[str, Any]:
        """The settings, as plain data (part of the key of a partial result)."""
        if self._subword is not None:
            with open(self._tokenizer_path or "", "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            return {"tokenizer_sha256": digest}
        return {
            "lowercase": self.lowercase,
            "strip_punctuation": self.strip_punctuation,
            "stopwords": sorted(self.stopwords),
        }

    def __repr__(self) -> str:
        if self._subword is not None:
            return f"Normalizer.from_tokenizer({self._tokenizer_path!r})"
        stop = (
            "None"
            if self._stop_arg is None
            else ("'english'" if self._stop_arg == "english" else f"<{len(self.stopwords)} words>")
        )
        return f"Normalizer(lowercase={self.lowercase}, strip_punctuation={self.strip_punctuation}, stopwords={stop})"
