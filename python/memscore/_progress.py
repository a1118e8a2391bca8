"""The one progress bar of memscore's long work: units done, the rate per minute, the ETA,
and the tasks that lost their worker and were retried.

Every executor drives it (:meth:`memscore.executors.Executor.map`), so local, threaded and
Ray runs show the same bar. It uses tqdm when installed (the ``train`` extra) and is silent
otherwise; it is silent as well when ``enabled`` is False or there is nothing to do.
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["ProgressBar"]


class ProgressBar:
    """A bar over ``total`` units of ``unit`` (tasks, runs, shards, targets...).

    Parameters
    ----------
    total : float
        Units of the whole job; 0 shows nothing.
    unit : str
        What a unit is, for the rate ("runs/min").
    desc : str
        The bar's label.
    enabled : bool
        False: no bar (every method is a no-op).
    """

    def __init__(self, total: float, unit: str, desc: str, enabled: bool) -> None:
        """See the class docstring."""
        self.bar: Any = None
        self.t0 = time.perf_counter()
        self.unit = unit
        if enabled and total:
            try:
                from tqdm.auto import tqdm
            except ImportError:  # no bar without tqdm: progress is a nicety, not a dependency
                return
            self.bar = tqdm(total=_whole(total), unit=unit, desc=desc, dynamic_ncols=True)

    def update(self, done: float, failed: int = 0, retried: int = 0) -> None:
        """Add ``done`` units; ``failed`` / ``retried`` are the running counts of tasks whose
        worker died and of their restarts."""
        if self.bar is None:
            return
        self.bar.update(_whole(done))
        rate = self.bar.n / max(time.perf_counter() - self.t0, 1e-9) * 60
        post = f"{rate:.1f} {self.unit}/min"
        if failed or retried:
            post += f", failed {failed}, retried {retried}"
        self.bar.set_postfix_str(post)

    def close(self) -> None:
        """Close the bar (safe to call twice)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _whole(x: float) -> float | int:
    """Whole numbers as ints, so that the bar reads 40/40, not 40.0/40.0."""
    return int(x) if float(x).is_integer() else x
