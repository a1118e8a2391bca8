"""Point-removal curves: the removal order, SubsetPlan.from_masks, the curve trained by the
driver (against training each point on its own), and the report's plot."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from numpy.testing import assert_allclose

from memscore import RunStore, StoreError
from memscore.runs.removal import REMOVAL_FILE, removal_curve, removal_order, write_removal_curve
from memscore.train import SubsetPlan


def test_removal_order():
    v = np.array([0.5, np.nan, 2.0, 0.5, -1.0])
    assert removal_order(v, "highest").tolist() == [2, 0, 3, 4, 1]  # ties by index, NaN last
    assert removal_order(v, "lowest").tolist() == [4, 0, 3, 2, 1]
    r = removal_order(v, "random", seed=3)
    assert sorted(r.tolist()) == list(range(5)) and np.array_equal(r, removal_order(v, "random", seed=3))
    assert removal_order(np.array([3, 1, 2]), "lowest").tolist() == [1, 2, 0]  # integer values
    with pytest.raises(ValueError, match="order"):
        removal_order(v, "middle")
    with pytest.raises(TypeError, match="real number"):
        removal_order(np.array([True, False]), "highest")
    with pytest.raises(ValueError, match="1-D"):
        removal_order(np.zeros((2, 2)), "highest")


def test_plan_from_masks():
    m = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 1]], dtype=bool)
    plan = SubsetPlan.from_masks(m, seed=4)
    assert np.array_equal(plan.masks, m) and plan.n_runs == 3 and plan.n_examples == 4
    assert_allclose(plan.subset_ratios, [0.5, 1.0, 0.25])
    assert plan.multiplicities is None and plan.epoch_size(1) == 4 and plan.as_dict()["seed"] == 4
    with pytest.raises(ValueError):
        plan.masks[0, 0] = False  # read-only
    with pytest.raises(ValueError, match="empty subsets"):
        SubsetPlan.from_masks([[1, 0], [0, 0]])
    with pytest.raises(ValueError, match="at least one run"):
        SubsetPlan.from_masks(np.zeros((0, 3), dtype=bool))


torch = pytest.importorskip("torch")

from memscore.datasets import modular_arithmetic  # noqa: E402
from memscore.train import create_store, mlp, train_runs  # noqa: E402

KW = dict(epochs=2, batch_size=8, lr=0.05, progress=False)


def _task():
    d = modular_arithmetic(p=7, train_fraction=0.6, corrupt=0.1, seed=0)
    return d, (d.x_train, d.y_train), (d.x_test, d.y_test), (lambda: mlp(d.n_features, d.n_classes, width=8))


def test_removal_curve_points_are_runs_on_the_rest(tmp_path):
    d, train, test, fn = _task()
    v = np.random.default_rng(0).normal(size=d.n_train)
    curve = removal_curve(
        {"a": v, "b": -v}, fn, train, test, fractions=[0.0, 0.2, 0.5], orders=["highest", "lowest"], runs=2,
        store_path=tmp_path / "curve", seed=1, ensemble=4, **KW,
    )  # fmt: skip
    assert curve.columns == ["valuation", "order", "fraction", "removed", "runs", "test_accuracy", "test_accuracy_std"]
    assert curve.height == 2 * 2 * 3
    n = d.n_train
    assert curve.filter(pl.col("fraction") == 0.5)["removed"].to_list() == [round(0.5 * n)] * 4
    # "a" highest first removes what "b" lowest first removes: the same subsets, the same runs
    a_hi = curve.filter((pl.col("valuation") == "a") & (pl.col("order") == "highest"))
    b_lo = curve.filter((pl.col("valuation") == "b") & (pl.col("order") == "lowest"))
    assert_allclose(a_hi["test_accuracy"].to_numpy(), b_lo["test_accuracy"].to_numpy())
    # 3 distinct subsets per direction, x = 0 shared: 5 subsets x 2 runs were trained
    assert len(RunStore.open(tmp_path / "curve")) == 5 * 2
    # the point (a, highest, 0.2) is the mean test accuracy of 2 runs trained on the rest
    keep = np.ones(n, dtype=bool)
    keep[np.argsort(-v, kind="stable")[: round(0.2 * n)]] = False
    curve_store = RunStore.open(tmp_path / "curve")
    rows = [i for i, rid in enumerate(curve_store.run_ids()) if np.array_equal(curve_store.mask(rid), keep)]
    assert len(rows) == 2
    acc = curve_store.outcomes("test", "correct")[rows].mean()
    assert_allclose(a_hi.filter(pl.col("fraction") == 0.2)["test_accuracy"].item(), acc)
    # resuming the same curve trains nothing new and gives the same table
    again = removal_curve(
        {"a": v, "b": -v}, fn, train, test, fractions=[0.0, 0.2, 0.5], orders=["highest", "lowest"], runs=2,
        store_path=tmp_path / "curve", seed=1, ensemble=4, **KW,
    )  # fmt: skip
    assert again.equals(curve)
    # a different curve in the same store is refused
    with pytest.raises(StoreError, match="another removal curve"):
        removal_curve(v, fn, train, test, fractions=[0.3], runs=2, store_path=tmp_path / "curve", seed=1, **KW)


def test_removal_curve_bad_input(tmp_path):
    d, train, test, fn = _task()
    v = np.zeros(d.n_train)
    with pytest.raises(ValueError, match="test set"):
        removal_curve(v, fn, train, None, **KW)
    with pytest.raises(ValueError, match="shape"):
        removal_curve(v[:-1], fn, train, test, **KW)
    with pytest.raises(ValueError, match="fractions"):
        removal_curve(v, fn, train, test, fractions=[1.0], **KW)
    with pytest.raises(ValueError, match="orders"):
        removal_curve(v, fn, train, test, orders=["best"], **KW)
    with pytest.raises(ValueError, match="runs"):
        removal_curve(v, fn, train, test, runs=0, **KW)
    with pytest.raises(TypeError, match="DataFrame"):
        write_removal_curve({"a": 1}, tmp_path)
    with pytest.raises(ValueError, match="missing"):
        write_removal_curve(pl.DataFrame({"fraction": [0.0]}), tmp_path)


def test_report_plots_a_removal_curve(tmp_path):
    pytest.importorskip("matplotlib")
    from memscore.runs.report import write_report

    d, train, test, fn = _task()
    plan = SubsetPlan(d.n_train, 4, seed=0)
    store = create_store(tmp_path / "s", train, test)
    train_runs(fn, train, test, plan, store, **KW)
    curve = removal_curve(
        store.memorization(), fn, train, test, fractions=[0.0, 0.1], orders=["highest", "random"], runs=1, **KW
    )
    assert np.isnan(curve["test_accuracy_std"].to_numpy()).all()  # one run per point
    assert write_removal_curve(curve, store) == store.path / REMOVAL_FILE
    page = write_report(store.path, tmp_path / "report")
    assert "Point-removal curves" in page.read_text() and (tmp_path / "report" / "removal.png").is_file()
