"""Distillation in the run engine: every distilled member equals the plain one-model loop,
alpha = 0 gives the plain runs, students move toward their teachers, the settings are
recorded and not mixed, and bad teachers fail before anything is written."""

from __future__ import annotations

import json

import numpy as np
import pytest

from memscore.train import SubsetPlan

torch = pytest.importorskip("torch")

from train_tiny import TOL, images, signals, tiny_resnet  # noqa: E402

from memscore import RunStore  # noqa: E402
from memscore.models import cifar_resnet  # noqa: E402
from memscore.reference.train import train_sequential  # noqa: E402
from memscore.train import Distillation, create_store, mlp, train_runs  # noqa: E402
from memscore.train.settings import TRAIN_CONFIG  # noqa: E402


def teacher_store(path, fn, data, plan, **kw):
    store = create_store(path, data, n_classes=3)
    train_runs(fn, data, None, plan, store, keep_logits=True, **{"progress": False, **kw})
    return store


@pytest.mark.parametrize("strategy", ["vmap", "loop"])
def test_every_distilled_member_equals_the_plain_loop(tmp_path, strategy):
    x, y = images(n=22)
    plan = SubsetPlan(len(y), 4, keep=0.5, seed=0)
    kw = dict(epochs=3, batch_size=4, lr=0.1, momentum=0.9, weight_decay=5e-4, schedule="cosine",
              augment="crop-flip", label_smoothing=0.1, seed=2)  # fmt: skip
    teacher = teacher_store(tmp_path / "t", lambda: cifar_resnet(3, width=4, depth=8), (x, y), plan, **kw)
    d = Distillation(teacher, alpha=0.7, temperature=2.0, start_epoch=1)
    store = create_store(tmp_path / "s", (x, y), n_classes=3)
    train_runs(tiny_resnet, (x, y), None, plan, store, distill=d, strategy=strategy, ensemble=4,
               keep_logits=True, progress=False, **kw)  # fmt: skip
    ref = train_sequential(tiny_resnet, (x, y), None, plan, distill=d, **kw)
    got = store.outcomes("train", "logits")
    for r in range(4):
        np.testing.assert_allclose(got[r], ref[r][0], **TOL)
    plain = train_sequential(tiny_resnet, (x, y), None, plan, runs=[0], **kw)
    assert np.abs(plain[0][0] - ref[0][0]).max() > 1e-3  # the teacher mattered
    meta = store.run_metadata("run-000002")["distill"]
    assert meta["teacher"] == {"store": str(teacher.path.resolve()), "run_id": "run-000002"}
    assert (meta["alpha"], meta["temperature"], meta["start_epoch"]) == (0.7, 2.0, 1)
    assert json.loads((store.path / TRAIN_CONFIG).read_text())["distill"]["alpha"] == 0.7


@pytest.mark.parametrize("kind", ["logits", "module"])
def test_an_array_or_a_module_teacher_equals_the_plain_loop(tmp_path, kind):
    x, y = signals()
    plan = SubsetPlan(len(y), 3, keep=0.5, seed=1)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    teacher = net(torch.from_numpy(x)).detach().numpy() if kind == "logits" else net
    d = Distillation(teacher, alpha=0.5, temperature=3.0)
    kw = dict(epochs=2, batch_size=8, lr=0.1, seed=1, augment=None)
    store = create_store(tmp_path / "s", (x, y), n_classes=3)
    fn = lambda: mlp(6, 3, width=8)  # noqa: E731
    train_runs(fn, (x, y), None, plan, store, distill=d, keep_logits=True, progress=False, **kw)
    ref = train_sequential(fn, (x, y), None, plan, distill=d, **kw)
    np.testing.assert_allclose(store.outcomes("train", "logits"), np.stack([ref[r][0] for r in range(3)]), **TOL)
    key = "logits_sha256" if kind == "logits" else "module_sha256"
    assert key in store.run_metadata("run-000000")["distill"]["teacher"]


def test_a_module_teacher_is_neither_moved_nor_put_in_eval_mode(tmp_path):
    moved = []

    class Spy(torch.nn.Sequential):  # Module.to (any device) and .eval() go through these
        def _apply(self, fn, *a, **k):
            moved.append(id(self))
            return super()._apply(fn, *a, **k)

        def train(self, mode=True):
            moved.append((id(self), mode))
            return super().train(mode)

    x, y = images(n=16)
    plan = SubsetPlan(len(y), 2, keep=0.5, seed=0)
    torch.manual_seed(0)
    net = Spy(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(), torch.nn.LazyLinear(3))
    net(torch.zeros(2, 3, 8, 8))  # materialize the lazy layer; BatchNorm's statistics move
    state = {k: v.clone() for k, v in net.state_dict().items()}
    moved.clear()
    d = Distillation(net, alpha=0.5)
    kw = dict(epochs=1, batch_size=4, lr=0.1, augment="crop-flip", seed=0)
    store = create_store(tmp_path / "s", (x, y), n_classes=3)
    train_runs(tiny_resnet, (x, y), None, plan, store, distill=d, keep_logits=True, progress=False, **kw)
    ref = train_sequential(tiny_resnet, (x, y), None, plan, distill=d, **kw)
    assert id(net) not in moved and (id(net), False) not in moved and net.training
    for k, v in net.state_dict().items():
        assert torch.equal(v, state[k]), k  # the teacher ran in eval mode: its statistics did not move
    copy = d.module_on(torch.device("cpu"))
    assert copy is not net and not copy.training and not any(p.requires_grad for p in copy.parameters())
    assert all(p.data_ptr() != q.data_ptr() for p, q in zip(copy.parameters(), net.parameters(), strict=True))
    np.testing.assert_allclose(store.outcomes("train", "logits"), np.stack([ref[r][0] for r in range(2)]), **TOL)


def test_alpha_zero_gives_exactly_the_plain_runs(tmp_path):
    x, y = images(n=20)
    plan = SubsetPlan(len(y), 3, keep=0.5, seed=0)
    kw = dict(epochs=2, batch_size=4, lr=0.1, augment="crop-flip", schedule="cosine", keep_logits=True,
              progress=False, strategy="vmap", ensemble=3)  # fmt: skip
    teacher = teacher_store(tmp_path / "t", tiny_resnet, (x, y), plan, epochs=1, batch_size=4, lr=0.1)
    plain = create_store(tmp_path / "p", (x, y), n_classes=3)
    train_runs(tiny_resnet, (x, y), None, plan, plain, **kw)
    zero = create_store(tmp_path / "z", (x, y), n_classes=3)
    train_runs(tiny_resnet, (x, y), None, plan, zero, distill=Distillation(teacher, alpha=0.0), **kw)
    np.testing.assert_array_equal(zero.outcomes("train", "logits"), plain.outcomes("train", "logits"))


def _kl_to_teacher(student, teacher, masks, tau=1.0):
    """Mean KL(teacher || student) on each run's own training examples."""
    t = torch.log_softmax(torch.from_numpy(teacher) / tau, -1)
    s = torch.log_softmax(torch.from_numpy(student) / tau, -1)
    kl = (t.exp() * (t - s)).sum(-1).numpy()
    return float(kl[masks].mean())


def test_distilled_students_are_closer_to_their_teachers_on_digits(tmp_path):
    from memscore.datasets import digits

    d = digits(label_noise=0.1, seed=0)
    data = (d.x_train, d.y_train)
    plan = SubsetPlan(d.n_train, 4, keep=0.5, seed=0)
    kw = dict(epochs=8, batch_size=32, lr=0.05, seed=0, keep_logits=True, progress=False)
    teacher = create_store(tmp_path / "t", data, n_classes=10)
    train_runs(lambda: mlp(d.n_features, 10, width=128), data, None, plan, teacher, **kw)
    student = lambda: mlp(d.n_features, 10, width=16)  # noqa: E731
    plain = create_store(tmp_path / "p", data, n_classes=10)
    train_runs(student, data, None, plan, plain, **kw)
    dist = create_store(tmp_path / "d", data, n_classes=10)
    train_runs(student, data, None, plan, dist, distill=Distillation(teacher, alpha=0.9, temperature=4.0), **kw)
    t, masks = teacher.outcomes("train", "logits"), teacher.masks()
    kl_plain = _kl_to_teacher(plain.outcomes("train", "logits"), t, masks)
    kl_dist = _kl_to_teacher(dist.outcomes("train", "logits"), t, masks)
    assert kl_dist < 0.8 * kl_plain, (kl_dist, kl_plain)


def test_a_store_holds_one_distillation_setting(tmp_path):
    x, y = signals()
    plan = SubsetPlan(len(y), 4, keep=0.5, seed=0)
    kw = dict(epochs=1, batch_size=8, lr=0.1, progress=False)
    fn = lambda: mlp(6, 3, width=8)  # noqa: E731
    teacher = teacher_store(tmp_path / "t", fn, (x, y), plan, **kw)
    store = create_store(tmp_path / "s", (x, y), n_classes=3)
    train_runs(fn, (x, y), None, plan, store, distill=Distillation(teacher, alpha=0.5), max_runs=2, **kw)
    with pytest.raises(ValueError, match="distill: .* in the store"):
        train_runs(fn, (x, y), None, plan, store, distill=Distillation(teacher, alpha=0.6), **kw)
    with pytest.raises(ValueError, match="distill"):
        train_runs(fn, (x, y), None, plan, store, **kw)  # plain runs into a distilled store
    plain = create_store(tmp_path / "p", (x, y), n_classes=3)
    train_runs(fn, (x, y), None, plan, plain, max_runs=1, **kw)
    with pytest.raises(ValueError, match="distill: None in the store"):
        train_runs(fn, (x, y), None, plan, plain, distill=Distillation(teacher), **kw)
    assert len(store.refresh()) == 2 and len(plain.refresh()) == 1


def _files(path):
    return sorted(p.relative_to(path) for p in path.rglob("*"))


def test_bad_teachers_fail_before_anything_is_written(tmp_path):
    x, y = signals()
    plan = SubsetPlan(len(y), 4, keep=0.5, seed=0)
    kw = dict(epochs=2, batch_size=8, lr=0.1, progress=False)
    fn = lambda: mlp(6, 3, width=8)  # noqa: E731
    teacher = teacher_store(tmp_path / "t", fn, (x, y), plan, max_runs=3, **kw)
    no_logits = create_store(tmp_path / "nl", (x, y), n_classes=3)
    train_runs(fn, (x, y), None, plan, no_logits, keep_logits=False, **kw)
    other_plan = teacher_store(tmp_path / "op", fn, (x, y), SubsetPlan(len(y), 4, keep=0.5, seed=9), **kw)
    xo, yo = signals(n=41)
    other_examples = teacher_store(tmp_path / "oe", fn, (xo, yo), SubsetPlan(41, 4, keep=0.5, seed=0), **kw)
    five = create_store(tmp_path / "five", (x, y), n_classes=5)
    store = create_store(tmp_path / "s", (x, y), n_classes=3)
    before = _files(store.path)
    logits = np.zeros((40, 3), dtype=np.float32)
    cases = [
        (lambda: Distillation(teacher), "teacher: .* has no run run-000003"),
        (lambda: Distillation(other_plan), "teacher: run run-000000 .* another subset"),
        (lambda: Distillation(no_logits), "teacher: run run-000000 .* without logits"),
        (lambda: Distillation(other_examples), "teacher: .* holds 41 training examples"),
        (lambda: Distillation(five), "teacher: .* has 5 classes"),
        (lambda: Distillation(np.full((40, 3), np.nan)), "teacher: the logits hold NaN or inf"),
        # finite in float64, inf in the float32 the students train in
        (lambda: Distillation(np.full((40, 3), 1e39)), "teacher: expected logits within float32's range"),
        (
            lambda: Distillation(torch.full((40, 3), -1e300, dtype=torch.float64)),
            r"got 120 beyond it; first at example 0",
        ),
        (lambda: Distillation(np.zeros((40, 4))), r"teacher: expected logits of shape \(40, 3\)"),
        (lambda: Distillation(np.zeros(40)), r"teacher: expected \(n_train, C\) real logits"),
        (lambda: Distillation(logits, alpha=1.5), "alpha"),
        (lambda: Distillation(logits, alpha=-0.1), "alpha"),
        (lambda: Distillation(logits, temperature=0.0), "temperature"),
        (lambda: Distillation(logits, temperature=float("inf")), "temperature"),
        (lambda: Distillation(logits, start_epoch=3), "start_epoch"),
        (lambda: Distillation(logits, start_epoch=-1), "start_epoch"),
    ]
    for make, match in cases:
        with pytest.raises((ValueError, memscore_errors()), match=match):
            train_runs(fn, (x, y), None, plan, store, distill=make(), **kw)
    with pytest.raises(TypeError, match="teacher: expected a memscore.RunStore"):
        Distillation("teacher.npy")
    with pytest.raises(TypeError, match="distill: expected a memscore.train.Distillation"):
        train_runs(fn, (x, y), None, plan, store, distill={"alpha": 0.5}, **kw)
    assert _files(store.path) == before and store.refresh() == []


def memscore_errors():
    from memscore.errors import StoreError

    return StoreError


def test_cli_train_with_a_teacher(tmp_path):
    typer_testing = pytest.importorskip("typer.testing")
    from memscore.cli import app

    runner = typer_testing.CliRunner()
    common = ["--dataset", "digits", "--runs", "2", "--epochs", "2", "--width", "16", "--keep-logits"]
    res = runner.invoke(app, ["train", str(tmp_path / "t"), *common])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, [
        "train", str(tmp_path / "s"), *common, "--teacher", str(tmp_path / "t"), "--distill-alpha", "0.8",
        "--distill-temperature", "2", "--distill-start-epoch", "1",
    ])  # fmt: skip
    assert res.exit_code == 0, res.output
    s = RunStore.open(tmp_path / "s")
    meta = s.run_metadata(s.run_ids()[0])["distill"]
    assert meta["alpha"] == 0.8 and meta["temperature"] == 2.0 and meta["start_epoch"] == 1
    assert meta["teacher"]["store"] == str((tmp_path / "t").resolve())
    for args, words in (
        (["--teacher", str(tmp_path / "nope")], "--teacher"),
        (["--teacher", str(tmp_path / "t"), "--distill-alpha", "2"], "alpha"),
        (["--teacher", str(tmp_path / "t"), "--distill-start-epoch", "3"], "start_epoch"),
    ):
        res = runner.invoke(app, ["train", str(tmp_path / "b"), *common, *args])
        assert res.exit_code != 0 and words in str(res.exception), (res.output, res.exception)
        assert not (tmp_path / "b").exists()


def test_distillation_effect_on_really_distilled_runs(tmp_path):
    """The analysis side on students trained by the driver: the teacher comes from the runs'
    metadata, pairs by run id, and the report section is drawn."""
    import memscore
    from memscore.datasets import digits

    d = digits(label_noise=0.1, seed=0)
    train, test = (d.x_train, d.y_train), (d.x_test, d.y_test)
    plan = SubsetPlan(d.n_train, 6, keep=0.5, seed=0)
    kw = dict(epochs=3, batch_size=64, lr=0.05, seed=0, progress=False)
    stores = {}
    for name, width in (("teacher", 64), ("plain", 16)):
        stores[name] = create_store(tmp_path / name, train, test, n_classes=10)
        train_runs(lambda w=width: mlp(d.n_features, 10, width=w), train, test, plan, stores[name], **kw)
    dist = create_store(tmp_path / "dist", train, test, n_classes=10)
    train_runs(lambda: mlp(d.n_features, 10, width=16), train, test, plan, dist,
               distill=Distillation(stores["teacher"], alpha=0.8, temperature=4.0), **kw)  # fmt: skip
    effect = memscore.distillation_effect(stores["plain"], dist)  # the teacher from the runs' metadata
    t = effect.table
    assert t.height == d.n_train and {"teacher_conf", "deviation", "delta"} <= set(t.columns)
    np.testing.assert_allclose(t["deviation"].to_numpy(), t["student_conf"].to_numpy() - t["teacher_conf"].to_numpy())
    assert set(effect.arms["arm"].to_list()) >= {"plain", "distilled"}
    assert effect.confidence.height > 0 and np.isfinite(t["mem_distilled"].to_numpy()).any()
