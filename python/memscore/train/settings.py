"""The training settings a store was filled with: recorded once in ``train_config.json``
beside its manifest, and compared with every later :func:`~memscore.train.train_runs` call
on the store, so that a resumed or re-run training never mixes runs trained differently.

The settings are the whole training configuration (:meth:`TrainConfig.as_dict
<memscore.train.TrainConfig.as_dict>` without ``compile``, which gives the same runs), the
augmentations, the normalization, ``keep_logits`` and a description of the model (its
class, parameter count and dtype, and its ``repr``). What does not change a run is left
out: the ensemble size, the device, the executor, ``max_runs`` / ``runs``.

A store made before this file existed is compared with the settings its runs recorded in
their metadata (the training configuration and the augmentation).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ..runs.store import RunStore
from ..runs.store.format import atomic_create
from .config import TrainConfig

__all__ = ["TRAIN_CONFIG", "check_settings", "model_description", "record_settings", "train_settings"]

TRAIN_CONFIG = "train_config.json"
"""The file, in the store's directory, holding the settings its runs were trained with."""

_SAME_RUNS = ("compile",)  # settings that give the same runs
_ADDED: dict[str, Any] = {"distill": None}  # settings recorded only when set, and their unset value


def model_description(model: Any) -> dict[str, Any]:
    """What the settings record of a model: its class, parameter count, dtype and ``repr``."""
    params = list(model.parameters())
    return {
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "parameters": int(sum(p.numel() for p in params)),
        "dtype": str(params[0].dtype).removeprefix("torch.") if params else None,
        "repr": repr(model),
    }


def train_settings(
    cfg: TrainConfig,
    model: Any,
    *,
    augment: str,
    normalize: tuple[Sequence[float], Sequence[float]] | None,
    query_augment: Any,
    keep_logits: bool,
    distill: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The settings of a training call, as JSON values (what :data:`TRAIN_CONFIG` holds).

    Parameters
    ----------
    cfg : TrainConfig
        The training configuration.
    model : torch.nn.Module
        A model of the call (run 0's).
    augment : str
        The augmentation's name.
    normalize, query_augment, keep_logits
        As :func:`~memscore.train.train_runs` takes them.
    distill : dict, optional
        :meth:`Distillation.describe <memscore.train.Distillation.describe>` of a distilled
        call (recorded under ``"distill"``; a plain call records no such key).

    Returns
    -------
    dict of str to object
    """
    out = {k: v for k, v in cfg.as_dict().items() if k not in _SAME_RUNS}
    views = None
    if query_augment is not None:
        items = [query_augment] if isinstance(query_augment, str) else list(query_augment)
        views = [v if isinstance(v, str) else getattr(v, "__name__", type(v).__name__) for v in items]
    out.update(
        augment=augment,
        normalize=None if normalize is None else [[float(v) for v in part] for part in normalize],
        query_augment=views,
        keep_logits=bool(keep_logits),
        model=model_description(model),
    )
    if distill is not None:
        out["distill"] = distill
    result: dict[str, Any] = json.loads(json.dumps(out))  # as it reads back
    return result


def _recorded(store: RunStore) -> tuple[dict[str, Any] | None, str]:
    """The settings the store's runs were trained with, and where they come from (None: a
    store without runs or settings)."""
    path = Path(store.path) / TRAIN_CONFIG
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StoreError(f"{path}: cannot read the store's training settings ({exc})") from exc
        if not isinstance(data, dict):
            raise StoreError(f"{path}: expected a JSON object of training settings, got {type(data).__name__}")
        return data, TRAIN_CONFIG
    ids = store.run_ids()
    if ids:  # a store filled before the settings were recorded: its runs' metadata
        meta = store.run_metadata(ids[0])
        if isinstance(meta, dict) and "epochs" in meta:
            return meta, f"the metadata of run {ids[0]}"
    return None, ""


def check_settings(store: RunStore, settings: dict[str, Any]) -> None:
    """Refuse to add runs trained with ``settings`` to a store filled with other ones.

    Parameters
    ----------
    store : RunStore
        The store.
    settings : dict
        :func:`train_settings` of the call.

    Raises
    ------
    ValueError
        The store's runs were trained with other settings; the message names each one that
        differs, with the store's value and the call's.
    StoreError
        ``train_config.json`` is unreadable.
    """
    have, source = _recorded(store)
    if have is None:
        return
    differ = [k for k in settings if k in have and have[k] != settings[k]]
    # settings newer than the store's record: a key it lacks was not set there
    differ += [k for k, v in settings.items() if k not in have and k in _ADDED and v != _ADDED[k]]
    if source == TRAIN_CONFIG:
        differ += [k for k in have if k not in settings]
    if differ:
        parts = []
        for k in differ:
            a, b = have.get(k, _ADDED.get(k, "(unset)")), settings.get(k, _ADDED.get(k, "(unset)"))
            if k == "model" and isinstance(a, dict) and isinstance(b, dict):
                a, b = (f"{m.get('class')} with {m.get('parameters')} parameters" for m in (a, b))
                if a == b:
                    a, b = "another architecture", "this one"
            parts.append(f"{k}: {a!r} in the store, {b!r} here")
        raise ValueError(
            f"{store.path}: holds runs trained with other settings ({source}): " + "; ".join(parts)
            + ". Train these settings into a new store"
        )  # fmt: skip


def record_settings(store: RunStore, settings: dict[str, Any]) -> None:
    """Record ``settings`` as the store's (atomically, once: a concurrent trainer's record
    is kept and compared with them). ``store`` and ``settings`` as :func:`check_settings`
    takes them.

    Raises
    ------
    ValueError
        Another trainer recorded other settings meanwhile.
    """
    data = json.dumps(settings, indent=1, sort_keys=True, allow_nan=False).encode()
    if not atomic_create(Path(store.path) / TRAIN_CONFIG, lambda f: f.write(data)):
        check_settings(store, settings)
