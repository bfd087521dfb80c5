"""Synthetic chunk points for index benchmarks.

Dense vectors (384-d by default) are clustered like real sentence embeddings:
a shared anisotropic "mean" direction (real embedding spaces are far from
isotropic), a few dozen topics, a few hundred sub-topic centroids around them
with Zipf-distributed sizes, and the points scattered around their centroid so
that a point's cosine to its centroid is about 0.75–0.85 — then normalised.
Queries are drawn the same way (new points near existing centroids), so the
nearest neighbours are dense, contested clusters, which is what makes HNSW
recall lower than on uniform random data.

Sparse vectors have 10–30 distinct term ids out of a 50k vocabulary: about
half drawn from a global Zipf distribution (function words), the rest from the
topic's own Zipf-ranked term list, with BM25-style saturated term-frequency
weights (the engine applies IDF).

Payloads follow ``retrieval.index.base.PAYLOAD_KEYS``: entries with 1–8 chunks
and 1–3 versions, older versions closed (valid_to set), the latest open.

Everything is deterministic for a given seed and generated batch by batch so
100k points do not have to be held as Python objects at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from retrieval.index.base import OPEN_END, ChunkPoint, IndexFilter, SparseVec

DIM = 384
VOCAB = 50_000
CATEGORIES = (
    "credit_card", "debit_card", "loans", "mortgage", "deposits", "wealth",
    "fx", "payments", "mobile_banking", "fraud", "fees", "account_opening",
)
PRODUCT_TYPES = ("platinum", "gold", "classic", "youth", "business", "premier", "student", "senior")
TAGS = tuple(f"tag{i:02d}" for i in range(40))
_BASE_TS = 1_600_000_000  # 2020-09-13
_YEAR = 365 * 86400
_NS = uuid.UUID("6f1c7f0e-4d4b-4b7e-9a53-2b3c1d0e9f10")


@dataclass(frozen=True)
class Query:
    dense: np.ndarray
    sparse: SparseVec
    flt: IndexFilter


class SyntheticCorpus:
    """Deterministic generator of chunk points and matching queries."""

    def __init__(
        self,
        n: int,
        *,
        dim: int = DIM,
        seed: int = 42,
        n_topics: int = 40,
        n_centroids: int | None = None,
        vocab: int = VOCAB,
        text_chars: tuple[int, int] = (150, 350),
    ) -> None:
        self.n = n
        self.dim = dim
        self.seed = seed
        self.vocab = vocab
        self.text_chars = text_chars
        rng = np.random.default_rng(seed)
        self.n_centroids = n_centroids or int(min(400, max(20, n // 40)))
        self.n_topics = min(n_topics, self.n_centroids)

        mean_dir = _unit(rng.standard_normal(dim))
        topics = _unit(rng.standard_normal((self.n_topics, dim)))
        topic_of = rng.integers(0, self.n_topics, self.n_centroids)
        cents = 0.55 * topics[topic_of] + 0.45 * _unit(rng.standard_normal((self.n_centroids, dim)))
        cents = _unit(cents + 0.8 * mean_dir)  # anisotropy: all embeddings share a direction
        self.centroids = cents.astype(np.float32)
        self.topic_of = topic_of
        # Zipf-ish cluster sizes.
        w = 1.0 / np.arange(1, self.n_centroids + 1) ** 0.8
        self.cluster_p = rng.permutation(w / w.sum())
        # Noise scale: |noise| ~ 0.75 -> cos(point, centroid) ~ 0.8.
        self.noise_sigma = 0.75 / np.sqrt(dim)

        # Sparse vocabulary: global Zipf ranking, plus a topical term list per topic.
        self.global_rank = rng.permutation(vocab)
        self.topic_terms = np.stack([rng.choice(vocab, 400, replace=False) for _ in range(self.n_topics)])
        self._cjk = np.arange(0x4E00, 0x4E00 + 3000)

    # -- dense -------------------------------------------------------------
    def _dense(self, rng: np.random.Generator, clusters: np.ndarray, scale: float = 1.0) -> np.ndarray:
        noise = rng.standard_normal((len(clusters), self.dim)).astype(np.float32)
        v = self.centroids[clusters] + noise * np.float32(self.noise_sigma * scale)
        return _unit(v).astype(np.float32)

    # -- sparse ------------------------------------------------------------
    def _sparse(self, rng: np.random.Generator, topic: int, n_terms: int) -> SparseVec:
        n_glob = n_terms // 2
        g = np.minimum(rng.zipf(1.3, n_glob * 2) - 1, self.vocab - 1)
        glob = self.global_rank[g]
        t = np.minimum(rng.zipf(1.2, n_terms * 2) - 1, self.topic_terms.shape[1] - 1)
        top = self.topic_terms[topic][t]
        ids = np.unique(np.concatenate([glob, top]))
        if len(ids) > n_terms:
            ids = np.sort(rng.choice(ids, n_terms, replace=False))
        tf = rng.integers(1, 4, len(ids)).astype(np.float32)
        k1, b, dl_ratio = 1.2, 0.75, rng.uniform(0.6, 1.4)
        w = tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl_ratio))
        return SparseVec(tuple(int(i) for i in ids), tuple(round(float(x), 4) for x in w))

    # -- points ------------------------------------------------------------
    def iter_batches(self, batch: int = 1000) -> Iterator[list[ChunkPoint]]:
        """Yield the n points in batches (dense vectors as float32 numpy rows)."""
        rng = np.random.default_rng(self.seed + 1)
        produced = 0
        entry_no = 0
        pending: list[ChunkPoint] = []
        while produced < self.n:
            # One entry: 1-3 versions x 1-8 chunks, all in one cluster (entry topic).
            entry_no += 1
            entry_id = str(uuid.uuid5(_NS, f"entry-{self.seed}-{entry_no}"))
            cluster = int(rng.choice(self.n_centroids, p=self.cluster_p))
            topic = int(self.topic_of[cluster])
            category = CATEGORIES[topic % len(CATEGORIES)]
            product_type = None if rng.random() < 0.3 else PRODUCT_TYPES[int(rng.integers(len(PRODUCT_TYPES)))]
            tags = sorted({TAGS[int(i)] for i in rng.integers(0, len(TAGS), int(rng.integers(0, 4)))})
            n_versions = int(rng.choice([1, 1, 1, 2, 2, 3]))
            n_chunks = int(rng.integers(1, 9))
            start = _BASE_TS + int(rng.integers(0, 3 * _YEAR))
            bounds = sorted(start + int(x) for x in rng.integers(0, 2 * _YEAR, n_versions - 1))
            froms = [start, *bounds]
            tos = [*bounds, OPEN_END]
            title = _cjk_text(rng, self._cjk, 8, 20)
            for v in range(n_versions):
                version_id = str(uuid.uuid5(_NS, f"{entry_id}-v{v + 1}"))
                k = min(n_chunks, self.n - produced)
                if k <= 0:
                    break
                dense = self._dense(rng, np.full(k, cluster))
                for c in range(k):
                    pid = str(uuid.uuid5(_NS, f"{version_id}-c{c}"))
                    payload = {
                        "entry_id": entry_id,
                        "version_id": version_id,
                        "version": v + 1,
                        "chunk": c,
                        "category": category,
                        "product_type": product_type,
                        "tags": tags,
                        "valid_from": froms[v],
                        "valid_to": tos[v],
                        "title": title,
                        "text": _cjk_text(rng, self._cjk, *self.text_chars),
                    }
                    sp = self._sparse(rng, topic, int(rng.integers(10, 31)))
                    pending.append(ChunkPoint(pid, dense[c], sp, payload))
                produced += k
                while len(pending) >= batch:
                    yield pending[:batch]
                    pending = pending[batch:]
        if pending:
            yield pending

    def queries(self, n_q: int, *, seed: int | None = None) -> list[Query]:
        """Queries near existing centroids, each with a realistic filter.

        Query sparse vectors carry 3–8 terms (weight 1.0, like a tokenised
        question); the filter restricts to currently valid chunks and, for
        half of the queries, to one category.
        """
        rng = np.random.default_rng(self.seed + 7 if seed is None else seed)
        clusters = rng.choice(self.n_centroids, n_q, p=self.cluster_p)
        dense = self._dense(rng, clusters, scale=1.1)
        now = _BASE_TS + 4 * _YEAR
        out = []
        for i, cl in enumerate(clusters):
            topic = int(self.topic_of[cl])
            sp = self._sparse(rng, topic, int(rng.integers(3, 9)))
            sp = SparseVec(sp.indices, tuple(1.0 for _ in sp.indices))
            cats = (CATEGORIES[topic % len(CATEGORIES)],) if i % 2 == 0 else ()
            out.append(Query(dense[i], sp, IndexFilter(categories=cats, valid_at=now)))
        return out


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _cjk_text(rng: np.random.Generator, cjk: np.ndarray, lo: int, hi: int) -> str:
    n = int(rng.integers(lo, hi + 1))
    return "".join(map(chr, rng.choice(cjk, n)))


if __name__ == "__main__":  # quick sanity check of the cluster geometry
    import sys

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    corpus = SyntheticCorpus(n)
    pts = [p for b in corpus.iter_batches() for p in b]
    X = np.stack([np.asarray(p.dense) for p in pts])
    qs = corpus.queries(50)
    Q = np.stack([q.dense for q in qs])
    S = Q @ X.T
    top = np.sort(S, axis=1)[:, ::-1]
    print(f"points={len(pts)} centroids={corpus.n_centroids}")
    print(f"query top1 cos mean={top[:, 0].mean():.3f} top10 mean={top[:, 9].mean():.3f} "
          f"top100 mean={top[:, 99].mean():.3f} random pair mean={S.mean():.3f}")
    print(f"avg sparse nnz={np.mean([len(p.sparse) for p in pts]):.1f} "
          f"versions={len({p.payload['version_id'] for p in pts})}")
