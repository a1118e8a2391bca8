"""Training a plan's runs on a Ray cluster into one :class:`~memscore.RunStore`.

The plan's unfinished runs are cut into groups (runs that take the same number of steps
per epoch, ``runs_per_task`` at most, as :func:`~memscore.train.train_runs` groups its
ensembles); one Ray task per group builds the model and loads the data inside its worker
and trains the group with the single-machine :func:`~memscore.train.train_runs`
(``runs=`` the group), so a run is the same whether trained here or there: its seed and
batch order come from the seed and its plan index only.

Storage modes (:attr:`RayExecutor.storage`):

* ``"shared"``: every worker sees the store's directory and writes its runs into it (each
  run file published atomically; concurrent writers are safe).
* ``"object"``: a worker trains into a temporary store on its own disk and returns the run
  files through Ray's object store; the driver checks and publishes them.

Faults: a task whose worker died is started again (:func:`memscore.cluster.run_tasks`);
runs are published whole under their run ids and a started task skips runs already in
the store, so the store ends with exactly the plan's runs, none twice, none partial.
Ctrl-C cancels the tasks; finished runs stay, and the next call trains what is missing.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._validate import check_bool, check_int, check_optional_int
from ..cluster import RayExecutor, check_path_from_worker, run_tasks
from ..errors import StoreError
from ..runs.store import RunStore
from ..runs.store.format import run_rel
from ..runs.store.merge import publish_run_bytes
from .driver import _check_multiplicity, _groups
from .plan import SubsetPlan

__all__ = ["DatasetSplit", "train_on_ray"]


class DatasetSplit:
    """A picklable data function: one split of an embedded dataset, loaded where it is
    called (inside each Ray worker) instead of shipped from the driver.

    Parameters
    ----------
    name : str
        A dataset of :func:`memscore.datasets.load_dataset` (``"modular"``, ``"digits"``,
        ``"mnist1d"``) or of :func:`memscore.datasets.image_dataset` (``"cifar10"``, ...; then
        ``root=`` names a folder every worker sees).
    split : {"train", "test"}
        The split.
    **kwargs
        Arguments of the dataset function.

    Examples
    --------
    >>> x, y = DatasetSplit("modular", "train", p=5, seed=0)()
    >>> x.shape[0] == y.shape[0]
    True
    """

    def __init__(self, name: str, split: str, **kwargs: Any) -> None:
        """See the class docstring."""
        if split not in ("train", "test"):
            raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
        self.name, self.split, self.kwargs = name, split, kwargs

    def __call__(self) -> tuple[Any, Any]:
        """``(inputs, labels)`` of the split."""
        from ..runs.datasets import IMAGE_DATASETS, image_dataset, load_dataset

        if self.name in IMAGE_DATASETS:  # read from torchvision's files under kwargs["root"]
            task = image_dataset(self.name, **self.kwargs)
        else:
            task = load_dataset(self.name, **self.kwargs)
        return getattr(task, f"x_{self.split}"), getattr(task, f"y_{self.split}")

    def __repr__(self) -> str:
        return f"DatasetSplit({self.name!r}, {self.split!r}, **{self.kwargs!r})"


def _data(src: Any) -> Any:
    """In a worker: the data of a data function, or the data itself."""
    return src() if callable(src) else src


def _store_args(store: RunStore) -> dict[str, Any]:
    """What a worker needs to make a temporary store like ``store``."""
    return {
        "n_train": store.n_train,
        "n_test": store.n_test,
        "train_labels": store.train_labels,
        "test_labels": store.test_labels,
        "n_classes": store.n_classes,
    }


def _train_task(
    model_fn: Callable[[], Any],
    train: Any,
    test: Any,
    plan: SubsetPlan,
    where: str | dict[str, Any],
    group: list[int],
    settings: dict[str, Any],
) -> dict[str, bytes]:
    """Runs in a worker: train ``group`` (plan indices) with :func:`train_runs`.

    ``where`` is the store's path (shared mode: the runs are written there, nothing is
    returned) or the arguments of a temporary store (object mode: the run files are
    returned by run id). An empty ``group`` only checks the arguments (``max_runs=0``).
    """
    from .driver import train_runs

    tmp = None
    try:
        if isinstance(where, str):
            store = RunStore.open(where)
        else:
            tmp = tempfile.mkdtemp(prefix="memscore-ray-")
            store = RunStore.create(Path(tmp) / "store", **where)
        ids = [plan.run_ids[r] for r in group]
        kw = settings | {"runs": group, "max_runs": None if group else 0, "progress": False}
        try:
            train_runs(model_fn, _data(train), _data(test), plan, store, **kw)
        except StoreError:
            # another writer (an earlier attempt of this task that was thought lost, or a
            # cancelled one still finishing) stored some of these runs meanwhile
            if tmp is not None or not set(ids) <= set(store.refresh()):
                raise
        if tmp is None:
            return {}
        return {rid: (store.path / run_rel(rid)).read_bytes() for rid in ids}
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _unfinished(plan: SubsetPlan, store: RunStore) -> list[int]:
    """Plan indices of the runs not in ``store``; a stored run with a plan run id but
    another mask is an error (the store was filled by another plan)."""
    have = set(store.refresh())
    done = [r for r, rid in enumerate(plan.run_ids) if rid in have]
    for r in done:
        if not np.array_equal(store.mask(plan.run_ids[r]), plan.masks[r]):
            raise StoreError(
                f"{store.path}: run {plan.run_ids[r]} exists with a different mask: the store was filled by another plan"
            )
        _check_multiplicity(store, plan.run_ids[r], plan, r)
    return sorted(set(range(plan.n_runs)) - set(done))


def train_on_ray(
    model_fn: Callable[[], Any],
    train: Any,
    test: Any,
    plan: SubsetPlan,
    store: RunStore,
    *,
    executor: RayExecutor,
    ensemble: int = 64,
    progress: bool = True,
    max_runs: int | None = None,
    runs: Sequence[int] | None = None,
    **settings: Any,
) -> list[str]:
    """Train the plan's unfinished runs on Ray: :func:`memscore.train.train_runs` with
    ``executor=`` comes here.

    Every argument is checked before any training task starts: the executor's cluster
    (address, resources of a task), the store's directory as one worker sees it (shared
    mode), and the data, model and store as :func:`train_runs` checks them (one worker
    loads the data and runs those checks).

    Parameters
    ----------
    model_fn : callable
        Picklable; builds the model inside the workers.
    train, test : data or zero-argument callable
        As :func:`train_runs`, or picklable functions returning it, called in each worker
        (:class:`DatasetSplit`); data given directly is put once in the object store.
    plan, store : SubsetPlan, RunStore
        As :func:`train_runs`.
    executor : RayExecutor
        The cluster, the resources of a task, ``runs_per_task`` (default ``ensemble``)
        and the storage mode.
    ensemble : int
        Runs per task when ``executor.runs_per_task`` is None.
    progress : bool
        A progress bar: runs done, runs/min, ETA, failed and retried tasks.
    max_runs : int, optional
        Train at most this many of the unfinished runs.
    runs : sequence of int, optional
        Only these plan indices.
    **settings
        The training settings of :func:`train_runs` (``epochs``, ``batch_size``, ``lr``,
        ...).

    Returns
    -------
    list of str
        The run ids this call stored, sorted.

    Raises
    ------
    TypeError, ValueError, StoreError
        As :func:`train_runs`.
    memscore.cluster.ClusterError
        No answer at the address, resources no node has, a store directory the workers do
        not see (shared mode), or a task whose workers kept dying.
    KeyboardInterrupt
        Ctrl-C: the tasks were cancelled; the store holds whole runs only.
    """
    if not isinstance(executor, RayExecutor):
        raise TypeError(f"executor: expected a memscore.cluster.RayExecutor, got {type(executor).__name__}")
    if not isinstance(plan, SubsetPlan):
        raise TypeError(f"plan: expected a memscore.train.SubsetPlan, got {type(plan).__name__}")
    if not isinstance(store, RunStore):
        raise TypeError(f"store: expected a memscore.RunStore, got {type(store).__name__}")
    if not callable(model_fn):
        raise TypeError(f"model_fn: expected a function returning a torch.nn.Module, got {type(model_fn).__name__}")
    per_task = executor.runs_per_task or check_int(ensemble, "ensemble", 1)
    progress = check_bool(progress, "progress")
    max_runs = check_optional_int(max_runs, "max_runs", 0)
    batch_size = check_int(settings.get("batch_size"), "batch_size", 1)

    ray = executor.connect()
    executor.check_resources(ray)
    shared = executor.storage == "shared"
    root = store.path.resolve()  # workers run in other directories
    if shared:
        check_path_from_worker(executor, root / "runs", write=True)
    where: str | dict[str, Any] = str(root) if shared else _store_args(store)
    # data given as arrays travels once through the object store; functions run in the workers
    train_arg = train if callable(train) else ray.put(train)
    test_arg = test if callable(test) or test is None else ray.put(test)
    plan_ref = ray.put(plan)
    task_settings = settings | {"ensemble": per_task}

    # one worker checks data, model and store as train_runs does, before any training task
    run_tasks(
        executor, _train_task, [(model_fn, train_arg, test_arg, plan_ref, where, [], task_settings)],
        lambda i, got: 0.0, total=0, unit="runs", desc="checks", progress=False,
    )  # fmt: skip

    todo = _unfinished(plan, store)
    if runs is not None:
        only = {check_int(r, "runs[]", 0, plan.n_runs - 1) for r in runs}
        todo = [r for r in todo if r in only]
    if max_runs is not None:
        todo = todo[:max_runs]
    groups = _groups(todo, plan, batch_size, per_task)
    written: list[str] = []

    def take(i: int, files: dict[str, bytes]) -> float:
        ids = [plan.run_ids[r] for r in groups[i]]
        for rid, data in files.items():
            publish_run_bytes(store.path / run_rel(rid), data, f"run {rid} from a Ray worker")
        written.extend(ids)
        return float(len(ids))

    args = [(model_fn, train_arg, test_arg, plan_ref, where, g, task_settings) for g in groups]
    try:
        run_tasks(executor, _train_task, args, take, total=len(todo), unit="runs", desc="training runs",
                  progress=progress)  # fmt: skip
    finally:
        store.refresh()
    missing = sorted(set(written) - set(store.run_ids()))
    if missing:  # pragma: no cover - a task reported runs the store does not hold
        raise StoreError(f"{store.path}: runs {missing[:5]} were trained but are not in the store")
    return sorted(written)
