"""``memscore lm membership``: the table equals the API's on a tiny saved model, and bad
options fail in one line before anything is written."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

pytest.importorskip("typer")
pytest.importorskip("transformers")
import polars as pl  # noqa: E402
from lm_tiny import TEXTS, VOCAB, save_tiny_lm  # noqa: E402
from numpy.testing import assert_allclose  # noqa: E402

from memscore.cli import main  # noqa: E402
from memscore.lm import load_causal_lm, membership_scores  # noqa: E402


def run(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["memscore", *args])
    with pytest.raises(SystemExit) as info:
        main()
    out, err = capsys.readouterr()
    return (0 if info.value.code is None else int(info.value.code)), out, err


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("lm")
    return save_tiny_lm(d / "a", seed=0), save_tiny_lm(d / "b", seed=1)


def test_membership_command_matches_api(models, tmp_path, monkeypatch, capsys):
    a, b = models
    (tmp_path / "t.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    out = tmp_path / "o.parquet"
    code, stdout, err = run(
        monkeypatch, capsys, "lm", "membership", str(a), "--texts", str(tmp_path / "t.jsonl"), "--out", str(out),
        "--reference", str(b), "--k", "0.5", "--batch-size", "2",
    )  # fmt: skip
    assert code == 0, err
    got = pl.read_parquet(out)
    la, lb = load_causal_lm(a), load_causal_lm(b)
    want = membership_scores(la, TEXTS, reference=lb, k=0.5)
    assert got.columns == want.columns
    assert "zlib" in got.columns and "reference_ratio" in got.columns
    assert_allclose(
        got.drop("sequence").to_numpy(), want.drop("sequence").to_numpy(), rtol=1e-5, atol=1e-6
    )  # batches of 2 vs 16: float32 padding
    # token ids from a .npy file: the same scores as the API on those ids
    ids = np.random.default_rng(0).integers(0, VOCAB, (3, 6))
    np.save(tmp_path / "ids.npy", ids)
    code, _, err = run(
        monkeypatch, capsys, "lm", "membership", str(a), "--texts", str(tmp_path / "ids.npy"), "--out", str(out)
    )
    assert code == 0, err
    assert_allclose(pl.read_parquet(out)["loss"].to_numpy(), membership_scores(la, ids)["loss"].to_numpy(), rtol=1e-6)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--k", "0"), "--k: expected a number in (0, 1]"),
        (("--batch-size", "0"), "--batch-size"),
        (("--out", "x.csv"), "expected a .parquet file"),
    ],
)
def test_membership_options_checked_first(models, tmp_path, monkeypatch, capsys, args, message):
    a, _ = models
    (tmp_path / "t.txt").write_text("\n".join(TEXTS))
    monkeypatch.chdir(tmp_path)
    before = set(tmp_path.iterdir())
    code, _, err = run(monkeypatch, capsys, "lm", "membership", str(a), "--texts", "t.txt", *args)
    assert code != 0 and message in err and err.count("\n") == 1
    assert set(tmp_path.iterdir()) == before  # nothing written
    code, _, err = run(monkeypatch, capsys, "lm", "membership", str(a), "--texts", "missing.txt")
    assert code != 0 and "missing.txt" in err
