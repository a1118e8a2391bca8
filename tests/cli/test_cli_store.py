"""``memscore store verify | clean | merge``."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

pytest.importorskip("typer")

from memscore import RunStore  # noqa: E402


def _store(path, runs, seed):
    rng = np.random.default_rng(seed)
    s = RunStore.create(path, n_train=20, n_test=5)
    for r in range(runs):
        s.add_run(rng.random(20) < 0.5, train_correct=rng.random(20) < 0.5, run_id=f"s{seed}-{r}")
    return s


def test_verify_clean_merge(tmp_path, run_cli):
    a = _store(tmp_path / "a", 3, 0)
    _store(tmp_path / "b", 2, 1)
    code, out, _ = run_cli(["store", "verify", str(a.path)])
    assert code == 0 and "healthy" in out

    # a killed writer's leftover: old enough to remove, a fresh one is kept without --all
    old = a.path / "runs" / ".tmp-dead.npz"
    old.write_bytes(b"partial")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    (a.path / "runs" / ".tmp-live.npz").write_bytes(b"in progress")
    code, out, _ = run_cli(["store", "verify", str(a.path)])
    assert code == 1 and ".tmp-dead.npz" in out
    code, out, _ = run_cli(["store", "clean", str(a.path)])
    assert code == 0 and "runs/.tmp-dead.npz" in out and "1 temporary files removed" in out
    assert not old.exists() and (a.path / "runs" / ".tmp-live.npz").exists()
    code, out, _ = run_cli(["store", "clean", str(a.path), "--all"])
    assert code == 0 and not (a.path / "runs" / ".tmp-live.npz").exists()

    code, out, _ = run_cli(["store", "merge", str(tmp_path / "m"), str(tmp_path / "a"), str(tmp_path / "b")])
    assert code == 0 and "5 runs" in out
    assert RunStore.open(tmp_path / "m").verify() == []


def test_damaged_run_is_listed_not_raised(tmp_path, run_cli):
    a = _store(tmp_path / "a", 2, 0)
    f = a.path / "runs" / "s0-1.npz"
    f.write_bytes(f.read_bytes()[:-30])
    code, out, err = run_cli(["store", "verify", str(a.path)])
    assert code == 1 and "s0-1.npz" in out and "Traceback" not in err
    code, _, err = run_cli(["store", "verify", str(tmp_path / "missing")])
    assert code == 1 and "not a run store" in err and "Traceback" not in err
