"""The one progress display of memscore's long work: units done, the rate, the ETA, and the
tasks that lost their worker and were retried.

Every long job draws it: the executors (:meth:`memscore.executors.Executor.map`, so local,
threaded and Ray runs show the same bar), the training driver (fractions of a run while an
ensemble trains) and the n-gram counts (bytes read). Where it draws depends on stderr:

- a terminal: a tqdm bar that redraws in place (tqdm comes with the ``train`` extra);
- anything else (a file, a pipe, ``nohup``, a cluster's log) or no tqdm: one plain line
  every :data:`LINE_SECONDS` seconds or every :data:`LINE_STEP` of the total, whichever
  comes first, and one when the work ends, each with the rate and the ETA. A log never
  receives carriage returns.

Nothing is shown when ``enabled`` is False or there is nothing to do.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, TextIO

__all__ = ["LINE_SECONDS", "LINE_STEP", "ProgressBar"]

#: Seconds between two progress lines in a log (at most; a :data:`LINE_STEP` comes sooner).
LINE_SECONDS = 30.0
#: Fraction of the total between two progress lines in a log.
LINE_STEP = 0.1


def _now() -> float:
    """The clock of the display (a function, so tests can replace it)."""
    return time.monotonic()


class ProgressBar:
    """Progress over ``total`` units of ``unit`` (tasks, runs, shards, targets, bytes...).

    Safe to advance from several threads (the thread executor's tasks, the driver's
    ensembles).

    Parameters
    ----------
    total : float
        Units of the whole job; 0 shows nothing.
    unit : str
        What a unit is, for the rate ("runs/min").
    desc : str
        The label.
    enabled : bool
        False: nothing is shown (every method is a no-op).
    stream : text stream, optional
        Where to draw (default: ``sys.stderr`` at construction).
    unit_scale : bool, default False
        Show counts with k / M / G prefixes (bytes).
    """

    def __init__(
        self,
        total: float,
        unit: str,
        desc: str,
        enabled: bool,
        *,
        stream: TextIO | None = None,
        unit_scale: bool = False,
    ) -> None:
        """See the class docstring."""
        self.bar: Any = None
        self.lines = False
        self.total = float(total)
        self.unit, self.desc, self.unit_scale = unit, desc, unit_scale
        self.done = 0.0
        self.failed = self.retried = 0
        self.t0 = self.last_time = _now()
        self.last_done = 0.0
        self.lock = threading.Lock()
        self.stream: TextIO = stream if stream is not None else sys.stderr
        if not enabled or not total:
            return
        if _is_terminal(self.stream):
            try:
                from tqdm.auto import tqdm
            except ImportError:  # lines instead: progress is a nicety, not a dependency
                self.lines = True
            else:
                self.bar = tqdm(
                    total=_whole(total), unit=unit, desc=desc, dynamic_ncols=True, unit_scale=unit_scale,
                    file=self.stream,
                )  # fmt: skip
        else:
            self.lines = True

    @property
    def active(self) -> bool:
        """Whether anything is drawn."""
        return self.bar is not None or self.lines

    def update(self, done: float, failed: int = 0, retried: int = 0) -> None:
        """Add ``done`` units; ``failed`` / ``retried`` are the running counts of tasks whose
        worker died and of their restarts."""
        with self.lock:
            self._advance(self.done + done, failed, retried)

    def set(self, done: float) -> None:
        """Set the units done so far to ``done`` (a counter polled from elsewhere)."""
        with self.lock:
            self._advance(done, self.failed, self.retried)

    def close(self) -> None:
        """End the display (safe to call twice): a tqdm bar closes, a log gets its last line."""
        with self.lock:
            if self.bar is not None:
                self.bar.close()
                self.bar = None
            elif self.lines:
                if self.done != self.last_done or self.done == 0:
                    self._line(_now(), end=True)
                self.lines = False

    # -- internals, under the lock

    def _advance(self, done: float, failed: int, retried: int) -> None:
        done = min(max(done, self.done), self.total)
        step, self.done = done - self.done, done
        self.failed, self.retried = failed, retried
        if self.bar is not None:
            self.bar.update(_whole(step) if not self.unit_scale else step)
            post = f"{self._rate(_now()):.1f} {self.unit}/min"
            if failed or retried:
                post += f", failed {failed}, retried {retried}"
            self.bar.set_postfix_str(post)
        elif self.lines:
            now = _now()
            crossed = int(done / self.total / LINE_STEP + 1e-9) > int(self.last_done / self.total / LINE_STEP + 1e-9)
            if crossed or now - self.last_time >= LINE_SECONDS:
                self._line(now, end=False)

    def _rate(self, now: float) -> float:
        """Units per minute since the start."""
        return self.done / max(now - self.t0, 1e-9) * 60

    def _line(self, now: float, *, end: bool) -> None:
        elapsed = now - self.t0
        rate = self._rate(now)
        parts = [
            f"{self.desc}: {self._count(self.done)}/{self._count(self.total)} {self.unit} "
            f"({100 * self.done / self.total:.0f}%)",
            f"{self._count(rate) if self.unit_scale else f'{rate:.1f}'} {self.unit}/min",
            f"elapsed {_duration(elapsed)}",
        ]
        if not end:
            left = (self.total - self.done) / (rate / 60) if rate > 0 else float("inf")
            parts.append(f"ETA {_duration(left)}")
        if self.failed or self.retried:
            parts.append(f"failed {self.failed}, retried {self.retried}")
        try:
            self.stream.write(", ".join(parts) + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # a closed log: the work goes on without it
            self.lines = False
        self.last_time, self.last_done = now, self.done

    def _count(self, x: float) -> str:
        if self.unit_scale:
            for prefix in ("", "k", "M", "G", "T"):
                if abs(x) < 1000 or prefix == "T":
                    return f"{x:.3g}{prefix}" if prefix else f"{x:.0f}"
                x /= 1000
        w = _whole(round(x, 9))  # 3.9999999 runs from fractions of ensembles reads 4
        return str(w) if isinstance(w, int) else f"{x:.1f}"


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, OSError, ValueError):
        return False


def _duration(seconds: float) -> str:
    """``1h02m``, ``3m05s`` or ``12s``; ``?`` when unknown."""
    if seconds != seconds or seconds == float("inf"):
        return "?"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def _whole(x: float) -> float | int:
    """Whole numbers as ints, so that the bar reads 40/40, not 40.0/40.0."""
    return int(x) if float(x).is_integer() else x
