"""Rank fusion as pure functions: reciprocal-rank fusion keyed by id, optionally weighted."""
from __future__ import annotations

from collections.abc import Hashable, Sequence


def rrf(lists: Sequence[Sequence[Hashable]], *, k: int = 60, weights: Sequence[float] | None = None) -> dict[Hashable, float]:
    """score(id) = Σ_i w_i / (k + rank_i(id)), ranks from 1; ids absent from a list get nothing from it."""
    if weights is None:
        weights = [1.0] * len(lists)
    if len(weights) != len(lists):
        raise ValueError("one weight per list")
    scores: dict[Hashable, float] = {}
    for ranked, weight in zip(lists, weights, strict=True):
        for rank, key in enumerate(ranked, start=1):
            scores[key] = scores.get(key, 0.0) + weight / (k + rank)
    return scores
