"""Byte-flip and truncation fuzzing of run-store files (seeded, a few thousand cases).

The promise checked: a damaged run file or manifest never crashes, hangs or silently changes
a result. Each case either reads back exactly what was stored, or raises ``StoreError``
naming the damaged file; ``verify()`` lists a problem instead of raising.
"""

from __future__ import annotations

import json
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest

from memscore import RunStore, StoreError

N, T, C = 29, 9, 3
CASES_PER_FILE = 700  # two run-file layouts + the manifest: ~2,000 cases


def _build(root: Path) -> RunStore:
    rng = np.random.default_rng(7)
    store = RunStore.create(
        root,
        n_train=N,
        n_test=T,
        train_labels=rng.integers(0, C, N),
        test_labels=rng.integers(0, C, T),
        n_classes=C,
    )
    for r in range(3):
        snaps = {
            "epochs": np.array([1, 2]),
            "train_correct": rng.random((2, N)) < 0.5,
            "train_loss": rng.random((2, N)),
        }
        store.add_run(
            rng.random(N) < 0.5,
            train_logits=rng.normal(size=(N, C)),
            test_logits=rng.normal(size=(T, C)),
            keep_logits=(r == 0),
            snapshots=snaps,
            subset_ratio=0.5,
            run_id=f"run-{r}",
        )
    return store


def _read_all(store: RunStore) -> dict[str, np.ndarray]:
    """Every array a user reads, and the streamed scores."""
    out: dict[str, np.ndarray] = {"masks": store.masks()}
    for split in ("train", "test"):
        for kind in ("correct", "phi", "pred"):
            out[f"{split}_{kind}"] = store.outcomes(split, kind)
    out["snap"] = store.snapshots("train", "correct")[1]
    df = store.scores()
    for col in ("memorization", "holdout_accuracy", "phi_mean_in", "loss", "forgetting_events"):
        out[col] = df[col].to_numpy()
    idx, val = store.influence(top_k=3)
    out["infl_idx"], out["infl_val"] = idx, val
    return out


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(
        a[k].shape == b[k].shape and np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind == "f") for k in a
    )


def _damage(data: bytes, rng: np.random.Generator) -> bytes:
    buf = bytearray(data)
    how = rng.integers(0, 4)
    if how == 0:  # truncate
        return bytes(buf[: rng.integers(0, len(buf))])
    if how == 1:  # flip one bit
        i = rng.integers(0, len(buf))
        buf[i] ^= 1 << int(rng.integers(0, 8))
    elif how == 2:  # overwrite a byte
        buf[rng.integers(0, len(buf))] = int(rng.integers(0, 256))
    else:  # overwrite a short run of bytes
        i = int(rng.integers(0, len(buf)))
        for k in range(i, min(len(buf), i + int(rng.integers(2, 16)))):
            buf[k] = int(rng.integers(0, 256))
    return bytes(buf)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    root = tmp_path_factory.mktemp("fuzz") / "store"
    store = _build(root)
    assert store.verify() == []
    return root, _read_all(store)


@pytest.mark.parametrize("target", ["runs/run-0.npz", "runs/run-1.npz", "manifest.json"])
def test_damaged_file_is_never_a_silent_difference(pristine, tmp_path, target):
    root, want = pristine
    work = tmp_path / "store"
    shutil.copytree(root, work)
    path = work / target
    original = path.read_bytes()
    rng = np.random.default_rng(zlib.crc32(target.encode()))
    outcomes = {"same": 0, "error": 0}
    for case in range(CASES_PER_FILE):
        damaged = _damage(original, rng)
        path.write_bytes(damaged)
        failed = False
        try:
            store = RunStore.open(work)
            got = _read_all(store)
        except StoreError as exc:
            failed = True
            # The message names the damaged file (the manifest, or the run file).
            assert Path(target).name in str(exc) or "manifest" in str(exc) or str(work) in str(exc), (case, exc)
            outcomes["error"] += 1
        else:
            assert _same(got, want), f"case {case}: damaged {target} gave different results without an error"
            outcomes["same"] += 1
        if target != "manifest.json":
            problems = RunStore.open(work).verify()  # never raises
            assert isinstance(problems, list)
            if failed:  # damage that reads notice, verify() lists (harmless bytes may pass both)
                assert problems, f"case {case}: verify() missed damage to {target}"
    path.write_bytes(original)
    assert outcomes["error"] > CASES_PER_FILE // 2, outcomes


def test_damaged_manifest_json_values(pristine, tmp_path):
    """Hand-edited manifests: wrong types or sizes are refused at open, never truncate reads."""
    root, _ = pristine
    for key, value in [
        ("n_train", N - 1),
        ("n_train", N + 8),
        ("n_test", T + 1),
        ("n_classes", C + 1),
        ("n_train", "x"),
    ]:
        work = tmp_path / f"m-{key}-{value}"
        shutil.copytree(root, work)
        m = json.loads((work / "manifest.json").read_text())
        m[key] = value
        (work / "manifest.json").write_text(json.dumps(m))
        with pytest.raises(StoreError):
            _read_all(RunStore.open(work))
