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
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["PAPER_TASKS", "Task", "load_task"]

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
        return str(pair[src]), str(pair[tgt])

    return fmt


def _wmt_prompt(option: str) -> str:
    src, _, tgt = (option or "de-en").partition("-")
    s, t = _LANG.get(src, src), _LANG.get(tgt, tgt)
    return f"Translate {s} to {t}:\n{s}: {{input}}\n{t}: "


def _triviaqa(row: dict[str, Any]) -> tuple[str, str]:
    answer = row["answer"]
    value = answer["value"] if isinstance(answer, dict) else answer
    return str(row["question"]), str(value)


def _mmlu(row: dict[str, Any]) -> tuple[str, str]:
    choices = list(row["choices"])
    lines = "".join(f"\n{_LETTERS[i]}. {c}" for i, c in enumerate(choices))
    return f"{row['question']}{lines}", str(choices[int(row["answer"])])


def _gsm8k(row: dict[str, Any]) -> tuple[str, str]:
    return str(row["question"]), str(row["answer"])


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


def _rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a local jsonl / json / Parquet file or a save_to_disk folder."""
    if path.is_dir():
        ds = _datasets().load_from_disk(str(path))
        if hasattr(ds, "keys"):  # a DatasetDict: the evaluation split
            splits = list(ds.keys())
            split = next((s for s in ("test", "validation") if s in splits), splits[0] if splits else None)
            if split is None:
                raise ValueError(f"task {path}: the saved dataset has no split")
            ds = ds[split]
        return [dict(r) for r in ds]
    import polars as pl

    name = path.name.lower()
    if name.endswith(".parquet"):
        df = pl.read_parquet(path)
    elif name.endswith((".jsonl", ".ndjson")):
        df = pl.read_ndjson(path)
    elif name.endswith(".json"):
        df = pl.read_json(path)
    else:
        raise ValueError(f"task {path}: expected a .jsonl, .json or .parquet file or a save_to_disk folder")
    return df.to_dicts()


def _from_rows(
    rows: list[dict[str, Any]], fmt: Callable[[dict[str, Any]], tuple[str, str]] | None, where: str
) -> list[tuple[str, str]]:
    if fmt is None:
        cols = sorted(rows[0]) if rows else []
        if rows and not {"input", "output"} <= set(cols):
            raise ValueError(f"task {where}: expected columns 'input' and 'output', got {cols}")
        return [(str(r["input"]), str(r["output"])) for r in rows]
    try:
        return [fmt(r) for r in rows]
    except (KeyError, TypeError, IndexError) as exc:
        cols = sorted(rows[0]) if rows else []
        raise ValueError(f"task {where}: rows lack the fields the format needs ({exc!r}); columns are {cols}") from exc


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
    ValueError
        A table without ``input`` / ``output`` (or without the fields its format needs),
        an empty task, an unknown name, or a hub dataset that cannot be fetched (the
        message says to pass a local copy).
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
        raise ValueError(f"task {text!r}: no examples")
    return Task(name=label, examples=examples, source=text, prompt=prompt)
