#!/usr/bin/env python
"""Live events at scale: 500 SSE clients on one web process while a task reports progress.

Run from the project root::

    .venv/bin/python bench/events.py [--clients 500] [--steps 20] [--interval 0.3] [--repeats 3]

What it does, on a fresh SQLite file (WAL, the PRAGMAs of config.settings) in a temp directory:

1. ``manage.py migrate``, one API key with ``tasks:read,tasks:run``, and a definitions file with
   one task, ``bench-progress`` (``bench.noop.progress_steps``): ``--steps`` calls of
   ``ctx.progress(i, steps)`` ``--interval`` seconds apart. The interval is above the run
   context's throttle (PROGRESS_INTERVAL, 0.25 s), so every call is written as its own
   ``task:progress`` event; the run's end writes ``task:completed``.
2. ``manage.py serve --port <free port>`` (web = uvicorn, worker cluster, scheduler) as a user
   runs it, with the example tasks switched off (TASKDECK_EXTRA_APPS=""). Measuring starts once
   /api/health reports the worker and the scheduler alive.
3. Per row, from this process, with asyncio and a raw HTTP/1.1 client over loopback (one
   ``asyncio.Protocol`` per connection, at most ``CONNECT_CONCURRENCY`` handshakes at a time):
   open N connections to ``GET /api/events?task=bench-progress`` and wait until each has answered
   200 *and* sent its first body line (``retry:``); the stream yields it only after subscribing
   to the relay, so from then on no event can pass the client by. Then trigger one run with
   ``POST /api/tasks/bench-progress/run`` and wait until every client has its ``task:completed``.
   A connection only stamps each read with ``time.time()`` and keeps the bytes; the SSE messages
   are parsed after the run, so one client's JSON decoding does not delay the next client's
   receipt time.

Figures per row, over the run's ``task:progress`` and ``task:completed`` events (their rows are
read from the database afterwards, so an event no client got still counts):

- latency of each (client, event) pair: receipt (wall clock, this process) minus the event's
  ``data.timestamp`` (wall clock of the worker when it wrote the row, same machine; it includes
  the commit, the relay's poll of every 0.1 s, the fan-out and the socket): p50, p95, max;
- per event, the time until the *last* client got it (max over clients): p50 and max over events;
  and the fan-out, from the first client's receipt to the last one's (the relay's poll is not in
  it): p50 and max over events. Progress is coalesced per client, so a client that falls behind
  gets fewer progress events; an event it never got is not in these figures, hence the next one:
- how many clients got the final progress event (``current == steps``; it must be all) and the
  end event, and the progress events per client (min and median);
- the web process (uvicorn, found below serve in /proc) from /proc/<pid>/status: VmRSS idle
  before connecting, with all clients connected, the peak while connecting and during the run
  (sampled every 0.2 s), and after the clients left; threads and open file descriptors likewise;
  CPU seconds the web process used during the run.

Two rows per repetition, against the same server: one client alone (the reference: what an
event costs with nobody else listening) and ``--clients``; the ratio shows what the crowd costs.
There is no natural peer product to measure here. The whole measurement is repeated
``--repeats`` times; the summary is the median over repetitions of each figure. The goal (issue):
every client gets every event within 1 s (the max over events of the last-client latency, and
every client got the final progress) and the web process's RSS stays at or below 150 MB
(10^6 bytes) with ``--clients`` connected.

Sockets, the server (web, worker, scheduler) and the temp directory are released on every exit
path (normal end, error, Ctrl-C, SIGTERM); ``--keep`` keeps the directory (database, server log).
"""
from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import re
import resource
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: bench/ is sys.path[0], the project is not

from bench.api import (  # noqa: E402
    BenchError,
    Server,
    descendants,
    failures_reported,
    load,
    manage,
    percentile,
    project_env,
)

TASK = "bench-progress"
DEFINITIONS = f"""
[tasks.{TASK}]
kind = "python"
callable = "bench.noop.progress_steps"
title = "Bench: steady progress"
timeout = 600
max_concurrent = 10
parameters = [{{ key = "steps", type = "number", default = 20 }}, {{ key = "interval", type = "number", default = 0.3 }}]
"""
GOAL_LAST_CLIENT_S = 1.0
GOAL_RSS_MB = 150.0
MB = 1_000_000
CONNECT_CONCURRENCY = 50
CONNECT_TIMEOUT = 60.0
SAMPLE_EVERY = 0.2
END_GRACE = 30.0
"""Seconds past the run's nominal duration to wait for every client's end event."""
SETTLE = 3.0
"""Seconds the server gets to let go of closed streams before the 'after' sample."""

MESSAGE = re.compile(rb"id: (\d+)\nevent: ([^\n]+)\ndata: ([^\n]*)\n\n")
END_MARKERS = (b"event: task:completed", b"event: task:error", b"event: task:cancelled")
MEASURED = ("task:progress", "task:completed")


# --- The web process, from /proc ----------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessSample:
    rss: int
    """VmRSS, bytes."""
    threads: int
    fds: int
    cpu: float
    """utime + stime, seconds."""


def web_pid(server: Server) -> int:
    """The uvicorn child of ``manage.py serve`` (serve itself, the worker and the scheduler are not it)."""
    for pid in descendants(server.process.pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"uvicorn" in argv:
            return pid
    raise BenchError(f"no uvicorn process below serve (pid {server.process.pid}); log:\n{server.log_tail()}")


def sample(pid: int) -> ProcessSample:
    try:
        status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError as error:
        raise BenchError(f"the web process {pid} is gone ({error})") from None
    ticks = os.sysconf("SC_CLK_TCK")
    return ProcessSample(rss=int(status["VmRSS"].split()[0]) * 1024, threads=int(status["Threads"]), fds=fds,
                         cpu=(int(stat[11]) + int(stat[12])) / ticks)


class Sampler:
    """Samples the web process every SAMPLE_EVERY seconds on the bench's loop, keeping the peak RSS."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = sample(pid)
        self.task: asyncio.Task[None] | None = None

    def take(self) -> ProcessSample:
        current = sample(self.pid)
        if current.rss > self.peak.rss:
            self.peak = current
        return current

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_EVERY)
            self.take()

    def __enter__(self) -> Sampler:
        self.task = asyncio.get_running_loop().create_task(self._loop())
        return self

    def __exit__(self, *exc: object) -> None:
        if self.task:
            self.task.cancel()
        self.take()


# --- SSE clients ----------------------------------------------------------------------------------------


class StreamClient(asyncio.Protocol):
    """One SSE connection. ``data_received`` only stamps the read and keeps the bytes; parse() reads them.

    Each yield of the server's stream is one HTTP chunk holding whole SSE messages, so a message
    never straddles the chunk framing and can be found in the raw bytes as they are.
    """

    def __init__(self, request: bytes) -> None:
        loop = asyncio.get_running_loop()
        self.request = request
        self.raw = bytearray()
        self.arrivals: list[int] = []
        """Offset in ``raw`` just past each read, ..."""
        self.times: list[float] = []
        """... and the wall-clock time of that read."""
        self.ready: asyncio.Future[None] = loop.create_future()
        self.ended: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        scan_from = max(0, len(self.raw) - 32)
        self.raw += data
        self.arrivals.append(len(self.raw))
        self.times.append(now)
        if not self.ready.done():
            head_end = self.raw.find(b"\r\n\r\n")
            if head_end < 0:
                return
            if not self.raw.startswith(b"HTTP/1.1 200 "):
                self.ready.set_exception(BenchError(f"/api/events answered {bytes(self.raw[:600])!r}"))
            elif self.raw.find(b"retry:", head_end) >= 0:
                self.ready.set_result(None)
        elif not self.ended.done() and any(self.raw.find(marker, scan_from) >= 0 for marker in END_MARKERS):
            self.ended.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        for future in (self.ready, self.ended):
            if not future.done():
                future.set_exception(BenchError(f"the server closed an SSE stream ({exc or 'EOF'})"))
                future.exception()  # retrieved: no 'never retrieved' warning for the other one

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

    def parse(self) -> list[tuple[int, str, float]]:
        """``(event id, event name, receipt time)`` of every message, in order."""
        messages = []
        for match in MESSAGE.finditer(self.raw):
            read = bisect.bisect_left(self.arrivals, match.end())  # the read that completed the message
            messages.append((int(match[1]), match[2].decode(), self.times[read]))
        if len(messages) != self.raw.count(b"event: "):
            raise BenchError(f"unparsed SSE messages in {bytes(self.raw[-800:])!r}")
        return messages


async def connect(count: int, *, port: int, key: str, clients: list[StreamClient]) -> None:
    """Open ``count`` streams (appended to ``clients`` before connecting, so the caller closes them all)."""
    request = (f"GET /api/events?task={TASK} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-API-Key: {key}\r\n"
               "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n").encode()
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def open_one() -> None:
        async with gate:
            client = StreamClient(request)
            clients.append(client)
            try:
                await loop.create_connection(lambda: client, "127.0.0.1", port)
            except OSError as error:
                raise BenchError(f"connecting stream {len(clients)}: {error}") from None
            await client.ready

    try:
        async with asyncio.timeout(CONNECT_TIMEOUT), asyncio.TaskGroup() as group:
            for _ in range(count):
                group.create_task(open_one())
    except ExceptionGroup as failed:  # the first failure tells; the rest were cancelled with it
        raise failed.exceptions[0] from None


# --- One row: N clients, one run ----------------------------------------------------------------------


def trigger(session: Any, base: str, *, steps: int, interval: float) -> str:
    response = session.post(f"{base}/api/tasks/{TASK}/run", json={"parameters": {"steps": steps, "interval": interval}},
                            timeout=30)
    if response.status_code != 202:
        raise BenchError(f"POST /api/tasks/{TASK}/run: HTTP {response.status_code}: {response.text[:500]}")
    return response.json()["run_id"]


def written_events(db: Path, run_id: str) -> dict[int, dict[str, Any]]:
    """The run's measured events as the worker wrote them: id -> data (read-only, beside the server)."""
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        rows = connection.execute("SELECT id, name, data FROM tasks_app_event WHERE run_id = ? ORDER BY id",
                                  (run_id.replace("-", ""),)).fetchall()
    finally:
        connection.close()
    return {event_id: {"name": name, **json.loads(data)} for event_id, name, data in rows if name in MEASURED}


async def measure_row(count: int, *, server: Server, pid: int, key: str, session: Any, db: Path,
                      args: argparse.Namespace) -> dict[str, float]:
    idle = sample(pid)
    clients: list[StreamClient] = []
    try:
        with Sampler(pid) as sampler:
            began = time.perf_counter()
            await connect(count, port=server.port, key=key, clients=clients)
            connect_s = time.perf_counter() - began
            await asyncio.sleep(0.5)  # let the handshakes' leftovers (threads, buffers) settle
            connected = sampler.take()
            run_id = await asyncio.to_thread(trigger, session, server.base, steps=args.steps, interval=args.interval)
            _, missing = await asyncio.wait([client.ended for client in clients],
                                            timeout=args.steps * args.interval + END_GRACE)
            during = sampler.take()
        peak = sampler.peak
    finally:
        for client in clients:
            client.close()
    server.check_alive()
    await asyncio.sleep(SETTLE)
    after = sample(pid)

    written = await asyncio.to_thread(written_events, db, run_id)
    progress = [event_id for event_id, data in written.items() if data["name"] == "task:progress"]
    if len(progress) != args.steps or not any(data["name"] == "task:completed" for data in written.values()):
        raise BenchError(f"run {run_id} wrote {len(progress)} progress events (expected {args.steps}) "
                         f"and {'a' if len(written) > len(progress) else 'no'} task:completed; log:\n{server.log_tail()}")
    final = max(progress)
    if written[final]["progress"]["current"] != args.steps:
        raise BenchError(f"the last progress event of run {run_id} is {written[final]['progress']}")
    stamped = {event_id: datetime.fromisoformat(data["timestamp"]).timestamp() for event_id, data in written.items()}

    latencies: list[float] = []
    last_client: dict[int, float] = {}
    first_receipt: dict[int, float] = {}
    last_receipt: dict[int, float] = {}
    progress_per_client: list[int] = []
    got_final = got_end = 0
    for client in clients:
        received = {event_id: receipt for event_id, _name, receipt in client.parse() if event_id in written}
        for event_id, receipt in received.items():
            latency = receipt - stamped[event_id]
            latencies.append(latency)
            last_client[event_id] = max(last_client.get(event_id, latency), latency)
            first_receipt[event_id] = min(first_receipt.get(event_id, receipt), receipt)
            last_receipt[event_id] = max(last_receipt.get(event_id, receipt), receipt)
        progress_per_client.append(sum(1 for event_id in received if event_id in progress))
        got_final += final in received
        got_end += any(written[event_id]["name"] == "task:completed" for event_id in received)
    if not latencies:
        raise BenchError(f"no client received an event of run {run_id}; log:\n{server.log_tail()}")
    per_event = list(last_client.values())
    fan_out = [last_receipt[event_id] - first_receipt[event_id] for event_id in last_receipt]
    return {
        "connect_s": connect_s, "missing_end": len(missing),
        "p50": percentile(latencies, 0.5), "p95": percentile(latencies, 0.95), "max": max(latencies),
        "last_p50": percentile(per_event, 0.5), "last_max": max(per_event),
        "fan_p50": percentile(fan_out, 0.5), "fan_max": max(fan_out),
        "got_final": got_final, "got_end": got_end,
        "progress_min": min(progress_per_client), "progress_median": statistics.median(progress_per_client),
        "rss_idle": idle.rss, "rss_connected": connected.rss, "rss_peak": peak.rss, "rss_after": after.rss,
        "threads_idle": idle.threads, "threads_connected": connected.threads, "threads_after": after.threads,
        "fds_idle": idle.fds, "fds_connected": connected.fds, "fds_after": after.fds,
        "cpu_run": during.cpu - connected.cpu,
    }


async def measure_all(*, server: Server, key: str, session: Any, db: Path, args: argparse.Namespace
                      ) -> dict[int, list[dict[str, float]]]:
    pid = web_pid(server)
    results: dict[int, list[dict[str, float]]] = {1: [], args.clients: []}
    print(f"Web process: pid {pid}; {args.steps} progress events {args.interval:g} s apart per run; "
          f"load average {load()}.", flush=True)
    print_header()
    for repetition in range(1, args.repeats + 1):
        print(f"Repetition {repetition}:", flush=True)
        for count in results:
            figures = await measure_row(count, server=server, pid=pid, key=key, session=session, db=db, args=args)
            results[count].append(figures)
            print_row(label(count), figures, count)
    return results


# --- Output ------------------------------------------------------------------------------------------


def label(count: int) -> str:
    return "1 client (reference)" if count == 1 else f"{count} clients"


def print_header() -> None:
    print(f"  {'':22s} {'connect':>8s} | {'latency p50':>11s} {'p95':>7s} {'max':>7s} | {'last client p50':>15s} {'max':>7s} {'fan-out p50':>11s} {'max':>5s} | "
          f"{'final':>9s} {'end':>9s} {'progress/client':>15s} | {'RSS idle':>8s} {'conn.':>6s} {'peak':>6s} {'after':>6s} | "
          f"{'threads':>13s} {'fds':>13s} {'web CPU':>7s}")
    print(f"  {'':22s} {'s':>8s} | {'ms':>11s} {'ms':>7s} {'ms':>7s} | {'ms':>15s} {'ms':>7s} {'ms':>11s} {'ms':>5s} | {'got':>9s} {'got':>9s} "
          f"{'min/median':>15s} | {'MB':>8s} {'MB':>6s} {'MB':>6s} {'MB':>6s} | {'idle/conn/aft':>13s} {'idle/conn/aft':>13s} "
          f"{'s':>7s}", flush=True)


def print_row(name: str, figures: dict[str, float], count: int) -> None:
    def ms(key: str) -> str:
        return f"{figures[key] * 1000:.0f}"

    def mb(key: str) -> str:
        return f"{figures[key] / MB:.1f}"

    threads = f"{figures['threads_idle']:.0f}/{figures['threads_connected']:.0f}/{figures['threads_after']:.0f}"
    fds = f"{figures['fds_idle']:.0f}/{figures['fds_connected']:.0f}/{figures['fds_after']:.0f}"
    progress = f"{figures['progress_min']:.0f}/{figures['progress_median']:.0f}"
    print(f"  {name:22s} {figures['connect_s']:8.2f} | {ms('p50'):>11s} {ms('p95'):>7s} {ms('max'):>7s} | "
          f"{ms('last_p50'):>15s} {ms('last_max'):>7s} {ms('fan_p50'):>11s} {ms('fan_max'):>5s} | {figures['got_final']:>4.0f}/{count:<4d} {figures['got_end']:>4.0f}/{count:<4d} "
          f"{progress:>15s} | {mb('rss_idle'):>8s} {mb('rss_connected'):>6s} {mb('rss_peak'):>6s} {mb('rss_after'):>6s} | "
          f"{threads:>13s} {fds:>13s} {figures['cpu_run']:7.2f}", flush=True)


def summarise(results: dict[int, list[dict[str, float]]], args: argparse.Namespace) -> None:
    medians = {count: {key: statistics.median(rep[key] for rep in reps) for key in reps[0]} for count, reps in results.items()}
    print(f"\nMedian of {args.repeats} repetition(s):")
    print_header()
    for count, figures in medians.items():
        print_row(label(count), figures, count)
    alone, crowd = medians[1], medians[args.clients]
    print(f"  {'ratio':22s} latency p50 {crowd['p50'] / alone['p50']:.2f}x, p95 {crowd['p95'] / alone['p95']:.2f}x, "
          f"max {crowd['max'] / alone['max']:.2f}x; last client max {crowd['last_max'] / alone['last_max']:.2f}x; "
          f"web CPU {crowd['cpu_run'] / max(alone['cpu_run'], 0.01):.1f}x  ({args.clients} clients / 1 client)")
    # Repetition 1 meets a fresh process; later ones start from whatever the previous rows left behind.
    first, fresh, last = results[1][0], results[args.clients][0], results[args.clients][-1]
    print(f"  {'RSS growth':22s} repetition 1 (fresh process), peak - idle: {(first['rss_peak'] - first['rss_idle']) / MB:+.1f} MB "
          f"with 1 client, {(fresh['rss_peak'] - fresh['rss_idle']) / MB:+.1f} MB with {args.clients} "
          f"({(fresh['rss_connected'] - fresh['rss_idle']) / args.clients / 1024:.0f} KiB per connected client); median of "
          f"repetitions {(crowd['rss_peak'] - crowd['rss_idle']) / MB:+.1f} MB with {args.clients}")
    print(f"  {'web process':22s} before the first row: RSS {first['rss_idle'] / MB:.1f} MB, {first['threads_idle']:.0f} threads, "
          f"{first['fds_idle']:.0f} fds; {SETTLE:g} s after the last row's clients left: RSS {last['rss_after'] / MB:.1f} MB, "
          f"{last['threads_after']:.0f} threads, {last['fds_after']:.0f} fds")

    everyone = all(rep["got_final"] == args.clients and rep["got_end"] == args.clients for rep in results[args.clients])
    in_time = crowd["last_max"] <= GOAL_LAST_CLIENT_S and everyone
    small = crowd["rss_peak"] <= GOAL_RSS_MB * MB
    worst = max(rep["last_max"] for rep in results[args.clients])
    print(f"\nGoal: all {args.clients} clients get every event within {GOAL_LAST_CLIENT_S:g} s: {'met' if in_time else 'NOT met'} "
          f"(last-client latency max {crowd['last_max'] * 1000:.0f} ms, median of repetitions; worst repetition "
          f"{worst * 1000:.0f} ms; final progress reached every client in every repetition: {'yes' if everyone else 'NO'})")
    print(f"Goal: web process RSS <= {GOAL_RSS_MB:g} MB with {args.clients} clients: {'met' if small else 'NOT met'} "
          f"(peak {crowd['rss_peak'] / MB:.1f} MB, median of repetitions)")
    print(f"Goal overall: {'met' if in_time and small else 'NOT met'}; load average {load()}", flush=True)


# --- Main ----------------------------------------------------------------------------------------------


def raise_fd_limit(needed: int) -> None:
    """Each client is a socket of this process; the server inherits the limit too (it needs one per client)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise BenchError(f"{needed} file descriptors needed, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
        print(f"Raised the file descriptor soft limit from {soft} to {needed}.", flush=True)


def parent_main(args: argparse.Namespace) -> int:
    import requests

    workdir = Path(tempfile.mkdtemp(prefix="taskdeck-bench-events-"))
    db = workdir / "db.sqlite3"
    env = project_env(workdir, db)
    server = Server(env, workdir / "serve.log")
    with failures_reported(server, workdir, keep=args.keep):
        raise_fd_limit(2 * args.clients + 256)
        (workdir / "taskdeck.toml").write_text(DEFINITIONS)
        manage(env, "migrate", "--noinput")
        key = manage(env, "create_api_key", "--name", "bench", "--scopes", "tasks:read,tasks:run").strip().splitlines()[-1]
        server.start()
        session = requests.Session()
        health = server.wait_ready(session)
        session.headers["X-API-Key"] = key
        print(f"Server: manage.py serve on 127.0.0.1:{server.port} (health {health['status']}); {os.cpu_count()} CPU(s); "
              f"{args.repeats} repetition(s) of 1 client, then {args.clients} clients.", flush=True)
        try:
            results = asyncio.run(measure_all(server=server, key=key, session=session, db=db, args=args))
        except TimeoutError:
            raise BenchError(f"the streams were not all open after {CONNECT_TIMEOUT:g} s; server log:\n"
                             f"{server.log_tail()}") from None
        server.check_alive()
        summarise(results, args)
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=500, help="SSE clients of the measured row.")
    parser.add_argument("--steps", type=int, default=20, help="Progress events the task writes per run.")
    parser.add_argument("--interval", type=float, default=0.3, help="Seconds between two progress events (> 0.25).")
    parser.add_argument("--repeats", type=int, default=3, help="Repetitions; the summary is their median.")
    parser.add_argument("--keep", action="store_true", help="Keep the database and the server log.")
    args = parser.parse_args()
    if args.clients < 2 or args.steps < 1 or args.repeats < 1:
        parser.error("--clients must be at least 2, --steps and --repeats at least 1")
    if args.interval <= 0.25:
        parser.error("--interval must exceed PROGRESS_INTERVAL (0.25 s), or progress writes are merged")
    return args


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # finally blocks run: sockets close, the server stops
    return parent_main(args)


if __name__ == "__main__":
    sys.exit(main())
