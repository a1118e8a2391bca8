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
