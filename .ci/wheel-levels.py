"""Check an installed memscore (the wheel, not the source tree) on every vector level this
CPU has: each `MEMSCORE_VECTOR_LEVEL` runs in a fresh process, reports the kernel it was
given, and fits the same datamodels bit for bit (the float row kernels are lane-wise)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = r"""
import hashlib, json, numpy as np, memscore
rng = np.random.default_rng(0)
masks = rng.random((300, 75)) < 0.5
y = masks @ rng.normal(size=(75, 40)) + rng.normal(size=(300, 40))
dm = memscore.datamodels(masks, y, n_lambdas=12, seed=1)
correct = rng.random((300, 75)) < 0.7
mem = memscore.memorization(masks, correct)
digest = hashlib.sha256(dm.weights.tobytes() + np.asarray(mem).tobytes()).hexdigest()
print(json.dumps({"file": memscore.__file__, "kernel": memscore.cpu_info()["vector_kernel"], "digest": digest}))
"""


def main() -> None:
    best = None
    seen: dict[str, str] = {}
    for level in ("avx512", "avx2", "portable"):
        env = dict(os.environ, MEMSCORE_VECTOR_LEVEL=level)
        out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
        got = json.loads(out.stdout)
        if "site-packages" not in got["file"]:
            sys.exit(f"memscore imported from {got['file']}, not from the installed wheel")
        best = best or got["kernel"]
        print(f"MEMSCORE_VECTOR_LEVEL={level}: kernel {got['kernel']}, fit {got['digest'][:16]}")
        seen[got["kernel"]] = got["digest"]
    if len(set(seen.values())) != 1:
        sys.exit(f"the vector levels disagree: {seen}")
    if "Portable" not in seen:
        sys.exit("the portable path was not reached")
    print(f"every level ({', '.join(seen)}) gives the same fit; best on this CPU: {best}")


if __name__ == "__main__":
    main()
