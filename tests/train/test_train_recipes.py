"""The papers' training recipes in the vmapped ensemble: BatchNorm ResNets with per-member
running statistics, augmentation, schedules, label smoothing, Nesterov, clipping; every
member against the plain loop (``reference.train.train_sequential``)."""

from __future__ import annotations

import numpy as np
import pytest

from memscore.train import SubsetPlan

torch = pytest.importorskip("torch")

from train_tiny import TOL, images, tiny_resnet  # noqa: E402

from memscore.models import resnet1d  # noqa: E402
from memscore.reference.train import train_sequential  # noqa: E402
from memscore.train import create_store, train_runs  # noqa: E402
from memscore.train.augment import CropFlip, Shift  # noqa: E402
from memscore.train.schedules import lr_factor  # noqa: E402


def run_both(model_fn, train, plan, ensemble, tmp_path, name, **kw):
    store = create_store(tmp_path / name, train, n_classes=3)
    train_runs(model_fn, train, None, plan, store, ensemble=ensemble, keep_logits=True, progress=False, **kw)
    ref = train_sequential(model_fn, train, None, plan, **{k: v for k, v in kw.items() if k != "device"})
    return store, ref


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
@pytest.mark.parametrize("weight_decay", [0.0, 5e-3])
@pytest.mark.parametrize("strategy", ["vmap", "loop"])
def test_batchnorm_ensemble_equals_the_plain_loop(optimizer, weight_decay, strategy):
    from memscore.train import fit
    from memscore.train.config import TrainConfig
    from memscore.train.inputs import DeviceInputs

    x, y = images(n=17)
    plan = SubsetPlan(len(y), 4, keep=0.5, seed=1)
    sizes = plan.masks.sum(1)
    runs = [int(r) for r in np.flatnonzero(sizes == sizes[0])[:2]]  # one ensemble: equal subset sizes
    assert len(runs) == 2
    kw = dict(epochs=2, batch_size=3, lr=0.05 if optimizer == "sgd" else 5e-3, optimizer=optimizer,
              weight_decay=weight_decay, seed=4)  # fmt: skip
    cpu = torch.device("cpu")
    inputs = DeviceInputs(torch.from_numpy(x), cpu, normalize=None, on_device=True)
    data = fit._Data(inputs, torch.from_numpy(y), None, None, None, "none")
    ens, _, _ = fit._fit_group(tiny_resnet, runs, plan, TrainConfig(**kw), data, cpu, strategy=strategy)
    logits = ens.logits(inputs.chunks(64)).numpy()
    ref = train_sequential(tiny_resnet, (x, y), None, plan, runs=runs, return_state=True, **kw)
    stats = [k for k in ens.buffers if k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert len(stats) == 3 * sum(isinstance(m, torch.nn.BatchNorm2d) for m in tiny_resnet().modules())
    for e, r in enumerate(runs):
        np.testing.assert_allclose(logits[e], ref[r][0], **TOL)  # eval mode: running statistics
        for k in stats:
            np.testing.assert_allclose(ens.buffers[k][e].double(), ref[r][2][k].double(), **TOL)
    assert not torch.equal(ens.buffers[stats[0]][0], ens.buffers[stats[0]][1])  # per member
    assert int(ens.buffers[stats[-1]][0]) == kw["epochs"] * -(-int(sizes[runs[0]]) // kw["batch_size"])


def test_recipe_with_augmentation_schedule_and_clipping_equals_the_plain_loop(tmp_path):
    x, y = images(n=22)
    plan = SubsetPlan(len(y), 4, keep=0.5, seed=0)
    kw = dict(epochs=2, batch_size=4, lr=0.1, optimizer="sgd", nesterov=True, weight_decay=5e-4,
              schedule="onecycle", label_smoothing=0.1, grad_clip=0.5, augment="crop-flip",
              normalize=([0.4, 0.4, 0.4], [0.25, 0.25, 0.25]), seed=2)  # fmt: skip
    store, ref = run_both(tiny_resnet, (x, y), plan, 4, tmp_path, "s", **kw)
    got = store.outcomes("train", "logits")
    for r in range(4):
        np.testing.assert_allclose(got[r], ref[r][0], **TOL)
    # augmentation mattered: the same runs without it differ
    plain = train_sequential(tiny_resnet, (x, y), None, plan, runs=[0], **{**kw, "augment": None})
    assert np.abs(plain[0][0] - ref[0][0]).max() > 1e-3


@pytest.mark.parametrize("schedule", ["step", "cosine", "linear"])
def test_schedules_with_a_user_augmentation_on_signals(tmp_path, schedule):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 21)
    x = (rng.normal(size=(21, 12)) + y[:, None]).astype(np.float32)

    def flip_sign(xb, g):  # a user callable: random sign per example
        return xb * (torch.rand(xb.shape[0], 1, generator=g) < 0.5).float().mul(2).sub(1)

    plan = SubsetPlan(21, 3, keep=0.5, seed=0)
    kw = dict(epochs=3, batch_size=4, lr=0.05, schedule=schedule, step_epochs=(1, 2), gamma=0.5,
              warmup=0.2, augment=flip_sign, optimizer="adamw", seed=1)  # fmt: skip
    store, ref = run_both(lambda: resnet1d(3, width=2), (x, y), plan, 3, tmp_path, "s", **kw)
    got = store.outcomes("train", "logits")
    for r in range(3):
        np.testing.assert_allclose(got[r], ref[r][0], **TOL)


def test_runs_do_not_depend_on_grouping_or_resuming_with_augmentation(tmp_path):
    x, y = images(n=24)
    plan = SubsetPlan(len(y), 4, keep=0.5, seed=3)
    kw = dict(epochs=1, batch_size=6, lr=0.05, augment="crop-flip", schedule="cosine", progress=False,
              keep_logits=True, snapshot_epochs=(0, 1), grand=True)  # fmt: skip
    a = create_store(tmp_path / "a", (x, y), n_classes=3)
    train_runs(tiny_resnet, (x, y), None, plan, a, ensemble=4, **kw)
    b = create_store(tmp_path / "b", (x, y), n_classes=3)
    train_runs(tiny_resnet, (x, y), None, plan, b, ensemble=1, max_runs=1, **kw)  # interrupted
    train_runs(tiny_resnet, (x, y), None, plan, b, ensemble=3, **kw)  # resumed, regrouped
    np.testing.assert_allclose(a.outcomes("train", "logits"), b.outcomes("train", "logits"), **TOL)
    # snapshots and GraNd run in eval mode (running statistics): per-example, grouping-free
    for kind in ("loss", "grand"):
        np.testing.assert_allclose(a.snapshots("train", kind)[1], b.snapshots("train", kind)[1], **TOL)
    # the last snapshot is the stored final model: its loss is the final logits' loss
    z = torch.from_numpy(a.outcomes("train", "logits")).double()
    final = torch.nn.functional.cross_entropy(z.flatten(0, 1), torch.from_numpy(y).repeat(4), reduction="none")
    np.testing.assert_allclose(a.snapshots("train", "loss")[1][:, -1], final.view(4, -1).numpy(), **TOL)


def test_host_memory_path_equals_the_device_path(tmp_path):
    x, y = images(n=20)
    plan = SubsetPlan(len(y), 2, keep=0.5, seed=0)
    kw = dict(epochs=1, batch_size=5, lr=0.05, augment="crop-flip", progress=False, keep_logits=True, ensemble=2,
              strategy="vmap")  # fmt: skip
    a = create_store(tmp_path / "a", (x, y), n_classes=3)
    b = create_store(tmp_path / "b", (x, y), n_classes=3)
    train_runs(tiny_resnet, (x, y), None, plan, a, data_on_device=True, **kw)
    train_runs(tiny_resnet, (x, y), None, plan, b, data_on_device=False, **kw)
    np.testing.assert_array_equal(a.outcomes("train", "logits"), b.outcomes("train", "logits"))


# ----------------------------------------------------------------------------- pieces


def test_crop_flip_is_a_padded_crop_and_a_flip():
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).view(2, 3, 5, 5) + 1
    aug = CropFlip(pad=2)
    params = {"dy": torch.tensor([0, 2]), "dx": torch.tensor([4, 2]), "flip": torch.tensor([False, True])}
    out = aug.apply(x, params)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    np.testing.assert_array_equal(out[0], padded[0, :, 0:5, 4:9])
    np.testing.assert_array_equal(out[1], x[1].flip(-1))  # centered crop, flipped
    # stacked runs: each run's batch with its own parameters, as one call per run would
    xs = torch.stack([x, x + 100])
    p2 = {k: torch.stack([v, v.flip(0)]) for k, v in params.items()}
    both = aug.apply(xs, p2)
    np.testing.assert_array_equal(both[1], aug.apply(x + 100, {k: v.flip(0) for k, v in params.items()}))
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    np.testing.assert_array_equal(aug(x, g1), aug(x, g2))
    assert aug(x.to(torch.uint8), g1).dtype == torch.uint8


def test_shift_rolls_each_signal():
    x = torch.arange(12, dtype=torch.float32).view(2, 6)
    out = Shift(3).apply(x, {"shift": torch.tensor([1, -2])})
    np.testing.assert_array_equal(out[0], torch.roll(x[0], 1))
    np.testing.assert_array_equal(out[1], torch.roll(x[1], -2))
    x3 = torch.arange(24, dtype=torch.float32).view(2, 2, 6)  # (n, C, L)
    np.testing.assert_array_equal(Shift(3).apply(x3, {"shift": torch.tensor([2, 0])})[0], torch.roll(x3[0], 2, -1))


def test_lr_factor_closed_forms():
    t, total = np.arange(10), 10
    cos = [lr_factor("cosine", i, total, steps_per_epoch=5) for i in t]
    np.testing.assert_allclose(cos, 0.5 * (1 + np.cos(np.pi * t / total)))
    # torch's own cosine schedule agrees
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    ca = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    seen = []
    for _ in t:
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        ca.step()
    np.testing.assert_allclose(cos, seen, atol=1e-12)
    step = [lr_factor("step", i, total, steps_per_epoch=2, step_epochs=(2, 4), gamma=0.1) for i in t]
    np.testing.assert_allclose(step, [1, 1, 1, 1, 0.1, 0.1, 0.1, 0.1, 0.01, 0.01])
    lin = [lr_factor("linear", i, total, steps_per_epoch=5, warmup=0.2) for i in t]
    np.testing.assert_allclose(lin, [0.5, 1, 1, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8])
    assert lr_factor("constant", 7, total, steps_per_epoch=5) == 1.0
    with pytest.raises(ValueError, match="schedule"):
        lr_factor("exp", 0, total, steps_per_epoch=5)


def test_query_views_are_recorded_for_lira(tmp_path):
    import memscore

    x, y = images(n=16)
    plan = SubsetPlan(len(y), 4, keep=0.5, seed=0)
    kw = dict(epochs=1, batch_size=4, lr=0.05, seed=0)
    store = create_store(tmp_path / "s", (x, y), (x[:5], y[:5]), n_classes=3)
    train_runs(tiny_resnet, (x, y), (x[:5], y[:5]), plan, store, ensemble=4, progress=False,
               query_augment="mirror-shift", **kw)  # fmt: skip
    views = store.outcomes("train", "phi_views")
    assert views.shape == (4, 16, 18) and store.outcomes("test", "phi_views").shape == (4, 5, 18)
    np.testing.assert_allclose(views[:, :, 0], store.outcomes("train", "phi"), rtol=1e-5, atol=1e-5)  # identity
    # view 9 is the mirror image: the plain loop's model on flipped inputs
    ref = train_sequential(tiny_resnet, (x, y), None, plan, runs=[1], return_state=True, **kw)
    model = tiny_resnet()
    model.load_state_dict(ref[1][2])
    model.eval()
    with torch.no_grad():
        z = model(torch.from_numpy(x).flip(-1).float() / 255).numpy()
    np.testing.assert_allclose(views[1, :, 9], memscore.logit_confidence(z, y), rtol=1e-3, atol=1e-3)
    scores = memscore.lira(store.masks(), views)
    assert scores.shape == (4, 16) and store.verify() == []
    with pytest.raises(ValueError, match="query_augment"):
        train_runs(tiny_resnet, (x, y), (x[:5], y[:5]), plan, store, query_augment="rotate", **kw)
    with pytest.raises(ValueError, match="query_augment: expected a batch"):
        train_runs(tiny_resnet, (x, y), (x[:5], y[:5]), plan, store, query_augment=[lambda b: b[:, :1]], **kw)
    with pytest.raises(ValueError, match=r"phi_views: expected shape \(16, K\)"):
        store.add_run(plan.masks[0], train_phi=np.zeros(16), train_phi_views=np.zeros((16, 0)))


def test_bf16_on_a_gpu_without_it_is_refused(monkeypatch):
    from memscore.train.checks import _check_precision

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Old GPU")
    with pytest.raises(ValueError, match="'bf16' is not supported by Old GPU; use 'fp16'"):
        _check_precision("bf16", torch.device("cuda"))
    _check_precision("fp16", torch.device("cuda"))  # fp16 needs no bf16 support
    _check_precision("bf16", torch.device("cpu"))  # the CPU autocasts


# ---- compile=True: the ensemble's training forward through torch.compile


def _compile_works() -> bool:
    from memscore.train.checks import _check_compile

    try:
        _check_compile(torch.device("cpu"))
    except ValueError:
        return False
    return True


def test_compiled_ensemble_equals_the_eager_one_and_the_plain_loop(tmp_path):
    """``compile=True`` trains the same runs as the eager ensemble and the plain loop."""
    if not _compile_works():
        pytest.skip("torch.compile does not work here (no C++ compiler)")
    x, y = images(n=16)
    plan = SubsetPlan(len(y), 2, keep=0.5, seed=1)  # balanced halves: one ensemble, batches of 4
    kw = dict(epochs=2, batch_size=4, lr=0.05, weight_decay=5e-4, schedule="cosine", augment="crop-flip",
              seed=3, device="cpu")  # fmt: skip
    from torch._dynamo.utils import counters

    graphs = counters["stats"]["unique_graphs"]
    stores = {}
    for compiled in (False, True):
        stores[compiled] = create_store(tmp_path / f"c{int(compiled)}", (x, y), n_classes=3)
        train_runs(tiny_resnet, (x, y), None, plan, stores[compiled], ensemble=2, keep_logits=True,
                   progress=False, compile=compiled, **kw)  # fmt: skip
    assert counters["stats"]["unique_graphs"] > graphs  # the compiled path did compile a graph
    ref = train_sequential(tiny_resnet, (x, y), None, plan, **{k: v for k, v in kw.items() if k != "device"})
    from memscore import RunStore

    eager, comp = RunStore.open(tmp_path / "c0"), RunStore.open(tmp_path / "c1")
    assert comp.run_ids() == eager.run_ids() and len(comp) == 2
    z_c, z_e = comp.outcomes("train", "logits"), eager.outcomes("train", "logits")
    assert np.isfinite(z_c).all()
    np.testing.assert_allclose(z_c, z_e, rtol=2e-4, atol=2e-4)
    for r, rid in enumerate(comp.run_ids()):
        np.testing.assert_allclose(z_c[r], ref[r][0], rtol=2e-4, atol=2e-4)
        assert comp.run_metadata(rid)["compile"] is True
        assert eager.run_metadata(rid)["compile"] is False


def test_compile_that_cannot_work_is_refused_before_training(tmp_path, monkeypatch):
    def broken(*_args, **_kw):
        raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")

    monkeypatch.setattr(torch, "compile", broken)
    from memscore import RunStore

    x, y = images(n=16)
    store = create_store(tmp_path / "s", (x, y), n_classes=3)
    with pytest.raises(ValueError, match="compile: torch.compile does not work.*C\\+\\+ compiler"):
        train_runs(tiny_resnet, (x, y), None, SubsetPlan(len(y), 2, seed=0), store, epochs=1, batch_size=4,
                   lr=0.1, device="cpu", progress=False, compile=True)  # fmt: skip
    assert len(RunStore.open(tmp_path / "s")) == 0
    with pytest.raises(TypeError, match="compile"):
        train_runs(tiny_resnet, (x, y), None, SubsetPlan(len(y), 2, seed=0), store, epochs=1, batch_size=4,
                   lr=0.1, device="cpu", progress=False, compile="yes")  # fmt: skip


def test_cli_compile_is_checked_before_the_store_is_created(tmp_path, monkeypatch, capsys):
    pytest.importorskip("typer")
    import sys

    from memscore.cli import main

    def broken(*_args, **_kw):
        raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")

    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.setattr(sys, "argv", ["memscore", "train", str(tmp_path / "s"), "--dataset", "mnist1d", "--compile"])
    with pytest.raises(SystemExit) as info:
        main()
    err = capsys.readouterr().err
    assert info.value.code == 1 and "Traceback" not in err
    assert "compile: torch.compile does not work" in err
    assert not (tmp_path / "s").exists()


def test_compiled_ensembles_share_one_graph(tmp_path, monkeypatch):
    """Every ensemble of an architecture, and a short last batch (padded), run one compiled
    graph: nothing recompiles per ensemble, even past dynamo's recompile limit."""
    if not _compile_works():
        pytest.skip("torch.compile does not work here (no C++ compiler)")
    from torch._dynamo.utils import counters

    from memscore import RunStore
    from memscore.train import ensemble, mlp

    monkeypatch.setattr(torch._dynamo.config, "recompile_limit", 1)
    monkeypatch.setattr(ensemble, "_COMPILED", {})
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 4)).astype(np.float32), rng.integers(0, 3, 16)
    plan = SubsetPlan(len(y), 6, keep=0.5, seed=0)  # three ensembles of 2; batches 3, 3, 2
    kw = dict(epochs=1, batch_size=3, lr=0.1, device="cpu", progress=False, keep_logits=True, ensemble=2,
              strategy="vmap")  # fmt: skip
    graphs = counters["stats"]["unique_graphs"]
    for compiled in (True, False):
        train_runs(lambda: mlp(4, 3, width=4), (x, y), None, plan, create_store(tmp_path / f"c{int(compiled)}", (x, y), n_classes=3),
                   compile=compiled, **kw)  # fmt: skip
    assert counters["stats"]["unique_graphs"] - graphs == 1
    z = [RunStore.open(tmp_path / f"c{c}").outcomes("train", "logits") for c in (0, 1)]
    np.testing.assert_allclose(z[1], z[0], rtol=2e-4, atol=2e-4)
