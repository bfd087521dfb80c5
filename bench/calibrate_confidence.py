"""Fit search's confidence model (retrieval/confidence.py) on labelled questions and report calibration.

    .venv/bin/python bench/calibrate_confidence.py [--fit demo] [--check esun --check bq] [--write]
        [--cache DIR]

A question's label is whether its first result is relevant. The model is fitted on `--fit` (the demo
questions by default: written for this product) and judged in sample, by 5-fold cross-validation, and
out of sample on every `--check` set (../shared/eval). `--write` stores it as retrieval/confidence.json.
Reported per set: top-1 accuracy (the base rate), Brier score, ECE (10 equal-width bins), and at the
0.5 threshold the accuracy of the answers given and the share handed off to a person. Results come
from exactly the search path of `zhiku eval retrieval`; `--cache` keeps them to refit in seconds.
"""
from __future__ import annotations

import argparse
import json
import pickle
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.evaluation import load_corpus  # noqa: E402
from api.runtime import Runtime  # noqa: E402
from kb.db import make_engine, upgrade  # noqa: E402
from kb.settings import Settings, get_settings  # noqa: E402
from retrieval.confidence import FEATURES, FITTED, features  # noqa: E402
from retrieval.evaluate import read_jsonl  # noqa: E402
from retrieval.search import EntryHit  # noqa: E402

SHARED = ROOT.parent / "shared" / "eval"
THRESHOLD = 0.5
Labelled = list[tuple[list[EntryHit], bool]]


def set_paths(name: str, tmp: Path) -> tuple[Path, Path]:
    if name == "demo":
        sys.path.insert(0, str(ROOT / "bench"))
        from retrieval_quality import demo_corpus

        return demo_corpus(tmp)
    return SHARED / name / "corpus.jsonl", SHARED / name / "queries_dev.jsonl"


def collect(name: str, settings: Settings) -> Labelled:
    """(top hits, first hit relevant?) for every question of a set, through the evaluation's store."""
    with tempfile.TemporaryDirectory(prefix="zhiku-calibrate-") as tmp:
        corpus, queries = set_paths(name, Path(tmp))
        store = Settings(data_dir=Path(tmp) / "store", embed_model=str(settings.model_path), _env_file=None)  # type: ignore[call-arg]
        engine = make_engine(store.resolved_database_url)
        upgrade(engine)
        engine.dispose()
        runtime = Runtime.open(store)
        try:
            mapping = load_corpus(runtime, read_jsonl(corpus))
            runtime.sync_index()
            searcher = runtime.searcher
            out: Labelled = []
            for question in read_jsonl(queries):
                hits = searcher.search(str(question["query"]), top_k=10, related=0).hits
                relevant = {str(x) for x in question["relevant_ids"]}
                out.append((hits, bool(hits) and mapping.name(hits[0].entry_id, hits[0].version) in relevant))
        finally:
            runtime.close()
    return out


def matrix(rows: Labelled) -> tuple[np.ndarray, np.ndarray]:
    return np.array([features(hits) for hits, _ in rows], dtype=float), np.array([y for _, y in rows], dtype=float)


def fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Logistic regression on standardised features (so the penalty treats them alike), returned in
    raw-feature terms, which is what ConfidenceModel evaluates."""
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=1.0, max_iter=1000).fit((x - mean) / scale, y)
    coef = model.coef_[0] / scale
    return coef, float(model.intercept_[0] - np.sum(coef * mean))


def predict(coef: np.ndarray, intercept: float, x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x @ coef + intercept, -50, 50)))


def report(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    bins = np.minimum((p * 10).astype(int), 9)
    ece = sum(abs(p[bins == b].mean() - y[bins == b].mean()) * (bins == b).mean() for b in range(10) if (bins == b).any())
    answered = p >= THRESHOLD
    return {
        "n": len(y), "top1_acc": round(float(y.mean()), 4), "brier": round(float(np.mean((p - y) ** 2)), 4),
        "ece10": round(float(ece), 4),
        "acc_answered": round(float(y[answered].mean()), 4) if answered.any() else float("nan"),
        "handoff_share": round(float(1 - answered.mean()), 4), "mean_conf": round(float(p.mean()), 4),
    }


def cross_validated(x: np.ndarray, y: np.ndarray, folds: int = 5) -> np.ndarray:
    order = np.random.default_rng(0).permutation(len(y))
    p = np.zeros(len(y))
    for k in range(folds):
        test = order[k::folds]
        train = np.setdiff1d(order, test)
        p[test] = predict(*fit(x[train], y[train]), x[test])
    return p


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fit", default="demo")
    parser.add_argument("--check", action="append", default=None, help="out-of-sample sets (default esun, bq)")
    parser.add_argument("--write", action="store_true", help=f"store the model as {FITTED.relative_to(ROOT)}")
    parser.add_argument("--cache", type=Path, help="keep search results here and reuse them")
    args = parser.parse_args()
    checks = args.check or ["esun", "bq"]
    settings = get_settings()
    data: dict[str, Labelled] = {}
    for name in [args.fit, *checks]:
        cached = args.cache / f"{name}.pkl" if args.cache else None
        if cached and cached.exists():
            data[name] = pickle.loads(cached.read_bytes())
            continue
        if name != "demo" and not (SHARED / name).exists():
            print(f"skip {name}: {SHARED / name} not found")
            continue
        data[name] = collect(name, settings)
        if cached:
            cached.parent.mkdir(parents=True, exist_ok=True)
            cached.write_bytes(pickle.dumps(data[name]))
    x, y = matrix(data[args.fit])
    coef, intercept = fit(x, y)
    rows = [{"set": args.fit, "kind": "in sample", **report(predict(coef, intercept, x), y)},
            {"set": args.fit, "kind": "5-fold CV", **report(cross_validated(x, y), y)}]
    for name in checks:
        if name in data:
            cx, cy = matrix(data[name])
            rows.append({"set": name, "kind": "out of sample", **report(predict(coef, intercept, cx), cy)})
    print("features:", ", ".join(f"{f}={c:+.3f}" for f, c in zip(FEATURES, coef, strict=True)), f"intercept={intercept:+.3f}")
    header = list(rows[0])
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(row[h]) for h in header) + " |")
    if args.write:
        FITTED.write_text(json.dumps({
            "features": list(FEATURES), "coef": [round(float(c), 6) for c in coef], "intercept": round(intercept, 6),
            "source": "bench/calibrate_confidence.py", "fitted_on": f"{args.fit} questions, {datetime.now(UTC):%Y-%m-%d}",
            "n": len(y),
        }, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {FITTED}")


if __name__ == "__main__":
    main()
