"""``memscore train | score | report | datamodels | demo``: the runs engine from the command line.

Needs the ``cli`` extra (typer, rich); training needs ``train`` (torch), reports ``plot``
(matplotlib): ``pip install 'memscore[cli,train,plot]'``.
"""

from __future__ import annotations

import functools
import time
import warnings
from pathlib import Path
from typing import Any

import typer

from .._validate import check_bool, check_bytes, check_choice, check_float, check_int, check_optional_int
from ..executors import ExecutorLike
from ._executor import executor_option, make_executor

__all__ = ["app", "PRESETS", "RECIPES", "run_training"]

#: Training settings per embedded dataset (every one can be overridden on the command line).
PRESETS: dict[str, dict[str, Any]] = {
    # Quadratic MLP, AdamW with strong weight decay: generalizes on modular addition within
    # ~300 steps from 40% of the pairs while fitting (memorizing) the corrupted labels.
    "modular": dict(
        data=dict(p=97, op="add", train_fraction=0.8, corrupt=0.1, seed=0),
        width=256, depth=1, activation="square", epochs=20, batch_size=256, lr=2e-2,
        optimizer="adamw", weight_decay=1.0, momentum=0.9, snapshot_epochs=[1, 2, 5, 10, 20],
    ),
    # Long enough for every run to fit its flipped labels (memorize them).
    "digits": dict(
        data=dict(label_noise=0.1, seed=0),
        width=256, depth=1, activation="relu", epochs=100, batch_size=32, lr=0.1,
        optimizer="sgd", weight_decay=0.0, momentum=0.9, snapshot_epochs=[1, 2, 5, 10, 25, 50, 100],
    ),
}  # fmt: skip

#: Training defaults of the networks and recipes below, for presets that do not set them.
_RECIPE_DEFAULTS: dict[str, Any] = dict(
    model="mlp",
    augment="none",
    schedule="constant",
    label_smoothing=0.0,
    nesterov=False,
    precision="fp32",
    compile=False,
)
_IMAGE = dict(
    depth=20,
    activation="relu",
    epochs=30,
    batch_size=128,
    lr=0.1,
    optimizer="sgd",
    weight_decay=5e-4,
    momentum=0.9,
    snapshot_epochs=[1, 5, 10, 30],
    model="resnet",
    augment="crop-flip",
    schedule="onecycle",
    nesterov=True,
)
PRESETS.update({
    # A residual 1-D CNN with BatchNorm, random shifts, cosine decay (generated, no download).
    "mnist1d": dict(
        data=dict(n_samples=5000, label_noise=0.1, seed=0),
        width=16, depth=1, activation="relu", epochs=30, batch_size=128, lr=0.1, optimizer="sgd",
        weight_decay=5e-4, momentum=0.9, snapshot_epochs=[1, 5, 10, 30], model="resnet1d", augment="shift",
        schedule="cosine",
    ),
    # torchvision's image datasets (files under --root, or --download): the CIFAR ResNet recipe.
    "cifar10": dict(data=dict(label_noise=0.0, seed=0), width=16, **_IMAGE),
    "cifar100": dict(data=dict(label_noise=0.0, seed=0), width=16, **_IMAGE),
    "svhn": dict(data=dict(label_noise=0.0, seed=0), width=16, **_IMAGE),
    "mnist": dict(data=dict(label_noise=0.0, seed=0), width=16, **{**_IMAGE, "augment": "none"}),
    "fashion-mnist": dict(data=dict(label_noise=0.0, seed=0), width=16, **{**_IMAGE, "augment": "none"}),
})  # fmt: skip
for _p in PRESETS.values():
    for _k, _v in _RECIPE_DEFAULTS.items():
        _p.setdefault(_k, _v)

#: The papers' recipes: a dataset preset and the settings that reproduce the paper's training.
RECIPES: dict[str, dict[str, Any]] = {
    "feldman-zhang": dict(
        paper="Feldman & Zhang 2020, What neural networks memorize and why (CIFAR-10, ResNet, 70% subsets)",
        dataset="cifar10", keep=0.7, model="resnet", width=16, depth=20, epochs=160, schedule="step",
        step_epochs=[80, 120], gamma=0.1, lr=0.1, nesterov=False,
    ),
    "lukasik-width-sweep": dict(
        paper="Lukasik et al. 2023, What do larger image classifiers memorise? (CIFAR ResNet width sweep)",
        dataset="cifar100", model="resnet", widths=[4, 8, 16, 32, 64], depth=20, epochs=100, schedule="cosine",
    ),
    "lira-wrn16-4": dict(
        paper="Carlini et al. 2022, Membership inference attacks from first principles (CIFAR-10, WideResNet-16-4)",
        dataset="cifar10", model="wrn", width=4, depth=16, epochs=100, schedule="cosine", lr=0.1,
        weight_decay=5e-4, keep=0.5,
    ),
    "data-diet-resnet18": dict(
        paper="Paul et al. 2021, Deep learning on a data diet (CIFAR-10, ResNet-18, GraNd/EL2N early in training)",
        dataset="cifar10", model="resnet18", width=64, epochs=200, schedule="step", step_epochs=[60, 120, 160],
        gamma=0.2, snapshot_epochs=[1, 10, 20, 200],
    ),
    "mnist1d-width-sweep": dict(
        paper="A CPU-sized width sweep after Lukasik et al. 2023 (MNIST-1D, residual 1-D CNN, 10% flipped labels)",
        dataset="mnist1d", model="resnet1d", widths=[2, 4, 8, 16], epochs=20, batch_size=100, schedule="cosine",
        augment="shift",
    ),
}  # fmt: skip

_MODELS = ("mlp", "resnet", "resnet18", "wrn", "resnet1d")


def _build_model(kind: str, task: Any, width: int, preset: dict[str, Any]) -> Any:
    """The network ``kind`` at ``width`` for ``task`` (``wrn``: the width is the widen factor)."""
    return _model_builder(kind, task, width, preset)()


def _model_builder(kind: str, task: Any, width: int, preset: dict[str, Any]) -> Any:
    """A picklable function that builds :func:`_build_model`'s network (it holds the input
    shape, not the task's arrays, so Ray workers get it cheaply)."""
    return functools.partial(
        _network, kind, task.name, tuple(task.x_train.shape[1:]), task.n_classes, width, preset["depth"],
        preset["activation"],
    )  # fmt: skip


def _network(kind: str, name: str, shape: tuple[int, ...], n_classes: int, width: int, depth: int, act: str) -> Any:
    """The network ``kind`` for inputs of ``shape`` (without the batch axis)."""
    from ..train import architectures as arch
    from ..train import mlp

    if kind == "mlp":
        if len(shape) != 1:
            raise ValueError(f"model: 'mlp' takes flat inputs; {name} has inputs of shape {shape}")
        return mlp(shape[0], n_classes, width=width, depth=depth, activation=act)
    if kind == "resnet1d":
        return arch.resnet1d(n_classes, width=width, blocks=depth)
    if len(shape) != 3:
        raise ValueError(f"model: {kind!r} takes images (C, H, W); {name} has inputs of shape {shape}")
    if kind == "resnet":
        return arch.cifar_resnet(n_classes, width=width, depth=depth, in_channels=shape[0])
    if kind == "resnet18":
        return arch.resnet18(n_classes, width=width, in_channels=shape[0])
    return arch.wide_resnet(n_classes, depth=depth, widen=width, in_channels=shape[0])


def _parse_ints(text: str | None, name: str) -> list[int] | None:
    """``"1,2,5"`` as ``[1, 2, 5]`` (None stays None)."""
    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{name}: expected comma-separated integers, got {text!r}") from None


def run_training(
    store_path: Path,
    *,
    dataset: str = "modular",
    widths: list[int] | None = None,
    runs: int = 256,
    keep: float = 0.5,
    ensemble: int | None = None,
    device: str = "auto",
    seed: int = 0,
    keep_logits: bool = False,
    progress: bool = True,
    max_runs: int | None = None,
    data_overrides: dict[str, Any] | None = None,
    executor: ExecutorLike = None,
    bootstrap: bool = False,
    until: list[str] | None = None,
    round_runs: int | None = None,
    strategy: str = "auto",
    memory: Any = None,
    teacher: Path | None = None,
    distill_alpha: float = 0.5,
    distill_temperature: float = 4.0,
    distill_start_epoch: int = 0,
    **overrides: Any,
) -> list[Path]:
    """Train ``runs`` runs of an embedded dataset into a store (or a sweep over widths).

    Every argument is checked before anything is created or trained, so a mistake leaves
    no half-made store behind. Resumes: runs already in the store(s) are skipped.

    Parameters
    ----------
    store_path : pathlib.Path
        The store directory (made if missing); with several widths, a sweep directory
        holding one store per width.
    dataset : str, default "modular"
        The dataset and its preset (:data:`PRESETS`): the embedded ``modular``, ``digits``,
        ``mnist1d``, or torchvision's ``cifar10``, ``cifar100``, ``mnist``, ``fashion-mnist``,
        ``svhn`` (read from ``root``).
    widths : list of int, optional
        Hidden widths (default: the preset's); more than one makes a sweep.
    runs : int, default 256
        Training runs (random subsets).
    keep : float, default 0.5
        Fraction of the training set each run trains on, in (0, 1).
    ensemble : int, optional
        Runs trained at once as one ensemble (default: sized to the memory).
    strategy : {"auto", "vmap", "loop"}, default "auto"
        How an ensemble trains its members (see :func:`memscore.train.train_runs`).
    memory : int or str, optional
        The memory an ensemble may use (``"8GiB"``; see :func:`memscore.train.train_runs`).
    teacher : pathlib.Path, optional
        Distill: a store of teacher runs (paired by run id) or a ``.npy`` file of
        ``(n_train, C)`` teacher logits (:class:`memscore.train.Distillation`).
    distill_alpha, distill_temperature, distill_start_epoch : float, float, int
        The distillation's ``alpha``, ``temperature`` and ``start_epoch``.
    device : str, default "auto"
        ``"auto"``, ``"cpu"``, ``"cuda"`` or another torch device.
    seed : int, default 0
        Seed of the plan, initializations and batch order.
    keep_logits : bool, default False
        Also store the final logits of every run.
    bootstrap : bool, default False
        Runs draw bootstrap samples (``SubsetPlan(..., bootstrap=True)``, for Data-OOB)
        instead of subsets; ``keep`` does not apply.
    progress : bool, default True
        Show a progress bar.
    max_runs : int, optional
        Stop after this many new runs (resume later).
    until : list of str, optional
        Targets (``"memorization:reliability>=0.9"``): train in rounds of ``round_runs``
        and stop once they all hold (``runs`` is then the budget; see
        :func:`memscore.train.train_runs`).
    round_runs : int, optional
        Runs per round with ``until`` (default: one ensemble).
    data_overrides : dict, optional
        Arguments of the dataset function that replace the preset's.
    executor : None, str or memscore.executors.Executor, optional
        Who trains the ensembles (see :func:`memscore.train.train_runs`): this process
        (default), threads, or a Ray cluster, whose workers load the dataset by name and
        build the model themselves.
    **overrides
        Training settings that replace the preset's (``epochs``, ``batch_size``, ``lr``,
        ``optimizer``, ``weight_decay``, ``momentum``, ``snapshot_epochs``, ``depth``,
        ``activation``, ``model``, ``augment``, ``schedule``, ``step_epochs``, ``gamma``,
        ``label_smoothing``, ``nesterov``, ``grad_clip``, ``precision``, ``root``,
        ``download``, ``compile``); None values are ignored.

    Returns
    -------
    list of pathlib.Path
        The store paths.

    Raises
    ------
    TypeError, ValueError
        A bad argument (before anything is created), or a store that holds runs of
        another dataset or model.
    OSError
        ``store_path`` is a file or not writable.
    ImportError
        torch is not installed.
    """
    from ..executors import as_executor
    from ..runs.datasets import IMAGE_DATASETS, image_dataset, load_dataset
    from ..runs.report import Sweep
    from ..runs.store import RunStore
    from ..train import DatasetSplit, SubsetPlan, TrainConfig, create_store, train_runs
    from ..train.checks import _check_compile, _check_precision, _check_strategy, _resolve_device
    from ._checks import check_output_dir

    # ---- every check first: nothing below the next marker runs on a bad argument
    executor = as_executor(executor)
    check_choice(dataset, "dataset", sorted(PRESETS))
    preset = dict(PRESETS[dataset])
    preset.update(step_epochs=[], gamma=0.1, grad_clip=None, root=None, download=False)
    data_spec = {**preset.pop("data"), **(data_overrides or {})}
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(given) - set(preset))
    if unknown:
        raise TypeError(f"run_training: unknown settings {unknown}; expected some of {sorted(preset)}")
    if "epochs" in given and "snapshot_epochs" not in given:
        epochs = check_int(given["epochs"], "epochs", 1)
        # the preset's snapshots, cut to the epochs asked for (and the last epoch kept)
        preset["snapshot_epochs"] = sorted({e for e in preset["snapshot_epochs"] if e <= epochs} | {epochs})
    preset.update(given)
    widths = [check_int(w, "width", 1) for w in (widths or [preset["width"]])]
    if len(set(widths)) != len(widths):
        raise ValueError(f"width: expected different widths for a sweep, got {widths}")
    ensemble = check_optional_int(ensemble, "ensemble", 1)
    if memory is not None:
        check_bytes(memory, "memory")
    max_runs = check_optional_int(max_runs, "max_runs", 0)
    round_runs = check_optional_int(round_runs, "round_runs", 1)
    if until:
        from ..runs.forecast import parse_targets

        parse_targets(until)  # a bad target fails before anything is made
    keep_logits = check_bool(keep_logits, "keep_logits")
    progress = check_bool(progress, "progress")
    recipe = {k: preset[k] for k in ("schedule", "step_epochs", "gamma", "label_smoothing", "nesterov", "grad_clip",
                                     "precision", "compile")}  # fmt: skip
    TrainConfig(
        epochs=preset["epochs"], batch_size=preset["batch_size"], lr=preset["lr"], optimizer=preset["optimizer"],
        momentum=preset["momentum"], weight_decay=preset["weight_decay"],
        snapshot_epochs=tuple(preset["snapshot_epochs"]), seed=seed, **recipe,
    )  # fmt: skip
    _check_strategy(strategy, preset["precision"])
    distill = _distillation(teacher, distill_alpha, distill_temperature, distill_start_epoch, preset["epochs"])
    check_choice(preset["model"], "model", _MODELS)
    from ..train.augment import resolve_augment

    resolve_augment(preset["augment"])
    if executor.in_process:  # on a cluster, the device is the workers' (checked there)
        _check_precision(preset["precision"], _resolve_device(device))
        if preset["compile"]:
            _check_compile(_resolve_device(device))
    if dataset in IMAGE_DATASETS:
        if preset["root"] is None:
            raise ValueError(f"root: {dataset} is read from torchvision's files; pass --root DIR (and --download)")
        task = image_dataset(dataset, preset["root"], download=bool(preset["download"]), **data_spec)
    else:
        task = load_dataset(dataset, **data_spec)
    plan = SubsetPlan(task.n_train, runs, keep=keep, seed=seed, bootstrap=check_bool(bootstrap, "bootstrap"))
    for w in widths:  # the model options (depth, activation) are checked by building one
        _build_model(preset["model"], task, w, preset)
    check_output_dir(store_path, "STORE")
    paths = [store_path] if len(widths) == 1 else [store_path / f"width-{w}" for w in widths]
    metas = []
    for w, path in zip(widths, paths, strict=True):
        meta = {
            "title": f"{task.name}, {preset['model']} width {w}",
            "dataset": {"name": dataset, **data_spec},
            "model": {
                "kind": preset["model"],
                "width": w,
                "depth": preset["depth"],
                "activation": preset["activation"],
            },
            "plan": plan.as_dict() | {"keep": keep},
        }
        if dataset in IMAGE_DATASETS:  # where the report finds the images (memscore report --data-root)
            meta["data_root"] = str(Path(preset["root"]).resolve())
        if (path / "manifest.json").is_file():
            store = RunStore.open(path)
            if store.metadata.get("dataset") != meta["dataset"] or store.metadata.get("model") != meta["model"]:
                raise ValueError(f"{path}: holds runs of another dataset or model; use a new store path")
        metas.append(meta)

    # ---- create and train
    if len(widths) > 1:
        Sweep.create(store_path, widths, [p.name for p in paths])
    for w, path, meta in zip(widths, paths, metas, strict=True):
        if (path / "manifest.json").is_file():
            store = RunStore.open(path)
        else:
            store = create_store(
                path, (task.x_train, task.y_train), (task.x_test, task.y_test), n_classes=task.n_classes, metadata=meta
            )

        make_model = _model_builder(preset["model"], task, w, preset)
        data: tuple[Any, Any] = ((task.x_train, task.y_train), (task.x_test, task.y_test))
        if not executor.in_process:  # picklable: the workers load the data and build the model
            spec = dict(data_spec)
            if dataset in IMAGE_DATASETS:
                spec.update(root=str(Path(preset["root"]).resolve()), download=False)
            data = (DatasetSplit(dataset, "train", **spec), DatasetSplit(dataset, "test", **spec))
        train_runs(
            make_model, data[0], data[1], plan, store, executor=executor,
            epochs=preset["epochs"], batch_size=preset["batch_size"], lr=preset["lr"],
            optimizer=preset["optimizer"], momentum=preset["momentum"], weight_decay=preset["weight_decay"],
            ensemble=ensemble, device=device, snapshot_epochs=preset["snapshot_epochs"],
            keep_logits=keep_logits, seed=seed, progress=progress, max_runs=max_runs,
            augment=preset["augment"], normalize=task.info.get("normalize"), until=until or None,
            round_runs=round_runs if until else None, strategy=strategy, memory=memory, distill=distill, **recipe,
        )  # fmt: skip
    return paths


def _distillation(teacher: Path | None, alpha: float, temperature: float, start_epoch: int, epochs: int) -> Any:
    """The :class:`~memscore.train.Distillation` of ``--teacher`` (a store or a ``.npy`` of
    logits, :func:`memscore.cli.distill.teacher_arg`) and its settings; None without one."""
    from ..runs.store import RunStore
    from ..train import Distillation
    from .distill import teacher_arg

    source = teacher_arg(None if teacher is None else Path(teacher))
    if source is None:
        return None
    if isinstance(source, Path):
        if not (source / "manifest.json").is_file():
            raise ValueError(f"--teacher: {source} is a directory but not a run store (no manifest.json)")
        source = RunStore.open(source)
    out = Distillation(source, alpha=alpha, temperature=temperature, start_epoch=start_epoch)
    check_int(start_epoch, "start_epoch", 0, epochs)
    return out


def _summary_lines(summary: dict[str, Any]) -> list[str]:
    out = [f"runs: {summary['runs']}  (train {summary['n_train']}, test {summary['n_test']})"]
    if "test_accuracy" in summary:
        out.append(f"test accuracy (mean over runs): {summary['test_accuracy']:.4f}")
    if "disagreement" in summary:
        out.append(
            f"disagreement {summary['disagreement']:.4f} vs actual test error {summary['test_error']:.4f} "
            f"(gap {summary['gap']:+.4f}, CACE {summary['cace']:.4f})"
        )
    if "corrupted_auroc" in summary:
        out.append(
            f"memorization finds the {summary['n_corrupted']} corrupted labels with AUROC {summary['corrupted_auroc']:.4f} "
            f"(mean memorization corrupted {summary['mean_memorization_corrupted']:.3f}, clean {summary['mean_memorization_clean']:.3f})"
        )
    return out


app = typer.Typer(add_completion=False)


def _recipes_help() -> str:
    return "; ".join(f"{name}: {r['paper']}" for name, r in RECIPES.items())


@app.command()
def train(
    store: Path = typer.Argument(
        ..., help="Store directory (made if missing; a sweep directory with several --width)."
    ),
    dataset: str | None = typer.Option(
        None,
        help="Dataset and its preset: modular (addition mod 97 with corrupted labels, the default), digits, mnist1d, "
        "or torchvision's cifar10, cifar100, mnist, fashion-mnist, svhn (files under --root).",
    ),
    recipe: str | None = typer.Option(
        None, help=f"A paper's training recipe (options given here win): {_recipes_help()}."
    ),
    width: list[int] | None = typer.Option(None, help="Width (wrn: widen factor); repeat for a model-size sweep."),
    runs: int = typer.Option(256, help="Number of training runs (random subsets)."),
    keep: float | None = typer.Option(None, help="Fraction of the training set each run trains on (default 0.5)."),
    epochs: int | None = typer.Option(None, help="Epochs per run (default: the dataset's preset)."),
    batch_size: int | None = typer.Option(None, help="Minibatch size."),
    lr: float | None = typer.Option(None, help="Learning rate."),
    optimizer: str | None = typer.Option(None, help="sgd, adam or adamw."),
    weight_decay: float | None = typer.Option(None, help="Weight decay."),
    snapshot_epochs: str | None = typer.Option(None, help="Comma-separated epochs at which outcomes are recorded."),
    model: str | None = typer.Option(None, help="mlp, resnet (CIFAR ResNet), resnet18, wrn (WideResNet) or resnet1d."),
    depth: int | None = typer.Option(None, help="Depth: resnet 6n+2, wrn 6n+4, mlp hidden layers, resnet1d blocks."),
    augment: str | None = typer.Option(None, help="none, crop-flip (4-pixel pad, crop, flip) or shift (1-D)."),
    schedule: str | None = typer.Option(None, help="constant, step, cosine, linear or onecycle (stepped per batch)."),
    step_epochs: str | None = typer.Option(None, help="Comma-separated epochs where the step schedule decays."),
    label_smoothing: float | None = typer.Option(None, help="Label smoothing of the training loss."),
    grad_clip: float | None = typer.Option(None, help="Clip each run's gradient to this L2 norm."),
    precision: str | None = typer.Option(None, help="fp32, bf16 or fp16 (fp16 with a loss scale per run)."),
    compile: bool = typer.Option(
        False, "--compile", help="Compile the ensemble's training forward with torch.compile (see docs/training.md)."
    ),
    label_noise: float | None = typer.Option(None, help="Fraction of training labels flipped (mnist1d, images)."),
    root: Path | None = typer.Option(None, help="Directory of torchvision's dataset files."),
    download: bool = typer.Option(False, help="Download missing dataset files with torchvision."),
    ensemble: int | None = typer.Option(
        None, help="Runs trained at once as one ensemble (default: as many as fit --memory)."
    ),
    strategy: str = typer.Option(
        "auto", help="auto (time each on this model and device), vmap (one vmapped model) or loop (member by member)."
    ),
    memory: str | None = typer.Option(
        None, help="Memory an ensemble may use, e.g. 8GiB (default: 80%% of a GPU's free memory, half the host's)."
    ),
    teacher: Path | None = typer.Option(
        None, help="Distill from a teacher: a run store (runs paired by run id) or a .npy of (n_train, C) logits."
    ),
    distill_alpha: float = typer.Option(0.5, help="Weight of the distillation term, in [0, 1]."),
    distill_temperature: float = typer.Option(4.0, help="Softmax temperature of the distillation term."),
    distill_start_epoch: int = typer.Option(0, help="Epochs of plain cross-entropy before distillation starts."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    seed: int = typer.Option(0, help="Seed of the plan, initializations and batch order."),
    keep_logits: bool = typer.Option(False, help="Also store the final logits of every run."),
    max_runs: int | None = typer.Option(None, help="Stop after this many new runs (resume later)."),
    until: list[str] | None = typer.Option(
        None,
        "--until",
        help="Stop once this target holds, checked after every round (repeatable): memorization:reliability>=0.9; "
        "--runs is then the budget. See 'memscore plan'.",
    ),
    round_runs: int | None = typer.Option(
        None, "--round-runs", help="Runs per round with --until (default: --ensemble)."
    ),
    bootstrap: bool = typer.Option(
        False, "--bootstrap", help="Bootstrap samples (n draws with replacement) instead of subsets, for Data-OOB."
    ),
    executor: str = executor_option(),
    gpus_per_task: float | None = typer.Option(
        None, "--gpus-per-task", help="GPUs of one task (default 0; in this process: checks that one is there)."
    ),
    cpus_per_task: float | None = typer.Option(None, "--cpus-per-task", help="CPUs of one task (default 1; Ray)."),
    runs_per_task: int | None = typer.Option(
        None, "--runs-per-task", help="Runs per task, trained as one ensemble (replaces --ensemble)."
    ),
    storage: str | None = typer.Option(
        None,
        "--storage",
        help="Ray only: shared (workers see STORE, the default) or object (runs return to this process).",
    ),
) -> None:
    """Train runs on random subsets of a dataset and record them in a run store.

    Re-running the same command resumes: finished runs are skipped."""
    t0 = time.perf_counter()
    # --storage on another executor is refused ("--executor local: takes no storage")
    ex = make_executor(
        executor, gpus_per_task=gpus_per_task, cpus_per_task=cpus_per_task, runs_per_task=runs_per_task,
        storage=storage,
    )  # fmt: skip
    base: dict[str, Any] = {}
    if recipe is not None:
        check_choice(recipe, "recipe", sorted(RECIPES))
        base = {k: v for k, v in RECIPES[recipe].items() if k != "paper"}
    given = dict(
        epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, weight_decay=weight_decay,
        snapshot_epochs=_parse_ints(snapshot_epochs, "snapshot_epochs"), model=model, depth=depth, augment=augment,
        schedule=schedule, step_epochs=_parse_ints(step_epochs, "step_epochs"), label_smoothing=label_smoothing,
        grad_clip=grad_clip, precision=precision, root=root, download=download or None, compile=compile or None,
    )  # fmt: skip
    settings = {**base, **{k: v for k, v in given.items() if v is not None}}
    data_overrides = {"label_noise": label_noise} if label_noise is not None else None
    paths = run_training(
        store, dataset=dataset or settings.pop("dataset", "modular"), widths=width or settings.pop("widths", None),
        runs=runs, keep=keep if keep is not None else settings.pop("keep", 0.5), ensemble=ensemble, device=device,
        seed=seed, keep_logits=keep_logits, max_runs=max_runs, data_overrides=data_overrides, executor=ex,
        bootstrap=bootstrap, until=until, round_runs=round_runs, strategy=strategy, memory=memory, teacher=teacher,
        distill_alpha=distill_alpha, distill_temperature=distill_temperature,
        distill_start_epoch=distill_start_epoch,
        **{k: v for k, v in settings.items() if k not in ("dataset", "widths", "keep")},
    )  # fmt: skip
    typer.echo(f"trained into {', '.join(map(str, paths))} in {time.perf_counter() - t0:.1f} s")


@app.command()
def score(
    store: Path = typer.Argument(..., help="Store or sweep directory."),
    top_k: int = typer.Option(10, help="Most influential training examples kept per test example."),
    executor: str = executor_option(),
    cpus_per_task: float | None = typer.Option(None, "--cpus-per-task", help="CPUs reserved by one task."),
    runs_per_task: int | None = typer.Option(None, "--runs-per-task", help="Runs one scan task reads."),
) -> None:
    """Write scores.parquet, influence_pairs.parquet, proxies.parquet and summary.json into each store."""
    from ..runs.report import open_scored, score_store
    from ._checks import check_existing_dir

    check_int(top_k, "--top-k", 1)
    # a bad spec or setting fails here, before any store is read
    ex = make_executor(executor, cpus_per_task=cpus_per_task, runs_per_task=runs_per_task)
    check_existing_dir(store, "STORE")
    _, stores = open_scored(store)
    for s in stores:
        summary = score_store(s, top_k=top_k, executor=ex)
        typer.echo(f"{s.path}:")
        for line in _summary_lines(summary):
            typer.echo(f"  {line}")


@app.command()
def report(
    store: Path = typer.Argument(..., help="Store or sweep directory."),
    out: Path | None = typer.Option(None, help="Report directory (default: STORE/report)."),
    data_root: Path | None = typer.Option(
        None, "--data-root", help="torchvision's files of an image dataset (default: the --root of memscore train)."
    ),
    max_thumbnails: int = typer.Option(400, "--max-thumbnails", help="Example thumbnails written at most."),
    distilled: Path | None = typer.Option(
        None, help="A store of distilled runs over the same examples: adds the Distillation section."
    ),
    teacher: Path | None = typer.Option(
        None, help="Their teacher: a store or .npy (n_train, C) logits (default: the store the runs record)."
    ),
    plain_size: str | None = typer.Option(
        None, "--plain-size", help="For a sweep: the size of the plain arm (default: the distilled store's model)."
    ),
) -> None:
    """Write an HTML report with PNG plots and an example gallery (scores are computed first if missing)."""
    from ..runs.report import _plt, write_report
    from ._checks import check_existing_dir, check_output_dir
    from .distill import teacher_arg

    check_int(max_thumbnails, "--max-thumbnails", 0)
    check_existing_dir(store, "STORE")
    if data_root is not None:
        check_existing_dir(data_root, "--data-root")
    if distilled is not None:
        check_existing_dir(distilled, "--distilled")
    elif teacher is not None or plain_size is not None:
        raise ValueError("--teacher, --plain-size: they describe a --distilled store, and none was given")
    check_output_dir(out if out is not None else store / "report", "--out")
    t = teacher_arg(teacher)
    _plt()  # matplotlib, before any scoring
    page = write_report(
        store, out, data_root=data_root, max_thumbnails=max_thumbnails, distilled=distilled, teacher=t,
        plain_size=plain_size,
    )  # fmt: skip
    typer.echo(f"report: {page}")


@app.command()
def datamodels(
    store: Path = typer.Argument(..., help="Store directory (its runs are the training runs)."),
    kind: str = typer.Option("phi", help="Test outcome fitted: phi (the margin) or correct."),
    val_fraction: float = typer.Option(0.1, help="Fraction of the runs held out to choose λ per test example."),
    n_lambdas: int = typer.Option(100, help="Points on the λ path."),
    lambda_ratio: float = typer.Option(1e-3, help="Smallest λ on the path, as a fraction of lam_max."),
    tol: float = typer.Option(1e-4, help="A λ is done when no weight moved by more than tol x the largest."),
    max_iter: int = typer.Option(1000, "--max-iter", help="Coordinate-descent sweeps per λ at most."),
    seed: int = typer.Option(0, help="Seed of the held-out draw."),
    eval_store: Path | None = typer.Option(
        None, "--eval", help="A store of evaluation runs: print the LDS of the datamodels and of influence on it."
    ),
    out: Path | None = typer.Option(None, help="Output .npz (default: STORE/datamodels.npz)."),
    executor: str = executor_option(),
    cpus_per_task: float | None = typer.Option(None, "--cpus-per-task", help="CPUs of one task (default 1)."),
    targets_per_task: int | None = typer.Option(
        None, "--targets-per-task", help="Test examples one task fits (default: spread over the workers)."
    ),
) -> None:
    """Fit datamodels (a sparse linear model per test example) on STORE's runs; write them as .npz.

    With --executor the test examples are fitted in blocks by the executor's workers (each
    reads STORE itself); the weights are those of the local fit, bit for bit."""
    import numpy as np

    from .._io import atomic_write
    from ..runs.datamodels import MAX_ITER, MAX_LAMBDAS, ConvergenceWarning
    from ..runs.store import RunStore
    from ._checks import check_existing_dir, check_out_file

    check_choice(kind, "--kind", ("phi", "correct"))
    check_float(val_fraction, "--val-fraction", 0.0, 1.0, low_open=True, high_open=True)
    check_float(tol, "--tol", 0.0, low_open=True)
    check_int(max_iter, "--max-iter", 1, MAX_ITER)
    check_int(n_lambdas, "--n-lambdas", 1, MAX_LAMBDAS)
    ex = make_executor(executor, cpus_per_task=cpus_per_task)
    check_existing_dir(store, "STORE")
    if eval_store is not None:
        check_existing_dir(eval_store, "--eval")
    target = out if out is not None else store / "datamodels.npz"
    check_out_file(target, "--out" if out is not None else "STORE")
    s = RunStore.open(store)
    # every input is read and checked before the fit, so that nothing is written for a bad one
    evals = None if eval_store is None else _eval_runs(eval_store, kind, s.n_train, s.n_test)
    t0 = time.perf_counter()
    with warnings.catch_warnings():  # said below, in the command's words
        warnings.simplefilter("ignore", ConvergenceWarning)
        dm = s.datamodels(
            kind, val_fraction=val_fraction, seed=seed, n_lambdas=n_lambdas, lambda_ratio=lambda_ratio, tol=tol,
            max_iter=max_iter, executor=ex, targets_per_task=targets_per_task,
        )  # fmt: skip
    took = time.perf_counter() - t0
    atomic_write(
        target,
        lambda f: np.savez(f, weights=dm.weights, bias=dm.bias, lam=dm.lam, lam_max=dm.lam_max,
                           val_mse=dm.val_mse, converged=dm.converged, steps=dm.steps, kind=np.array(kind),
                           runs=np.array(len(s))),
    )  # fmt: skip
    nnz = (dm.weights != 0).sum(axis=1)
    typer.echo(
        f"datamodels of {dm.weights.shape[0]} test examples on {len(s)} runs in {took:.1f} s: "
        f"median {int(np.median(nnz))} nonzero weights of {dm.weights.shape[1]}, "
        f"mean held-out MSE {float(np.nanmean(dm.val_mse)):.4g} -> {target}"
    )
    if not dm.all_converged:
        bad = int((~dm.converged.all(axis=1)).sum())
        typer.echo(
            f"warning: {bad} test examples have a λ that stopped at --max-iter {max_iter} (see 'converged')", err=True
        )
    if evals is not None:
        typer.echo(f"LDS on {eval_store} (95% bootstrap interval):")
        from ..runs.lds import lds

        masks, outcomes, groups = evals
        for name, att in (("datamodels", dm.weights), ("influence (Feldman–Zhang)", s.influence(kind))):
            score = lds(att, masks, outcomes, groups=groups, executor=ex)
            lo, hi = score.ci
            typer.echo(f"  {name}: {score.mean:.3f} [{lo:.3f}, {hi:.3f}] over {score.n_subsets} subsets")


def _eval_runs(path: Path, kind: str, n_train: int, n_test: int) -> tuple[Any, Any, Any]:
    """The packed masks, test outcomes ``kind`` and subset groups of every run of the
    evaluation store ``path`` (``--eval``), read in full and checked as the LDS will use them.

    Raises
    ------
    StoreError
        A damaged store or run file (named).
    ValueError
        Other examples than STORE's, NaN / infinite outcomes, or fewer distinct subsets than
        the LDS needs.
    """
    import numpy as np

    from ..runs.lds import MIN_SUBSETS
    from ..runs.store import RunStore
    from ..runs.store.attribution import _mask_groups

    evals = RunStore.open(path)
    if (evals.n_train, evals.n_test) != (n_train, n_test):
        raise ValueError(
            f"--eval: {path} has {evals.n_train} training / {evals.n_test} test examples, "
            f"STORE has {n_train} / {n_test} (evaluation runs must be of the same examples)"
        )
    masks, outcomes = evals._runs_of(None, kind)
    if outcomes.dtype != np.bool_ and not np.isfinite(outcomes).all():
        raise ValueError(f"--eval: {path} has NaN or infinite test outcomes ({kind})")
    groups = _mask_groups(masks.bits)
    subsets = int(groups.max()) + 1 if groups.size else 0
    if subsets < MIN_SUBSETS:
        raise ValueError(
            f"--eval: {path} has {subsets} distinct training subsets, the LDS needs at least {MIN_SUBSETS}"
        )
    return masks, outcomes, groups


@app.command()
def demo(
    out: Path = typer.Option(Path("memscore-demo"), help="Directory for the store and the report."),
    quick: bool = typer.Option(False, help="A one-minute version: 64 runs instead of 256."),
    runs: int | None = typer.Option(None, help="Number of runs (default 256, or 64 with --quick)."),
    ensemble: int | None = typer.Option(None, help="Runs trained at once (default: as many as fit the memory)."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    seed: int = typer.Option(0, help="Seed."),
) -> None:
    """The main job: train 256 MLPs on random halves of modular addition mod 97 with 10% corrupted labels, score, report.

    Ends with a summary: test accuracy, AUROC of memorization for the corrupted labels,
    disagreement vs actual test error, and where the report is."""
    from .._io import write_json
    from ..runs.report import _plt, score_store, write_report
    from ..runs.store import RunStore
    from ._checks import check_output_dir

    t0 = time.perf_counter()
    n_runs = check_int(runs, "--runs", 2) if runs is not None else (64 if quick else 256)
    check_optional_int(ensemble, "--ensemble", 1)
    check_output_dir(out, "--out")
    _plt()  # the report needs matplotlib: say so before minutes of training, not after
    store_path = out / f"store-{n_runs}-runs"  # plans differ by run count; this keeps resuming safe
    typer.echo(f"training {n_runs} MLPs on modular addition mod 97 (10% corrupted labels) ...")
    run_training(store_path, dataset="modular", runs=n_runs, ensemble=ensemble, device=device, seed=seed)
    t_train = time.perf_counter() - t0
    summary = score_store(RunStore.open(store_path))
    page = write_report(store_path, out / "report")
    summary["wall_time_s"] = time.perf_counter() - t0
    summary["train_time_s"] = t_train
    write_json(out / "demo_summary.json", summary, default=float)  # strict: NaN as null
    typer.echo("")
    for line in _summary_lines(summary):
        typer.echo(line)
    typer.echo(f"report: {page}")
    typer.echo(f"wall time: {summary['wall_time_s']:.0f} s (training {t_train:.0f} s)")
