"""memscore.lm on the executor seam: extraction, greedy decoding, token log-probabilities and
the task-gram LM scoring give bit-identical results under LocalExecutor, ThreadExecutor(2)
and a local RayExecutor, with the model given as an object or by its folder, and the
sequences split into blocks (boundaries multiples of the batch size)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from lm_tiny import VOCAB, save_tiny_lm  # noqa: E402

import memscore.lm as lm  # noqa: E402
from memscore.executors import LocalExecutor, RayExecutor, ThreadExecutor  # noqa: E402
from memscore.lm._blocks import _slots, block_bounds  # noqa: E402

K, M, BATCH = 5, 6, 4


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_lm(tmp_path_factory.mktemp("tiny-lm"))


@pytest.fixture(scope="module")
def sequences(model_dir):
    """22 sequences: the model's own greedy continuation with a planted mismatch at
    position i % (M + 2) (none when >= M), so that some are memorized."""
    model = lm.load_causal_lm(model_dir).model
    prompts = np.random.default_rng(0).integers(0, VOCAB, (22, K))
    gen = lm.greedy_continuations(model, prompts, M)
    for i in range(len(gen)):
        if i % (M + 2) < M:
            gen[i, i % (M + 2)] = (gen[i, i % (M + 2)] + 1) % VOCAB
    return np.concatenate([prompts, gen], axis=1)


def _executor(kind, request):
    if kind == "ray":
        request.getfixturevalue("ray_cluster")
        return RayExecutor()
    return LocalExecutor() if kind == "local" else ThreadExecutor(2)


def test_block_bounds():
    for n in (0, 1, 7, 22, 64):
        for bs in (1, 4, 32):
            for blocks in (1, 2, 3, 100):
                b = block_bounds(n, bs, blocks)
                assert b[0][0] == 0 and b[-1][1] == n and len(b) <= max(1, blocks)
                assert all(s % bs == 0 and s < e for s, e in b if n) and all(
                    x[1] == y[0] for x, y in zip(b[:-1], b[1:], strict=True)
                )


def test_gpu_tasks_get_one_block_per_gpu_slot():
    class FakeRay:
        def cluster_resources(self):
            return {"GPU": 8.0, "CPU": 128.0}

    class FakeCluster(ThreadExecutor):
        def connect(self):
            return FakeRay()

    ex = FakeCluster(4)
    assert (_slots(ex, 1.0), _slots(ex, 0.5), _slots(ex, 0.0), _slots(LocalExecutor(), 1.0)) == (8, 16, 4, 1)


@pytest.mark.parametrize("kind", ["local", "threads", "ray"])
@pytest.mark.parametrize("given", ["object", "folder"])
def test_extractable_identical(model_dir, sequences, kind, given, request):
    loaded = lm.load_causal_lm(model_dir)
    want = lm.extractable(loaded.model, None, sequences, K, M, batch_size=BATCH)
    assert want.memorized.sum() == 4 and 0 < want.matched.sum()
    model = loaded.model if given == "object" else str(model_dir)
    got = lm.extractable(model, None, sequences, K, M, batch_size=BATCH, executor=_executor(kind, request))
    for a, b in zip(got, want, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)


@pytest.mark.parametrize("kind", ["local", "threads", "ray"])
def test_greedy_and_table_across_models(model_dir, sequences, tmp_path, kind, request):
    """Two models (a folder and a ModelSpec of another seed) x blocks of sequences."""
    other = save_tiny_lm(tmp_path / "other", seed=1)
    models = [str(model_dir), lm.ModelSpec(other)]
    sample = lm.SampledSequences(
        tokens=sequences,
        shard=np.zeros(len(sequences), dtype=np.int64),
        position=np.arange(len(sequences), dtype=np.int64),
        counts=np.ones(len(sequences), dtype=np.int64),
    )
    want = lm.memorization_table([lm.load_causal_lm(d) for d in (model_dir, other)], sample, K, M, batch_size=BATCH)
    ex = _executor(kind, request)
    got = lm.memorization_table(models, sample, K, M, batch_size=BATCH, executor=ex)
    assert got.equals(want)
    assert got["model"].unique(maintain_order=True).to_list() == [str(model_dir), str(other)]
    g = lm.greedy_continuations(str(model_dir), sequences[:, :K], M, batch_size=BATCH, executor=ex)
    assert np.array_equal(g, lm.extractable(str(model_dir), None, sequences, K, M, batch_size=BATCH).generated)


@pytest.mark.parametrize("kind", ["local", "threads", "ray"])
def test_token_logprobs_identical(model_dir, kind, request):
    import torch

    loaded = lm.load_causal_lm(model_dir)
    rng = np.random.default_rng(1)
    seqs = [rng.integers(0, VOCAB, n).tolist() for n in (3, 9, 1, 6, 0, 12, 5, 7, 2, 30, 4)]
    # A Ray worker of a 1-CPU task runs torch on one thread (Ray sets OMP_NUM_THREADS=1), and a
    # GEMM's reduction order depends on the thread count: bit for bit means on as many threads.
    threads = torch.get_num_threads()
    torch.set_num_threads(1 if kind == "ray" else threads)
    try:
        want = lm.token_logprobs(loaded.model, seqs, batch_size=3)
    finally:
        torch.set_num_threads(threads)
    for model in (loaded.model, str(model_dir), loaded):
        got = lm.token_logprobs(model, seqs, batch_size=3, executor=_executor(kind, request))
        assert len(got) == len(want)
        for a, b in zip(got, want, strict=True):
            assert a.dtype == np.float64 and np.array_equal(a, b, equal_nan=True)


@pytest.mark.parametrize("kind", ["local", "threads", "ray"])
def test_lm_logprobs_identical(model_dir, kind, request):
    from memscore.taskgram import extract_pairs, lm_logprobs

    loaded = lm.load_causal_lm(model_dir)
    examples = [
        ("the cat", "sat on the mat"),
        ("a dog", "ran in the park"),
        ("hello", "world the cat sat"),
        ("the mat", "a dog sat in the park"),
        ("world", "hello world"),
    ]
    pairs = extract_pairs(examples, n=(1, 2), drop_shared=False)
    want = lm_logprobs(loaded.model, loaded.tokenizer, examples, pairs, batch_size=2)
    assert want["logp_lm"].drop_nulls().len() > 0
    got = lm_logprobs(loaded.model, loaded.tokenizer, examples, pairs, batch_size=2, executor=_executor(kind, request))
    assert got.equals(want)


def test_gpus_refused_without_a_device(model_dir, sequences):
    from memscore import ClusterError

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ClusterError, match="gpus_per_task"):
        lm.extractable(str(model_dir), None, sequences, K, M, gpus_per_task=1)
    with pytest.raises(ValueError, match="gpus_per_task"):
        lm.token_logprobs(str(model_dir), [[1, 2]], gpus_per_task=-1)
    with pytest.raises(TypeError, match="executor"):
        lm.token_logprobs(str(model_dir), [[1, 2]], executor="gpu")
