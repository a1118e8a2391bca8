"""Plain reference for extractable memorization (Carlini et al. 2023): one sequence at a
time, the whole growing sequence re-run for each greedy token, no cache, no batching."""

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
