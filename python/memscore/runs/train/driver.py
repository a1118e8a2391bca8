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
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..._validate import check_bool, check_int, check_optional_int
from ...errors import StoreError
from ..store import RunStore
from .config import TrainConfig, _as_xy, _torch
from .ensemble import _Ensemble, snapshot_outcomes_torch
from .models import epoch_batches, init_model, run_seed
from .plan import SubsetPlan

if TYPE_CHECKING:  # pragma: no cover
    pass

__all__ = ["create_store", "train_runs"]


# ----------------------------------------------------------------------------- checks


def _check_model(model: Any, x: Any, n_classes: int, ensemble: int) -> None:
    torch = _torch()
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model_fn: expected it to return a torch.nn.Module, got {type(model).__name__}")
    if not any(True for _ in model.parameters()):
        raise ValueError("model_fn: the model has no parameters to train")
    if ensemble > 1:
        stateful = [type(m).__name__ for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        if stateful:
            raise ValueError(
                f"model_fn: {stateful[0]} keeps running statistics, which a vmapped ensemble cannot update; "
                "use LayerNorm/GroupNorm or ensemble=1"
            )
    with torch.no_grad():
        out = model(x[:2])
    if not isinstance(out, torch.Tensor) or out.shape != (min(2, x.shape[0]), n_classes):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"model_fn: expected the model to map {tuple(x[:2].shape)} inputs to ({min(2, x.shape[0])}, {n_classes}) logits, got {shape}"
        )


def _check_labels(y: Any, n_classes: int, name: str) -> None:
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= n_classes:
        raise ValueError(f"{name}: expected labels in 0..{n_classes - 1}, got range {lo}..{hi}")


def _check_store(store: RunStore, plan: SubsetPlan, y_train: Any, y_test: Any | None) -> None:
    if store.n_train != plan.n_examples or store.n_train != y_train.shape[0]:
        raise StoreError(
            f"{store.path}: the store was created for {store.n_train} training examples; "
            f"the plan has {plan.n_examples} and the data {y_train.shape[0]}"
        )
    n_test = 0 if y_test is None else int(y_test.shape[0])
    if store.n_test != n_test:
        raise StoreError(f"{store.path}: the store was created for {store.n_test} test examples, the data has {n_test}")
    for lab, given, split in ((store.train_labels, y_train, "train"), (store.test_labels, y_test, "test")):
        if given is None:
            continue
        if lab is None:
            raise StoreError(
                f"{store.path}: the store has no {split}_labels; create it with them (memscore.train.create_store)"
            )
        if not np.array_equal(lab, given.cpu().numpy()):
            raise StoreError(
                f"{store.path}: the store's {split}_labels differ from the data's: it was created for other examples"
            )


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
        Number of classes (default: the largest label + 1, at least 2).
    metadata : dict, optional
        JSON-serializable description kept in the store.

    Returns
    -------
    RunStore

    Raises
    ------
    TypeError, ValueError
        Bad data, or labels outside ``0 .. n_classes - 1``.
    StoreError
        A store already exists at ``path``.
    """
    _, y = _as_xy(train, "train")
    y_test = _as_xy(test, "test")[1] if test is not None else None
    c = (
        int(n_classes)
        if n_classes is not None
        else int(max(int(y.max()), -1 if y_test is None else int(y_test.max())) + 1)
    )
    return RunStore.create(
        path,
        n_train=int(y.shape[0]),
        n_test=0 if y_test is None else int(y_test.shape[0]),
        train_labels=y.numpy(),
        test_labels=None if y_test is None else y_test.numpy(),
        n_classes=max(c, 2),
        metadata=metadata,
    )


def _resolve_device(device: Any) -> Any:
    torch = _torch()
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device: expected 'auto', 'cpu', 'cuda' or a torch.device, got {device!r}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: 'cuda' requested but torch sees no CUDA device")
    return dev


# ----------------------------------------------------------------------------- the driver


class _Progress:
    """A tqdm bar counting finished runs (fractional while an ensemble trains), with runs/min."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.bar = None
        self.t0 = time.perf_counter()
        self.done = 0.0
        if enabled and total:
            try:
                from tqdm.auto import tqdm
            except ImportError:  # pragma: no cover - tqdm comes with the train extra
                return
            self.bar = tqdm(
                total=total,
                unit="run",
                desc="training runs",
                dynamic_ncols=True,
                bar_format="{l_bar}{bar}| {n:.1f}/{total} runs [{elapsed}<{remaining}{postfix}]",
            )

    def advance(self, runs: float) -> None:
        step = min(runs, (self.bar.total if self.bar is not None else float("inf")) - self.done)
        self.done += step
        if self.bar is not None:
            self.bar.update(step)
            rate = self.done / max(time.perf_counter() - self.t0, 1e-9) * 60
            self.bar.set_postfix_str(f"{rate:.1f} runs/min")

    def close(self) -> None:
        if self.bar is not None:
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
    ensemble: int = 64,
    device: Any = "auto",
    snapshot_epochs: Sequence[int] = (),
    grand: bool = False,
    keep_logits: bool = True,
    seed: int = 0,
    progress: bool = True,
    max_runs: int | None = None,
    runs: Sequence[int] | None = None,
    executor: Any = None,
) -> list[str]:
    """Train every run of ``plan`` (skipping runs already in ``store``) and store each one.

    Parameters
    ----------
    model_fn : callable
        Builds a fresh ``torch.nn.Module`` mapping a batch of inputs to logits (called once
        per run, under the run's own seed).
    train, test : tuple of arrays / tensors, or torch Dataset
        ``(inputs, labels)``, or map-style Datasets of ``(input, label)``; ``test`` may be
        None. Both are held on ``device``.
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
    ensemble : int, default 64
        Runs trained at once as one vmapped model.
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
        Show a progress bar (tqdm) with runs done, runs/min and ETA.
    max_runs : int, optional
        Stop after this many new runs (for time-boxed jobs; resume later).
    runs : sequence of int, optional
        Train only these runs of the plan (indices into it); the others are left for
        other calls (a Ray task trains its group of runs this way).
    executor : memscore.cluster.RayExecutor, optional
        Train on a Ray cluster instead: the unfinished runs are cut into groups of
        ``executor.runs_per_task`` (default ``ensemble``), one task per group; ``train``
        and ``test`` may then be zero-argument functions that load the data inside the
        worker (:class:`memscore.runs.train.ray_runs.DatasetSplit` loads an embedded dataset
        by name). See :func:`memscore.runs.train.ray_runs.train_on_ray`.

    Returns
    -------
    list of str
        The run ids written by this call, in plan order.

    Raises
    ------
    TypeError
        An argument or data of the wrong type (non-integer labels, a plan that is not a
        :class:`SubsetPlan`, a model that is not a ``torch.nn.Module``).
    ValueError
        A value out of range: a model whose output does not match the number of classes,
        labels out of range, an empty subset, NaN inputs. All are raised before any
        training starts.
    StoreError
        The store was created for other examples, or holds a run with a plan run id but a
        different mask.
    ImportError
        torch is not installed.

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
    if executor is not None:
        from .ray_runs import train_on_ray

        return train_on_ray(
            model_fn, train, test, plan, store, executor=executor, ensemble=ensemble, progress=progress,
            max_runs=max_runs, runs=runs, epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
            momentum=momentum, weight_decay=weight_decay, device=device, snapshot_epochs=tuple(snapshot_epochs),
            grand=grand, keep_logits=keep_logits, seed=seed,
        )  # fmt: skip
    if not isinstance(plan, SubsetPlan):
        raise TypeError(f"plan: expected a memscore.train.SubsetPlan, got {type(plan).__name__}")
    if not isinstance(store, RunStore):
        raise TypeError(f"store: expected a memscore.RunStore, got {type(store).__name__}")
    ensemble = check_int(ensemble, "ensemble", 1)
    keep_logits = check_bool(keep_logits, "keep_logits")
    progress = check_bool(progress, "progress")
    max_runs = check_optional_int(max_runs, "max_runs", 0)
    if not callable(model_fn):
        raise TypeError(f"model_fn: expected a function returning a torch.nn.Module, got {type(model_fn).__name__}")
    cfg = TrainConfig(
        epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, momentum=momentum,
        weight_decay=weight_decay, snapshot_epochs=tuple(snapshot_epochs), grand=bool(grand), seed=seed,
    )  # fmt: skip
    dev = _resolve_device(device)
    x_tr, y_tr = _as_xy(train, "train")
    x_te, y_te = _as_xy(test, "test") if test is not None else (None, None)
    if x_te is not None and x_te.shape[1:] != x_tr.shape[1:]:
        raise ValueError(f"test: inputs of shape {tuple(x_te.shape[1:])}, train inputs {tuple(x_tr.shape[1:])}")
    _check_store(store, plan, y_tr, y_te)
    n_classes = store.n_classes or int(max(int(y_tr.max()), -1 if y_te is None else int(y_te.max())) + 1)
    _check_labels(y_tr, n_classes, "train labels")
    if y_te is not None:
        _check_labels(y_te, n_classes, "test labels")
    sizes = plan.masks.sum(axis=1)
    if (sizes == 0).any():
        raise ValueError(f"plan: run {int(np.argmax(sizes == 0))} has an empty subset")
    _check_model(init_model(model_fn, seed, 0), x_tr, n_classes, int(ensemble))

    existing = set(store.refresh())  # runs other processes added since the store was opened
    todo = []
    for r, rid in enumerate(plan.run_ids):
        if rid in existing:
            if not np.array_equal(store.mask(rid), plan.masks[r]):
                raise StoreError(
                    f"{store.path}: run {rid} exists with a different mask: the store was filled by another plan"
                )
            continue
        todo.append(r)
    if runs is not None:
        only = {check_int(r, "runs[]", 0, plan.n_runs - 1) for r in runs}
        todo = [r for r in todo if r in only]
    if max_runs is not None:
        todo = todo[:max_runs]

    x_tr, y_tr = x_tr.to(dev), y_tr.to(dev)
    if x_te is not None and y_te is not None:
        x_te, y_te = x_te.to(dev), y_te.to(dev)
    bar = _Progress(len(todo), progress)
    written: list[str] = []
    try:
        for group in _groups(todo, plan, cfg.batch_size, int(ensemble)):
            written += _train_group(model_fn, group, plan, store, cfg, x_tr, y_tr, x_te, y_te, dev, keep_logits, bar)
    finally:
        bar.close()
    return sorted(written)


def _groups(todo: list[int], plan: SubsetPlan, batch_size: int, ensemble: int) -> list[list[int]]:
    """Runs grouped into ensembles of at most ``ensemble`` runs that take the same number of
    steps per epoch, ``ceil(subset size / batch_size)``: every member then steps at every
    step and the optimizer needs no masking. Runs do not depend on their grouping."""
    steps = {r: -(-int(plan.masks[r].sum()) // batch_size) for r in todo}
    out: list[list[int]] = []
    for k in sorted(set(steps.values())):
        same = [r for r in todo if steps[r] == k]
        out += [same[i : i + ensemble] for i in range(0, len(same), ensemble)]
    return out


def _train_group(
    model_fn: Callable[[], Any],
    runs: list[int],
    plan: SubsetPlan,
    store: RunStore,
    cfg: TrainConfig,
    x_tr: Any,
    y_tr: Any,
    x_te: Any,
    y_te: Any,
    dev: Any,
    keep_logits: bool,
    bar: _Progress,
) -> list[str]:
    torch = _torch()
    E = len(runs)
    ens = _Ensemble([init_model(model_fn, cfg.seed, r) for r in runs], cfg, dev)
    rngs = [np.random.default_rng(run_seed(cfg.seed, r, 1)) for r in runs]
    subsets = [np.flatnonzero(plan.masks[r]) for r in runs]
    snaps: dict[str, list[Any]] = {}

    def snapshot() -> None:
        for split, x, y in (("train", x_tr, y_tr), ("test", x_te, y_te)):
            if x is None:
                continue
            out = snapshot_outcomes_torch(ens.logits(x), y)
            for k, v in out.items():
                snaps.setdefault(f"{split}_{k}", []).append(v.cpu())
        if cfg.grand:
            snaps.setdefault("train_grand", []).append(ens.grad_norms(x_tr, y_tr).cpu())

    if 0 in cfg.snapshot_epochs:
        snapshot()
    for epoch in range(1, cfg.epochs + 1):
        batches = [epoch_batches(s, cfg.batch_size, rng) for s, rng in zip(subsets, rngs, strict=True)]
        n_steps = len(batches[0])
        if any(len(b) != n_steps for b in batches):  # pragma: no cover - train_runs groups by step count
            raise AssertionError("ensemble members must take the same number of steps per epoch")
        # The epoch's schedule as (steps, E, batch) index and weight tensors, built once:
        # a smaller last batch is padded with index 0 and weight 0.
        idx = np.zeros((n_steps, E, cfg.batch_size), dtype=np.int64)
        w = np.zeros((n_steps, E, cfg.batch_size), dtype=np.float32)
        for e, b in enumerate(batches):
            flat = np.zeros(n_steps * cfg.batch_size, dtype=np.int64)
            got = np.concatenate(b)
            flat[: got.size] = got
            idx[:, e] = flat.reshape(n_steps, cfg.batch_size)
            w[:, e] = (np.arange(flat.size) < got.size).reshape(n_steps, cfg.batch_size)
        idx_t, w_t = torch.from_numpy(idx).to(dev), torch.from_numpy(w).to(dev)
        for t in range(n_steps):
            it, wt = idx_t[t], w_t[t]
            logits = ens.vm_batch(ens.params, ens.buffers, x_tr[it])
            per = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y_tr[it].flatten(), reduction="none").view(
                E, -1
            )
            # Each member's loss is the mean over its real batch.
            loss = ((per * wt).sum(1) / wt.sum(1)).sum()
            ens.step(torch.autograd.grad(loss, ens.params))
        bar.advance(E / cfg.epochs)
        if epoch in cfg.snapshot_epochs:
            snapshot()

    z_tr = ens.logits(x_tr).cpu().numpy()
    z_te = ens.logits(x_te).cpu().numpy() if x_te is not None else None
    stacked = {k: torch.stack(v, dim=1).numpy() for k, v in snaps.items()}  # (E, S, n)
    ids = []
    meta = cfg.as_dict()
    for e, r in enumerate(runs):
        snap = None
        if stacked:
            snap = {"epochs": np.array(cfg.snapshot_epochs)} | {k: v[e] for k, v in stacked.items()}
        ids.append(
            store.add_run(
                plan.masks[r],
                train_logits=z_tr[e],
                test_logits=None if z_te is None else z_te[e],
                subset_ratio=float(plan.subset_ratios[r]),
                run_id=plan.run_ids[r],
                metadata={**meta, "run": r},
                keep_logits=keep_logits,
                snapshots=snap,
            )
        )
    return ids
