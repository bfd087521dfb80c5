"""What each encoder costs a process: time to its first vectors, peak memory, and whether PyTorch and
`transformers` were imported.

    .venv/bin/python bench/encoder_footprint.py [--model data/models/multilingual-e5-small] [--runs 3]

Every (encoder, run) is a fresh subprocess that builds `SentenceTransformerEmbedder(model, encoder=…)`
and encodes one short query and one passage of ≈ 400 characters — what a server or worker does before it
answers its first request. Prints a Markdown table (medians over the runs) and, last, one JSON line.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENCODERS = ("onnx", "int8", "torch")

PROBE = """
import json, resource, sys, time
from pathlib import Path
started = time.perf_counter()
from retrieval.embedding import SentenceTransformerEmbedder
embedder = SentenceTransformerEmbedder(Path(sys.argv[1]), encoder=sys.argv[2])
embedder.encode_queries(["房贷利率现在是多少"])
embedder.encode_passages(["个人住房贷款利率按最新LPR加点确定，首套房与二套房加点不同，重定价日可选每年1月1日或贷款发放日。" * 8])
print(json.dumps({"backend": embedder.backend, "first_vectors_s": round(time.perf_counter() - started, 2),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
                  "torch": "torch" in sys.modules, "transformers": "transformers" in sys.modules}))
"""


def measure(model: Path, encoder: str) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, str(model), encoder], capture_output=True, text=True,
                          check=True, cwd=ROOT)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "data" / "models" / "multilingual-e5-small")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    results = []
    for encoder in ENCODERS:
        runs = [measure(args.model, encoder) for _ in range(args.runs)]
        results.append({"encoder": encoder, "backend": runs[0]["backend"], "runs": args.runs,
                        "first_vectors_s": statistics.median(r["first_vectors_s"] for r in runs),
                        "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in runs),
                        "torch": runs[0]["torch"], "transformers": runs[0]["transformers"]})
    print("| encoder | runs on | first vectors s | peak RSS MB | PyTorch imported | transformers imported |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['encoder']} | {r['backend']} | {r['first_vectors_s']} | {r['peak_rss_mb']} | {r['torch']} | {r['transformers']} |")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
