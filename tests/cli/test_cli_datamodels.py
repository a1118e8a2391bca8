"""``memscore datamodels``: fit on a store, write the .npz, print the LDS on evaluation runs."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("typer")

from memscore import RunStore  # noqa: E402


def _stores(tmp_path, n=30, t=4):
    """Training runs and evaluation runs (10 subsets x 2 models) whose test φ is a planted
    sparse linear function of the mask plus noise."""
    rng = np.random.default_rng(0)
    w = np.zeros((t, n))
    w[:, :3] = [1.0, -0.8, 0.5]
    train = RunStore.create(tmp_path / "runs", n_train=n, n_test=t)
    for r in range(200):
        m = rng.random(n) < 0.5
        train.add_run(m, test_phi=w @ m + 0.1 * rng.normal(size=t), run_id=f"r{r}")
    ev = RunStore.create(tmp_path / "eval", n_train=n, n_test=t)
    for g in range(10):
        m = rng.random(n) < 0.5
        for k in range(2):
            ev.add_run(m, test_phi=w @ m + 0.1 * rng.normal(size=t), run_id=f"e{g}-{k}")
    return train, ev, w


def test_datamodels_command_writes_weights_and_prints_lds(tmp_path, run_cli):
    train, ev, w = _stores(tmp_path)
    code, out, err = run_cli(["datamodels", str(train.path), "--eval", str(ev.path), "--n-lambdas", "20"])
    assert code == 0, err
    with np.load(train.path / "datamodels.npz") as z:
        assert z["weights"].shape == (4, 30) and str(z["kind"]) == "phi" and int(z["runs"]) == 200
        np.testing.assert_allclose(z["weights"][:, :3], w[:, :3], atol=0.1)
        assert set(z.files) >= {"bias", "lam", "lam_max", "val_mse", "converged", "steps"}
        assert z["converged"].shape == (4, 20) and z["converged"].all()
    assert "datamodels of 4 test examples on 200 runs" in out and "stopped at" not in err
    lds = {line.split(":")[0].strip(): float(line.split(":")[1].split()[0]) for line in out.splitlines()[2:]}
    assert lds["datamodels"] > 0.8 and set(lds) == {"datamodels", "influence (Feldman–Zhang)"}
    assert "over 10 subsets" in out


def test_datamodels_command_bad_input(tmp_path, run_cli):
    train, _, _ = _stores(tmp_path)
    code, _, err = run_cli(["datamodels", str(train.path), "--kind", "logits"])
    assert code == 1 and "--kind" in err
    code, _, err = run_cli(["datamodels", str(train.path), "--eval", str(tmp_path / "nowhere")])
    assert code == 1 and "--eval" in err and not (train.path / "datamodels.npz").exists()
    other = RunStore.create(tmp_path / "other", n_train=31, n_test=4)
    code, _, err = run_cli(["datamodels", str(train.path), "--eval", str(other.path)])
    assert code == 1 and "31 training / 4 test" in err and not (train.path / "datamodels.npz").exists()
    code, _, err = run_cli(["datamodels", str(train.path), "--val-fraction", "1.5"])
    assert code == 1 and "fraction" in err
    for opt, value in (("--max-iter", "0"), ("--n-lambdas", "5000"), ("--tol", "-1")):
        code, _, err = run_cli(["datamodels", str(train.path), opt, value])
        assert code == 1 and opt in err and not (train.path / "datamodels.npz").exists()


def test_datamodels_command_reports_a_lambda_cut_short(tmp_path, run_cli):
    train, _, _ = _stores(tmp_path)
    code, _, err = run_cli(["datamodels", str(train.path), "--n-lambdas", "10", "--max-iter", "1", "--tol", "1e-7"])
    assert code == 0 and "stopped at --max-iter 1" in err
    with np.load(train.path / "datamodels.npz") as z:
        assert not z["converged"].all()


@pytest.mark.parametrize("executor", ["threads:2", "ray"])
def test_datamodels_command_on_an_executor_writes_the_local_fit(tmp_path, run_cli, request, executor):
    """``--executor``: the blocks of test examples fitted by other workers give the local
    .npz, bit for bit (``--targets-per-task 1``: one core block of 32 per task)."""
    if executor == "ray":
        request.getfixturevalue("ray_cluster")
    train, ev, _ = _stores(tmp_path, t=70)
    local = tmp_path / "local.npz"
    code, out, err = run_cli(["datamodels", str(train.path), "--n-lambdas", "10", "--out", str(local)])
    assert code == 0, err
    code, out, err = run_cli(
        ["datamodels", str(train.path), "--n-lambdas", "10", "--eval", str(ev.path), "--executor", executor,
         "--cpus-per-task", "1", "--targets-per-task", "1"]
    )  # fmt: skip
    assert code == 0, err
    assert "datamodels of 70 test examples on 200 runs" in out and "over 10 subsets" in out
    with np.load(local) as a, np.load(train.path / "datamodels.npz") as b:
        assert a.files == b.files
        for name in a.files:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_datamodels_command_bad_executor(tmp_path, run_cli):
    train, _, _ = _stores(tmp_path)
    code, _, err = run_cli(["datamodels", str(train.path), "--executor", "spark"])
    assert code == 1 and "executor" in err and "threads" in err and not (train.path / "datamodels.npz").exists()
