"""Tiny data and models shared by the training tests (imported as ``train_tiny``: pytest puts
this folder on the path, as ``tests/lm_tiny.py`` and ``tests/ray/ray_faults.py`` are)."""

from __future__ import annotations

from typing import Any

import numpy as np

TOL = dict(rtol=2e-4, atol=2e-4)
"""How close an ensemble member must be to the plain one-model loop (float32, other kernels)."""


def images(n: int = 24, size: int = 8, classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 CIFAR-shaped images whose class is a bright quadrant (learnable in a few steps)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.integers(0, 100, (n, 3, size, size)).astype(np.uint8)
    for i, c in enumerate(y):
        x[i, c % 3, : size // 2, : size // 2] += 120
    return x, y


def tiny_resnet() -> Any:
    """A CIFAR ResNet-8 of width 2 for 3 classes (BatchNorm, residual blocks)."""
    from memscore.models import cifar_resnet

    return cifar_resnet(3, width=2, depth=8)


def signals(n: int = 40, d: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """float32 Gaussian features shifted by their class (3 classes), for MLPs."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    return (rng.normal(size=(n, d)) + y[:, None]).astype(np.float32), y
