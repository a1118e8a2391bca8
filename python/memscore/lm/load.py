"""Loading a HuggingFace causal LM and its tokenizer, with the checks that must pass before
any model runs.

A model is named by a local folder (written by ``save_pretrained``) or a HuggingFace hub id;
both go through ``transformers.AutoModelForCausalLM`` / ``AutoTokenizer``. A hub id that
cannot be fetched (no network, ``HF_HUB_OFFLINE=1``, a typo) raises :class:`ModelLoadError`
saying to pass a local path. bf16 / fp16 are used only where the device supports them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._torch import require_torch
from ..errors import MemscoreError

__all__ = [
    "LoadedLM",
    "ModelLoadError",
    "ModelSpec",
    "causal_config",
    "check_causal_lm",
    "check_context",
    "context_length",
    "load_causal_lm",
    "load_model",
    "resolve_dtype",
]

_DTYPES = ("auto", "float32", "bfloat16", "float16")


class ModelLoadError(MemscoreError):
    """A model or tokenizer that cannot be loaded, or is not what the caller needs."""


@dataclass
class LoadedLM:
    """A causal LM ready to run: the model (in eval mode, on ``device``), its tokenizer,
    the name it was loaded from, the device and the dtype used."""

    model: Any
    tokenizer: Any
    name: str
    device: str
    dtype: str
    revision: str | None = None

    @property
    def n_params(self) -> int:
        """Number of parameters of the model."""
        return int(sum(p.numel() for p in self.model.parameters()))


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("loading HuggingFace models needs transformers: pip install 'memscore[lm]'") from exc
    return transformers


def resolve_dtype(dtype: str, device: str) -> str:
    """The dtype to load with: ``"auto"`` is bfloat16 on a CUDA device that supports it,
    else float16 on CUDA, else float32 (CPU half-precision matmuls are slow and inexact).

    Parameters
    ----------
    dtype : {"auto", "float32", "bfloat16", "float16"}
    device : str
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``...

    Returns
    -------
    str
        One of ``"float32"``, ``"bfloat16"``, ``"float16"``.

    Raises
    ------
    ValueError
        An unknown dtype, or a half dtype the device does not support.
    """
    torch = require_torch("memscore.lm", extra="lm")
    if dtype not in _DTYPES:
        raise ValueError(f"dtype: expected one of {_DTYPES}, got {dtype!r}")
    cuda = str(device).startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise ValueError(f"device: {device!r} asked but torch sees no CUDA device; pass device='cpu'")
    if dtype == "auto":
        if not cuda:
            return "float32"
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    if dtype == "bfloat16" and cuda and not torch.cuda.is_bf16_supported():
        raise ValueError(f"dtype: bfloat16 is not supported on {device!r}; pass dtype='float16' or 'float32'")
    return dtype


def _is_local(name: str) -> bool:
    return Path(name).expanduser().exists() or name.startswith((".", "/", "~")) or os.sep + os.sep in name


def _safetensors_error() -> tuple[type[Exception], ...]:
    """safetensors' error (truncated or damaged weights), when the package is there."""
    try:
        from safetensors import SafetensorError
    except ImportError:  # pragma: no cover - safetensors comes with transformers
        return ()
    return (SafetensorError,)


def _from_pretrained(loader: Any, name: str, what: str, **kwargs: Any) -> Any:
    """``loader.from_pretrained(name)``, with a hub failure turned into a clear error."""
    local = _is_local(name)
    if local and not Path(name).expanduser().exists():
        raise ModelLoadError(f"{what} {name!r}: no such file or folder")
    errors: tuple[type[Exception], ...] = (OSError, ValueError, *_safetensors_error())
    try:
        return loader.from_pretrained(str(Path(name).expanduser()) if local else name, **kwargs)
    except errors as exc:
        text = str(exc) or type(exc).__name__
        if "Unrecognized configuration class" in text or "Unrecognized model" in text:
            raise ModelLoadError(f"{what} {name!r} is not a causal language model: {text.splitlines()[0]}") from exc
        if local:
            damaged = "" if isinstance(exc, (OSError, ValueError)) else " (a weights file is truncated or damaged)"
            raise ModelLoadError(f"{what} {name!r}: cannot load the folder{damaged}: {text.splitlines()[0]}") from exc
        raise ModelLoadError(
            f"{what} {name!r}: not a local folder, and the HuggingFace hub could not provide it "
            f"(no network, HF_HUB_OFFLINE set, or a wrong id: {text.splitlines()[0]}). "
            "Pass a local path: a folder written by save_pretrained (e.g. after "
            f"`huggingface-cli download {name} --local-dir DIR` on a machine with a network)."
        ) from exc


def causal_config(name: str, *, revision: str | None = None, local_files_only: bool = False) -> Any:
    """The config of the causal LM ``name`` (no weights, no tokenizer loaded).

    Raises
    ------
    TypeError
        ``name`` is not a non-empty string.
    ModelLoadError
        As in :func:`load_causal_lm`.
    """
    tr = _transformers()
    if not isinstance(name, str) or not name:
        raise TypeError(f"name: expected a model folder or hub id, got {name!r}")
    config = _from_pretrained(tr.AutoConfig, name, "model", **_hub_kwargs(revision, local_files_only))
    if getattr(config, "is_encoder_decoder", False) or type(config) not in tr.MODEL_FOR_CAUSAL_LM_MAPPING:
        raise ModelLoadError(
            f"model {name!r} is not a causal language model (its config is {type(config).__name__}); "
            "expected a decoder-only model that AutoModelForCausalLM loads (GPT-2, GPT-NeoX/Pythia, Llama, ...)"
        )
    return config


def _hub_kwargs(revision: str | None, local_files_only: bool) -> dict[str, Any]:
    extra: dict[str, Any] = {"local_files_only": local_files_only}
    if revision is not None:
        extra["revision"] = revision
    return extra


def check_causal_lm(
    name: str | os.PathLike[str],
    *,
    tokenizer: str | os.PathLike[str] | None = None,
    need_offsets: bool = False,
    revision: str | None = None,
    local_files_only: bool = False,
) -> tuple[Any, Any]:
    """The config and tokenizer of a causal LM, checked without loading its weights.

    Parameters
    ----------
    name, tokenizer, revision, local_files_only
        As in :func:`load_causal_lm`.
    need_offsets : bool, default False
        Require a fast tokenizer (character offsets: the task-gram study locates n-grams
        among the answer's tokens by them).

    Returns
    -------
    (config, tokenizer)

    Raises
    ------
    ModelLoadError
        As in :func:`load_causal_lm`, or a tokenizer without offsets when they are needed.
    """
    tr = _transformers()
    text = os.fspath(name)
    config = causal_config(text, revision=revision, local_files_only=local_files_only)
    tok_name = os.fspath(tokenizer) if tokenizer is not None else text
    tok = _from_pretrained(tr.AutoTokenizer, tok_name, "tokenizer", local_files_only=local_files_only)
    if need_offsets and not getattr(tok, "is_fast", False):
        raise ModelLoadError(
            f"tokenizer {tok_name!r} ({type(tok).__name__}) gives no character offsets; the task-gram study "
            "needs a fast (Rust tokenizers) tokenizer: save one with a tokenizer.json next to the model"
        )
    return config, tok


def load_causal_lm(
    name: str | os.PathLike[str],
    *,
    device: str = "cpu",
    dtype: str = "auto",
    tokenizer: str | os.PathLike[str] | None = None,
    revision: str | None = None,
    local_files_only: bool = False,
) -> LoadedLM:
    """Load a causal LM and its tokenizer from a local folder or a HuggingFace hub id.

    Parameters
    ----------
    name : str or path
        A folder written by ``save_pretrained`` (config, weights, and usually the tokenizer)
        or a hub id such as ``"EleutherAI/pythia-160m"``.
    device : str, default "cpu"
        ``"cpu"`` or a CUDA device.
    dtype : {"auto", "float32", "bfloat16", "float16"}, default "auto"
        See :func:`resolve_dtype`.
    tokenizer : str or path, optional
        Where the tokenizer is, when not next to the model.
    revision : str, optional
        A hub revision (Pythia's training checkpoints are revisions such as ``"step143000"``).
    local_files_only : bool, default False
        Never contact the hub (hub ids then load only from the local HuggingFace cache);
        ``HF_HUB_OFFLINE=1`` in the environment does the same.

    Returns
    -------
    LoadedLM

    Raises
    ------
    ModelLoadError
        A missing folder, a hub id that cannot be fetched (the message says to pass a local
        path), or a model that is not a causal LM (an encoder, a seq2seq model).
    ValueError
        A bad dtype or device.
    ImportError
        transformers or torch is not installed (the ``lm`` extra).
    """
    dt = resolve_dtype(dtype, device)
    _, tok = check_causal_lm(name, tokenizer=tokenizer, revision=revision, local_files_only=local_files_only)
    name = os.fspath(name)
    model = load_model(name, device=device, dtype=dt, revision=revision, local_files_only=local_files_only)
    return LoadedLM(model=model, tokenizer=tok, name=name, device=str(device), dtype=dt, revision=revision)


def load_model(
    name: str,
    *,
    device: str = "cpu",
    dtype: str = "auto",
    revision: str | None = None,
    local_files_only: bool = False,
) -> Any:
    """The weights of the causal LM ``name`` only (no tokenizer), in eval mode on ``device``:
    what an LM task loads on its worker.

    Parameters
    ----------
    name, device, dtype, revision, local_files_only
        As in :func:`load_causal_lm`.

    Returns
    -------
    transformers.PreTrainedModel

    Raises
    ------
    ModelLoadError, ValueError, ImportError
        As in :func:`load_causal_lm`.
    """
    torch = require_torch("memscore.lm", extra="lm")
    tr = _transformers()
    dt = resolve_dtype(dtype, device)
    extra = _hub_kwargs(revision, local_files_only)
    model = _from_pretrained(tr.AutoModelForCausalLM, name, "model", dtype=getattr(torch, dt), **extra)
    model.eval()
    model.to(torch.device(device))
    return model


@dataclass(frozen=True)
class ModelSpec:
    """A causal LM named by a folder or hub id, loaded where it runs: the form in which
    the LM functions send a model to Ray workers (each task loads the weights itself,
    onto its own device, instead of receiving them pickled).

    Parameters
    ----------
    name : str or path
        A folder written by ``save_pretrained`` (every worker must see it under this path:
        a shared file system) or a hub id (every worker fetches it, or finds it in its
        HuggingFace cache).
    dtype : {"auto", "float32", "bfloat16", "float16"}, default "auto"
        See :func:`resolve_dtype` (resolved on the device the task runs on).
    revision : str, optional
        A hub revision (a Pythia checkpoint such as ``"step143000"``).
    local_files_only : bool, default False
        Never contact the hub.

    Raises
    ------
    TypeError, ValueError
        A name that is no string or path, an unknown dtype.

    Examples
    --------
    >>> ModelSpec("EleutherAI/pythia-160m", revision="step143000")
    ModelSpec(name='EleutherAI/pythia-160m', dtype='auto', revision='step143000', local_files_only=False)
    """

    name: str
    dtype: str = "auto"
    revision: str | None = None
    local_files_only: bool = False

    def __post_init__(self) -> None:
        """Check the fields (see the class docstring)."""
        if isinstance(self.name, os.PathLike):
            object.__setattr__(self, "name", os.fspath(self.name))
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"name: expected a model folder or hub id, got {self.name!r}")
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype: expected one of {_DTYPES}, got {self.dtype!r}")
        if self.revision is not None and not isinstance(self.revision, str):
            raise TypeError(f"revision: expected a string or None, got {self.revision!r}")

    def config(self) -> Any:
        """The model's config, checked to be a causal LM (no weights loaded).

        Raises
        ------
        ModelLoadError
            As in :func:`load_causal_lm`.
        """
        return causal_config(self.name, revision=self.revision, local_files_only=self.local_files_only)

    def load(self, device: str = "cpu") -> Any:
        """The model on ``device`` (see :func:`load_model`)."""
        return load_model(
            self.name, device=device, dtype=self.dtype, revision=self.revision, local_files_only=self.local_files_only
        )


def context_length(model: Any) -> int | None:
    """The longest sequence the model accepts (from its config), or None when it does not say.

    Parameters
    ----------
    model : transformers model or torch module
        A HuggingFace model (``config.max_position_embeddings`` / ``n_positions`` /
        ``n_ctx``) or a module with a ``config.block_size`` / ``config.context`` (memscore's
        :class:`~memscore.taskgram.TinyGPT`).

    Returns
    -------
    int or None
    """
    config = getattr(model, "config", None)
    for attr in ("max_position_embeddings", "n_positions", "n_ctx", "block_size", "context"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def check_context(model: Any, length: int, what: str = "k + m") -> None:
    """Raise before running when sequences of ``length`` tokens do not fit the model.

    Parameters
    ----------
    model : model
        As in :func:`context_length`.
    length : int
        Tokens per sequence.
    what : str
        How the caller names the length, for the message.

    Raises
    ------
    ValueError
        ``length`` is longer than the model's context.
    """
    n = context_length(model)
    if n is not None and length > n:
        raise ValueError(f"{what} = {length} tokens is longer than the model's context of {n} tokens")
