"""The training inputs: as a task reads them (:class:`DeviceInputs`: held on the device, or in
pinned host memory when they do not fit there, uint8 images kept as uint8 and scaled per
batch), and a dataset named rather than shipped (:class:`DatasetSplit`, loaded where a task
runs)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .config import _torch

__all__ = ["DatasetSplit", "DeviceInputs", "load_data"]


class DeviceInputs:
    """Inputs ``x`` (n, *example) for training on ``device``.

    ``raw(idx)`` gathers a batch in the stored dtype (what augmentations see: uint8 images
    are padded and cropped as pixels, as torchvision does before ``ToTensor``), ``to_float``
    turns it into the model's float input: uint8 divided by 255, then ``(x - mean) / std``
    per channel (the first axis of an example) when ``normalize`` is given.

    Floating inputs are cast once to ``dtype`` (the model's parameter dtype: float64 numpy
    arrays train a float32 model); integer inputs (uint8 images) stay as they are and become
    float32 per batch.

    ``name`` names the inputs in errors (``train``, ``test``).

    With ``on_device=False`` the inputs stay in host memory (pinned when the device is CUDA)
    and each step moves only its batches, every member's at once.
    """

    def __init__(
        self,
        x: Any,
        device: Any,
        *,
        normalize: tuple[Sequence[float], Sequence[float]] | None,
        on_device: bool,
        dtype: Any = None,
        name: str = "inputs",
    ) -> None:
        torch = _torch()
        self.device = device
        self.on_device = on_device
        self.shape = tuple(x.shape[1:])
        if dtype is not None and x.is_floating_point() and x.dtype != dtype:
            wide = x
            x = x.to(dtype)  # floating inputs in the model's parameter dtype (numpy's float64 too)
            if not bool(torch.isfinite(x).all()):  # finite before: beyond the narrower type
                raise ValueError(
                    f"{name}: values up to {float(wide.abs().max()):.3g} in magnitude do not fit the model's "
                    f"{str(dtype).removeprefix('torch.')} (largest {torch.finfo(dtype).max:.3g}); rescale the inputs"
                )
        self.dtype = x.dtype
        self.float_dtype = x.dtype if x.is_floating_point() else torch.float32
        if on_device:
            self.x = x.to(device)
        else:
            self.x = x.pin_memory() if device.type == "cuda" else x
        self.mean = self.std = None
        if normalize is not None:
            mean, std = (torch.as_tensor(v, dtype=torch.float32).reshape(-1) for v in normalize)
            c = self.shape[0] if self.shape else 1
            if mean.shape != (c,) or std.shape != (c,) or not bool((std > 0).all()):
                raise ValueError(
                    f"normalize: expected (mean, std) of {c} channel values each with std > 0, "
                    f"got {tuple(mean.shape)} and {tuple(std.shape)}"
                )
            view = (c,) + (1,) * (len(self.shape) - 1)
            self.mean, self.std = (v.reshape(view).to(device, self.float_dtype) for v in (mean, std))

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def raw(self, idx: Any) -> Any:
        """The examples at ``idx`` (any shape of int64 indices) on the device, stored dtype."""
        if self.on_device:
            return self.x[idx.to(self.device)]
        xb = self.x.index_select(0, idx.reshape(-1).cpu())
        if self.device.type == "cuda":
            xb = xb.pin_memory()  # the gathered batch, page-locked: the copy runs asynchronously
        return xb.to(self.device, non_blocking=True).reshape(*idx.shape, *self.shape)

    def to_float(self, xb: Any) -> Any:
        """A raw batch as model input (floating inputs in their cast dtype, uint8 as float32)."""
        torch = _torch()
        if xb.dtype == torch.uint8:
            xb = xb.float().div_(255.0)
        if self.mean is not None:
            xb = (xb - self.mean) / self.std
        return xb

    def chunks(self, chunk: int, view: Callable[[Any], Any] | None = None) -> Iterator[Any]:
        """Every example in order, as float model input, ``chunk`` at a time (through a
        query ``view`` of the raw batch when given)."""
        torch = _torch()
        for i in range(0, len(self), chunk):
            xb = self.raw(torch.arange(i, min(i + chunk, len(self))))
            yield self.to_float(view(xb) if view is not None else xb)


class DatasetSplit:
    """A picklable data function: one split of an embedded dataset, loaded where it is
    called (inside each task, on a Ray worker too) instead of shipped from the driver.

    :func:`~memscore.train.train_runs` takes it (or any picklable zero-argument function
    returning ``(inputs, labels)``) in place of ``train`` / ``test``.

    Parameters
    ----------
    name : str
        A dataset of :func:`memscore.datasets.load_dataset` (``"modular"``, ``"digits"``,
        ``"mnist1d"``) or of :func:`memscore.datasets.image_dataset` (``"cifar10"``, ...; then
        ``root=`` names a folder every worker sees).
    split : {"train", "test"}
        The split.
    **kwargs
        Arguments of the dataset function.

    Raises
    ------
    ValueError
        ``split`` is neither ``"train"`` nor ``"test"``.

    Examples
    --------
    >>> x, y = DatasetSplit("modular", "train", p=5, seed=0)()
    >>> x.shape[0] == y.shape[0]
    True
    """

    def __init__(self, name: str, split: str, **kwargs: Any) -> None:
        """See the class docstring."""
        if split not in ("train", "test"):
            raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
        self.name, self.split, self.kwargs = name, split, kwargs

    def __call__(self) -> tuple[Any, Any]:
        """``(inputs, labels)`` of the split."""
        from ..runs.datasets import IMAGE_DATASETS, image_dataset, load_dataset

        if self.name in IMAGE_DATASETS:  # read from torchvision's files under kwargs["root"]
            task = image_dataset(self.name, **self.kwargs)
        else:
            task = load_dataset(self.name, **self.kwargs)
        return getattr(task, f"x_{self.split}"), getattr(task, f"y_{self.split}")

    def __repr__(self) -> str:
        return f"DatasetSplit({self.name!r}, {self.split!r}, **{self.kwargs!r})"


def load_data(src: Any) -> Any:
    """The data a data function returns (called where the task runs), or ``src`` itself."""
    return src() if callable(src) else src
