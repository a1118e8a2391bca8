"""The ``memscore`` command line: one typer app that mounts each engine's command group.

- :mod:`memscore.cli.runs`: ``memscore train | score | report | demo`` (the runs engine);
- :mod:`memscore.cli.ngrams`: ``memscore ngrams count | merge`` (the corpus n-gram engine);
- :mod:`memscore.cli.taskgram`: ``memscore taskgram`` (the task-gram study).

Needs the ``cli`` extra (typer, rich); training needs ``train`` (torch), reports ``plot``
(matplotlib): ``pip install 'memscore[all]'`` installs everything.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["app", "main"]


def _build_app() -> Any:
    import typer

    from . import ngrams, runs, taskgram

    app = typer.Typer(
        help="memscore: per-example memorization, influence and training-dynamics scores across many training runs.",
        no_args_is_help=True,
        add_completion=False,
    )
    app.add_typer(runs.app)  # train, score, report, demo at the top level
    app.add_typer(
        ngrams.app, name="ngrams", help="Count n-grams, document frequencies and co-occurrences over corpus shards."
    )
    app.add_typer(
        taskgram.app,
        name="taskgram",
        help="Task-gram LM vs trained LMs: distributional memorization and generalization.",
    )
    return app


try:
    import typer as _typer  # noqa: F401
except ImportError:  # pragma: no cover - the cli extra is missing; main() says so
    app = None
else:
    app = _build_app()


def main() -> None:
    """Console-script entry point."""
    if app is None:  # pragma: no cover - depends on the environment
        sys.stderr.write("the memscore command needs typer and rich: pip install 'memscore[cli]'\n")
        raise SystemExit(2)
    from ..errors import MemscoreError

    try:
        app()
    except (MemscoreError, ValueError, TypeError, ImportError, FileNotFoundError) as exc:
        # Bad input and missing extras are the user's to fix: a message, not a traceback.
        sys.stderr.write(f"memscore: error: {exc}\n")
        raise SystemExit(1) from None
