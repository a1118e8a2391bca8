"""The checks a training job passes before any run trains: the device, the data, the
model (its output, and that ``torch.func.vmap`` runs it as an ensemble), the
augmentations, and the store's examples against the data.

They run where the training tasks run (:func:`memscore.train.tasks.check_task`), since
the device and the data may only exist there (a Ray worker's GPU, a dataset loaded by name).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import StoreError
from .config import TrainConfig, _torch
from .ensemble import _Ensemble

__all__: list[str] = []


def _check_model(
    model: Any, x: Any, n_classes: int, split: str = "train", labels: dict[str, Any] | None = None
) -> None:
    """The model maps the batch ``x`` of ``split`` inputs to ``(len(x), n_classes)`` logits.
    When it gives fewer classes than the store's ``n_classes`` and the train ``labels`` fit
    them but another split's reach beyond them (the store counted those), the labels are
    named, not the model."""
    torch = _torch()
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model_fn: expected it to return a torch.nn.Module, got {type(model).__name__}")
    if not any(True for _ in model.parameters()):
        raise ValueError("model_fn: the model has no parameters to train")
    model.eval()  # a shape check that leaves BatchNorm's running statistics alone
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as exc:  # noqa: BLE001 - the user's model failing on a real batch: name it
        raise ValueError(
            f"model_fn: the model fails on a batch of {split} inputs of shape {tuple(x.shape)} {x.dtype} "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from exc
    finally:
        model.train()
    want = (x.shape[0], n_classes)
    if isinstance(out, torch.Tensor) and out.ndim == 2 and out.shape[0] == x.shape[0] and out.shape[1] < n_classes:
        c = int(out.shape[1])
        given = labels or {}
        fits = given.get("train") is not None and int(given["train"].max()) < c
        for name, y in given.items():
            if fits and y is not None and int(y.max()) >= c:
                i = int(torch.nonzero(y >= c)[0, 0])
                raise ValueError(
                    f"{name} labels: label {int(y[i])} at index {i} is beyond the model's {c} classes "
                    f"(0..{c - 1}); the store counts n_classes={n_classes}"
                )
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != want:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"model_fn: expected the model to map {tuple(x.shape)} {split} inputs to {want} logits, got {shape}"
        )


def _check_labels(y: Any, n_classes: int, name: str) -> None:
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= n_classes:
        raise ValueError(f"{name}: expected labels in 0..{n_classes - 1}, got range {lo}..{hi}")


def _batch_dependent(model: Any) -> bool:
    """Whether the model's training forward mixes the examples of a batch (BatchNorm): then
    every member's batch must hold exactly its own examples (no padding)."""
    torch = _torch()
    return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())


def _check_vmappable(models: list[Any], x: Any, n_classes: int, cfg: TrainConfig, dev: Any) -> None:
    """One vmapped training forward and backward of a 2-member ensemble on a tiny batch,
    naming the innermost module that ``torch.func.vmap`` cannot run."""
    import dataclasses

    torch = _torch()
    # uncompiled: a compilation for this tiny batch would cost as much as the real one
    ens = _Ensemble(models, dataclasses.replace(cfg, compile=False), dev, 1)
    entered: list[str] = []

    def pre(name: str) -> Callable[..., None]:
        return lambda *_: entered.append(name)

    def post(*_: Any) -> None:
        entered.pop()

    hooks = []
    for name, mod in ens.base.named_modules():
        hooks += [mod.register_forward_pre_hook(pre(name or "the model")), mod.register_forward_hook(post)]
    xb = x.unsqueeze(0).expand(ens.E, *x.shape)
    try:
        out = ens.forward_train(xb)
        torch.autograd.grad(out.float().sum(), ens.params)
    except Exception as exc:  # noqa: BLE001 - any failure here is the model's; name its module
        where = entered[-1] if entered else "the model"
        kind = type(ens.base.get_submodule(where)).__name__ if entered and where != "the model" else ""
        raise ValueError(
            f"model_fn: module {where!r} {kind} cannot run in a vmapped ensemble ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); use ensemble=1 or a vmap-compatible module"
        ) from exc
    finally:
        for h in hooks:
            h.remove()
    if out.shape != (ens.E, x.shape[0], n_classes):  # pragma: no cover - _check_model saw the shape
        raise ValueError(f"model_fn: vmapped logits of shape {tuple(out.shape)}")


def _ignore_generator(view: Callable[[Any], Any]) -> Callable[[Any, Any], Any]:
    """A query view ``x -> x`` as an augmentation ``(x, generator) -> x`` (for the checks)."""
    return lambda x, _generator: view(x)


def _check_augment(augment: Callable[[Any, Any], Any] | None, x: Any, name: str = "augment") -> None:
    """An augmentation (or a query view) must keep the batch's shape and dtype."""
    if augment is None:
        return
    torch = _torch()
    try:
        out = augment(x, torch.Generator().manual_seed(0))
    except Exception as exc:  # noqa: BLE001 - report the user's augmentation failing on a sample batch
        raise ValueError(f"{name}: failed on a batch of shape {tuple(x.shape)}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(out, torch.Tensor) or out.shape != x.shape or out.dtype != x.dtype:
        got = f"{tuple(out.shape)} {out.dtype}" if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"{name}: expected a batch of the input's shape and dtype {tuple(x.shape)} {x.dtype}, got {got}"
        )


def _resolve_device(device: Any) -> Any:
    torch = _torch()
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device: expected 'auto', 'cpu', 'cuda' or a torch.device, got {device!r}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: 'cuda' requested but torch sees no CUDA device")
    return dev


# ----------------------------------------------------------------------------- the driver


def _check_precision(precision: str, dev: Any) -> None:
    """Mixed precision on a GPU must be one it has (bf16 needs Ampere or newer); the CPU
    autocasts in both (bf16 is fast where the CPU has AVX-512 BF16 or AMX, fp16 is slow:
    for tests of the mixed-precision path more than for training)."""
    torch = _torch()
    if precision == "fp32" or dev.type != "cuda":
        return
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise ValueError(f"precision: 'bf16' is not supported by {torch.cuda.get_device_name(dev)}; use 'fp16'")


def _check_strategy(strategy: Any, precision: str) -> str:
    """A training strategy (``"auto"`` or one of :data:`~memscore.train.ensemble.STRATEGIES`)
    that can train in ``precision``."""
    from .._validate import check_choice
    from .ensemble import STRATEGIES

    name: str = check_choice(strategy, "strategy", ("auto", *STRATEGIES))
    if name == "vmap" and precision != "fp32":
        # torch.func.vmap dispatches below autocast: every op would silently run in float32
        raise ValueError(
            f"strategy: 'vmap' cannot train in {precision} (torch.func.vmap ignores autocast, so the ensemble "
            "would run in float32); use strategy='loop' or 'auto', which trains mixed precision member by member"
        )
    return name


def _check_compile(dev: Any) -> None:
    """``torch.compile`` must work on ``dev`` (inductor needs a C++ compiler on the CPU, Triton
    on CUDA): a tiny function is compiled and run before any training starts."""
    torch = _torch()
    try:
        out = torch.compile(lambda t: t * 2.0 + 1.0, dynamic=False)(torch.ones(4, device=dev))
        ok = bool((out == 3.0).all())
    except Exception as exc:  # noqa: BLE001 - any failure means compile cannot be used here
        raise ValueError(
            f"compile: torch.compile does not work on this {dev.type} device ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); it needs a C++ compiler (CPU) or Triton (CUDA), "
            "or train with compile=False"
        ) from exc
    if not ok:  # pragma: no cover - a broken backend
        raise ValueError("compile: torch.compile gave a wrong result on a test function; train with compile=False")


def _fits(x: Any, dev: Any, data_on_device: bool | None) -> bool:
    """Whether to hold ``x`` on the device: as asked, else when it takes under a quarter of
    the device's free memory (always on the CPU)."""
    if data_on_device is not None:
        return data_on_device
    if dev.type != "cuda":
        return True
    free, _ = _torch().cuda.mem_get_info(dev)
    return bool(x.numel() * x.element_size() < free // 4)


def _check_store_data(
    path: str,
    sizes: tuple[int, int],
    labels: tuple[Any, Any],
    n_examples: int,
    y_train: Any,
    y_test: Any | None,
) -> None:
    """The store at ``path`` (``sizes`` = n_train, n_test; ``labels`` = its train and
    test labels, None where it has none) must be made for the plan's ``n_examples`` and
    for this data."""
    n_train, n_test = sizes
    if n_train != n_examples or n_train != y_train.shape[0]:
        raise StoreError(
            f"{path}: the store was created for {n_train} training examples; "
            f"the plan has {n_examples} and the data {y_train.shape[0]}"
        )
    given_test = 0 if y_test is None else int(y_test.shape[0])
    if n_test != given_test:
        raise StoreError(f"{path}: the store was created for {n_test} test examples, the data has {given_test}")
    for lab, given, split in ((labels[0], y_train, "train"), (labels[1], y_test, "test")):
        if given is None:
            continue
        if lab is None:
            raise StoreError(
                f"{path}: the store has no {split}_labels; create it with them (memscore.train.create_store)"
            )
        if not np.array_equal(lab, given.cpu().numpy()):
            raise StoreError(
                f"{path}: the store's {split}_labels differ from the data's: it was created for other examples"
            )
