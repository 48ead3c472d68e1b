"""Load test of ``coderclip serve`` on loopback: concurrent clients, throughput, latency, the
batches the server formed, and every answer checked against ``coderclip classify`` on the same
image. Not a test: a script that prints a table and writes JSON.

    PYTHONPATH=src nice -n 10 python benchmarks/bench_serve.py -m testbed -k testbed \\
        --clients 16 --requests 2000 --out benchmarks/results/serve.json

Three phases, each against a fresh server: ``normal`` (default settings), ``unbatched``
(``--max-batch 1``: what batching gains) and ``overload`` (a queue of
``--overload-queue`` images, smaller than the number of clients, so some requests get 503): a
client that gets 503 waits for Retry-After and sends the same request again, and every 503 is
counted, so nothing is lost silently. The photos are the sample images shipped in the foolbox package.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def sample_photos() -> list[Path]:
    spec = importlib.util.find_spec("foolbox")
    if spec is None:
        sys.exit("bench_serve: the foolbox package (sample photos) is missing: pip install --no-deps foolbox==3.3.4")
    d = Path(list(spec.submodule_search_locations)[0]) / "data"
    return sorted(p for p in d.iterdir() if p.suffix in (".jpg", ".png"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}


def cli_answers(model: str, knowledge: str, photos: list[Path], top_k: int) -> dict[str, list]:
    """``coderclip classify --format json`` on every photo: name -> [(label, score), ...]."""
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "cli.json"
        subprocess.run([sys.executable, "-m", "coderclip", "classify", *map(str, photos), "-m", model,
                        "-k", knowledge, "--top", str(top_k), "--format", "json", "-o", str(out)],
                       env=env(), check=True)
        rows = json.loads(out.read_text())["results"]
    return {Path(r["image"]).name: [(p.get("label", p.get("class")), p.get("score", p.get("probability")))
                                    for p in r["predictions"]] for r in rows}


class Server:
    def __init__(self, model: str, knowledge: str, extra: list[str]):
        self.url = f"http://127.0.0.1:{(port := free_port())}"
        self.log = tempfile.TemporaryFile("w+")
        t0 = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "coderclip", "serve", "-m", model,
                                      "-k", knowledge, "--port", str(port), *extra],
                                     env=env(), stdout=self.log, stderr=subprocess.STDOUT)
        while True:
            if self.proc.poll() is not None:
                self.log.seek(0)
                sys.exit(f"bench_serve: server exited:\n{self.log.read()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.startup_s = time.monotonic() - t0

    def stats(self) -> dict:
        return httpx.get(self.url + "/v1/stats").json()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)
        self.log.close()


async def load(url: str, photos: list[Path], clients: int, requests: int, top_k: int) -> dict:
    """``clients`` concurrent clients send ``requests`` one-image requests in total."""
    blobs = [(p.name, p.read_bytes(), "image/jpeg" if p.suffix == ".jpg" else "image/png") for p in photos]
    latencies: list[float] = []
    answers: list[tuple[str, list]] = []
    counts = {"ok": 0, "503": 0, "other": 0}
    next_i = 0

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal next_i
        while next_i < requests:
            i, next_i = next_i, next_i + 1
            name, data, ctype = blobs[i % len(blobs)]
            t0 = time.perf_counter()        # latency includes any 503 + Retry-After rounds
            while True:
                r = await http.post("/v1/classify", files=[("images", (name, data, ctype))],
                                    data={"top_k": str(top_k)})
                if r.status_code == 503:       # counted, then the same request is sent again
                    counts["503"] += 1
                    await asyncio.sleep(float(r.headers.get("retry-after", "1")))
                    continue
                break
            if r.status_code != 200:
                counts["other"] += 1
                continue
            latencies.append(time.perf_counter() - t0)
            counts["ok"] += 1
            res = r.json()["results"][0]
            answers.append((name, [(p["label"], p["score"]) for p in res["predictions"]]))

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        await http.post("/v1/classify", files=[("images", blobs[0])])          # warm-up
        t0 = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        wall = time.perf_counter() - t0
    latencies.sort()

    def pct(q: float) -> float:
        return 1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))]

    return {"wall_s": wall, "requests_per_s": counts["ok"] / wall, "p50_ms": pct(0.50),
            "p99_ms": pct(0.99), "mean_ms": 1000 * statistics.fmean(latencies), "counts": counts,
            "answers": answers}


def check(answers: list[tuple[str, list]], reference: dict[str, list], tol: float) -> dict:
    """Every served answer against the CLI's: same labels in the same order, scores within ``tol``."""
    wrong = []
    for name, got in answers:
        want = reference[name]
        same = [g[0] for g in got] == [w[0] for w in want] and \
            all(abs(g[1] - w[1]) <= tol for g, w in zip(got, want))
        if not same:
            wrong.append(name)
    return {"checked": len(answers), "equal_to_cli": len(answers) - len(wrong),
            "different": sorted(set(wrong))[:10]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", default="testbed")
    ap.add_argument("-k", "--knowledge", default="testbed")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--top-k", type=int, default=5)
    ap.add_argument("--overload-queue", type=int, default=4,
                    help="queue limit (images) of the overload phase; 0 skips it")
    ap.add_argument("--unbatched", action=argparse.BooleanOptionalAction, default=True,
                    help="also run with --max-batch 1, to show what batching gains (default on)")
    ap.add_argument("--tol", type=float, default=1e-4, help="score tolerance against the CLI")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()

    photos = sample_photos()
    t0 = time.monotonic()
    reference = cli_answers(args.model, args.knowledge, photos, args.top_k)
    print(f"CLI answers for {len(reference)} photos in {time.monotonic() - t0:.1f} s")
    phases = [("normal", [])]
    if args.unbatched:
        phases.append(("unbatched", ["--max-batch", "1"]))
    if args.overload_queue:
        phases.append(("overload", ["--max-queued", str(args.overload_queue)]))
    results = {}
    for name, extra in phases:
        server = Server(args.model, args.knowledge, extra)
        try:
            run = asyncio.run(load(server.url, photos, args.clients, args.requests, args.top_k))
            stats = server.stats()
        finally:
            server.stop()
        run["correct"] = check(run.pop("answers"), reference, args.tol)
        run["batch_sizes"] = {int(k): v for k, v in stats["batch_sizes"].items()}
        run["server_rejected"] = stats["rejected_requests"]
        run["startup_s"] = server.startup_s
        run["server_flags"] = extra
        results[name] = run

    print(f"\n{args.clients} clients, {args.requests} one-image requests per phase, model {args.model}, "
          f"knowledge {args.knowledge}")
    print(f"{'phase':<10}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'ok':>7}{'503':>6}{'= CLI':>7}"
          f"{'start s':>9}  batches (size: count)")
    for name, r in results.items():
        sizes = ", ".join(f"{k}: {v}" for k, v in sorted(r["batch_sizes"].items()))
        print(f"{name:<10}{r['requests_per_s']:>8.1f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}"
              f"{r['counts']['ok']:>7}{r['counts']['503']:>6}{r['correct']['equal_to_cli']:>7}"
              f"{r['startup_s']:>9.1f}  {sizes}")
    for name, r in results.items():
        if r["correct"]["equal_to_cli"] != r["correct"]["checked"] or r["counts"]["other"]:
            print(f"WARNING: {name}: answers differing from the CLI: {r['correct']['different']}; "
                  f"other errors: {r['counts']['other']}")
        if r["counts"]["503"] != r["server_rejected"]:
            print(f"note: {name}: client saw {r['counts']['503']} 503s, server counted {r['server_rejected']}")
    if args.out:
        meta = {"command": " ".join(sys.argv), "python": platform.python_version(),
                "cpus": os.cpu_count(), "load_average": os.getloadavg(), "time": time.time()}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
