"""Penultimate-layer embeddings of a torch model, read through a forward hook (the
representation ResMem's neighbours are found in)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from .._torch import require_torch
from .._validate import check_int

__all__ = ["extract_embeddings"]


def _batches(data: Any, batch_size: int) -> Iterable[Any]:
    torch = require_torch("extract_embeddings")

    if isinstance(data, np.ndarray):
        data = torch.from_numpy(data)
    if isinstance(data, torch.Tensor):
        for s in range(0, data.shape[0], batch_size):
            yield data[s : s + batch_size]
        return
    from torch.utils.data import DataLoader, Dataset

    if isinstance(data, Dataset):
        data = DataLoader(data, batch_size=batch_size, shuffle=False)
    if not isinstance(data, DataLoader):
        raise TypeError(f"data: expected a tensor, numpy array, Dataset or DataLoader, got {type(data).__name__}")
    for batch in data:
        if isinstance(batch, (tuple, list)):
            batch = batch[0]
        elif isinstance(batch, dict):
            batch = batch.get("input", batch.get("x"))
            if batch is None:
                raise ValueError("data: dict batches need an 'input' or 'x' entry")
        yield batch


def extract_embeddings(
    model: Any, data: Any, *, layer: Any = None, batch_size: int = 256, device: str = "cpu"
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Penultimate-layer embeddings and logits of a torch classifier over a dataset.

    Parameters
    ----------
    model:
        A ``torch.nn.Module`` mapping a batch of inputs to ``(B, C)`` logits.
    data:
        A tensor / numpy array of inputs, a ``Dataset`` or a ``DataLoader`` (batches may be
        ``(inputs, labels, ...)`` tuples; the first item is fed to the model). Order is kept.
    layer:
        Where to read embeddings. ``None``: the **input** of the model's last
        ``nn.Linear`` (the penultimate representation of a classifier head). A module or
        its name in ``model.named_modules()``: that module's **output**.
    batch_size:
        Batch size for tensors and Datasets (a DataLoader keeps its own).
    device:
        Where the forward passes run. The model is moved there and put in eval mode for
        the pass; its training flag is restored afterwards.

    Returns
    -------
    ``(embeddings (N, D), logits (N, C))`` float32 numpy arrays (embeddings flattened).
    """
    torch = require_torch("extract_embeddings")

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    check_int(batch_size, "batch_size", 1)
    modules = dict(model.named_modules())
    use_input = layer is None
    target: Any
    if layer is None:
        linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
        if not linears:
            raise ValueError("model: has no nn.Linear layer; pass layer= (a module or its name)")
        target = linears[-1]
    elif isinstance(layer, str):
        if layer not in modules:
            raise ValueError(f"layer: no module named {layer!r}; expected one of {sorted(k for k in modules if k)}")
        target = modules[layer]
    elif isinstance(layer, torch.nn.Module):
        target = layer
    else:
        raise TypeError(f"layer: expected None, a module or a module name, got {type(layer).__name__}")

    captured: list[Any] = []

    def hook(_mod: Any, inputs: Any, output: Any) -> None:
        t = inputs[0] if use_input else output
        if isinstance(t, (tuple, list)):
            t = t[0]
        captured.append(t.detach().reshape(t.shape[0], -1).float().cpu())

    was_training = model.training
    handle = target.register_forward_hook(hook)
    embs, logits = [], []
    try:
        model.to(device).eval()
        with torch.no_grad():
            for batch in _batches(data, batch_size):
                batch = batch.to(device)
                captured.clear()
                out = model(batch)
                if not captured:
                    raise ValueError("layer: the hooked module did not run in the forward pass")
                embs.append(captured[-1])
                logits.append(out.detach().float().cpu())
    finally:
        handle.remove()
        model.train(was_training)
    if not embs:
        raise ValueError("data: no batches (empty dataset)")
    return torch.cat(embs).numpy(), torch.cat(logits).numpy()
