"""Robustness of memscore.RunStore: never abort, never hang, never return wrong numbers.

Each test here failed on the store before the split into format / scan / verify / merge.
"""

from __future__ import annotations

import builtins
import os
import struct
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

import memscore
from memscore import RunStore, StoreError
from memscore.runs.bits import PackedBits

N, T, C = 37, 11, 4


def make(tmp_path: Path, name: str = "s", n_runs: int = 4, prefix: str = "run", **kw) -> RunStore:
    labels = np.random.default_rng(0)
    args = dict(n_train=N, n_test=T, train_labels=labels.integers(0, C, N), test_labels=labels.integers(0, C, T))
    args["n_classes"] = C
    rng = np.random.default_rng([ord(ch) for ch in name + prefix])
    args.update(kw)
    s = RunStore.create(tmp_path / name, **args)
    for r in range(n_runs):
        s.add_run(
            rng.random(s.n_train) < 0.5,
            train_correct=rng.random(s.n_train) < 0.5,
            test_correct=rng.random(s.n_test) < 0.5 if s.n_test else None,
            train_phi=rng.normal(size=s.n_train),
            subset_ratio=0.5,
            run_id=f"{prefix}{r:03d}",
        )
    return s


def run_file(s: RunStore, k: int) -> Path:
    return s.path / "runs" / f"{s.run_ids()[k]}.npz"


# --------------------------------------------------------------------------- (a) runs checked against the manifest


@pytest.mark.parametrize("other", [dict(n_train=N + 1), dict(n_train=N - 3), dict(n_test=T + 2)])
def test_run_of_another_shape_is_refused(tmp_path, other):
    # 34..40 train examples all pack into 5 bytes: only the manifest check catches it.
    s = make(tmp_path)
    b = make(tmp_path, "b", n_runs=1, **other, train_labels=None, test_labels=None)
    stray = s.path / "runs" / "zz-stray.npz"
    stray.write_bytes(run_file(b, 0).read_bytes().replace(b"run000", b"zz-str"))  # same length, meta run_id differs
    s = RunStore.open(s.path)
    for read in (s.masks, s.scores, s.memorization, lambda: s.outcomes("train", "correct")):
        with pytest.raises(StoreError, match="zz-stray.npz"):
            read()
    assert any("zz-stray.npz" in p for p in s.verify())


def test_run_with_another_class_count_is_refused(tmp_path):
    rng = np.random.default_rng(3)
    kw = dict(n_train=N, n_test=T, train_labels=rng.integers(0, C, N), test_labels=rng.integers(0, C, T))
    s = RunStore.create(tmp_path / "s", n_classes=C, **kw)
    s.add_run(rng.random(N) < 0.5, train_logits=rng.normal(size=(N, C)), keep_logits=True, run_id="a")
    b = RunStore.create(tmp_path / "b", n_classes=C + 1, **kw)
    b.add_run(rng.random(N) < 0.5, train_logits=rng.normal(size=(N, C + 1)), keep_logits=True, run_id="b")
    (s.path / "runs" / "b.npz").write_bytes((b.path / "runs" / "b.npz").read_bytes())
    s = RunStore.open(s.path)
    with pytest.raises(StoreError, match="b.npz"):
        s.outcomes("train", "logits")
    with pytest.raises(StoreError, match="b.npz"):
        s.masks()


# --------------------------------------------------------------------------- (b) atomic create


def test_failed_create_leaves_nothing(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    kw = dict(n_train=N, n_test=T, train_labels=rng.integers(0, C, N), test_labels=rng.integers(0, C, T))
    real, calls = np.save, []

    def failing_save(f, a, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full (injected)")
        return real(f, a, *args, **kwargs)

    for target in (tmp_path / "new", tmp_path / "empty"):
        if target.name == "empty":
            target.mkdir()
        calls.clear()
        monkeypatch.setattr(np, "save", failing_save)
        with pytest.raises(OSError, match="injected"):
            RunStore.create(target, **kw)
        monkeypatch.undo()
        # a failed create leaves the target as it was: absent, or empty
        assert (not target.exists()) if target.name == "new" else list(target.iterdir()) == []
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
        s = RunStore.create(target, **kw)  # and a retry works
        np.testing.assert_array_equal(RunStore.open(target).test_labels, kw["test_labels"])
        assert len(s) == 0


CREATE = textwrap.dedent(
    """
    import sys
    import numpy as np
    import memscore
    w = int(sys.argv[2])
    try:
        memscore.RunStore.create(sys.argv[1], n_train=50, train_labels=np.full(50, w), metadata={"w": w})
        print("ok")
    except memscore.StoreError as exc:
        assert "already holds" in str(exc), exc
        print("exists")
    """
)


@pytest.mark.parametrize("pre_existing_empty_dir", [False, True])
def test_concurrent_creates_one_wins(tmp_path, pre_existing_empty_dir):
    target = tmp_path / "s"
    if pre_existing_empty_dir:
        target.mkdir()
    procs = [
        subprocess.Popen([sys.executable, "-c", CREATE, str(target), str(w)], stdout=subprocess.PIPE, text=True)
        for w in range(4)
    ]
    results = sorted(p.communicate(timeout=120)[0].strip() for p in procs)
    assert results == ["exists"] * 3 + ["ok"]
    s = RunStore.open(target)
    assert (s.train_labels == s.metadata["w"]).all()  # labels and manifest come from the same create


# --------------------------------------------------------------------------- (c) one consistent snapshot


def test_reads_see_one_snapshot_of_the_run_list(tmp_path):
    s = make(tmp_path, n_runs=3)
    other = RunStore.open(s.path)
    m = s.masks()
    other.add_run(np.ones(N, dtype=bool), train_correct=np.ones(N, dtype=bool), run_id="run999")
    assert other.run_ids()[-1] == "run999"  # its own add refreshes the writer's snapshot
    o = s.outcomes("train", "correct")
    assert m.shape == o.shape == (3, N) and len(s) == 3 and "run999" not in s
    assert s.memorization().shape == (N,) and s.scores()["n_in"].sum() == m.sum()
    assert s.refresh()[-1] == "run999" and s.masks().shape == s.outcomes().shape == (4, N)


# --------------------------------------------------------------------------- (d) never block on a FIFO

FIFO = textwrap.dedent(
    """
    import sys
    import memscore
    s = memscore.RunStore.open(sys.argv[1])
    for read in (s.masks, s.scores, lambda: s.run_info("zz-fifo")):
        try:
            read()
            print("read ok")
        except memscore.StoreError as exc:
            print("StoreError:", exc)
    print("verify:", s.verify())
    """
)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_named_like_a_run_never_hangs(tmp_path):
    s = make(tmp_path, n_runs=2)
    os.mkfifo(s.path / "runs" / "zz-fifo.npz")
    p = subprocess.Popen([sys.executable, "-c", FIFO, str(s.path)], stdout=subprocess.PIPE, text=True)
    try:
        out, _ = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        pytest.fail("reading a store with a FIFO in runs/ hung")
    lines = out.splitlines()
    assert len(lines) == 4, out
    for line in lines[:3]:
        assert line.startswith("StoreError:") and "zz-fifo.npz" in line and "not a regular file" in line
    assert "runs/zz-fifo.npz: not a regular file" in lines[3]


# --------------------------------------------------------------------------- (e) any damage -> StoreError


def _central_directory(raw: bytes) -> tuple[int, int]:
    eocd = raw.rfind(b"PK\x05\x06")
    size, offset = struct.unpack("<II", raw[eocd + 12 : eocd + 20])
    return offset, size


def test_bad_compression_method_in_central_directory(tmp_path):
    # zipfile raises a bare NotImplementedError for this one
    s = make(tmp_path, n_runs=2)
    p = run_file(s, 1)
    raw = bytearray(p.read_bytes())
    off, _ = _central_directory(bytes(raw))
    raw[off + 10 : off + 12] = struct.pack("<H", 99)  # compression method of the first member
    p.write_bytes(bytes(raw))
    with pytest.raises(StoreError, match=p.name):
        s.masks()
    with pytest.raises(StoreError, match=p.name):
        s.scores()
    problems = s.verify()
    assert len(problems) == 1 and problems[0].startswith(f"runs/{p.name}:")


def test_every_flipped_byte_of_the_central_directory(tmp_path):
    s = make(tmp_path, n_runs=1, n_test=0, test_labels=None)
    p = run_file(s, 0)
    good = p.read_bytes()
    want_m, want_o = s.masks(), s.outcomes("train", "phi")
    off, size = _central_directory(good)
    end = len(good)
    for pos in list(range(off, off + size)) + list(range(end - 22, end)):
        raw = bytearray(good)
        raw[pos] ^= 0xFF
        p.write_bytes(bytes(raw))
        try:
            m, o = s.masks(), s.outcomes("train", "phi")
            ok = np.array_equal(m, want_m) and np.array_equal(o, want_o)
            assert ok, f"byte {pos}: wrong data returned"
        except StoreError as exc:
            assert p.name in str(exc), f"byte {pos}: {exc}"
            assert any(p.name in line for line in s.verify()), f"byte {pos}: read failed, verify() passed"
        problems = s.verify()  # never raises
        assert all(line.startswith(f"runs/{p.name}:") for line in problems), problems


def test_truncated_at_every_length_is_a_store_error(tmp_path):
    s = make(tmp_path, n_runs=1, n_test=0, test_labels=None)
    p = run_file(s, 0)
    good = p.read_bytes()
    for cut in range(0, len(good), max(1, len(good) // 97)):
        p.write_bytes(good[:cut])
        with pytest.raises(StoreError, match=p.name):
            s.scores()
        assert s.verify() and s.verify()[0].startswith(f"runs/{p.name}:")


# --------------------------------------------------------------------------- (f) merge checks first


def test_merge_with_a_damaged_input_writes_nothing(tmp_path):
    a = make(tmp_path, "a", n_runs=3)
    b = make(tmp_path, "b", n_runs=2, prefix="b-run")
    bad = run_file(b, 1)
    bad.write_bytes(bad.read_bytes()[:-40])
    with pytest.raises(StoreError, match=bad.name):
        RunStore.merge([a, b], tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.npz"))
    assert not (tmp_path / "out" / "manifest.json").exists()
    # an existing destination gets nothing either
    dest = make(tmp_path, "dest", n_runs=0)
    with pytest.raises(StoreError, match=bad.name):
        RunStore.merge([a, b], dest.path)
    assert dest.refresh() == []


def test_merge_refuses_different_recorded_class_counts(tmp_path):
    rng = np.random.default_rng(5)
    kw = dict(n_train=N, n_test=T, train_labels=rng.integers(0, C, N), test_labels=rng.integers(0, C, T))
    a = RunStore.create(tmp_path / "a", **kw)  # no n_classes in either manifest
    b = RunStore.create(tmp_path / "b", **kw)
    a.add_run(rng.random(N) < 0.5, train_logits=rng.normal(size=(N, C)), run_id="a0")
    b.add_run(rng.random(N) < 0.5, train_logits=rng.normal(size=(N, C + 1)), run_id="b0")
    with pytest.raises(StoreError, match="class count"):
        RunStore.merge([a, b], tmp_path / "out")
    assert not (tmp_path / "out" / "manifest.json").exists()


# --------------------------------------------------------------------------- (g) epochs within int64


@pytest.mark.parametrize("epochs", [np.array([1.0, 1e19]), np.array([1, 2**63], dtype=np.uint64)])
def test_snapshot_epochs_beyond_int64_refused(tmp_path, epochs):
    s = make(tmp_path, n_runs=0)
    with pytest.raises(ValueError, match="epochs"):
        s.add_run(
            np.ones(N, dtype=bool),
            train_correct=np.ones(N, dtype=bool),
            snapshots={"epochs": epochs, "train_correct": np.ones((2, N), dtype=bool)},
        )
    assert s.refresh() == []


# --------------------------------------------------------------------------- (h) clean_tmp


def test_clean_tmp_removes_only_old_leftovers(tmp_path):
    s = make(tmp_path, n_runs=2)
    old = s.path / "runs" / ".tmp-dead.npz"
    young = s.path / "runs" / ".tmp-live.npz"
    top = s.path / ".tmp-dead.json"
    for f in (old, young, top):
        f.write_bytes(b"partial")
    past = time.time() - 2 * 3600
    os.utime(old, (past, past))
    os.utime(top, (past, past))
    assert s.clean_tmp() == [".tmp-dead.json", "runs/.tmp-dead.npz"]
    assert young.exists() and not old.exists() and not top.exists()
    assert s.clean_tmp(grace_s=0) == ["runs/.tmp-live.npz"]
    assert s.verify() == [] and len(s.run_ids()) == 2
    with pytest.raises(ValueError, match="grace_s"):
        s.clean_tmp(grace_s=-1)


# --------------------------------------------------------------------------- (i) missing runs


def test_missing_run_is_a_store_error(tmp_path):
    s = make(tmp_path, n_runs=1)
    for call in (s.run_info, s.run_metadata, s.mask):
        with pytest.raises(StoreError, match="nope"):
            call("nope")
        with pytest.raises(KeyError):  # still a KeyError for old callers
            call("nope")


# --------------------------------------------------------------------------- one scan, packed bits, public seams


def test_scores_open_each_run_file_once(tmp_path, monkeypatch):
    s = make(tmp_path, n_runs=5)
    s.add_run(
        np.ones(N, dtype=bool),
        train_correct=np.ones(N, dtype=bool),
        train_phi=np.zeros(N),
        snapshots={"epochs": [1, 2], "train_correct": np.ones((2, N), dtype=bool), "train_loss": np.ones((2, N))},
    )
    opened: list[str] = []
    real_open, real_os_open = builtins.open, os.open

    def counting_open(file, *a, **k):
        if str(file).endswith(".npz"):
            opened.append(os.path.basename(str(file)))
        return real_open(file, *a, **k)

    def counting_os_open(path, *a, **k):
        if str(path).endswith(".npz"):
            opened.append(os.path.basename(str(path)))
        return real_os_open(path, *a, **k)

    monkeypatch.setattr(builtins, "open", counting_open)
    monkeypatch.setattr(os, "open", counting_os_open)
    s.scores(chunk_runs=2)
    monkeypatch.undo()
    assert sorted(opened) == sorted(f"{r}.npz" for r in s.run_ids())


def test_packed_masks_and_single_mask(tmp_path):
    s = make(tmp_path, n_runs=3)
    m = s.masks()
    pb = s.masks(packed=True)
    assert isinstance(pb, PackedBits) and pb.shape == m.shape
    np.testing.assert_array_equal(pb.bits, PackedBits.pack(m).bits)
    for k, rid in enumerate(s.run_ids()):
        np.testing.assert_array_equal(s.mask(rid), m[k])
    empty = RunStore.create(tmp_path / "empty", n_train=N)
    assert empty.masks(packed=True).shape == (0, N) and empty.masks().shape == (0, N)


def test_scores_stream_matches_array_functions_with_groups(tmp_path):
    # phi kind with several subset ratios: totals and groups use different shifts
    rng = np.random.default_rng(8)
    s = RunStore.create(tmp_path / "s", n_train=N)
    ratios = [0.3, 0.5, 0.3, 0.7, 0.5, 0.3, 0.7, 0.5]
    for r in ratios:
        s.add_run(rng.random(N) < r, train_phi=rng.normal(size=N) * 5 + 100, subset_ratio=r)
    masks, phi = s.masks(), s.outcomes("train", "phi")
    for chunk in (1, 3, 8):
        df = s.scores("phi", chunk_runs=chunk)
        np.testing.assert_allclose(df["memorization"].to_numpy(), memscore.memorization(masks, phi), atol=1e-9)
        np.testing.assert_allclose(
            df["holdout_accuracy"].to_numpy(), memscore.holdout_accuracy(masks, phi, ratios=ratios), atol=1e-9
        )
        np.testing.assert_allclose(df["phi_mean_out"].to_numpy(), memscore.holdout_accuracy(masks, phi), atol=1e-9)


def test_field_table_covers_every_array_written(tmp_path):
    from memscore.runs.store.format import FIELDS

    rng = np.random.default_rng(1)
    s = RunStore.create(
        tmp_path / "s", n_train=N, n_test=T, train_labels=rng.integers(0, C, N), test_labels=rng.integers(0, C, T)
    )
    snaps = {"epochs": [1, 3]}
    for sp, n in (("train", N), ("test", T)):
        snaps[f"{sp}_correct"] = rng.random((2, n)) < 0.5
        for k in ("loss", "el2n", "grand"):
            snaps[f"{sp}_{k}"] = rng.random((2, n))
    mult = rng.integers(0, 3, N)
    s.add_run(
        mult > 0,
        train_logits=rng.normal(size=(N, C)),
        test_logits=rng.normal(size=(T, C)),
        keep_logits=True,
        snapshots=snaps,
        train_phi_views=rng.normal(size=(N, 3)),
        test_phi_views=rng.normal(size=(T, 3)),
        multiplicity=mult,
    )
    with zipfile.ZipFile(run_file(s, 0)) as zf:
        names = {n[:-4] for n in zf.namelist()} - {"meta"}
    assert names == set(FIELDS)
    assert s.outcomes("test", "phi_views").shape == (1, T, 3)
    assert s.verify() == []


def test_run_written_by_numpy_alone_per_the_spec_is_read(tmp_path):
    # The format is the contract: a run file made with np.savez and hashlib, as the package
    # docstring describes it, reads back and verifies (old stores open).
    import hashlib
    import json

    s = RunStore.create(tmp_path / "s", n_train=N, n_test=T)
    rng = np.random.default_rng(2)
    mask, correct, phi = rng.random(N) < 0.5, rng.random(N) < 0.5, rng.normal(size=N).astype(np.float32)
    arrays = {"mask_bits": np.packbits(mask), "train_correct_bits": np.packbits(correct), "train_phi": phi}
    h = hashlib.sha256()
    for name in sorted(arrays):
        h.update(arrays[name].tobytes())
    meta = {
        "format": "memscore-run",
        "version": 1,
        "run_id": "by-hand",
        "subset_ratio": 0.5,
        "metadata": {},
        "n_train": N,
        "n_test": T,
        "n_classes": None,
        "fields": ["train_correct", "train_phi"],
        "arrays": sorted(arrays),
        "created": "2026-01-01T00:00:00+00:00",
        "sha256": h.hexdigest(),
    }
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(s.path / "runs" / "by-hand.npz", **arrays)
    s.refresh()
    assert s.verify() == []
    np.testing.assert_array_equal(s.masks(), mask[None])
    np.testing.assert_array_equal(s.outcomes("train", "correct"), correct[None])
    np.testing.assert_array_equal(s.outcomes("train", "phi"), phi[None].astype(np.float64))
    assert s.run_info("by-hand")["subset_ratio"] == 0.5
