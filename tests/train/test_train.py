"""The training driver: plans, the vmapped ensemble against the plain loop, resuming,
snapshots, and bad input caught before training."""

from __future__ import annotations

import numpy as np
import pytest

import memscore
from memscore.datasets import digits, modular_arithmetic
from memscore.train import SubsetPlan

torch = pytest.importorskip("torch")

from memscore.reference.train import train_sequential  # noqa: E402
from memscore.train import create_store, mlp, train_runs  # noqa: E402

# ----------------------------------------------------------------------------- plans


@pytest.mark.parametrize("keep", [0.3, 0.5, 0.8])
@pytest.mark.parametrize("runs", [2, 7, 64])
def test_balanced_plan_every_example_in_round_keep_r_runs(keep, runs):
    if round(keep * runs) in (0, runs):
        with pytest.raises(ValueError, match="no (in|out)-runs"):
            SubsetPlan(50, runs, keep=keep)
        return
    plan = SubsetPlan(50, runs, keep=keep, seed=3)
    assert plan.masks.shape == (runs, 50)
    assert (plan.masks.sum(0) == round(keep * runs)).all()
    assert plan.masks.any(1).all()
    sizes = plan.masks.sum(1)
    assert sizes.max() - sizes.min() <= 1  # subsets as equal as possible
    assert plan.run_ids[0] == "run-000000" and len(plan) == runs


def test_plan_is_seeded_and_read_only():
    a, b, c = SubsetPlan(40, 8, seed=1), SubsetPlan(40, 8, seed=1), SubsetPlan(40, 8, seed=2)
    assert np.array_equal(a.masks, b.masks) and not np.array_equal(a.masks, c.masks)
    with pytest.raises(ValueError):
        a.masks[0, 0] = True


def test_unbalanced_plan_has_fixed_size_subsets():
    plan = SubsetPlan(101, 9, keep=0.3, balanced=False, seed=0)
    assert (plan.masks.sum(1) == round(0.3 * 101)).all()


def test_plan_with_several_ratios():
    plan = SubsetPlan(60, 12, ratios=[0.25, 0.5, 0.75], seed=0)
    assert plan.subset_ratios.tolist() == [0.25, 0.5, 0.75] * 4
    for g, ratio in enumerate([0.25, 0.5, 0.75]):
        rows = plan.masks[g::3]
        assert (rows.sum(0) == round(ratio * 4)).all()


@pytest.mark.parametrize(
    "kwargs, err",
    [
        (dict(n_examples=0, n_runs=4), ValueError),
        (dict(n_examples=10, n_runs=0), ValueError),
        (dict(n_examples=10, n_runs=4, keep=1.0), ValueError),
        (dict(n_examples=10, n_runs=4, keep=0.0), ValueError),
        (dict(n_examples=10, n_runs=4, keep="half"), TypeError),
        (dict(n_examples=10, n_runs=4, ratios=[]), ValueError),
        (dict(n_examples=10, n_runs=2, ratios=[0.2, 0.5, 0.7]), ValueError),
        (dict(n_examples=3, n_runs=4, keep=0.1, balanced=False), ValueError),  # empty subsets
    ],
)
def test_plan_bad_input(kwargs, err):
    with pytest.raises(err):
        SubsetPlan(**kwargs)


# ----------------------------------------------------------------------------- datasets


def test_modular_arithmetic_labels_and_corruption():
    d = modular_arithmetic(p=13, op="add", train_fraction=0.5, corrupt=0.2, seed=4)
    assert d.x_train.shape == (round(0.5 * 169), 26) and d.n_train + d.n_test == 169
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64
    a, b = d.x_train[:, :13].argmax(1), d.x_train[:, 13:].argmax(1)
    assert np.array_equal(d.clean_train, (a + b) % 13)
    at, bt = d.x_test[:, :13].argmax(1), d.x_test[:, 13:].argmax(1)
    assert np.array_equal(d.y_test, (at + bt) % 13)
    assert d.corrupted.sum() == round(0.2 * d.n_train)
    assert np.array_equal(d.corrupted, d.y_train != d.clean_train)
    # every pair appears once, in train or test
    pairs = {(int(x), int(y)) for x, y in zip(np.r_[a, at], np.r_[b, bt], strict=True)}
    assert len(pairs) == 169
    assert modular_arithmetic(p=5, op="mul", corrupt=0.0).corrupted.sum() == 0
    with pytest.raises(ValueError):
        modular_arithmetic(p=1)
    with pytest.raises(ValueError):
        modular_arithmetic(op="div")
    with pytest.raises(ValueError):
        modular_arithmetic(train_fraction=1.0)


def test_digits_noise_and_split():
    pytest.importorskip("sklearn")
    d = digits(label_noise=0.1, seed=0)
    assert d.n_train + d.n_test == 1797 and d.n_features == 64 and d.n_classes == 10
    assert 0.0 <= d.x_train.min() and d.x_train.max() <= 1.0
    assert d.corrupted.sum() == round(0.1 * d.n_train)
    assert np.array_equal(d.corrupted, d.y_train != d.clean_train)
    # stratified: every digit is in the test split
    assert set(np.unique(d.y_test)) == set(range(10))


# ----------------------------------------------------------------------------- the driver


def small_task(seed: int = 0):
    d = modular_arithmetic(p=11, train_fraction=0.6, corrupt=0.1, seed=seed)
    return d, (d.x_train, d.y_train), (d.x_test, d.y_test)


def model_fn_for(d, width=16, activation="relu"):
    return lambda: mlp(d.n_features, d.n_classes, width=width, activation=activation)


@pytest.mark.parametrize(
    "optimizer, lr, wd",
    [("sgd", 0.05, 0.0), ("sgd", 0.05, 0.01), ("adam", 1e-2, 0.01), ("adamw", 1e-2, 0.5)],
)
def test_ensemble_equals_one_model_at_a_time(tmp_path, optimizer, lr, wd):
    d, train, test = small_task()
    plan = SubsetPlan(d.n_train, 5, keep=0.5, seed=1)
    fn = model_fn_for(d)
    kw = dict(epochs=3, batch_size=10, lr=lr, optimizer=optimizer, weight_decay=wd, seed=7)
    store = create_store(tmp_path / "s", train, test)
    ids = train_runs(fn, train, test, plan, store, ensemble=3, keep_logits=True, progress=False, **kw)
    assert ids == plan.run_ids
    ref = train_sequential(fn, train, test, plan, **kw)
    z_tr, z_te = store.outcomes("train", "logits"), store.outcomes("test", "logits")
    for r in range(5):
        np.testing.assert_allclose(z_tr[r], ref[r][0], atol=2e-5, rtol=1e-4)
        np.testing.assert_allclose(z_te[r], ref[r][1], atol=2e-5, rtol=1e-4)


def test_runs_are_grouped_by_steps_per_epoch():
    from types import SimpleNamespace

    from memscore.train.tasks import group_runs, most_alike

    sizes = [30, 31, 29, 40, 41, 30, 50]
    masks = np.array([[True] * s + [False] * (60 - s) for s in sizes])
    plan = SimpleNamespace(masks=masks, epoch_size=lambda r: int(masks[r].sum()))
    groups = group_runs(list(range(7)), plan, 10, 2)
    assert sorted(r for g in groups for r in g) == list(range(7))
    assert all(len(g) <= 2 and len({-(-sizes[r] // 10) for r in g}) == 1 for g in groups)
    assert groups == [[0, 2], [5], [1, 3], [4, 6]]
    # the largest groups with no size limit: by steps (runs 0, 2 and 5 take 3 steps), and by
    # subset size (runs 0 and 5 hold 30 examples)
    assert most_alike(list(range(7)), plan, 10) == (7, 3, 2)
    assert most_alike([3, 4, 6], plan, 10) == (3, 2, 1) and most_alike([], plan, 10) == (0, 0, 0)


def test_resume_after_interruption_reaches_the_same_store(tmp_path):
    d, train, test = small_task()
    plan = SubsetPlan(d.n_train, 6, keep=0.5, seed=2)
    fn = model_fn_for(d)
    kw = dict(epochs=2, batch_size=8, lr=0.05, seed=3, keep_logits=True, progress=False, snapshot_epochs=(1, 2))
    full = create_store(tmp_path / "full", train, test)
    train_runs(fn, train, test, plan, full, ensemble=4, **kw)
    part = create_store(tmp_path / "part", train, test)
    first = train_runs(fn, train, test, plan, part, ensemble=4, max_runs=3, **kw)  # "interrupted"
    assert first == plan.run_ids[:3] and len(part) == 3
    rest = train_runs(
        fn,
        train,
        test,
        memscore.train.SubsetPlan(d.n_train, 6, keep=0.5, seed=2),
        memscore.RunStore.open(tmp_path / "part"),
        ensemble=4,
        **kw,
    )
    assert rest == plan.run_ids[3:]
    assert train_runs(fn, train, test, plan, part, ensemble=4, **kw) == []  # nothing left
    assert part.run_ids() == full.run_ids()
    np.testing.assert_array_equal(part.masks(), full.masks())
    np.testing.assert_allclose(part.outcomes("train", "logits"), full.outcomes("train", "logits"), atol=2e-5)
    np.testing.assert_allclose(part.snapshots("train", "loss")[1], full.snapshots("train", "loss")[1], atol=1e-5)
    assert part.verify() == []


def test_store_scores_equal_the_array_functions(tmp_path):
    d, train, test = small_task(seed=1)
    plan = SubsetPlan(d.n_train, 8, keep=0.5, seed=0)
    store = create_store(tmp_path / "s", train, test)
    train_runs(model_fn_for(d), train, test, plan, store, epochs=3, batch_size=8, lr=0.05, ensemble=8,
               snapshot_epochs=(0, 1, 3), keep_logits=True, progress=False)  # fmt: skip
    masks, correct = store.masks(), store.outcomes("train", "correct")
    np.testing.assert_array_equal(masks, plan.masks)
    logits = store.outcomes("train", "logits")
    np.testing.assert_array_equal(correct, logits.argmax(2) == d.y_train)
    np.testing.assert_allclose(store.memorization(), memscore.memorization(masks, correct), equal_nan=True)
    np.testing.assert_allclose(store.holdout_accuracy(), memscore.holdout_accuracy(masks, correct), equal_nan=True)
    infl = store.influence()
    np.testing.assert_allclose(infl, memscore.influence(masks, store.outcomes("test", "correct")), equal_nan=True)
    # the last snapshot is the final model: its outcomes are the numpy ones of the final logits
    epochs, el2n = store.snapshots("train", "el2n")
    assert epochs.tolist() == [0, 1, 3]
    ref = memscore.snapshot_outcomes(logits, d.y_train)
    np.testing.assert_allclose(el2n[:, -1], ref["el2n"], atol=1e-5)
    np.testing.assert_allclose(store.snapshots("train", "loss")[1][:, -1], ref["loss"], atol=1e-4)
    np.testing.assert_array_equal(store.snapshots("train", "correct")[1][:, -1], correct)
    # snapshot scores: in-run means computed by hand
    c = store.snapshots("train", "correct")[1]
    forget = (c[:, :-1] & ~c[:, 1:]).sum(1)
    with np.errstate(invalid="ignore"):
        want_forget = (forget * masks).sum(0) / masks.sum(0)
        want_speed = (c.mean(1) * masks).sum(0) / masks.sum(0)
        want_never = ((~c.any(1)) & masks).sum(0) / masks.sum(0)
        want_el2n = np.where(masks, el2n[:, 0], 0).sum(0) / masks.sum(0)
    df = store.scores()
    np.testing.assert_allclose(df["forgetting_events"].to_numpy(), want_forget, equal_nan=True)
    np.testing.assert_allclose(df["learning_speed"].to_numpy(), want_speed, equal_nan=True)
    np.testing.assert_allclose(df["never_learned"].to_numpy(), want_never, equal_nan=True)
    np.testing.assert_allclose(df["el2n"].to_numpy(), want_el2n, equal_nan=True)
    assert np.isnan(df["grand"].to_numpy()).all()
    pred = store.outcomes("test", "pred")
    np.testing.assert_array_equal(pred, store.outcomes("test", "logits").argmax(2))


def test_grand_is_the_per_example_gradient_norm(tmp_path):
    d, train, test = small_task(seed=2)
    plan = SubsetPlan(d.n_train, 2, keep=0.5, seed=0)
    fn = model_fn_for(d, width=8)
    store = create_store(tmp_path / "s", train, test)
    train_runs(fn, train, test, plan, store, epochs=1, batch_size=8, lr=0.05, ensemble=2,
               snapshot_epochs=(0,), grand=True, progress=False)  # fmt: skip
    _, grand = store.snapshots("train", "grand")
    # epoch 0 = the initial model of run r, rebuilt by hand
    from memscore.train.models import init_model

    for r in range(2):
        model = init_model(fn, 0, r)
        x, y = torch.from_numpy(d.x_train), torch.from_numpy(d.y_train)
        for i in (0, 5, d.n_train - 1):
            model.zero_grad()
            torch.nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
            norm = torch.sqrt(sum((p.grad**2).sum() for p in model.parameters())).item()
            assert grand[r, 0, i] == pytest.approx(norm, rel=1e-4)


def test_torch_dataset_input(tmp_path):
    d, train, test = small_task()
    ds = torch.utils.data.TensorDataset(torch.from_numpy(d.x_train), torch.from_numpy(d.y_train))
    plan = SubsetPlan(d.n_train, 2, keep=0.5, seed=0)
    a = create_store(tmp_path / "a", train)
    b = create_store(tmp_path / "b", train)
    kw = dict(epochs=1, batch_size=8, lr=0.05, ensemble=2, progress=False)
    train_runs(model_fn_for(d), ds, None, plan, a, **kw)
    train_runs(model_fn_for(d), train, None, plan, b, **kw)
    np.testing.assert_array_equal(a.outcomes("train", "phi"), b.outcomes("train", "phi"))


# ----------------------------------------------------------------------------- bad input


def test_bad_input_is_caught_before_training(tmp_path):
    d, train, test = small_task()
    plan = SubsetPlan(d.n_train, 4, keep=0.5, seed=0)
    store = create_store(tmp_path / "s", train, test)
    kw = dict(epochs=1, batch_size=8, lr=0.05, progress=False)
    wrong_classes = lambda: mlp(d.n_features, d.n_classes + 1, width=8)  # noqa: E731
    with pytest.raises(ValueError, match=r"\(8, 11\) logits"):  # checked on a full batch
        train_runs(wrong_classes, train, test, plan, store, **kw)
    with pytest.raises(ValueError, match="labels below n_classes = 5"):
        create_store(tmp_path / "o", train, test, n_classes=5)  # labels out of range
    with pytest.raises(ValueError, match="train: expected integer class labels, got [0-9.]+5 at index 0"):
        train_runs(model_fn_for(d), (d.x_train, d.y_train + 0.5), test, plan, store, **kw)
    other_task = modular_arithmetic(p=11, train_fraction=0.6, seed=5)
    with pytest.raises(memscore.StoreError, match="other examples"):
        train_runs(model_fn_for(d), (other_task.x_train, other_task.y_train), test, plan, store, **kw)
    with pytest.raises(memscore.StoreError, match="created for"):
        train_runs(model_fn_for(d), train, test, SubsetPlan(d.n_train - 1, 4), store, **kw)

    class Branchy(torch.nn.Module):  # data-dependent control flow: vmap cannot run it
        def forward(self, x):
            return x if float(x.sum()) > 0 else -x

    def unvmappable():
        return torch.nn.Sequential(torch.nn.Linear(d.n_features, d.n_classes), Branchy())

    with pytest.raises(ValueError, match="module '1' Branchy cannot run in a vmapped ensemble"):
        train_runs(unvmappable, train, test, plan, store, strategy="vmap", **kw)
    with pytest.raises(ValueError, match="augment: expected a batch of the input's shape"):
        train_runs(model_fn_for(d), train, test, plan, store, augment=lambda x, g: x[:, :-1], **kw)
    with pytest.raises(ValueError, match="augment: expected one of"):
        train_runs(model_fn_for(d), train, test, plan, store, augment="mixup", **kw)
    with pytest.raises(ValueError, match="schedule"):
        train_runs(model_fn_for(d), train, test, plan, store, schedule="exponential", **kw)
    with pytest.raises(ValueError, match="strategy: expected one of \\['auto', 'vmap', 'loop'\\], got 'grouped'"):
        train_runs(model_fn_for(d), train, test, plan, store, strategy="grouped", **kw)
    with pytest.raises(ValueError, match="memory: expected a size"):
        train_runs(model_fn_for(d), train, test, plan, store, memory="lots", **kw)
    with pytest.raises(ValueError, match="precision"):
        train_runs(model_fn_for(d), train, test, plan, store, precision="int8", **kw)
    with pytest.raises(ValueError, match="nesterov"):
        train_runs(model_fn_for(d), train, test, plan, store, nesterov=True, **{**kw, "optimizer": "adam"})
    with pytest.raises(ValueError, match="normalize"):
        train_runs(model_fn_for(d), train, test, plan, store, normalize=([0.5, 0.5], [1.0, 1.0]), **kw)
    with pytest.raises(ValueError, match="snapshot_epochs"):
        train_runs(model_fn_for(d), train, test, plan, store, snapshot_epochs=(2,), **kw)
    with pytest.raises(ValueError, match="optimizer"):
        train_runs(model_fn_for(d), train, test, plan, store, **{**kw, "optimizer": "lion"})
    with pytest.raises(ValueError, match="NaN"):
        x = d.x_train.copy()
        x[0, 0] = np.nan
        train_runs(model_fn_for(d), (x, d.y_train), test, plan, store, **kw)
    with pytest.raises(TypeError, match="SubsetPlan"):
        train_runs(model_fn_for(d), train, test, plan.masks, store, **kw)
    assert len(store) == 0  # nothing was trained
    # a store filled by another plan is refused
    train_runs(model_fn_for(d), train, test, plan, store, **{**kw, "max_runs": 1})
    with pytest.raises(memscore.StoreError, match="another plan"):
        train_runs(model_fn_for(d), train, test, SubsetPlan(d.n_train, 4, seed=9), store, **kw)
