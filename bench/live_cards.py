"""Live cards under load: N concurrent conversations, each sending a customer utterance every
INTERVAL seconds (preceded by speech-to-text partials) for SECONDS, against a running server.

Measures, per final utterance, the time from sending it to receiving the pushed card set on the
conversation's WebSocket (when the cards changed) and to the HTTP answer (always); counts errors.

    .venv/bin/python bench/live_cards.py                    # starts its own server on the demo KB
    .venv/bin/python bench/live_cards.py --url http://127.0.0.1:8000 --json
    .venv/bin/python bench/live_cards.py --repeat 3 --json  # three fresh servers; medians
    .venv/bin/python bench/live_cards.py --searches 5 --json  # plus agents' searches: a mixed load
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import websockets

ROOT = Path(__file__).resolve().parent.parent
ZHIKU = ROOT / ".venv" / "bin" / "zhiku"
DIALOGS = ROOT / "kb" / "demo" / "dialogs.jsonl"


def customer_lines() -> list[str]:
    lines = []
    for raw in DIALOGS.read_text(encoding="utf-8").splitlines():
        if raw.strip():
            lines.extend(t["text"] for t in json.loads(raw)["turns"] if t["speaker"] == "C")
    return lines


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)], 1)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


@contextmanager
def own_server(workers: int):
    """A fresh data directory with the demo knowledge base, served on a free port."""
    with tempfile.TemporaryDirectory(prefix="zhiku-live-bench-") as tmp:
        env = {**os.environ, "ZHIKU_DATA_DIR": tmp, "ZHIKU_EMBED_MODEL": str(ROOT / "data" / "models" / "multilingual-e5-small"),
               "ZHIKU_LOG_LEVEL": "WARNING"}
        for args in (["db", "upgrade"], ["demo", "load"]):
            subprocess.run([str(ZHIKU), *args], env=env, check=True, stdout=subprocess.DEVNULL)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        log = open(Path(tempfile.gettempdir()) / "zhiku-live-bench-server.log", "w")  # noqa: SIM115
        proc = subprocess.Popen([str(ZHIKU), "serve", "--port", str(port), "--workers", str(workers)], env=env,
                                stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            yield url, proc.pid
        finally:
            proc.terminate()
            proc.wait(30)
            log.close()


async def conversation(n: int, url: str, token: str, lines: list[str], args, stats: dict) -> None:  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        opened = await client.post("/api/v1/conversations", json={"customer_id": f"B{n:04d}", "channel": "phone"})
        if opened.status_code != 201:
            stats["errors"].append(f"open {opened.status_code}")
            return
        cid = opened.json()["id"]
        ws_url = url.replace("http", "ws", 1) + f"/api/v1/conversations/{cid}/stream?access_token={token}"
        pushed: dict[int, float] = {}
        arrived = asyncio.Event()

        async with websockets.connect(ws_url, max_size=2**22) as ws:
            await ws.recv()  # snapshot

            async def reader() -> None:
                try:
                    async for message in ws:
                        event = json.loads(message)
                        if event.get("event") in ("cards", "update", "pinned", "dismissed"):
                            pushed[event["revision"]] = time.perf_counter()
                            arrived.set()
                except websockets.ConnectionClosed as exc:
                    if not stats["stopping"]:
                        stats["errors"].append(f"ws closed {exc}")

            task = asyncio.create_task(reader())
            await asyncio.sleep((n % 20) * args.interval / 20)  # spread the conversations over the interval
            turn = n * 7
            end = time.perf_counter() + args.seconds
            while time.perf_counter() < end:
                started_turn = time.perf_counter()
                # Each utterance is made unique (a number in front, as if the customer read one out), so no
                # query vector comes from the server's cache: real customers do not repeat each other.
                text = f"{n * 100_000 + turn}{lines[turn % len(lines)]}"
                turn += 1
                for k in range(1, args.partials + 1):  # what a recogniser sends while the customer speaks
                    prefix = text[: max(2, len(text) * k // (args.partials + 1))]
                    t0 = time.perf_counter()
                    r = await client.post(f"/api/v1/conversations/{cid}/utterances",
                                          json={"speaker": "customer", "text": prefix, "final": False})
                    stats["partial_ms"].append((time.perf_counter() - t0) * 1000)
                    if r.status_code != 200:
                        stats["errors"].append(f"partial {r.status_code}")
                    await asyncio.sleep(args.interval / (args.partials + 2))
                arrived.clear()
                t0 = time.perf_counter()
                r = await client.post(f"/api/v1/conversations/{cid}/utterances",
                                      json={"speaker": "customer", "text": text, "final": True})
                stats["response_ms"].append((time.perf_counter() - t0) * 1000)
                if r.status_code != 200:
                    stats["errors"].append(f"final {r.status_code}")
                else:
                    body = r.json()
                    stats["finals"] += 1
                    if body["changed"]:
                        revision = body["revision"]
                        try:
                            while revision not in pushed:
                                await asyncio.wait_for(arrived.wait(), timeout=5)
                                arrived.clear()
                            stats["push_ms"].append((pushed[revision] - t0) * 1000)
                        except TimeoutError:
                            stats["errors"].append("push missing after 5 s")
                await asyncio.sleep(max(0.0, args.interval - (time.perf_counter() - started_turn)))
            task.cancel()


async def searches(url: str, token: str, lines: list[str], args, stats: dict) -> None:  # type: ignore[no-untyped-def]
    """Agents' own searches beside the conversations: `--searches` per second in all, each a customer line
    (made unique like the utterances), fired on a steady clock whether or not earlier ones have returned."""
    if args.searches <= 0:
        return
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        async def one(k: int) -> None:
            t0 = time.perf_counter()
            r = await client.post("/api/v1/search", json={"query": f"{900_000_000 + k}{lines[k % len(lines)]}"})
            stats["search_ms"].append((time.perf_counter() - t0) * 1000)
            if r.status_code != 200:
                stats["errors"].append(f"search {r.status_code}")

        pending, k = [], 0
        start = time.perf_counter()
        while (due := start + k / args.searches) < start + args.seconds:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            pending.append(asyncio.create_task(one(k)))
            k += 1
        await asyncio.gather(*pending)


async def run(url: str, args) -> dict:  # type: ignore[no-untyped-def]
    token = httpx.post(f"{url}/api/v1/auth/token", json={"username": "agent", "password": "zhiku-demo"}).json()["access_token"]
    lines = customer_lines()
    stats: dict = {"push_ms": [], "response_ms": [], "partial_ms": [], "search_ms": [], "errors": [], "finals": 0,
                   "stopping": False}
    started = time.perf_counter()
    await asyncio.gather(*(conversation(n, url, token, lines, args, stats) for n in range(args.conversations)),
                         searches(url, token, lines, args, stats))
    stats["stopping"] = True
    return {
        "conversations": args.conversations, "seconds": args.seconds, "interval_s": args.interval,
        "partials_per_utterance": args.partials, "wall_s": round(time.perf_counter() - started, 1),
        "finals": stats["finals"], "pushes": len(stats["push_ms"]), "errors": len(stats["errors"]),
        "error_samples": stats["errors"][:5],
        "push_p50_ms": pct(stats["push_ms"], 0.5), "push_p95_ms": pct(stats["push_ms"], 0.95),
        "push_max_ms": round(max(stats["push_ms"]), 1) if stats["push_ms"] else None,
        "response_p50_ms": pct(stats["response_ms"], 0.5), "response_p95_ms": pct(stats["response_ms"], 0.95),
        "partial_p95_ms": pct(stats["partial_ms"], 0.95),
        "response_mean_ms": round(statistics.mean(stats["response_ms"]), 1) if stats["response_ms"] else None,
        **({"searches_per_s": args.searches, "searches": len(stats["search_ms"]),
            "search_p50_ms": pct(stats["search_ms"], 0.5), "search_p95_ms": pct(stats["search_ms"], 0.95)}
           if args.searches > 0 else {}),
    }


def one_run(args) -> dict:  # type: ignore[no-untyped-def]
    if args.url:
        return asyncio.run(run(args.url, args))
    with own_server(args.workers) as (url, pid):
        before = cpu_seconds(pid)
        report = asyncio.run(run(url, args))
        # CPU the server spent per answered final utterance (partials included): steadier than
        # latency on a shared machine, where other tenants stretch the tail.
        report["server_cpu_s"] = round(cpu_seconds(pid) - before, 1)
        report["server_cpu_ms_per_final"] = round(1000 * report["server_cpu_s"] / max(1, report["finals"]), 1)
        return report


def summarise(runs: list[dict]) -> dict:
    """Several runs: each one's report, the medians of the latencies and CPU, the sums of the counts."""
    keys = ("push_p50_ms", "push_p95_ms", "response_p95_ms", "partial_p95_ms", "server_cpu_ms_per_final",
            "search_p95_ms")
    summary: dict = {"runs": len(runs), "finals": sum(r["finals"] for r in runs),
                     "errors": sum(r["errors"] for r in runs)}
    for key in keys:
        values = [r[key] for r in runs if r.get(key) is not None]
        summary[f"median_{key}"] = round(statistics.median(values), 1) if values else None
    summary["push_p95_ms_each"] = [r["push_p95_ms"] for r in runs]
    summary["each"] = runs
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running server with the demo knowledge base (default: start one)")
    parser.add_argument("--conversations", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--partials", type=int, default=2)
    parser.add_argument("--searches", type=float, default=0.0,
                        help="agents' searches per second (POST /api/v1/search) beside the conversations: a mixed load")
    parser.add_argument("--workers", type=int, default=1, help="server processes when starting one")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs, each on a fresh server and data copy; the report adds each run and the medians "
                             "(on a shared host one run's tail says little)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    runs = [one_run(args) for _ in range(max(1, args.repeat))]
    report = runs[0] if len(runs) == 1 else summarise(runs)
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        for key, value in report.items():
            print(f"{key:24} {value}")
    sys.exit(0)


if __name__ == "__main__":
    main()
