"""Allocation failure becomes ``MemoryError``, never an abort of the interpreter.

Each case runs in a subprocess that builds its inputs, caps its address space
(``RLIMIT_AS``) at what it has mapped then plus 256 MiB, and asks for more than that. The subprocess
must catch a ``MemoryError`` (naming what could not be allocated) and exit normally; a
SIGABRT, a ``PanicException`` or a segfault fails the test.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS and /proc are Linux features")

PRELUDE = textwrap.dedent(
    """
    import resource
    import numpy as np
    import memscore
    memscore.set_num_threads(2)
    memscore.get_num_threads()  # start the pool before capping
    def vm_bytes():
        for line in open("/proc/self/status"):
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    def cap():
        limit = vm_bytes() + (256 << 20)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    rng = np.random.default_rng(0)
    """
)

CASES = {
    # a (T, N) float32 matrix of 16 GB
    "influence_full": """
        masks = rng.random((64, 200_000)) < 0.5
        out = rng.random((64, 20_000)) < 0.5
        cap()
        memscore.influence(masks, out)
    """,
    # top-k with k near N on a problem whose (T, k) output needs ~12 GB
    "influence_topk": """
        masks = rng.random((64, 100_000)) < 0.5
        out = rng.random((64, 15_000)) < 0.5
        cap()
        memscore.influence(masks, out, top_k=100_000)
    """,
    # LiRA's (R, N) float64 output: 512 MB
    "lira": """
        masks = memscore.PackedBits(rng.integers(0, 256, (64, 125_000), dtype=np.uint8), 1_000_000)
        phi = rng.normal(size=(64, 1_000_000))
        cap()
        memscore.lira(masks, phi)
    """,
    # 4 M query bigrams over a 2^20-token vocabulary: the trie and the per-thread counters
    "ngrams": """
        tokens = rng.integers(0, 1 << 20, 2_000_000).astype(np.uint32)
        corpus = memscore.Corpus.from_tokens(tokens, np.arange(0, 2_000_000, 1000))
        qs = memscore.ngrams.QuerySet(corpus, rng.integers(0, 1 << 20, (4_000_000, 2)))
        cap()
        qs.count(corpus)
    """,
    # kNN with k = N: (Q, k) distances and indices, ~9 GB
    "knn": """
        keys = rng.random((200_000, 8), dtype=np.float32)
        cap()
        memscore.knn(keys[:5000], keys, k=200_000)
    """,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_allocation_failure_is_memory_error(case):
    case_code = textwrap.indent(textwrap.dedent(CASES[case]).strip(), "    ")
    body = (
        PRELUDE
        + "try:\n"
        + case_code
        + "\nexcept MemoryError as exc:\n    print('MemoryError:', exc)\nelse:\n    print('no error')\n"
    )
    out = subprocess.run([sys.executable, "-c", body], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"exit {out.returncode}\n{out.stdout}\n{out.stderr[-2000:]}"
    assert "PanicException" not in out.stderr
    assert out.stdout.startswith("MemoryError"), out.stdout + out.stderr[-2000:]
