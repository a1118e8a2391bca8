"""Importers: files written here in each project's own layout read back exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import memscore
from memscore.runs import importers


def test_datamodels_release_streams_and_checks_the_spec(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    models, n, t = 11, 21, 5
    spec = {"num_models": models, "schema": {"masks": {"shape": [n], "dtype": "bool_"},
                                             "margins": {"shape": [t], "dtype": "float16"}}}  # fmt: skip
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    m = np.lib.format.open_memmap(tmp_path / "masks.npy", mode="w+", dtype=np.bool_, shape=(models, n))
    y = np.lib.format.open_memmap(tmp_path / "margins.npy", mode="w+", dtype=np.float16, shape=(models, t))
    done = np.lib.format.open_memmap(tmp_path / "_completed.npy", mode="w+", dtype=np.bool_, shape=(models,))
    want_m, want_y = rng.random((models, n)) < 0.5, rng.normal(size=(models, t)).astype(np.float16)
    m[:], y[:] = want_m, want_y
    done[:] = True
    done[4] = False  # an unfinished worker: its row stays zero
    for a in (m, y, done):
        a.flush()
    del m, y, done
    masks, out = importers.read_datamodels_release(tmp_path, chunk_runs=3)
    keep = np.arange(models) != 4
    np.testing.assert_array_equal(masks.unpack(), want_m[keep])
    np.testing.assert_array_equal(out, want_y[keep].astype(np.float32))
    masks, out = importers.read_datamodels_release(tmp_path, completed_only=False)
    assert masks.shape == (models, n)
    # Into a store, the margins streamed from their memmap a run at a time.
    store = memscore.RunStore.create(tmp_path / "store", n_train=n, n_test=t)
    margins = np.load(tmp_path / "margins.npy", mmap_mode="r")
    importers.import_runs(store, masks, test_phi=margins, run_id_prefix="release")
    np.testing.assert_array_equal(store.masks(), want_m)
    np.testing.assert_array_equal(store.outcomes("test", "phi"), want_y.astype(np.float64))
    with pytest.raises(ValueError, match="test_phi: expected 11 runs"):
        importers.import_runs(store, masks, test_phi=margins[:3])
    spec["schema"]["margins"]["shape"] = [t + 1]
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    with pytest.raises(ValueError, match="disagrees"):
        importers.read_datamodels_release(tmp_path)
    with pytest.raises(FileNotFoundError):
        importers.read_datamodels_release(tmp_path, outcomes="logits")


def test_datamodels_release_reads_target_columns_in_bounded_memory(tmp_path: Path) -> None:
    """Only the packed masks, the chosen columns and one chunk are allocated (numpy reports
    its buffers to tracemalloc), whatever the size of the files."""
    import tracemalloc

    rng = np.random.default_rng(1)
    models, n, t, chunk = 4000, 800, 300, 256
    m = np.lib.format.open_memmap(tmp_path / "masks.npy", mode="w+", dtype=np.bool_, shape=(models, n))
    y = np.lib.format.open_memmap(tmp_path / "margins.npy", mode="w+", dtype=np.float16, shape=(models, t))
    want_m, want_y = rng.random((models, n)) < 0.5, rng.normal(size=(models, t)).astype(np.float16)
    m[:], y[:] = want_m, want_y
    m.flush(), y.flush()
    del m, y
    cols = slice(10, 42)
    tracemalloc.start()
    try:
        masks, out = importers.read_datamodels_release(tmp_path, targets=cols, chunk_runs=chunk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(masks.unpack(), want_m)
    np.testing.assert_array_equal(out, want_y[:, cols].astype(np.float32))
    held = masks.bits.nbytes + out.nbytes  # 400 kB + 512 kB
    one_chunk = chunk * (n + t * 2 + t * 4)  # bools + float16 rows + their column pick
    assert peak < held + 3 * one_chunk, (peak, held, one_chunk)
    assert peak < (models * n) // 2  # far below the unpacked masks (3.2 MB)
    _, picked = importers.read_datamodels_release(tmp_path, targets=[0, 299, 5], chunk_runs=chunk)
    np.testing.assert_array_equal(picked, want_y[:, [0, 299, 5]].astype(np.float32))
    with pytest.raises(ValueError, match=r"targets: indices must lie in \[0, 300\)"):
        importers.read_datamodels_release(tmp_path, targets=[300])
    with pytest.raises(ValueError, match="targets: expected a slice"):
        importers.read_datamodels_release(tmp_path, targets=[0.5])


def _reset_peak_rss() -> int | None:
    """Reset the kernel's peak-RSS mark (VmHWM) and return the current RSS in bytes, or None
    where /proc/self/clear_refs is not writable."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    return _proc_status("VmRSS")


def _proc_status(key: str) -> int:
    with open("/proc/self/status") as f:
        line = next(x for x in f if x.startswith(key + ":"))
    return int(line.split()[1]) * 1024


def test_datamodels_release_scan_does_not_map_the_files(tmp_path: Path) -> None:
    """Resident memory (file pages included) grows by the packed masks, not the 64 MB file."""
    models, n = 8000, 8192
    m = np.lib.format.open_memmap(tmp_path / "masks.npy", mode="w+", dtype=np.bool_, shape=(models, n))
    y = np.lib.format.open_memmap(tmp_path / "margins.npy", mode="w+", dtype=np.float16, shape=(models, 4))
    m[::3] = True
    y[:] = 1.0
    m.flush(), y.flush()
    del m, y
    before = _reset_peak_rss()
    if before is None:
        pytest.skip("cannot reset the peak RSS here")
    masks, _ = importers.read_datamodels_release(tmp_path, chunk_runs=500)
    grew = _proc_status("VmHWM") - before
    assert masks.bits.nbytes == models * n // 8  # 8 MB
    assert grew < 32 * 2**20, f"peak RSS grew by {grew / 2**20:.0f} MiB reading a 64 MiB file"
    assert masks.unpack()[::3].all() and not masks.unpack()[1::3].any()


def _softmax_phi(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """score.py's score: log p_y - log(sum of the other p), per augmentation."""
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    py = np.take_along_axis(p, y[:, None, None, None], axis=-1)[..., 0]
    return (np.log(py) - np.log(1 - py))[:, 0, :]


def test_lira_experiment_directories(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    n, c, a, runs = 13, 4, 2, 3
    labels = rng.integers(0, c, n)
    np.save(tmp_path / "y_train.npy", labels)
    keeps, phis = [], []
    for e in range(runs):
        d = tmp_path / f"experiment-{e}_{runs}"
        (d / "logits").mkdir(parents=True)
        keep = rng.random(n) < 0.5
        np.save(d / "keep.npy", keep)
        z = rng.normal(size=(n, 1, a, c)).astype(np.float32)
        np.save(d / "logits" / f"{9:010d}.npy", 2.0 * z)  # an older epoch: ignored
        np.save(d / "logits" / f"{10:010d}.npy", z)
        keeps.append(keep)
        phis.append(_softmax_phi(z.astype(np.float64), labels))
    masks, phi = importers.read_lira_experiments(tmp_path)
    np.testing.assert_array_equal(masks.unpack(), np.stack(keeps))
    np.testing.assert_allclose(phi, np.stack(phis), rtol=1e-5, atol=1e-5)
    _, phi9 = importers.read_lira_experiments(tmp_path, epoch=9)
    assert not np.allclose(phi9, phi)
    store = memscore.RunStore.create(tmp_path / "store", n_train=n, train_labels=labels)
    importers.import_runs(store, masks, train_phi=phi)
    np.testing.assert_array_equal(store.masks(), np.stack(keeps))
    np.testing.assert_allclose(store.outcomes("train", "phi"), phi.mean(axis=2), rtol=1e-6)
    np.save(tmp_path / "experiment-0_3" / "keep.npy", np.zeros(n + 1, bool))
    with pytest.raises(ValueError, match="keep.npy"):
        importers.read_lira_experiments(tmp_path)


def test_attribution_score_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    n, t = 9, 4
    scores = rng.normal(size=(t, n)).astype(np.float32)
    # TRAK: <save_dir>/scores/<exp>.mmap, (train, targets) in .npy format.
    (tmp_path / "trak" / "scores").mkdir(parents=True)
    mm = np.lib.format.open_memmap(tmp_path / "trak/scores/test.mmap", mode="w+", dtype=np.float16, shape=(n, t))
    mm[:] = scores.T
    mm.flush()
    del mm
    (tmp_path / "trak/experiments.json").write_text(json.dumps({"test": {"num_targets": t}}))
    np.testing.assert_array_equal(importers.read_trak_scores(tmp_path / "trak", "test"), scores.astype(np.float16))
    (tmp_path / "trak/experiments.json").write_text(json.dumps({"test": {"num_targets": t + 1}}))
    with pytest.raises(ValueError, match="experiments.json"):
        importers.read_trak_scores(tmp_path / "trak", "test")
    # dattri: (num_train, num_test), as a tensor, an array or a file.
    np.testing.assert_array_equal(importers.read_dattri_scores(scores.T), scores)
    np.save(tmp_path / "dattri.npy", scores.T)
    np.testing.assert_array_equal(importers.read_dattri_scores(tmp_path / "dattri.npy"), scores)
    torch = pytest.importorskip("torch")
    torch.save(torch.from_numpy(scores.T.copy()), tmp_path / "dattri.pt")
    np.testing.assert_array_equal(importers.read_dattri_scores(tmp_path / "dattri.pt"), scores)
    # Kronfluence: safetensors {"all_modules": (n_query, n_train)}, F32 and BF16.
    for dtype, raw, want in (
        ("F32", scores.tobytes(), scores),
        ("BF16", (scores.view(np.uint32) >> 16).astype(np.uint16).tobytes(),
         ((scores.view(np.uint32) >> 16) << 16).view(np.float32)),
    ):  # fmt: skip
        header = json.dumps({"__metadata__": {}, "all_modules": {"dtype": dtype, "shape": [t, n],
                                                                 "data_offsets": [0, len(raw)]}}).encode()  # fmt: skip
        d = tmp_path / f"kron_{dtype}"
        d.mkdir()
        (d / "pairwise_scores.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + raw)
        np.testing.assert_array_equal(importers.read_kronfluence_scores(d), want)
    with pytest.raises(ValueError, match="no tensor"):
        importers.read_kronfluence_scores(tmp_path / "kron_F32", key="fc1")
