"""Runs written while the next ensemble trains: a background thread behind a bounded queue.

Storing an ensemble's runs (``RunStore.add_run``: compress, fsync, publish by hard link)
takes tens of milliseconds per run, time in which the device would idle. The training loop
hands each ensemble's write to :class:`RunWriter` and goes on; the writer publishes the runs
one by one, each atomically, as ``add_run`` always does. At most ``max_pending`` ensembles
wait (their outputs are held in memory); a full queue makes training wait rather than grow.

A crash of the process (``kill -9``) loses at most the runs still queued, never a published
one, and leaves no partial run under a run id: ``add_run`` writes temporary files and
publishes each run whole. The next call trains the missing runs.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

__all__ = ["RunWriter"]


class RunWriter:
    """Runs ``write()`` jobs in order on one background thread.

    Parameters
    ----------
    max_pending : int, default 2
        Jobs queued before :meth:`submit` blocks.
    """

    def __init__(self, max_pending: int = 2) -> None:
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue(maxsize=max_pending)
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                if self._error is None:  # after an error, the rest is skipped: the caller raises it
                    job()
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                self._error = exc
            finally:
                self._jobs.task_done()

    def submit(self, job: Callable[[], None]) -> None:
        """Queue ``job`` (blocks while ``max_pending`` jobs wait).

        Raises
        ------
        BaseException
            The error of an earlier job, raised here in the training thread.
        """
        self._raise()
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="memscore-run-writer", daemon=True)
                self._thread.start()
        self._jobs.put(job)

    def close(self, raise_errors: bool = True) -> None:
        """Wait for every queued job; raise the first error (unless ``raise_errors`` is
        False: the caller is already raising one)."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._jobs.put(None)
            thread.join()
        if raise_errors:
            self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err
