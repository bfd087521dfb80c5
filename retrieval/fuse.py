"""Fusion of ranked lists as pure functions keyed by id: convex score fusion and reciprocal-rank fusion."""
from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

K = TypeVar("K", bound=Hashable)


def convex(dense: Mapping[K, float], sparse: Mapping[K, float], *, dense_weight: float = 0.5,
           names: Mapping[K, float] | None = None, name_weight: float = 0.0) -> dict[K, float]:
    """score(id) = (1 − n) · (w · dense' + (1 − w) · sparse') + n · names', each scaled to [0, 1] over
    the candidates (n = `name_weight`, 0 when `names` is not given).

    dense' is min-max scaled over the retrieved candidates; an id the dense list did not return gets
    that list's minimum (all a prefetch-limited search knows about it). sparse' is the BM25 score
    over the best one: BM25 0 means no shared term, so it is the natural bottom, and an id the
    sparse list did not return gets 0. Unlike RRF, this keeps how far apart the scores are: a clear
    lexical match is not reduced to "rank 1" and a near-tie in cosine does not become a whole rank.
    names' (the best cosine of the question to one of the entry's names) is scaled like dense'.
    """
    if not 0.0 <= dense_weight <= 1.0 or not 0.0 <= name_weight <= 1.0:
        raise ValueError("dense_weight and name_weight must be in [0, 1]")
    names = names or {}
    ids = list(dict.fromkeys([*dense, *sparse, *names]))
    if not ids:
        return {}
    top = max(sparse.values(), default=0.0)
    scaled_dense, scaled_names = _min_max(dense, ids), _min_max(names, ids)
    scores: dict[K, float] = {}
    for key in ids:
        s = sparse.get(key, 0.0) / top if top > 0 else 0.0
        words_and_meaning = dense_weight * scaled_dense[key] + (1.0 - dense_weight) * s
        scores[key] = (1.0 - name_weight) * words_and_meaning + name_weight * scaled_names[key] if names else words_and_meaning
    return scores


def _min_max(scores: Mapping[K, float], ids: Sequence[K]) -> dict[K, float]:
    """Scores scaled to [0, 1] over the candidates; an id the list did not return gets its minimum."""
    low = min(scores.values(), default=0.0)
    span = max(scores.values(), default=0.0) - low
    return {key: (scores.get(key, low) - low) / span if span > 0 else (1.0 if key in scores else 0.0) for key in ids}


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
