"""Non-finite model outputs are errors, not tokens or numbers; requests that cannot be met in
full say so; ``memscore datamodels --eval`` checks every input before it writes anything."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from memscore import RunStore, lm  # noqa: E402
from memscore.ngrams import Corpus  # noqa: E402

VOCAB = 16


def _poisoned(rows: set[int], value: float = float("nan")) -> Any:
    """A callable LM: uniform logits except ``value`` in every row whose first token is in
    ``rows`` (the row index is written into the first token by the tests)."""

    def model(ids: Any) -> Any:
        out = torch.zeros(*ids.shape, VOCAB)
        for r in range(ids.shape[0]):
            if int(ids[r, 0]) in rows:
                out[r, :, 3] = value
        return out

    return model


def _tiny_nan_gpt2() -> Any:
    """A tiny GPT-2 whose forward returns NaN logits (through the key/value-cache path)."""
    transformers = pytest.importorskip("transformers")

    class NaNGPT2(transformers.GPT2LMHeadModel):  # type: ignore[misc]
        def forward(self, *args: Any, **kwargs: Any) -> Any:
            res = super().forward(*args, **kwargs)
            res.logits = torch.full_like(res.logits, float("nan"))
            return res

    torch.manual_seed(0)
    cfg = transformers.GPT2Config(
        vocab_size=VOCAB, n_embd=16, n_layer=1, n_head=2, n_positions=32, bos_token_id=None, eos_token_id=None
    )
    return NaNGPT2(cfg).eval()


def test_extractable_refuses_nan_logits_of_a_hf_model() -> None:
    """Without the check every step decodes NaN as token 0, and all-zero sequences are
    reported as memorized."""
    model = _tiny_nan_gpt2()
    seqs = np.zeros((3, 8), dtype=np.int64)
    with pytest.raises(ValueError, match=r"NaNGPT2.*NaN or infinite logits for sequences \[0, 1, 2\]"):
        lm.extractable(model, None, seqs, k=4, m=4)
    with pytest.raises(ValueError, match="NaN or infinite logits"):
        lm.greedy_continuations(model, seqs[:, :4], 2)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("batch_size", [1, 2, 32])
def test_extractable_names_the_rows_with_non_finite_logits(value: float, batch_size: int) -> None:
    seqs = np.tile(np.arange(6, dtype=np.int64), (5, 1))
    seqs[:, 0] = np.arange(5)  # row r starts with token r
    # the first batch with a bad row stops the decoding, naming its bad rows
    rows = r"\[1, 3\]" if batch_size >= 5 else r"\[1\]"
    with pytest.raises(ValueError, match=r"_poisoned.<locals>.model: NaN or infinite logits for sequences " + rows):
        lm.extractable(_poisoned({1, 3}, value), None, seqs, k=3, m=3, batch_size=batch_size)
    # a clean model on the same rows decodes
    assert lm.extractable(_poisoned(set()), None, seqs, k=3, m=3, batch_size=batch_size).generated.shape == (5, 3)


def test_extractable_rows_are_those_of_the_whole_input_on_an_executor() -> None:
    seqs = np.tile(np.arange(6, dtype=np.int64), (8, 1))
    seqs[:, 0] = np.arange(8)
    with pytest.raises(ValueError, match=r"sequences \[6\]"):
        lm.extractable(_poisoned({6}), None, seqs, k=3, m=2, batch_size=2, executor="threads:2")


def test_token_logprobs_refuses_nan_logprobs() -> None:
    seqs = [[0, 1, 2], [1, 2, 3, 4], [2, 5]]
    with pytest.raises(ValueError, match=r"NaN log-probabilities .* for sequences \[1\]"):
        lm.token_logprobs(_poisoned({1}), seqs, batch_size=2)
    with pytest.raises(ValueError, match=r"sequences \[2\]"):
        lm.token_logprobs(_poisoned({2}, float("inf")), seqs, batch_size=1, executor="threads:2")
    with pytest.raises(ValueError, match="NaNGPT2"):
        lm.token_logprobs(_tiny_nan_gpt2(), seqs)
    # -inf logits: a token of probability 0, a value (-inf) and no error
    lp = lm.token_logprobs(_poisoned({0}, -float("inf")), [[0, 3, 1]])
    assert lp[0][1] == -np.inf and np.isfinite(lp[0][2])


def test_token_logprobs_ignores_non_finite_padding() -> None:
    """Logits at padding positions are never read: NaN there is no error."""

    def nan_after_three(ids: Any) -> Any:
        out = torch.zeros(*ids.shape, VOCAB)
        out[:, 3:] = float("nan")
        return out

    lp = lm.token_logprobs(nan_after_three, [[1, 2, 3], [1, 2, 3, 4, 5]][:1] + [[4, 5]], batch_size=2)
    assert all(np.isfinite(x[1:]).all() for x in lp)


def _corpus() -> Corpus:
    tokens = np.arange(12, dtype=np.uint32)
    return Corpus.from_tokens(tokens, np.array([0, 6]))  # two documents of 6 tokens


def test_sample_sequences_warns_when_fewer_exist() -> None:
    with pytest.warns(lm.sampler.FewerSequencesWarning, match=r"asked for n=100 windows, returning 6"):
        s = lm.sample_sequences(_corpus(), 100, 4)  # 3 windows per document
    assert s.tokens.shape == (6, 4)
    with pytest.warns(
        lm.sampler.FewerSequencesWarning, match=r"n=10 windows, returning 2: the stratified pool holds 2 \(pool=2\)"
    ):
        lm.sample_sequences(_corpus(), 10, 4, stratify=True, pool=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert lm.sample_sequences(_corpus(), 6, 4).tokens.shape == (6, 4)
        assert lm.sample_sequences(_corpus(), 5, 4, stratify=True).tokens.shape == (5, 4)


# ---- memscore datamodels --eval: every input checked before datamodels.npz is written


def _stores(tmp_path: Path) -> tuple[RunStore, RunStore]:
    rng = np.random.default_rng(0)
    n, t = 12, 3
    train = RunStore.create(tmp_path / "runs", n_train=n, n_test=t)
    for r in range(40):
        train.add_run(rng.random(n) < 0.5, test_phi=rng.normal(size=t), run_id=f"r{r}")
    ev = RunStore.create(tmp_path / "eval", n_train=n, n_test=t)
    for g in range(5):
        ev.add_run(rng.random(n) < 0.5, test_phi=rng.normal(size=t), run_id=f"e{g}")
    return train, ev


def _damage(store: RunStore) -> Path:
    """Truncate one evaluation run's file (opening the store still succeeds)."""
    files = sorted(p for p in Path(store.path).rglob("*") if p.is_file() and "e3" in p.name)
    assert files, list(Path(store.path).rglob("*"))
    data = files[0].read_bytes()
    files[0].write_bytes(data[: len(data) // 2])
    return files[0]


def test_datamodels_command_damaged_eval_writes_nothing(tmp_path: Path, run_cli: Any) -> None:
    train, ev = _stores(tmp_path)
    _damage(ev)
    code, _, err = run_cli(["datamodels", str(train.path), "--eval", str(ev.path), "--n-lambdas", "5"])
    assert code == 1 and "e3" in err
    assert not (train.path / "datamodels.npz").exists()


def test_datamodels_command_too_few_eval_subsets_writes_nothing(tmp_path: Path, run_cli: Any) -> None:
    train, _ = _stores(tmp_path)
    ev = RunStore.create(tmp_path / "few", n_train=12, n_test=3)
    m = np.arange(12) % 2 == 0
    for r in range(4):  # two distinct subsets, twice each
        ev.add_run(m if r % 2 else ~m, test_phi=np.zeros(3), run_id=f"e{r}")
    code, _, err = run_cli(["datamodels", str(train.path), "--eval", str(ev.path), "--n-lambdas", "5"])
    assert code == 1 and "2 distinct training subsets" in err and "--eval" in err
    assert not (train.path / "datamodels.npz").exists()


def test_datamodels_command_bad_out_directory_fails_before_the_fit(tmp_path: Path, run_cli: Any) -> None:
    train, _ = _stores(tmp_path)
    target = tmp_path / "no" / "such" / "dir" / "x.npz"
    code, _, err = run_cli(["datamodels", str(train.path), "--out", str(target), "--n-lambdas", "5"])
    assert code == 1 and "--out" in err and str(target) in err and ".tmp" not in err
    code, _, err = run_cli(["datamodels", str(train.path), "--out", str(tmp_path), "--n-lambdas", "5"])
    assert code == 1 and "--out" in err and "directory" in err
    # the good case still writes
    code, _, err = run_cli(["datamodels", str(train.path), "--eval", str(tmp_path / "eval"), "--n-lambdas", "5"])
    assert code == 0, err and (train.path / "datamodels.npz").exists()
