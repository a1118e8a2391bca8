"""The one ``--executor`` option of every long command, and how it becomes an executor.

Spelled the same everywhere: ``--executor local`` (default), ``threads``, ``threads:N``,
``ray`` (the running cluster, ``RAY_ADDRESS``, or a new local one), ``ray:auto``,
``ray:HOST:PORT`` or ``ray://HOST:PORT``; ``--cpus-per-task`` / ``--gpus-per-task`` set the
resources of one task wherever a command has them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import typer

from ..executors import Executor, as_executor

__all__ = ["EXECUTOR_HELP", "executor_option", "make_executor"]

EXECUTOR_HELP = (
    "Who runs the tasks: local (default), threads, threads:N, ray, ray:auto, ray:HOST:PORT or ray://HOST:PORT."
)


def executor_option() -> Any:
    """The ``--executor`` typer option (default ``local``)."""
    return typer.Option("local", "--executor", help=EXECUTOR_HELP)


def make_executor(spec: str, **settings: Any) -> Executor:
    """The executor ``spec`` names, with the given per-task ``settings`` (those left
    None keep their defaults).

    Raises
    ------
    TypeError
        ``spec`` is no executor (the message lists the choices).
    ValueError
        A setting out of range.
    """
    ex = as_executor(spec)
    given = {k: v for k, v in settings.items() if v is not None}
    fields = {f.name for f in dataclasses.fields(ex)}
    unknown = sorted(set(given) - fields)
    if unknown:
        raise TypeError(f"--executor {spec}: takes no {', '.join(unknown)}")
    return dataclasses.replace(ex, **given) if given else ex
