"""Every scan of a run store gives identical results, bit for bit, under every executor:
the one-process scan (LocalExecutor, one task), the same split into tasks of run ranges
(LocalExecutor with runs_per_task, ThreadExecutor(2)) and a local Ray cluster. The runs
carry several subset ratios (grouped hold-out), float outcomes (shifted sums), snapshots,
kept logits and bootstrap multiplicities, so every accumulator and every merge is met."""

import numpy as np
import polars as pl
import pytest

from memscore import RunStore
from memscore.errors import ClusterError, StoreError
from memscore.executors import LocalExecutor, RayExecutor, ThreadExecutor

N, T, C, R = 40, 21, 3, 27
CHUNK = 4  # 27 runs: 7 chunks, the last one short


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
        mask = rng.random(N) < 0.5
        snaps = {
            "epochs": [1, 3],
            "train_correct": rng.random((2, N)) < 0.6,
            "train_loss": rng.random((2, N)) * 3,
            "train_el2n": rng.random((2, N)),
        }
        s.add_run(
            mask,
            train_logits=rng.normal(size=(N, C)) * 3,
            test_logits=rng.normal(size=(T, C)),
            subset_ratio=[0.3, 0.6, None][r % 3],
            run_id=f"run-{r:03d}",
            snapshots=snaps,
            keep_logits=True,
            multiplicity=mask * rng.integers(1, 4, N),
        )
    return s


def _executor(name, request):
    if name == "local":
        return LocalExecutor()
    if name == "local-split":
        return LocalExecutor(runs_per_task=8)  # 4 tasks of 2 chunks, the last one short
    if name == "threads":
        return ThreadExecutor(2)
    request.getfixturevalue("ray_cluster")
    return RayExecutor(runs_per_task=8)


U = np.linspace(0.0, 1.0, R)  # a utility per run given as an array

# Every scan entry point, called with one executor.
SCANS = {
    "memorization-correct": lambda s, ex: s.memorization("correct", stderr=True, chunk_runs=CHUNK, executor=ex),
    "memorization-phi": lambda s, ex: s.memorization("phi", stderr=True, chunk_runs=CHUNK, executor=ex),
    "holdout-correct": lambda s, ex: s.holdout_accuracy("correct", CHUNK, executor=ex),
    "holdout-phi": lambda s, ex: s.holdout_accuracy("phi", CHUNK, executor=ex),
    "scores-correct": lambda s, ex: s.scores("correct", chunk_runs=CHUNK, executor=ex),
    "scores-phi": lambda s, ex: s.scores("phi", chunk_runs=CHUNK, executor=ex),
    "influence-correct": lambda s, ex: s.influence("correct", executor=ex),
    "influence-phi-f64": lambda s, ex: s.influence("phi", dtype=np.float64, executor=ex),
    "influence-same-class": lambda s, ex: s.influence("phi", same_class=True, executor=ex),
    "influence-topk-correct": lambda s, ex: s.influence("correct", top_k=5, executor=ex),
    "influence-topk-phi-same-class": lambda s, ex: s.influence("phi", top_k=5, same_class=True, executor=ex),
    "influence-pairs": lambda s, ex: s.influence_pairs(4, kind="phi", executor=ex),
    "lira-online": lambda s, ex: s.lira(executor=ex),
    "lira-offline-fixed": lambda s, ex: s.lira(online=False, fixed_variance=True, executor=ex),
    "rmia-online": lambda s, ex: s.rmia(executor=ex),
    "rmia-offline": lambda s, ex: s.rmia(online=False, gamma=2.0, executor=ex),
    "run-utility-accuracy": lambda s, ex: s.run_utility("accuracy", chunk_runs=CHUNK, executor=ex),
    "run-utility-margin": lambda s, ex: s.run_utility("margin", chunk_runs=CHUNK, executor=ex),
    "banzhaf-margin": lambda s, ex: s.banzhaf("margin", stderr=True, executor=ex),
    "banzhaf-array": lambda s, ex: s.banzhaf(U, executor=ex),
    "data-oob-correct": lambda s, ex: s.data_oob("correct", chunk_runs=CHUNK, executor=ex),
    "data-oob-phi": lambda s, ex: s.data_oob("phi", chunk_runs=CHUNK, executor=ex),
    "snapshot-scores": lambda s, ex: s.snapshot_scores(chunk_runs=CHUNK, executor=ex),
    "snapshot-scores-epoch": lambda s, ex: s.snapshot_scores(el2n_epoch=3, chunk_runs=CHUNK, executor=ex),
    "holdout-pred-probs": lambda s, ex: s.holdout_pred_probs(chunk_runs=CHUNK, executor=ex),
}

_local: dict = {}


def _same(got, want):
    if isinstance(want, pl.DataFrame):
        assert got.schema == want.schema
        assert got.equals(want), f"{got}\n!=\n{want}"
    elif isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            _same(g, w)
    else:
        assert isinstance(got, np.ndarray) and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)  # NaN equal to NaN, every bit of every other value


@pytest.mark.parametrize("name", ["local-split", "threads", "ray"])
@pytest.mark.parametrize("scan", list(SCANS))
def test_identical_under_every_executor(request, store, scan, name):
    if scan not in _local:
        _local[scan] = SCANS[scan](store, LocalExecutor())
    _same(SCANS[scan](store, _executor(name, request)), _local[scan])


def test_local_is_the_default(store):
    _same(store.scores("phi", chunk_runs=CHUNK, executor="local"), store.scores("phi", chunk_runs=CHUNK))
    _same(
        store.memorization("phi", chunk_runs=CHUNK, executor="threads:2"), store.memorization("phi", chunk_runs=CHUNK)
    )
    assert store.scores(chunk_runs=CHUNK)["phi_mean_in"].is_not_null().all()
    assert store.scores(chunk_runs=CHUNK)["el2n"].is_not_nan().any()


def test_bad_executor_names_the_choices(store):
    with pytest.raises(TypeError, match="executor: expected None or 'local'"):
        store.memorization(executor="cluster")
    with pytest.raises(TypeError, match="executor: expected"):
        store.influence(top_k=3, executor=3)


def test_errors_of_a_task_reach_the_caller(store, tmp_path):
    s = RunStore.create(tmp_path / "s", n_train=3, n_test=0)
    s.add_run(np.array([1, 0, 1]), train_correct=np.array([1, 1, 0]))
    s.add_run(np.array([0, 1, 1]), train_correct=np.array([1, 0, 0]))
    with pytest.raises(StoreError, match="has no train_phi"):
        s.memorization("phi", executor=ThreadExecutor(2, runs_per_task=1), chunk_runs=1)
    with pytest.raises(StoreError, match="no bootstrap multiplicities"):
        s.data_oob(executor=ThreadExecutor(2, runs_per_task=1), chunk_runs=1)


def test_store_workers_cannot_see(ray_cluster, tmp_path):
    s = RunStore.create(tmp_path / "s", n_train=3, n_test=0)
    s.add_run(np.array([1, 0, 1]), train_correct=np.array([1, 1, 0]))
    (tmp_path / "s" / "runs").rename(tmp_path / "moved")
    with pytest.raises(ClusterError, match="not a directory"):
        s.memorization(executor=RayExecutor())
