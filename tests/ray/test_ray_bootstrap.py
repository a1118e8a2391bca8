"""Bootstrap plans (Data-OOB) on Ray: the same runs and draw counts as the single-process path."""

import functools

import numpy as np
import pytest

pytest.importorskip("ray")
pytest.importorskip("torch")

from memscore.cluster import RayExecutor  # noqa: E402
from memscore.runs.train.ray_runs import DatasetSplit  # noqa: E402
from memscore.train import SubsetPlan, create_store, mlp, train_runs  # noqa: E402

TRAIN = DatasetSplit("modular", "train", p=5, seed=0)
TEST = DatasetSplit("modular", "test", p=5, seed=0)
MODEL = functools.partial(mlp, 10, 5, width=8)
KW = dict(epochs=2, batch_size=4, lr=0.1, progress=False, keep_logits=True, seed=3)


@pytest.mark.parametrize("storage", ["shared", "object"])
def test_bootstrap_plan_on_ray_equals_single_process(ray_cluster, tmp_path, storage):
    plan = SubsetPlan(TRAIN()[0].shape[0], 4, bootstrap=True, seed=1)
    local = create_store(tmp_path / "local", TRAIN(), TEST())
    train_runs(MODEL, TRAIN(), TEST(), plan, local, **KW)
    store = create_store(tmp_path / "s", TRAIN(), TEST())
    assert train_runs(MODEL, TRAIN, TEST, plan, store, executor=RayExecutor(runs_per_task=2, storage=storage), **KW)
    assert store.verify() == [] and np.array_equal(store.multiplicities(), plan.multiplicities)
    np.testing.assert_allclose(store.outcomes("train", "logits"), local.outcomes("train", "logits"), atol=1e-4)
    np.testing.assert_allclose(store.data_oob(), local.data_oob(), atol=1e-12)
