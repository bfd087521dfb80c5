"""Latency / memory / disk benchmark of the vector index backends.

    PYTHONPATH=. python bench/index_latency.py --n 10000 --n 100000 \
        --backend edge --backend local [--exact] [--hnsw] [--queries 200]

Backends: ``edge`` (EdgeIndex on qdrant-edge) and ``local`` (QdrantClientIndex
on ``QdrantClient(path=...)``, qdrant-client's pure-Python local mode). Modes
(edge only): ``--exact`` (default; exact dense scan, no HNSW), ``--float16``
(exact scan over float16-stored vectors) and ``--hnsw`` (optimize() builds
HNSW). Give several flags to compare.

Each (backend, mode, n) runs in two fresh subprocesses so memory numbers are
not polluted by the generator or by other configs:

1. build — generate N synthetic points (bench/synthetic.py), upsert, optimize
   (a ticker thread measures how long Python is stalled: optimize holds the
   GIL), time a "publish" (upsert a 5-chunk version + close the old one);
2. serve — reopen the index (load time), run the queries: dense, sparse,
   hybrid (RRF) and filtered hybrid (valid_at, half with a category), report
   p50/p95 (wall) and mean process CPU time per query (robust to other load
   on the machine; the 1-minute load average is reported too), RSS, then
   recall@10 of the dense search against numpy brute force (unfiltered and
   filtered).

Per query kind, the query loop stops after ``--budget`` seconds (at least
``--min-queries`` queries) — qdrant-client local mode takes ~1.5 s per query
at 100k, so it gets fewer queries; the table shows how many ran.

Prints a Markdown table and, last, one JSON line with all results.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # allow `python bench/index_latency.py`
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from bench.synthetic import CATEGORIES, SyntheticCorpus  # noqa: E402
from retrieval.index.base import OPEN_END, ChunkPoint, IndexFilter, SparseVec, VectorIndex  # noqa: E402

LIMIT = 10
PREFETCH = 50


# -- helpers -----------------------------------------------------------------------
def rss_mb() -> float:
    """Current resident set size (MB), from /proc (psutil is not a dependency)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def disk_mb(path: Path) -> float:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total / 2**20


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs) * 1000, q)) if xs else float("nan")


def open_index(backend: str, mode: str, path: Path) -> VectorIndex:
    if backend == "edge":
        from retrieval.index.edge import EdgeIndex

        return EdgeIndex(path, hnsw=(mode == "hnsw"), float16=(mode == "f16"))
    if backend == "local":
        from retrieval.index.client import open_client_index

        return open_client_index(path=str(path))
    raise SystemExit(f"unknown backend {backend}")


class StallMeter:
    """Measures the longest gap between 1 ms ticks of a Python thread (GIL stalls)."""

    def __init__(self) -> None:
        self.max_gap = 0.0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        last = time.perf_counter()
        while not self._stop.is_set():
            time.sleep(0.001)
            now = time.perf_counter()
            self.max_gap = max(self.max_gap, now - last)
            last = now

    def __enter__(self) -> StallMeter:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


# -- child: build ------------------------------------------------------------------------
def child_build(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.dir)
    idx_path = work / "index"
    corpus = SyntheticCorpus(args.n, seed=args.seed)
    rss0 = rss_mb()
    idx = open_index(args.backend, args.mode, idx_path)
    idx.ensure_collection(dim=corpus.dim)

    dense = np.lib.format.open_memmap(work / "dense.npy", mode="w+", dtype=np.float32, shape=(args.n, corpus.dim))
    cat = np.zeros(args.n, dtype=np.int16)
    vfrom = np.zeros(args.n, dtype=np.int64)
    vto = np.zeros(args.n, dtype=np.int64)
    ids: list[str] = []
    open_version = ""  # an open-ended version, for the publish timing
    upsert_s = 0.0
    gen_s = 0.0
    i = 0
    t_gen = time.perf_counter()
    for batch in corpus.iter_batches(args.batch):
        t0 = time.perf_counter()
        gen_s += t0 - t_gen
        idx.upsert(batch)
        t_gen = time.perf_counter()
        upsert_s += t_gen - t0
        for p in batch:
            dense[i] = p.dense
            cat[i] = CATEGORIES.index(p.payload["category"])
            vfrom[i] = p.payload["valid_from"]
            vto[i] = p.payload["valid_to"]
            ids.append(p.id)
            if not open_version and p.payload["valid_to"] == OPEN_END:
                open_version = p.payload["version_id"]
            i += 1
    dense.flush()
    del dense
    np.save(work / "meta_cat.npy", cat)
    np.save(work / "meta_from.npy", vfrom)
    np.save(work / "meta_to.npy", vto)
    (work / "ids.json").write_text(json.dumps(ids))
    rss_built = rss_mb()

    with StallMeter() as stall:
        t0 = time.perf_counter()
        idx.optimize()
        optimize_s = time.perf_counter() - t0

    # A "publish": new 5-chunk version of an entry, old version closed.
    rng = np.random.default_rng(1)
    old_vid = open_version
    new_pts = []
    for c in range(5):
        v = rng.standard_normal(corpus.dim).astype(np.float32)
        v /= np.linalg.norm(v)
        new_pts.append(
            ChunkPoint(
                f"00000000-0000-4000-8000-{c:012d}", v, SparseVec((1, 2, 3), (1.0, 1.0, 1.0)),
                {"entry_id": "publish", "version_id": "publish-v2", "version": 2, "chunk": c,
                 "category": CATEGORIES[0], "product_type": None, "tags": [], "valid_from": 2_000_000_000,
                 "valid_to": OPEN_END, "title": "t", "text": "x"},
            )
        )
    t0 = time.perf_counter()
    idx.upsert(new_pts)
    touched = idx.set_valid_to(version_id=old_vid, valid_to=2_000_000_000)
    publish_ms = (time.perf_counter() - t0) * 1000
    idx.delete_version(version_id="publish-v2")  # keep the corpus = the N generated points
    idx.set_valid_to(version_id=old_vid, valid_to=OPEN_END)
    count = idx.count()
    idx.close()
    return {
        "gen_s": gen_s,
        "upsert_s": upsert_s,
        "upsert_pts_per_s": args.n / upsert_s if upsert_s else float("nan"),
        "optimize_s": optimize_s,
        "optimize_max_stall_s": stall.max_gap,
        "publish_ms": publish_ms,
        "publish_touched": touched,
        "count": count,
        "rss_build_base_mb": rss0,
        "rss_after_upsert_mb": rss_built,
        "rss_build_peak_mb": peak_rss_mb(),
        "disk_mb": disk_mb(idx_path),
    }


# -- child: serve ---------------------------------------------------------------------------
def child_serve(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.dir)
    corpus = SyntheticCorpus(args.n, seed=args.seed)
    queries = corpus.queries(args.queries)
    rss0 = rss_mb()
    t0 = time.perf_counter()
    idx = open_index(args.backend, args.mode, work / "index")
    idx.ensure_collection(dim=corpus.dim)
    n = idx.count()
    load_s = time.perf_counter() - t0
    rss_loaded = rss_mb()

    kinds = {
        "dense": lambda q: idx.search_dense(q.dense, limit=LIMIT),
        "sparse": lambda q: idx.search_sparse(q.sparse, limit=LIMIT),
        "hybrid": lambda q: idx.search_hybrid(q.dense, q.sparse, limit=LIMIT, prefetch=PREFETCH),
        "filtered_hybrid": lambda q: idx.search_hybrid(q.dense, q.sparse, limit=LIMIT, prefetch=PREFETCH, flt=q.flt),
    }
    out: dict[str, Any] = {"load_s": load_s, "count": n, "loadavg_start": os.getloadavg()[0]}
    dense_results: list[list[str]] = []
    dense_f_results: list[list[str]] = []
    for kind, fn in kinds.items():
        for q in queries[: min(3, len(queries))]:  # warm-up (page cache, lazy init)
            fn(q)
        times: list[float] = []
        start = time.perf_counter()
        cpu0 = time.process_time()  # all threads of the process, incl. the engine's search pool
        for qi, q in enumerate(queries):
            t = time.perf_counter()
            res = fn(q)
            times.append(time.perf_counter() - t)
            if kind == "dense":
                dense_results.append([h.id for h in res])
            if time.perf_counter() - start > args.budget and qi + 1 >= args.min_queries:
                break
        cpu_ms = (time.process_time() - cpu0) * 1000 / len(times)
        out[kind] = {"p50_ms": pct(times, 50), "p95_ms": pct(times, 95), "mean_ms": float(np.mean(times) * 1000),
                     "cpu_ms": cpu_ms, "queries": len(times)}
    # filtered dense, for the filtered recall only (not timed; same time budget)
    start = time.perf_counter()
    for q in queries[: len(dense_results)]:
        dense_f_results.append([h.id for h in idx.search_dense(q.dense, limit=LIMIT, flt=q.flt)])
        if time.perf_counter() - start > args.budget and len(dense_f_results) >= args.min_queries:
            break
    nq_rec = len(dense_f_results)
    out["loadavg_end"] = os.getloadavg()[0]
    out["rss_serve_base_mb"] = rss0
    out["rss_loaded_mb"] = rss_loaded
    out["rss_serve_mb"] = rss_mb()
    out["rss_serve_peak_mb"] = peak_rss_mb()
    idx.close()

    # recall@10 of the dense search vs numpy brute force (after RSS was measured)
    dense = np.load(work / "dense.npy", mmap_mode="r")
    ids = json.loads((work / "ids.json").read_text())
    cat = np.load(work / "meta_cat.npy")
    vfrom = np.load(work / "meta_from.npy")
    vto = np.load(work / "meta_to.npy")
    Q = np.stack([q.dense for q in queries[:nq_rec]])
    S = np.asarray(Q @ np.asarray(dense).T)
    rec, rec_f = [], []
    for qi, q in enumerate(queries[:nq_rec]):
        truth = {ids[j] for j in np.argsort(-S[qi])[:LIMIT]}
        rec.append(len(truth & set(dense_results[qi])) / LIMIT)
        mask = (vfrom <= q.flt.valid_at) & (vto > q.flt.valid_at)
        if q.flt.categories:
            mask &= cat == CATEGORIES.index(q.flt.categories[0])
        s = np.where(mask, S[qi], -np.inf)
        k = min(LIMIT, int(mask.sum()))
        truth_f = {ids[j] for j in np.argsort(-s)[:k]}
        if k:
            rec_f.append(len(truth_f & set(dense_f_results[qi])) / k)
    out["recall10_dense"] = float(np.mean(rec))
    out["recall10_dense_filtered"] = float(np.mean(rec_f)) if rec_f else float("nan")
    return out


# -- parent ----------------------------------------------------------------------------------
def run_child(phase: str, backend: str, mode: str, n: int, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        sys.executable, str(Path(__file__).resolve()), "--_child", phase,
        "--backend", backend, "--_mode", mode, "--n", str(n), "--dir", str(work),
        "--queries", str(args.queries), "--budget", str(args.budget),
        "--min-queries", str(args.min_queries), "--seed", str(args.seed), "--batch", str(args.batch),
    ]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"{phase} {backend}/{mode}/{n} failed")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res[f"{phase}_wall_s"] = time.perf_counter() - t0
    return res


def fmt(x: Any, nd: int = 1) -> str:
    if isinstance(x, float):
        if x != x:
            return "–"
        return f"{x:.{nd}f}"
    return str(x)


def table(results: list[dict[str, Any]]) -> str:
    head = (
        "| backend | mode | n | upsert s (pts/s) | optimize s (max GIL stall) | publish ms | load s "
        "| dense p50/p95 ms | sparse p50/p95 | hybrid p50/p95 | filtered hybrid p50/p95 | queries d/s/h/fh "
        "| recall@10 dense (filtered) | RSS serve MB (peak build) | disk MB | CPU ms/query d/s/h/fh | loadavg |"
    )
    sep = "|" + "|".join("---" for _ in range(head.count("|") - 1)) + "|"
    rows = [head, sep]
    for r in results:
        def pp(k: str) -> str:
            return f"{fmt(r[k]['p50_ms'])} / {fmt(r[k]['p95_ms'])}"

        rows.append(
            f"| {r['backend']} | {r['mode']} | {r['n']:,} | {fmt(r['upsert_s'])} ({r['upsert_pts_per_s']:,.0f}) "
            f"| {fmt(r['optimize_s'], 2)} ({fmt(r['optimize_max_stall_s'], 2)}) | {fmt(r['publish_ms'])} | {fmt(r['load_s'], 2)} "
            f"| {pp('dense')} | {pp('sparse')} | {pp('hybrid')} | {pp('filtered_hybrid')} "
            f"| {'/'.join(str(r[k]['queries']) for k in ('dense', 'sparse', 'hybrid', 'filtered_hybrid'))} "
            f"| {fmt(r['recall10_dense'], 3)} ({fmt(r['recall10_dense_filtered'], 3)}) "
            f"| {r['rss_serve_mb']:,.0f} ({r['rss_build_peak_mb']:,.0f}) | {r['disk_mb']:,.0f} "
            f"| {'/'.join(fmt(r[k]['cpu_ms']) for k in ('dense', 'sparse', 'hybrid', 'filtered_hybrid'))} "
            f"| {fmt(r['loadavg_start'])}–{fmt(r['loadavg_end'])} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, action="append", help="corpus size (repeatable); default 10000")
    ap.add_argument("--backend", action="append", choices=["edge", "local"], help="repeatable; default both")
    ap.add_argument("--exact", action="store_true", help="edge: exact dense search, no HNSW (default)")
    ap.add_argument("--hnsw", action="store_true", help="edge: build HNSW in optimize()")
    ap.add_argument("--float16", action="store_true", help="edge: exact search on float16-stored vectors")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--budget", type=float, default=45.0, help="max seconds per query kind per config")
    ap.add_argument("--min-queries", type=int, default=10)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--batch", type=int, default=1000, help="points per upsert call")
    ap.add_argument("--workdir", help="where indexes are built (default: a temp dir, removed)")
    ap.add_argument("--keep", action="store_true", help="keep the built indexes")
    ap.add_argument("--_child", choices=["build", "serve"], help=argparse.SUPPRESS)
    ap.add_argument("--_mode", default="exact", help=argparse.SUPPRESS)
    ap.add_argument("--dir", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args._child:
        args.n = args.n[0]
        args.backend = args.backend[0]
        args.mode = args._mode
        res = child_build(args) if args._child == "build" else child_serve(args)
        print(json.dumps(res))
        return

    sizes = args.n or [10_000]
    backends = args.backend or ["edge", "local"]
    modes = [m for m, on in (("exact", args.exact), ("f16", args.float16), ("hnsw", args.hnsw)) if on] or ["exact"]
    root = Path(args.workdir or tempfile.mkdtemp(prefix="zhiku-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    try:
        for n in sizes:
            for backend in backends:
                for mode in modes if backend == "edge" else ["scan"]:
                    work = root / f"{backend}-{mode}-{n}"
                    shutil.rmtree(work, ignore_errors=True)
                    work.mkdir(parents=True)
                    print(f"# {backend}/{mode}/n={n}: build ...", file=sys.stderr, flush=True)
                    b = run_child("build", backend, mode, n, work, args)
                    print(f"#   built in {b['build_wall_s']:.1f}s; serve ...", file=sys.stderr, flush=True)
                    s = run_child("serve", backend, mode, n, work, args)
                    r = {"backend": backend, "mode": mode, "n": n, **b, **s}
                    results.append(r)
                    print(f"#   done: dense p95 {r['dense']['p95_ms']:.1f} ms, hybrid p95 "
                          f"{r['hybrid']['p95_ms']:.1f} ms", file=sys.stderr, flush=True)
                    if not args.keep:
                        shutil.rmtree(work, ignore_errors=True)
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(root, ignore_errors=True)
    print(table(results))
    print()
    print(json.dumps({"bench": "index_latency", "limit": LIMIT, "prefetch": PREFETCH, "cpus": os.cpu_count(),
                      "results": results}))


if __name__ == "__main__":
    main()
