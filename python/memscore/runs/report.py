"""Scores, summaries and an HTML report (with PNG plots) for a run store or a size sweep.

A *sweep* is a directory holding several run stores trained on the same examples with
different model sizes, listed in ``sweep.json`` (``{"format": "memscore-sweep", "sizes":
[...], "stores": [...]}``); the command line's ``memscore train --width a --width b``
makes one. Writing files is atomic (temporary name, fsync, rename).

Nothing read from a store reaches a page raw: the report is built by the one HTML builder
(:mod:`memscore._html`, every text and attribute escaped), and every name in ``sweep.json``
that becomes a path (store names, sizes in the PNG names) must stay inside the sweep
directory, or the sweep is refused with the name shown.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from .._html import Markup, el, fmt, img, write_page
from .._io import atomic_write, resolve_inside, write_json
from .._plot import REPORT_CSS, pyplot, table_html
from .._validate import check_int
from ..errors import StoreError
from ..executors import ExecutorLike
from .datasets import DATASETS, TaskData, load_dataset
from .distillation import as_store, check_arms, distillation_effect
from .gallery import ROWS, ExampleHook, Thumbnails, example_source, gallery_sections, membership_section
from .membership import membership_metrics
from .proxies import disagreement, proxy_table, trajectories
from .removal import REMOVAL_FILE
from .report_distillation import distillation_section
from .report_sections import audit_section, enough_runs_section
from .store import RunStore

__all__ = ["Sweep", "open_scored", "plain_arm", "score_store", "summarize", "write_report", "task_of"]

SWEEP_FILE = "sweep.json"
#: What a sweep size may be written as (it names the PNG files of its store in a report).
SIZE_TOKEN = re.compile(r"[A-Za-z0-9_.+-]{1,64}")


# ----------------------------------------------------------------------------- files


def _write_json(path: Path, obj: Any) -> None:
    write_json(path, obj, sort_keys=True, default=float)


def _check_sweep(root: Path, sizes: list[Any], names: list[Any], what: str) -> list[Path]:
    """The store paths of a sweep, each inside ``root``; sizes are ints, finite floats or
    short plain tokens (``[A-Za-z0-9_.+-]``), all different.

    Raises
    ------
    StoreError
        A name resolves outside ``root`` (or to it), a size is not a plain token, the
        sizes mix numbers and names or repeat, or the lists differ in length; the message
        shows the value.
    """
    if len(sizes) != len(names):
        raise StoreError(f"{what}: expected as many sizes as stores, got {len(sizes)} sizes and {len(names)} stores")
    for i, size in enumerate(sizes):
        ok = isinstance(size, (int, float, str)) and not isinstance(size, bool)
        if not ok or (isinstance(size, float) and not math.isfinite(size)) or not SIZE_TOKEN.fullmatch(str(size)):
            raise StoreError(
                f"{what}: sizes[{i}]: expected a number or a name of letters, digits, '_', '.', '+', '-' "
                f"(it names the report's files), got {size!r}"
            )
    if len({isinstance(s, str) for s in sizes}) > 1:  # they are sorted: numbers or names, not both
        raise StoreError(f"{what}: sizes: expected all numbers or all names, got {sizes!r}")
    if len({str(s) for s in sizes}) != len(sizes):
        raise StoreError(f"{what}: sizes: expected different sizes, got {sizes!r}")
    return [resolve_inside(root, n, f"{what}: stores[{i}]", StoreError) for i, n in enumerate(names)]


class Sweep:
    """Run stores of one plan at several model sizes (see the module docstring).

    Parameters
    ----------
    path : pathlib.Path
        The sweep directory.
    sizes : list
        The model size of each store (JSON values, e.g. widths).
    stores : list of RunStore
        One store per size, in the order of ``sizes``.
    """

    def __init__(self, path: Path, sizes: list[Any], stores: list[RunStore]) -> None:
        self.path = path
        self.sizes = sizes
        self.stores = stores

    @staticmethod
    def is_sweep(path: str | os.PathLike[str]) -> bool:
        """Whether ``path`` holds a ``sweep.json``.

        Parameters
        ----------
        path : str or os.PathLike
            A directory.

        Returns
        -------
        bool
        """
        return (Path(path) / SWEEP_FILE).is_file()

    @classmethod
    def create(cls, path: str | os.PathLike[str], sizes: Sequence[Any], names: Sequence[str]) -> None:
        """Write ``sweep.json`` into ``path`` (made if missing), atomically.

        Parameters
        ----------
        path : str or os.PathLike
            The sweep directory.
        sizes : sequence
            The model size of each store (JSON values).
        names : sequence of str
            The store directories, relative to ``path``, in the order of ``sizes``.
        """
        root = Path(path)
        _check_sweep(root, list(sizes), list(names), "sweep")  # refused here, not by the reader
        root.mkdir(parents=True, exist_ok=True)
        _write_json(root / SWEEP_FILE, {"format": "memscore-sweep", "sizes": list(sizes), "stores": list(names)})

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Sweep:
        """Open a sweep directory and its stores.

        Parameters
        ----------
        path : str or os.PathLike
            A directory made by :meth:`create`.

        Returns
        -------
        Sweep

        Raises
        ------
        StoreError
            ``sweep.json`` is missing or unreadable, a store name resolves outside the
            sweep directory, a size is not a plain number or name, or a store cannot be
            opened.
        """
        root = Path(path)
        try:
            spec = json.loads((root / SWEEP_FILE).read_text())
            sizes, names = list(spec["sizes"]), list(spec["stores"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"{root / SWEEP_FILE}: not a readable sweep description ({exc})") from None
        paths = _check_sweep(root, sizes, names, str(root / SWEEP_FILE))
        return cls(root, sizes, [RunStore.open(p) for p in paths])


# ----------------------------------------------------------------------------- task ground truth


def task_of(store: RunStore) -> TaskData | None:
    """The embedded dataset a store was trained on, regenerated deterministically.

    Parameters
    ----------
    store : RunStore
        A store whose ``metadata["dataset"]`` names an embedded dataset and its arguments
        (the command line's ``memscore train`` writes it).

    Returns
    -------
    TaskData or None
        None for users' own data (no or an unknown dataset name).
    """
    spec = store.metadata.get("dataset") if isinstance(store.metadata, dict) else None
    if not isinstance(spec, dict) or spec.get("name") not in DATASETS:
        return None
    return load_dataset(spec["name"], **{k: v for k, v in spec.items() if k != "name"})


# ----------------------------------------------------------------------------- scoring


def score_store(
    store: RunStore,
    *,
    top_k: int = 10,
    out: str | os.PathLike[str] | None = None,
    executor: ExecutorLike = None,
) -> dict[str, Any]:
    """Score a store and write its tables.

    Writes ``scores.parquet``, ``influence_pairs.parquet`` (with test examples),
    ``proxies.parquet`` and ``summary.json`` into ``out``, each atomically.
    ``scores.parquet`` is :meth:`RunStore.scores` plus a ``corrupted`` column when the
    store was trained on an embedded dataset.

    Parameters
    ----------
    store : RunStore
        The store to score.
    top_k : int, default 10
        Most influential training examples kept per test example.
    out : str or os.PathLike, optional
        Output directory (default: the store directory).
    executor : None, str or memscore.executors.Executor
        Who computes the scores table (by run ranges) and the influence pairs (by test
        ranges): ``"local"`` (default), ``"threads[:N]"``, ``"ray[:ADDRESS]"`` or an
        instance (:func:`memscore.executors.as_executor`); identical tables under every
        executor. The summary is computed here.

    Returns
    -------
    dict
        The summary (see :func:`summarize`).

    Raises
    ------
    TypeError, ValueError
        ``top_k`` is not an integer >= 1.
    OSError
        ``out`` cannot be made or written.
    """
    check_int(top_k, "top_k", 1)
    out_dir = Path(out) if out is not None else store.path
    out_dir.mkdir(parents=True, exist_ok=True)
    task = task_of(store)
    scores = store.scores(executor=executor)
    if task is not None:
        scores = scores.with_columns(pl.Series("corrupted", task.corrupted))
    atomic_write(out_dir / "scores.parquet", lambda f: scores.write_parquet(f))
    if store.n_test:
        pairs = store.influence_pairs(top_k=top_k, executor=executor)
        atomic_write(out_dir / "influence_pairs.parquet", lambda f: pairs.write_parquet(f))
    proxies = proxy_table(scores)
    atomic_write(out_dir / "proxies.parquet", lambda f: proxies.write_parquet(f))
    summary = summarize(store, scores=scores)
    _write_json(out_dir / "summary.json", summary)
    return summary


def summarize(store: RunStore, *, scores: pl.DataFrame | None = None) -> dict[str, Any]:
    """Headline numbers of a store.

    Runs, test accuracy, disagreement vs error, and, for embedded datasets, the AUROC of
    memorization as a detector of corrupted labels.

    Parameters
    ----------
    store : RunStore
        The store.
    scores : polars.DataFrame, optional
        A precomputed ``store.scores()`` (with a ``corrupted`` column for embedded data).

    Returns
    -------
    dict of str to object
        JSON-ready numbers (``runs``, ``n_train``, ``n_test``, ``mean_memorization``, and
        where defined ``test_accuracy``, ``disagreement``, ``test_error``, ``gap``, ``cace``,
        ``corrupted_auroc``, ...).
    """
    scores = scores if scores is not None else store.scores()
    out: dict[str, Any] = {
        "store": str(store.path),
        "runs": len(store),
        "n_train": store.n_train,
        "n_test": store.n_test,
    }
    mem = scores["memorization"].to_numpy()
    out["mean_memorization"] = float(np.nanmean(mem)) if np.isfinite(mem).any() else float("nan")
    if store.n_test:
        correct = store.outcomes("test", "correct")
        out["test_accuracy"] = float(correct.mean())
        try:
            pred = store.outcomes("test", "pred")
        except StoreError:
            pred = None
        if pred is not None and pred.shape[0] >= 2 and store.test_labels is not None:
            d = disagreement(pred, store.test_labels, n_classes=store.n_classes)
            out.update({f"{k}": v for k, v in d.as_dict().items()})
    if "corrupted" in scores.columns:
        corrupted = scores["corrupted"].to_numpy()
        m = membership_metrics(mem, corrupted)
        out["corrupted_auroc"] = m.auc
        out["corrupted_tpr_at_fpr_0.01"] = m.tpr_at_fpr[0.01]
        out["n_corrupted"] = int(corrupted.sum())
        out["mean_memorization_corrupted"] = float(np.nanmean(mem[corrupted])) if corrupted.any() else float("nan")
        out["mean_memorization_clean"] = float(np.nanmean(mem[~corrupted])) if (~corrupted).any() else float("nan")
    return out


def open_scored(path: str | os.PathLike[str]) -> tuple[Sweep | None, list[RunStore]]:
    """The stores of a store directory or of a sweep directory.

    Parameters
    ----------
    path : str or os.PathLike
        A store or sweep directory.

    Returns
    -------
    tuple of (Sweep or None, list of RunStore)

    Raises
    ------
    StoreError
        ``path`` is neither a readable store nor a sweep.
    """
    if Sweep.is_sweep(path):
        sw = Sweep.open(path)
        return sw, sw.stores
    return None, [RunStore.open(path)]


def plain_arm(sweep: Sweep | None, stores: list[RunStore], distilled: RunStore, plain_size: Any = None) -> RunStore:
    """The report's store that is the plain arm against ``distilled``.

    Parameters
    ----------
    sweep : Sweep or None
        The report's sweep (None: one store).
    stores : list of RunStore
        The report's stores.
    distilled : RunStore
        The distilled arm.
    plain_size : optional
        A sweep size; by default the sweep store whose ``metadata["model"]`` equals the
        distilled store's.

    Returns
    -------
    RunStore

    Raises
    ------
    ValueError
        ``plain_size`` for a single store or not a size of the sweep; no sweep store or
        several match the distilled store's model.
    """
    if sweep is None:
        if plain_size is not None:
            raise ValueError(f"plain_size: only for a sweep (the report is of one store), got {plain_size!r}")
        return stores[0]
    sizes = [str(s) for s in sweep.sizes]
    if plain_size is not None:
        if str(plain_size) not in sizes:
            raise ValueError(f"plain_size: expected one of the sweep's sizes {sweep.sizes}, got {plain_size!r}")
        return stores[sizes.index(str(plain_size))]
    model = distilled.metadata.get("model")
    found = [s for s in stores if model is not None and s.metadata.get("model") == model]
    if len(found) != 1:
        raise ValueError(
            f"plain_size: {len(found)} of the sweep's stores have the distilled store's model ({model!r}); "
            f"name the plain arm's size, one of {sweep.sizes}"
        )
    return found[0]


# ----------------------------------------------------------------------------- plots


def _plt() -> Any:
    return pyplot()


def _save(fig: Any, path: Path) -> None:
    atomic_write(path, lambda f: fig.savefig(f, dpi=110, bbox_inches="tight", format="png"))
    _plt().close(fig)


def _plot_hist(scores: pl.DataFrame, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    mem = scores["memorization"].to_numpy()
    bins = np.linspace(-1, 1, 41)
    if "corrupted" in scores.columns:
        c = scores["corrupted"].to_numpy()
        ax.hist(mem[~c & np.isfinite(mem)], bins=bins, alpha=0.7, label=f"clean ({int((~c).sum())})", color="tab:blue")
        ax.hist(mem[c & np.isfinite(mem)], bins=bins, alpha=0.7, label=f"corrupted ({int(c.sum())})", color="tab:red")
        ax.legend()
    else:
        ax.hist(mem[np.isfinite(mem)], bins=bins, color="tab:blue")
    ax.set_yscale("log")
    ax.set_xlabel("memorization  P(correct | in) − P(correct | out)")
    ax.set_ylabel("training examples")
    ax.set_title("Memorization of training examples")
    _save(fig, path)


def _plot_roc(scores: pl.DataFrame, path: Path) -> float:
    plt = _plt()
    mem = scores["memorization"].to_numpy()
    c = scores["corrupted"].to_numpy()
    fig, ax = plt.subplots(figsize=(4.2, 4))
    aucs = {}
    curves = (
        ("memorization", "memorization"),
        ("holdout_accuracy", "1 − hold-out accuracy"),
        ("el2n", "EL2N (earliest snapshot)"),
        ("loss", "training loss (last snapshot)"),
    )
    for col, label in curves:
        if col not in scores.columns:
            continue
        v = scores[col].fill_null(np.nan).to_numpy().astype(float)
        if not np.isfinite(v).any():
            continue
        v = -v if col == "holdout_accuracy" else v
        m = membership_metrics(v, c)
        aucs[col] = m.auc
        ax.plot(m.fpr, m.tpr, label=f"{label} (AUROC {m.auc:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.set_xlabel("false positive rate (clean flagged)")
    ax.set_ylabel("true positive rate (corrupted found)")
    ax.set_title("Finding corrupted labels")
    ax.legend(fontsize=8, loc="lower right")
    _save(fig, path)
    return float(membership_metrics(mem, c).auc)


def _plot_mem_vs_holdout(scores: pl.DataFrame, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 4))
    mem = scores["memorization"].to_numpy()
    ho = scores["holdout_accuracy"].to_numpy()
    if "corrupted" in scores.columns:
        c = scores["corrupted"].to_numpy()
        ax.scatter(ho[~c], mem[~c], s=4, alpha=0.4, label="clean", color="tab:blue")
        ax.scatter(ho[c], mem[c], s=4, alpha=0.6, label="corrupted", color="tab:red")
        ax.legend(markerscale=3)
    else:
        ax.scatter(ho, mem, s=4, alpha=0.4)
    ax.set_xlabel("hold-out accuracy  P(correct | out)")
    ax.set_ylabel("memorization")
    ax.set_title("Memorization vs hold-out accuracy")
    _save(fig, path)


def _plot_proxies(proxies: pl.DataFrame, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 0.45 * max(proxies.height, 2) + 1))
    names = proxies["proxy"].to_list()
    vals = proxies["spearman"].to_numpy()
    ax.barh(range(len(names)), vals, color=["tab:green" if v >= 0 else "tab:purple" for v in vals])
    ax.set_yticks(range(len(names)), names)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlim(-1, 1)
    ax.invert_yaxis()
    ax.set_xlabel("Spearman correlation with memorization")
    ax.set_title("How well cheap proxies track memorization")
    _save(fig, path)


def _plot_trajectories(traj: pl.DataFrame, sizes: list[Any], path: Path) -> None:
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    counts = traj.group_by("trajectory").len().sort("len", descending=True)
    a1.bar([str(k) for k in counts["trajectory"].to_list()], counts["len"].to_numpy(), color="tab:blue")
    a1.set_ylabel("training examples")
    a1.tick_params(axis="x", labelrotation=30)
    a1.set_title("Memorization trajectory across model sizes")
    cols = [c for c in traj.columns if c.startswith("mem_")]
    for kind, color in (("increasing", "tab:red"), ("decreasing", "tab:green"), ("cap", "tab:orange")):
        sub = traj.filter(pl.col("trajectory") == kind)
        if sub.height == 0:
            continue
        mean = np.nanmean(sub.select(cols).to_numpy(), axis=0)
        a2.plot([str(s) for s in sizes], mean, marker="o", color=color, label=f"{kind} ({sub.height})")
    a2.set_xlabel("model size")
    a2.set_ylabel("mean memorization")
    a2.set_title("Mean memorization per trajectory class")
    if a2.lines:
        a2.legend(fontsize=8)
    _save(fig, path)


# ----------------------------------------------------------------------------- HTML


def _plot_removal(curve: pl.DataFrame, path: Path) -> None:
    """Test accuracy against the fraction removed, one line per (valuation, order)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for (name, order), part in curve.sort("fraction").group_by(["valuation", "order"], maintain_order=True):
        x, y = part["fraction"].to_numpy(), part["test_accuracy"].to_numpy()
        ax.plot(x, y, marker="o", label=f"{name}: {order} first")
        if "test_accuracy_std" in part.columns:
            sd = np.nan_to_num(part["test_accuracy_std"].to_numpy())
            ax.fill_between(x, y - sd, y + sd, alpha=0.15)
    ax.set_xlabel("fraction of training examples removed")
    ax.set_ylabel("test accuracy")
    ax.set_title("Point removal: retrained without the highest / lowest valued")
    ax.legend(fontsize=8)
    _save(fig, path)


def _summary_html(summary: dict[str, Any]) -> Markup:
    labels = {
        "runs": "training runs",
        "test_accuracy": "mean test accuracy of a run",
        "disagreement": "mean pairwise disagreement on test (error estimate)",
        "test_error": "actual mean test error",
        "gap": "disagreement − error",
        "cace": "class-aggregated calibration error (bounds |gap|)",
        "corrupted_auroc": "AUROC of memorization for finding corrupted labels",
        "corrupted_tpr_at_fpr_0.01": "corrupted labels found at 1% false positives",
        "mean_memorization_corrupted": "mean memorization, corrupted examples",
        "mean_memorization_clean": "mean memorization, clean examples",
    }
    rows = [el("tr", el("td", label), el("td", fmt(summary[k]))) for k, label in labels.items() if k in summary]
    return el("table", *rows)


#: Subdirectory of a store holding its evaluation runs (a store of the same examples).
EVAL_DIR = "eval"


def lds_table(store: RunStore, eval_store: RunStore, kind: str = "phi") -> pl.DataFrame:
    """LDS of Feldman–Zhang influence and of datamodels fitted on ``store``, scored on the
    evaluation runs of ``eval_store`` (runs with identical masks averaged).

    Returns
    -------
    polars.DataFrame
        One row per attribution: ``attribution``, ``lds``, ``ci_low``, ``ci_high``,
        ``subsets``, ``runs`` (the runs it was fitted on).
    """
    rows = []
    for name, att in (
        ("influence (Feldman–Zhang)", store.influence(kind)),
        ("datamodels", store.datamodels(kind).weights),
    ):
        s = eval_store.lds(att, kind)
        rows.append(
            {"attribution": name, "lds": s.mean, "ci_low": s.ci[0], "ci_high": s.ci[1], "subsets": s.n_subsets,
             "runs": len(store)}
        )  # fmt: skip
    return pl.DataFrame(rows)


def write_report(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    top_pairs: int = 20,
    examples: ExampleHook | None = None,
    test_examples: ExampleHook | None = None,
    data_root: str | os.PathLike[str] | None = None,
    max_thumbnails: int = 400,
    gallery_rows: int = ROWS,
    membership: bool = True,
    distilled: RunStore | str | os.PathLike[str] | None = None,
    teacher: Any = None,
    plain_size: Any = None,
) -> Path:
    """Write ``index.html``, its PNG plots and the example thumbnails for a store or sweep
    directory: one folder that opens offline.

    Scores are computed (and written, as :func:`score_store` does) when the store has no
    ``scores.parquet`` yet. Sections: summary; memorization histogram split corrupted vs
    clean; ROC of memorization as a corrupted-label detector; memorization vs hold-out
    accuracy; the example gallery (:mod:`memscore.runs.gallery`: the most and least
    memorized training examples, the highest-influence train → test pairs, suspected
    label issues, a datamodels store's top positive and negative training examples); the
    membership ROC of LiRA and RMIA on log-log axes and the most exposed examples;
    point-removal curves when the store directory holds ``removal.parquet``
    (:func:`memscore.runs.removal.write_removal_curve`); proxy correlations; the LDS of
    influence and datamodels when the store has evaluation runs in ``<store>/eval``
    (:func:`lds_table`); "Are there enough runs?" (split-half reliability and the runs each
    target needs); the audit (an ε lower bound from the runs, per-example ε, the
    reference-budget curve; :mod:`memscore.runs.report_sections`); for a sweep,
    memorization trajectories across model sizes; and, given a ``distilled`` store, the
    "Distillation" section (:mod:`memscore.runs.report_distillation`): the arms' test
    accuracy and membership exposure, the change of memorization per example and per
    trajectory class, student against teacher confidence, the largest drops.
    Tables sort by a click on a column and filter by the box above them.

    Parameters
    ----------
    path : str or os.PathLike
        A store or sweep directory.
    out : str or os.PathLike, optional
        Report directory (default: ``<path>/report``).
    top_pairs : int, default 20
        Rows of the influence pairs' table.
    examples, test_examples : callable, optional
        ``index -> image array or str`` for training / test examples, for data memscore
        cannot read from the store's metadata (:func:`memscore.runs.gallery.token_examples`
        decodes token ids). Default: the dataset the store names (embedded datasets, and
        torchvision's image files under ``data_root``).
    data_root : str or os.PathLike, optional
        torchvision's files of an image dataset (default: the root recorded by
        ``memscore train --root``).
    max_thumbnails : int, default 400
        Thumbnails written at most, for the whole report.
    gallery_rows : int, default 16
        Rows of each gallery table.
    membership : bool, default True
        Draw the membership and audit sections (LiRA and RMIA read every run's phi once more).
    distilled : RunStore or path, optional
        A store of distilled runs over the same examples: adds the "Distillation" section
        (:func:`memscore.distillation_effect`), its plain arm the report's store (for a sweep,
        see ``plain_size``; the sweep's memorization gives the trajectories).
    teacher : RunStore, path or (n_train, C) logits, optional
        The teacher of ``distilled`` (default: the store its runs record).
    plain_size : optional
        For a sweep: the size whose store is the plain arm. Default: the store whose
        ``metadata["model"]`` equals the distilled store's (``memscore train`` records it).

    Returns
    -------
    pathlib.Path
        The HTML page.

    Raises
    ------
    TypeError, ValueError
        ``top_pairs`` is not an integer >= 1.
    ImportError
        matplotlib is not installed.
    StoreError
        ``path`` is not a readable store or sweep.
    ValueError
        A ``distilled`` or ``teacher`` that :func:`memscore.distillation_effect` refuses; no
        sweep store matches ``plain_size``.
    OSError
        The report cannot be written.
    """
    check_int(top_pairs, "top_pairs", 1)
    check_int(max_thumbnails, "max_thumbnails", 0)
    check_int(gallery_rows, "gallery_rows", 1)
    for name, hook in (("examples", examples), ("test_examples", test_examples)):
        if hook is not None and not callable(hook):
            raise TypeError(f"{name}: expected a function index -> image array or str, got {type(hook).__name__}")
    sweep, stores = open_scored(path)
    # a bad distilled store or teacher is refused before anything is scored or drawn
    arms = None
    if distilled is not None:
        d_store = as_store(distilled, "distilled")
        arms = check_arms(plain_arm(sweep, stores, d_store, plain_size), d_store, teacher)
    out_dir = Path(out) if out is not None else Path(path) / "report"
    out_dir.mkdir(parents=True, exist_ok=True)

    def figure(name: str, alt: str, plot: Any, *args: Any) -> Markup:
        tag = img(name, alt)  # a plain generated name, checked before anything is drawn
        plot(*args, resolve_inside(out_dir, name, "report figure"))
        return tag

    written: dict[tuple[str, int], str] = {}

    parts: list[Any] = [el("h1", "memscore report"), el("p", str(Path(path).resolve()))]
    mems: dict[Any, np.ndarray] = {}
    for k, store in enumerate(stores):
        tag = "" if sweep is None else f"size-{sweep.sizes[k]}-"  # sizes are plain tokens (Sweep.open)
        if not (store.path / "scores.parquet").is_file() or not (store.path / "summary.json").is_file():
            score_store(store)
        scores = pl.read_parquet(store.path / "scores.parquet")
        summary = _read_summary(store.path / "summary.json")
        proxies = pl.read_parquet(store.path / "proxies.parquet")
        mems[sweep.sizes[k] if sweep is not None else 0] = scores["memorization"].to_numpy()
        meta = store.metadata
        title = str(meta.get("title", store.path.name)) if isinstance(meta, dict) else store.path.name
        parts.append(el("h2", f"Model size {sweep.sizes[k]}: {title}" if sweep is not None else title))
        parts.append(_summary_html(summary))
        parts.append(figure(f"{tag}memorization_hist.png", "memorization histogram", _plot_hist, scores))
        if "corrupted" in scores.columns:
            parts.append(
                figure(f"{tag}corrupted_roc.png", "ROC of memorization for corrupted labels", _plot_roc, scores)
            )
        parts.append(
            figure(
                f"{tag}memorization_vs_holdout.png", "memorization vs hold-out accuracy", _plot_mem_vs_holdout, scores
            )
        )
        pairs_path = store.path / "influence_pairs.parquet"
        pairs = pl.read_parquet(pairs_path) if pairs_path.is_file() else None
        source = example_source(store, examples=examples, test_examples=test_examples, data_root=data_root)
        # one cap for the whole report; a sweep's stores share the examples, so their files too
        thumbs = Thumbnails(out_dir, source, max_thumbnails, written=written)
        parts += gallery_sections(
            store, scores, thumbs, pairs=pairs, rows=gallery_rows, top_pairs=top_pairs, id_prefix=tag
        )
        if membership:
            parts += membership_section(store, scores, thumbs, figure, rows=gallery_rows, id_prefix=tag)
        removal_path = store.path / REMOVAL_FILE
        if removal_path.is_file():  # written by memscore.runs.removal.write_removal_curve
            parts.append(el("h3", "Point-removal curves"))
            alt = "test accuracy against the fraction removed"
            parts.append(figure(f"{tag}removal.png", alt, _plot_removal, pl.read_parquet(removal_path)))
        parts.append(el("h3", "Proxies of memorization"))
        parts.append(table_html(proxies))
        if proxies.height:
            parts.append(figure(f"{tag}proxies.png", "proxy correlations", _plot_proxies, proxies))
        eval_dir = store.path / EVAL_DIR
        if (eval_dir / "manifest.json").is_file() and store.n_test:
            parts.append(el("h3", "Linear datamodeling score on the evaluation runs"))
            parts.append(table_html(lds_table(store, RunStore.open(eval_dir))))
        parts += enough_runs_section(store)
        if membership:
            parts += audit_section(store, figure, id_prefix=tag)
    if sweep is not None and len(stores) >= 2:
        traj = trajectories(mems)
        atomic_write(Path(path) / "trajectories.parquet", lambda f: traj.write_parquet(f))
        parts.append(el("h2", "Memorization across model sizes"))
        parts.append(
            figure("trajectories.png", "memorization trajectories", _plot_trajectories, traj, list(sweep.sizes))
        )
        counts = traj.group_by("trajectory").len().sort("len", descending=True)
        parts.append(table_html(counts))
    if arms is not None:
        sizes = mems if sweep is not None and len(stores) >= 2 else None
        t = arms.teacher if arms.teacher is not None else teacher  # a store, given or recorded; or logits
        effect = distillation_effect(arms.plain, arms.distilled, teacher=t, trajectories=sizes)
        source = example_source(arms.plain, examples=examples, test_examples=test_examples, data_root=data_root)
        thumbs = Thumbnails(out_dir, source, max_thumbnails, written=written)
        parts += distillation_section(
            effect, thumbs, figure, plain=str(arms.plain.path), distilled=str(arms.distilled.path), rows=gallery_rows
        )
    page = out_dir / "index.html"
    write_page(page, "memscore report", parts, REPORT_CSS)
    return page


def _read_summary(path: Path) -> dict[str, Any]:
    """A store's ``summary.json`` (a JSON object).

    Raises
    ------
    StoreError
        The file is not readable JSON or not an object.
    """
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StoreError(f"{path}: not a readable summary ({exc})") from None
    if not isinstance(summary, dict):
        raise StoreError(f"{path}: expected a JSON object, got {type(summary).__name__}")
    return summary
