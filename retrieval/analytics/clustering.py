"""Group short questions by meaning: embeddings + agglomerative clustering with a cosine distance threshold."""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from retrieval.embedding import Embedder
from retrieval.text import normalize

# Distance (1 − cosine) under which two questions mean the same thing, for multilingual-e5-small
# with average linkage. Measured on the paraphrase sets of tests/retrieval/test_analytics_gaps.py:
# pairs within a group 0.00–0.112 (mean 0.042), across groups ≥ 0.112 (mean 0.144); the three
# groups separate from the noise for thresholds 0.105–0.11 on one set and 0.06–0.11 on another,
# so the margin is narrow. e5's space is anisotropic (unrelated questions still sit at ~0.85
# cosine), hence the small number; another model needs its own threshold (`threshold=`, the
# API's `?threshold=`, `zhiku report weekly --threshold`).
DEFAULT_THRESHOLD = 0.105
# Beyond this many distinct questions only the most frequent are embedded and clustered (the
# clustering is O(n²) in memory); the rest stay groups of their own exact text.
MAX_CLUSTERED = 4000

_TRAILING = re.compile(r"[\s?？。.!！~～,，、;；:：]+$")


def question_key(text: str) -> str:
    """The grouping key of a question: normalised (t2s, NFKC, lower case), trailing punctuation dropped."""
    return _TRAILING.sub("", normalize(text))


@dataclass
class Group:
    """Questions that mean the same; `keys` most frequent first."""

    keys: list[str]
    count: int

    @property
    def representative(self) -> str:
        return self.keys[0]


def cluster_vectors(vectors: np.ndarray, *, threshold: float) -> list[int]:
    """Cluster labels for L2-normalised vectors (average linkage, cosine distance ≤ threshold)."""
    n = len(vectors)
    if n == 0:
        return []
    if n == 1:
        return [0]
    from sklearn.cluster import AgglomerativeClustering

    model = AgglomerativeClustering(n_clusters=None, metric="cosine", linkage="average", distance_threshold=threshold)
    return [int(x) for x in model.fit_predict(np.asarray(vectors, dtype=np.float32))]


def group_questions(counts: Counter[str], *, embedder: Embedder | None, threshold: float = DEFAULT_THRESHOLD) -> list[Group]:
    """Group question keys (with their counts) by meaning; without an embedder, by exact key only."""
    ordered = [key for key, _ in sorted(counts.items(), key=lambda kv: (-kv[1], len(kv[0]), kv[0]))]
    head, tail = ordered[:MAX_CLUSTERED], ordered[MAX_CLUSTERED:]
    labels = list(range(len(head)))
    if embedder is not None and len(head) > 1:
        labels = cluster_vectors(embedder.encode_queries(head), threshold=threshold)
    members: dict[int, list[str]] = {}
    for key, label in zip(head, labels, strict=True):
        members.setdefault(label, []).append(key)
    groups = [Group(keys=keys, count=sum(counts[k] for k in keys)) for keys in members.values()]
    groups.extend(Group(keys=[key], count=counts[key]) for key in tail)
    return sorted(groups, key=lambda g: (-g.count, g.representative))


def label_of(groups: Sequence[Group]) -> dict[str, int]:
    """key → index of its group."""
    return {key: i for i, g in enumerate(groups) for key in g.keys}
