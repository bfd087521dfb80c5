"""The one search path every front end uses: normalise → dense + sparse chunk search and dense name
search → per entry, its best chunk in each and its best name → convex score fusion → related entries
→ confidence."""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from kb.errors import ValidationFailed
from kb.timeutil import epoch, to_utc, utcnow
from retrieval import fuse
from retrieval.confidence import ConfidenceModel
from retrieval.embedding import Embedder
from retrieval.index.base import OPEN_END, Hit, IndexFilter, VectorIndex
from retrieval.text import Analyzer, has_content, normalize, to_simplified, truncate_query

SNIPPET_CHARS = 160
# What ranking needs of a chunk's payload; the chunk text only serves snippets and passages.
RANKING_FIELDS = ("entry_id", "version", "version_id", "title", "category", "product_type", "valid_from")


@dataclass(frozen=True)
class Filters:
    categories: tuple[str, ...] = ()
    product_types: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Blend:
    """Several texts read as one query: their words together (sparse) and the length-weighted mean
    of their vectors (dense). Encoding the joined text would cost a forward pass for text whose parts
    were mostly encoded already (a conversation's last topic was the previous turn's own query)."""

    parts: tuple[str, ...]

    def __str__(self) -> str:
        return " ".join(self.parts)


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
    sparse_rank: int | None = None  # the entry's rank by its best chunk's BM25 score
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
                 confidence: ConfidenceModel | None = None, prefetch: int = 60, dense_weight: float = 0.5,
                 handoff_below: float = 0.5, associations: Associations | None = None, synonym_weight: float = 0.7,
                 names: VectorIndex | None = None, name_weight: float = 0.3) -> None:
        self.index, self.embedder, self.analyzer = index, embedder, analyzer
        # Entry names (title, synonyms, summary) embedded as questions: the question is matched to
        # them question to question, a third signal taking `name_weight` of the score (0.3 chosen on
        # the demo questions and the team's dialogues; see docs/BENCHMARKS.md).
        self.names, self.name_weight = names, name_weight
        self.confidence = confidence or ConfidenceModel.default()
        # Equal weight: the measured optimum was flat between 0.45 and 0.55 on all four eval sets.
        self.prefetch, self.dense_weight = prefetch, dense_weight
        self.handoff_below = handoff_below
        self.associations = associations or Associations()
        # An entry whose synonym the query names scores at least this share of the best word match
        # (0.7 chosen on the demo questions and the team's dialogues: 1.0 let a product's nickname
        # outrank the process asked about, e.g. 工资卡 + 挂失).
        self.synonym_weight = synonym_weight

    def search(self, query: str, *, top_k: int = 5, filters: Filters | None = None,
               as_of: datetime | str | None = None, related: int = 3) -> SearchResponse:
        """Entries best answering `query` among those in force at `as_of` (default now)."""
        return self.search_many([query], top_k=top_k, filters=filters, as_of=as_of, related=related)[0]

    def search_many(self, queries: Sequence[str | Blend], *, top_k: int = 5, filters: Filters | None = None,
                    as_of: datetime | str | None = None, related: int = 3, passages: bool = True) -> list[SearchResponse]:
        """Several queries with one embedding batch (cheaper than one call each: live cards use two).
        `passages=False` leaves the chunk text out of the hits (no snippets): ranking only, as live cards
        need, at a fraction of the index's payload work."""
        started = time.perf_counter()
        if not 1 <= top_k <= 100:
            raise ValidationFailed("top_k 须在 1–100 之间 top_k must be 1–100", errors=[{"field": "top_k", "message": "out of range"}])
        parts_of = [q.parts if isinstance(q, Blend) else (q,) for q in queries]
        for parts in parts_of:
            if not parts or any(p is None for p in parts) or not "".join(parts).strip():
                raise ValidationFailed("查询不能为空 query must not be empty", errors=[{"field": "query", "message": "empty"}])
        parts_of = [[truncate_query(p.strip()) for p in parts if p.strip()] for parts in parts_of]
        texts = [truncate_query(" ".join(parts)) for parts in parts_of]
        searchable = [i for i, t in enumerate(texts) if has_content(t)]
        # What each searchable query encodes: its parts with content, normalised, with their lengths.
        encodes = {i: [(normalize(p, lower=False), len(p)) for p in parts_of[i] if has_content(p)] for i in searchable}
        unique = list(dict.fromkeys(key for parts in encodes.values() for key, _ in parts))
        encoded = dict(zip(unique, self.embedder.encode_queries(unique), strict=True)) if unique else {}
        dense_of = {}
        for i, parts in encodes.items():
            vector = sum(length * encoded[key] for key, length in parts)
            dense_of[i] = (vector / max(float(np.linalg.norm(vector)), 1e-12)).tolist()
        labels = [str(q) for q in queries]
        at = to_utc(as_of) or utcnow()
        flt = IndexFilter(
            categories=tuple((filters or Filters()).categories), product_types=tuple((filters or Filters()).product_types),
            tags=tuple((filters or Filters()).tags), valid_at=epoch(at, OPEN_END),
        )
        responses = []
        for i, (query, text) in enumerate(zip(labels, texts, strict=True)):
            normalized = normalize(text)
            if i not in dense_of:
                responses.append(SearchResponse(query, normalized, [], 0.0, True, _ms(started)))
                continue
            sparse_vec = self.analyzer.query_vector(normalized)
            fields = None if passages else RANKING_FIELDS
            dense_hits = self.index.search_dense(dense_of[i], limit=self.prefetch, flt=flt, fields=fields)
            sparse_hits = self.index.search_sparse(sparse_vec, limit=self.prefetch, flt=flt, fields=fields) if len(sparse_vec) else []
            name_hits = self.names.search_dense(dense_of[i], limit=self.prefetch, flt=flt, fields=fields) if self.names is not None else []
            named = self.associations.named_in(normalized)
            hits = self._collapse(dense_hits, sparse_hits, named, name_hits)
            confidence = self.confidence.predict(hits)
            top = hits[:top_k]
            self._attach_related(top, named, limit=related)
            responses.append(SearchResponse(query, normalized, top, confidence, confidence < self.handoff_below, _ms(started)))
        return responses

    def _collapse(self, dense_hits: Sequence[Hit], sparse_hits: Sequence[Hit], named: Sequence[str] = (),
                  name_hits: Sequence[Hit] = ()) -> list[EntryHit]:
        """Score entries, not chunks: each entry by its best chunk in each list and its best name, then
        fused; entries whose synonym the query `named` count as a strong word match.

        Fusing chunks first would split an entry whose title chunk matches the words and whose body
        chunk matches the meaning into two half-scored candidates.
        """
        dense: dict[str, float] = {}
        sparse: dict[str, float] = {}
        chunks: dict[str, dict[str, Hit]] = {}
        for listed, best in ((dense_hits, dense), (sparse_hits, sparse)):
            for h in listed:
                entry_id = h.payload["entry_id"]
                chunks.setdefault(entry_id, {}).setdefault(h.id, h)
                best[entry_id] = max(best.get(entry_id, h.score), h.score)
        names: dict[str, float] = {}
        for h in name_hits:  # an entry found by its name alone shows that name point
            entry_id = h.payload["entry_id"]
            chunks.setdefault(entry_id, {}).setdefault(h.id, h)
            names[entry_id] = max(names.get(entry_id, h.score), h.score)
        # A synonym the experts gave an entry, said in the query, is a strong word match: "副卡" names
        # 信用卡附属卡 even when the customer's other words match another card better.
        strongest = max(sparse.values(), default=0.0)
        for entry_id in named:
            if entry_id in chunks:
                sparse[entry_id] = max(sparse.get(entry_id, 0.0), self.synonym_weight * strongest)
        fused = fuse.convex(dense, sparse, dense_weight=self.dense_weight, names=names, name_weight=self.name_weight)
        # The chunk shown for an entry is the one that scores best itself, on the same scale.
        chunk_score = fuse.convex({h.id: h.score for h in dense_hits}, {h.id: h.score for h in sparse_hits},
                                  dense_weight=self.dense_weight)
        sparse_rank = {e: rank for rank, e in enumerate(sorted(sparse, key=lambda e: -sparse[e]), start=1)}
        hits = []
        for entry_id, score in sorted(fused.items(), key=lambda kv: -kv[1]):
            payload = max(chunks[entry_id].values(), key=lambda h: chunk_score.get(h.id, -1.0)).payload
            text = payload.get("text", "")
            hits.append(EntryHit(
                entry_id=entry_id, version=int(payload["version"]), version_id=payload["version_id"],
                title=payload["title"], category=payload["category"], product_type=payload.get("product_type"),
                valid_from=datetime.fromtimestamp(int(payload["valid_from"]), UTC), score=score,
                text=text, snippet=_snippet(text, payload["title"]),
                dense=dense.get(entry_id), sparse_rank=sparse_rank.get(entry_id),
            ))
        return hits

    def _attach_related(self, hits: list[EntryHit], named: Sequence[str], *, limit: int) -> None:
        shown = {h.entry_id for h in hits}
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
    if not text:  # ranking only (passages=False): no chunk text, no snippet
        return ""
    title = to_simplified(title)  # chunk text is simplified (ingestion.chunking)
    body = text[len(title):].strip() if text.startswith(title) else text
    return body[:SNIPPET_CHARS] + ("…" if len(body) > SNIPPET_CHARS else "")


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
