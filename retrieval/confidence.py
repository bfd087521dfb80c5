"""How sure search is that its first result answers the question: a logistic model over ranking
features, fitted on labelled questions (bench/calibrate_confidence.py) and stored as JSON."""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from retrieval.search import EntryHit

FITTED = Path(__file__).parent / "confidence.json"
FEATURES = ("dense_top", "dense_margin", "dense_spread", "fused_margin", "sparse_top", "agree")
# Features read the first results only, so they mean the same whatever top_k the caller asked for.
HEAD = 10


def features(hits: Sequence[EntryHit]) -> list[float]:
    """Ranking features of a result list (0 for an empty list).

    dense_margin: how far the first result's cosine is above the best other one; dense_spread: how
    far above the fifth best. The spread tells a lone match from one of several near-equivalent
    entries (a crowd of similar questions), where the first place is a coin toss.
    """
    if not hits:
        return [0.0] * len(FEATURES)
    hits = hits[:HEAD]
    top = hits[0]
    dense_top = top.dense or 0.0
    others = sorted((h.dense for h in hits[1:] if h.dense is not None), reverse=True)
    dense_margin = dense_top - others[0] if others else dense_top
    dense_spread = dense_top - others[min(3, len(others) - 1)] if others else dense_top
    fused_margin = (top.score - hits[1].score) / top.score if len(hits) > 1 and top.score > 0 else 1.0
    sparse_top = 1.0 / top.sparse_rank if top.sparse_rank else 0.0
    agree = 1.0 if top.sparse_rank == 1 and dense_margin >= 0 else 0.0
    return [dense_top, dense_margin, dense_spread, fused_margin, sparse_top, agree]


@dataclass(frozen=True)
class ConfidenceModel:
    coef: tuple[float, ...]
    intercept: float
    source: str = "default"

    @classmethod
    def default(cls) -> ConfidenceModel:
        """The fitted model shipped with Zhiku, or a conservative hand-set one if it is absent or was
        fitted on other features."""
        if FITTED.exists():
            data = json.loads(FITTED.read_text(encoding="utf-8"))
            if tuple(data.get("features", FEATURES)) == FEATURES:
                return cls(tuple(data["coef"]), float(data["intercept"]), data.get("source", str(FITTED.name)))
        return cls((8.0, 20.0, 0.0, 3.0, 1.0, 1.0), -8.0, "hand-set")

    def predict(self, hits: Sequence[EntryHit]) -> float:
        if not hits:
            return 0.0
        z = self.intercept + sum(c * x for c, x in zip(self.coef, features(hits), strict=True))
        return round(1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z)))), 4)
