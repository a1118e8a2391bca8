"""Plain references of the LM engines: extractable memorization (Carlini et al. 2023), one
sequence at a time, the whole growing sequence re-run for each greedy token, no cache, no
batching; and the membership scores (loss, Min-K%, Min-K%++) one position at a time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def extractable_pure(
    model: Any, sequences: Sequence[Sequence[int]], k: int, m: int
) -> list[tuple[bool, int, list[int]]]:
    """(memorized, matched-prefix length, greedy tokens) per sequence.

    Parameters
    ----------
    model : callable
        HuggingFace causal LM (``model(input_ids=...).logits``) or ``(1, L) -> (1, L, V)``.
    sequences : sequence of sequences of int
        At least ``k + m`` tokens each.
    k, m : int
        Prompt and continuation lengths.

    Returns
    -------
    list of (bool, int, list of int)
    """
    import torch

    out = []
    for seq in sequences:
        tokens = [int(t) for t in seq[: k + m]]
        context = tokens[:k]
        generated = []
        with torch.no_grad():
            for _ in range(m):
                ids = torch.tensor([context], dtype=torch.long)
                try:
                    logits = model(input_ids=ids).logits
                except TypeError:
                    logits = model(ids)
                best = int(logits[0, -1].argmax())
                generated.append(best)
                context.append(best)
        matched = 0
        while matched < m and generated[matched] == tokens[k + matched]:
            matched += 1
        out.append((matched == m, matched, generated))
    return out


#: Min-K%++'s floor of sigma_t (as :data:`memscore.lm.membership.SIGMA_FLOOR`).
SIGMA_FLOOR = 1e-12


def membership_pure(
    logits: Any, token_ids: Any, k: float, lengths: Sequence[int] | None = None
) -> list[dict[str, float]]:
    """Loss, Min-K% (Shi et al. 2024) and Min-K%++ (Zhang et al. 2024) of each sequence,
    one position and one vocabulary entry at a time.

    At position t the row ``logits[b, t]`` is turned into ``log p(z) = logit_z -
    logsumexp(logits)``; the true token is ``token_ids[b, t + 1]``; ``mu_t = sum_z p(z) log
    p(z)`` and ``sigma_t = sqrt(sum_z p(z) (log p(z) - mu_t)^2)``. The loss is the mean of
    ``-log p(x_t)``; Min-K% the mean of the ``n_k = max(1, floor(k (L - 1)))`` smallest
    ``log p(x_t)``; Min-K%++ the mean of the ``n_k`` smallest ``(log p(x_t) - mu_t) /
    max(sigma_t, SIGMA_FLOOR)``, taken as 0 where sigma_t and the numerator are both within
    the floor (a uniform distribution, the numerator rounding).

    Parameters
    ----------
    logits : array-like, shape (B, L, V)
    token_ids : array-like of int, shape (B, L)
    k : float
    lengths : sequence of int, optional
        Tokens of each row (default L).

    Returns
    -------
    list of dict
        ``{"loss", "min_k", "min_k_plus_plus"}`` per sequence.
    """
    import math

    out = []
    for b in range(len(logits)):
        length = len(token_ids[b]) if lengths is None else int(lengths[b])
        lps, zs = [], []
        for t in range(length - 1):
            row = [float(v) for v in logits[b][t]]
            top = max(row)
            lse = top + math.log(sum(math.exp(v - top) for v in row))
            logp = [v - lse for v in row]
            lp = logp[int(token_ids[b][t + 1])]
            mu = sum(math.exp(lz) * lz for lz in logp)
            sigma = math.sqrt(sum(math.exp(lz) * (lz - mu) ** 2 for lz in logp))
            d = lp - mu
            zs.append(0.0 if sigma <= SIGMA_FLOOR and abs(d) <= SIGMA_FLOOR else d / max(sigma, SIGMA_FLOOR))
            lps.append(lp)
        n_k = max(1, math.floor(k * (length - 1)))
        out.append(
            {
                "loss": -sum(lps) / len(lps),
                "min_k": sum(sorted(lps)[:n_k]) / n_k,
                "min_k_plus_plus": sum(sorted(zs)[:n_k]) / n_k,
            }
        )
    return out
