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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..._torch import require_torch
from ..._validate import check_bool, check_choice, check_float, check_int, check_optional_int
from ...errors import StoreError
from ..store import RunStore
from .plan import SubsetPlan

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["train_runs", "TrainConfig", "mlp", "snapshot_outcomes_torch"]

_OPTIMIZERS = ("sgd", "adam", "adamw")


def _torch() -> Any:
    return require_torch("memscore.train")


# ----------------------------------------------------------------------------- models


def mlp(
    in_features: int, n_classes: int, width: int = 512, depth: int = 1, activation: str = "square"
) -> torch.nn.Module:
    """A fully connected network: ``depth`` hidden layers of ``width`` units.

    ``activation="square"`` (x²) is the quadratic MLP of Gromov (2023), which learns
    modular arithmetic from one-hot inputs in a few hundred steps; ``"relu"`` and
    ``"gelu"`` are the usual choices elsewhere.

    Parameters
    ----------
    in_features : int
        Input dimension, >= 1.
    n_classes : int
        Output logits, >= 2.
    width : int, default 512
        Units per hidden layer, >= 1.
    depth : int, default 1
        Hidden layers, >= 0 (0 = a linear model).
    activation : {"square", "relu", "gelu"}, default "square"
        The hidden activation.

    Returns
    -------
    torch.nn.Sequential

    Raises
    ------
    TypeError
        A non-integer size or a non-string activation.
    ValueError
        A size below its minimum or an unknown activation.
    ImportError
        torch is not installed.

    Examples
    --------
    >>> from memscore.train import mlp
    >>> mlp(4, 3, width=8)
    Sequential(
      (0): Linear(in_features=4, out_features=8, bias=True)
      (1): Square()
      (2): Linear(in_features=8, out_features=3, bias=True)
    )
    """
    check_choice(activation, "activation", ("gelu", "relu", "square"))
    in_features = check_int(in_features, "in_features", 1)
    n_classes = check_int(n_classes, "n_classes", 2)
    width = check_int(width, "width", 1)
    depth = check_int(depth, "depth", 0)
    nn = _torch().nn

    class Square(nn.Module):  # type: ignore[misc,name-defined]  # torch is Any here (lazy import)
        def forward(self, x: Any) -> Any:
            return x * x

    acts: dict[str, Callable[[], Any]] = {"square": Square, "relu": nn.ReLU, "gelu": nn.GELU}
    layers: list[Any] = []
    d = int(in_features)
    for _ in range(int(depth)):
        layers += [nn.Linear(d, int(width)), acts[activation]()]
        d = int(width)
    layers.append(nn.Linear(d, int(n_classes)))
    model: torch.nn.Module = nn.Sequential(*layers)
    return model


# ----------------------------------------------------------------------------- inputs


def _as_xy(data: Any, name: str) -> tuple[Any, Any]:
    """(inputs float tensor, labels int64 tensor) from a pair of arrays/tensors or a Dataset."""
    torch = _torch()
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = data
    elif hasattr(data, "__len__") and hasattr(data, "__getitem__"):
        # A map-style torch Dataset of (input, label) items: materialize it once; the
        # whole set lives on the device so that every member can draw its own batches.
        if len(data) == 0:
            raise ValueError(f"{name}: the dataset is empty")
        items = [data[i] for i in range(len(data))]
        if not all(isinstance(it, (tuple, list)) and len(it) == 2 for it in items[:1]):
            raise TypeError(f"{name}: expected a Dataset of (input, label) pairs")
        x = torch.stack([torch.as_tensor(it[0]) for it in items])
        y = torch.as_tensor([int(it[1]) for it in items])
    else:
        raise TypeError(
            f"{name}: expected (inputs, labels) arrays/tensors or a torch Dataset, got {type(data).__name__}"
        )
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    y = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y)
    if not torch.is_floating_point(x):
        x = x.float()
    if y.ndim != 1 or y.dtype.is_floating_point or y.dtype == torch.bool:
        raise TypeError(f"{name}: expected 1-D integer class labels, got shape {tuple(y.shape)} {y.dtype}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{name}: {x.shape[0]} inputs but {y.shape[0]} labels")
    if x.shape[0] == 0:
        raise ValueError(f"{name}: no examples")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name}: inputs contain NaN or infinite values")
    return x, y.long()


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters shared by every run (kept in each run's metadata).

    Parameters
    ----------
    epochs : int
        Passes over each run's subset, >= 1.
    batch_size : int
        Minibatch size, >= 1.
    lr : float
        Learning rate, > 0.
    optimizer : {"sgd", "adam", "adamw"}, default "sgd"
        As in ``torch.optim``.
    momentum : float, default 0.9
        SGD momentum, >= 0.
    weight_decay : float, default 0.0
        >= 0.
    betas : tuple of two floats, default (0.9, 0.999)
        Adam / AdamW betas, each in [0, 1).
    eps : float, default 1e-8
        Adam / AdamW epsilon, >= 0.
    snapshot_epochs : tuple of int, default ()
        Increasing epochs in ``0..epochs`` after which outcomes are recorded.
    grand : bool, default False
        Record per-example gradient norms at the snapshots.
    seed : int, default 0
        Seed of the runs.

    Raises
    ------
    TypeError
        A value of the wrong type.
    ValueError
        A value out of range.

    Examples
    --------
    >>> from memscore.train import TrainConfig
    >>> TrainConfig(epochs=2, batch_size=32, lr=0.1).as_dict()["optimizer"]
    'sgd'
    """

    epochs: int
    batch_size: int
    lr: float
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    snapshot_epochs: tuple[int, ...] = ()
    grand: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        check_int(self.epochs, "epochs", 1)
        check_int(self.batch_size, "batch_size", 1)
        check_choice(self.optimizer, "optimizer", _OPTIMIZERS)
        check_float(self.lr, "lr", 0.0, low_open=True)
        for name in ("momentum", "weight_decay", "eps"):
            check_float(getattr(self, name), name, 0.0)
        if not isinstance(self.betas, (tuple, list)) or len(self.betas) != 2:
            raise TypeError(f"betas: expected a pair of floats, got {self.betas!r}")
        for b in self.betas:
            check_float(b, "betas[]", 0.0, 1.0, high_open=True)
        check_bool(self.grand, "grand")
        check_int(self.seed, "seed", 0)
        if isinstance(self.snapshot_epochs, (str, bytes)) or not hasattr(self.snapshot_epochs, "__iter__"):
            raise TypeError(f"snapshot_epochs: expected a sequence of integers, got {self.snapshot_epochs!r}")
        snaps = tuple(check_int(e, "snapshot_epochs[]") for e in self.snapshot_epochs)
        if any(b <= a for a, b in zip(snaps, snaps[1:], strict=False)) or any(e < 0 or e > self.epochs for e in snaps):
            raise ValueError(
                f"snapshot_epochs: expected increasing epochs in 0..{self.epochs}, got {list(self.snapshot_epochs)}"
            )
        object.__setattr__(self, "snapshot_epochs", snaps)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready description (each run's metadata).

        Returns
        -------
        dict of str to object
        """
        return {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "optimizer": self.optimizer,
            "momentum": self.momentum,
            "weight_decay": self.weight_decay,
            "betas": list(self.betas),
            "eps": self.eps,
            "snapshot_epochs": list(self.snapshot_epochs),
            "grand": self.grand,
            "seed": self.seed,
        }


# ----------------------------------------------------------------------------- per-run randomness


def run_seed(seed: int, r: int, stream: int) -> int:
    """A 63-bit seed for run ``r``: stream 0 initializes the model, 1 orders its batches.

    Parameters
    ----------
    seed : int
        The plan's seed.
    r : int
        The run's index in the plan.
    stream : int
        Which random stream of the run.

    Returns
    -------
    int

    Examples
    --------
    >>> run_seed(0, 3, 1) == run_seed(0, 3, 1) != run_seed(0, 4, 1)
    True
    """
    return int(
        np.random.SeedSequence([int(seed), int(r), int(stream)]).generate_state(2, dtype=np.uint64)[0] >> np.uint64(1)
    )


def init_model(model_fn: Callable[[], Any], seed: int, r: int) -> Any:
    """``model_fn()`` under run ``r``'s own torch seed, leaving the global RNG untouched.

    Parameters
    ----------
    model_fn : callable
        Builds the model.
    seed : int
        The plan's seed.
    r : int
        The run's index.

    Returns
    -------
    torch.nn.Module
        What ``model_fn`` returns.
    """
    torch = _torch()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(run_seed(seed, r, 0))
        return model_fn()


def epoch_batches(subset: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One epoch of a run's minibatches.

    Parameters
    ----------
    subset : ndarray of int
        The run's training examples.
    batch_size : int
        Examples per batch (the last batch may be smaller).
    rng : numpy.random.Generator
        The run's batch-order generator.

    Returns
    -------
    list of ndarray of int
        A fresh permutation of ``subset`` cut into batches.

    Examples
    --------
    >>> import numpy as np
    >>> [b.size for b in epoch_batches(np.arange(5), 2, np.random.default_rng(0))]
    [2, 2, 1]
    """
    perm = subset[rng.permutation(subset.size)]
    return [perm[i : i + batch_size] for i in range(0, perm.size, batch_size)]


# ----------------------------------------------------------------------------- outcomes


def snapshot_outcomes_torch(logits: Any, labels: Any) -> dict[str, Any]:
    """Per-example correctness, cross-entropy and EL2N of logits, as tensors.

    The torch twin of :func:`memscore.snapshot_outcomes`, used on the device while training.

    Parameters
    ----------
    logits : torch.Tensor, shape (..., n, C)
        Logits.
    labels : torch.Tensor of int64, shape (n,)
        Class labels.

    Returns
    -------
    dict of str to torch.Tensor, each of shape (..., n)
        ``"correct"`` (bool), ``"loss"`` and ``"el2n"`` (float64).
    """
    torch = _torch()
    logp = torch.log_softmax(logits.double(), dim=-1)
    lab = labels.expand(logits.shape[:-1])
    loss = -logp.gather(-1, lab.unsqueeze(-1)).squeeze(-1)
    onehot = torch.nn.functional.one_hot(lab, logits.shape[-1]).to(logp.dtype)
    el2n = torch.linalg.vector_norm(logp.exp() - onehot, dim=-1)
    # argmax ties toward the lower class, as the store does with numpy
    correct = logits.argmax(-1) == lab
    return {"correct": correct, "loss": loss, "el2n": el2n}


# ----------------------------------------------------------------------------- the ensemble


def _no_grad(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run a method under ``torch.no_grad()`` (torch is imported lazily)."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _torch().no_grad():
            return fn(*args, **kwargs)

    wrapper.__doc__ = fn.__doc__
    return wrapper


class _Ensemble:
    """``E`` models with stacked parameters (``torch.func.stack_module_state``), trained as
    one vmapped model by one ``torch.optim`` optimizer over the stacked tensors (fused
    where the device has the kernel): elementwise updates of a stacked tensor are per-member
    updates, and every member steps at every step (runs are grouped by step count)."""

    def __init__(self, models: Sequence[Any], cfg: TrainConfig, device: Any) -> None:
        torch = _torch()
        from torch.func import functional_call, stack_module_state

        self.E = len(models)
        params, buffers = stack_module_state([m.to(device) for m in models])
        self.names = list(params)
        self.params = [params[k].detach().clone().requires_grad_(True) for k in self.names]
        self.buffers = {k: v.detach().clone() for k, v in buffers.items()}
        base = models[0].to("meta")

        def f(p: Sequence[Any], b: dict[str, Any], x: Any) -> Any:
            return functional_call(base, ({**dict(zip(self.names, p, strict=True)), **b}), (x,))

        self._f = f
        self.vm_batch = torch.func.vmap(f, in_dims=(0, 0, 0), randomness="different")
        self.vm_shared = torch.func.vmap(f, in_dims=(0, 0, None), randomness="different")
        kw: dict[str, Any] = {"lr": cfg.lr, "weight_decay": cfg.weight_decay}
        if cfg.optimizer == "sgd":
            cls, kw["momentum"] = torch.optim.SGD, cfg.momentum
        else:
            cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
            kw.update(betas=cfg.betas, eps=cfg.eps)
        # Elementwise updates of the stacked tensors are per-member updates. The fused kernel
        # does one pass over a few large tensors (per-member tensors would be ~20x slower).
        try:
            self.opt = cls(self.params, fused=True, **kw)
        except (RuntimeError, ValueError, TypeError):  # no fused kernel for this device
            self.opt = cls(self.params, **kw)

    @_no_grad
    def step(self, grads: Sequence[Any]) -> None:
        """One optimizer step of every member."""
        for p, g in zip(self.params, grads, strict=True):
            # vmap's weight gradients come transposed; the fused kernels need p's layout
            p.grad = g.contiguous()
        self.opt.step()
        for p in self.params:
            p.grad = None

    def logits(self, x: Any, chunk: int = 4096) -> Any:
        """(E, n, C) logits of every member on the shared inputs ``x``."""
        torch = _torch()
        with torch.no_grad():
            p = [q.detach() for q in self.params]
            return torch.cat(
                [self.vm_shared(p, self.buffers, x[i : i + chunk]) for i in range(0, x.shape[0], chunk)], dim=1
            )

    def grad_norms(self, x: Any, y: Any) -> Any:
        """(E, n) per-example gradient norm of the cross-entropy (GraNd, Paul et al. 2021)."""
        torch = _torch()
        from torch.func import grad, vmap

        def loss1(p: Sequence[Any], b: dict[str, Any], xi: Any, yi: Any) -> Any:
            z = self._f(p, b, xi.unsqueeze(0))
            return torch.nn.functional.cross_entropy(z, yi.unsqueeze(0))

        per_ex = vmap(grad(loss1), in_dims=(None, None, 0, 0))
        per_member = vmap(per_ex, in_dims=(0, 0, None, None))
        n_params = sum(int(q[0].numel()) for q in self.params)
        chunk = max(1, int(2**25 // max(1, self.E * n_params)))  # ~128 MiB of float32 gradients
        p = [q.detach() for q in self.params]
        out = []
        for i in range(0, x.shape[0], chunk):
            gs = per_member(p, self.buffers, x[i : i + chunk], y[i : i + chunk])
            sq = sum(g.flatten(2).pow(2).sum(-1) for g in gs)
            out.append(sq.sqrt())
        return torch.cat(out, dim=1)


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
