"""Approve → searchable for an update pack of N entries on the embedded default (SQLite + embedded
index + the real offline model), against the pure embedding time of the same chunks.

    ZHIKU_DATA_DIR=data .venv/bin/python bench/publish_latency.py --entries 50 --runs 5

Each run: a fresh store with the demo knowledge base indexed; an expert's pack changing N entries;
a reviewer approves it (the clock starts when the approval commits); the in-process outbox worker
(woken by the approval, as the API does) indexes the new versions; the clock stops when a search for
every changed entry returns its new version.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.runtime import Runtime  # noqa: E402
from ingestion.chunking import chunk_version  # noqa: E402
from ingestion.demo import load_demo  # noqa: E402
from kb import service as kb  # noqa: E402
from kb.db import make_engine, session_scope, upgrade  # noqa: E402
from kb.models import Actor  # noqa: E402
from kb.settings import Settings, get_settings  # noqa: E402
from review_workflow import service as wf  # noqa: E402
from retrieval.embedding import SentenceTransformerEmbedder  # noqa: E402
from retrieval.index.base import IndexFilter  # noqa: E402

FIELDS = ("title", "body", "summary", "category", "product_type", "risk_level", "facts", "script_template",
          "tags", "synonyms", "related", "valid_to", "review_by")


def one_run(model: Path, n: int, embedder: SentenceTransformerEmbedder) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="zhiku-bench-") as tmp:
        settings = Settings(data_dir=Path(tmp), embed_model=str(model), _env_file=None)  # type: ignore[call-arg]
        engine = make_engine(settings.resolved_database_url)
        upgrade(engine)
        engine.dispose()
        runtime = Runtime.open(settings, embedder=embedder)
        try:
            with session_scope(runtime.engine) as session:
                load_demo(session=session)
            runtime.sync_index()
            runtime.index.optimize()
            runtime.searcher.search("预热", top_k=1)
            with session_scope(runtime.engine) as session:
                current = sorted(kb.current_versions(session=session).values(), key=lambda v: v.entry_id)[:n]
                items = []
                for v in current:
                    data = {f: getattr(v, f) for f in FIELDS}
                    data["body"] = v.body + f"\n自{time.strftime('%Y年%m月%d日')}起，本条目内容已按最新规定更新（基准测试）。"
                    items.append({"op": "update", "entry_id": v.entry_id, "base_version": v.number, **data})
                pack = wf.create_pack(session=session, data={"title": f"基准测试 {n} 条", "items": items},
                                      actor=Actor("expert", "expert"))
                wf.submit_pack(session=session, pack_id=pack.id, actor=Actor("expert", "expert"))
            texts = [c.text for item in items for c in chunk_version(item)]
            runtime.worker.start()
            with session_scope(runtime.engine) as session:
                wf.approve_pack(session=session, pack_id=pack.id, data={"override_reason": "基准测试"},
                                actor=Actor("reviewer", "reviewer"))
            started = time.perf_counter()
            runtime.worker.notify()
            pending = {v.entry_id: v.number + 1 for v in current}
            probe = [0.0] * embedder.dim
            probe[0] = 1.0
            while pending:
                # What search can see now: points in force for the pending entries.
                flt = IndexFilter(entry_ids=tuple(pending), valid_at=int(time.time()))
                for hit in runtime.index.search_dense(probe, limit=10 * len(pending) + 10, flt=flt):
                    if pending.get(hit.payload["entry_id"]) == hit.payload["version"]:
                        del pending[hit.payload["entry_id"]]
                if time.perf_counter() - started > 300:
                    raise TimeoutError(f"{len(pending)} entries not searchable after 300 s")
                if pending:
                    time.sleep(0.05)
            searchable = time.perf_counter() - started
            runtime.worker.stop()
            t = time.perf_counter()
            embedder.encode_passages(texts)
            embed = time.perf_counter() - t
            return {"approve_to_searchable_s": searchable, "embed_only_s": embed, "chunks": len(texts)}
        finally:
            runtime.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    model = get_settings().model_path
    embedder = SentenceTransformerEmbedder(model)
    runs = [one_run(model, args.entries, embedder) for _ in range(args.runs)]
    latencies = sorted(r["approve_to_searchable_s"] for r in runs)
    ratios = [r["approve_to_searchable_s"] / r["embed_only_s"] for r in runs]
    p95 = latencies[min(len(latencies) - 1, int(round(0.95 * len(latencies) + 0.5)) - 1)]
    report = {
        "entries": args.entries, "runs": args.runs, "chunks": runs[0]["chunks"],
        "approve_to_searchable_p50_s": round(statistics.median(latencies), 2), "approve_to_searchable_p95_s": round(p95, 2),
        "embed_only_median_s": round(statistics.median(r["embed_only_s"] for r in runs), 2),
        "ratio_median": round(statistics.median(ratios), 2), "ratio_max": round(max(ratios), 2),
    }
    print(json.dumps(report, ensure_ascii=False))


if __name__ == "__main__":
    main()
