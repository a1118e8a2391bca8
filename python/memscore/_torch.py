"""The one lazy import of torch: torch is an optional dependency (the ``train`` extra), so
every module that needs it imports it through :func:`require_torch`, which says what to
install when it is missing. Importing memscore never imports torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["require_torch"]


def require_torch(feature: str = "this part of memscore", extra: str = "train") -> Any:
    """The ``torch`` module, imported on first use.

    Parameters
    ----------
    feature : str
        What needs torch, for the error message (``"memscore.train"``, say).
    extra : str, default "train"
        The memscore extra that installs torch.

    Returns
    -------
    module
        ``torch``.

    Raises
    ------
    ImportError
        torch is not installed; the message says which ``pip install`` fixes it.

    Examples
    --------
    >>> require_torch("the example").__name__
    'torch'
    """
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"{feature} needs torch: pip install 'memscore[{extra}]'") from exc
    return torch
