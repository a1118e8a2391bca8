"""Token items read from a file for the commands that query a corpus index
(``memscore lm trace``, ``memscore ngrams contamination``).

A ``.jsonl`` file holds one JSON object per line with ``tokens`` (a list of token ids) or
``text`` (tokenized with ``--tokenizer``, a HuggingFace ``tokenizer.json``), and an
optional ``id``; a ``.json`` file holds a list of such objects or of token-id lists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..ngrams.normalizer import Normalizer

__all__ = ["TokenItems", "read_token_items"]

#: How byte-level BPE token strings show whitespace (GPT-2, Pythia): as themselves.
_VISIBLE = str.maketrans({"Ġ": " ", "Ċ": "\n", "ĉ": "\t"})


@dataclass
class TokenItems:
    """Items of a file: their ids, token ids, JSON lines as read, and token strings (when
    a tokenizer made the tokens)."""

    ids: list[str]
    tokens: list[list[int]]
    lines: list[str]
    strings: list[list[str]] | None


def read_token_items(path: Path, tokenizer: Path | None, option: str) -> TokenItems:
    """Read the items of ``path`` (see the module docstring).

    Raises
    ------
    ValueError
        A malformed file or item, or text items without ``--tokenizer``; the message names
        ``option``, the item and what was expected.
    """
    raw = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise ValueError(f"{option} {path}: invalid JSON ({exc})") from None
        if not isinstance(data, list):
            raise ValueError(f"{option} {path}: expected a JSON list of items, got {type(data).__name__}")
        objs: list[Any] = data
        lines = [json.dumps(x) for x in data]
    else:
        lines = [ln for ln in raw.splitlines() if ln.strip()]
        objs = []
        for k, ln in enumerate(lines, 1):
            try:
                objs.append(json.loads(ln))
            except ValueError as exc:
                raise ValueError(f"{option} {path}, item {k}: invalid JSON ({exc})") from None
    ids: list[str] = []
    tokens: list[list[int] | None] = []
    texts: dict[int, str] = {}
    for k, obj in enumerate(objs):
        if isinstance(obj, list):
            obj = {"tokens": obj}
        if not isinstance(obj, dict) or ("tokens" not in obj and "text" not in obj):
            raise ValueError(f"{option} {path}, item {k + 1}: expected an object with 'tokens' or 'text'")
        ids.append(str(obj.get("id", k)))
        if "tokens" in obj:
            toks = obj["tokens"]
            if not isinstance(toks, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in toks):
                raise ValueError(f"{option} {path}, item {k + 1}: 'tokens' must be a list of int token ids")
            tokens.append(toks)
        elif isinstance(obj["text"], str):
            texts[k] = obj["text"]
            tokens.append(None)
        else:
            raise ValueError(f"{option} {path}, item {k + 1}: 'text' must be a string")
    strings: list[list[str]] | None = None
    if texts:
        if tokenizer is None:
            raise ValueError(f"{option} {path}: items with 'text' need --tokenizer (a tokenizer.json)")
        sub = Normalizer.from_tokenizer(tokenizer)._subword
        assert sub is not None
        order = sorted(texts)
        flat, starts = sub.batch_ids([texts[k] for k in order])
        words = sub.batch_tokens([texts[k] for k in order])
        shown: dict[int, list[str]] = {}
        for j, k in enumerate(order):
            tokens[k] = flat[int(starts[j]) : int(starts[j + 1])].tolist()
            shown[k] = [w.translate(_VISIBLE) for w in words[j]]
        strings = [shown[k] if k in shown else [f"{t} " for t in (t_ or [])] for k, t_ in enumerate(tokens)]
    return TokenItems(ids, [t or [] for t in tokens], lines, strings)
