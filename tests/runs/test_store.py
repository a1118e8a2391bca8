"""Tests of memscore.RunStore: format, round trips, streamed scores, integrity, concurrency."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import memscore
from memscore import RunStore, StoreError

N, T, C = 37, 11, 4  # odd sizes so the packed bits have a ragged last byte


def make_store(tmp_path: Path, name: str = "store", **kw) -> RunStore:
    rng = np.random.default_rng(0)
    args = dict(
        n_train=N,
        n_test=T,
        train_labels=rng.integers(0, C, N),
        test_labels=rng.integers(0, C, T),
        n_classes=C,
        metadata={"dataset": "toy"},
    )
    args.update(kw)
    return RunStore.create(tmp_path / name, **args)


def fill(store: RunStore, n_runs: int, seed: int = 1, ratios=None, keep_logits=False) -> dict:
    """Add runs from logits; return the arrays fed in."""
    rng = np.random.default_rng(seed)
    out = {"masks": [], "train_logits": [], "test_logits": [], "ids": []}
    for r in range(n_runs):
        m = rng.random(store.n_train) < 0.5
        zt = rng.normal(size=(store.n_train, C))
        zs = rng.normal(size=(store.n_test, C))
        ratio = None if ratios is None else ratios[r]
        rid = store.add_run(m, train_logits=zt, test_logits=zs, subset_ratio=ratio, keep_logits=keep_logits)
        out["masks"].append(m)
        out["train_logits"].append(zt)
        out["test_logits"].append(zs)
        out["ids"].append(rid)
    return {k: (np.stack(v) if k != "ids" else v) for k, v in out.items()}


def close(a, b, tol=1e-12):
    np.testing.assert_allclose(a, b, rtol=0, atol=tol, equal_nan=True)


# --------------------------------------------------------------------------- create / open


def test_create_open_roundtrip(tmp_path):
    s = make_store(tmp_path)
    manifest = json.loads((s.path / "manifest.json").read_text())
    assert manifest["format"] == "memscore-runstore" and manifest["version"] == 1
    assert manifest["n_train"] == N and manifest["n_test"] == T and manifest["n_classes"] == C
    assert manifest["has_train_labels"] and manifest["has_test_labels"]
    assert manifest["metadata"] == {"dataset": "toy"} and "created" in manifest
    # labels are plain .npy, readable with numpy alone
    lab = np.load(s.path / "train_labels.npy")
    assert lab.dtype == np.int64 and lab.shape == (N,)

    o = RunStore.open(s.path)
    assert (o.n_train, o.n_test, o.n_classes) == (N, T, C)
    np.testing.assert_array_equal(o.train_labels, s.train_labels)
    np.testing.assert_array_equal(o.test_labels, s.test_labels)
    assert o.metadata == {"dataset": "toy"}
    assert len(o) == 0 and o.run_ids() == []


def test_create_without_labels(tmp_path):
    s = RunStore.create(tmp_path / "s", n_train=5)
    assert s.train_labels is None and s.test_labels is None and s.n_test == 0
    assert not (s.path / "train_labels.npy").exists()
    o = RunStore.open(tmp_path / "s")
    assert o.train_labels is None and o.n_classes is None


def test_create_twice_raises(tmp_path):
    make_store(tmp_path)
    with pytest.raises(StoreError, match="already holds"):
        make_store(tmp_path)


@pytest.mark.parametrize(
    "kw, exc",
    [
        ({"train_labels": np.zeros(N - 1, dtype=int)}, ValueError),
        ({"train_labels": np.zeros((N, 1), dtype=int)}, ValueError),
        ({"train_labels": np.zeros(N, dtype=float)}, TypeError),
        ({"train_labels": -np.ones(N, dtype=int)}, ValueError),
        ({"train_labels": np.full(N, C)}, ValueError),  # >= n_classes
        ({"n_train": 0}, ValueError),
        ({"n_classes": 1}, ValueError),
        ({"metadata": {"x": object()}}, TypeError),
    ],
)
def test_create_bad_arguments(tmp_path, kw, exc):
    with pytest.raises(exc):
        make_store(tmp_path, **kw)


def test_open_errors(tmp_path):
    with pytest.raises(StoreError, match="not a run store"):
        RunStore.open(tmp_path / "nothing")
    d = tmp_path / "bad"
    d.mkdir()
    (d / "manifest.json").write_text("{not json")
    with pytest.raises(StoreError, match="not valid JSON"):
        RunStore.open(d)
    (d / "manifest.json").write_text(json.dumps({"format": "other", "version": 1}))
    with pytest.raises(StoreError, match="expected format"):
        RunStore.open(d)
    s = make_store(tmp_path)
    m = json.loads((s.path / "manifest.json").read_text())
    m["version"] = 99
    (s.path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(StoreError, match="version 99"):
        RunStore.open(s.path)


# --------------------------------------------------------------------------- adding runs


def test_add_from_logits_roundtrip(tmp_path):
    s = make_store(tmp_path)
    data = fill(s, 6, keep_logits=True)
    assert len(s) == 6 and s.run_ids() == sorted(data["ids"]) == data["ids"]  # insertion order
    np.testing.assert_array_equal(s.masks(), data["masks"])
    for split, labels in (("train", s.train_labels), ("test", s.test_labels)):
        z = data[f"{split}_logits"]
        correct = s.outcomes(split, "correct")
        assert correct.dtype == np.bool_
        np.testing.assert_array_equal(correct, z.argmax(-1) == labels)
        phi = s.outcomes(split, "phi")
        assert phi.dtype == np.float64
        expect = memscore.logit_confidence(z, labels).astype(np.float32).astype(np.float64)
        np.testing.assert_array_equal(phi, expect)
        logits = s.outcomes(split, "logits")
        assert logits.dtype == np.float32 and logits.shape == z.shape
        np.testing.assert_array_equal(logits, z.astype(np.float32))


def test_run_file_readable_with_numpy_alone(tmp_path):
    s = make_store(tmp_path)
    rng = np.random.default_rng(3)
    m = rng.random(N) < 0.5
    rid = s.add_run(m, train_logits=rng.normal(size=(N, C)), subset_ratio=0.5, metadata={"lr": 0.1})
    with np.load(s.path / "runs" / f"{rid}.npz") as z:
        assert set(z.files) == {"mask_bits", "train_correct_bits", "train_phi", "train_pred", "meta"}
        np.testing.assert_array_equal(np.unpackbits(z["mask_bits"], count=N).astype(bool), m)
        assert z["train_phi"].dtype == np.float32
        meta = json.loads(z["meta"].tobytes().decode("utf-8"))
    assert meta["run_id"] == rid and meta["subset_ratio"] == 0.5 and meta["metadata"] == {"lr": 0.1}
    assert meta["n_train"] == N and meta["n_test"] == T and meta["n_classes"] == C
    assert sorted(meta["fields"]) == ["train_correct", "train_phi", "train_pred"]
    assert len(meta["sha256"]) == 64
    assert s.run_metadata(rid) == {"lr": 0.1}
    assert s.run_info(rid)["sha256"] == meta["sha256"]
    with pytest.raises(KeyError):
        s.run_metadata("nope")


def test_add_from_correct_and_phi(tmp_path):
    s = RunStore.create(tmp_path / "s", n_train=N, n_test=T)  # no labels needed
    rng = np.random.default_rng(5)
    masks = rng.random((4, N)) < 0.5
    cor = rng.random((4, N)) < 0.7
    phi = rng.normal(size=(4, N))
    tcor = rng.random((4, T)) < 0.6
    for r in range(4):
        s.add_run(masks[r], train_correct=cor[r], train_phi=phi[r], test_correct=tcor[r].astype(int))
    np.testing.assert_array_equal(s.masks(), masks)
    np.testing.assert_array_equal(s.outcomes("train", "correct"), cor)
    np.testing.assert_array_equal(s.outcomes("test", "correct"), tcor)
    np.testing.assert_array_equal(s.outcomes("train", "phi"), phi.astype(np.float32).astype(np.float64))
    with pytest.raises(StoreError, match=r"runs/.*\.npz: this run has no test_phi"):
        s.outcomes("test", "phi")
    with pytest.raises(StoreError, match="no train_logits"):
        s.outcomes("train", "logits")
    assert np.isnan(s.subset_ratios()).all()


def test_iter_chunks(tmp_path):
    s = make_store(tmp_path)
    fill(s, 7)
    chunks = list(s.iter_chunks(3, split="test", kind="phi"))
    assert [m.shape[0] for m, _ in chunks] == [3, 3, 1]
    np.testing.assert_array_equal(np.concatenate([m for m, _ in chunks]), s.masks())
    np.testing.assert_array_equal(np.concatenate([o for _, o in chunks]), s.outcomes("test", "phi"))


def test_add_run_validation(tmp_path):
    s = make_store(tmp_path)
    rng = np.random.default_rng(7)
    m = rng.random(N) < 0.5
    with pytest.raises(ValueError, match=rf"mask: expected shape \({N},\)"):
        s.add_run(m[:-1])
    with pytest.raises(TypeError):
        s.add_run(m.astype(float) + 0.5)
    with pytest.raises(ValueError, match="expected 4 classes"):
        s.add_run(m, train_logits=rng.normal(size=(N, C + 1)))
    with pytest.raises(ValueError, match=rf"expected shape \({N}, n_classes\)"):
        s.add_run(m, train_logits=rng.normal(size=(N + 1, C)))
    bad = rng.normal(size=(N, C))
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        s.add_run(m, train_logits=bad)
    with pytest.raises(ValueError, match="NaN"):
        s.add_run(m, train_phi=np.full(N, np.nan))
    with pytest.raises(ValueError, match="given together"):
        s.add_run(m, train_logits=rng.normal(size=(N, C)), train_correct=m)
    with pytest.raises(ValueError, match=rf"train_correct: expected shape \({N},\)"):
        s.add_run(m, train_correct=m[:5])
    with pytest.raises(ValueError, match=rf"test_phi: expected shape \({T},\)"):
        s.add_run(m, test_phi=np.zeros(N))
    with pytest.raises(ValueError, match="run_id"):
        s.add_run(m, run_id="../escape")
    with pytest.raises(ValueError, match="subset_ratio"):
        s.add_run(m, subset_ratio=1.5)
    assert len(s) == 0  # nothing was written by failed adds
    assert list((s.path / "runs").iterdir()) == []


def test_logits_need_labels_and_test_split(tmp_path):
    s = RunStore.create(tmp_path / "s", n_train=N)
    rng = np.random.default_rng(8)
    m = rng.random(N) < 0.5
    with pytest.raises(ValueError, match="labels"):
        s.add_run(m, train_logits=rng.normal(size=(N, C)))
    with pytest.raises(ValueError, match="n_test = 0"):
        s.add_run(m, test_correct=np.ones(3, dtype=bool))


def test_class_count_agrees_without_n_classes(tmp_path):
    s = make_store(tmp_path, n_classes=None)
    rng = np.random.default_rng(9)
    m = rng.random(N) < 0.5
    s.add_run(m, train_correct=m)  # no logits: fixes nothing
    s.add_run(m, train_logits=rng.normal(size=(N, C)))
    with pytest.raises(ValueError, match="expected 4 classes"):
        s.add_run(m, train_logits=rng.normal(size=(N, C + 2)))
    # a fresh handle sees the class count recorded in the runs
    with pytest.raises(ValueError, match="expected 4 classes"):
        RunStore.open(s.path).add_run(m, test_logits=rng.normal(size=(T, C + 2)))


def test_duplicate_run_id(tmp_path):
    s = make_store(tmp_path)
    m = np.ones(N, dtype=bool)
    assert s.add_run(m, run_id="run-1.a") == "run-1.a"
    with pytest.raises(StoreError, match="run id already exists"):
        s.add_run(m, run_id="run-1.a")
    assert s.run_ids() == ["run-1.a"]
    assert "run-1.a" in s and "other" not in s


def test_leftover_tmp_file_is_not_a_run(tmp_path):
    s = make_store(tmp_path)
    fill(s, 2)
    # a crash between writing the temporary file and linking it leaves this behind
    (s.path / "runs" / ".tmp-deadbeef.npz").write_bytes(b"PK\x03\x04 partial")
    assert len(s) == 2
    assert s.masks().shape == (2, N)
    problems = s.verify()
    assert len(problems) == 1 and ".tmp-deadbeef.npz" in problems[0] and "temporary" in problems[0]


# --------------------------------------------------------------------------- streamed scores


@pytest.mark.parametrize("chunk_runs", [1, 3, 256])
def test_memorization_matches_array_functions(tmp_path, chunk_runs):
    s = make_store(tmp_path)
    fill(s, 10)
    masks = s.masks()
    for kind in ("correct", "phi"):
        o = s.outcomes("train", kind)
        mem, se = memscore.memorization(masks, o, stderr=True)
        got_mem, got_se = s.memorization(kind, stderr=True, chunk_runs=chunk_runs)
        close(got_mem, mem)
        close(got_se, se)
        close(s.memorization(kind, chunk_runs=chunk_runs), mem)
        close(s.holdout_accuracy(kind, chunk_runs=chunk_runs), memscore.holdout_accuracy(masks, o))


def test_holdout_groups_by_subset_ratio(tmp_path):
    s = make_store(tmp_path)
    ratios = [0.25, 0.5, 0.75, 0.5, 0.25, 0.75, 0.5, 0.25, 0.5, 0.75, 0.25]
    fill(s, len(ratios), ratios=ratios)
    np.testing.assert_array_equal(s.subset_ratios(), ratios)
    masks = s.masks()
    for kind in ("correct", "phi"):
        o = s.outcomes("train", kind)
        expect = memscore.holdout_accuracy(masks, o, ratios=np.array(ratios))
        for chunk in (2, 5, 256):
            close(s.holdout_accuracy(kind, chunk_runs=chunk), expect)
    df = s.scores(chunk_runs=4)
    close(df["holdout_accuracy"].to_numpy(), memscore.holdout_accuracy(masks, s.outcomes(), ratios=np.array(ratios)))
    close(df["memorization"].to_numpy(), memscore.memorization(masks, s.outcomes()))


def test_scores_table_and_parquet(tmp_path):
    s = make_store(tmp_path)
    fill(s, 9)
    masks, cor, phi = s.masks(), s.outcomes(), s.outcomes("train", "phi")
    df = s.scores(chunk_runs=4)
    assert df.columns == [
        "index", "label", "n_in", "n_out", "memorization", "memorization_stderr",
        "holdout_accuracy", "phi_mean_in", "phi_mean_out",
        "el2n", "grand", "loss", "forgetting_events", "never_learned", "learning_speed",
    ]  # fmt: skip
    assert df.height == N
    assert df.schema["index"] == pl.Int64 and df.schema["n_in"] == pl.Int64
    assert df.schema["memorization"] == pl.Float64
    np.testing.assert_array_equal(df["label"].to_numpy(), s.train_labels)
    np.testing.assert_array_equal(df["n_in"].to_numpy(), masks.sum(0))
    np.testing.assert_array_equal(df["n_out"].to_numpy(), (~masks).sum(0))
    mem, se = memscore.memorization(masks, cor, stderr=True)
    close(df["memorization"].to_numpy(), mem)
    close(df["memorization_stderr"].to_numpy(), se)
    close(df["holdout_accuracy"].to_numpy(), memscore.holdout_accuracy(masks, cor))
    stats = memscore.OutcomeStats.from_runs(masks, phi)
    close(df["phi_mean_in"].to_numpy(), stats.mean_in())
    close(df["phi_mean_out"].to_numpy(), stats.mean_out())

    out = tmp_path / "scores.parquet"
    df.write_parquet(out)
    back = pl.read_parquet(out)
    assert back.schema == df.schema
    assert back.equals(df)


def test_scores_without_labels_or_phi(tmp_path):
    s = RunStore.create(tmp_path / "s", n_train=N)
    rng = np.random.default_rng(11)
    for _ in range(5):
        s.add_run(rng.random(N) < 0.5, train_correct=rng.random(N) < 0.5)
    df = s.scores()
    assert df["label"].null_count() == N
    assert df["phi_mean_in"].null_count() == N and df["phi_mean_out"].null_count() == N
    close(df["memorization"].to_numpy(), memscore.memorization(s.masks(), s.outcomes()))


def test_empty_store_scores_raise(tmp_path):
    s = make_store(tmp_path)
    assert s.masks().shape == (0, N)
    with pytest.raises(StoreError, match="no runs"):
        s.memorization()


def test_influence_and_pairs(tmp_path):
    s = make_store(tmp_path)
    fill(s, 12)
    masks, tc = s.masks(), s.outcomes("test", "correct")
    close(s.influence(), memscore.influence(masks, tc), tol=0)
    full64 = s.influence(kind="phi", dtype=np.float64)
    close(full64, memscore.influence(masks, s.outcomes("test", "phi"), dtype=np.float64))
    k = 5
    idx, val = memscore.influence(masks, tc, top_k=k)
    df = s.influence_pairs(k)
    assert df.columns == ["test_index", "rank", "train_index", "influence", "test_label", "train_label"]
    for j in range(T):
        rows = df.filter(pl.col("test_index") == j).sort("rank")
        keep = idx[j] >= 0
        np.testing.assert_array_equal(rows["train_index"].to_numpy(), idx[j][keep])
        np.testing.assert_array_equal(rows["rank"].to_numpy(), np.arange(keep.sum()))
        close(rows["influence"].to_numpy(), val[j][keep])
        np.testing.assert_array_equal(rows["train_label"].to_numpy(), s.train_labels[idx[j][keep]])
        assert (rows["test_label"].to_numpy() == s.test_labels[j]).all()
    # same class: matches the labelled top-k
    idx2, val2 = memscore.influence(masks, tc, top_k=k, train_labels=s.train_labels, test_labels=s.test_labels)
    df2 = s.influence_pairs(k, same_class=True)
    assert (df2["test_label"] == df2["train_label"]).all()
    np.testing.assert_array_equal(df2.sort(["test_index", "rank"])["train_index"].to_numpy(), idx2[idx2 >= 0])
    df2.write_parquet(tmp_path / "pairs.parquet")
    assert pl.read_parquet(tmp_path / "pairs.parquet").equals(df2)


def test_lira_matches(tmp_path):
    s = make_store(tmp_path)
    fill(s, 8)
    expect = memscore.lira(s.masks(), s.outcomes("train", "phi"))
    close(s.lira(), expect)
    close(
        s.lira(online=False, fixed_variance=True),
        memscore.lira(s.masks(), s.outcomes("train", "phi"), online=False, fixed_variance=True),
    )


# --------------------------------------------------------------------------- integrity


def _run_file(s: RunStore, k: int) -> Path:
    return s.path / "runs" / f"{s.run_ids()[k]}.npz"


def test_verify_healthy(tmp_path):
    s = make_store(tmp_path)
    fill(s, 3, keep_logits=True)
    assert s.verify() == []


def test_truncated_file_detected(tmp_path):
    s = make_store(tmp_path)
    fill(s, 4)
    p = _run_file(s, 2)
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    problems = s.verify()
    assert len(problems) == 1 and problems[0].startswith(f"runs/{p.name}:")
    with pytest.raises(StoreError, match=p.name):
        s.masks()
    with pytest.raises(StoreError, match=p.name):
        s.memorization()


def test_flipped_byte_detected(tmp_path):
    s = make_store(tmp_path)
    fill(s, 4)
    p = _run_file(s, 1)
    # flip a byte in the middle of the train_phi array's data
    with zipfile.ZipFile(p) as zf:
        info = zf.getinfo("train_phi.npy")
    raw = bytearray(p.read_bytes())
    name_len = int.from_bytes(raw[info.header_offset + 26 : info.header_offset + 28], "little")
    extra_len = int.from_bytes(raw[info.header_offset + 28 : info.header_offset + 30], "little")
    data_start = info.header_offset + 30 + name_len + extra_len
    pos = data_start + info.file_size // 2
    raw[pos] ^= 0xFF
    p.write_bytes(bytes(raw))
    problems = s.verify()
    assert len(problems) == 1 and f"runs/{p.name}" in problems[0] and "CRC" in problems[0]
    with pytest.raises(StoreError, match=p.name):
        s.outcomes("train", "phi")
    with pytest.raises(StoreError, match=p.name):
        s.scores()


def test_checksum_mismatch_detected(tmp_path):
    # A run rewritten with valid zip CRCs but different data: only the sha256 catches it.
    s = make_store(tmp_path)
    fill(s, 2)
    p = _run_file(s, 0)
    with np.load(p) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["train_phi"] = arrays["train_phi"] + 1
    with open(p, "wb") as f:
        np.savez(f, **arrays)
    problems = s.verify()
    assert problems == [f"runs/{p.name}: sha256 checksum mismatch (contents changed since written)"]


# --------------------------------------------------------------------------- concurrency

WORKER = textwrap.dedent(
    """
    import sys
    import numpy as np
    import memscore
    path, seed, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    store = memscore.RunStore.open(path)
    rng = np.random.default_rng(seed)
    for _ in range(n):
        rid = store.add_run(
            rng.random(store.n_train) < 0.5,
            train_correct=rng.random(store.n_train) < 0.5,
            train_phi=rng.normal(size=store.n_train),
            subset_ratio=0.5,
            metadata={"worker": seed},
        )
        print(rid, flush=True)
    """
)


def test_concurrent_adds_lose_no_run(tmp_path):
    s = RunStore.create(tmp_path / "s", n_train=N)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(s.path), str(w), "5"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(4)
    ]
    ids = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        ids += out.split()
    assert len(ids) == 20 and len(set(ids)) == 20
    assert s.run_ids() == []  # the object reads its snapshot of the run list ...
    assert s.refresh() == sorted(ids)  # ... until refreshed
    assert s.run_ids() == sorted(ids)
    assert s.verify() == []
    workers = sorted(s.run_metadata(r)["worker"] for r in s.run_ids())
    assert workers == sorted(list(range(4)) * 5)
    assert not [f for f in os.listdir(s.path / "runs") if f.startswith(".tmp-")]


SAME_ID = textwrap.dedent(
    """
    import sys
    import numpy as np
    import memscore
    store = memscore.RunStore.open(sys.argv[1])
    try:
        store.add_run(np.ones(store.n_train, dtype=bool), run_id="same", metadata={"w": int(sys.argv[2])})
        print("ok")
    except memscore.StoreError:
        print("exists")
    """
)


def test_concurrent_same_run_id_one_wins(tmp_path):
    s = RunStore.create(tmp_path / "s", n_train=N)
    procs = [
        subprocess.Popen([sys.executable, "-c", SAME_ID, str(s.path), str(w)], stdout=subprocess.PIPE, text=True)
        for w in range(4)
    ]
    results = sorted(p.communicate(timeout=120)[0].strip() for p in procs)
    assert results == ["exists"] * 3 + ["ok"]
    s.refresh()
    assert s.run_ids() == ["same"] and s.verify() == []


# --------------------------------------------------------------------------- merge


def test_merge_equals_single_store(tmp_path):
    rng = np.random.default_rng(21)
    labels = rng.integers(0, C, N), rng.integers(0, C, T)
    kw = dict(n_train=N, n_test=T, train_labels=labels[0], test_labels=labels[1], n_classes=C)
    a = RunStore.create(tmp_path / "a", **kw)
    b = RunStore.create(tmp_path / "b", **kw)
    whole = RunStore.create(tmp_path / "whole", **kw)
    for r in range(10):
        m = rng.random(N) < 0.5
        zt, zs = rng.normal(size=(N, C)), rng.normal(size=(T, C))
        rid = f"run{r:03d}"
        (a if r % 3 else b).add_run(m, train_logits=zt, test_logits=zs, run_id=rid, subset_ratio=0.5)
        whole.add_run(m, train_logits=zt, test_logits=zs, run_id=rid, subset_ratio=0.5)
    merged = RunStore.merge([tmp_path / "a", b], tmp_path / "merged")
    assert merged.run_ids() == whole.run_ids()
    np.testing.assert_array_equal(merged.masks(), whole.masks())
    for split in ("train", "test"):
        for kind in ("correct", "phi"):
            np.testing.assert_array_equal(merged.outcomes(split, kind), whole.outcomes(split, kind))
    assert merged.scores().equals(whole.scores())
    assert merged.verify() == []
    # merging again is a no-op (identical duplicates are skipped) ...
    again = RunStore.merge([a, b], tmp_path / "merged")
    assert len(again) == 10
    # ... but a different run under an existing id is a conflict
    c = RunStore.create(tmp_path / "c", **kw)
    c.add_run(np.ones(N, dtype=bool), train_correct=np.ones(N, dtype=bool), run_id="run000")
    with pytest.raises(StoreError, match="run000"):
        RunStore.merge([c], tmp_path / "merged")


def test_merge_incompatible(tmp_path):
    a = make_store(tmp_path, "a")
    fill(a, 2)
    b = make_store(tmp_path, "b", n_train=N + 1, train_labels=None)
    with pytest.raises(StoreError, match="n_train"):
        RunStore.merge([a, b], tmp_path / "out")
    assert not (tmp_path / "out" / "manifest.json").exists()
    rng = np.random.default_rng(99)
    c = make_store(tmp_path, "c", train_labels=rng.integers(0, C, N))
    with pytest.raises(StoreError, match="train_labels"):
        RunStore.merge([a, c], tmp_path / "out")
    # an existing, incompatible destination
    with pytest.raises(StoreError):
        RunStore.merge([a], tmp_path / "b")


def test_iter_chunks_validates_eagerly(tmp_path):
    s = RunStore.create(tmp_path / "s", n_train=N)
    with pytest.raises(ValueError, match="n_test = 0"):
        s.iter_chunks(split="test")
    with pytest.raises(ValueError, match="kind"):
        s.iter_chunks(kind="loss")
    with pytest.raises(ValueError, match="chunk_runs"):
        s.iter_chunks(0)
    assert list(s.iter_chunks()) == []
