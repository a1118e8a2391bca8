"""scipy, imported on first use: the audit's distributions (beta, binomial, normal) come from it."""

from __future__ import annotations

from typing import Any


def scipy_stats() -> Any:
    """``scipy.stats``, or an ImportError that says which extra installs it.

    Returns
    -------
    module
        ``scipy.stats``.

    Raises
    ------
    ImportError
        scipy is not installed.
    """
    try:
        from scipy import stats
    except ImportError as exc:  # pragma: no cover - scipy is in the dev environment
        raise ImportError("memscore.audit needs scipy: pip install 'memscore[audit]'") from exc
    return stats
