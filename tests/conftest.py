import signal

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


def random_runs(rng: np.random.Generator, r: int, n: int, t: int, keep: float = 0.6, p: float = 0.7):
    """Random masks (R, N) and bool outcomes for train (R, N) and test (R, T)."""
    masks = rng.random((r, n)) < keep
    train = rng.random((r, n)) < p
    test = rng.random((r, t)) < p
    return masks, train, test


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray cluster (2 CPUs) for every Ray test of the session, started once;
    memscore's executors reuse this process's session. The Ray tests skip when ray is not
    installed (CI installs the ``ray`` extra, so they run there). It lives here, not in
    tests/ray/conftest.py: two rootless ``conftest`` modules would shadow each other."""
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(num_cpus=2, log_to_driver=False, include_dashboard=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def run_cli(capsys):
    """``run_cli(argv)`` runs ``memscore argv`` through its entry point: (exit code, stdout, stderr)."""

    def run(argv: list[str]) -> tuple[int, str, str]:
        from memscore.cli import main

        with pytest.raises(SystemExit) as e:
            main(argv)
        out = capsys.readouterr()
        return e.value.code, out.out, out.err

    return run


@pytest.fixture
def sigint_raises():
    """Python's own SIGINT handler for the test, and the previous one back after it.

    ``_thread.interrupt_main()`` does nothing while SIGINT is ignored, and a Python started
    with SIGINT ignored (a background job of a non-interactive shell: ``bash -c 'pytest &'``)
    never installs its handler: these tests are about memscore's reaction to Ctrl-C, not
    about how the test process was started."""
    before = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield before
    signal.signal(signal.SIGINT, before)
