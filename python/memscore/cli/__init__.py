"""The ``memscore`` command line: one typer app that mounts each engine's command group.

- :mod:`memscore.cli.runs`: ``memscore train | score | report | datamodels | demo`` (the runs engine);
- :mod:`memscore.cli.plan`: ``memscore plan`` (the runs each score needs);
- :mod:`memscore.cli.distill`: ``memscore distill-effect`` (what distillation did to each example);
- :mod:`memscore.cli.store`: ``memscore store verify | clean | merge`` (run stores);
- :mod:`memscore.cli.ngrams`: ``memscore ngrams count | clean`` (the corpus n-gram engine);
- :mod:`memscore.cli.taskgram`: ``memscore taskgram`` (the task-gram study);
- :mod:`memscore.cli.lm`: ``memscore lm memorization`` (extractable memorization vs duplication),
  ``memscore lm membership`` (membership scores per sequence).

Needs the ``cli`` extra (typer, rich); training needs ``train`` (torch), reports ``plot``
(matplotlib): ``pip install 'memscore[all]'`` installs everything.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import typer

__all__ = ["app", "main"]


def _build_app() -> typer.Typer:
    import typer

    from . import distill, lm, ngrams, plan, runs, store, taskgram

    app = typer.Typer(
        help="memscore: per-example memorization, influence and training-dynamics scores across many training runs.",
        no_args_is_help=True,
        add_completion=False,
    )
    app.add_typer(runs.app)  # train, score, report, datamodels, demo at the top level
    app.add_typer(plan.app)  # plan: the runs a target needs
    app.add_typer(distill.app)  # distill-effect: distillation's effect per example
    app.add_typer(store.app, name="store", help="Check, clean and merge run stores.")
    app.add_typer(
        ngrams.app, name="ngrams", help="Count n-grams, document frequencies and co-occurrences over corpus shards."
    )
    app.add_typer(
        taskgram.app,
        name="taskgram",
        help="Task-gram LM vs trained LMs: distributional memorization and generalization.",
    )
    app.add_typer(lm.app, name="lm", help="Causal LMs: extractable memorization, membership scores.")
    return app


try:
    import typer as _typer  # noqa: F401
except ImportError:  # pragma: no cover - the cli extra is missing; main() says so
    app: typer.Typer | None = None
else:
    app = _build_app()


def _os_error_line(exc: OSError) -> str:
    """One line for an environment problem: what went wrong, where, and what to do."""
    where = f"{exc.filename}: " if exc.filename else ""
    what = exc.strerror or str(exc)
    hints = {
        errno.ENOSPC: "free some disk space or write somewhere else",
        errno.EDQUOT: "free some disk space or write somewhere else",
        errno.EACCES: "choose a location you can write to, or fix its permissions",
        errno.EPERM: "choose a location you can write to, or fix its permissions",
        errno.EROFS: "the file system is read-only; write somewhere else",
        errno.ENOTDIR: "give a directory path, not a file",
        errno.EEXIST: "give a directory path, not a file",
        errno.EISDIR: "give a file path, not a directory",
        errno.ENOENT: "check the path",
    }
    hint = hints.get(exc.errno or -1, "check the path and try again")
    return f"{where}{what} ({hint})"


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app, turning errors into one line and an exit code.

    A user error (a bad option, a missing or damaged store), an environment problem (a path
    that is a file, not writable, a full disk) or a missing extra prints one line on stderr
    saying what went wrong and what to do, never a traceback, and exits with status 1
    (2 for a missing extra or a usage error, 130 on Ctrl-C). Set ``MEMSCORE_DEBUG=1`` to
    get the traceback instead.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Raises
    ------
    SystemExit
        Always, with the exit status.
    """
    if app is None:  # pragma: no cover - depends on the environment
        sys.stderr.write("memscore: error: the memscore command needs typer and rich: pip install 'memscore[cli]'\n")
        raise SystemExit(2)
    from ..errors import MemscoreError

    debug = os.environ.get("MEMSCORE_DEBUG", "") not in ("", "0")
    try:
        app(args=argv, prog_name="memscore")
    except SystemExit:
        raise
    except Exception as exc:
        if debug:
            raise
        if isinstance(exc, ImportError):
            line, code = f"{exc} (a missing extra: install it and run the command again)", 2
        elif isinstance(exc, OSError):
            line, code = _os_error_line(exc), 1
        elif isinstance(exc, (MemscoreError, ValueError, TypeError)):
            words = [a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")][:2]
            cmd = " ".join(words[:2] if words[:1] in (["ngrams"], ["lm"]) else words[:1]) or "COMMAND"
            line, code = f"{exc} (see 'memscore {cmd} --help')", 1
        elif isinstance(exc, MemoryError):
            line, code = "out of memory (use fewer runs, a smaller --ensemble, or a machine with more memory)", 1
        else:
            # Not a user error: a bug, or a failure below memscore (a CUDA error, say).
            line = f"unexpected {type(exc).__name__}: {exc} (run with MEMSCORE_DEBUG=1 for the traceback and report it)"
            code = 1
        sys.stderr.write(f"memscore: error: {line}\n")
        raise SystemExit(code) from None
    except KeyboardInterrupt:
        if debug:
            raise
        sys.stderr.write("memscore: interrupted (finished runs are kept; run the same command again to resume)\n")
        raise SystemExit(130) from None
