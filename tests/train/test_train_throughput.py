"""Training throughput without changing a run: every strategy equals the plain loop, auto
picks and records one, no host synchronization inside the step loop, ensembles sized to a
memory budget and halved on out-of-memory, members' fp16 loss scales independent, the
background writer crash-safe, and the GPU check's dry run on the CPU."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from memscore.train import SubsetPlan

torch = pytest.importorskip("torch")

from train_tiny import TOL, images, signals, tiny_resnet  # noqa: E402

from memscore import RunStore  # noqa: E402
from memscore.reference.train import splitmix_bits, train_sequential  # noqa: E402
from memscore.train import create_store, fit, mlp, tasks, train_runs  # noqa: E402
from memscore.train.autotune import TUNING  # noqa: E402
from memscore.train.config import TrainConfig  # noqa: E402
from memscore.train.inputs import DeviceInputs  # noqa: E402
from memscore.train.randomness import draw_bits, epoch_order  # noqa: E402
from memscore.train.writer import RunWriter  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


# ---- the randomness: counter-based, the same on every device and for every grouping


def test_draws_equal_the_numpy_splitmix_and_do_not_depend_on_the_other_rows():
    keys = torch.tensor([0, 1, 2**62 + 12345, 2**63 - 1, 977])
    for epoch, stream in ((1, 0), (7, 3), (10**6, 0)):
        got = draw_bits(keys, epoch, 33, stream).numpy()
        np.testing.assert_array_equal(got, splitmix_bits(keys.numpy(), epoch, 33, stream))
        np.testing.assert_array_equal(draw_bits(keys[2:3], epoch, 33, stream).numpy(), got[2:3])
    order = epoch_order(keys, [5, 0, 1, 33, 17], 2)
    assert order.shape == (5, 33)
    for e, n in enumerate([5, 0, 1, 33, 17]):
        assert sorted(order[e, :n].tolist()) == list(range(n))
        assert order[e, n:].tolist() == list(range(n, 33))  # padding last, in order
    assert not torch.equal(epoch_order(keys, [33] * 5, 1), epoch_order(keys, [33] * 5, 2))


# ---- strategies: the same runs as the plain loop; auto picks one and records it


@pytest.mark.parametrize("strategy", ["vmap", "loop", "auto"])
def test_every_strategy_equals_the_plain_loop(tmp_path, strategy):
    x, y = images(n=22)
    plan = SubsetPlan(len(y), 4, keep=0.5, seed=0)
    kw = dict(epochs=2, batch_size=4, lr=0.1, momentum=0.9, weight_decay=5e-4, schedule="cosine",
              augment="crop-flip", label_smoothing=0.1, grad_clip=1.0, seed=2)  # fmt: skip
    store = create_store(tmp_path / "s", (x, y), n_classes=3)
    train_runs(tiny_resnet, (x, y), None, plan, store, strategy=strategy, ensemble=4, progress=False, **kw)
    ref = train_sequential(tiny_resnet, (x, y), None, plan, **kw)
    got = store.outcomes("train", "logits")
    for r in range(4):
        np.testing.assert_allclose(got[r], ref[r][0], **TOL)
    meta = store.run_metadata(store.run_ids()[0])
    assert meta["strategy"] in ("vmap", "loop") and (strategy == "auto" or meta["strategy"] == strategy)


def test_auto_times_every_strategy_once_and_reuses_the_measurement(tmp_path, monkeypatch):
    from memscore.train import autotune

    monkeypatch.setattr(autotune, "_MEASURED", {})  # this process's earlier measurements
    x, y = signals()
    plan = SubsetPlan(len(y), 6, keep=0.5, seed=0)
    kw = dict(epochs=1, batch_size=8, lr=0.1, progress=False, ensemble=2)
    store = create_store(tmp_path / "s", (x, y), n_classes=3)
    train_runs(lambda: mlp(6, 3, width=8), (x, y), None, plan, store, max_runs=2, **kw)
    rec = json.loads((store.path / TUNING).read_text())
    assert rec["source"] == "measured" and set(rec["timings"]) == {"vmap", "loop"}
    assert rec["strategy"] == min(rec["timings"], key=rec["timings"].get)
    assert rec["key"]["batch_size"] == 8 and rec["key"]["device"] == "cpu"

    def no_probe(*a, **k):
        raise AssertionError("the recorded measurement should be reused")

    monkeypatch.setattr(autotune, "_time_strategies", no_probe)
    train_runs(lambda: mlp(6, 3, width=8), (x, y), None, plan, store, **kw)  # resumes: no timing
    assert {store.run_metadata(r)["strategy"] for r in store.run_ids()} == {rec["strategy"]}
    # another batch size is another measurement
    other = create_store(tmp_path / "o", (x, y), n_classes=3)
    (other.path / TUNING).write_text(json.dumps(rec))
    with pytest.raises(AssertionError, match="reused"):
        train_runs(lambda: mlp(6, 3, width=8), (x, y), None, plan, other, **{**kw, "batch_size": 4})


@pytest.mark.parametrize("fraction", [0.0, 1e9])
def test_auto_times_vmap_at_the_ensemble_size_the_job_uses_within_its_budget(tmp_path, monkeypatch, fraction):
    from memscore.train import autotune

    monkeypatch.setattr(autotune, "_MEASURED", {})
    monkeypatch.setattr(autotune, "PROBE_FRACTION", fraction)  # no time to spare, or all of it
    x, y = signals(n=48)
    plan = SubsetPlan(len(y), 12, keep=0.5, seed=0)
    store = create_store(tmp_path / "s", (x, y), n_classes=3)
    # 5 runs to train: the ensembles (sized from memory, at most 64) hold 5
    train_runs(lambda: mlp(6, 3, width=8), (x, y), None, plan, store, max_runs=5, epochs=1, batch_size=8, lr=0.1,
               progress=False)  # fmt: skip
    rec = json.loads((store.path / TUNING).read_text())
    assert rec["ensemble"] == 5 and {store.run_metadata(r)["ensemble_size"] for r in store.run_ids()} == {5}
    assert rec["probe"]["vmap"]["ensemble"] == rec["probe"]["loop"]["ensemble"] == 5
    assert rec["probe"]["vmap"]["members"] == (2 if fraction == 0 else 5) and rec["probe"]["loop"]["members"] == 1
    assert 0 < rec["probe"]["seconds"] and all(rec["probe"][s]["step_s"] > 0 for s in ("vmap", "loop"))


def test_the_probe_grows_vmap_toward_the_ensemble_size_while_the_budget_lasts(monkeypatch):
    """The probe's decisions, on fake timings: vmap is timed again at the job's ensemble size
    or at the largest power of two that fits the budget (PROBE_FRACTION of the job's
    predicted time), and each strategy is predicted from its last timing."""
    from types import SimpleNamespace

    from memscore.train import autotune

    timed, clock = [], [0.0]

    def measure(self, members, chunk):  # vmap's cost per member halves from 8 members on
        timed.append((self.strategy, members, chunk))
        self.members, self.eval = members, 0.0
        self.step = 1.0 if self.strategy == "loop" or members < 8 else 0.5
        clock[0] += 2.5 * members * self.step  # what _Probe.cost predicts, after the fact

    monkeypatch.setattr(autotune._Probe, "measure", measure)
    monkeypatch.setattr(autotune, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    data = SimpleNamespace(x=[0] * 48, x_test=None, views=[])
    chunk = lambda s, m: 1024 // m  # noqa: E731
    # 12 runs of 3 steps an epoch at 1 s a member-step: a budget of 0.02 * 12 * 3 * epochs s, of
    # which the first timings (vmap at 2 members, the loop at 1) take 7.5 s
    for epochs, want in ((10, [2]), (25, [2, 4]), (40, [2, 8]), (60, [2, 12])):
        timed.clear()
        cfg = TrainConfig(epochs=epochs, batch_size=8, lr=0.1)
        got, probe = autotune._time_strategies(
            None, cfg, data, torch.device("cpu"), {"vmap": 12, "loop": 12}, chunk, runs=12, examples_per_epoch=24
        )
        assert [m for s, m, _ in timed if s == "vmap"] == want, epochs
        assert [(m, c) for s, m, c in timed if s == "loop"] == [(1, 1024)]
        assert probe["vmap"]["members"] == want[-1] and probe["vmap"]["ensemble"] == 12
        assert probe["seconds"] <= max(7.5, 0.02 * 12 * 3 * epochs)
        assert got == {"vmap": 3 * epochs * (0.5 if want[-1] >= 8 else 1.0), "loop": 3 * epochs * 1.0}

    # out of memory at a larger size (the sizing erred): the probe keeps what it timed
    def tight(self, members, chunk):
        if members > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        measure(self, members, chunk)

    monkeypatch.setattr(autotune._Probe, "measure", tight)
    cfg = TrainConfig(epochs=60, batch_size=8, lr=0.1)
    got, probe = autotune._time_strategies(
        None, cfg, data, torch.device("cpu"), {"vmap": 12, "loop": 12}, chunk, runs=12, examples_per_epoch=24
    )
    assert probe["vmap"]["members"] == 2 and got["vmap"] == 3 * 60 * 1.0


def test_cpu_eval_passes_hold_a_bounded_number_of_member_examples():
    from memscore.train.autotune import CPU_EVAL_MEMBER_EXAMPLES, CPU_EVAL_SAVED_BYTES, eval_chunk

    budget = 2**34
    assert eval_chunk(1000, 100, 1, budget) == 16384  # CUDA: as many as fit a quarter of the budget
    for members in (1, 2, 8, 32, 64, 1000):
        got = eval_chunk(1000, 100, members, budget, "cpu")
        assert got == max(16, CPU_EVAL_MEMBER_EXAMPLES // members), members
    # Large activations (ResNet-20 saves 1.57 MB per example in a step): fewer per pass.
    per_example = 1_570_000
    want = CPU_EVAL_SAVED_BYTES // per_example
    assert 16 < want < CPU_EVAL_MEMBER_EXAMPLES
    assert eval_chunk(per_example * 128, 128, 1, budget, "cpu") == want
    assert eval_chunk(per_example * 128, 128, 4, budget, "cpu") == max(16, want // 4)
    assert eval_chunk(10**9, 1, 1, 2**20, "cpu") == 16  # never fewer than 16 examples


def test_auto_trains_a_model_vmap_cannot_run_member_by_member(tmp_path):
    class Branchy(torch.nn.Module):  # data-dependent control flow: vmap cannot run it
        def forward(self, x):
            return x if float(x.sum()) > 0 else -x

    x, y = signals()
    plan = SubsetPlan(len(y), 3, keep=0.5, seed=0)
    fn = lambda: torch.nn.Sequential(torch.nn.Linear(6, 3), Branchy())  # noqa: E731
    store = create_store(tmp_path / "s", (x, y), n_classes=3)
    train_runs(fn, (x, y), None, plan, store, epochs=1, batch_size=8, lr=0.1, progress=False)
    assert {store.run_metadata(r)["strategy"] for r in store.run_ids()} == {"loop"}
    ref = train_sequential(fn, (x, y), None, plan, epochs=1, batch_size=8, lr=0.1)
    np.testing.assert_allclose(store.outcomes("train", "logits"), np.stack([ref[r][0] for r in range(3)]), **TOL)


# ---- no host synchronization inside the step loop


_SYNCING = ("item", "tolist", "__bool__", "cpu", "numpy", "__int__", "__float__", "__index__")


def _count_syncs(monkeypatch):
    calls = []
    for name in _SYNCING:
        orig = getattr(torch.Tensor, name)

        def wrapped(self, *a, __orig=orig, __name=name, **k):
            calls.append(__name)
            return __orig(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, wrapped)
    return calls


@pytest.mark.parametrize("strategy", ["vmap", "loop"])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_the_step_loop_never_waits_for_the_device(monkeypatch, strategy, precision):
    """The training loop reads nothing back per step or per epoch: the host runs ahead of the
    device. The only reads are the divergence record and the snapshots, once, at the end."""
    x, y = images(n=40)
    cpu = torch.device("cpu")

    def syncs(epochs, runs_per_plan):
        plan = SubsetPlan(len(y), 4, keep=0.5, seed=1)
        sizes = plan.masks.sum(1)
        runs = [int(r) for r in np.flatnonzero(sizes == sizes[0])[:2]]
        cfg = TrainConfig(epochs=epochs, batch_size=3, lr=0.05, schedule="cosine", grad_clip=1.0,
                          snapshot_epochs=tuple(range(epochs + 1)), precision=precision)  # fmt: skip
        inputs = DeviceInputs(torch.from_numpy(x), cpu, normalize=([0.4] * 3, [0.25] * 3), on_device=True)
        from memscore.train.augment import CropFlip

        data = fit._Data(inputs, torch.from_numpy(y), None, None, CropFlip(2), "crop-flip")
        calls = _count_syncs(monkeypatch)
        fit._fit_group(tiny_resnet, runs, plan, cfg, data, cpu, strategy=strategy)
        monkeypatch.undo()
        return len(calls)

    few, many = syncs(1, 4), syncs(3, 4)  # 7 steps vs 21 steps, 2 vs 4 snapshots
    assert few == many, f"{many - few} host reads for 14 more steps and 2 more epochs"
    assert few <= 5  # the end of training: the divergence record (2) and the stacked snapshots (3)


# ---- sizing from memory, and out-of-memory halving: the groups change, the runs do not


def test_ensembles_are_sized_to_the_memory_budget_and_give_the_same_runs(tmp_path):
    x, y = signals(n=48)
    plan = SubsetPlan(len(y), 9, keep=0.5, seed=0)
    kw = dict(epochs=2, batch_size=8, lr=0.1, progress=False, strategy="vmap", seed=1)
    fn = lambda: mlp(6, 3, width=32)  # noqa: E731
    big = create_store(tmp_path / "big", (x, y), n_classes=3)
    train_runs(fn, (x, y), None, plan, big, **kw)
    small = create_store(tmp_path / "small", (x, y), n_classes=3)
    train_runs(fn, (x, y), None, plan, small, memory="40KiB", **kw)
    sizes = [small.run_metadata(r)["ensemble_size"] for r in small.run_ids()]
    assert max(big.run_metadata(r)["ensemble_size"] for r in big.run_ids()) > max(sizes) >= 1
    np.testing.assert_allclose(small.outcomes("train", "logits"), big.outcomes("train", "logits"), **TOL)


def test_an_out_of_memory_error_halves_the_group(tmp_path, monkeypatch):
    x, y = signals(n=48)
    plan = SubsetPlan(len(y), 6, keep=0.5, seed=0)
    kw = dict(epochs=1, batch_size=8, lr=0.1, progress=False, strategy="vmap", ensemble=6)
    fn = lambda: mlp(6, 3, width=8)  # noqa: E731
    ref = create_store(tmp_path / "ref", (x, y), n_classes=3)
    train_runs(fn, (x, y), None, plan, ref, **kw)
    real = tasks._run_records
    tried = []

    def tight(model_fn, runs, *a, **k):
        tried.append(len(runs))
        if len(runs) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(model_fn, runs, *a, **k)

    monkeypatch.setattr(tasks, "_run_records", tight)
    halved = create_store(tmp_path / "halved", (x, y), n_classes=3)
    train_runs(fn, (x, y), None, plan, halved, **kw)
    assert max(tried) > 2 and {halved.run_metadata(r)["ensemble_size"] for r in halved.run_ids()} <= {1, 2}
    np.testing.assert_allclose(halved.outcomes("train", "logits"), ref.outcomes("train", "logits"), **TOL)

    def never(model_fn, runs, *a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(tasks, "_run_records", never)
    with pytest.raises(MemoryError, match="one run .* does not fit the memory of cpu at batch_size=8"):
        train_runs(fn, (x, y), None, plan, create_store(tmp_path / "never", (x, y), n_classes=3), **kw)


# ---- mixed precision: a member's overflow is its own


@pytest.mark.parametrize("precision,strategy", [("fp32", "vmap"), ("fp32", "loop"), ("bf16", "loop"), ("fp16", "loop")])
def test_a_run_beside_an_overflowing_member_equals_the_run_alone(tmp_path, precision, strategy):
    x, y = signals(n=32)
    x[5] *= 400.0  # only run 1 sees it: its fp16 gradients overflow at the first scales
    masks = np.ones((2, 32), dtype=bool)
    masks[0, 5] = False
    masks[:, [6, 7]] = [[True, False], [False, True]]  # equal subset sizes: one ensemble
    plan = SubsetPlan.from_masks(masks)
    kw = dict(epochs=2, batch_size=8, lr=0.05, precision=precision, seed=3)
    fn = lambda: mlp(6, 3, width=16)  # noqa: E731
    cpu = torch.device("cpu")
    data = fit._Data(DeviceInputs(torch.from_numpy(x), cpu, normalize=None, on_device=True), torch.from_numpy(y),
                     None, None, None, "none")  # fmt: skip
    cfg = TrainConfig(**kw)
    both, _, _ = fit._fit_group(fn, [0, 1], plan, cfg, data, cpu, strategy=strategy)
    alone, _, _ = fit._fit_group(fn, [0], plan, cfg, data, cpu, strategy=strategy)
    for a, b in zip(both.params, alone.params, strict=True):
        np.testing.assert_allclose(a[0].detach().numpy(), b[0].detach().numpy(), **TOL)
    ref = train_sequential(fn, (x, y), None, plan, runs=[0, 1], return_state=True, **kw)
    for r in (0, 1):  # every member, the overflowing one too, equals the plain loop's run
        for p, want in zip(both.params, ref[r][2].values(), strict=True):
            np.testing.assert_allclose(p[r].detach().numpy(), want.numpy(), **TOL)
    # fp32 / bf16: run 1's loss overflows and it diverges; fp16: it skips those steps and trains on
    assert 0 not in both.diverged and (1 in both.diverged) == (precision != "fp16")
    if precision == "fp16":  # the two members did overflow differently: their scales part
        scale = both.scaler.scale.tolist()
        assert scale[1] < scale[0] <= 2.0**16, scale


def test_vmap_refuses_mixed_precision_it_would_run_in_float32(tmp_path):
    x, y = signals()
    store = create_store(tmp_path / "s", (x, y), n_classes=3)
    with pytest.raises(ValueError, match="strategy: 'vmap' cannot train in bf16 .*ignores autocast"):
        train_runs(lambda: mlp(6, 3), (x, y), None, SubsetPlan(len(y), 2), store, epochs=1, batch_size=8, lr=0.1,
                   precision="bf16", strategy="vmap", progress=False)  # fmt: skip
    assert store.run_ids() == []


# ---- the background writer


def test_the_writer_runs_jobs_in_order_and_raises_their_error():
    out = []
    w = RunWriter(max_pending=1)
    for i in range(5):
        w.submit(lambda i=i: out.append(i))
    w.close()
    assert out == list(range(5))
    w = RunWriter()
    w.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        w.close()
    w.close()  # reported once


_TRAINER = """
import sys, numpy as np
from memscore.train import SubsetPlan, create_store, mlp, train_runs
rng = np.random.default_rng(0)
y = rng.integers(0, 3, 64)
x = (rng.normal(size=(64, 6)) + y[:, None]).astype(np.float32)
plan = SubsetPlan(64, 400, keep=0.5, seed=0)
try:
    store = create_store(sys.argv[1], (x, y), n_classes=3)
except Exception:
    from memscore import RunStore
    store = RunStore.open(sys.argv[1])
only = [int(r) for r in sys.argv[4].split(",")] if len(sys.argv) > 4 else None
train_runs(lambda: mlp(6, 3, width=8), (x, y), None, plan, store, epochs=int(sys.argv[2]), batch_size=8,
           lr=0.1, ensemble=4, strategy="vmap", progress=False, max_runs=int(sys.argv[3]), runs=only)
"""


def test_kill_9_during_training_loses_no_written_run_and_leaves_no_partial_one(tmp_path):
    script = tmp_path / "trainer.py"
    script.write_text(_TRAINER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    path = tmp_path / "store"
    proc = subprocess.Popen([sys.executable, str(script), str(path), "3", "400"], env=env)
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            runs = path / "runs"
            if runs.is_dir() and sum(1 for p in runs.rglob("*") if p.is_file() and not p.name.startswith(".")) >= 8:
                break
            if proc.poll() is not None:
                pytest.fail(f"the trainer ended early with {proc.returncode}")
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    store = RunStore.open(path)
    have = store.run_ids()
    assert 0 < len(have) < 400
    # every listed run is whole (CRCs, arrays, checksums); a killed write leaves at most a
    # .tmp-* file, which no listing shows
    assert [p for p in store.verify() if ".tmp-" not in p] == []
    assert np.isfinite(store.outcomes("train", "logits")).all()
    # the next call trains only missing runs; every run equals the same run of an uninterrupted call
    subprocess.run([sys.executable, str(script), str(path), "3", "8"], env=env, check=True)
    a = RunStore.open(path)
    assert len(a.run_ids()) == len(have) + 8 and set(have) < set(a.run_ids())
    clean = tmp_path / "clean"
    only = ",".join(str(int(r.split("-")[1])) for r in a.run_ids())
    subprocess.run([sys.executable, str(script), str(clean), "3", "400", only], env=env, check=True)
    b = RunStore.open(clean)
    assert a.run_ids() == b.run_ids()
    np.testing.assert_allclose(a.outcomes("train", "logits"), b.outcomes("train", "logits"), **TOL)


# ---- the GPU check cannot rot: its dry run on the CPU


def test_gpu_check_dry_run(tmp_path):
    out = subprocess.run(
        [sys.executable, str(ROOT / "benches" / "gpu_check.py"), "--dry-run", "--json", str(tmp_path / "t.json")],
        capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    rows = json.loads((tmp_path / "t.json").read_text())["rows"]
    kinds = {r["check"] for r in rows}
    assert {"member == reference (fp32)", "bf16 finite and close", "train", "lm.extractable"} <= kinds
    assert all(r["ok"] for r in rows if "ok" in r), rows
    assert "images/s" in out.stdout
