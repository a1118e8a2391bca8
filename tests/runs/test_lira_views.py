"""LiRA with augmented queries: (R, N, K) confidences, one Gaussian pair per view, the
per-view log-likelihood ratios summed (Carlini et al. 2022), against the numpy reference."""

from __future__ import annotations

import numpy as np
import pytest

import memscore
from memscore.reference import scores as ref


@pytest.mark.parametrize("online", [True, False])
@pytest.mark.parametrize("fixed_variance", [False, True])
@pytest.mark.parametrize("k", [1, 2, 5])
def test_views_equal_the_reference(online, fixed_variance, k):
    pytest.importorskip("scipy")
    rng = np.random.default_rng(k)
    masks = rng.random((14, 11)) < 0.5
    phi = rng.normal(size=(14, 11, k)) + 2.0 * masks[:, :, None]
    got = memscore.lira(masks, phi, online=online, fixed_variance=fixed_variance)
    want = ref.lira(masks, phi, online=online, fixed_variance=fixed_variance)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9, equal_nan=True)
    if k == 1:  # one view is the plain score
        np.testing.assert_allclose(
            got, memscore.lira(masks, phi[:, :, 0], online=online, fixed_variance=fixed_variance)
        )


def test_more_views_separate_members_better():
    rng = np.random.default_rng(0)
    masks = rng.random((40, 200)) < 0.5
    # every view carries the same weak signal with independent noise
    phi = 0.5 * masks[:, :, None] + rng.normal(size=(40, 200, 8))
    auc1 = memscore.membership_metrics(memscore.lira(masks, phi[:, :, :1]), masks).auc
    auc8 = memscore.membership_metrics(memscore.lira(masks, phi), masks).auc
    assert auc8 > auc1 + 0.05


def test_view_edge_cases():
    masks = np.array([[1, 0], [1, 0], [1, 1]], dtype=bool)  # example 0 has no out-runs
    phi = np.arange(12, dtype=np.float64).reshape(3, 2, 2)
    got = memscore.lira(masks, phi)
    assert np.isnan(got[:, 0]).all()
    with pytest.raises(ValueError, match="K >= 1"):
        memscore.lira(masks, np.zeros((3, 2, 0)))
    with pytest.raises(ValueError):
        memscore.lira(masks, np.zeros((3, 3, 2)))  # N disagrees
    with pytest.raises(ValueError):
        memscore.lira(masks, np.full((3, 2, 2), np.nan))
    torch = pytest.importorskip("torch")
    np.testing.assert_allclose(memscore.lira(masks, torch.from_numpy(phi)), got, equal_nan=True)
