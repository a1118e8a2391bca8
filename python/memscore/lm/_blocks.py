"""Split -> task -> merge of the LM engines (greedy extraction, token log-probabilities)
across models and blocks of sequences.

Split: the rows (sequences) are cut into contiguous blocks whose boundaries are multiples
of the batch size, so every block batches its rows exactly as one pass over all of them
would, and the numbers are bit-identical to the one-block run. LocalExecutor gets one block
(today's single pass); other executors ``workers()`` blocks, or for GPU tasks on a cluster
one per GPU slot (every task loads its model: no more loads than there are GPUs).

Task: a top-level function ``fn(source, device, rows, start, stop, *extra)`` that gets its
model from ``source`` (:func:`materialize`), runs rows ``start:stop`` and returns that
block's result.

What is shipped: in process (LocalExecutor, ThreadExecutor) the tasks get the model object
itself (a name or :class:`~memscore.lm.ModelSpec` is loaded once, model by model, in this
process). To Ray workers, a name, ``ModelSpec`` or :class:`~memscore.lm.LoadedLM` goes as a
``ModelSpec`` (each task loads the weights onto its own device); any other model object is
pickled once into Ray's object store (a HuggingFace model is picklable; it runs on the
device it was on).

Merge: by the caller, in row order (never in arrival order).
"""

from __future__ import annotations

import math
import os
import types
from collections.abc import Callable, Sequence
from typing import Any

from ..executors import ExecutorLike, as_executor
from ..executors.base import Executor, check_resource
from .load import LoadedLM, ModelSpec, check_context

__all__ = [
    "as_source",
    "block_bounds",
    "check_finite_rows",
    "check_model",
    "materialize",
    "model_info",
    "model_name",
    "run_blocks",
    "task_device",
]


def as_source(model: Any) -> Any:
    """``model`` with a folder / hub id (str or path) turned into a :class:`ModelSpec`."""
    if isinstance(model, (str, os.PathLike)):
        return ModelSpec(os.fspath(model))
    return model


def check_model(model: Any, length: int | None = None) -> int | None:
    """Checks of the public face before any task: the model's context holds ``length``
    tokens; returns its vocabulary size when it says (a ``ModelSpec``'s config is read, no
    weights are loaded).

    Raises
    ------
    ValueError
        ``length`` is longer than the model's context.
    ModelLoadError
        A ``ModelSpec`` that is no causal LM, or cannot be found.
    """
    if isinstance(model, ModelSpec):
        view: Any = types.SimpleNamespace(config=model.config())
    elif isinstance(model, LoadedLM):
        view = model.model
    else:
        view = model
    if length is not None:
        check_context(view, length)
    vocab = getattr(getattr(view, "config", None), "vocab_size", None)
    return vocab if isinstance(vocab, int) and not isinstance(vocab, bool) else None


def model_name(model: Any) -> str:
    """How a table names the model."""
    if isinstance(model, (ModelSpec, LoadedLM)):
        return model.name
    return type(model).__name__


def check_finite_rows(source: Any, bad: Any, start: int, what: str) -> None:
    """Refuse non-finite model outputs: ``bad`` flags the rows of one batch (a bool array or
    tensor, row ``i`` being sequence ``start + i`` of the whole input) whose outputs were NaN
    or infinite; ``what`` says what was found, for the message. One check per batch, after the batch ran: on a GPU the flags stay on the
    device until then.

    Raises
    ------
    ValueError
        A flagged row: names the model and the sequence rows (the first ten).
    """
    rows = [start + int(i) for i in _nonzero(bad)]
    if not rows:
        return
    shown = ", ".join(map(str, rows[:10])) + (f", ... ({len(rows)} rows)" if len(rows) > 10 else "")
    raise ValueError(
        f"model {_label(source)}: {what} for sequences [{shown}]; "
        "nothing is decoded or scored from them (diverged weights, or float16 overflow?)"
    )


def _nonzero(bad: Any) -> list[int]:
    """Indices of the true entries of a bool array or tensor (one transfer from the device)."""
    if hasattr(bad, "any") and not bool(bad.any()):
        return []
    arr = bad.cpu().numpy() if hasattr(bad, "cpu") else bad
    return [int(i) for i in arr.nonzero()[0]]


def _label(model: Any) -> str:
    """The model as an error message names it: its folder / hub id, or its type."""
    if isinstance(model, (ModelSpec, LoadedLM)):
        return repr(model.name)
    path = getattr(getattr(model, "config", None), "name_or_path", None)
    kind = getattr(model, "__qualname__", None) or type(model).__name__
    return f"{kind} ({path!r})" if isinstance(path, str) and path else str(kind)


def task_device(device: Any, gpus: float) -> Any:
    """``device``, or by default ``"cuda"`` when each task holds a GPU and ``"cpu"`` when not."""
    if device is not None:
        return device
    return "cuda" if gpus > 0 else "cpu"


def materialize(source: Any, device: Any) -> Any:
    """In a task: the model ``source`` stands for (a ``ModelSpec`` is loaded onto ``device``)."""
    if isinstance(source, ModelSpec):
        return source.load(str(device))
    return source


def model_info(model: Any) -> dict[str, Any]:
    """``n_params`` and ``dtype`` of a torch model (-1 and ``None`` for a plain callable)."""
    params = getattr(model, "parameters", None)
    if not callable(params):
        return {"n_params": -1, "dtype": None}
    ps = list(params())
    dtype = str(ps[0].dtype).removeprefix("torch.") if ps else None
    return {"n_params": int(sum(p.numel() for p in ps)), "dtype": dtype}


def block_bounds(n: int, batch_size: int, blocks: int) -> list[tuple[int, int]]:
    """At most ``blocks`` contiguous row ranges covering ``0..n``, each starting at a
    multiple of ``batch_size`` (one empty block when ``n == 0``).

    Examples
    --------
    >>> block_bounds(10, 3, 2)
    [(0, 6), (6, 10)]
    >>> block_bounds(10, 3, 1)
    [(0, 10)]
    """
    batches = math.ceil(n / batch_size)
    if batches == 0:
        return [(0, 0)]
    step = math.ceil(batches / max(1, min(blocks, batches))) * batch_size
    return [(s, min(s + step, n)) for s in range(0, n, step)]


def run_blocks(
    fn: Callable[..., Any],
    models: Sequence[Any],
    rows: Any,
    n_rows: int,
    extra: tuple[Any, ...],
    *,
    executor: ExecutorLike,
    gpus_per_task: float | None,
    device: Any,
    batch_size: int,
    desc: str,
    unit: str,
    progress: bool = False,
) -> list[list[Any]]:
    """Run ``fn(source, device, rows, start, stop, *extra)`` for every model and block and
    return, per model, the block results in row order (see the module docstring).

    Raises
    ------
    memscore.ClusterError
        No worker has the GPUs of one task, or a task lost its worker too often.
    """
    ex = as_executor(executor)
    gpus = ex.gpus_per_task if gpus_per_task is None else check_resource(gpus_per_task, "gpus_per_task")
    ex.start(gpus=gpus)
    bounds = block_bounds(n_rows, batch_size, _slots(ex, gpus))
    units = [float(b - a) for a, b in bounds]
    nb = len(bounds)
    out: list[list[Any]] = []
    if ex.in_process:
        # one model at a time in this process: loaded once, shared by its blocks, released after
        for model in models:
            if isinstance(model, LoadedLM):
                src, dev = model.model, model.device if device is None else device
            else:
                dev = task_device(device, gpus)
                src = materialize(model, dev)
            got: list[Any] = [None] * nb
            args = [(src, dev, rows, a, b, *extra) for a, b in bounds]
            for i, r in ex.map(fn, args, units=units, gpus=gpus, desc=desc, unit=unit, progress=progress):
                got[i] = r
            out.append(got)
            del src, args
        return out
    # a cluster: every (model, block) is a task; weights are loaded by the workers
    dev = task_device(device, gpus)
    sources = [_shipped(model, ex) for model in models]
    shared = ex.share(rows)
    args = [(s, dev, shared, a, b, *extra) for s in sources for a, b in bounds]
    flat: list[Any] = [None] * len(args)
    for i, r in ex.map(fn, args, units=units * len(sources), gpus=gpus, desc=desc, unit=unit, progress=progress):
        flat[i] = r
    return [flat[j * nb : (j + 1) * nb] for j in range(len(sources))]


def _slots(ex: Executor, gpus: float) -> int:
    """Tasks that run at once: ``workers()``, or for GPU tasks on a cluster the GPUs it has
    over ``gpus`` (each task loads its model, so no more blocks than GPUs are made)."""
    connect = getattr(ex, "connect", None)
    if gpus > 0 and callable(connect):
        total = float(connect().cluster_resources().get("GPU", 0.0))
        return max(1, int(total // gpus))
    return ex.workers()


def _shipped(model: Any, ex: Executor) -> Any:
    """What a worker gets for ``model``: a ``ModelSpec`` for a named model, else the object
    (put once in the object store)."""
    if isinstance(model, ModelSpec):
        return model
    if isinstance(model, LoadedLM):
        return ModelSpec(model.name, dtype=model.dtype, revision=model.revision)
    return ex.share(model)
