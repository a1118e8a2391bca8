"""memscore.lm on Ray: a worker killed with SIGKILL during an extraction is retried and the
result is identical to the local one; ``memscore lm memorization --executor ray`` writes the
same table as the local command."""

from __future__ import annotations

import functools
import sys

import numpy as np
import pytest

pytest.importorskip("ray")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("matplotlib")

import polars as pl  # noqa: E402
import ray.cloudpickle  # noqa: E402
import ray_faults  # noqa: E402
from lm_tiny import VOCAB, save_tiny_lm  # noqa: E402

import memscore.lm as lm  # noqa: E402
from memscore.executors import RayExecutor  # noqa: E402

# the stalling model below goes to the workers by value (they need not import this file)
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

K, M = 4, 5


class StallingGPT2(transformers.GPT2LMHeadModel):
    """A GPT-2 whose first forward pass, over all workers, stalls (``ray_faults.stall_once``)
    so that the test can kill its worker mid-extraction. ``forward`` keeps the signature of
    GPT-2's, so the decoder drives it as a HuggingFace model (key/value cache)."""

    stall_dir = ""

    @functools.wraps(transformers.GPT2LMHeadModel.forward)
    def forward(self, *args, **kwargs):
        ray_faults.stall_once(self.stall_dir)
        return super().forward(*args, **kwargs)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_lm(tmp_path_factory.mktemp("tiny-lm"))


def test_killed_worker_during_extraction_is_retried(ray_cluster, model_dir, tmp_path):
    seqs = np.random.default_rng(3).integers(0, VOCAB, (24, K + M))
    model = lm.load_causal_lm(model_dir).model
    want = lm.extractable(model, None, seqs, K, M, batch_size=4)
    stall = tmp_path / "stall"
    stall.mkdir()
    slow = lm.load_causal_lm(model_dir).model
    slow.__class__ = StallingGPT2
    slow.stall_dir = str(stall)
    got = ray_faults.run_killing_stalled(
        lambda: lm.extractable(slow, None, seqs, K, M, batch_size=4, executor=RayExecutor(max_retries=2)), stall
    )
    for a, b in zip(got, want, strict=True):
        assert np.array_equal(a, b)
    # the stalled call and the retried task's calls
    assert (stall / "call-1").exists()


def test_cli_memorization_on_ray_equals_local(ray_cluster, model_dir, tmp_path, run_cli):
    docs = np.random.default_rng(0).integers(0, VOCAB, (40, 12))
    docs[::4] = docs[0]  # a sequence duplicated 10 times
    np.save(tmp_path / "corpus.npy", docs.ravel().astype(np.uint16))
    np.save(tmp_path / "corpus.offsets.npy", np.arange(len(docs), dtype=np.int64) * 12)
    args = ["lm", "memorization", "--corpus", str(tmp_path / "corpus.npy"), "--model", str(model_dir)]
    args += ["--model", str(save_tiny_lm(tmp_path / "other", seed=1))]
    args += ["--k", str(K), "--m", str(M), "--samples", "30", "--batch-size", "4"]
    tables = {}
    for spec in ("local", "ray"):
        out = tmp_path / f"out-{spec}"
        code, stdout, stderr = run_cli([*args, "--out", str(out), "--executor", spec, "--cpus-per-task", "1"])
        assert code == 0, stdout + stderr
        tables[spec] = pl.read_parquet(out / "sequences.parquet")
    assert tables["ray"].height == 60 and tables["ray"].equals(tables["local"])
    assert tables["ray"]["count"].max() == 10

    code, stdout, stderr = run_cli(
        [*args, "--out", str(tmp_path / "bad"), "--executor", "ray", "--gpus-per-task", "64"]
    )
    assert code != 0 and "GPU" in stdout + stderr
