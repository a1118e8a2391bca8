"""The example gallery of a run store's report: the training and test examples themselves,
beside their scores.

A report shows each example the way its data reads: an image for image data (the embedded
digits, torchvision's CIFAR, MNIST, SVHN files), a small line plot for 1-D signals
(MNIST-1D), the equation ``a + b = c`` for modular arithmetic, and, through a hook, anything
else (a function from index to an image array or a string; :func:`token_examples` makes one
that decodes token ids). Images become small PNG files beside ``index.html``
(``ex-train-000123.png``), written atomically, so the report is one folder that opens
offline; at most ``max_thumbnails`` are written (the rest show their index only).

Sections (:func:`gallery_sections`): the most and the least memorized training examples;
the top influence pairs, train example -> test example; suspected label issues (the given
label, the label the runs predict for the example when they held it out, and which
detectors flag it); for a store with ``datamodels.npz`` the top positive and negative
training examples of a few test examples; and (:func:`membership_section`) the ROC of
LiRA (online, offline) and RMIA on log-log axes and the examples most exposed to them.

Every value reaches the page through :mod:`memscore._html` (escaped); thumbnail names are
generated here from the split and the index.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from .._html import Markup, el, img
from .._plot import LOW_FPR, cell, plot_roc_loglog, pyplot, save_figure, table_html, write_png
from .._validate import check_int
from ..errors import DatasetError, StoreError
from .datasets import DATASETS, IMAGE_DATASETS, TaskData, image_dataset, load_dataset
from .membership import MembershipMetrics, membership_metrics
from .store import RunStore

__all__ = [
    "ExampleHook", "Examples", "example_source", "example_table", "gallery_sections", "label_value",
    "membership_section", "per_example_auc", "predicted_labels", "token_examples",
]  # fmt: skip

F64 = npt.NDArray[np.float64]
#: A user's renderer of one example: index -> an image array ((H, W), (H, W, 3), (C, H, W)
#: with C in 1 or 3, uint8 or floats), a 1-D signal, or a string.
ExampleHook = Callable[[int], Any]

#: The file name the datamodels command writes into a store (``memscore datamodels``).
DATAMODELS_FILE = "datamodels.npz"
#: The side of a thumbnail, at least (small images are scaled up by whole pixels).
THUMB_PX = 48
#: Rows of each gallery table.
ROWS = 16

_OPS = {"add": "+", "sub": "−", "mul": "×"}


# ----------------------------------------------------------------------------- what an example is


@dataclass
class Examples:
    """How to show the train and test examples of one store.

    Attributes
    ----------
    train, test : callable or None
        Index -> image array, 1-D signal or string; None: the split is shown by index.
    what : str
        Where the examples come from, for the page.
    clean_train : ndarray of int64 or None
        The training labels before corruption, where the dataset knows them.
    """

    train: ExampleHook | None
    test: ExampleHook | None
    what: str
    clean_train: npt.NDArray[np.int64] | None = None


def token_examples(tokens: Sequence[Sequence[int]] | np.ndarray, decode: Callable[[list[int]], str]) -> ExampleHook:
    """A hook that shows token data as text: ``decode(list(tokens[i]))``.

    Parameters
    ----------
    tokens : sequence of sequences of int, or 2-D integer array
        The token ids of each example.
    decode : callable
        A tokenizer's decode (``tokenizers.Tokenizer.decode``, a transformers tokenizer's
        ``decode``).

    Returns
    -------
    callable
        ``index -> str``.

    Examples
    --------
    >>> hook = token_examples([[72, 105], [79, 107]], lambda ids: "".join(map(chr, ids)))
    >>> hook(1)
    'Ok'
    """

    def show(i: int) -> str:
        return str(decode([int(t) for t in tokens[i]]))

    return show


def _modular(task: TaskData) -> Examples:
    p, op = task.info["p"], _OPS.get(str(task.info["op"]), str(task.info["op"]))
    tr, te = np.asarray(task.info["train_pairs"]), np.asarray(task.info["test_pairs"])
    # the equation with its true result; the tables give the label the runs saw beside it
    return Examples(
        lambda i: f"{tr[i, 0]} {op} {tr[i, 1]} = {task.clean_train[i]} (mod {p})",
        lambda i: f"{te[i, 0]} {op} {te[i, 1]} = {task.y_test[i]} (mod {p})",
        task.name,
        task.clean_train,
    )


def _rows_of(x: np.ndarray, shape: tuple[int, ...] | None) -> ExampleHook:
    return lambda i: x[i] if shape is None else x[i].reshape(shape)


def example_source(
    store: RunStore,
    *,
    examples: ExampleHook | None = None,
    test_examples: ExampleHook | None = None,
    data_root: str | os.PathLike[str] | None = None,
) -> Examples | None:
    """How a store's examples are shown: the hooks, else the dataset the store names.

    Parameters
    ----------
    store : RunStore
        The store; ``metadata["dataset"]`` names its dataset when ``memscore train`` made it.
    examples, test_examples : callable, optional
        Index -> image array or string, for training / test examples (they win over the
        dataset).
    data_root : str or os.PathLike, optional
        Where torchvision's files of an image dataset are (default: the ``data_root``
        ``memscore train --root`` recorded in the store's metadata).

    Returns
    -------
    Examples or None
        None when there is neither a hook nor a dataset memscore can read.
    """
    meta = store.metadata if isinstance(store.metadata, dict) else {}
    spec = meta.get("dataset")
    base: Examples | None = None
    if isinstance(spec, dict) and isinstance(spec.get("name"), str):
        name = spec["name"]
        args = {k: v for k, v in spec.items() if k != "name"}
        task: TaskData | None = None
        try:
            if name in DATASETS:
                task = load_dataset(name, **args)
            elif name in IMAGE_DATASETS:
                root = data_root if data_root is not None else meta.get("data_root")
                if isinstance(root, (str, os.PathLike)):
                    task = image_dataset(name, root, **args)
        except (ImportError, OSError, DatasetError, TypeError, ValueError) as exc:
            warnings.warn(f"report: the examples of {name} cannot be shown ({exc})", stacklevel=3)
            task = None
        if task is not None and task.n_train == store.n_train and task.n_test == store.n_test:
            if name == "modular":
                base = _modular(task)
            elif name == "digits":
                base = Examples(
                    _rows_of(task.x_train, (8, 8)), _rows_of(task.x_test, (8, 8)), "digits", task.clean_train
                )
            else:  # mnist1d signals, torchvision's uint8 (n, C, H, W) images
                base = Examples(_rows_of(task.x_train, None), _rows_of(task.x_test, None), name, task.clean_train)
    if examples is None and test_examples is None:
        return base
    return Examples(
        examples if examples is not None else (base.train if base else None),
        test_examples if test_examples is not None else (base.test if base else None),
        "the examples given to the report",
        base.clean_train if base else None,
    )


# ----------------------------------------------------------------------------- thumbnails


def as_thumbnail(x: Any) -> np.ndarray | None:
    """An example as a uint8 (H, W) or (H, W, 3) image at least :data:`THUMB_PX` pixels
    high, or None for a string (shown as text).

    Float images are scaled to 0..255 from [0, 1] when they lie there, else from their
    range; (C, H, W) with C in 1 or 3 is moved to (H, W, C); a 1-D array is drawn as a line.

    Raises
    ------
    ValueError
        An array of another shape, or of non-real values.
    """
    if isinstance(x, str):
        return None
    a = np.asarray(x)
    if a.dtype.kind not in "biuf" or a.size == 0:
        raise ValueError(f"example: expected an image array of real numbers or a string, got {a.dtype} {a.shape}")
    if a.ndim == 1:
        a = _signal_image(np.asarray(a, dtype=np.float64))
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[2] not in (1, 3):
        a = np.moveaxis(a, 0, 2)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)):
        raise ValueError(f"example: expected an image (H, W), (H, W, 3) or (C, H, W), got shape {a.shape}")
    if a.dtype != np.uint8:
        f = np.nan_to_num(np.asarray(a, dtype=np.float64))
        lo, hi = (0.0, 1.0) if f.min() >= 0 and f.max() <= 1 else (float(f.min()), float(f.max()))
        a = np.round(255 * (f - lo) / (hi - lo if hi > lo else 1.0)).clip(0, 255).astype(np.uint8)
    k = max(1, math.ceil(THUMB_PX / max(a.shape[0], 1)))
    return np.repeat(np.repeat(a, k, axis=0), k, axis=1) if k > 1 else a


def _signal_image(v: F64, height: int = 24) -> np.ndarray:
    """A 1-D signal drawn as a dark line on white, one column per sample (two pixels wide)."""
    v = np.nan_to_num(v)
    lo, hi = float(v.min()), float(v.max())
    rows = np.round((height - 1) * (1 - (v - lo) / (hi - lo if hi > lo else 1.0))).astype(int)
    out = np.full((height, 2 * v.size), 255, np.uint8)
    for j, r in enumerate(rows):  # a vertical stroke to the next sample keeps the line joined
        nxt = rows[j + 1] if j + 1 < rows.size else r
        out[min(r, nxt) : max(r, nxt) + 1, 2 * j : 2 * j + 2] = 40
    return out


@dataclass
class Thumbnails:
    """The example cells of one report: PNG files in ``out_dir`` (each example once), text
    for strings, at most ``limit`` files.

    Attributes
    ----------
    written : dict
        ``(split, index) -> file name`` of every thumbnail written.
    """

    out_dir: Path
    source: Examples | None
    limit: int
    written: dict[tuple[str, int], str] = field(default_factory=dict)
    over: int = 0

    def cell(self, split: str, index: int) -> Markup:
        """What shows example ``index`` of ``split`` ("train" or "test") in a table cell: a
        thumbnail, the example's text, or a dash."""
        hook = None if self.source is None else (self.source.train if split == "train" else self.source.test)
        if hook is None:
            return Markup("–")
        name = self.written.get((split, index))
        if name is None:
            x = hook(int(index))
            image = as_thumbnail(x)
            if image is None:
                return el("span", str(x), class_="example")
            if len(self.written) >= self.limit:
                self.over += 1
                return el("span", "(thumbnail cap reached)", class_="note")
            name = f"ex-{split}-{int(index):07d}.png"
            write_png(self.out_dir / name, image)
            self.written[(split, index)] = name
        h, w = _png_size(self.out_dir / name)
        return img(name, f"{split} example {index}", class_="thumb", width=w, height=h)


def _png_size(path: Path) -> tuple[int, int]:
    """(height, width) from a PNG's header."""
    with open(path, "rb") as f:
        head = f.read(24)
    return int.from_bytes(head[20:24], "big"), int.from_bytes(head[16:20], "big")


# ----------------------------------------------------------------------------- scores


def per_example_auc(scores: F64, masks: npt.NDArray[np.bool_]) -> F64:
    """For each example (column), the ROC AUC of ``scores`` over the runs: how well the
    attack tells the runs that trained on it from those that did not.

    The same number as ``membership_metrics(scores[:, i], masks[:, i]).auc`` (NaN scores
    dropped, ties count one half), for all columns at once: the Mann–Whitney U statistic
    from average ranks along the runs.

    Parameters
    ----------
    scores : ndarray of float64, shape (R, N)
    masks : ndarray of bool, shape (R, N)

    Returns
    -------
    ndarray of float64, shape (N,)
        NaN where a column has no member or no non-member with a score.
    """
    s = np.asarray(scores, dtype=np.float64)
    m = np.asarray(masks, dtype=bool)
    r = s.shape[0]
    order = np.argsort(s, axis=0, kind="stable")  # NaN sorts last and is not counted
    srt = np.take_along_axis(s, order, axis=0)
    pos = np.arange(r)[:, None]
    new = np.ones_like(srt, dtype=bool)
    new[1:] = srt[1:] != srt[:-1]  # each NaN starts its own group (NaN != NaN)
    first = np.maximum.accumulate(np.where(new, pos, 0), axis=0)
    end = np.ones_like(srt, dtype=bool)
    end[:-1] = new[1:]
    last = np.flip(np.minimum.accumulate(np.flip(np.where(end, pos, r - 1), axis=0), axis=0), axis=0)
    ranks = np.empty_like(srt)
    np.put_along_axis(ranks, order, (first + last) / 2.0 + 1.0, axis=0)
    ok = ~np.isnan(s)
    mem, non = m & ok, ~m & ok
    n_pos, n_neg = mem.sum(axis=0), non.sum(axis=0)
    u = np.where(mem, ranks, 0.0).sum(axis=0) - n_pos * (n_pos + 1) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        out: F64 = np.where((n_pos > 0) & (n_neg > 0), u / (n_pos * n_neg), np.nan)
    return out


def predicted_labels(store: RunStore) -> npt.NDArray[np.int64] | None:
    """The label the runs predict for each training example when they held it out: the
    most frequent stored ``train_pred`` over those runs (ties to the lower class; -1 where
    no run held it out). None when the store has no predictions or no class count."""
    if store.n_classes is None:
        return None
    try:
        pred = store.outcomes("train", "pred")
    except StoreError:
        return None
    masks = store.masks()
    c, n = int(store.n_classes), store.n_train
    out_runs = ~masks
    cls = np.clip(np.asarray(pred, dtype=np.int64), 0, c - 1)
    votes = np.zeros((c, n), np.int64)
    cols = np.broadcast_to(np.arange(n), cls.shape)
    np.add.at(votes, (cls[out_runs], cols[out_runs]), 1)
    best: npt.NDArray[np.int64] = votes.argmax(axis=0).astype(np.int64)  # the first of equal counts
    best[votes.max(axis=0) == 0] = -1
    return best


#: The detectors the gallery reads off ``scores.parquet`` (issue scores as in
#: :mod:`memscore.runs.label_issues`: higher = more likely a wrong label).
_DETECTORS: dict[str, Callable[[pl.DataFrame], pl.Expr]] = {
    "memorization": lambda s: pl.col("memorization"),
    "holdout_accuracy": lambda s: 1.0 - pl.col("holdout_accuracy"),
    "el2n": lambda s: pl.col("el2n"),
    "forgetting_events": lambda s: pl.col("forgetting_events").cast(pl.Float64),
}


def _flags(scores: pl.DataFrame, q: int) -> dict[str, npt.NDArray[np.bool_]]:
    """Per detector, whether each example is among its ``q`` highest issue scores."""
    out = {}
    for name, expr in _DETECTORS.items():
        if name not in scores.columns or scores[name].null_count() == scores.height:
            continue
        v = scores.select(expr(scores)).to_series().fill_null(np.nan).to_numpy().astype(np.float64)
        if not np.isfinite(v).any():
            continue
        order = np.argsort(-np.nan_to_num(v, nan=-np.inf), kind="stable")[:q]
        flag = np.zeros(v.size, bool)
        flag[order] = np.isfinite(v[order])
        out[name] = flag
    return out


# ----------------------------------------------------------------------------- sections


def example_table(table_id: str, header: Sequence[str], rows: Sequence[Sequence[Any]], note: str = "") -> Markup:
    """A sortable table of examples with a filter box above it (and ``note`` before it)."""
    head = el("thead", el("tr", *(el("th", h) for h in header)))
    body = el("tbody", *(el("tr", *(cell(v) for v in row)) for row in rows))
    box = el("input", type="search", class_="filter", placeholder="filter rows", aria_label="filter rows")
    table = el("table", head, body, class_="sortable gallery", id=table_id, data_rows=len(rows))
    return Markup((el("p", note, class_="note") if note else "") + box + table)


def label_value(v: Any) -> Any:
    """A label for a table cell: an int, or None where missing (null or NaN)."""
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else int(v)


def gallery_sections(
    store: RunStore,
    scores: pl.DataFrame,
    thumbs: Thumbnails,
    *,
    pairs: pl.DataFrame | None = None,
    rows: int = ROWS,
    top_pairs: int = 20,
    id_prefix: str = "",
) -> list[Markup]:
    """The gallery's sections of one store (see the module docstring).

    Parameters
    ----------
    store : RunStore
    scores : polars.DataFrame
        The store's ``scores.parquet`` (:meth:`RunStore.scores`).
    thumbs : Thumbnails
        Where the examples are drawn.
    pairs : polars.DataFrame, optional
        The store's ``influence_pairs.parquet``.
    rows : int, default 16
        Rows of each table.
    top_pairs : int, default 20
        Rows of the influence pairs' table.
    id_prefix : str
        Prefix of the tables' ids (a sweep's size).

    Returns
    -------
    list of Markup
    """
    rows = check_int(rows, "rows", 1)
    out: list[Markup] = [el("h3", "Examples")]
    src = thumbs.source
    out.append(
        el("p", f"Examples of {src.what}." if src else "No examples to show: the store names no dataset memscore "
           "reads, and the report was given no examples= hook.", class_="note")
    )  # fmt: skip
    clean = src.clean_train if src is not None else None
    labels = scores["label"].to_list()

    # most and least memorized
    mem = scores["memorization"].fill_null(np.nan).to_numpy().astype(np.float64)
    finite = np.flatnonzero(np.isfinite(mem))
    by_mem = finite[np.argsort(-mem[finite], kind="stable")]
    header = ["example", "index", "label", *(["clean label"] if clean is not None else []), "memorization",
              "stderr", "hold-out accuracy", "runs in", "runs out"]  # fmt: skip
    cols = {c: scores[c].to_list() for c in ("memorization_stderr", "holdout_accuracy", "n_in", "n_out")}

    def mem_row(i: int) -> list[Any]:
        return [thumbs.cell("train", i), i, label_value(labels[i]), *([int(clean[i])] if clean is not None else []),
                float(mem[i]), cols["memorization_stderr"][i], cols["holdout_accuracy"][i], cols["n_in"][i],
                cols["n_out"][i]]  # fmt: skip

    for title, idx, key in (
        ("Most memorized training examples", by_mem[:rows], "most-memorized"),
        ("Least memorized training examples", finite[np.argsort(mem[finite], kind="stable")][:rows], "least-memorized"),
    ):
        out.append(el("h3", title))
        out.append(example_table(f"{id_prefix}{key}", header, [mem_row(int(i)) for i in idx]))

    # influence pairs
    if pairs is not None and pairs.height:
        top = pairs.filter(pl.col("rank") == 0).sort("influence", descending=True, maintain_order=True)
        top = top.head(check_int(top_pairs, "top_pairs", 1))
        out.append(el("h3", "Highest-influence train → test pairs"))
        out.append(
            example_table(
                f"{id_prefix}influence-pairs",
                [
                    "train example",
                    "train index",
                    "train label",
                    *(["train clean label"] if clean is not None else []),
                    "→",
                    "test example",
                    "test index",
                    "test label",
                    "influence",
                ],  # fmt: skip
                [
                    [
                        thumbs.cell("train", int(r["train_index"])),
                        int(r["train_index"]),
                        label_value(r["train_label"]),
                        *([int(clean[r["train_index"]])] if clean is not None else []),
                        "→",
                        thumbs.cell("test", int(r["test_index"])),
                        int(r["test_index"]),
                        label_value(r["test_label"]),
                        float(r["influence"]),
                    ]  # fmt: skip
                    for r in top.iter_rows(named=True)
                ],
                "Each test example's most influential training example; influence = P(test example correct | "
                "train example in the run) − P(… | out).",
            )
        )

    # suspected label issues
    pred = predicted_labels(store)
    given = np.asarray(scores["label"].fill_null(-1).to_numpy(), dtype=np.int64)
    disagree = (pred != given) & (pred >= 0) & (given >= 0) if pred is not None else np.zeros(given.size, bool)
    q = max(int(disagree.sum()), 1)
    flags = _flags(scores, q)
    if flags:
        n_flags = np.sum(list(flags.values()), axis=0)
        # suspected: the runs disagree with the label, or a detector flags it; most flags first
        suspect = np.flatnonzero(disagree | (n_flags > 0))
        order = np.lexsort(
            (np.nan_to_num(-mem[suspect], nan=np.inf), -disagree[suspect].astype(np.int64), -n_flags[suspect])
        )
        chosen = suspect[order][:rows]
        out.append(el("h3", "Suspected label issues"))
        note = (
            f"The runs' label: the most frequent prediction of the runs that held the example out. A detector "
            f"flags the {q} examples it ranks highest ({q} = the examples whose runs' label differs from the "
            f"given one)."
        )
        out.append(
            example_table(
                f"{id_prefix}label-issues",
                [
                    "example",
                    "index",
                    "given label",
                    "runs' label",
                    *(["clean label"] if clean is not None else []),
                    "flagged by",
                    "memorization",
                ],  # fmt: skip
                [
                    [
                        thumbs.cell("train", int(i)),
                        int(i),
                        int(given[i]) if given[i] >= 0 else None,
                        int(pred[i]) if pred is not None and pred[i] >= 0 else None,
                        *([int(clean[i])] if clean is not None else []),
                        ", ".join(n for n, f in flags.items() if f[i]) or "–",
                        float(mem[i]),
                    ]  # fmt: skip
                    for i in chosen
                ],
                note,
            )
        )

    # datamodels
    out += _datamodel_section(store, thumbs, given, rows, id_prefix)
    return out


def _datamodel_section(
    store: RunStore, thumbs: Thumbnails, given: npt.NDArray[np.int64], rows: int, id_prefix: str, n_test: int = 3
) -> list[Markup]:
    path = store.path / DATAMODELS_FILE
    if not path.is_file():
        return []
    try:
        with np.load(path, allow_pickle=False) as f:
            w = np.asarray(f["weights"], dtype=np.float64)
    except (OSError, ValueError, KeyError) as exc:
        return [el("h3", "Datamodels"), el("p", f"{path.name}: not readable ({exc})", class_="note")]
    if w.shape != (store.n_test, store.n_train):
        got = f"got weights of shape {w.shape}, expected ({store.n_test}, {store.n_train})"
        return [el("h3", "Datamodels"), el("p", f"{path.name}: {got}", class_="note")]
    strength = np.abs(w).sum(axis=1)
    tests = np.argsort(-strength, kind="stable")[:n_test]
    tl = store.test_labels
    out = [
        el("h3", "Datamodels: the training examples that raise and lower a test example's output"),
        el("p", f"The {len(tests)} test examples with the largest total |weight|; {rows // 2} "
           "positive and negative weights each.", class_="note"),
    ]  # fmt: skip
    k = max(rows // 2, 1)
    for j in tests:
        wj = w[j]
        pos = [i for i in np.argsort(-wj, kind="stable")[:k] if wj[i] > 0]
        neg = [i for i in np.argsort(wj, kind="stable")[:k] if wj[i] < 0]
        label = None if tl is None else int(tl[j])
        out.append(
            el("table", el("tbody", el("tr", el("th", "test example"), el("td", thumbs.cell("test", int(j))),
                                       el("td", f"index {int(j)}, label {label}"))))
        )  # fmt: skip
        out.append(
            example_table(
                f"{id_prefix}datamodel-{int(j)}",
                ["sign", "train example", "train index", "train label", "weight"],
                [
                    [
                        "+" if wj[i] > 0 else "−",
                        thumbs.cell("train", int(i)),
                        int(i),
                        int(given[i]) if given[i] >= 0 else None,
                        float(wj[i]),
                    ]  # fmt: skip
                    for i in [*pos, *neg]
                ],
            )
        )
    return out


def _attacks(store: RunStore) -> list[tuple[str, F64]]:
    """The (R, n_train) scores of LiRA online, LiRA offline and RMIA (RMIA needs test phi)."""
    out = [("LiRA online", store.lira(online=True)), ("LiRA offline", store.lira(online=False))]
    if store.n_test:
        out.append(("RMIA", store.rmia()))
    return out


def membership_section(
    store: RunStore,
    scores: pl.DataFrame,
    thumbs: Thumbnails,
    figure: Callable[[str, str, Callable[[Path], None]], Markup],
    *,
    rows: int = ROWS,
    id_prefix: str = "",
) -> list[Markup]:
    """Membership inference on the store's runs: LiRA online and offline and RMIA, their
    ROC on log-log axes with the TPR at 0.1% and 1% FPR marked, and the examples whose
    membership the attacks read best (per-example AUC over the runs, :func:`per_example_auc`).

    Parameters
    ----------
    store : RunStore
        Needs stored train phi (and test phi for RMIA); without, the section says so.
    scores : polars.DataFrame
        The store's ``scores.parquet``.
    thumbs : Thumbnails
    figure : callable
        ``figure(name, alt, draw)``: draws into the report's folder and returns the image tag.
    rows : int, default 16
    id_prefix : str

    Returns
    -------
    list of Markup
    """
    out: list[Markup] = [el("h3", "Membership inference: LiRA and RMIA on the same runs")]
    try:
        attacks = _attacks(store)
    except (StoreError, ValueError) as exc:
        return [*out, el("p", f"Not computed: {exc}", class_="note")]
    masks = store.masks()
    metrics: list[tuple[str, MembershipMetrics]] = [
        (name, membership_metrics(s, masks, fpr_levels=(*LOW_FPR, 0.1))) for name, s in attacks
    ]
    n_neg = int((~masks).sum())

    def draw(path: Path) -> None:
        fig, ax = pyplot().subplots(figsize=(6.2, 5))
        plot_roc_loglog(ax, metrics, n_negatives=n_neg)
        ax.set_title("Membership ROC (every run the target in turn)")
        ax.legend(fontsize=7, loc="lower right")
        save_figure(fig, path)

    out.append(figure(f"{id_prefix}membership_roc.png", "ROC of LiRA and RMIA on log-log axes", draw))
    table = pl.DataFrame(
        {
            "attack": [n for n, _ in metrics],
            "AUC": [m.auc for _, m in metrics],
            "TPR at 0.1% FPR": [m.tpr_at_fpr[0.001] for _, m in metrics],
            "TPR at 1% FPR": [m.tpr_at_fpr[0.01] for _, m in metrics],
            "trials": [int(np.isfinite(s).sum()) for _, s in attacks],
        }
    )
    out.append(table_html(table, 4))
    aucs = {name: per_example_auc(s, masks) for name, s in attacks}
    first = aucs["LiRA online"]
    ok = np.flatnonzero(np.isfinite(first))
    top = ok[np.argsort(-first[ok], kind="stable")][:rows]
    labels = scores["label"].to_list()
    mem = scores["memorization"].to_list()
    out.append(el("h3", "Training examples most exposed to membership inference"))
    out.append(
        example_table(
            f"{id_prefix}membership-exposed",
            ["example", "index", "label", *(f"AUC {n}" for n in aucs), "memorization"],
            [
                [
                    thumbs.cell("train", int(i)),
                    int(i),
                    label_value(labels[i]),
                    *(float(a[i]) for a in aucs.values()),
                    mem[i],
                ]  # fmt: skip
                for i in top
            ],
            "Per example, the AUC of the attack's score over the runs: 1 = it tells every run that trained "
            "on the example from every run that did not.",
        )
    )
    return out
