"""Retrieval evaluation: load a corpus into a throwaway store, ask every question through the search
path agents use, and score the rankings (hit@k, MRR@10, nDCG@10, latency)."""
from __future__ import annotations

import json
import math
import re
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kb.errors import ValidationFailed
from kb.models import Category

EPOCH_START = "2000-01-01T00:00:00+00:00"
OPTIONAL_FIELDS = ("summary", "synonyms", "tags", "facts", "product_type", "risk_level", "script_template", "valid_to",
                   "related")
_SAFE_ID = re.compile(r"^[^\s/\\?#]{1,64}$")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read a JSON-lines file; a bad line is an error naming the file and line."""
    rows = []
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValidationFailed(f"{path.name}:{number}: 不是有效的 JSON invalid JSON: {exc.msg}",
                                       errors=[{"field": "file", "message": exc.msg, "line": number}]) from None
    return rows


@dataclass
class CorpusMap:
    """Which corpus line each stored (entry, version) came from, so results are named by corpus id."""

    entry_of: dict[str, str] = field(default_factory=dict)  # corpus id -> entry id
    line_of: dict[tuple[str, int], str] = field(default_factory=dict)  # (entry id, version) -> corpus id

    def name(self, entry_id: str, version: int) -> str:
        return self.line_of.get((entry_id, version), entry_id)


def corpus_entries(rows: Sequence[dict[str, Any]]) -> Iterable[tuple[str, str | None, dict[str, Any]]]:
    """(corpus id, superseded corpus id or None, entry data) in an order where X comes before its successor."""
    pending = list(rows)
    seen: set[str] = set()
    while pending:
        progressed, later = False, []
        for row in pending:
            sup = row.get("supersedes")
            if sup and sup not in seen:
                later.append(row)
                continue
            cid = str(row["id"])
            data = {
                "title": (row.get("title") or row.get("text") or cid)[:200],
                "body": row.get("text") or "",
                "category": _category(row.get("category")),
                "valid_from": row.get("valid_from") or EPOCH_START,
            }
            # A corpus line may carry any other field of an entry (the demo knowledge base does).
            data.update({k: row[k] for k in OPTIONAL_FIELDS if row.get(k) not in (None, "", [], {})})
            seen.add(cid)
            progressed = True
            yield cid, sup, data
        if not progressed:
            missing = sorted({r["supersedes"] for r in later})[:5]
            raise ValidationFailed(f"supersedes 指向不存在的条目 supersedes names unknown ids: {missing}",
                                   errors=[{"field": "supersedes", "message": ", ".join(missing)}])
        pending = later


def _category(value: Any) -> str:
    """A corpus's own category label (信用卡, 理财产品 …) need not be one of the knowledge base's four
    branches: the known names map to theirs, any other label loads as an FAQ rather than failing the run."""
    try:
        return Category.parse(value).value if value not in (None, "") else Category.FAQ.value
    except ValueError:
        return Category.FAQ.value


def safe_entry_id(corpus_id: str, index: int) -> str:
    return corpus_id if _SAFE_ID.match(corpus_id) else f"C-{index:07d}"


# ---------------------------------------------------------------- metrics


def _dcg(gains: Sequence[int]) -> float:
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains))


@dataclass
class QueryResult:
    id: str
    query: str
    relevant: list[str]
    ranked: list[str]
    ms: float
    negatives: list[str] = field(default_factory=list)

    def rank(self) -> int | None:
        for position, cid in enumerate(self.ranked, start=1):
            if cid in self.relevant:
                return position
        return None


def score(results: Sequence[QueryResult]) -> dict[str, Any]:
    """The report: n, hit@1/3/5, mrr@10, ndcg@10, p50/p95 latency, hard-negative accuracy if labelled."""
    n = len(results)
    if n == 0:
        return {"n": 0}
    ranks = [r.rank() for r in results]
    report: dict[str, Any] = {"n": n}
    for k in (1, 3, 5, 10):
        report[f"hit@{k}"] = round(sum(1 for x in ranks if x is not None and x <= k) / n, 4)
    report["mrr@10"] = round(sum(1 / x for x in ranks if x is not None and x <= 10) / n, 4)
    ndcg = []
    for r in results:
        gains = [1 if cid in r.relevant else 0 for cid in r.ranked[:10]]
        ideal = _dcg([1] * min(len(set(r.relevant)), 10))
        ndcg.append(_dcg(gains) / ideal if ideal else 0.0)
    report["ndcg@10"] = round(sum(ndcg) / n, 4)
    latencies = sorted(r.ms for r in results)
    report["p50_ms"] = round(statistics.median(latencies), 2)
    report["p95_ms"] = round(latencies[min(n - 1, math.ceil(0.95 * n) - 1)], 2)
    labelled = [r for r in results if r.negatives]
    if labelled:
        wins = 0
        for r in labelled:
            position = {cid: i for i, cid in enumerate(r.ranked)}
            gold = min((position[c] for c in r.relevant if c in position), default=None)
            if gold is not None and all(position.get(neg, math.inf) > gold for neg in r.negatives):
                wins += 1
        report["hard_negative_n"] = len(labelled)
        report["hard_negative_accuracy"] = round(wins / len(labelled), 4)
    return report


Ranker = Callable[[str], tuple[list[str], float]]


def run_queries(queries: Sequence[dict[str, Any]], ranker: Ranker,
                progress: Callable[[int], None] | None = None) -> list[QueryResult]:
    """Ask every query; `ranker(query)` returns (corpus ids best first, milliseconds)."""
    results = []
    for row in queries:
        ranked, ms = ranker(str(row["query"]))
        results.append(QueryResult(
            id=str(row.get("id", len(results))), query=str(row["query"]),
            relevant=[str(x) for x in row.get("relevant_ids", [])], ranked=ranked, ms=ms,
            negatives=[str(x) for x in row.get("known_negative_ids", []) or []],
        ))
        if progress:
            progress(1)
    return results
