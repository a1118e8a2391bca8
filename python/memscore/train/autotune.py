"""How ensembles train on the device at hand: the strategy, timed on the real model and batch,
and the sizes, from a measured per-member memory footprint.

- **Strategy** (``train_runs(strategy="auto")``): every strategy of
  :data:`~memscore.train.ensemble.STRATEGIES` is timed on throwaway members, on the real
  batch size, augmentation and device, for a training step and for an eval-mode logits
  pass, at the ensemble size and eval chunk the job will use: the given ``ensemble``, or
  what fits the memory, at most the job's largest group of alike runs. Two members of vmap
  and one of the loop first (the loop's cost per member does not depend on their number);
  then vmap again at the job's size, or at the largest power of two that fits the probe's
  budget: :data:`PROBE_FRACTION` of the job's predicted time (vmap's cost per member
  changes with their number: overheads shared, caches outgrown). Every size is warmed up
  by one untimed call (a first call pays allocation and kernel selection), then the fastest
  of a few timed calls is kept. The strategy with the smallest predicted time per run (its
  steps and its eval passes) wins. The measurement is recorded in the store
  (:data:`TUNING`, what was timed in :attr:`Tuning.probe`) and kept for the process: later
  calls with the same model, batch, precision, augmentation and device reuse it, so they
  take the same floating-point path.
- **Ensemble size** (``ensemble=None``): the most members whose state (parameters, gradients,
  optimizer state) and activations fit the memory budget (``memory=``; by default 80% of the
  device's free memory on CUDA, half the available memory on the CPU). The activations of
  one member's training step are measured, not guessed: the bytes of the tensors autograd
  saves for the backward (``torch.autograd.graph.saved_tensors_hooks``), on every device.
- **Eval chunk**: the examples per eval-mode logits pass, from the same measurement; on the
  CPU at most :data:`CPU_EVAL_MEMBER_EXAMPLES` member-examples, fewer for models with large
  activations (a larger pass leaves the caches).

Strategies and sizes never change a run: every strategy trains the same runs, and runs do
not depend on their grouping. An out-of-memory error despite the sizing halves the group
(:func:`memscore.train.tasks.train_task`).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._validate import check_bytes
from .config import TrainConfig, _is_oom, _torch
from .ensemble import STRATEGIES, _Ensemble

__all__ = [
    "TUNING", "Tuning", "activation_bytes", "known_tunings", "memory_budget", "record", "remember", "size_ensemble",
    "tune",
]  # fmt: skip

TUNING = "train_tuning.json"
"""The file, in a store's directory, holding the last strategy measurement of its training."""

#: The most members per ensemble when sizing from memory: beyond these the CPU gains nothing
#: and a GPU little, while the last group of a plan grows.
MAX_MEMBERS = {"cpu": 64, "cuda": 256}

_MEASURED: dict[str, tuple[str, dict[str, float]]] = {}
"""This process's measurements by key: every later call with the same model, batch, precision,
augmentation and device takes the same strategy (the same floating-point path), whichever
store or executor it trains for."""

#: The strategy probe's time budget: :data:`PROBE_FRACTION` of the job's predicted time (its
#: runs at the faster strategy's first measurement) for timing ``vmap`` at larger ensembles,
#: up to the size the job will use. The first measurement (two vmap members, one of the
#: loop) is always taken.
PROBE_FRACTION = 0.02
#: Timed repeats of a probe's step or pass (after its untimed first call): up to
#: :data:`PROBE_REPEATS`, while their sum is under :data:`PROBE_REPEAT_SECONDS`; the fastest kept.
PROBE_REPEATS, PROBE_REPEAT_SECONDS = 3, 0.05
#: Member-examples per eval-mode pass on the CPU (:func:`eval_chunk`): at most
#: :data:`CPU_EVAL_MEMBER_EXAMPLES`, and at most as many as a training step would save
#: :data:`CPU_EVAL_SAVED_BYTES` of activations for.
CPU_EVAL_MEMBER_EXAMPLES = 1024
CPU_EVAL_SAVED_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Tuning:
    """The strategy and sizes an ensemble of a job trains with, and how they were chosen.

    Parameters
    ----------
    strategy : str
        ``"vmap"`` or ``"loop"``.
    ensemble : int
        Members per ensemble.
    chunk : int
        Examples per eval-mode logits pass.
    member_bytes : int
        One member's state: parameters, gradients and optimizer state.
    activation_bytes : int
        The activations one member's training step saves for its backward (measured).
    budget : int
        The memory budget the sizes fit (bytes).
    timings : dict of str to float
        Each timed strategy's predicted seconds per run: its steps and eval passes at the
        probe's speed (empty when none was timed).
    source : str
        ``"measured"``, ``"store"`` (a previous measurement reused) or ``"given"``.
    key : dict
        What the measurement depends on (:func:`tuning_key`).
    probe : dict
        What a measurement timed (empty when none was taken): per strategy the members
        timed (``"members"``), the ensemble size the job uses (``"ensemble"``), and the
        seconds of a training step per member (``"step_s"``) and of an eval pass per member
        and example (``"eval_s"``); and the probe's wall time (``"seconds"``).
    """

    strategy: str
    ensemble: int
    chunk: int
    member_bytes: int
    activation_bytes: int
    budget: int
    timings: dict[str, float] = field(default_factory=dict)
    source: str = "given"
    key: dict[str, Any] = field(default_factory=dict)
    probe: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The tuning as JSON values."""
        return dataclasses.asdict(self)


def memory_budget(dev: Any, memory: Any = None) -> int:
    """The bytes an ensemble may use on ``dev``: ``memory`` (bytes or ``"8GiB"``) when given;
    else 80% of the free memory of a CUDA device, or half the available memory of the host."""
    if memory is not None:
        return check_bytes(memory, "memory")
    torch = _torch()
    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        return int(free * 0.8)
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            avail = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError, IndexError):  # not Linux: the physical memory
        import os

        avail = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return int(avail * 0.5)


def activation_bytes(model: Any, x: Any, y: Any, cfg: TrainConfig, dev: Any) -> int:
    """The bytes autograd saves for the backward of one training step of ``model`` on the
    batch ``x`` (labels ``y``), under the precision's autocast: the activations a member
    holds between its forward and its backward. The parameters themselves are not counted."""
    from .ensemble import autocast

    torch = _torch()
    own = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t: Any) -> Any:
        s = t.untyped_storage()
        if s.data_ptr() not in own:
            seen[s.data_ptr()] = s.nbytes()
        return t

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast(cfg, dev):
        loss = torch.nn.functional.cross_entropy(model(x).float(), y)
    del loss
    return int(sum(seen.values()))


def _state_copies(cfg: TrainConfig, strategy: str) -> int:
    """Copies of the parameters a member keeps: itself, its gradient, the optimizer's state,
    the loop's gradient buffer, and fp16's saved state for a skipped step."""
    opt = 2 if cfg.optimizer in ("adam", "adamw") else int(cfg.momentum > 0)
    return 2 + opt + (strategy == "loop") + (1 + opt) * (cfg.precision == "fp16")


def size_ensemble(member_bytes: int, act_bytes: int, budget: int, strategy: str, cap: int) -> int:
    """The most members (at most ``cap``, at least 1) whose training fits ``budget`` bytes:
    each member's state, plus twice the activations (saved tensors and the backward's
    transients) of every member at once (``vmap``) or of one member at a time (``loop``)."""
    if strategy == "vmap":
        n = budget // max(1, member_bytes + 2 * act_bytes)
    else:
        n = (budget - 2 * act_bytes) // max(1, member_bytes)
    return int(max(1, min(cap, n)))


def eval_chunk(act_bytes: int, batch_size: int, members: int, budget: int, device_type: str = "cuda") -> int:
    """Examples per eval-mode logits pass: ``members`` members' activations of a chunk within
    a quarter of the budget (a no-grad pass holds a few layers' outputs, not all of them),
    between 256 and 16,384, a multiple of 256. On the CPU at most
    :data:`CPU_EVAL_MEMBER_EXAMPLES` member-examples per pass, and at most as many as would
    save :data:`CPU_EVAL_SAVED_BYTES` in a training step (at least 16 examples): a larger
    pass only leaves the caches. Measured on 2 cores: a vmapped 1-D CNN of 32 members
    evaluated 3-6x slower per example in chunks of 2,048 than of 16-64; one ResNet-20
    (1.57 MB saved per example) took 0.35, 0.38 and 0.89 ms per example in chunks of 64,
    256 and 1,024. The strategy probe times the pass at the chunk it will run."""
    per_example = max(1, act_bytes // max(1, batch_size))
    n = budget // 4 // max(1, members * per_example) * 4  # a forward keeps ~1/4 of the saved layers alive
    chunk = int(min(16384, max(256, n // 256 * 256)))
    if device_type == "cpu":
        member_examples = min(CPU_EVAL_MEMBER_EXAMPLES, CPU_EVAL_SAVED_BYTES // per_example)
        chunk = min(chunk, max(16, member_examples // max(1, members)))
    return chunk


class _Probe:
    """Throwaway members of one strategy on the job's first examples (augmented as training
    augments them): the seconds of a training step per member and of an eval-mode logits
    pass per member and example, at a given ensemble size and eval chunk. Every size is
    warmed up by one untimed step and pass (a first call pays allocation and kernel
    selection: up to 1.5x a warm step on the CPU, cuDNN's search on CUDA), then timed."""

    def __init__(self, model_fn: Callable[[], Any], cfg: TrainConfig, data: Any, dev: Any, strategy: str) -> None:
        self.model_fn, self.cfg, self.data, self.dev = model_fn, dataclasses.replace(cfg, compile=False), data, dev
        self.strategy = strategy
        self.members = 0  # the size last timed
        self.step = self.eval = float("inf")  # its seconds per member-step and per member-example

    def _sync(self) -> None:
        if self.dev.type == "cuda":
            _torch().cuda.synchronize(self.dev)

    def _fastest(self, fn: Callable[[], Any]) -> float:
        """Seconds of ``fn()`` warm: one untimed call, then the fastest of up to
        :data:`PROBE_REPEATS` timed calls (more while they are short), which filters out
        another process's preemptions."""
        self._sync()
        fn()
        times: list[float] = []
        while not times or (len(times) < PROBE_REPEATS and sum(times) < PROBE_REPEAT_SECONDS):
            self._sync()
            t0 = time.perf_counter()
            fn()
            self._sync()
            times.append(time.perf_counter() - t0)
        return min(times)

    def measure(self, members: int, chunk: int) -> None:
        """Time ``members`` members: a training step and an eval pass of ``chunk`` examples."""
        from .augment import Augmentation
        from .fit import _loss_fn
        from .models import init_model

        torch = _torch()
        cfg, data, dev = self.cfg, self.data, self.dev
        ens = _Ensemble([init_model(self.model_fn, cfg.seed, r) for r in range(members)], cfg, dev, 1, self.strategy)
        b = min(cfg.batch_size, len(data.x))
        where = data.x.device if data.x.on_device else torch.device("cpu")
        idx = torch.arange(b, device=where).repeat(members, 1)
        keys = torch.arange(members, dtype=torch.int64, device=where)
        w = torch.ones(members, b, device=dev)
        n = min(chunk, len(data.x))
        x = data.x.to_float(data.x.raw(torch.arange(n, device=where)))

        def step() -> None:
            xb = data.x.raw(idx)
            if isinstance(data.aug, Augmentation):
                xb = data.aug.apply(xb, {k: v.to(xb.device) for k, v in data.aug.draw_epoch(keys, 1, b).items()})
            y = data.y[idx.to(data.y.device)]
            ens.train_step(data.x.to_float(xb), _loss_fn(cfg, y, w, w.sum(1)))

        step_s = self._fastest(step) / members
        eval_s = self._fastest(lambda: ens.logits([x])) / (members * n)
        self.members, self.step, self.eval = members, step_s, eval_s  # all or nothing: a failed size keeps the last

    def cost(self, members: int, chunk: int) -> float:
        """The seconds :meth:`measure` would take at ``members`` (from the last size timed;
        a first, untimed call counted at 1.5 warm ones, and one timed call)."""
        return members * (self.step + self.eval * min(chunk, len(self.data.x))) * 2.5


def tune(
    model_fn: Callable[[], Any],
    cfg: TrainConfig,
    data: Any,
    dev: Any,
    *,
    strategy: str,
    ensemble: int | None,
    memory: Any,
    known: list[dict[str, Any]] | None = None,
    strategies: tuple[str, ...] = STRATEGIES,
    augment: str = "none",
    examples_per_epoch: int | None = None,
    largest_group: int | None = None,
    runs: int | None = None,
) -> Tuning:
    """The strategy and sizes of a job's ensembles (see the module docstring).

    Parameters
    ----------
    model_fn : callable
        Builds a run's model.
    cfg : TrainConfig
        The training settings.
    data : memscore.train.fit._Data
        The job's data on its device.
    dev : torch.device
        The device.
    strategy : {"auto", "vmap", "loop"}
        A strategy, or ``"auto"`` to time them.
    ensemble : int or None
        Members per ensemble, or None to size them from memory.
    memory : int, str or None
        The memory budget (:func:`memory_budget`).
    known : list of dict, optional
        Earlier measurements (:func:`known_tunings`: the store's, then the calling
        process's): the first taken with the same model, batch, precision, augmentation
        and device is reused rather than timed again.
    strategies : tuple of str
        The strategies ``"auto"`` chooses from (``("loop",)`` for a model vmap cannot run).
    augment : str
        The augmentation's name (part of the measurement's key).
    examples_per_epoch : int, optional
        A run's examples per epoch (default: half the training set): with the eval passes
        (train and test examples at every snapshot and at the end), what a run's predicted
        time weighs the probe's step and eval times by.
    largest_group : int, optional
        The most runs of the job that can train in one ensemble (default: no limit): the
        ensembles are at most this large, and the strategies are timed at that size.
    runs : int, optional
        The runs the job trains (default: ``largest_group``, else one ensemble): the probe's
        time budget is :data:`PROBE_FRACTION` of their predicted time.

    Returns
    -------
    Tuning
    """
    from .models import init_model

    torch = _torch()
    budget = memory_budget(dev, memory)
    model = init_model(model_fn, cfg.seed, 0).to(dev)
    b = min(cfg.batch_size, len(data.x))
    idx = torch.arange(b)
    xb = data.x.to_float(data.x.raw(idx))
    act = activation_bytes(model, xb, data.y[idx.to(data.y.device)], cfg, dev)
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    timings: dict[str, float] = {}
    probe: dict[str, Any] = {}
    source = "given"
    key = tuning_key(model, cfg, augment, dev)

    def size(s: str) -> int:
        """The ensembles of strategy ``s``: the given size, or as many members as fit the
        memory; at most the job's largest group of alike runs."""
        n = ensemble or size_ensemble(params * _state_copies(cfg, s), act, budget, s, MAX_MEMBERS.get(dev.type, 64))
        return int(max(1, min(n, largest_group or n)))

    if strategy == "auto" and len(strategies) == 1:
        strategy = strategies[0]
    elif strategy == "auto":
        cached = _MEASURED.get(json.dumps(key, sort_keys=True))
        same = [k for k in known or [] if k.get("key") == key and k.get("strategy") in strategies]
        if same:
            strategy, timings, source = same[0]["strategy"], dict(same[0].get("timings", {})), "store"
        elif cached is not None and cached[0] in strategies:
            (strategy, timings), source = cached, "measured"
        else:
            # timed at the job's size, unless the memory cannot hold it (a given ensemble may
            # not fit: training then halves it on an out-of-memory error, the probe would fail)
            sizes = {s: size_ensemble(params * _state_copies(cfg, s), act, budget, s, size(s)) for s in strategies}
            timings, probe = _time_strategies(
                model_fn, cfg, data, dev, sizes, lambda s, m: eval_chunk(act, b, m if s == "vmap" else 1, budget, dev.type),
                runs=runs, examples_per_epoch=examples_per_epoch,
            )  # fmt: skip
            strategy, source = min(timings, key=lambda s: timings[s]), "measured"
            _MEASURED[json.dumps(key, sort_keys=True)] = (strategy, timings)
    ensemble = size(strategy)
    chunk = eval_chunk(act, b, ensemble if strategy == "vmap" else 1, budget, dev.type)
    member = params * _state_copies(cfg, strategy)
    return Tuning(strategy, ensemble, chunk, member, act, budget, timings, source, key, probe)


def _time_strategies(
    model_fn: Callable[[], Any],
    cfg: TrainConfig,
    data: Any,
    dev: Any,
    sizes: dict[str, int],
    chunk: Callable[[str, int], int],
    *,
    runs: int | None,
    examples_per_epoch: int | None,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Each strategy's predicted seconds per run, timed at the ensemble size (``sizes``) and
    the eval chunk (``chunk(strategy, members)``) the job will use, within the budget of
    :data:`PROBE_FRACTION` of the job's predicted time (see the module docstring); and what
    was timed (:attr:`Tuning.probe`)."""
    b = min(cfg.batch_size, len(data.x))
    # a run's steps and eval passes (short trainings are dominated by the passes, where the
    # strategies rank differently)
    per_epoch = examples_per_epoch if examples_per_epoch is not None else max(1, len(data.x) // 2)
    steps = cfg.epochs * -(-per_epoch // b)
    passes = len(cfg.snapshot_epochs) + int(cfg.epochs not in cfg.snapshot_epochs) + len(data.views)
    evals = passes * (len(data.x) + (len(data.x_test) if data.x_test is not None else 0))
    t0 = time.perf_counter()
    probes = {s: _Probe(model_fn, cfg, data, dev, s) for s in sizes}
    for s, first in probes.items():  # one loop member: its cost per member does not depend on their number
        m = 1 if s == "loop" else min(2, sizes[s])
        first.measure(m, chunk(s, m))

    def per_run(s: str) -> float:
        return steps * probes[s].step + evals * probes[s].eval

    # vmap's cost per member changes with their number (overheads shared, caches outgrown):
    # timed again at the job's ensemble size, or at the largest that fits the budget
    vm = probes.get("vmap")
    allowed = PROBE_FRACTION * (runs or max(sizes.values())) * min(map(per_run, probes))
    while vm is not None and vm.members < sizes["vmap"]:
        left = allowed - (time.perf_counter() - t0)
        larger = [m for m in (sizes["vmap"], *(2**k for k in range(12, 1, -1))) if vm.members < m <= sizes["vmap"]]
        fits = [m for m in larger if vm.cost(m, chunk("vmap", m)) <= left]
        if not fits:
            break
        try:
            vm.measure(fits[0], chunk("vmap", fits[0]))
        except Exception as exc:  # out of memory despite the sizing: training would halve the group
            if not _is_oom(exc):
                raise
            if dev.type == "cuda":
                _torch().cuda.empty_cache()
            break
    probe = {s: {"members": pr.members, "ensemble": sizes[s], "step_s": pr.step, "eval_s": pr.eval}
             for s, pr in probes.items()}  # fmt: skip
    return {s: per_run(s) for s in sizes}, {**probe, "seconds": time.perf_counter() - t0}


def tuning_key(model: Any, cfg: TrainConfig, augment: str, dev: Any) -> dict[str, Any]:
    """What a strategy measurement depends on: the model, the batch, the precision, the
    augmentation and the device (a measurement under other ones is not reused)."""
    torch = _torch()
    device = str(dev) + (f" {torch.cuda.get_device_name(dev)}" if dev.type == "cuda" else "")
    return {
        "device": device,
        "model": [f"{type(model).__module__}.{type(model).__qualname__}", sum(p.numel() for p in model.parameters())],
        "batch_size": cfg.batch_size,
        "precision": cfg.precision,
        "compile": cfg.compile,
        "augment": augment,
    }


def known_tunings(store_path: Any) -> list[dict[str, Any]]:
    """The measurements a call hands its tasks: the store's last one (:data:`TUNING`), then
    this process's (a Ray worker's check then reuses what the driver measured)."""
    out = [{"key": json.loads(k), "strategy": s, "timings": t} for k, (s, t) in _MEASURED.items()]
    try:
        data = json.loads((Path(store_path) / TUNING).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return out
    return [data, *out] if isinstance(data, dict) and data.get("source") == "measured" else out


def remember(tuning: Tuning) -> None:
    """Keep a worker's measurement in this process too (the next call reuses it)."""
    if tuning.source == "measured" and tuning.key:
        _MEASURED.setdefault(json.dumps(tuning.key, sort_keys=True), (tuning.strategy, dict(tuning.timings)))


def record(store_path: Any, tuning: Tuning) -> None:
    """Record a measured ``tuning`` in the store (atomically replaced: the latest wins)."""
    from .._io import atomic_write

    data = json.dumps(tuning.as_dict(), indent=1, sort_keys=True, allow_nan=False).encode()
    atomic_write(Path(store_path) / TUNING, lambda f: f.write(data))
