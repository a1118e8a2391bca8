"""Task datasets for the task-gram study: local tables of (input, output) examples, and the
paper's tasks (Wang et al. 2024: translation, factual QA, world knowledge, math) through
HuggingFace ``datasets`` with a fixed prompt format.

A task spec is one of:

- a local file or folder with ``input`` and ``output`` columns: ``.jsonl`` / ``.json`` /
  ``.parquet`` (read with polars), or a folder written by ``datasets``' ``save_to_disk``
  (a ``DatasetDict`` gives its ``test`` split, else ``validation``, else its first);
- a paper task name, loaded from the HuggingFace hub: ``wmt`` (``wmt:de-en``: WMT14 pair,
  the first language the input), ``triviaqa``, ``mmlu`` (``mmlu:anatomy`` for one subject),
  ``gsm8k``;
- ``NAME=PATH``: a paper task's prompt format applied to a local copy of its dataset
  (``save_to_disk`` folder, jsonl or Parquet with the hub dataset's own columns), which is
  what a machine without a network uses.

Each task keeps its examples raw (the question, the source sentence, the answer) and a
prompt template; the task-gram pairs are extracted from the raw input and output, and the LM
scores the output after ``prompt.format(input=...)`` (memscore's formats; the released code
of the paper builds its prompts in several places and versions, see docs/taskgram.md):

===========  =========================================================  =========================
task         input (raw)                                                prompt
===========  =========================================================  =========================
wmt          the source sentence                                        ``"Translate {S} to {T}:\n{S}: {input}\n{T}: "``
triviaqa     the question                                               ``"Question: {input}\nAnswer: "``
mmlu         the question and its lettered choices (``"\nA. ..."``)     ``"{input}\nAnswer: "``
gsm8k        the question                                               ``"Question: {input}\nAnswer: "``
local table  the ``input`` column                                       ``"{input}\n"``
===========  =========================================================  =========================

Outputs: the target sentence, TriviaQA's ``answer.value``, the correct choice's text, GSM8K's
full worked answer, or the ``output`` column.

Every input and output must be a string: a null, missing or non-string value (a number, a
list...) is a :class:`TaskFileError` naming the file and the line (jsonl) or row (other
formats), never turned into ``'None'`` or a Python repr. A file polars cannot read (empty,
malformed, truncated) is a :class:`TaskFileError` naming the file too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import MemscoreError

__all__ = ["PAPER_TASKS", "Task", "TaskFileError", "load_task"]


class TaskFileError(MemscoreError, ValueError):
    """A task file (or dataset) that cannot be read, lacks its columns, or holds a value that
    is not a string where the task needs text; the message names the file and the line or row
    (a :class:`~memscore.MemscoreError`, also a ``ValueError``)."""


class _NotText(Exception):
    """A field that is not a string (raised by the row formatters, located by :func:`_from_rows`)."""


def _text(v: Any, field: str) -> str:
    """``v``, the value of ``field``, which must be a string."""
    if isinstance(v, str):
        return v
    if v is None:
        raise _NotText(f"{field!r} is null or missing, expected a string")
    raise _NotText(f"{field!r}: expected a string, got {type(v).__name__} {v!r:.60}")


_LANG = {
    "en": "English",
    "de": "German",
    "fr": "French",
    "cs": "Czech",
    "ru": "Russian",
    "hi": "Hindi",
    "es": "Spanish",
}
_LETTERS = "ABCDEFGHIJ"


@dataclass
class Task:
    """A named list of raw (input, output) examples and the prompt the LM reads them with
    (``prompt.format(input=...)`` precedes the output)."""

    name: str
    examples: list[tuple[str, str]]
    source: str
    prompt: str = "{input}\n"


def _wmt(option: str) -> Callable[[dict[str, Any]], tuple[str, str]]:
    src, _, tgt = (option or "de-en").partition("-")
    if not tgt:
        raise ValueError(f"task wmt:{option}: expected a language pair such as 'de-en'")

    def fmt(row: dict[str, Any]) -> tuple[str, str]:
        pair = row.get("translation", row)
        return _text(pair.get(src), src), _text(pair.get(tgt), tgt)

    return fmt


def _wmt_prompt(option: str) -> str:
    src, _, tgt = (option or "de-en").partition("-")
    s, t = _LANG.get(src, src), _LANG.get(tgt, tgt)
    return f"Translate {s} to {t}:\n{s}: {{input}}\n{t}: "


def _triviaqa(row: dict[str, Any]) -> tuple[str, str]:
    answer = row["answer"]
    value = answer["value"] if isinstance(answer, dict) else answer
    return _text(row.get("question"), "question"), _text(value, "answer")


def _mmlu(row: dict[str, Any]) -> tuple[str, str]:
    choices = [_text(c, "choices") for c in row["choices"]]
    lines = "".join(f"\n{_LETTERS[i]}. {c}" for i, c in enumerate(choices))
    return f"{_text(row.get('question'), 'question')}{lines}", choices[int(row["answer"])]


def _gsm8k(row: dict[str, Any]) -> tuple[str, str]:
    return _text(row.get("question"), "question"), _text(row.get("answer"), "answer")


_QA = "Question: {input}\nAnswer: "

#: name -> (hub dataset id, config from the option, split, row formatter from the option,
#: prompt from the option)
PAPER_TASKS: dict[str, tuple[str, Callable[[str], str], str, Callable[[str], Any], Callable[[str], str]]] = {
    "wmt": ("wmt/wmt14", lambda o: o or "de-en", "test", _wmt, _wmt_prompt),
    "triviaqa": ("mandarjoshi/trivia_qa", lambda o: "rc.nocontext", "validation", lambda o: _triviaqa, lambda o: _QA),
    "mmlu": ("cais/mmlu", lambda o: o or "all", "test", lambda o: _mmlu, lambda o: "{input}\nAnswer: "),
    "gsm8k": ("openai/gsm8k", lambda o: "main", "test", lambda o: _gsm8k, lambda o: _QA),
}


def _datasets() -> Any:
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("task datasets need the datasets package: pip install 'memscore[lm]'") from exc
    return datasets


def _jsonl_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a jsonl file, read line by line so that an error names its line (blank lines skipped)."""
    rows: list[dict[str, Any]] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise TaskFileError(f"task {path}: not UTF-8 text ({exc})") from exc
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TaskFileError(f"task {path}: line {i} is not valid JSON ({exc.msg}, column {exc.colno})") from exc
        if not isinstance(row, dict):
            raise TaskFileError(f"task {path}: line {i}: expected a JSON object, got {type(row).__name__}")
        row["__line__"] = i
        rows.append(row)
    return rows


def _rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a local jsonl / json / Parquet file or a save_to_disk folder (jsonl rows carry
    their line number in ``"__line__"``)."""
    if path.is_dir():
        ds = _datasets().load_from_disk(str(path))
        if hasattr(ds, "keys"):  # a DatasetDict: the evaluation split
            splits = list(ds.keys())
            split = next((s for s in ("test", "validation") if s in splits), splits[0] if splits else None)
            if split is None:
                raise TaskFileError(f"task {path}: the saved dataset has no split")
            ds = ds[split]
        return [dict(r) for r in ds]
    import polars as pl

    name = path.name.lower()
    if name.endswith((".jsonl", ".ndjson")):
        return _jsonl_rows(path)
    if not name.endswith((".parquet", ".json")):
        raise TaskFileError(f"task {path}: expected a .jsonl, .json or .parquet file or a save_to_disk folder")
    try:
        df = pl.read_parquet(path) if name.endswith(".parquet") else pl.read_json(path)
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise TaskFileError(
            f"task {path}: cannot read the file (empty, malformed or truncated?): {type(exc).__name__}: {first}"
        ) from exc
    return df.to_dicts()


def _from_rows(
    rows: list[dict[str, Any]], fmt: Callable[[dict[str, Any]], tuple[str, str]] | None, where: str
) -> list[tuple[str, str]]:
    """The (input, output) examples of ``rows``: a non-string value is an error naming the line or row."""
    if fmt is None:
        cols = sorted({c for r in rows for c in r} - {"__line__"})
        if rows and not {"input", "output"} <= set(cols):
            raise TaskFileError(f"task {where}: expected columns 'input' and 'output', got {cols}")
        fmt = _table
    out = []
    for i, r in enumerate(rows):
        try:
            out.append(fmt(r))
        except _NotText as exc:
            at = f"line {r['__line__']}" if "__line__" in r else f"row {i} (from 0)"
            raise TaskFileError(f"task {where}: {at}: {exc}") from None
        except (KeyError, TypeError, IndexError) as exc:
            cols = sorted(set(rows[0]) - {"__line__"})
            raise TaskFileError(
                f"task {where}: rows lack the fields the format needs ({exc!r}); columns are {cols}"
            ) from exc
    return out


def _table(row: dict[str, Any]) -> tuple[str, str]:
    return _text(row.get("input"), "input"), _text(row.get("output"), "output")


def load_task(spec: str | os.PathLike[str], *, name: str | None = None) -> Task:
    """Load one task from a spec (see the module docstring).

    Parameters
    ----------
    spec : str or path
        A local file or folder, a paper task name (``"triviaqa"``, ``"wmt:de-en"``), or
        ``"NAME=PATH"``.
    name : str, optional
        The task's name in the results (default: the file stem or the spec).

    Returns
    -------
    Task

    Raises
    ------
    TaskFileError
        A file that cannot be read (empty, malformed, truncated), a table without ``input``
        / ``output`` (or without the fields its format needs), a null, missing or
        non-string input or output (the message names the line or row), or a task without
        examples (a ``ValueError`` too).
    ValueError
        An unknown name, or a hub dataset that cannot be fetched (the message says to pass
        a local copy).
    FileNotFoundError
        A local path that does not exist.
    """
    text = os.fspath(spec)
    fmt_name, _, local = text.partition("=") if "=" in text else ("", "", text)
    key, _, option = (fmt_name or text).partition(":")
    if fmt_name:
        if key not in PAPER_TASKS:
            raise ValueError(f"task {text!r}: expected NAME=PATH with NAME in {sorted(PAPER_TASKS)}")
        path = Path(local).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"task {text!r}: no such file or folder {path}")
        rows = _rows(path)
        examples = _from_rows(rows, PAPER_TASKS[key][3](option), text)
        prompt = PAPER_TASKS[key][4](option)
        label = name or (fmt_name.replace(":", "-"))
    elif key in PAPER_TASKS and not Path(text).exists():
        hub_id, config_of, split, fmt_of, prompt_of = PAPER_TASKS[key]
        try:
            ds = _datasets().load_dataset(hub_id, config_of(option), split=split)
        except Exception as exc:  # noqa: BLE001 - any hub failure gets the same advice
            raise ValueError(
                f"task {text!r}: cannot load {hub_id} ({config_of(option)}, {split}) from the HuggingFace hub "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). Pass a local copy "
                f"instead: {key}=PATH with a folder written by dataset.save_to_disk(PATH) on a machine with a "
                "network, or a jsonl / Parquet file with input and output columns"
            ) from exc
        examples = _from_rows([dict(r) for r in ds], fmt_of(option), text)
        prompt = prompt_of(option)
        label = name or text.replace(":", "-")
    else:
        path = Path(text).expanduser()
        if not path.exists():
            raise FileNotFoundError(
                f"task {text!r}: no such file or folder (paper tasks: {', '.join(sorted(PAPER_TASKS))})"
            )
        examples = _from_rows(_rows(path), None, text)
        prompt = "{input}\n"
        label = name or path.name.split(".")[0]
    if not examples:
        raise TaskFileError(f"task {text!r}: no examples (an empty file or dataset)")
    return Task(name=label, examples=examples, source=text, prompt=prompt)
