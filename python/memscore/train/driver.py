"""Train many small models at once and record every run in a :class:`~memscore.RunStore`.

``train_runs`` stacks the parameters of ``ensemble`` independently initialized copies of a
model (``torch.func.stack_module_state``) and trains them as one batched model: one
``vmap`` over ``functional_call`` computes every member's forward and backward pass on its
own minibatch in a single set of large tensor operations. Members never interact: the
summed loss has block-diagonal gradients, and ``torch.optim`` (SGD with momentum, Adam,
AdamW, through its fused kernel where available) updates the stacked tensors elementwise,
which is updating each member on its own. Runs are grouped into ensembles of runs that take
the same number of steps per epoch (subset sizes differ slightly), so every member steps
at every step: each run takes exactly the steps of a plain one-model loop
(:func:`memscore.reference.train.train_sequential` is that loop, and the tests compare the
two).

Run ``r`` of a plan is reproducible on its own: its initialization and its minibatch
order come from ``seed`` and ``r`` only, never from the ensemble it was grouped in.

The work is *split -> task -> merge* (:mod:`memscore.train.tasks`): ``train_runs`` checks
its arguments, cuts the unfinished runs into ensembles and hands one task per ensemble to
the executor (``executor=``: this process, threads or a Ray cluster), each task trains its
ensemble and publishes its runs under their run ids. The default local path runs exactly
the task a Ray worker runs.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .._progress import ProgressBar
from .._validate import check_bool, check_bytes, check_int, check_optional_int
from ..errors import DivergedError, StoreError
from ..executors import ExecutorLike, as_executor
from ..runs.store import RunStore
from ..runs.store.format import run_rel
from ..runs.store.merge import publish_run_bytes
from .augment import query_views, resolve_augment
from .autotune import known_tunings, record, remember
from .checks import _check_strategy
from .config import TrainConfig, _as_xy, _torch
from .distill import Distillation
from .models import init_model
from .plan import SubsetPlan
from .settings import check_settings, record_settings, train_settings
from .tasks import StoreRef, TrainJob, check_stored_run, check_task, group_runs, in_process, most_alike, train_task

__all__ = ["MAX_INFERRED_CLASSES", "create_store", "train_runs"]

MAX_INFERRED_CLASSES = 2**20
"""The most classes :func:`create_store` infers from the labels (a larger count must be
given as ``n_classes=``: a stray label of 10**9 would otherwise size the store for it)."""


def create_store(
    path: Any, train: Any, test: Any = None, *, n_classes: int | None = None, metadata: dict[str, Any] | None = None
) -> RunStore:
    """A new :class:`~memscore.RunStore` sized and labelled for ``train`` / ``test`` data.

    Parameters
    ----------
    path : str or os.PathLike
        The store directory.
    train, test : tuple of arrays / tensors, or torch Dataset
        ``(inputs, labels)`` as :func:`train_runs` takes them; ``test`` may be None.
    n_classes : int, optional
        Number of classes (default: the largest label + 1, at least 2, and at most
        :data:`MAX_INFERRED_CLASSES` = 2**20: more must be given explicitly).
    metadata : dict, optional
        JSON-serializable description kept in the store.

    Returns
    -------
    RunStore

    Raises
    ------
    TypeError, ValueError
        Bad data (labels that are not integers: a float label must be whole), labels outside
        ``0 .. n_classes - 1``, or a largest label that would infer more than 2**20 classes.
    StoreError
        A store already exists at ``path``.
    """
    _, y = _as_xy(train, "train")
    y_test = _as_xy(test, "test")[1] if test is not None else None
    if n_classes is not None:
        c = check_int(n_classes, "n_classes", 1)
    else:
        split, top = max(
            ("train", int(y.max())), ("test", -1 if y_test is None else int(y_test.max())), key=lambda t: t[1]
        )
        if top >= MAX_INFERRED_CLASSES:
            raise ValueError(
                f"{split} labels: the largest label is {top}, which would make n_classes {top + 1}, above "
                f"{MAX_INFERRED_CLASSES} (2**20); pass n_classes= explicitly if that many classes are meant"
            )
        c = top + 1
    return RunStore.create(
        path,
        n_train=int(y.shape[0]),
        n_test=0 if y_test is None else int(y_test.shape[0]),
        train_labels=y.numpy(),
        test_labels=None if y_test is None else y_test.numpy(),
        n_classes=max(c, 2),
        metadata=metadata,
    )


class _Progress:
    """Finished runs on the one progress display (fractional while an ensemble trains)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.bar = ProgressBar(total, "runs", "training runs", enabled)

    def advance(self, runs: float) -> None:
        self.bar.update(runs)  # thread-safe; clamped to the total

    def close(self) -> None:
        self.bar.close()


def train_runs(
    model_fn: Callable[[], Any],
    train: Any,
    test: Any,
    plan: SubsetPlan,
    store: RunStore,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    optimizer: str = "sgd",
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    ensemble: int | None = None,
    device: Any = "auto",
    snapshot_epochs: Sequence[int] = (),
    grand: bool = False,
    keep_logits: bool = True,
    seed: int = 0,
    progress: bool = True,
    max_runs: int | None = None,
    schedule: str = "constant",
    warmup: float | None = None,
    step_epochs: Sequence[int] = (),
    gamma: float = 0.1,
    label_smoothing: float = 0.0,
    nesterov: bool = False,
    grad_clip: float | None = None,
    augment: Any = None,
    normalize: tuple[Sequence[float], Sequence[float]] | None = None,
    precision: str = "fp32",
    data_on_device: bool | None = None,
    query_augment: Any = None,
    runs: Sequence[int] | None = None,
    executor: ExecutorLike = None,
    compile: bool = False,
    until: Any = None,
    round_runs: int | None = None,
    strategy: str = "auto",
    memory: Any = None,
    distill: Distillation | None = None,
) -> list[str]:
    """Train every run of ``plan`` (skipping runs already in ``store``) and store each one.

    Parameters
    ----------
    model_fn : callable
        Builds a fresh ``torch.nn.Module`` mapping a batch of inputs to logits (called once
        per run, under the run's own seed).
    train, test : tuple of arrays / tensors, torch Dataset, or zero-argument callable
        ``(inputs, labels)``, or map-style Datasets of ``(input, label)``, or a picklable
        function returning either, called where the tasks run (:class:`DatasetSplit
        <memscore.train.inputs.DatasetSplit>` loads an embedded dataset by name, so Ray
        workers load it themselves); ``test`` may be None. Both are held on ``device``.
    plan : SubsetPlan
        The runs' training subsets; run ``r`` is stored as ``plan.run_ids[r]``, which is
        how resuming recognizes finished runs.
    store : RunStore
        Created for these examples with their labels (:func:`create_store` makes one).
    epochs, batch_size, lr : int, int, float
        As in ``torch.optim``; an epoch is one pass over the run's subset.
    optimizer : {"sgd", "adam", "adamw"}, default "sgd"
        The optimizer.
    momentum : float, default 0.9
        SGD momentum.
    weight_decay : float, default 0.0
        Weight decay.
    ensemble : int, optional
        Runs trained at once as one ensemble. Default: as many as fit ``memory`` (at most 64
        on the CPU, 256 on CUDA), from a measured per-member footprint
        (:mod:`memscore.train.autotune`). An out-of-memory error halves the group and
        trains on; runs do not depend on their grouping.
    device : str or torch.device, default "auto"
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, or a torch.device.
    snapshot_epochs : sequence of int, default ()
        Epochs (0 = before training) after which every run's outcomes on train and test
        are recorded (correctness, loss, EL2N) for :meth:`RunStore.snapshot_scores`.
    grand : bool, default False
        Also record per-example gradient norms (GraNd) on the train set at the snapshots
        (costly: one gradient per example and run).
    keep_logits : bool, default True
        Store the final train and test logits (float32) with each run.
    seed : int, default 0
        Seeds every run's initialization and batch order (with the run's index).
    progress : bool, default True
        Show progress (:mod:`memscore._progress`: a bar on a terminal, a line every 30 s
        or 10% in a log) with runs done, runs/min and ETA (every epoch in this process;
        every finished ensemble, with failed and retried tasks, on Ray).
    max_runs : int, optional
        Stop after this many new runs (for time-boxed jobs; resume later).
    schedule : str, default "constant"
        Learning-rate schedule stepped per batch: ``constant``, ``step``, ``cosine``,
        ``linear`` or ``onecycle`` (see :func:`memscore.train.schedules.lr_factor`).
    warmup : float, optional
        Fraction of the steps in a linear warm-up (default 0; 0.3 for ``onecycle``).
    step_epochs, gamma : sequence of int, float
        The ``step`` schedule: multiply the rate by ``gamma`` after each of these epochs.
    label_smoothing : float, default 0.0
        Label smoothing of the training loss.
    nesterov : bool, default False
        Nesterov momentum (SGD).
    grad_clip : float, optional
        Clip each run's gradient to this global L2 norm.
    augment : None, "none", "crop-flip", "shift", or callable, default None
        Per-run augmentation of every training batch, on the device: a callable
        ``(x, generator) -> x`` keeping the batch's shape and dtype, seeded per run by
        ``(seed, run index)`` (see :mod:`memscore.train.augment`).
    normalize : (mean, std), optional
        Per-channel normalization applied per batch after uint8 inputs are scaled to [0, 1].
    precision : {"fp32", "bf16", "fp16"}, default "fp32"
        Autocast precision of the forward pass. fp16 scales each run's loss on its own
        (``GradScaler``'s rule, one scale per member): a run whose gradients overflow skips
        its own step, never its groupmates'. On the CPU both autocast too (bf16 is fast with
        AVX-512 BF16 or AMX; fp16 is slow there).
    data_on_device : bool, optional
        Hold the training inputs on the device (default: when they take less than a quarter of
        its free memory); otherwise in pinned host memory, moving each step's batches.
    query_augment : None, "mirror", "mirror-shift", "shift", or list of callables, optional
        LiRA's augmented queries: also record every final model's confidence φ on K views of
        every example (:data:`memscore.train.augment.QUERY_VIEWS`, identity first),
        stored as ``(n, K)`` per run and read with ``store.outcomes(split, "phi_views")``.
    runs : sequence of int, optional
        Train only these runs of the plan (indices into it); the others are left for
        other calls.
    executor : None, str or memscore.executors.Executor, optional
        Who trains the ensembles, one task each (:func:`memscore.executors.as_executor`):
        ``None`` / ``"local"`` (this process, one ensemble after another),
        ``"threads:N"`` (N ensembles at once in this process, sharing its device),
        ``"ray"`` / ``"ray:ADDRESS"`` or a :class:`~memscore.executors.RayExecutor` (a
        cluster; each task gets ``gpus_per_task`` GPUs and ``device="auto"`` uses them).
        ``executor.runs_per_task``, when set, replaces ``ensemble``. With
        ``RayExecutor(storage="object")`` the workers return the run files and this
        process writes them; otherwise the tasks write into the store. Every executor
        gives the same runs: the same ensembles, the same seeds.
    compile : bool, default False
        Compile the ensemble's training forward with ``torch.compile`` (same runs to float
        tolerance; see :class:`TrainConfig` and docs/training.md for when it pays off).
    until : str, Target or sequence of them, optional
        Train in rounds and stop once every target holds on the stored runs
        (:class:`memscore.runs.forecast.Target`, e.g. ``"memorization:reliability>=0.9"``,
        checked by :meth:`RunStore.target_values`), before the first round and after each;
        or when ``max_runs`` new runs are trained, or the plan has none left. The runs
        are the plan's next ones in plan order, so a call that stops after k runs stores
        exactly the runs of the same call with ``max_runs=k`` and no ``until``; a later
        call resumes from the store.
    round_runs : int, optional
        Runs per round with ``until`` (default: the runs of one ensemble).
    strategy : {"auto", "vmap", "loop"}, default "auto"
        How an ensemble runs its members' forward and backward passes
        (:data:`memscore.train.ensemble.STRATEGIES`): ``"vmap"``, one vmapped model (fast for
        MLPs and small CNNs; convolutions become grouped convolutions), or ``"loop"``, member
        by member (the plain model's kernels). ``"auto"`` times a few warm steps of each on
        the real model, batch and device and takes the fastest; the measurement is recorded
        in the store (``train_tuning.json``) and reused by later calls. Every strategy trains
        the same runs.
    memory : int or str, optional
        The memory an ensemble may use, in bytes or as ``"8GiB"`` (default: 80% of the free
        memory of a CUDA device, half the available memory of the host): sizes the ensemble
        (when ``ensemble`` is not given) and the eval passes.
    distill : Distillation, optional
        Train the runs as students of a teacher (:class:`memscore.train.Distillation`: a
        store of teacher runs paired by run id, one set of logits, or a module), on
        ``(1 - alpha) * CE + alpha * tau**2 * KL(teacher || student)`` from
        ``start_epoch`` on. Each run's metadata records the teacher and the settings under
        ``"distill"``; a store holds runs of one distillation setting (or none).

    Returns
    -------
    list of str
        The run ids trained by this call, sorted (plan order).

    Raises
    ------
    TypeError
        An argument or data of the wrong type (non-integer labels, a plan that is not a
        :class:`SubsetPlan`, a model that is not a ``torch.nn.Module``).
    ValueError
        A value out of range: a model whose output does not match the number of classes,
        labels out of range, an empty subset, NaN inputs. All are raised before any
        training starts.
        The store holds runs trained with other settings (recorded in its
        ``train_config.json``, see :mod:`memscore.train.settings`): the message names each
        setting that differs; train them into a new store. A teacher that does not fit
        (another class count or shape, a teacher run missing, trained on another subset or
        stored without logits; ``start_epoch`` beyond ``epochs``).
    StoreError
        The store was created for other examples, or holds a run with a plan run id but a
        different mask.
    ImportError
        torch is not installed (or ray, for a Ray executor).
    memscore.ClusterError
        No cluster answers, no node has the resources of one task (``gpus_per_task``;
        in this process: a GPU asked for and none seen), a store directory the workers do
        not see (``storage="shared"``), or a task whose workers kept dying.
    memscore.DivergedError
        A run's training loss turned NaN or infinite (detected on the device, at the step it
        happens): raised once every ensemble has trained, naming each such run, the epoch and
        the step. The diverged runs are not stored; every other run is.
    KeyboardInterrupt
        Ctrl-C: the tasks are cancelled; the store holds whole runs only and the next
        call trains the missing ones.

    Examples
    --------
    >>> from memscore.datasets import modular_arithmetic
    >>> from memscore.train import SubsetPlan, create_store, mlp, train_runs
    >>> d = modular_arithmetic(p=5, seed=0)
    >>> plan = SubsetPlan(d.n_train, 2, seed=0)
    >>> store = create_store(tmp / "s", (d.x_train, d.y_train))  # doctest: +SKIP
    >>> train_runs(lambda: mlp(10, 5, width=8), (d.x_train, d.y_train), None, plan, store,
    ...            epochs=1, batch_size=4, lr=0.1, progress=False)  # doctest: +SKIP
    ['run-000000', 'run-000001']
    """
    _torch()  # a missing torch is reported before anything else
    if until is not None:  # rounds of this same call, each a plain call with max_runs
        call = {k: v for k, v in locals().items() if k not in ("until", "round_runs", "max_runs")}
        return _train_until(call, until, round_runs, max_runs)
    if round_runs is not None:
        raise ValueError("round_runs: only applies with until= (got round_runs without until)")
    # ---- split: every argument is checked here, once; the tasks trust them
    ex = as_executor(executor)
    if not isinstance(plan, SubsetPlan):
        raise TypeError(f"plan: expected a memscore.train.SubsetPlan, got {type(plan).__name__}")
    if not isinstance(store, RunStore):
        raise TypeError(f"store: expected a memscore.RunStore, got {type(store).__name__}")
    ensemble = check_optional_int(ensemble, "ensemble", 1)
    strategy = _check_strategy(strategy, precision)
    if memory is not None:
        check_bytes(memory, "memory")
    fixed = ex.runs_per_task or ensemble  # runs per ensemble when given; else sized on the device
    keep_logits = check_bool(keep_logits, "keep_logits")
    progress = check_bool(progress, "progress")
    max_runs = check_optional_int(max_runs, "max_runs", 0)
    if not callable(model_fn):
        raise TypeError(f"model_fn: expected a function returning a torch.nn.Module, got {type(model_fn).__name__}")
    cfg = TrainConfig(
        epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, momentum=momentum,
        weight_decay=weight_decay, snapshot_epochs=tuple(snapshot_epochs), grand=bool(grand), seed=seed,
        schedule=schedule, warmup=warmup, step_epochs=tuple(step_epochs), gamma=gamma,
        label_smoothing=label_smoothing, nesterov=nesterov, grad_clip=grad_clip, precision=precision,
        compile=compile,
    )  # fmt: skip
    _, aug_name = resolve_augment(augment)
    query_views(query_augment)
    # the settings the store's runs are trained with (model_fn is called once, for its
    # description): a store filled with other ones is refused after the checks, before any run trains
    if distill is not None:
        if not isinstance(distill, Distillation):
            raise TypeError(f"distill: expected a memscore.train.Distillation, got {type(distill).__name__}")
        distill.check(n_train=store.n_train, n_classes=store.n_classes or 0, labels=store.train_labels,
                      epochs=cfg.epochs)  # fmt: skip
    settings = train_settings(
        cfg, init_model(model_fn, cfg.seed, 0), augment=aug_name, normalize=normalize,
        query_augment=query_augment, keep_logits=keep_logits,
        distill=None if distill is None else distill.describe(),
    )  # fmt: skip
    if data_on_device is not None:
        check_bool(data_on_device, "data_on_device")
    sizes = plan.masks.sum(axis=1)
    if (sizes == 0).any():
        raise ValueError(f"plan: run {int(np.argmax(sizes == 0))} has an empty subset")
    todo = _unfinished(plan, store)
    if runs is not None:
        only = {check_int(r, "runs[]", 0, plan.n_runs - 1) for r in runs}
        todo = [r for r in todo if r in only]
    if max_runs is not None:
        todo = todo[:max_runs]
    if distill is not None:
        distill.check_runs(plan, todo)  # every student's teacher run, before any training

    ex.start()  # the cluster answers, and has the resources of one task
    local = ex.in_process
    if ex.shares_files and not local:
        ex.check_dir(store.path.resolve() / "runs", write=True)
    job = TrainJob(
        token=uuid.uuid4().hex, model_fn=model_fn, cfg=cfg, store=StoreRef.of(store, shared=ex.shares_files),
        device=device, keep_logits=keep_logits, augment=augment, normalize=normalize,
        data_on_device=data_on_device, query_augment=query_augment, vmap_check=fixed is None or fixed > 1,
        strategy=strategy, ensemble=fixed, memory=memory, known=known_tunings(store.path) if strategy == "auto" else None,
        distill=distill, alike=most_alike(todo, plan, cfg.batch_size),
    )  # fmt: skip
    # data given as arrays travels once (Ray's object store); data functions run in the tasks
    train_arg, test_arg = (src if src is None or callable(src) else ex.share(src) for src in (train, test))
    plan_arg = ex.share(plan)
    common = (job, plan_arg, train_arg, test_arg)
    bar = _Progress(len(todo), progress and local)
    written: list[str] = []
    diverged: dict[str, tuple[int, int]] = {}
    try:
        with in_process(job.token, bar.advance if local else None):
            # ---- the checks, where the tasks run (the device, the data); then one task per ensemble
            ((_, (exact, tuning)),) = ex.map(check_task, [common], desc="checks")
            check_settings(store, settings)
            record_settings(store, settings)  # the checks passed: these are the store's settings
            if tuning.source == "measured":
                record(store.path, tuning)
                remember(tuning)
            # every task trains with the strategy and sizes the check found on the device
            common = (dataclasses.replace(job, tuning=tuning), plan_arg, train_arg, test_arg)
            groups = group_runs(todo, plan, cfg.batch_size, tuning.ensemble, exact)
            tasks = ex.map(
                train_task, [(*common, g) for g in groups], units=[len(g) for g in groups],
                desc="training runs", unit="runs", progress=progress and not local,
            )  # fmt: skip
            # ---- merge: every run is published whole under its run id, as its task ends
            for i, (files, lost) in tasks:
                diverged.update(lost)
                for rid, data in files.items():  # storage="object": the driver writes the runs
                    if not publish_run_bytes(store.path / run_rel(rid), data, f"run {rid} from a worker"):
                        store.refresh()  # another trainer stored it meanwhile: it must be this run
                        check_stored_run(store, plan, plan.run_ids.index(rid))
                written += [plan.run_ids[r] for r in groups[i] if plan.run_ids[r] not in lost]
    finally:
        bar.close()
        store.refresh()
    if diverged:
        where = ", ".join(f"{rid} at epoch {e} step {k}" for rid, (e, k) in sorted(diverged.items()))
        raise DivergedError(
            f"{len(diverged)} run(s) diverged (the training loss turned NaN or infinite): {where}; "
            f"they were not stored, the other {len(written)} run(s) were. Lower lr, clip the gradients "
            "(grad_clip=) or check the data"
        )
    missing = sorted(set(written) - set(store.run_ids()))
    if missing:  # pragma: no cover - a task reported runs the store does not hold
        raise StoreError(f"{store.path}: runs {missing[:5]} were trained but are not in the store")
    return sorted(written)


def _train_until(call: dict[str, Any], until: Any, round_runs: int | None, max_runs: int | None) -> list[str]:
    """:func:`train_runs` in rounds until the targets hold (see its ``until``)."""
    from ..runs.forecast import parse_targets

    targets = parse_targets(until)
    budget = check_optional_int(max_runs, "max_runs", 0)
    ex = as_executor(call["executor"])
    step = (
        check_int(round_runs, "round_runs", 1)
        if round_runs is not None
        else (ex.runs_per_task or call["ensemble"] or 64)
    )
    call["executor"] = ex
    store: RunStore = call["store"]
    written: list[str] = []
    while True:
        store.refresh()
        if all(ok for _, _, ok in store.target_values(targets, seed=call["seed"], executor=ex)):
            break
        n = step if budget is None else min(step, budget - len(written))
        if n <= 0:
            break
        got = train_runs(**call, max_runs=n)
        if not got:  # every run of the plan is in the store
            break
        written += got
    return sorted(written)


def _unfinished(plan: SubsetPlan, store: RunStore) -> list[int]:
    """Plan indices of the runs not in ``store``, in plan order; a stored run with a plan
    run id but another mask or other draw counts is an error (another plan filled it)."""
    existing = set(store.refresh())  # runs other processes added since the store was opened
    todo = []
    for r, rid in enumerate(plan.run_ids):
        if rid in existing:
            check_stored_run(store, plan, r)
            continue
        todo.append(r)
    return todo
