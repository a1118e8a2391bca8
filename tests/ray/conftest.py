"""One local Ray cluster (2 CPUs) for every Ray test of the session; the Ray tests skip
when ray is not installed (each module calls ``pytest.importorskip("ray")``; CI installs
the ``ray`` extra, so they run there)."""

import pytest


@pytest.fixture(scope="session")
def ray_cluster():
    """A local cluster started once; memscore's executors reuse this process's session."""
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(num_cpus=2, log_to_driver=False, include_dashboard=False)
    yield ray
    ray.shutdown()
