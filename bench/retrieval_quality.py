"""Retrieval quality side by side: Zhiku's search path vs plain BM25 (jieba) vs plain dense (same model).

    .venv/bin/python bench/retrieval_quality.py --set demo --set esun --set bq --set afqmc [--json-out F]

Sets: `demo` (kb/demo entries + kb/demo/questions.jsonl) and the public sets under ../shared/eval
(skipped with a message when that folder is absent). Zhiku's numbers come from exactly the code
behind `zhiku eval retrieval`.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.evaluation import evaluate_retrieval  # noqa: E402
from kb.settings import get_settings  # noqa: E402
from retrieval.embedding import SentenceTransformerEmbedder  # noqa: E402
from retrieval.evaluate import QueryResult, read_jsonl, score  # noqa: E402

SHARED = ROOT.parent / "shared" / "eval"


def demo_corpus(tmp: Path) -> tuple[Path, Path]:
    """The demo entries as an eval corpus — every field the product indexes — and the demo questions."""
    from ingestion.demo import write_demo_corpus
    from kb.demo import DEMO_QUESTIONS

    corpus = tmp / "demo_corpus.jsonl"
    write_demo_corpus(corpus)
    return corpus, DEMO_QUESTIONS


def doc_text(d: dict) -> str:
    """Everything a corpus line says, as one text: what the baselines index (the same information as Zhiku)."""
    facts = "；".join(f"{k}：{v.get('value', '')}{v.get('unit') or ''}" if isinstance(v, dict) else f"{k}：{v}"
                     for k, v in (d.get("facts") or {}).items())
    parts = [d.get("title", ""), "、".join(d.get("synonyms") or []), d.get("summary", ""), facts, d.get("text", "")]
    return "\n".join(p for p in parts if p)


def bm25_baseline(corpus: list[dict], queries: list[dict], *, k1: float = 1.2, b: float = 0.75) -> list[QueryResult]:
    """Plain BM25 over jieba tokens of the whole line (no normalisation, no dictionary)."""
    import jieba

    jieba.setLogLevel(60)
    docs = [[t for t in jieba.lcut(doc_text(d)) if t.strip()] for d in corpus]
    n = len(docs)
    avgdl = sum(map(len, docs)) / n
    df: Counter[str] = Counter()
    for doc in docs:
        df.update(set(doc))
    idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}
    tfs = [Counter(doc) for doc in docs]
    lengths = np.array([len(doc) for doc in docs], dtype=np.float64)
    postings: dict[str, list[tuple[int, int]]] = {}
    for i, tf in enumerate(tfs):
        for t, c in tf.items():
            postings.setdefault(t, []).append((i, c))
    ids = [str(d["id"]) for d in corpus]
    results = []
    for q in queries:
        started = time.perf_counter()
        scores = np.zeros(n)
        for t in set(jieba.lcut(q["query"])):
            for i, c in postings.get(t, ()):
                scores[i] += idf[t] * c * (k1 + 1) / (c + k1 * (1 - b + b * lengths[i] / avgdl))
        top = np.argsort(-scores)[:100]
        ranked = [ids[i] for i in top if scores[i] > 0]
        results.append(QueryResult(str(q["id"]), q["query"], [str(x) for x in q["relevant_ids"]], ranked,
                                   (time.perf_counter() - started) * 1000, [str(x) for x in q.get("known_negative_ids") or []]))
    return results


def dense_baseline(corpus: list[dict], queries: list[dict], embedder: SentenceTransformerEmbedder) -> list[QueryResult]:
    """Plain dense search: the same model over the whole line, exact cosine, no normalisation or fusion."""
    passages = embedder.encode_passages([doc_text(d)[:1000] for d in corpus])
    ids = [str(d["id"]) for d in corpus]
    results = []
    for q in queries:
        started = time.perf_counter()
        vector = embedder.encode_queries([q["query"]])[0]
        top = np.argsort(-(passages @ vector))[:100]
        results.append(QueryResult(str(q["id"]), q["query"], [str(x) for x in q["relevant_ids"]], [ids[i] for i in top],
                                   (time.perf_counter() - started) * 1000, [str(x) for x in q.get("known_negative_ids") or []]))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", action="append", dest="sets", default=None, help="demo, esun, bq, afqmc")
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    sets = args.sets or ["demo", "esun", "bq", "afqmc"]
    settings = get_settings()
    embedder = SentenceTransformerEmbedder(settings.model_path)
    keys = ("n", "hit@1", "hit@3", "hit@5", "mrr@10", "ndcg@10", "p50_ms", "p95_ms", "hard_negative_accuracy")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in sets:
            if name == "demo":
                corpus_path, queries_path = demo_corpus(Path(tmp))
            else:
                corpus_path, queries_path = SHARED / name / "corpus.jsonl", SHARED / name / "queries_dev.jsonl"
                if not corpus_path.exists():
                    print(f"skip {name}: {corpus_path} not found (public eval data lives in ../shared/eval)")
                    continue
            corpus, queries = read_jsonl(corpus_path), read_jsonl(queries_path)
            started = time.perf_counter()
            report, _ = evaluate_retrieval(corpus=corpus_path, queries=queries_path, settings=settings)
            rows.append({"set": name, "system": "zhiku hybrid", **{k: report.get(k) for k in keys},
                         "wall_s": round(time.perf_counter() - started, 1)})
            if not args.no_baselines:
                rows.append({"set": name, "system": "BM25 (jieba)", **{k: v for k, v in score(bm25_baseline(corpus, queries)).items() if k in keys}})
                rows.append({"set": name, "system": "dense (e5, plain)", **{k: v for k, v in score(dense_baseline(corpus, queries, embedder)).items() if k in keys}})
            print(json.dumps(rows[-3 if not args.no_baselines else -1:], ensure_ascii=False), flush=True)
    header = ["set", "system", *keys[:8], "hard_negative_accuracy"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join("" if row.get(h) is None else str(row.get(h)) for h in header) + " |")
    if args.json_out:
        args.json_out.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
