"""Search server on loopback: the CLI, the API and the web page agree; then throughput and latency under load.

    python -m bench.serve_load   # needs ../shared/data/flickr8k; the FuseMix model of bench.flickr8k
                                 # (trained first if missing); ~2 min once the model exists

1. Index the Flickr8k test images (1,000) with the bench's FuseMix model (`latentfuse index`).
2. Start `latentfuse serve` in its own process; for a few queries, check that `latentfuse search --json`,
   GET /search and the web page in headless Chromium (when present) return the same top-10.
3. Load, once per encoder backend (``serve --backend torch``, then ``onnx``: before / after the ONNX Runtime
   backend, in one run): distinct test captions as text queries from 1, 4 and 16 concurrent clients, then
   image uploads from 4; each level bounded by a request count and a duration. Reports requests/s, p50 /
   p99 latency, throughput relative to one client on torch, and queries per encoder call (batching).
4. Mixed good/bad: 8 clients alternate good text queries with the malformed requests of
   ``latentfuse.serve.probes`` (JSON the parser cannot hold, truncated images, wrong fields, ...). Every bad
   one must be a 4xx with a detail, nothing a 5xx, nothing hang (30 s timeout); reports the p99 of the good
   requests beside the same clients' all-good run. Fails (exit 1) on any 5xx, hang or unexplained 4xx.
"""
from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

from latentfuse.serve.probes import bad_requests
from latentfuse.utils import atomic

from .common import RESULTS, flickr8k_dir
from .flickr8k import base_config, cached_run

QUERIES = ["a dog catches a frisbee", "two children playing in the water", "a man riding a bike on a mountain"]
TEXT_LEVELS = (1, 4, 16)
MAX_REQUESTS, MAX_SECONDS = 400, 20.0
BACKENDS = ("torch", "onnx")  # query encoders before / after the ONNX Runtime backend


def bench_model(data: Path) -> Path:
    """The default FuseMix model of bench.flickr8k (reused when that benchmark already trained it)."""
    config = base_config(data)
    if not (Path(config.out) / "model.safetensors").exists():
        cached_run(config)
    return Path(config.out)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "latentfuse.cli", *args], check=True, capture_output=True,
                          text=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(index_dir: Path, backend: str = "auto") -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "latentfuse.cli", "serve", "--index", str(index_dir),
                                "--port", str(port), "--backend", backend],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError("server did not become healthy in 120 s")


def web_page_top10(url: str, query: str) -> list[str] | None:
    chromium = os.environ.get("LATENTFUSE_CHROMIUM", "/usr/bin/chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if not os.path.exists(chromium):
        return None
    flags = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=flags)
        page = browser.new_page()
        page.goto(url + "/")
        page.fill("#query", query)
        page.press("#query", "Enter")
        page.wait_for_function("""() => document.body.dataset.state === 'done' &&
            [...document.querySelectorAll('.hit img')].every(i => i.complete && i.naturalWidth > 0)""")
        ids = page.eval_on_selector_all(".hit", "cards => cards.map(c => c.dataset.id)")
        browser.close()
    return ids


def agreement(index_dir: Path, url: str) -> list[str]:
    lines = []
    for query in QUERIES:
        via_cli = [r["id"] for r in json.loads(cli("search", "--index", str(index_dir), query, "-k", "10",
                                                   "--json").stdout)["results"]]
        via_api = [r["id"] for r in httpx.get(url + "/search", params={"q": query, "k": 10}).json()["results"]]
        via_page = web_page_top10(url, query)
        same = via_cli == via_api and (via_page is None or via_page == via_api)
        lines.append(f"- {query!r}: CLI, API{'' if via_page is None else ', web page'} top-10 "
                     f"{'identical' if same else 'DIFFER'} (top-1 {via_api[0]})")
        if not same:
            raise SystemExit(f"top-10 differ for {query!r}: cli={via_cli} api={via_api} page={via_page}")
    return lines


def load(url: str, clients: int, make_request, n_items: int) -> dict:
    latencies: list[float] = []
    started = time.perf_counter()
    before = httpx.get(url + "/health").json()

    def worker(offset: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            i = offset
            while len(latencies) < MAX_REQUESTS and time.perf_counter() - started < MAX_SECONDS:
                t0 = time.perf_counter()
                response = make_request(http, i % n_items)
                response.raise_for_status()
                latencies.append(time.perf_counter() - t0)
                i += clients

    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(worker, range(clients)))
    seconds = time.perf_counter() - started
    after = httpx.get(url + "/health").json()
    calls = after["encoder_calls"] - before["encoder_calls"]
    return {"clients": clients, "requests": len(latencies), "seconds": seconds,
            "rps": len(latencies) / seconds, "p50_ms": 1000 * float(np.percentile(latencies, 50)),
            "p99_ms": 1000 * float(np.percentile(latencies, 99)),
            "per_call": (after["queries_encoded"] - before["queries_encoded"]) / max(calls, 1)}


MIXED_CLIENTS, MIXED_REQUESTS, HANG_S = 8, 400, 30.0


def mixed(url: str, captions: list[str], index_name: str) -> dict:
    """Good and bad requests interleaved from MIXED_CLIENTS clients; counts 5xx, hangs and bad answers."""
    probes = list(bad_requests(index_name).items())
    good_ms: list[float] = []
    outcome = {"good": 0, "bad": 0, "5xx": 0, "hangs": 0, "wrong": []}
    started = time.perf_counter()

    def worker(offset: int) -> None:
        with httpx.Client(base_url=url, timeout=HANG_S) as http:
            i, sent = offset, 0
            while outcome["good"] + outcome["bad"] < MIXED_REQUESTS and time.perf_counter() - started < 60:
                is_bad = (sent + offset) % 2 == 1  # each client alternates good, bad, good, ...
                sent += 1
                name, request = probes[i % len(probes)] if is_bad else (
                    "good", dict(method="GET", url="/search", params={"q": captions[i % len(captions)], "k": 10}))
                t0 = time.perf_counter()
                try:
                    response = http.request(**request)
                except httpx.TimeoutException:
                    outcome["hangs"] += 1
                    i += MIXED_CLIENTS
                    continue
                status = response.status_code
                outcome["5xx"] += status >= 500
                if is_bad:
                    outcome["bad"] += 1
                    if not (400 <= status < 500 and response.json().get("detail")):
                        outcome["wrong"].append(f"{name}: {status}")
                else:
                    outcome["good"] += 1
                    good_ms.append(1000 * (time.perf_counter() - t0))
                    if status != 200:
                        outcome["wrong"].append(f"good query: {status}")
                i += MIXED_CLIENTS

    with ThreadPoolExecutor(max_workers=MIXED_CLIENTS) as pool:
        list(pool.map(worker, range(MIXED_CLIENTS)))
    outcome.update(seconds=time.perf_counter() - started, p50_ms=float(np.percentile(good_ms, 50)),
                   p99_ms=float(np.percentile(good_ms, 99)), kinds=len(probes))
    return outcome


def test_captions_and_images(data: Path) -> tuple[list[str], list[Path]]:
    test = json.loads((data / "splits.json").read_text())["test"]
    wanted = set(test)
    with open(data / "captions.tsv", newline="") as handle:
        captions = [row[2] for row in list(csv.reader(handle, delimiter="\t"))[1:] if row[0] in wanted]
    return captions, [data / "images" / name for name in test]


def main() -> None:
    data = flickr8k_dir()
    if data is None:
        return
    model_dir = bench_model(data)
    index_dir = RESULTS / "serve" / "flickr8k-test"
    print(cli("index", "--model", str(model_dir), "--data", f"flickr8k:{data}", "--split", "test",
              "--out", str(index_dir), "--overwrite").stdout.strip(), flush=True)  # the bench's model may be new
    captions, images = test_captions_and_images(data)
    image_bytes = [p.read_bytes() for p in images[:200]]
    rows = []
    for backend in BACKENDS:  # the last one stays up for the agreement and mixed runs
        process, url = start_server(index_dir, backend)
        try:
            rows += [(backend, "text", load(url, c, lambda http, i: http.get(
                "/search", params={"q": captions[i], "k": 10}), len(captions))) for c in TEXT_LEVELS]
            rows.append((backend, "image upload", load(url, 4, lambda http, i: http.post(
                "/search", files={"image": ("q.jpg", image_bytes[i], "image/jpeg")}, data={"k": "10"}),
                len(image_bytes))))
            if backend != BACKENDS[-1]:
                continue
            lines = agreement(index_dir, url)
            print("\n".join(lines), flush=True)
            all_good = load(url, MIXED_CLIENTS, lambda http, i: http.get(
                "/search", params={"q": captions[i], "k": 10}), len(captions))
            mix = mixed(url, captions, index_dir.name)
        finally:
            process.terminate()
            process.wait(timeout=30)
    base = rows[0][2]["rps"]
    table = ["| backend | query | clients | requests | req/s | × torch 1 client | p50 ms | p99 ms | "
             "queries per encoder call |", "|---|---|---|---|---|---|---|---|---|"]
    for backend, kind, r in rows:
        ratio = f"{r['rps'] / base:.2f}" if kind == "text" else "—"
        table.append(f"| {backend} | {kind} | {r['clients']} | {r['requests']} | {r['rps']:.1f} | {ratio} | "
                     f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['per_call']:.2f} |")
    mixed_table = [
        "", f"Mixed run: {MIXED_CLIENTS} clients alternating good text queries with {mix['kinds']} kinds of "
        "malformed request (`latentfuse.serve.probes`):", "",
        "| run | good | bad | 5xx | hangs (>30 s) | bad answered 4xx + detail | good p50 ms | good p99 ms |",
        "|---|---|---|---|---|---|---|---|",
        f"| all good, {MIXED_CLIENTS} clients | {all_good['requests']} | 0 | 0 | 0 | — | {all_good['p50_ms']:.1f} | "
        f"{all_good['p99_ms']:.1f} |",
        f"| mixed good/bad | {mix['good']} | {mix['bad']} | {mix['5xx']} | {mix['hangs']} | "
        f"{mix['bad'] - sum(w.split(':')[0] != 'good query' for w in mix['wrong'])}/{mix['bad']} | "
        f"{mix['p50_ms']:.1f} | {mix['p99_ms']:.1f} |"]
    text = "\n".join(lines + ["", *table, *mixed_table])
    print("\n".join(table + mixed_table))
    atomic.write_text(RESULTS / "serve_load.md", text + "\n")
    if mix["5xx"] or mix["hangs"] or mix["wrong"]:
        raise SystemExit(f"mixed run failed: {mix['5xx']} 5xx, {mix['hangs']} hangs, wrong: {mix['wrong'][:10]}")


if __name__ == "__main__":
    main()
