"""Crash and concurrency tests of the run store, in real processes.

- kill -9 at random points of ``add_run``, ``merge`` and ``RunStore.create``: nothing
  partial is ever visible, and resuming completes to exactly the uninterrupted result;
- concurrent ``create`` on one path: one store, from one process (manifest and labels agree);
- a reader sees one consistent set of runs while writers add runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from memscore import RunStore, StoreError

N, T, R = 41, 13, 24
PY = sys.executable

# A writer that adds runs run-00 .. run-{R-1} with data fixed by the run index, skipping
# runs already present: re-running it after a kill resumes.
WRITER = textwrap.dedent(
    f"""
    import sys
    import numpy as np
    from memscore import RunStore
    store = RunStore.open(sys.argv[1])
    for r in range({R}):
        rid = f"run-{{r:02d}}"
        if rid in store:
            continue
        rng = np.random.default_rng(r)
        store.add_run(rng.random({N}) < 0.5, train_correct=rng.random({N}) < 0.7,
                      test_correct=rng.random({T}) < 0.6, train_phi=rng.normal(size={N}), run_id=rid)
    """
)


def _expected(tmp: Path) -> RunStore:
    root = tmp / "expected"
    RunStore.create(root, n_train=N, n_test=T)
    subprocess.run([PY, "-c", WRITER, str(root)], check=True)
    return RunStore.open(root)


def _same_store(a: RunStore, b: RunStore) -> None:
    assert a.run_ids() == b.run_ids()
    np.testing.assert_array_equal(a.masks(), b.masks())
    np.testing.assert_array_equal(a.outcomes("test", "correct"), b.outcomes("test", "correct"))
    np.testing.assert_array_equal(a.outcomes("train", "phi"), b.outcomes("train", "phi"))


def _kill_after(cmd: list[str], delay: float) -> None:
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    p.send_signal(signal.SIGKILL)
    p.wait()


@pytest.mark.parametrize("trial", range(4))
def test_kill9_during_add_run_then_resume(tmp_path, trial):
    want = _expected(tmp_path)
    root = tmp_path / "store"
    RunStore.create(root, n_train=N, n_test=T)
    rng = np.random.default_rng(trial)
    for _ in range(3):  # several kills at random points, then a clean finish
        _kill_after([PY, "-c", WRITER, str(root)], float(rng.uniform(0.3, 1.5)))
        store = RunStore.open(root)
        assert all(not p.startswith("runs/run-") or "temporary" in p for p in store.verify()), store.verify()
        assert set(store.run_ids()) <= set(want.run_ids())
    subprocess.run([PY, "-c", WRITER, str(root)], check=True)
    store = RunStore.open(root)
    assert [p for p in store.verify() if "temporary" not in p] == []
    _same_store(store, want)


def test_kill9_during_merge_then_rerun(tmp_path):
    want = _expected(tmp_path)
    parts = []
    for k in range(3):  # three stores holding a third of the runs each
        root = tmp_path / f"part-{k}"
        RunStore.create(root, n_train=N, n_test=T)
        src = RunStore.open(tmp_path / "expected")
        for rid in src.run_ids()[k::3]:
            os.link(src.path / "runs" / f"{rid}.npz", root / "runs" / f"{rid}.npz")
        parts.append(str(root))
    out = tmp_path / "merged"
    merge = "import sys; from memscore import RunStore; RunStore.merge(sys.argv[2:], sys.argv[1])"
    rng = np.random.default_rng(3)
    for _ in range(3):
        _kill_after([PY, "-c", merge, str(out), *parts], float(rng.uniform(0.2, 1.0)))
        if (out / "manifest.json").exists():
            assert [p for p in RunStore.open(out).verify() if "temporary" not in p] == []
    subprocess.run([PY, "-c", merge, str(out), *parts], check=True)
    _same_store(RunStore.open(out), want)


def test_kill9_during_create_leaves_no_half_store(tmp_path):
    create = textwrap.dedent(
        """
        import sys, numpy as np
        from memscore import RunStore
        RunStore.create(sys.argv[1], n_train=200000, train_labels=np.arange(200000) % 7, metadata={"x": 1})
        """
    )
    for k in range(4):
        root = tmp_path / f"s{k}"
        _kill_after([PY, "-c", create, str(root)], 0.4 + 0.15 * k)
        if (root / "manifest.json").exists():
            s = RunStore.open(root)  # a visible store is a whole store
            assert s.train_labels is not None and s.train_labels.shape == (200000,)
        else:
            with pytest.raises(StoreError):
                RunStore.open(root)
            # and creating again works
            RunStore.create(root, n_train=5)


def test_concurrent_create_is_atomic(tmp_path):
    root = tmp_path / "store"
    create = textwrap.dedent(
        """
        import sys, numpy as np
        from memscore import RunStore, StoreError
        k = int(sys.argv[2])
        try:
            RunStore.create(sys.argv[1], n_train=5000, train_labels=np.full(5000, k), metadata={"creator": k})
            print("won")
        except StoreError as exc:
            assert "already holds a run store" in str(exc) or "exist" in str(exc), exc
            print("lost")
        """
    )
    procs = [
        subprocess.Popen([PY, "-c", create, str(root), str(k)], stdout=subprocess.PIPE, text=True) for k in range(6)
    ]
    results = [p.communicate()[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs), results
    assert results.count("won") == 1, results
    store = RunStore.open(root)
    k = store.metadata["creator"]
    assert store.train_labels is not None and (store.train_labels == k).all()  # manifest and labels from one creator


def test_reader_sees_one_consistent_set_of_runs(tmp_path):
    root = tmp_path / "store"
    RunStore.create(root, n_train=N, n_test=T)
    writer = subprocess.Popen([PY, "-c", WRITER, str(root)])
    try:
        seen = 0
        while writer.poll() is None:
            store = RunStore.open(root)
            m = store.masks()
            o = store.outcomes("test", "correct")
            p = store.outcomes("train", "phi")
            assert m.shape[0] == o.shape[0] == p.shape[0] == len(store)
            seen = max(seen, m.shape[0])
    finally:
        writer.wait()
    store = RunStore.open(root)
    assert len(store) == R
    store.refresh()
    assert store.masks().shape == (R, N)
