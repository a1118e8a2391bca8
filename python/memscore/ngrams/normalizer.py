"""The normalizer: how text becomes the words n-grams are made of (lowercase, punctuation,
stopwords), or subword tokens through a HuggingFace ``tokenizer.json``."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .. import _core
from ._paths import PathLike

#: The English stopword list shipped with memscore (normalized form: lowercase, no
#: apostrophes). Written for memscore, Apache-2.0; see ``stopwords_en.txt`` in the core crate.
ENGLISH_STOPWORDS: frozenset[str] = frozenset(_core.english_stopword_list())


def _unknown_token_id(tokenizer_json: bytes) -> int | None:
    """Id of the tokenizer's unknown token (``[UNK]``, ``<unk>``), or None if it has none.

    Read from the ``model`` section of ``tokenizer.json``: ``unk_id`` (Unigram) or
    ``unk_token`` looked up in the model's vocabulary, then in ``added_tokens``.
    """
    try:
        doc = json.loads(tokenizer_json)
    except (ValueError, UnicodeDecodeError):
        return None
    model = doc.get("model") if isinstance(doc, dict) else None
    if not isinstance(model, dict):
        return None
    unk_id = model.get("unk_id")
    if isinstance(unk_id, int) and not isinstance(unk_id, bool):
        return unk_id
    unk = model.get("unk_token")
    if not isinstance(unk, str):
        return None
    vocab = model.get("vocab")
    if isinstance(vocab, dict) and isinstance(vocab.get(unk), int):
        return int(vocab[unk])
    for added in doc.get("added_tokens") or []:
        if isinstance(added, dict) and added.get("content") == unk and isinstance(added.get("id"), int):
            return int(added["id"])
    return None


def _rebuild(state: dict[str, Any]) -> Normalizer:
    """Unpickle a :class:`Normalizer` from the state :meth:`Normalizer.__reduce__` saved."""
    if state["kind"] == "words":
        return Normalizer(state["lowercase"], state["strip_punctuation"], state["stopwords"])
    data: bytes = state["tokenizer_json"]
    path: str | None = state["path"]
    digest = hashlib.sha256(data).hexdigest()
    if path is not None and os.path.isfile(path):
        with open(path, "rb") as f:
            if hashlib.sha256(f.read()).hexdigest() == digest:
                return Normalizer.from_tokenizer(path)
    # another machine, or the file changed: load the pickled contents
    fd, tmp = tempfile.mkstemp(suffix=".tokenizer.json")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        norm = Normalizer.from_tokenizer(tmp)
    finally:
        os.unlink(tmp)
    norm._tokenizer_path = path
    return norm


class Normalizer:
    """Text -> tokens, identical for corpus text and query text.

    Word mode (default), in this order: split on whitespace (the characters Python's
    ``str.split()`` splits on); with ``strip_punctuation`` delete every character whose
    Unicode general category is punctuation (P*) or symbol (S*) — deleted, not replaced by a
    space, so ``"don't" -> "dont"``, ``"well-known" -> "wellknown"``, ``"$5" -> "5"``; with
    ``lowercase`` apply Unicode lowercase (``str.lower()``); drop empty words; drop
    stopwords.

    Subword mode (:meth:`from_tokenizer`): the tokens of a HuggingFace ``tokenizer.json``.

    Normalizers pickle (for Ray, multiprocessing, joblib): they are rebuilt from their
    settings; a subword normalizer carries the contents of its ``tokenizer.json``.

    Parameters
    ----------
    lowercase : bool, default True
        Apply Unicode lowercase.
    strip_punctuation : bool, default True
        Delete punctuation and symbol characters.
    stopwords : None, "english" or iterable of str, default None
        Words to drop: none, :data:`ENGLISH_STOPWORDS`, or your own words (normalized the
        same way).

    Raises
    ------
    TypeError
        A flag is not a bool, or a stopword is not a str.
    ValueError
        ``stopwords`` is a str other than ``"english"``.
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
        stop_arg: None | str | list[str]
        if stopwords is None:
            words: list[str] = []
            stop_arg = None
        elif isinstance(stopwords, str):
            if stopwords != "english":
                raise ValueError(
                    f"Normalizer: stopwords must be None, 'english' or an iterable of str, got {stopwords!r}"
                )
            words = sorted(ENGLISH_STOPWORDS)
            stop_arg = "english"
        else:
            words = list(stopwords)
            bad = [w for w in words if not isinstance(w, str)]
            if bad:
                raise TypeError(f"Normalizer: stopwords must be strings, got {type(bad[0]).__name__}")
            stop_arg = list(words)
        self.lowercase = lowercase
        self.strip_punctuation = strip_punctuation
        self._stop_arg = stop_arg
        self._core = _core.NormalizerCore(lowercase, strip_punctuation, words)
        self._subword: _core.SubwordCore | None = None
        self._tokenizer_path: str | None = None
        self._tokenizer_json: bytes | None = None
        self._tokenizer_sha256: str | None = None
        self._unk_id: int | None = None

    @classmethod
    def from_tokenizer(cls, path: PathLike) -> Normalizer:
        """Subword tokens of a HuggingFace ``tokenizer.json`` (no special tokens added).

        The file is loaded by the Rust ``tokenizers`` crate inside memscore's extension (no
        Python package needed); corpora with this normalizer are tokenized document by
        document inside the parallel counting pass, and queries are n-grams of its tokens.
        A query containing a word the tokenizer maps to its unknown token (``[UNK]``) would
        match every unknown word of the corpus: such queries count 0, with a warning (see
        :class:`memscore.ngrams.QuerySet`).

        Parameters
        ----------
        path : str or os.PathLike
            The ``tokenizer.json`` file.

        Returns
        -------
        Normalizer
            A subword normalizer.

        Raises
        ------
        FileNotFoundError
            No file at ``path``.
        ValueError
            The file is not a tokenizer the ``tokenizers`` crate can load.
        """
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"Normalizer.from_tokenizer: no tokenizer file at {p}")
        self = cls(lowercase=False, strip_punctuation=False)
        try:
            self._subword = _core.SubwordCore(str(p))
        except ValueError as exc:
            raise ValueError(f"Normalizer.from_tokenizer: {exc}") from exc
        data = p.read_bytes()
        self._tokenizer_path = str(p.resolve())
        self._tokenizer_json = data
        self._tokenizer_sha256 = hashlib.sha256(data).hexdigest()
        self._unk_id = _unknown_token_id(data)
        return self

    @property
    def is_subword(self) -> bool:
        """True for a tokenizer.json normalizer."""
        return self._subword is not None

    @property
    def unknown_token_id(self) -> int | None:
        """Id of the tokenizer's unknown token (subword mode), or None."""
        return self._unk_id

    @property
    def stopwords(self) -> frozenset[str]:
        """The (normalized) stopwords removed from the token stream."""
        return frozenset(self._core.stopwords())

    def __call__(self, text: str) -> list[str]:
        """Normalized tokens of ``text``, in order.

        Parameters
        ----------
        text : str
            The text.

        Returns
        -------
        list of str
            Its tokens.

        Raises
        ------
        TypeError
            ``text`` is not a str.
        """
        if not isinstance(text, str):
            raise TypeError(f"Normalizer: expected a str, got {type(text).__name__}")
        if self._subword is not None:
            return self._subword.tokens(text)
        return self._core.normalize(text)

    def batch(self, texts: Sequence[str]) -> list[list[str]]:
        """Normalized tokens of each text (in parallel, GIL released).

        Parameters
        ----------
        texts : sequence of str
            The texts.

        Returns
        -------
        list of list of str
            The tokens of each text.

        Raises
        ------
        TypeError
            An item is not a str.
        """
        texts = list(texts)
        bad = [t for t in texts if not isinstance(t, str)]
        if bad:
            raise TypeError(f"Normalizer.batch: expected strings, got {type(bad[0]).__name__}")
        if self._subword is not None:
            return self._subword.batch_tokens(texts)
        return self._core.batch(texts)

    def describe(self) -> dict[str, Any]:
        """The settings, as plain data (part of the key of a partial result).

        Returns
        -------
        dict
            ``{"tokenizer_sha256": ...}`` in subword mode, else the word-mode flags and the
            sorted stopwords.
        """
        if self._subword is not None:
            return {"tokenizer_sha256": self._tokenizer_sha256}
        return {
            "lowercase": self.lowercase,
            "strip_punctuation": self.strip_punctuation,
            "stopwords": sorted(self.stopwords),
        }

    def __reduce__(self) -> tuple[Any, tuple[dict[str, Any]]]:
        """Pickle as the constructor arguments (the Rust core objects do not pickle)."""
        if self._subword is not None:
            state: dict[str, Any] = {
                "kind": "subword",
                "tokenizer_json": self._tokenizer_json,
                "path": self._tokenizer_path,
            }
        else:
            state = {
                "kind": "words",
                "lowercase": self.lowercase,
                "strip_punctuation": self.strip_punctuation,
                "stopwords": self._stop_arg,
            }
        return (_rebuild, (state,))

    def __repr__(self) -> str:
        if self._subword is not None:
            return f"Normalizer.from_tokenizer({self._tokenizer_path!r})"
        stop = (
            "None"
            if self._stop_arg is None
            else ("'english'" if self._stop_arg == "english" else f"<{len(self.stopwords)} words>")
        )
        return f"Normalizer(lowercase={self.lowercase}, strip_punctuation={self.strip_punctuation}, stopwords={stop})"
