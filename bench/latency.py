"""Latency and throughput of one running server: order-sign with 1, 20 and 100 MedicationRequests in prefetch,
and GET /health as the floor, all measured in the same run and reported as ratios to the floor.

    make bench                                  # starts its own gunicorn on a free loopback port
    python bench/latency.py --url http://127.0.0.1:8080 --requests 2000 --clients 4

The machine is shared and noisy: read the ratios, not the absolute figures.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = json.loads((ROOT / "fhir_fixtures" / "requests" / "order-sign.json").read_text())


def order_sign_body(n_orders: int) -> dict:
    """The order-sign fixture with ``n_orders`` active MedicationRequests in prefetch (copies of its fentanyl)."""
    body = copy.deepcopy(TEMPLATE)
    existing = body["prefetch"]["medications"]["entry"][0]["resource"]
    entries = []
    for i in range(n_orders):
        resource = copy.deepcopy(existing)
        resource["id"] = f"rx-{i}"
        entries.append({"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": resource})
    body["prefetch"]["medications"]["entry"] = entries
    return body


@contextmanager
def own_server(workers: int):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tmp = tempfile.mkdtemp(prefix="opioid-cds-bench-")
    env = {
        **os.environ,
        "OPIOID_CDS_AUTH": "off",
        "OPIOID_CDS_DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite3",
        "OPIOID_CDS_LOG_LEVEL": "WARNING",
    }
    cmd = [sys.executable, "-m", "cds_service", "serve", "--port", str(port), "--workers", str(workers)]
    process = subprocess.Popen(cmd, env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(url + "/health", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the server did not start")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)


def measure(url: str, method: str, path: str, body: dict | None, total: int, clients: int) -> dict:
    payload = json.dumps(body).encode() if body is not None else None
    latencies: list[float] = []
    lock = threading.Lock()
    per_client = total // clients

    def worker() -> None:
        session = requests.Session()
        mine = []
        headers = {"Content-Type": "application/json"}
        for _ in range(per_client):
            started = time.perf_counter()
            response = session.request(method, url + path, data=payload, headers=headers, timeout=30)
            mine.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise SystemExit(f"{path}: HTTP {response.status_code} {response.text[:200]}")
        with lock:
            latencies.extend(mine)

    for _ in range(20):  # warm up connections, caches and every worker
        requests.request(method, url + path, data=payload, headers={"Content-Type": "application/json"}, timeout=30)
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "rps": len(latencies) / elapsed,
        "bytes": len(payload or b""),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running server (default: start one)")
    parser.add_argument("--requests", type=int, default=1000, help="requests per scenario")
    parser.add_argument("--clients", type=int, default=4, help="concurrent client threads")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers when starting our own server")
    args = parser.parse_args()

    scenarios = [("GET /health (floor)", "GET", "/health", None)] + [
        (f"order-sign, {n} MedicationRequests", "POST", "/cds-services/opioid-order-sign", order_sign_body(n))
        for n in (1, 20, 100)
    ]

    def run(url: str) -> None:
        results = [(name, measure(url, m, p, b, args.requests, args.clients)) for name, m, p, b in scenarios]
        floor = results[0][1]
        print(
            f"server {url}; {args.requests} requests per scenario, {args.clients} client threads; "
            f"{os.cpu_count()} cores shared by client and server"
        )
        print(
            f"{'scenario':38} {'body':>9} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} "
            f"{'p50 x':>7} {'p99 x':>7} {'req/s x':>8}"
        )
        for name, r in results:
            print(
                f"{name:38} {r['bytes']:>9} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['rps']:>8.0f} "
                f"{r['p50_ms'] / floor['p50_ms']:>7.2f} {r['p99_ms'] / floor['p99_ms']:>7.2f} "
                f"{r['rps'] / floor['rps']:>8.2f}"
            )

    if args.url:
        run(args.url.rstrip("/"))
    else:
        with own_server(args.workers) as url:
            run(url)


if __name__ == "__main__":
    main()
