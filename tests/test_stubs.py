"""The type stubs of the compiled module match it (mypy's stubtest)."""

import subprocess
import sys

import pytest


def test_core_stubs_match_the_compiled_module():
    pytest.importorskip("mypy")
    out = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "memscore._core"], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stdout + out.stderr
