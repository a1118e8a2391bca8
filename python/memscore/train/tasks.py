"""The tasks of :func:`memscore.train.train_runs`: training as *split -> task -> merge*.

:func:`~memscore.train.train_runs` checks its arguments, splits the plan's unfinished runs
into ensembles and hands the tasks below to an executor (in this process, on threads or
on Ray workers; the local path runs exactly these functions):

- :func:`check_task`, once, before any training: loads the data where the tasks run and
  checks it, the device, the model and the augmentations against each other;
- :func:`train_task`, once per ensemble: trains its runs as one vmapped model and
  publishes them. When the executor's tasks share this machine's files
  (``executor.shares_files``) the task writes each run into the store atomically, under
  its run id, skipping runs already there; otherwise (``RayExecutor(storage="object")``) it
  returns the run files and the driver publishes them.

A run's seed and batch order come from the plan's seed and its index only, so a run is the
same whichever task, thread or worker trains it. A retried task is harmless: runs are
published whole under their run ids and runs already there are kept.

Tasks that run in the driver's own process (:class:`~memscore.executors.LocalExecutor`,
:class:`~memscore.executors.ThreadExecutor`) share, through :func:`in_process`, the data
prepared once (one copy on the device, as one process training every ensemble holds) and
a progress callback that advances every epoch.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import StoreError
from ..runs.store import RunStore
from ..runs.store.format import run_rel
from .augment import query_views, resolve_augment
from .autotune import Tuning, tune
from .checks import (
    _batch_dependent,
    _check_augment,
    _check_compile,
    _check_labels,
    _check_model,
    _check_precision,
    _check_store_data,
    _check_vmappable,
    _fits,
    _ignore_generator,
    _resolve_device,
)
from .config import TrainConfig, _as_xy, _is_oom, _torch
from .distill import Distillation
from .ensemble import STRATEGIES
from .fit import _Data, _run_records
from .inputs import DeviceInputs, load_data
from .models import init_model, param_dtype
from .plan import SubsetPlan
from .writer import RunWriter

if TYPE_CHECKING:  # pragma: no cover
    import numpy.typing as npt

__all__ = [
    "StoreRef", "TrainJob", "check_stored_run", "check_task", "group_runs", "in_process", "most_alike", "train_task",
]  # fmt: skip


@dataclass(frozen=True)
class StoreRef:
    """The store as a task knows it (picklable): its directory, sizes and labels, and
    whether the task writes there (``shared``) or returns the run files.

    Parameters
    ----------
    path : str
        The store's absolute directory.
    n_train, n_test : int
        Its example counts.
    train_labels, test_labels : ndarray or None
        Its labels.
    n_classes : int or None
        Its class count.
    shared : bool
        The task writes its runs into ``path``; otherwise it returns their files.
    """

    path: str
    n_train: int
    n_test: int
    train_labels: npt.NDArray[np.int64] | None
    test_labels: npt.NDArray[np.int64] | None
    n_classes: int | None
    shared: bool

    @classmethod
    def of(cls, store: RunStore, *, shared: bool) -> StoreRef:
        """The reference of ``store`` (its path made absolute: workers run elsewhere)."""
        return cls(
            str(store.path.resolve()), store.n_train, store.n_test, store.train_labels, store.test_labels,
            store.n_classes, shared,
        )  # fmt: skip


@dataclass(frozen=True)
class TrainJob:
    """The settings of one :func:`~memscore.train.train_runs` call, as every task receives
    them: checked by ``train_runs``, trusted by the tasks.

    Parameters
    ----------
    token : str
        Names the call (the in-process state of :func:`in_process`).
    model_fn : callable
        Builds a run's model.
    cfg : TrainConfig
        The training settings.
    store : StoreRef
        Where the runs go.
    device, keep_logits, augment, normalize, data_on_device, query_augment
        As :func:`~memscore.train.train_runs` takes them.
    vmap_check : bool
        Check that the model runs in a vmapped ensemble (ensembles of more than one run).
    strategy, ensemble, memory
        As :func:`~memscore.train.train_runs` takes them.
    known : list of dict, optional
        Earlier strategy measurements (:func:`memscore.train.autotune.known_tunings`).
    alike : (int, int, int), optional
        The runs the call trains, and the most of them that can train in one ensemble,
        grouped by steps per epoch and by subset size (BatchNorm) (:func:`most_alike`): the
        strategy is timed at the ensemble size the call will use, within a share of its
        predicted time.
    tuning : Tuning, optional
        Set by the driver from :func:`check_task`'s answer: the strategy and sizes every
        training task uses.
    distill : Distillation, optional
        The students' teacher (:mod:`memscore.train.distill`).
    """

    token: str
    model_fn: Callable[[], Any]
    cfg: TrainConfig
    store: StoreRef
    device: Any
    keep_logits: bool
    augment: Any
    normalize: Any
    data_on_device: bool | None
    query_augment: Any
    vmap_check: bool
    strategy: str = "auto"
    ensemble: int | None = None
    memory: Any = None
    known: list[dict[str, Any]] | None = None
    alike: tuple[int, int, int] | None = None
    tuning: Tuning | None = None
    distill: Distillation | None = None


class _Prepared:
    """The data of a job on its device, ready for the ensembles."""

    def __init__(self, job: TrainJob, train: Any, test: Any) -> None:
        self.dev = _resolve_device(job.device)
        aug, aug_name = resolve_augment(job.augment)
        views = query_views(job.query_augment)
        x_tr, y_tr = _as_xy(load_data(train), "train")
        x_te, y_te = _as_xy(load_data(test), "test") if test is not None else (None, None)
        if x_te is not None and x_te.shape[1:] != x_tr.shape[1:]:
            raise ValueError(f"test: inputs of shape {tuple(x_te.shape[1:])}, train inputs {tuple(x_tr.shape[1:])}")
        self.y_train, self.y_test = y_tr, y_te  # on the CPU, for the checks
        self.n_classes = job.store.n_classes or int(max(int(y_tr.max()), -1 if y_te is None else int(y_te.max())) + 1)
        on = job.data_on_device
        # floating inputs (train and test alike) are cast once to the model's parameter dtype
        dtype = param_dtype(init_model(job.model_fn, job.cfg.seed, 0))
        inputs = DeviceInputs(
            x_tr, self.dev, normalize=job.normalize, on_device=_fits(x_tr, self.dev, on), dtype=dtype, name="train"
        )
        test_inputs = (
            DeviceInputs(
                x_te, self.dev, normalize=job.normalize, on_device=_fits(x_te, self.dev, on), dtype=dtype, name="test"
            )
            if x_te is not None
            else None
        )
        y_te_dev = y_te.to(self.dev) if y_te is not None else None
        self.data = _Data(inputs, y_tr.to(self.dev), test_inputs, y_te_dev, aug, aug_name, views)


class _Shared:
    """What the tasks of one call share in the driver's process: the prepared data, the
    progress callback, and the background writer of their runs."""

    def __init__(self, advance: Callable[[float], None] | None) -> None:
        self.lock = threading.Lock()
        self.prepared: _Prepared | None = None
        self.advance = advance
        self.writer = RunWriter()


_IN_PROCESS: dict[str, _Shared] = {}


@contextmanager
def in_process(token: str, advance: Callable[[float], None] | None) -> Iterator[None]:
    """While open, the tasks of the job ``token`` that run in this process prepare its data
    once and report progress to ``advance(runs)`` (fractional runs, every epoch).

    Parameters
    ----------
    token : str
        The job's :attr:`TrainJob.token`.
    advance : callable, optional
        Told the runs done as they progress (thread-safe: ThreadExecutor calls it from
        several threads).
    """
    shared = _IN_PROCESS[token] = _Shared(advance)
    try:
        yield
    except BaseException:
        _IN_PROCESS.pop(token, None)
        shared.writer.close(raise_errors=False)  # the finished runs are written; the first error stands
        raise
    _IN_PROCESS.pop(token, None)
    shared.writer.close()  # every run trained is written (or its write error raised) on return


def _prepared(job: TrainJob, train: Any, test: Any) -> _Prepared:
    shared = _IN_PROCESS.get(job.token)
    if shared is None:  # a worker of its own: prepare for this task
        return _Prepared(job, train, test)
    with shared.lock:
        if shared.prepared is None:
            shared.prepared = _Prepared(job, train, test)
        return shared.prepared


def check_stored_run(store: RunStore, plan: SubsetPlan, r: int) -> None:
    """Run ``r`` of ``plan``, found in ``store`` (resumed, or stored by another trainer),
    must have the plan's mask and bootstrap draw counts: otherwise the store was filled by
    another plan.

    Parameters
    ----------
    store : RunStore
        The store (its run list refreshed).
    plan : SubsetPlan
        The plan.
    r : int
        The plan index of the stored run.

    Raises
    ------
    StoreError
        The stored run has another mask or other draw counts.
    """
    rid = plan.run_ids[r]
    if not np.array_equal(store.mask(rid), plan.masks[r]):
        raise StoreError(f"{store.path}: run {rid} exists with a different mask: the store was filled by another plan")
    have, want = store.multiplicity(rid), plan.multiplicities
    same = have is None if want is None else have is not None and np.array_equal(have, want[r])
    if not same:
        raise StoreError(
            f"{store.path}: run {rid} exists with different bootstrap multiplicities: the store was filled by another plan"
        )


def group_runs(
    todo: list[int], plan: SubsetPlan, batch_size: int, ensemble: int, exact: bool = False
) -> list[list[int]]:
    """Runs grouped into ensembles of at most ``ensemble`` runs that take the same number of
    steps per epoch, ``ceil(subset size / batch_size)``: every member then steps at every
    step and the optimizer needs no masking. With ``exact`` (BatchNorm: a padded example
    would enter the batch statistics) runs are grouped by subset size, so that every
    member's last batch has the same size too. Runs do not depend on their grouping."""
    steps = {r: plan.epoch_size(r) if exact else -(-plan.epoch_size(r) // batch_size) for r in todo}
    out: list[list[int]] = []
    for k in sorted(set(steps.values())):
        same = [r for r in todo if steps[r] == k]
        out += [same[i : i + ensemble] for i in range(0, len(same), ensemble)]
    return out


def most_alike(todo: list[int], plan: SubsetPlan, batch_size: int) -> tuple[int, int, int]:
    """The runs ``todo`` counts, and the largest groups :func:`group_runs` can make of them
    (with no size limit): by steps per epoch, and by subset size (``exact``)."""
    big = len(todo) + 1
    return (
        len(todo),
        max((len(g) for g in group_runs(todo, plan, batch_size, big)), default=0),
        max((len(g) for g in group_runs(todo, plan, batch_size, big, exact=True)), default=0),
    )


def check_task(job: TrainJob, plan: SubsetPlan, train: Any, test: Any) -> tuple[bool, Tuning]:
    """The first task: check the device, the data, the store's examples, the
    augmentations and the model, where the training tasks will run.

    Parameters
    ----------
    job : TrainJob
        The call's settings.
    plan : SubsetPlan
        The plan.
    train, test : data or zero-argument callable
        As :func:`~memscore.train.train_runs` takes them (a function is called here).

    Returns
    -------
    exact : bool
        Whether the model's training forward mixes the examples of a batch (BatchNorm):
        then ensembles group runs of the same subset size (no padded examples).
    tuning : Tuning
        The strategy and sizes of the ensembles (:func:`memscore.train.autotune.tune`).

    Raises
    ------
    TypeError, ValueError, StoreError
        What :func:`~memscore.train.train_runs` documents.
    """
    dev = _resolve_device(job.device)
    _check_precision(job.cfg.precision, dev)
    if job.cfg.compile:
        _check_compile(dev)
    p = _prepared(job, train, test)
    ref = job.store
    _check_store_data(
        ref.path, (ref.n_train, ref.n_test), (ref.train_labels, ref.test_labels), plan.n_examples, p.y_train, p.y_test
    )
    _check_labels(p.y_train, p.n_classes, "train labels")
    if p.y_test is not None:
        _check_labels(p.y_test, p.n_classes, "test labels")
    # every check on a full batch (batch_size examples) of each split the run reads: a
    # shape or dtype that depends on the batch fails here, named, before the first step
    torch = _torch()
    first = init_model(job.model_fn, job.cfg.seed, 0).to(p.dev)
    train_batch = None
    labels = {"train": p.y_train, "test": p.y_test}
    for split, x in (("train", p.data.x), ("test", p.data.x_test)):
        if x is None:
            continue
        raw = x.raw(torch.arange(min(job.cfg.batch_size, len(x))))
        if split == "train":
            _check_augment(p.data.aug, raw)
        for v in p.data.views:
            _check_augment(_ignore_generator(v), raw, "query_augment")
        batch = x.to_float(raw)
        _check_model(first, batch, p.n_classes, split, labels)
        train_batch = batch if split == "train" else train_batch
    # mixed precision trains member by member: torch.func.vmap ignores autocast
    strategies = STRATEGIES if job.cfg.precision == "fp32" else ("loop",)
    if job.vmap_check and job.strategy in ("auto", "vmap") and "vmap" in strategies:
        models = [first, init_model(job.model_fn, job.cfg.seed, 1)]
        try:
            _check_vmappable(models, train_batch, p.n_classes, job.cfg, p.dev)
        except ValueError:
            if job.strategy == "vmap":
                raise
            strategies = ("loop",)  # auto: a model vmap cannot run trains member by member
    if p.dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: the fastest convolution, found once
    exact = _batch_dependent(first)
    tuning = tune(
        job.model_fn, job.cfg, p.data, p.dev, strategy=job.strategy, ensemble=job.ensemble, memory=job.memory,
        known=job.known, strategies=strategies, augment=p.data.aug_name,
        examples_per_epoch=int(np.mean([plan.epoch_size(r) for r in range(plan.n_runs)])),
        largest_group=None if not job.alike else job.alike[1 + int(exact)] or None,
        runs=None if not job.alike else job.alike[0] or None,
    )  # fmt: skip
    return exact, tuning


def _halving(
    job: TrainJob, runs: list[int], plan: SubsetPlan, p: _Prepared, advance: Callable[[float], None] | None
) -> tuple[list[dict[str, Any]], dict[str, tuple[int, int]]]:
    """:func:`~memscore.train.fit._run_records` of ``runs``; an out-of-memory error trains
    each half of the group instead (runs do not depend on their grouping), down to one run."""
    torch = _torch()
    tuning = job.tuning
    strategy, chunk = (tuning.strategy, tuning.chunk) if tuning is not None else ("vmap", 4096)
    try:
        return _run_records(
            job.model_fn, runs, plan, job.cfg, p.data, p.dev, job.keep_logits, advance, strategy, chunk, job.distill
        )
    except Exception as exc:
        if not _is_oom(exc):
            raise
        if len(runs) == 1:
            raise MemoryError(
                f"one run ({plan.run_ids[runs[0]]}) does not fit the memory of {p.dev} at batch_size="
                f"{job.cfg.batch_size} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                "lower batch_size or the model's size"
            ) from exc
    if p.dev.type == "cuda":
        torch.cuda.empty_cache()
    half = len(runs) // 2
    a, lost_a = _halving(job, runs[:half], plan, p, advance)
    b, lost_b = _halving(job, runs[half:], plan, p, advance)
    return a + b, {**lost_a, **lost_b}


def train_task(
    job: TrainJob, plan: SubsetPlan, train: Any, test: Any, runs: list[int]
) -> tuple[dict[str, bytes], dict[str, tuple[int, int]]]:
    """Train the plan's ``runs`` as one ensemble and publish them.

    Parameters
    ----------
    job : TrainJob
        The call's settings (checked by :func:`check_task` first).
    plan : SubsetPlan
        The plan.
    train, test : data or zero-argument callable
        As :func:`~memscore.train.train_runs` takes them.
    runs : list of int
        Plan indices of runs that take the same number of steps per epoch.

    Returns
    -------
    files : dict of str to bytes
        ``job.store.shared``: empty (the runs were written into the store, those already
        there kept). Otherwise the run files by run id, for the driver to publish.
    diverged : dict of str to (int, int)
        The runs whose loss turned NaN or infinite, not stored, with the (1-based) epoch
        and step where it did first; the ensemble's other runs are stored.
    """
    shared = _IN_PROCESS.get(job.token)
    advance = shared.advance if shared is not None else None
    ids = [plan.run_ids[r] for r in runs]
    ref = job.store
    if ref.shared:
        store = RunStore.open(ref.path)
        if set(ids) <= set(store.refresh()):  # a retried task, or another trainer stored them
            for r in runs:
                check_stored_run(store, plan, r)
            if advance is not None:
                advance(len(runs))
            return {}, {}
    p = _prepared(job, train, test)
    # the whole ensemble trains even when some of its runs are stored (an earlier attempt
    # of this task): the others are then exactly what an uninterrupted task gives
    records, diverged = _halving(job, runs, plan, p, advance)
    runs = [r for r in runs if plan.run_ids[r] not in diverged]  # the others are stored
    if ref.shared:

        def write() -> None:
            have = set(store.refresh())
            for r, rec in zip(runs, records, strict=True):
                if rec["run_id"] not in have:
                    try:
                        store.add_run(**rec)
                        continue
                    except StoreError:
                        if rec["run_id"] not in store.refresh():  # not a concurrent writer of the same run
                            raise
                # stored by an earlier attempt or another trainer meanwhile: kept if it is this run
                check_stored_run(store, plan, r)

        if shared is not None:
            shared.writer.submit(write)  # the next ensemble trains while these runs are written
        else:
            write()
        return {}, diverged
    tmp = tempfile.mkdtemp(prefix="memscore-train-")
    try:
        out = RunStore.create(
            Path(tmp) / "store", n_train=ref.n_train, n_test=ref.n_test, train_labels=ref.train_labels,
            test_labels=ref.test_labels, n_classes=ref.n_classes,
        )  # fmt: skip
        for rec in records:
            out.add_run(**rec)
        return {rec["run_id"]: (out.path / run_rel(rec["run_id"])).read_bytes() for rec in records}, diverged
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
