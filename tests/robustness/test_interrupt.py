"""Ctrl-C stops a long kernel: SIGINT during a long call raises KeyboardInterrupt within a
few seconds instead of waiting for the kernel to finish."""

import signal
import subprocess
import sys
import textwrap
import time

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX")

CALLS = {
    # About 4e11 flops of masked-sum GEMM: minutes on a small machine.
    "influence": """
        masks = rng.random((500, 20000)) < 0.5
        outcomes = rng.random((500, 20000))
        go = lambda: memscore.influence(masks, outcomes, top_k=5)
    """,
    # LiRA over many runs and examples: each target's leave-one-out over sorted lists.
    "lira": """
        masks = rng.random((400, 400000)) < 0.5
        phi = rng.normal(size=(400, 400000))
        go = lambda: memscore.lira(masks, phi)
    """,
    # An n-gram pass over 30 M tokens with 200k queries and 100k pairs.
    "ngrams": """
        tokens = rng.integers(0, 2000, 30_000_000).astype(np.uint16)
        corpus = memscore.Corpus.from_tokens(tokens, np.arange(0, 30_000_000, 300))
        queries = rng.integers(0, 2000, (200_000, 2))
        pairs = [(list(a), list(b)) for a, b in zip(queries[:100_000], queries[100_000:])]
        go = lambda: memscore.ngram_stats(corpus, queries, pairs)
    """,
    # 200k x 100k x 64 distances.
    "knn": """
        keys = rng.random((100000, 64), dtype=np.float32)
        queries = rng.random((200000, 64), dtype=np.float32)
        index = memscore.KnnIndex(keys)
        go = lambda: index.search(queries, 10)
    """,
}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_sigint_interrupts_a_long_call(call):
    # Python's SIGINT handler even when this test runs with SIGINT ignored (a background job
    # of a non-interactive shell), which the child would inherit.
    script = "import signal\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
    script += "import time\nimport numpy as np\nimport memscore\nrng = np.random.default_rng(0)\n"
    script += textwrap.dedent(CALLS[call])
    script += textwrap.dedent(
        """
        print("started", flush=True)
        t0 = time.monotonic()
        try:
            for _ in range(20):  # long on any machine; each call is long on a small one
                go()
            print("finished", flush=True)
        except KeyboardInterrupt:
            print(f"interrupted after {time.monotonic() - t0:.2f}", flush=True)
            raise
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "started", line + proc.stderr.read() if proc.stderr else line
        time.sleep(1.0)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        waited = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "finished" not in out, "the call finished before the signal: make it longer"
    assert "interrupted" in out, out + err
    assert "KeyboardInterrupt" in err
    assert proc.returncode != 0
    assert waited < 5.0, f"took {waited:.1f} s to stop"
