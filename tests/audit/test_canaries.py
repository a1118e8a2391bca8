"""canaries(), SubsetPlan(independent=True), and one audited training run end to end."""

from __future__ import annotations

import numpy as np
import pytest

from memscore import RunStore
from memscore.audit import canaries
from memscore.train.plan import SubsetPlan


def test_independent_plan_is_poisson_sampling():
    plan = SubsetPlan(2000, 3, keep=0.3, independent=True, seed=7)
    # The specification: one uniform per (run, example), below keep.
    want = np.random.default_rng(7).random((3, 2000)) < 0.3
    np.testing.assert_array_equal(plan.masks, want)
    assert plan.independent and not plan.balanced
    assert abs(plan.masks.mean() - 0.3) < 0.02
    assert len(set(plan.masks.sum(axis=1).tolist())) > 1  # sizes vary, unlike balanced plans
    assert plan.as_dict()["independent"] is True and "independent=True" in repr(plan)
    one = SubsetPlan(10, 1, independent=True, seed=0)  # one run is a valid plan
    assert one.masks.shape == (1, 10) and one.masks.any()
    grouped = SubsetPlan(1000, 4, ratios=(0.2, 0.8), independent=True, seed=1)
    assert grouped.masks[0::2].mean() < 0.3 < 0.7 < grouped.masks[1::2].mean()


def test_default_plans_do_not_change():
    plan = SubsetPlan(50, 8, seed=3)
    assert not plan.independent and "independent" not in plan.as_dict()
    assert "independent" not in repr(plan)
    assert (plan.masks.sum(axis=0) == 4).all()  # still balanced
    assert not SubsetPlan.from_masks([[1, 0], [0, 1]]).independent
    assert not SubsetPlan(5, 2, bootstrap=True).independent


def test_independent_plan_errors():
    with pytest.raises(ValueError, match="choose one"):
        SubsetPlan(10, 2, bootstrap=True, independent=True)
    with pytest.raises(TypeError, match="independent"):
        SubsetPlan(10, 2, independent=1)
    with pytest.raises(ValueError, match="empty subsets"):
        SubsetPlan(1, 5, keep=0.01, independent=True, seed=0)


def test_independent_plan_resumes(tmp_path):
    from memscore.errors import StoreError
    from memscore.train.tasks import check_stored_run

    plan = SubsetPlan(20, 2, independent=True, seed=5)
    store = RunStore.create(tmp_path / "s", n_train=20)
    store.add_run(plan.masks[0], run_id=plan.run_ids[0], train_correct=np.ones(20, bool))
    check_stored_run(store, SubsetPlan(20, 2, independent=True, seed=5), 0)  # the same plan again
    with pytest.raises(StoreError, match="different mask"):
        check_stored_run(store, SubsetPlan(20, 2, independent=True, seed=6), 0)


def test_mislabel_canaries():
    y = np.arange(300) % 4
    plan = SubsetPlan(300, 2, independent=True, seed=0)
    c = canaries(plan, 120, labels=y, seed=3)
    assert c.kind == "mislabel" and len(c) == 120 and c.n_examples == 300
    assert (np.diff(c.indices) > 0).all() and c.indices.dtype == np.int64
    np.testing.assert_array_equal(c.original, y[c.indices])
    assert (c.labels[c.indices] != c.original).all() and set(c.labels.tolist()) <= {0, 1, 2, 3}
    rest = np.setdiff1d(np.arange(300), c.indices)
    np.testing.assert_array_equal(c.labels[rest], y[rest])
    shifts = (c.labels[c.indices] - c.original) % 4
    assert set(shifts.tolist()) == {1, 2, 3}  # every other class is drawn
    np.testing.assert_array_equal(c.included, plan.masks[:, c.indices])
    np.testing.assert_array_equal(c.included_in(plan), c.included)
    assert canaries(plan, 120, labels=y, seed=3).indices.tolist() == c.indices.tolist()
    assert c.as_dict()["indices"] == c.indices.tolist()
    assert canaries(300, 300, labels=y).indices.tolist() == list(range(300))  # every example
    assert canaries(10, 2, labels=[0] * 9 + [1]).labels is not None  # two classes suffice


def test_natural_canaries():
    c = canaries(50, 5, kind="natural", seed=1)
    assert c.labels is None and c.original is None and c.included is None and len(c) == 5
    y = np.arange(50) % 3
    c = canaries(50, 5, kind="natural", labels=y, seed=1)
    np.testing.assert_array_equal(c.labels, y)


@pytest.mark.parametrize(
    "args, kw, exc, match",
    [
        ((10, 0), {"kind": "natural"}, ValueError, "m"),
        ((10, 11), {"kind": "natural"}, ValueError, "m"),
        ((10, 2), {}, ValueError, "needs the dataset's labels"),
        ((10, 2), {"labels": [0] * 10}, ValueError, "at least 2 classes"),
        ((10, 2), {"labels": [0, 1] * 4}, ValueError, "labels: expected shape"),
        ((10, 2), {"labels": [0.5] * 10}, TypeError, "labels"),
        ((10, 2), {"labels": [0, 1] * 5, "n_classes": 1}, ValueError, "labels"),
        ((10, 2), {"kind": "poison"}, ValueError, "kind"),
        ((10.0, 2), {}, TypeError, "plan_or_n"),
        ((True, 1), {}, TypeError, "plan_or_n"),
    ],
)
def test_canary_errors(args, kw, exc, match):
    with pytest.raises(exc, match=match):
        canaries(*args, **kw)
    with pytest.raises(ValueError, match="examples"):
        canaries(10, 2, kind="natural").included_in(np.ones((2, 9), bool))


def test_one_audited_run_end_to_end(tmp_path):
    """The driver trains a canaried run like any other; the canaries' φ gives an ε."""
    pytest.importorskip("torch")
    pytest.importorskip("scipy")
    from memscore.audit import one_run_epsilon
    from memscore.datasets import digits
    from memscore.train import create_store, mlp, train_runs

    d = digits(label_noise=0.0, seed=0)
    plan = SubsetPlan(d.n_train, 1, keep=0.5, independent=True, seed=0)
    c = canaries(plan, 200, labels=d.y_train, seed=0)
    store = create_store(tmp_path / "s", (d.x_train, c.labels), n_classes=10)
    train_runs(
        lambda: mlp(d.x_train.shape[1], 10, width=64),
        (d.x_train, c.labels),
        None,
        plan,
        store,
        epochs=40,
        batch_size=64,
        lr=3e-3,
        optimizer="adam",
        progress=False,
    )
    phi = store.outcomes("train", "phi")[0, c.indices]
    np.testing.assert_array_equal(store.masks()[0, c.indices], c.included[0])
    r = one_run_epsilon(phi, c.included[0], k_pos=20, k_neg=20)
    assert r.guesses == 40 and r.correct >= 36 and r.epsilon > 1.0  # 39 of 40 and ε ≈ 2.06 here
