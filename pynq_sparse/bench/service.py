"""Service load benchmark: throughput and p99 latency of POST /v1/recognize against offered load.

Starts `pynq-sparse serve` in its own process on a free loopback port (or uses ``--url``,
which must be a loopback address), then offers single-clip requests at fixed rates
(open loop: each request is sent at its scheduled time, whatever the earlier ones are
doing, and its latency counts from that time, so a slow server cannot hide its queue).
Every level is bounded in duration and in request count. The device batch each clip
went through is read from the answers.

Usage::

    python -m pynq_sparse.bench.service                       # writes docs/benchmarks/service.md
    pynq-sparse bench service --rates 50,100,200,300 --seconds 5
    python -m pynq_sparse.bench.service --url http://127.0.0.1:8000 --out -   # an already running server
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import ipaddress
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from pynq_sparse.bench import cpu_name

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "pynq_sparse" / "data" / "samples" / "yes__370844f7_nohash_0.wav"
DEFAULT_OUT = REPO / "docs" / "benchmarks" / "service.md"
DEFAULT_RATES = (50, 100, 150, 200, 250, 300, 400)        # offered requests per second
TARGET_RPS, TARGET_P99_MS = 200.0, 50.0                   # the target
MAX_CONNECTIONS = 128                                     # client connections (open requests) at most
MAX_REQUESTS_PER_LEVEL = 5000                             # hard bound on requests per level
BOUNDARY = "pynqsparsebench0123456789"


@dataclass
class Level:
    """What one offered load gave."""

    offered_rps: float
    seconds: float
    sent: int = 0
    ok: int = 0
    rejected: int = 0                    # 503 answers
    errors: int = 0                      # other statuses and transport errors
    unsent: int = 0                      # no free client connection at the scheduled time
    latencies_ms: list[float] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def achieved_rps(self) -> float:
        return self.ok / self.wall_s if self.wall_s else 0.0

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    def summary(self) -> dict[str, Any]:
        bs = np.array(self.batch_sizes or [0])
        hist = collections.Counter(self.batch_sizes)
        return {"offered[req/s]": self.offered_rps, "achieved[req/s]": round(self.achieved_rps, 1),
                "p50[ms]": round(self.pct(50), 2), "p99[ms]": round(self.pct(99), 2),
                "max[ms]": round(max(self.latencies_ms, default=float("nan")), 2),
                "sent": self.sent, "ok": self.ok, "503": self.rejected, "errors": self.errors,
                "unsent": self.unsent, "mean_batch": round(float(bs.mean()), 2), "max_batch": int(bs.max()),
                "batch_sizes": dict(sorted(hist.items()))}


def multipart_request(host: str, port: int, wav: bytes) -> bytes:
    """One complete HTTP/1.1 keep-alive POST /v1/recognize with the clip as multipart field 'file'."""
    body = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"clip.wav\"\r\n"
            f"Content-Type: audio/wav\r\n\r\n").encode() + wav + f"\r\n--{BOUNDARY}--\r\n".encode()
    head = (f"POST /v1/recognize HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: pynq-sparse-bench\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> tuple[int, bytes]:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    body = await reader.readexactly(length) if length else b""
    return status, body


class _Pool:
    """Keep-alive connections to the server, opened on demand up to `limit`."""

    def __init__(self, host: str, port: int, limit: int) -> None:
        self.host, self.port, self.limit = host, port, limit
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.open = 0

    async def take(self):
        if self.idle:
            return self.idle.pop()
        if self.open >= self.limit:
            return None
        self.open += 1
        try:
            return await asyncio.open_connection(self.host, self.port)
        except OSError:
            self.open -= 1
            raise

    def give(self, conn) -> None:
        self.idle.append(conn)

    def drop(self, conn) -> None:
        self.open -= 1
        conn[1].close()

    def close(self) -> None:
        for _, w in self.idle:
            w.close()
        self.idle.clear()


async def run_level(host: str, port: int, request: bytes, rate: float, seconds: float,
                    max_connections: int = MAX_CONNECTIONS, max_requests: int = MAX_REQUESTS_PER_LEVEL) -> Level:
    """Offer `rate` requests/s for `seconds` (at most `max_requests`); wait for every answer."""
    level = Level(rate, seconds)
    pool = _Pool(host, port, max_connections)
    n = min(int(rate * seconds), max_requests)
    clock = time.perf_counter             # (uvloop's loop.time() only counts whole milliseconds)
    start = clock() + 0.05
    tasks = []

    async def one(t_sched: float) -> None:
        conn = await pool.take()
        if conn is None:
            level.unsent += 1
            return
        level.sent += 1
        try:
            status, body = await _exchange(*conn, request)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pool.drop(conn)
            level.errors += 1
            return
        pool.give(conn)
        if status == 200:
            level.ok += 1
            level.latencies_ms.append((clock() - t_sched) * 1000.0)
            level.batch_sizes.append(int(json.loads(body)["batch_size"]))
        elif status == 503:
            level.rejected += 1
        else:
            level.errors += 1

    for i in range(n):
        t = start + i / rate
        delay = t - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(t)))
    await asyncio.gather(*tasks)
    level.wall_s = max(clock() - start, 1e-9)
    pool.close()
    return level


def check_loopback(url: str) -> tuple[str, int]:
    """Host and port of `url`; refuses anything but a loopback address (this tool only loads this machine)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        addr = ipaddress.ip_address(socket.gethostbyname(host))
    except (OSError, ValueError):
        addr = None
    if addr is None or not addr.is_loopback:
        raise SystemExit(f"refusing to load {url!r}: the benchmark only targets loopback addresses")
    return host, parts.port or 80


def start_server(backend: str | None, model: str | None = None) -> tuple[subprocess.Popen, int]:
    """`python -m pynq_sparse.service serve` on a free loopback port; returns the process and port once ready."""
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "pynq_sparse.service", "serve", "--port", str(port), "--log-level", "warning"]
    if backend:
        cmd += ["--backend", backend]
    if model:
        cmd += ["--model", str(model)]
    proc = subprocess.Popen(cmd, cwd=REPO)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode} during startup")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc, port
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not become ready within 180 s")


def run_bench(url: str | None = None, rates=DEFAULT_RATES, seconds: float = 5.0, backend: str | None = None,
              model: str | None = None, clip: Path = SAMPLE) -> dict[str, Any]:
    """Run every offered load in turn against one server; returns the settings and one summary per level."""
    import httpx

    proc = None
    if url is None:
        proc, port = start_server(backend, model)
        host = "127.0.0.1"
        url = f"http://{host}:{port}"
    else:
        host, port = check_loopback(url)
    try:
        info = httpx.get(url + "/v1/model", timeout=10, headers=_auth()).json()
        request = multipart_request(host, port, clip.read_bytes())
        try:
            import uvloop
            runner = uvloop.run
        except ImportError:
            runner = asyncio.run
        runner(run_level(host, port, request, 50, 1.0))                   # warm-up, not reported
        levels = []
        for rate in rates:
            cpu0 = _cpu_seconds(proc)
            lv = runner(run_level(host, port, request, float(rate), seconds))
            cpu1 = _cpu_seconds(proc)
            levels.append(lv.summary())
            levels[-1]["server_cpu[ms/req]"] = (round((cpu1 - cpu0) * 1000.0 / lv.ok, 2)
                                                if cpu0 is not None and cpu1 is not None and lv.ok else None)
            print(_row(levels[-1]), flush=True)
            time.sleep(0.5)
        telemetry = httpx.get(url + "/v1/telemetry", timeout=10, headers=_auth()).json()
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(60)
    return {"url": url, "backend": info.get("backend"), "model_id": info.get("model_id"),
            "device_batch": info["limits"]["device_batch"], "deadline_ms": info["limits"]["batch_deadline_ms"],
            "queue_limit": info["limits"]["queue_limit"], "seconds": seconds, "clip": clip.name,
            "cpus": os.cpu_count(), "load_avg_1min_after": round(os.getloadavg()[0], 2),
            "machine": cpu_name(),
            "power": telemetry["power"], "levels": levels}


def _cpu_seconds(proc: subprocess.Popen | None) -> float | None:
    """User + system CPU seconds of the server process so far (Linux /proc), or None."""
    if proc is None:
        return None
    try:
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _auth() -> dict[str, str]:
    key = os.environ.get("PYNQ_SPARSE_API_KEY")
    return {"X-API-Key": key} if key else {}


HEADER = ("| offered req/s | achieved req/s | p50 ms | p99 ms | max ms | 503 | errors | unsent "
          "| server CPU ms/req | mean batch | max batch | batch sizes (size: clips) |")


def _row(s: dict[str, Any]) -> str:
    sizes = ", ".join(f"{k}: {v}" for k, v in s["batch_sizes"].items())
    cpu = s.get("server_cpu[ms/req]")
    return (f"| {s['offered[req/s]']:.0f} | {s['achieved[req/s]']:.1f} | {s['p50[ms]']:.1f} | {s['p99[ms]']:.1f} "
            f"| {s['max[ms]']:.1f} | {s['503']} | {s['errors']} | {s['unsent']} | {'-' if cpu is None else cpu} "
            f"| {s['mean_batch']:.2f} | {s['max_batch']} | {sizes} |")


def format_report(res: dict[str, Any], command: str) -> str:
    """docs/benchmarks/service.md: settings, the curve table, and whether the target holds."""
    ok = [lv for lv in res["levels"] if lv["p99[ms]"] <= TARGET_P99_MS and lv["503"] == 0 and lv["errors"] == 0
          and lv["achieved[req/s]"] >= 0.97 * lv["offered[req/s]"]]
    best = max(ok, key=lambda lv: lv["achieved[req/s]"], default=None)
    verdict = ("no level met p99 <= 50 ms without refusals" if best is None else
               f"highest load served with p99 <= {TARGET_P99_MS:g} ms and no refusals: "
               f"{best['achieved[req/s]']:.0f} req/s (p99 {best['p99[ms]']:.1f} ms, mean batch "
               f"{best['mean_batch']:.2f}); target >= {TARGET_RPS:g} req/s: "
               f"{'met' if best['achieved[req/s]'] >= 0.97 * TARGET_RPS else 'NOT met'}")
    p = res["power"]
    lines = [
        "# Service load benchmark",
        "",
        f"Generated by `{command}`.",
        "",
        "Single-clip `POST /v1/recognize` requests (multipart WAV upload of one real 1 s clip, "
        f"`{res['clip']}`) offered at fixed rates, open loop, over keep-alive connections on loopback. "
        "The server is `pynq-sparse serve` in its own process; the load generator (one asyncio process) shares "
        "the same cores. Latency counts from each request's scheduled send time to the end of its answer, so "
        "queueing in the client is included. `batch sizes` lists how many clips went through device "
        "batches of each size (read from the answers' `batch_size`); `server CPU` is the server process's "
        "user+system CPU time per answered request (all its threads). `unsent` counts requests the generator "
        f"could not send on time because all {MAX_CONNECTIONS} of its connections were waiting for answers (the "
        "server is saturated; with the queue limit at least as large, the server itself never had to refuse "
        "with 503 here: tests/test_service_load.py checks that path).",
        "",
        f"- backend: `{res['backend']}`, model `{res['model_id']}`",
        f"- micro-batching: at most {res['device_batch']} clips per device batch, deadline "
        f"{res['deadline_ms']:g} ms, queue limit {res['queue_limit']}",
        f"- {res['seconds']:g} s per level, {res['cpus']} CPUs ({res['machine']}), 1-min load average after "
        f"the run {res['load_avg_1min_after']} (other jobs shared the machine)",
        f"- power during the run: {p['source']}: {p['status'] if p['watts'] is None else str(round(p['watts'], 2)) + ' W'}",
        "",
        HEADER,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    lines += [_row(lv) for lv in res["levels"]]
    lines += ["", f"**Result:** {verdict}.", ""]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--rates", default=",".join(str(r) for r in DEFAULT_RATES),
                        help="offered loads in requests/s, comma-separated")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per load level (default 5)")
    parser.add_argument("--backend", default=None, help="backend of the started server (default: auto)")
    parser.add_argument("--model", default=None, help="model file of the started server (default: the shipped one)")
    parser.add_argument("--url", default=None, help="use this running server (loopback only) instead of starting one")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="markdown report path, '-' for stdout only")
    return parser


def run(args: argparse.Namespace) -> int:
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    if not rates or min(rates) <= 0 or args.seconds <= 0:
        raise SystemExit("--rates must be positive numbers and --seconds positive")
    print(HEADER, flush=True)
    res = run_bench(args.url, rates, args.seconds, args.backend, args.model)
    cmd = "python -m pynq_sparse.bench.service" + (f" --rates {args.rates}" if args.rates != ",".join(
        str(r) for r in DEFAULT_RATES) else "") + (f" --seconds {args.seconds:g}" if args.seconds != 5.0 else "")
    report = format_report(res, cmd)
    if args.out != "-":
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report)
        out.with_suffix(".json").write_text(json.dumps(res, indent=1))
        print(f"wrote {out}")
    else:
        print(report)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(add_arguments(argparse.ArgumentParser(prog="python -m pynq_sparse.bench.service",
                                                     description=__doc__.splitlines()[0])).parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
