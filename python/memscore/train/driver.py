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

from .._validate import check_bool, check_int, check_optional_int
from ..errors import StoreError
from ..runs.outcomes import logit_confidence
from ..runs.store import RunStore
from .augment import Augmentation, query_views, resolve_augment
from .config import TrainConfig, _as_xy, _torch
from .ensemble import _Ensemble, snapshot_outcomes_torch
from .inputs import DeviceInputs
from .models import epoch_batches, init_model, run_seed
from .plan import SubsetPlan

if TYPE_CHECKING:  # pragma: no cover
    pass

__all__ = ["create_store", "train_runs"]


# ----------------------------------------------------------------------------- checks


def _check_model(model: Any, x: Any, n_classes: int) -> None:
    torch = _torch()
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model_fn: expected it to return a torch.nn.Module, got {type(model).__name__}")
    if not any(True for _ in model.parameters()):
        raise ValueError("model_fn: the model has no parameters to train")
    model.eval()  # a shape check that leaves BatchNorm's running statistics alone
    with torch.no_grad():
        out = model(x[:2])
    model.train()
    if not isinstance(out, torch.Tensor) or out.shape != (min(2, x.shape[0]), n_classes):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"model_fn: expected the model to map {tuple(x[:2].shape)} inputs to ({min(2, x.shape[0])}, {n_classes}) logits, got {shape}"
        )


def _check_labels(y: Any, n_classes: int, name: str) -> None:
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= n_classes:
        raise ValueError(f"{name}: expected labels in 0..{n_classes - 1}, got range {lo}..{hi}")


def _batch_dependent(model: Any) -> bool:
    """Whether the model's training forward mixes the examples of a batch (BatchNorm): then
    every member's batch must hold exactly its own examples (no padding)."""
    torch = _torch()
    return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())


def _check_vmappable(models: list[Any], x: Any, n_classes: int, cfg: TrainConfig, dev: Any) -> None:
    """One vmapped training forward and backward of a 2-member ensemble on a tiny batch,
    naming the innermost module that ``torch.func.vmap`` cannot run."""
    import dataclasses

    torch = _torch()
    # uncompiled: a compilation for this tiny batch would cost as much as the real one
    ens = _Ensemble(models, dataclasses.replace(cfg, compile=False), dev, 1)
    entered: list[str] = []

    def pre(name: str) -> Callable[..., None]:
        return lambda *_: entered.append(name)

    def post(*_: Any) -> None:
        entered.pop()

    hooks = []
    for name, mod in ens.base.named_modules():
        hooks += [mod.register_forward_pre_hook(pre(name or "the model")), mod.register_forward_hook(post)]
    xb = x.unsqueeze(0).expand(ens.E, *x.shape)
    try:
        out = ens.forward_train(xb)
        torch.autograd.grad(out.float().sum(), ens.params)
    except Exception as exc:  # noqa: BLE001 - any failure here is the model's; name its module
        where = entered[-1] if entered else "the model"
        kind = type(ens.base.get_submodule(where)).__name__ if entered and where != "the model" else ""
        raise ValueError(
            f"model_fn: module {where!r} {kind} cannot run in a vmapped ensemble ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); use ensemble=1 or a vmap-compatible module"
        ) from exc
    finally:
        for h in hooks:
            h.remove()
    if out.shape != (ens.E, x.shape[0], n_classes):  # pragma: no cover - _check_model saw the shape
        raise ValueError(f"model_fn: vmapped logits of shape {tuple(out.shape)}")


def _ignore_generator(view: Callable[[Any], Any]) -> Callable[[Any, Any], Any]:
    """A query view ``x -> x`` as an augmentation ``(x, generator) -> x`` (for the checks)."""
    return lambda x, _generator: view(x)


def _check_augment(augment: Callable[[Any, Any], Any] | None, x: Any, name: str = "augment") -> None:
    """An augmentation (or a query view) must keep the batch's shape and dtype."""
    if augment is None:
        return
    torch = _torch()
    try:
        out = augment(x, torch.Generator().manual_seed(0))
    except Exception as exc:  # noqa: BLE001 - report the user's augmentation failing on a sample batch
        raise ValueError(f"{name}: failed on a batch of shape {tuple(x.shape)}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(out, torch.Tensor) or out.shape != x.shape or out.dtype != x.dtype:
        got = f"{tuple(out.shape)} {out.dtype}" if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"{name}: expected a batch of the input's shape and dtype {tuple(x.shape)} {x.dtype}, got {got}"
        )


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
    executor: Any = None,
    compile: bool = False,
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
        Autocast precision on CUDA (fp16 with a gradient scaler); the CPU trains in fp32.
    data_on_device : bool, optional
        Hold the training inputs on the device (default: when they take less than a quarter of
        its free memory); otherwise in pinned host memory, moving each step's batches.
    query_augment : None, "mirror", "mirror-shift", "shift", or list of callables, optional
        LiRA's augmented queries: also record every final model's confidence φ on K views of
        every example (:data:`memscore.train.augment.QUERY_VIEWS`, identity first),
        stored as ``(n, K)`` per run and read with ``store.outcomes(split, "phi_views")``.
    runs : sequence of int, optional
        Train only these runs of the plan (indices into it); the others are left for
        other calls (a Ray task trains its group of runs this way).
    executor : memscore.cluster.RayExecutor, optional
        Train on a Ray cluster instead: the unfinished runs are cut into groups of
        ``executor.runs_per_task`` (default ``ensemble``), one task per group; ``train``
        and ``test`` may then be zero-argument functions that load the data inside the
        worker (:class:`memscore.train.ray_runs.DatasetSplit` loads an embedded dataset
        by name). See :func:`memscore.train.ray_runs.train_on_ray`.
    compile : bool, default False
        Compile the ensemble's training forward with ``torch.compile`` (same runs to float
        tolerance; see :class:`TrainConfig` and docs/training.md for when it pays off).

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
            grand=grand, keep_logits=keep_logits, seed=seed, schedule=schedule, warmup=warmup,
            step_epochs=step_epochs, gamma=gamma, label_smoothing=label_smoothing, nesterov=nesterov,
            grad_clip=grad_clip, augment=augment, normalize=normalize, precision=precision,
            data_on_device=data_on_device, query_augment=query_augment, compile=compile,
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
        schedule=schedule, warmup=warmup, step_epochs=tuple(step_epochs), gamma=gamma,
        label_smoothing=label_smoothing, nesterov=nesterov, grad_clip=grad_clip, precision=precision,
        compile=compile,
    )  # fmt: skip
    dev = _resolve_device(device)
    _check_precision(cfg.precision, dev)
    if cfg.compile:
        _check_compile(dev)
    aug, aug_name = resolve_augment(augment)
    views = query_views(query_augment)
    if data_on_device is not None:
        check_bool(data_on_device, "data_on_device")
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
    inputs = DeviceInputs(x_tr, dev, normalize=normalize, on_device=_fits(x_tr, dev, data_on_device))
    test_inputs = (
        DeviceInputs(x_te, dev, normalize=normalize, on_device=_fits(x_te, dev, data_on_device))
        if x_te is not None
        else None
    )
    _check_augment(aug, x_tr[:2].to(dev))
    for v in views:
        _check_augment(_ignore_generator(v), x_tr[:2].to(dev), "query_augment")
    sample = inputs.to_float(inputs.raw(_torch().arange(min(2, len(inputs)))))
    first = init_model(model_fn, seed, 0)
    _check_model(first.to(dev), sample, n_classes)
    if ensemble > 1:
        _check_vmappable([first, init_model(model_fn, seed, 1)], sample, n_classes, cfg, dev)
    exact = _batch_dependent(first)

    existing = set(store.refresh())  # runs other processes added since the store was opened
    todo = []
    for r, rid in enumerate(plan.run_ids):
        if rid in existing:
            if not np.array_equal(store.mask(rid), plan.masks[r]):
                raise StoreError(
                    f"{store.path}: run {rid} exists with a different mask: the store was filled by another plan"
                )
            _check_multiplicity(store, rid, plan, r)
            continue
        todo.append(r)
    if runs is not None:
        only = {check_int(r, "runs[]", 0, plan.n_runs - 1) for r in runs}
        todo = [r for r in todo if r in only]
    if max_runs is not None:
        todo = todo[:max_runs]

    y_tr = y_tr.to(dev)
    y_te = y_te.to(dev) if y_te is not None else None
    data = _Data(inputs, y_tr, test_inputs, y_te, aug, aug_name, views)
    bar = _Progress(len(todo), progress)
    written: list[str] = []
    try:
        for group in _groups(todo, plan, cfg.batch_size, int(ensemble), exact):
            written += _train_group(model_fn, group, plan, store, cfg, data, dev, keep_logits, bar)
    finally:
        bar.close()
    return sorted(written)


def _groups(todo: list[int], plan: SubsetPlan, batch_size: int, ensemble: int, exact: bool = False) -> list[list[int]]:
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


def _check_multiplicity(store: RunStore, rid: str, plan: SubsetPlan, r: int) -> None:
    """A stored run of a bootstrap plan must have the plan's draw counts (and a subset
    plan's run none): otherwise the store was filled by another plan."""
    have = store.multiplicity(rid)
    want = plan.multiplicities
    same = have is None if want is None else have is not None and np.array_equal(have, want[r])
    if not same:
        raise StoreError(
            f"{store.path}: run {rid} exists with different bootstrap multiplicities: the store was filled by another plan"
        )


def _check_precision(precision: str, dev: Any) -> None:
    """Mixed precision needs CUDA (and bf16 a GPU with bf16); the CPU trains in fp32."""
    torch = _torch()
    if precision == "fp32":
        return
    if dev.type != "cuda":
        raise ValueError(f"precision: {precision!r} needs a CUDA device; on {dev.type} training is fp32")
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise ValueError(f"precision: 'bf16' is not supported by {torch.cuda.get_device_name(dev)}; use 'fp16'")


def _check_compile(dev: Any) -> None:
    """``torch.compile`` must work on ``dev`` (inductor needs a C++ compiler on the CPU, Triton
    on CUDA): a tiny function is compiled and run before any training starts."""
    torch = _torch()
    try:
        out = torch.compile(lambda t: t * 2.0 + 1.0, dynamic=False)(torch.ones(4, device=dev))
        ok = bool((out == 3.0).all())
    except Exception as exc:  # noqa: BLE001 - any failure means compile cannot be used here
        raise ValueError(
            f"compile: torch.compile does not work on this {dev.type} device ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); it needs a C++ compiler (CPU) or Triton (CUDA), "
            "or train with compile=False"
        ) from exc
    if not ok:  # pragma: no cover - a broken backend
        raise ValueError("compile: torch.compile gave a wrong result on a test function; train with compile=False")


def _fits(x: Any, dev: Any, data_on_device: bool | None) -> bool:
    """Whether to hold ``x`` on the device: as asked, else when it takes under a quarter of
    the device's free memory (always on the CPU)."""
    if data_on_device is not None:
        return data_on_device
    if dev.type != "cuda":
        return True
    free, _ = _torch().cuda.mem_get_info(dev)
    return bool(x.numel() * x.element_size() < free // 4)


class _Data:
    """The training data as the groups use it."""

    def __init__(
        self,
        x: DeviceInputs,
        y: Any,
        x_test: DeviceInputs | None,
        y_test: Any,
        aug: Any,
        aug_name: str,
        views: Sequence[Callable[[Any], Any]] = (),
    ) -> None:
        self.x, self.y, self.x_test, self.y_test = x, y, x_test, y_test
        self.aug, self.aug_name, self.views = aug, aug_name, list(views)

    def augmented(self, xb: Any, real: list[int], gens: list[Any]) -> Any:
        """Member ``e``'s first ``real[e]`` examples of ``xb`` (E, b, ...) augmented with its
        own generator; padding rows stay as they are (their loss weight is 0)."""
        torch = _torch()
        aug, b = self.aug, xb.shape[1]
        if aug is None:
            return xb
        if isinstance(aug, Augmentation):
            draws = [aug.draw(k, g) for k, g in zip(real, gens, strict=True)]
            params = {
                key: torch.stack([torch.cat([d[key], d[key].new_zeros(b - d[key].shape[0])]) for d in draws]).to(
                    xb.device
                )
                for key in draws[0]
            }
            return aug.apply(xb, params)
        out = xb.clone()
        for e, (k, g) in enumerate(zip(real, gens, strict=True)):
            out[e, :k] = aug(xb[e, :k], g)
        return out


def _fit_group(
    model_fn: Callable[[], Any],
    runs: list[int],
    plan: SubsetPlan,
    cfg: TrainConfig,
    data: _Data,
    dev: Any,
    bar: _Progress | None = None,
) -> tuple[_Ensemble, dict[str, list[Any]]]:
    """Train the runs ``runs`` as one ensemble; returns it with the snapshots' outcomes."""
    torch = _torch()
    E = len(runs)
    subsets = [plan.epoch_examples(r) for r in runs]  # a bootstrap draw k times appears k times
    steps_per_epoch = -(-int(subsets[0].size) // cfg.batch_size)
    ens = _Ensemble([init_model(model_fn, cfg.seed, r) for r in runs], cfg, dev, steps_per_epoch)
    rngs = [np.random.default_rng(run_seed(cfg.seed, r, 1)) for r in runs]
    gens = [torch.Generator().manual_seed(run_seed(cfg.seed, r, 2)) for r in runs]
    snaps: dict[str, list[Any]] = {}
    chunk = 4096

    def snapshot() -> None:
        for split, x, y in (("train", data.x, data.y), ("test", data.x_test, data.y_test)):
            if x is None:
                continue
            out = snapshot_outcomes_torch(ens.logits(x.chunks(chunk)), y)
            for k, v in out.items():
                snaps.setdefault(f"{split}_{k}", []).append(v.cpu())
        if cfg.grand:
            snaps.setdefault("train_grand", []).append(ens.grad_norms(data.x.chunks(ens.grad_chunk()), data.y).cpu())

    if 0 in cfg.snapshot_epochs:
        snapshot()
    for epoch in range(1, cfg.epochs + 1):
        batches = [epoch_batches(s, cfg.batch_size, rng) for s, rng in zip(subsets, rngs, strict=True)]
        if any(len(b) != steps_per_epoch for b in batches):  # pragma: no cover - train_runs groups by step count
            raise AssertionError("ensemble members must take the same number of steps per epoch")
        for t in range(steps_per_epoch):
            # every member's batch at once; a smaller last batch is padded with example 0, weight 0
            real = [int(b[t].size) for b in batches]
            width = max(real)
            idx = np.zeros((E, width), dtype=np.int64)
            w = np.zeros((E, width), dtype=np.float32)
            for e, b in enumerate(batches):
                idx[e, : real[e]] = b[t]
                w[e, : real[e]] = 1.0
            it, wt = torch.from_numpy(idx), torch.from_numpy(w).to(dev)
            xb = data.x.to_float(data.augmented(data.x.raw(it), real, gens))
            logits = ens.forward_train(xb).float()
            per = torch.nn.functional.cross_entropy(
                logits.flatten(0, 1), data.y[it.to(dev)].flatten(), reduction="none",
                label_smoothing=cfg.label_smoothing,
            ).view(E, -1)  # fmt: skip
            # Each member's loss is the mean over its real batch.
            ens.step(((per * wt).sum(1) / wt.sum(1)).sum())
        if bar is not None:
            bar.advance(E / cfg.epochs)
        if epoch in cfg.snapshot_epochs:
            snapshot()
    return ens, snaps


def _train_group(
    model_fn: Callable[[], Any],
    runs: list[int],
    plan: SubsetPlan,
    store: RunStore,
    cfg: TrainConfig,
    data: _Data,
    dev: Any,
    keep_logits: bool,
    bar: _Progress,
) -> list[str]:
    torch = _torch()
    ens, snaps = _fit_group(model_fn, runs, plan, cfg, data, dev, bar)
    z_tr = ens.logits(data.x.chunks(4096)).cpu().numpy()
    z_te = ens.logits(data.x_test.chunks(4096)).cpu().numpy() if data.x_test is not None else None
    stacked = {k: torch.stack(v, dim=1).numpy() for k, v in snaps.items()}  # (E, S, n)
    views: dict[str, Any] = {"train": None, "test": None}
    for split, x, y in (("train", data.x, data.y), ("test", data.x_test, data.y_test)):
        if data.views and x is not None:
            lab = y.cpu().numpy()
            views[split] = np.stack(
                [logit_confidence(ens.logits(x.chunks(4096, v)).cpu().numpy(), lab) for v in data.views], axis=-1
            )  # (E, n, K)
    ids = []
    meta = cfg.as_dict() | {"augment": data.aug_name, "query_views": len(data.views)}
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
                train_phi_views=None if views["train"] is None else views["train"][e],
                test_phi_views=None if views["test"] is None else views["test"][e],
                multiplicity=None if plan.multiplicities is None else plan.multiplicities[r],
            )
        )
    return ids
