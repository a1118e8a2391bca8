"""Extreme size-like arguments to the Rust-backed functions: every call either works or
raises ValueError / TypeError / MemoryError, never a PanicException and never a crash.

The calls run in one subprocess (a crash there fails the tests instead of the session);
each case prints one line of JSON: its name and the outcome.
"""

import json
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    r"""
    import json, sys
    import numpy as np
    import memscore
    from memscore import PackedBits, _core

    SIZES = {"0": 0, "1": 1, "2**31": 2**31, "2**63-1": 2**63 - 1, "u64max": np.uint64(2**64 - 1)}
    rng = np.random.default_rng(0)
    masks = rng.random((5, 7)) < 0.5
    test = rng.random((5, 3)) < 0.5
    testf = rng.random((5, 3))
    phi = rng.normal(size=(5, 7))
    keys = rng.random((20, 4), dtype=np.float32)
    queries = rng.random((6, 4), dtype=np.float32)
    index = memscore.KnnIndex(keys)
    default_threads = memscore.get_num_threads()
    # (T, N) = (2**24, 2**24) influence: 2**50 bytes, beyond any address space.
    wide = PackedBits(np.zeros((1, 2**21), np.uint8), 2**24)

    def report(name, fn):
        try:
            out = fn()
            res = "ok"
            if isinstance(out, tuple):
                res = "ok " + " ".join(str(np.shape(o)) for o in out)
        except BaseException as e:  # noqa: BLE001 - the point is to see everything
            res = type(e).__name__ + ": " + str(e)[:200]
        print(json.dumps({"case": name, "result": res}), flush=True)

    for label, v in SIZES.items():
        report(f"influence top_k={label}", lambda: memscore.influence(masks, test, top_k=v))
        report(f"influence float top_k={label}", lambda: memscore.influence(masks, testf, top_k=v))
        report(f"core influence_topk k={label}", lambda: _core.influence_topk(np.packbits(masks, axis=1), np.packbits(test, axis=1), 7, 3, int(v)))
        report(f"core influence_full n_train={label}", lambda: _core.influence_full(np.packbits(masks, axis=1), testf, int(v), 3))
        report(f"core influence_full n_test={label}", lambda: _core.influence_full(np.packbits(masks, axis=1), np.packbits(test, axis=1), 7, int(v)))
        report(f"core outcome_sums_bool n={label}", lambda: _core.outcome_sums_bool(np.packbits(masks, axis=1), np.packbits(masks, axis=1), int(v)))
        report(f"core outcome_sums_f64 n={label}", lambda: _core.outcome_sums_f64(np.packbits(masks, axis=1), phi, int(v)))
        report(f"core lira_scores n={label}", lambda: _core.lira_scores(np.packbits(masks, axis=1), phi, int(v)))
        report(f"memorization PackedBits n={label}", lambda: memscore.memorization(PackedBits(np.packbits(masks, axis=1), v), masks))
        report(f"holdout_accuracy PackedBits n={label}", lambda: memscore.holdout_accuracy(masks, PackedBits(np.packbits(masks, axis=1), v)))
        report(f"lira PackedBits n={label}", lambda: memscore.lira(PackedBits(np.packbits(masks, axis=1), v), phi))
        report(f"logit_confidence label={label}", lambda: memscore.logit_confidence(phi[:, :3], np.array([v] * 5)))
        report(f"knn k={label}", lambda: memscore.knn(queries, keys, v))
        report(f"knn threads={label}", lambda: memscore.knn(queries, keys, 2, threads=v))
        report(f"KnnIndex threads={label}", lambda: memscore.KnnIndex(keys, threads=v))
        report(f"KnnIndex.search k={label}", lambda: index.search(queries, v))
        report(f"KnnIndex.search threads={label}", lambda: index.search(queries, 2, threads=v))
        report(f"core KnnIndexCore.search k={label}", lambda: index._core.search(queries, int(v)))
        report(f"set_num_threads {label}", lambda: memscore.set_num_threads(v))
        report(f"core set_num_threads {label}", lambda: _core.set_num_threads(int(v)))
        memscore.set_num_threads(default_threads)
    report("influence (2**24, 2**24) float32", lambda: memscore.influence(wide, wide))
    report("influence (2**24, 2**24) stderr", lambda: memscore.influence(wide, wide, stderr=True))
    print("DONE", flush=True)
    """
)

ALLOWED = ("ok", "ValueError", "TypeError", "MemoryError")


@pytest.fixture(scope="module")
def outcomes() -> dict[str, str]:
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=600)
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0 and lines and lines[-1] == "DONE", (
        f"the subprocess crashed (exit {proc.returncode}) after: {lines[-3:]}\n{proc.stderr[-3000:]}"
    )
    return {d["case"]: d["result"] for d in map(json.loads, lines[:-1])}


def test_no_panic_and_no_crash(outcomes):
    bad = {k: v for k, v in outcomes.items() if not v.startswith(ALLOWED)}
    assert not bad, bad
    assert len(outcomes) == 5 * 20 + 2


@pytest.mark.parametrize("label", ["0", "2**31", "2**63-1", "u64max"])
def test_bad_thread_counts_are_value_or_type_errors(outcomes, label):
    for case in ("knn threads", "KnnIndex threads", "KnnIndex.search threads", "set_num_threads"):
        assert outcomes[
            f"{case}={label}" if "threads" in case and case != "set_num_threads" else f"{case} {label}"
        ].startswith(("ValueError", "TypeError"))
    if label != "u64max":  # numpy integers are refused by type before the core sees them
        assert "between 1 and" in outcomes[f"core set_num_threads {label}"] or label == "0"


def test_top_k_above_n_is_clamped(outcomes):
    # (T, min(top_k, N)) = (3, 7)
    for label in ("2**31", "2**63-1", "u64max"):
        assert outcomes[f"influence top_k={label}"] == "ok (3, 7) (3, 7)"
        assert outcomes[f"core influence_topk k={label}"] == "ok (3, 7) (3, 7)"
    assert outcomes["influence top_k=0"].startswith("ValueError")


def test_huge_outputs_are_memory_errors(outcomes):
    for case in ("influence (2**24, 2**24) float32", "influence (2**24, 2**24) stderr"):
        assert outcomes[case].startswith("MemoryError"), outcomes[case]
        assert "influence" in outcomes[case] or "standard errors" in outcomes[case]


@pytest.mark.parametrize("value", ["abc", "0", "-3", "100000", "18446744073709551616", ""])
def test_invalid_env_thread_count_falls_back_to_the_default(value):
    import os

    code = "import memscore; print(memscore.get_num_threads())"

    def threads(env):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
        assert out.returncode == 0, out.stderr
        return int(out.stdout)

    default = threads({k: v for k, v in os.environ.items() if k != "MEMSCORE_NUM_THREADS"})
    assert threads(dict(os.environ, MEMSCORE_NUM_THREADS=value)) == default


def test_valid_env_thread_count_is_used():
    import os

    env = dict(os.environ, MEMSCORE_NUM_THREADS="1")
    code = "import memscore; print(memscore.get_num_threads())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=True)
    assert out.stdout.strip() == "1"


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_pool_works_after_fork():
    # A forked child inherits the pool object but not its threads; memscore rebuilds it.
    code = textwrap.dedent(
        """
        import os, numpy as np, memscore
        m = np.random.default_rng(0).random((9, 40)) < 0.5
        want = memscore.influence(m, m)
        pid = os.fork()
        if pid == 0:
            ok = np.array_equal(memscore.influence(m, m), want) and memscore.get_num_threads() >= 1
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "0", out.stdout + out.stderr
