"""The networks the memorization papers train, as plain ``torch.nn`` modules (BatchNorm,
no Dropout; every one trains in a vmapped ensemble):

* :func:`cifar_resnet` — He et al. (2016)'s CIFAR ResNet (depth 6n+2, stages of width
  ``w, 2w, 4w``) with a width multiplier, for model-size sweeps (Lukasik et al. 2023);
* :func:`resnet18` — ResNet-18 with the CIFAR stem (3x3 convolution, no max-pool), as in
  Paul et al. (2021)'s data-diet experiments;
* :func:`wide_resnet` — pre-activation WideResNet-d-k (Zagoruyko & Komodakis 2016);
  WideResNet-16-4 is LiRA's target model (Carlini et al. 2022);
* :func:`resnet1d` — a small residual 1-D CNN for MNIST-1D signals.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from .._validate import check_int
from .config import _torch

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["cifar_resnet", "resnet18", "wide_resnet", "resnet1d"]


@functools.cache
def _classes() -> tuple[Any, Any]:
    """The module classes, defined once (torch is imported lazily; ``stack_module_state``
    needs every member to be of one class)."""
    nn = _torch().nn

    class Block(nn.Module):  # type: ignore[misc,name-defined]  # torch is Any here (lazy import)
        """A basic residual block of two 3-wide convolutions, in ``dim`` (1 or 2) spatial
        dimensions; post-activation (conv-BN-ReLU, He et al.) or pre-activation (BN-ReLU-conv,
        WideResNet). The shortcut is a strided 1x1 convolution when the shape changes."""

        def __init__(self, cin: int, cout: int, stride: int, dim: int, preact: bool) -> None:
            super().__init__()
            conv = nn.Conv1d if dim == 1 else nn.Conv2d
            bn = nn.BatchNorm1d if dim == 1 else nn.BatchNorm2d
            self.preact = preact
            self.bn1 = bn(cin if preact else cout)
            self.conv1 = conv(cin, cout, 3, stride=stride, padding=1, bias=False)
            self.conv2 = conv(cout, cout, 3, stride=1, padding=1, bias=False)
            self.bn2 = bn(cout)
            self.short = None
            if stride != 1 or cin != cout:
                self.short = nn.Sequential(
                    conv(cin, cout, 1, stride=stride, bias=False), *([] if preact else [bn(cout)])
                )
            self.relu = nn.ReLU()

        def forward(self, x: Any) -> Any:
            if self.preact:
                o = self.relu(self.bn1(x))
                skip = x if self.short is None else self.short(o)
                o = self.conv1(o)
                return self.conv2(self.relu(self.bn2(o))) + skip
            o = self.relu(self.bn1(self.conv1(x)))
            o = self.bn2(self.conv2(o))
            return self.relu(o + (x if self.short is None else self.short(x)))

    class Signal(nn.Module):  # type: ignore[misc,name-defined]
        """A 1-D network reading ``(n, L)`` inputs as one channel."""

        def __init__(self, body: Any) -> None:
            super().__init__()
            self.body = body

        def forward(self, x: Any) -> Any:
            return self.body(x.unsqueeze(-2) if x.ndim == 2 else x)

    return Block, Signal


def _resnet(
    in_channels: int, n_classes: int, stem: int, stages: list[tuple[int, int, int]], dim: int, preact: bool
) -> torch.nn.Module:
    """Stem convolution, stages of ``(width, blocks, first stride)``, global average pooling,
    a linear head. 1-D models accept ``(n, L)`` inputs as one channel."""
    nn = _torch().nn
    Block, Signal = _classes()
    conv = nn.Conv1d if dim == 1 else nn.Conv2d
    bn = nn.BatchNorm1d if dim == 1 else nn.BatchNorm2d
    layers: list[Any] = [conv(in_channels, stem, 3, padding=1, bias=False)]
    if not preact:
        layers += [bn(stem), nn.ReLU()]
    c = stem
    for width, blocks, stride in stages:
        for i in range(blocks):
            layers.append(Block(c, width, stride if i == 0 else 1, dim, preact))
            c = width
    if preact:
        layers += [bn(c), nn.ReLU()]
    pool = nn.AdaptiveAvgPool1d(1) if dim == 1 else nn.AdaptiveAvgPool2d(1)
    layers += [pool, nn.Flatten(), nn.Linear(c, n_classes)]
    body = nn.Sequential(*layers)
    out: torch.nn.Module = body if dim == 2 else Signal(body)
    return out


def cifar_resnet(n_classes: int = 10, width: int = 16, depth: int = 20, in_channels: int = 3) -> torch.nn.Module:
    """He et al. (2016)'s CIFAR ResNet-``depth`` with stage widths ``width, 2 width, 4 width``.

    Parameters
    ----------
    n_classes : int, default 10
        Output logits, >= 2.
    width : int, default 16
        Width of the first stage (16 is the paper's; the multiplier of a size sweep), >= 1.
    depth : int, default 20
        6n + 2 layers (20, 32, 44, 56, 110), >= 8.
    in_channels : int, default 3
        Input channels.

    Returns
    -------
    torch.nn.Module
        Maps ``(n, in_channels, H, W)`` images to ``(n, n_classes)`` logits.

    Examples
    --------
    >>> import torch
    >>> from memscore.models import cifar_resnet
    >>> cifar_resnet(10, width=4, depth=8)(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    """
    n_classes, width, depth = (
        check_int(n_classes, "n_classes", 2),
        check_int(width, "width", 1),
        check_int(depth, "depth", 8),
    )
    if (depth - 2) % 6:
        raise ValueError(f"depth: expected 6n + 2 (20, 32, 44, 56, 110), got {depth}")
    n = (depth - 2) // 6
    stages = [(width, n, 1), (2 * width, n, 2), (4 * width, n, 2)]
    return _resnet(check_int(in_channels, "in_channels", 1), n_classes, width, stages, 2, False)


def resnet18(n_classes: int = 10, width: int = 64, in_channels: int = 3) -> torch.nn.Module:
    """ResNet-18 with the CIFAR stem (3x3 convolution, no max-pool), stages ``width x (1, 2, 4, 8)``.

    Parameters
    ----------
    n_classes : int, default 10
        Output logits, >= 2.
    width : int, default 64
        Width of the first stage, >= 1.
    in_channels : int, default 3
        Input channels.

    Returns
    -------
    torch.nn.Module
    """
    n_classes, width = check_int(n_classes, "n_classes", 2), check_int(width, "width", 1)
    stages = [(width, 2, 1), (2 * width, 2, 2), (4 * width, 2, 2), (8 * width, 2, 2)]
    return _resnet(check_int(in_channels, "in_channels", 1), n_classes, width, stages, 2, False)


def wide_resnet(n_classes: int = 10, depth: int = 16, widen: int = 4, in_channels: int = 3) -> torch.nn.Module:
    """Pre-activation WideResNet-``depth``-``widen`` (no dropout); 16-4 is LiRA's model.

    Parameters
    ----------
    n_classes : int, default 10
        Output logits, >= 2.
    depth : int, default 16
        6n + 4 layers, >= 10.
    widen : int, default 4
        Width multiplier k: stages of ``16k, 32k, 64k`` channels, >= 1.
    in_channels : int, default 3
        Input channels.

    Returns
    -------
    torch.nn.Module
    """
    n_classes, depth, widen = (
        check_int(n_classes, "n_classes", 2),
        check_int(depth, "depth", 10),
        check_int(widen, "widen", 1),
    )
    if (depth - 4) % 6:
        raise ValueError(f"depth: expected 6n + 4 (10, 16, 22, 28, 40), got {depth}")
    n = (depth - 4) // 6
    stages = [(16 * widen, n, 1), (32 * widen, n, 2), (64 * widen, n, 2)]
    return _resnet(check_int(in_channels, "in_channels", 1), n_classes, 16, stages, 2, True)


def resnet1d(n_classes: int = 10, width: int = 32, blocks: int = 1, in_channels: int = 1) -> torch.nn.Module:
    """A small residual 1-D CNN with BatchNorm for MNIST-1D: a stem convolution, three stages
    of ``blocks`` residual blocks of width ``width, 2 width, 4 width`` (stride 2 between
    stages), global average pooling, a linear head.

    Parameters
    ----------
    n_classes : int, default 10
        Output logits, >= 2.
    width : int, default 32
        Width of the first stage, >= 1.
    blocks : int, default 1
        Residual blocks per stage, >= 1.
    in_channels : int, default 1
        Input channels; ``(n, L)`` inputs are read as one channel.

    Returns
    -------
    torch.nn.Module

    Examples
    --------
    >>> import torch
    >>> from memscore.models import resnet1d
    >>> resnet1d(10, width=4)(torch.zeros(2, 40)).shape
    torch.Size([2, 10])
    """
    n_classes, width, blocks = (
        check_int(n_classes, "n_classes", 2),
        check_int(width, "width", 1),
        check_int(blocks, "blocks", 1),
    )
    stages = [(width, blocks, 1), (2 * width, blocks, 2), (4 * width, blocks, 2)]
    return _resnet(check_int(in_channels, "in_channels", 1), n_classes, width, stages, 1, False)
