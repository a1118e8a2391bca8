"""Store scoring over Ray tasks by run range is identical, bit for bit, to the local scan:
memorization, hold-out accuracy (grouped by subset ratio) and the scores table, for bool
and float outcomes, with snapshots; top-k influence over test ranges equals the local
top-k."""

import numpy as np
import pytest

pytest.importorskip("ray")

from memscore import RunStore  # noqa: E402
from memscore.cluster import ClusterError, RayExecutor  # noqa: E402

N, T, C, R = 40, 21, 3, 27


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    rng = np.random.default_rng(5)
    s = RunStore.create(
        tmp_path_factory.mktemp("score") / "s",
        n_train=N,
        n_test=T,
        train_labels=rng.integers(0, C, N),
        test_labels=rng.integers(0, C, T),
        n_classes=C,
    )
    for r in range(R):
        snaps = {
            "epochs": [1, 3],
            "train_correct": rng.random((2, N)) < 0.6,
            "train_loss": rng.random((2, N)) * 3,
            "train_el2n": rng.random((2, N)),
        }
        s.add_run(
            rng.random(N) < 0.5,
            train_logits=rng.normal(size=(N, C)) * 3,
            test_logits=rng.normal(size=(T, C)),
            subset_ratio=[0.3, 0.6, None][r % 3],
            run_id=f"run-{r:03d}",
            snapshots=snaps,
        )
    return s


def _identical(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


@pytest.mark.parametrize("kind", ["correct", "phi"])
def test_identical_to_local(ray_cluster, store, kind):
    ex = RayExecutor(runs_per_task=8)  # 4 tasks of 2 chunks each, the last one short
    m, se = store.memorization(kind, stderr=True, chunk_runs=4)
    rm, rse = store.memorization(kind, stderr=True, chunk_runs=4, executor=ex)
    _identical(rm, m)
    _identical(rse, se)
    _identical(store.holdout_accuracy(kind, 4, executor=ex), store.holdout_accuracy(kind, 4))
    local = store.scores(kind, chunk_runs=4)
    assert store.scores(kind, chunk_runs=4, executor=ex).equals(local)
    assert local["phi_mean_in"].is_not_null().all() and local["el2n"].is_not_nan().any()


@pytest.mark.parametrize("kind", ["correct", "phi"])
@pytest.mark.parametrize("same_class", [False, True])
def test_influence_topk_identical(ray_cluster, store, kind, same_class):
    from memscore.runs.store.ray_scoring import influence_topk

    want = store.influence(kind, top_k=5, same_class=same_class)
    # 8 test examples per task: 3 tasks, the last one 5 wide (packed bits sliced on bytes)
    got = influence_topk(store, kind, top_k=5, same_class=same_class, executor=RayExecutor(), tests_per_task=8)
    _identical(got[0], want[0])
    _identical(got[1], want[1])
    pairs = store.influence_pairs(4, kind=kind, executor=RayExecutor())
    assert pairs.equals(store.influence_pairs(4, kind=kind))
    with pytest.raises(ValueError, match="top_k"):
        store.influence(kind, executor=RayExecutor())


def test_store_workers_cannot_see(ray_cluster, tmp_path):
    s = RunStore.create(tmp_path / "s", n_train=3, n_test=0)
    s.add_run(np.array([1, 0, 1]), train_correct=np.array([1, 1, 0]))
    (tmp_path / "s" / "runs").rename(tmp_path / "moved")
    with pytest.raises(ClusterError, match="not a directory"):
        s.memorization(executor=RayExecutor())
