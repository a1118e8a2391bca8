"""The training driver checks what it is given before training starts (issue 33, item 4):
input dtypes, labels, model_fn, the store's class bound, the training settings a store
was filled with, a second trainer on one store, and a diverging member."""

from __future__ import annotations

import re

import numpy as np
import pytest

import memscore
import memscore.train
from memscore.datasets import modular_arithmetic
from memscore.runs.store.format import run_rel
from memscore.train import SubsetPlan

torch = pytest.importorskip("torch")

from memscore.train import create_store, mlp, train_runs  # noqa: E402

KW = dict(epochs=1, batch_size=8, lr=0.05, progress=False)


def task():
    d = modular_arithmetic(p=7, train_fraction=0.6, seed=0)
    return d, (d.x_train, d.y_train), (d.x_test, d.y_test)


def model_fn(d, width=8):
    return lambda: mlp(d.n_features, d.n_classes, width=width, activation="relu")


# ----------------------------------------------------------------------------- input dtypes


def test_float64_inputs_are_cast_to_the_model_dtype(tmp_path):
    d, train, test = task()
    plan = SubsetPlan(d.n_train, 2, seed=0)
    a = create_store(tmp_path / "a", train, test)
    b = create_store(tmp_path / "b", train, test)
    train_runs(model_fn(d), train, test, plan, a, **KW)
    # numpy's default float64, for train and test: the same runs as float32 inputs
    x64 = (d.x_train.astype(np.float64), d.y_train), (d.x_test.astype(np.float64), d.y_test)
    train_runs(model_fn(d), *x64, plan, b, **KW)
    np.testing.assert_array_equal(a.outcomes("test", "phi"), b.outcomes("test", "phi"))


@pytest.mark.parametrize("split", ["train", "test"])
def test_float64_inputs_beyond_float32_are_refused(tmp_path, split):
    """Finite in float64 but inf once cast to the float32 model: an error naming the split
    and the largest value, not a model trained on inf."""
    d, train, test = task()
    x = (d.x_train if split == "train" else d.x_test).astype(np.float64)
    x[1, 0] = 1e40
    data = {"train": train, "test": test, split: (x, train[1] if split == "train" else test[1])}
    store = create_store(tmp_path / "s", train, test)
    with pytest.raises(ValueError, match=rf"^{split}: values up to 1e\+40 .* float32"):
        train_runs(model_fn(d), data["train"], data["test"], SubsetPlan(d.n_train, 2, seed=0), store, **KW)
    assert store.run_ids() == []


def test_float32_train_with_float64_test_trains_every_ensemble(tmp_path):
    d, train, _ = task()
    plan = SubsetPlan(d.n_train, 4, seed=0)
    store = create_store(tmp_path / "s", train, (d.x_test, d.y_test))
    test64 = (d.x_test.astype(np.float64), d.y_test)
    assert len(train_runs(model_fn(d), train, test64, plan, store, ensemble=2, **KW)) == 4


def test_float64_model_gets_float64_inputs(tmp_path):
    d, train, test = task()
    store = create_store(tmp_path / "s", train, test)
    plan = SubsetPlan(d.n_train, 2, seed=0)
    assert len(train_runs(lambda: model_fn(d)().double(), train, test, plan, store, **KW)) == 2


def test_uint8_inputs_keep_their_path(tmp_path):
    d, train, test = task()
    x8 = (d.x_train * 255).astype(np.uint8), (d.x_test * 255).astype(np.uint8)
    store = create_store(tmp_path / "s", train, test)
    plan = SubsetPlan(d.n_train, 2, seed=0)
    assert len(train_runs(model_fn(d), (x8[0], d.y_train), (x8[1], d.y_test), plan, store, **KW)) == 2


# ----------------------------------------------------------------------------- labels


@pytest.mark.parametrize("bad", [2.9, np.nan, np.inf])
@pytest.mark.parametrize("split", ["train", "test"])
def test_non_integer_labels_name_split_and_index(tmp_path, bad, split):
    d, train, test = task()
    store = create_store(tmp_path / "s", train, test)
    plan = SubsetPlan(d.n_train, 2, seed=0)
    data = {"train": list(train), "test": list(test)}
    y = data[split][1].astype(np.float64)
    y[3] = bad
    data[split][1] = y
    with pytest.raises(ValueError, match=rf"^{split}: expected integer class labels, got {bad!r} at index 3"):
        train_runs(model_fn(d), tuple(data["train"]), tuple(data["test"]), plan, store, **KW)
    with pytest.raises(ValueError, match=rf"^{split}: .* at index 3"):
        create_store(tmp_path / "o", tuple(data["train"]), tuple(data["test"]))


def test_float_label_of_a_dataset_is_not_truncated(tmp_path):
    d, train, _ = task()
    y = torch.from_numpy(d.y_train).double()
    y[5] = 2.9
    ds = torch.utils.data.TensorDataset(torch.from_numpy(d.x_train), y)
    with pytest.raises(ValueError, match="train: expected integer class labels, got 2.9 at index 5"):
        create_store(tmp_path / "s", ds)


def test_whole_float_labels_are_accepted(tmp_path):
    d, train, test = task()
    store = create_store(tmp_path / "s", train, test)
    plan = SubsetPlan(d.n_train, 2, seed=0)
    yf = (d.x_train, d.y_train.astype(np.float32)), (d.x_test, d.y_test.astype(np.float64))
    assert len(train_runs(model_fn(d), *yf, plan, store, **KW)) == 2
    ds = torch.utils.data.TensorDataset(torch.from_numpy(d.x_train), torch.from_numpy(d.y_train).float())
    assert create_store(tmp_path / "o", ds).n_classes == store.n_classes


# ----------------------------------------------------------------------------- model_fn


@pytest.mark.parametrize("ret", [None, "mlp", lambda x: x])
def test_model_fn_must_return_a_module(tmp_path, ret):
    d, train, test = task()
    store = create_store(tmp_path / "s", train, test)
    plan = SubsetPlan(d.n_train, 2, seed=0)
    with pytest.raises(
        TypeError, match=rf"model_fn: expected it to return a torch.nn.Module, got {type(ret).__name__}"
    ):
        train_runs(lambda: ret, train, test, plan, store, **KW)


def test_test_label_beyond_the_model_classes_is_named(tmp_path):
    d, train, test = task()
    y_test = d.y_test.copy()
    y_test[4] = d.n_classes  # one class more than the model's output: the store counts it
    store = create_store(tmp_path / "s", train, (d.x_test, y_test))
    plan = SubsetPlan(d.n_train, 2, seed=0)
    with pytest.raises(ValueError, match=rf"^test labels: label {d.n_classes} at index 4 is beyond the model's"):
        train_runs(model_fn(d), train, (d.x_test, y_test), plan, store, **KW)


# ----------------------------------------------------------------------------- full batches


def test_batch_size_dependent_model_fails_in_the_checks(tmp_path):
    d, train, test = task()
    store = create_store(tmp_path / "s", train, test)
    plan = SubsetPlan(d.n_train, 2, seed=0)

    class TwoRows(torch.nn.Module):  # works on two examples only
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(d.n_features, d.n_classes)

        def forward(self, x):
            return self.lin(x).view(2, d.n_classes)  # a batch of 2 only

    with pytest.raises(ValueError, match=r"model_fn: the model fails on a batch of train inputs of shape \(8, "):
        train_runs(TwoRows, train, test, plan, store, ensemble=1, **KW)
    assert len(store) == 0

    def two_rows(x, g):  # an augmentation that keeps two examples only
        return x[:2]

    with pytest.raises(ValueError, match=r"augment: expected a batch of the input's shape and dtype \(8, "):
        train_runs(model_fn(d), train, test, plan, store, augment=two_rows, **KW)
    assert len(store) == 0


def test_test_inputs_are_checked_on_a_full_batch(tmp_path):
    d, train, _ = task()
    x_test = np.zeros((len(d.y_test), d.n_features + 1), np.float32)  # another input shape
    store = create_store(tmp_path / "s", train, (x_test, d.y_test))
    plan = SubsetPlan(d.n_train, 2, seed=0)
    with pytest.raises(ValueError, match="test"):
        train_runs(model_fn(d), train, (x_test, d.y_test), plan, store, **KW)
    assert len(store) == 0


# ----------------------------------------------------------------------------- create_store


def test_create_store_bounds_inferred_classes(tmp_path):
    d, _, test = task()
    y = d.y_train.copy()
    y[0] = 10**9
    with pytest.raises(
        ValueError, match=r"train labels: the largest label is 1000000000, .* above 1048576 \(2\*\*20\)"
    ):
        create_store(tmp_path / "s", (d.x_train, y), test)
    assert not (tmp_path / "s").exists()
    assert memscore.train.MAX_INFERRED_CLASSES == 2**20
    store = create_store(tmp_path / "t", (d.x_train, y), n_classes=10**9 + 1)  # explicit: allowed
    assert store.n_classes == 10**9 + 1


# ----------------------------------------------------------------------------- settings


def test_resume_with_other_settings_is_refused_naming_them(tmp_path):
    d, train, test = task()
    store = create_store(tmp_path / "s", train, test)
    plan = SubsetPlan(d.n_train, 4, seed=0)
    train_runs(model_fn(d), train, test, plan, store, max_runs=2, **KW)
    assert (store.path / "train_config.json").is_file()
    other = {**KW, "epochs": 2, "lr": 0.1, "optimizer": "adam"}
    with pytest.raises(ValueError, match="holds runs trained with other settings") as e:
        train_runs(model_fn(d), train, test, plan, store, **other)
    msg = str(e.value)
    assert "epochs: 1 in the store, 2 here" in msg and "lr: 0.05 in the store, 0.1 here" in msg
    assert "optimizer: 'sgd' in the store, 'adam' here" in msg and "new store" in msg
    with pytest.raises(ValueError, match="model: "):
        train_runs(model_fn(d, width=16), train, test, plan, store, **KW)
    with pytest.raises(ValueError, match="augment: 'none' in the store, 'shift' here"):
        train_runs(model_fn(d), train, test, plan, store, augment="shift", **KW)
    assert len(store.refresh()) == 2
    # the same settings resume; an ensemble size or executor does not change a run
    assert train_runs(model_fn(d), train, test, plan, store, ensemble=1, executor="threads:2", **KW) == [
        "run-000002",
        "run-000003",
    ]


def test_store_without_recorded_settings_compares_its_runs_metadata(tmp_path):
    d, train, test = task()
    store = create_store(tmp_path / "s", train, test)
    plan = SubsetPlan(d.n_train, 4, seed=0)
    train_runs(model_fn(d), train, test, plan, store, max_runs=1, **KW)
    (store.path / "train_config.json").unlink()  # a store filled before the file existed
    with pytest.raises(ValueError, match=r"\(the metadata of run run-000000\): epochs: 1 in the store, 3 here"):
        train_runs(model_fn(d), train, test, plan, store, **{**KW, "epochs": 3})


def test_a_refused_call_records_no_settings(tmp_path):
    d, train, test = task()
    store = create_store(tmp_path / "s", train, test)
    plan = SubsetPlan(d.n_train, 2, seed=0)
    with pytest.raises(ValueError, match="augment"):
        train_runs(model_fn(d), train, test, plan, store, augment=lambda x, g: x[:, :-1], **KW)
    assert not (store.path / "train_config.json").exists()
    train_runs(model_fn(d), train, test, plan, store, **{**KW, "epochs": 2})  # any settings: none recorded yet


def test_cli_train_rerun_with_other_settings_is_refused(tmp_path):
    typer_testing = pytest.importorskip("typer.testing")
    from memscore.cli import app

    runner = typer_testing.CliRunner()
    args = ["train", str(tmp_path / "s"), "--runs", "2", "--width", "8", "--snapshot-epochs", "1", "--max-runs", "1"]
    res = runner.invoke(app, [*args, "--epochs", "1"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    for extra in (["--epochs", "2"], ["--epochs", "1", "--lr", "0.5"], ["--epochs", "1", "--optimizer", "adam"]):
        res = runner.invoke(app, [*args, *extra])
        assert res.exit_code != 0 and "other settings" in str(res.exception), (extra, res.output)
    assert len(memscore.RunStore.open(tmp_path / "s")) == 1


# ----------------------------------------------------------------------------- two trainers


def test_runs_stored_meanwhile_by_another_trainer_are_skipped(tmp_path, monkeypatch):
    import memscore.train.driver as driver

    d, train, test = task()
    store = create_store(tmp_path / "s", train, test)
    plan = SubsetPlan(d.n_train, 4, seed=0)
    train_runs(model_fn(d), train, test, plan, store, max_runs=2, **KW)
    before = {rid: (store.path / run_rel(rid)).read_bytes() for rid in store.run_ids()}
    # the view of a trainer that listed the store before the other stored runs 0 and 1
    monkeypatch.setattr(driver, "_unfinished", lambda plan, store: list(range(plan.n_runs)))
    for ensemble in (4, 1):  # runs 0, 1 in an ensemble with unfinished runs, then alone
        train_runs(model_fn(d), train, test, plan, store, ensemble=ensemble, **KW)
    assert store.refresh() == plan.run_ids
    assert all((store.path / run_rel(rid)).read_bytes() == b for rid, b in before.items())  # kept


def test_run_stored_meanwhile_with_another_mask_is_an_error(tmp_path, monkeypatch):
    import memscore.train.driver as driver

    d, train, test = task()
    store = create_store(tmp_path / "s", train, test)
    train_runs(model_fn(d), train, test, SubsetPlan(d.n_train, 4, seed=9), store, max_runs=1, **KW)
    monkeypatch.setattr(driver, "_unfinished", lambda plan, store: list(range(plan.n_runs)))
    for ensemble in (4, 1):
        with pytest.raises(memscore.StoreError, match="run run-000000 exists with a different mask"):
            train_runs(model_fn(d), train, test, SubsetPlan(d.n_train, 4, seed=0), store, ensemble=ensemble, **KW)


_TRAINER = """
import sys
from memscore.datasets import modular_arithmetic
from memscore.train import SubsetPlan, mlp, train_runs
from memscore import RunStore
d = modular_arithmetic(p=7, train_fraction=0.6, seed=0)
plan = SubsetPlan(d.n_train, 12, seed=0)
train_runs(lambda: mlp(d.n_features, d.n_classes, width=8, activation="relu"), (d.x_train, d.y_train),
           (d.x_test, d.y_test), plan, RunStore.open(sys.argv[1]), epochs=2, batch_size=8, lr=0.05,
           ensemble=1, progress=False)
"""


def test_two_trainers_on_one_store_both_finish(tmp_path):
    import os
    import subprocess
    import sys

    d, train, test = task()
    create_store(tmp_path / "s", train, test)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [
        subprocess.Popen([sys.executable, "-c", _TRAINER, str(tmp_path / "s")], env=env, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()[-2000:]
    store = memscore.RunStore.open(tmp_path / "s")
    assert store.run_ids() == SubsetPlan(d.n_train, 12, seed=0).run_ids  # each run once


# ----------------------------------------------------------------------------- divergence


def test_diverging_member_is_named_and_its_groupmates_are_stored(tmp_path):
    d, _, test = task()
    x = d.x_train.copy()
    x[5, 0] = 7.0  # a marked example: the model's training loss is infinite on it

    class Explodes(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(d.n_features, d.n_classes)

        def forward(self, x):
            out = self.lin(x)
            if self.training:
                out = out + torch.where(x[:, :1] > 5, torch.inf, 0.0)
            return out

    store = create_store(tmp_path / "s", (x, d.y_train), test)
    plan = SubsetPlan(d.n_train, 4, seed=0)
    bad = [rid for rid, m in zip(plan.run_ids, plan.masks, strict=True) if m[5]]
    good = [rid for rid in plan.run_ids if rid not in bad]
    assert bad and good
    with pytest.raises(memscore.DivergedError, match=rf"{len(bad)} run\(s\) diverged") as e:
        train_runs(Explodes, (x, d.y_train), test, plan, store, ensemble=4, **{**KW, "epochs": 2})
    for rid in bad:
        assert re.search(rf"{rid} at epoch 1 step \d+", str(e.value)), str(e.value)
    assert store.refresh() == good  # the groupmates were written
    assert np.isfinite(store.outcomes("test", "phi")).all()
