"""The one search path every front end uses: normalise → dense + sparse → fuse → collapse to entries
→ related entries → confidence."""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from kb.errors import ValidationFailed
from kb.timeutil import epoch, to_utc, utcnow
from retrieval import fuse
from retrieval.confidence import ConfidenceModel
from retrieval.embedding import Embedder
from retrieval.index.base import OPEN_END, Hit, IndexFilter, VectorIndex
from retrieval.text import Analyzer, has_content, normalize, truncate_query

SNIPPET_CHARS = 160


@dataclass(frozen=True)
class Filters:
    categories: tuple[str, ...] = ()
    product_types: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class RelatedRef:
    entry_id: str
    title: str
    reason: str  # "related" (expert link) or "synonym" (the query used a synonym of it)


@dataclass
class EntryHit:
    entry_id: str
    version: int
    version_id: str
    title: str
    category: str
    product_type: str | None
    valid_from: datetime
    score: float
    text: str
    snippet: str
    dense: float | None = None  # best chunk cosine
    sparse_rank: int | None = None
    related: list[RelatedRef] = field(default_factory=list)


@dataclass
class SearchResponse:
    query: str
    normalized: str
    hits: list[EntryHit]
    confidence: float
    handoff: bool
    took_ms: float


@dataclass(frozen=True)
class Association:
    title: str
    related: tuple[str, ...]
    synonyms: tuple[str, ...]


class Associations:
    """Expert-made links between entries (related ids, synonyms), read from the current versions.

    Links count both ways: if 房贷利率 names 最新LPR报价 as related, the LPR entry also shows the
    mortgage-rate entry.
    """

    def __init__(self, entries: Mapping[str, Association] | None = None) -> None:
        self.entries = dict(entries or {})
        self.links: dict[str, list[str]] = {}
        for entry_id, assoc in self.entries.items():
            for other in assoc.related:
                if other in self.entries and other != entry_id:
                    self.links.setdefault(entry_id, []).append(other)
                    self.links.setdefault(other, []).append(entry_id)
        self.synonyms = [
            (normalize(s), entry_id) for entry_id, a in self.entries.items() for s in a.synonyms if len(s.strip()) >= 2
        ]

    def related_to(self, entry_id: str) -> list[str]:
        return list(dict.fromkeys(self.links.get(entry_id, [])))

    def named_in(self, normalized_query: str) -> list[str]:
        """Entries whose synonym appears in the query."""
        return list(dict.fromkeys(e for s, e in self.synonyms if s and s in normalized_query))


class Searcher:
    """Hybrid search over one index with one embedder and analyzer (shared, thread-safe)."""

    def __init__(self, *, index: VectorIndex, embedder: Embedder, analyzer: Analyzer,
                 confidence: ConfidenceModel | None = None, prefetch: int = 60, rrf_k: int = 60,
                 weights: tuple[float, float] = (1.0, 1.0), handoff_below: float = 0.5,
                 associations: Associations | None = None) -> None:
        self.index, self.embedder, self.analyzer = index, embedder, analyzer
        self.confidence = confidence or ConfidenceModel.default()
        self.prefetch, self.rrf_k, self.weights = prefetch, rrf_k, weights
        self.handoff_below = handoff_below
        self.associations = associations or Associations()

    def search(self, query: str, *, top_k: int = 5, filters: Filters | None = None,
               as_of: datetime | str | None = None, related: int = 3) -> SearchResponse:
        """Entries best answering `query` among those in force at `as_of` (default now)."""
        started = time.perf_counter()
        if query is None or not query.strip():
            raise ValidationFailed("查询不能为空 query must not be empty", errors=[{"field": "query", "message": "empty"}])
        if not 1 <= top_k <= 100:
            raise ValidationFailed("top_k 须在 1–100 之间 top_k must be 1–100", errors=[{"field": "top_k", "message": "out of range"}])
        text = truncate_query(query.strip())
        normalized = normalize(text)
        if not has_content(text):
            return SearchResponse(query, normalized, [], 0.0, True, _ms(started))
        at = to_utc(as_of) or utcnow()
        flt = IndexFilter(
            categories=tuple((filters or Filters()).categories), product_types=tuple((filters or Filters()).product_types),
            tags=tuple((filters or Filters()).tags), valid_at=epoch(at, OPEN_END),
        )
        dense_vec = self.embedder.encode_queries([normalize(text, lower=False)])[0].tolist()
        sparse_vec = self.analyzer.query_vector(normalized)
        dense_hits = self.index.search_dense(dense_vec, limit=self.prefetch, flt=flt)
        sparse_hits = self.index.search_sparse(sparse_vec, limit=self.prefetch, flt=flt) if len(sparse_vec) else []
        hits = self._collapse(dense_hits, sparse_hits)
        confidence = self.confidence.predict(hits)
        top = hits[:top_k]
        self._attach_related(top, normalized, limit=related)
        return SearchResponse(query, normalized, top, confidence, confidence < self.handoff_below, _ms(started))

    def _collapse(self, dense_hits: Sequence[Hit], sparse_hits: Sequence[Hit]) -> list[EntryHit]:
        """Fuse chunk rankings, then keep each entry once at its best chunk."""
        fused = fuse.rrf([[h.id for h in dense_hits], [h.id for h in sparse_hits]], k=self.rrf_k, weights=self.weights)
        by_id = {h.id: h for h in sparse_hits} | {h.id: h for h in dense_hits}
        dense_score = {h.id: h.score for h in dense_hits}
        sparse_rank = {h.id: rank for rank, h in enumerate(sparse_hits, start=1)}
        best: dict[str, EntryHit] = {}
        for point_id, score in sorted(fused.items(), key=lambda kv: -kv[1]):
            payload = by_id[point_id].payload
            entry_id = payload["entry_id"]
            cosine = dense_score.get(point_id)
            hit = best.get(entry_id)
            if hit is None:
                best[entry_id] = EntryHit(
                    entry_id=entry_id, version=int(payload["version"]), version_id=payload["version_id"],
                    title=payload["title"], category=payload["category"], product_type=payload.get("product_type"),
                    valid_from=datetime.fromtimestamp(int(payload["valid_from"]), UTC), score=score,
                    text=payload.get("text", ""), snippet=_snippet(payload.get("text", ""), payload["title"]),
                    dense=cosine, sparse_rank=sparse_rank.get(point_id),
                )
            else:
                # The entry's other chunks still tell how close it is semantically and lexically.
                if cosine is not None and (hit.dense is None or cosine > hit.dense):
                    hit.dense = cosine
                rank = sparse_rank.get(point_id)
                if rank is not None and (hit.sparse_rank is None or rank < hit.sparse_rank):
                    hit.sparse_rank = rank
        return sorted(best.values(), key=lambda h: -h.score)

    def _attach_related(self, hits: list[EntryHit], normalized: str, *, limit: int) -> None:
        shown = {h.entry_id for h in hits}
        named = self.associations.named_in(normalized)
        for hit in hits:
            refs = []
            for other in self.associations.related_to(hit.entry_id):
                if other not in shown:
                    refs.append(RelatedRef(other, self.associations.entries[other].title, "related"))
            hit.related = refs[:limit]
        if hits:
            extra = [e for e in named if e not in shown and all(r.entry_id != e for r in hits[0].related)]
            hits[0].related.extend(RelatedRef(e, self.associations.entries[e].title, "synonym") for e in extra[:limit])


def _snippet(text: str, title: str) -> str:
    body = text[len(title):].strip() if text.startswith(title) else text
    return body[:SNIPPET_CHARS] + ("…" if len(body) > SNIPPET_CHARS else "")


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
