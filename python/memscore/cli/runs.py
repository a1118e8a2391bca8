"""``memscore train | score | report | demo``: the runs engine from the command line.

Needs the ``cli`` extra (typer, rich); training needs ``train`` (torch), reports ``plot``
(matplotlib): ``pip install 'memscore[cli,train,plot]'``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer

__all__ = ["app", "PRESETS", "run_training"]

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


def _load_dataset(name: str, data: dict[str, Any]) -> Any:
    from ..runs import datasets

    if name == "modular":
        return datasets.modular_arithmetic(**data)
    if name == "digits":
        return datasets.digits(**data)
    raise ValueError(f"dataset: expected one of {sorted(PRESETS)}, got {name!r}")


def _parse_ints(text: str | None, name: str) -> list[int] | None:
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
    ensemble: int = 64,
    device: str = "auto",
    seed: int = 0,
    keep_logits: bool = False,
    progress: bool = True,
    max_runs: int | None = None,
    data_overrides: dict[str, Any] | None = None,
    **overrides: Any,
) -> list[Path]:
    """Train ``runs`` runs of an embedded dataset into a store (or a sweep over widths).

    Resumes: runs already in the store(s) are skipped. Returns the store paths.
    """
    from ..runs.report import Sweep
    from ..runs.store import RunStore
    from ..runs.train import SubsetPlan, create_store, mlp, train_runs

    if dataset not in PRESETS:
        raise ValueError(f"dataset: expected one of {sorted(PRESETS)}, got {dataset!r}")
    preset = dict(PRESETS[dataset])
    data_spec = {**preset.pop("data"), **(data_overrides or {})}
    given = {k: v for k, v in overrides.items() if v is not None}
    if "epochs" in given and "snapshot_epochs" not in given:
        # the preset's snapshots, cut to the epochs asked for (and the last epoch kept)
        preset["snapshot_epochs"] = sorted(
            {e for e in preset["snapshot_epochs"] if e <= given["epochs"]} | {given["epochs"]}
        )
    preset.update(given)
    widths = widths or [int(preset["width"])]
    task = _load_dataset(dataset, data_spec)
    plan = SubsetPlan(task.n_train, runs, keep=keep, seed=seed)
    train, test = (task.x_train, task.y_train), (task.x_test, task.y_test)
    paths = [store_path] if len(widths) == 1 else [store_path / f"width-{w}" for w in widths]
    if len(widths) > 1:
        Sweep.create(store_path, widths, [p.name for p in paths])
    for w, path in zip(widths, paths):
        meta = {
            "title": f"{task.name}, MLP width {w}",
            "dataset": {"name": dataset, **data_spec},
            "model": {"kind": "mlp", "width": w, "depth": preset["depth"], "activation": preset["activation"]},
            "plan": plan.as_dict() | {"keep": keep},
        }
        if (path / "manifest.json").is_file():
            store = RunStore.open(path)
            if store.metadata.get("dataset") != meta["dataset"] or store.metadata.get("model") != meta["model"]:
                raise ValueError(f"{path}: holds runs of another dataset or model; use a new store path")
        else:
            store = create_store(path, train, test, n_classes=task.n_classes, metadata=meta)

        def model_fn(w: int = w) -> Any:
            return mlp(task.n_features, task.n_classes, width=w, depth=preset["depth"], activation=preset["activation"])

        train_runs(
            model_fn, train, test, plan, store,
            epochs=preset["epochs"], batch_size=preset["batch_size"], lr=preset["lr"],
            optimizer=preset["optimizer"], momentum=preset["momentum"], weight_decay=preset["weight_decay"],
            ensemble=ensemble, device=device, snapshot_epochs=preset["snapshot_epochs"],
            keep_logits=keep_logits, seed=seed, progress=progress, max_runs=max_runs,
        )  # fmt: skip
    return paths


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


@app.command()
def train(
    store: Path = typer.Argument(
        ..., help="Store directory (made if missing; a sweep directory with several --width)."
    ),
    dataset: str = typer.Option(
        "modular", help="Embedded dataset: modular (addition mod 97 with corrupted labels) or digits."
    ),
    width: list[int] | None = typer.Option(None, help="Hidden width; repeat for a model-size sweep."),
    runs: int = typer.Option(256, help="Number of training runs (random subsets)."),
    keep: float = typer.Option(0.5, help="Fraction of the training set each run trains on."),
    epochs: int | None = typer.Option(None, help="Epochs per run (default: the dataset's preset)."),
    batch_size: int | None = typer.Option(None, help="Minibatch size."),
    lr: float | None = typer.Option(None, help="Learning rate."),
    optimizer: str | None = typer.Option(None, help="sgd, adam or adamw."),
    weight_decay: float | None = typer.Option(None, help="Weight decay."),
    snapshot_epochs: str | None = typer.Option(None, help="Comma-separated epochs at which outcomes are recorded."),
    ensemble: int = typer.Option(64, help="Runs trained at once as one vmapped model."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    seed: int = typer.Option(0, help="Seed of the plan, initializations and batch order."),
    keep_logits: bool = typer.Option(False, help="Also store the final logits of every run."),
    max_runs: int | None = typer.Option(None, help="Stop after this many new runs (resume later)."),
) -> None:
    """Train runs on random subsets of an embedded dataset and record them in a run store.

    Re-running the same command resumes: finished runs are skipped."""
    t0 = time.perf_counter()
    paths = run_training(
        store, dataset=dataset, widths=width, runs=runs, keep=keep, ensemble=ensemble, device=device,
        seed=seed, keep_logits=keep_logits, max_runs=max_runs, epochs=epochs, batch_size=batch_size,
        lr=lr, optimizer=optimizer, weight_decay=weight_decay,
        snapshot_epochs=_parse_ints(snapshot_epochs, "snapshot_epochs"),
    )  # fmt: skip
    typer.echo(f"trained into {', '.join(map(str, paths))} in {time.perf_counter() - t0:.1f} s")


@app.command()
def score(
    store: Path = typer.Argument(..., help="Store or sweep directory."),
    top_k: int = typer.Option(10, help="Most influential training examples kept per test example."),
) -> None:
    """Write scores.parquet, influence_pairs.parquet, proxies.parquet and summary.json into each store."""
    from ..runs.report import open_scored, score_store

    _, stores = open_scored(store)
    for s in stores:
        summary = score_store(s, top_k=top_k)
        typer.echo(f"{s.path}:")
        for line in _summary_lines(summary):
            typer.echo(f"  {line}")


@app.command()
def report(
    store: Path = typer.Argument(..., help="Store or sweep directory."),
    out: Path | None = typer.Option(None, help="Report directory (default: STORE/report)."),
) -> None:
    """Write an HTML report with PNG plots (scores are computed first if missing)."""
    from ..runs.report import write_report

    page = write_report(store, out)
    typer.echo(f"report: {page}")


@app.command()
def demo(
    out: Path = typer.Option(Path("memscore-demo"), help="Directory for the store and the report."),
    quick: bool = typer.Option(False, help="A one-minute version: 64 runs instead of 256."),
    runs: int | None = typer.Option(None, help="Number of runs (default 256, or 64 with --quick)."),
    ensemble: int = typer.Option(64, help="Runs trained at once."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    seed: int = typer.Option(0, help="Seed."),
) -> None:
    """The main job: train 256 MLPs on random halves of modular addition mod 97 with 10% corrupted labels, score, report.

    Ends with a summary: test accuracy, AUROC of memorization for the corrupted labels,
    disagreement vs actual test error, and where the report is."""
    from ..runs.report import score_store, write_report
    from ..runs.store import RunStore

    t0 = time.perf_counter()
    n_runs = runs if runs is not None else (64 if quick else 256)
    store_path = out / f"store-{n_runs}-runs"  # plans differ by run count; this keeps resuming safe
    typer.echo(f"training {n_runs} MLPs on modular addition mod 97 (10% corrupted labels) ...")
    run_training(store_path, dataset="modular", runs=n_runs, ensemble=ensemble, device=device, seed=seed)
    t_train = time.perf_counter() - t0
    summary = score_store(RunStore.open(store_path))
    page = write_report(store_path, out / "report")
    summary["wall_time_s"] = time.perf_counter() - t0
    summary["train_time_s"] = t_train
    (out / "demo_summary.json").write_text(json.dumps(summary, indent=2, default=float))
    typer.echo("")
    for line in _summary_lines(summary):
        typer.echo(line)
    typer.echo(f"report: {page}")
    typer.echo(f"wall time: {summary['wall_time_s']:.0f} s (training {t_train:.0f} s)")
