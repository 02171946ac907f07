#!/usr/bin/env python
"""Read-path latency of the HTTP API with a large run table: history pages and run lists.

Run from the project root::

    .venv/bin/python bench/api.py [--runs 100000] [--requests 200] [--repeats 3]

What it does, on a fresh SQLite file (WAL, the PRAGMAs of config.settings) in a temp directory:

1. ``manage.py migrate``; then a child process of this script (``--populate``) inserts ``--runs``
   ended runs of one task (``bench-history``) with ``bulk_create`` in batches, plus
   ``--other-runs`` runs spread over five other tasks, interleaved in time, so the task and status
   filters have rows to skip. Values are realistic: statuses completed/failed/cancelled/skipped
   (about 82/10/5/3 %) with matching end reasons, one run every ~5 minutes over the past year,
   retries linked to the run they retry, progress and summary on about half of them, an error
   message on failures, and a captured log tail (0.5-4 KB) on about a third of them.
2. ``manage.py create_api_key --scopes tasks:read``.
3. ``manage.py serve --port <free port>``: web (uvicorn), worker cluster and scheduler, as a user
   runs it, with the example tasks switched off (TASKDECK_EXTRA_APPS="") so that nothing but the
   bench's rows is in the table. Measuring starts once /api/health reports the worker and the
   scheduler alive.
4. Over loopback, with one keep-alive ``requests.Session`` and ``X-API-Key``, per endpoint: a few
   warm-up requests, then ``--requests`` sequential requests, each timed from send to the last
   body byte. Every response must be 200 with the expected ``total`` and the expected number of
   items on the page, so the figures are real work, not errors. Endpoints: history pages 1, middle
   and last (limit 20), a middle page of ``status=failed``; ``/api/runs?status=failed`` and a
   middle page of ``/api/runs?status=completed,failed``. Three reference rows, outside the goal:
   ``/api/health`` (no key, two tiny queries) and the task detail give the floor, and the last
   history page with limit=100 shows how a page five times the default scales. An endpoint stops sampling after ``--endpoint-budget`` seconds (at least
   20 requests), so a pathological one cannot hold the bench for an hour; the row says so.

The whole measurement is repeated ``--repeats`` times against the same server; the summary is the
median over repetitions of each repetition's p50, p95, max and requests/s. The goal (issue 4):
p95 <= 20 ms per endpoint. The load average is printed before and after: other processes on the
machine inflate every figure, the reference rows show by how much.

The server, its worker and scheduler, and the temp directory are removed on every exit path
(normal end, error, Ctrl-C, SIGTERM); ``--keep`` keeps the directory (database, server log).
"""
from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: bench/ is sys.path[0], the project is not

HISTORY_TASK = "bench-history"
OTHER_TASKS = tuple(f"bench-other-{n}" for n in range(1, 6))
BATCH = 5000
RUN_SPACING = 300.0  # seconds between two runs of the history task, on average
GOAL_P95_MS = 20.0
WARM_UP = 5
MIN_SAMPLES = 20
SERVER_READY_TIMEOUT = 90.0


class BenchError(RuntimeError):
    """The bench could not measure (a command failed, the server died, a response was wrong)."""


# --- Child: fill the database ---------------------------------------------------------------------

# (status, end reason, weight); the pairs API.md allows.
OUTCOMES = (
    ("completed", "success", 82.0),
    ("failed", "failed", 6.0),
    ("failed", "timeout", 2.5),
    ("failed", "crashed", 1.5),
    ("cancelled", "cancelled", 4.0),
    ("cancelled", "terminated", 1.0),
    ("skipped", "skipped", 2.0),
    ("skipped", "queue_full", 0.5),
    ("skipped", "missed", 0.5),
)
TRIGGERS = (("schedule", "schedule", 88.0), ("api", "key:ci-bot", 7.0), ("manual", "user:admin", 5.0))
ERRORS = {
    "failed": ("ConnectionError: library server did not answer within 30 s",
               "ValueError: unexpected platform 'psx' in folder layout",
               "PermissionError: [Errno 13] Permission denied: '/library/roms/gba'"),
    "timeout": ("Timed out after 3600 s.",),
    "crashed": ("The worker running this run was lost (crashed).",),
}
LOG_LINE = "2025-01-01 03:00:{:02d} INFO scan_library: scanned folder /library/roms/{} ({} items)\n"


def make_runs(task_id: str, count: int, *, start: datetime, spacing: float, rng: random.Random) -> Any:
    """``count`` ended Run objects of ``task_id``, oldest first, one every ~``spacing`` seconds."""
    from tasks_app.models import Run

    outcomes = [(status, reason) for status, reason, _ in OUTCOMES]
    outcome_weights = [weight for *_, weight in OUTCOMES]
    triggers = [(trigger, by) for trigger, by, _ in TRIGGERS]
    trigger_weights = [weight for *_, weight in TRIGGERS]
    previous: Run | None = None
    for n in range(count):
        created = start + timedelta(seconds=n * spacing + rng.uniform(0, spacing * 0.4))
        status, reason = rng.choices(outcomes, outcome_weights)[0]
        trigger, by = rng.choices(triggers, trigger_weights)[0]
        attempt, retry_of = 1, None
        if previous is not None and previous.status == "failed" and previous.end_reason != "crashed" and rng.random() < 0.5:
            trigger, by, attempt, retry_of = "retry", "schedule", previous.attempt + 1, previous.pk
        run = Run(
            id=uuid.UUID(int=rng.getrandbits(128), version=4), task_id=task_id, status=status, end_reason=reason,
            trigger=trigger, triggered_by=by, attempt=attempt, retry_of_id=retry_of, created_at=created,
            parameters={"platforms": rng.choice(["gba", "n64", "snes"])} if rng.random() < 0.2 else {},
            worker_host="bench-host", worker_pid=rng.randint(1000, 60000),
        )
        if status == "skipped":  # never started: recorded when it was refused
            run.ended_at = created + timedelta(milliseconds=rng.uniform(1, 5))
        else:
            run.enqueued_at = created + timedelta(milliseconds=rng.uniform(1, 20))
            run.started_at = run.enqueued_at + timedelta(milliseconds=rng.uniform(10, 80))
            seconds = 3600.0 if reason == "timeout" else rng.lognormvariate(3.0, 1.0)
            run.ended_at = run.started_at + timedelta(seconds=seconds)
            total = rng.randint(50, 5000)
            done = total if status == "completed" else rng.randint(0, total)
            if rng.random() < 0.6:
                run.progress_current, run.progress_total = float(done), float(total)
                run.progress_message = "Done" if status == "completed" else f"Scanning {rng.choice(['gba', 'n64'])}"
            run.items_processed = done
            run.items_affected = rng.randint(0, max(1, done // 20))
            if rng.random() < 0.5:
                deleted = rng.randint(0, run.items_affected)
                failed = rng.randint(0, 3) if status != "completed" else 0
                run.summary = {
                    "items": done,
                    "actions": {"keep": run.items_affected - deleted, "delete": deleted},
                    "statuses": {"success": run.items_affected - failed, "failed": failed},
                }
            if status == "completed" and rng.random() < 0.3:
                run.result = {"scanned": done, "changed": run.items_affected}
            if status == "failed":
                run.error = rng.choice(ERRORS[reason])
                if reason == "failed":
                    run.traceback = "Traceback (most recent call last):\n" + '  File "tasks.py", line 42\n' * 8 + run.error
            if rng.random() < 0.33:
                lines = rng.randint(6, 50)
                run.bench_log = "".join(LOG_LINE.format(i % 60, rng.choice(["gba", "n64"]), rng.randint(1, 999))
                                        for i in range(lines)).encode()
        previous = run
        yield run


def populate_main(args: argparse.Namespace) -> None:
    """Child process: the tasks and runs; prints one JSON line with what the table holds."""
    import django

    django.setup()
    from django.db import transaction
    from django.db.models import Count

    from tasks_app.models import DefinitionSource, Run, RunLogChunk, Task

    rng = random.Random(args.seed)
    now = datetime.now(UTC) - timedelta(minutes=1)
    # Tasks an operator made in the admin: `serve` syncs code/file definitions and leaves these be.
    # Their retention keeps the whole generated year, or the scheduler's first sweep would trim it
    # to the default 100 runs while the bench measures.
    keep = {"keep_runs": 10 * args.runs, "keep_for": 2 * 366 * 86400}
    Task.objects.create(id=HISTORY_TASK, title="Bench: history", type="scan", source=DefinitionSource.ADMIN,
                        description="The task with the big history.", **keep)
    for task_id in OTHER_TASKS:
        Task.objects.create(id=task_id, title=f"Bench: {task_id}", type="cleanup", source=DefinitionSource.ADMIN,
                            **keep)

    span = args.runs * RUN_SPACING
    start = now - timedelta(seconds=span)
    streams = [make_runs(HISTORY_TASK, args.runs, start=start, spacing=RUN_SPACING, rng=rng)]
    per_other = args.other_runs // len(OTHER_TASKS)
    if per_other:
        streams += [make_runs(task_id, per_other, start=start, spacing=span / per_other, rng=rng)
                    for task_id in OTHER_TASKS]
    began = time.perf_counter()
    inserted = 0
    for stream in streams:
        while True:
            batch = list(itertools.islice(stream, BATCH))
            if not batch:
                break
            with transaction.atomic():
                Run.objects.bulk_create(batch)
                RunLogChunk.objects.bulk_create(
                    RunLogChunk(run=run, start=0, end=len(run.bench_log), data=run.bench_log)
                    for run in batch if getattr(run, "bench_log", None))
            inserted += len(batch)
    seconds = time.perf_counter() - began
    Task.objects.filter(pk__in=[HISTORY_TASK, *OTHER_TASKS]).update(last_run_at=now)

    def by_status(runs: Any) -> dict[str, int]:
        return dict(runs.values_list("status").annotate(n=Count("pk")).order_by())

    print(json.dumps({
        "inserted": inserted,
        "seconds": seconds,
        "history": by_status(Run.objects.filter(task_id=HISTORY_TASK)),
        "all": by_status(Run.objects.all()),
        "db_bytes": Path(args.db).stat().st_size + _size(Path(f"{args.db}-wal")),
    }), flush=True)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


# --- Parent: the server and its lifetime -----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, start time) of a live process, None if gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else (int(fields[1]), fields[19])


def descendants(pid: int) -> dict[int, str]:
    """Every live process below ``pid``, with its start time (to recognise it later, not a reuse)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))):
            children.setdefault(stat[0], []).append(int(entry.name))
    found: dict[int, str] = {}
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found and (stat := _stat(child)):
                found[child] = stat[1]
                stack.append(child)
    return found


class Server:
    """``manage.py serve`` on a free port; stopped with its web, worker and scheduler however we end."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.base = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "serve", "--port", str(self.port)], cwd=ROOT, env=self.env,
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C reaches us only; we stop it in order
            )

    def check_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            code = self.process.returncode if self.process else None
            raise BenchError(f"manage.py serve exited (code {code}); its log:\n{self.log_tail()}")

    def wait_ready(self, session: Any) -> dict[str, Any]:
        """Until /api/health answers with a live worker and scheduler (all three processes up)."""
        import requests

        deadline = time.monotonic() + SERVER_READY_TIMEOUT
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                response = session.get(f"{self.base}/api/health", timeout=2)
                body = response.json()
                if response.status_code == 200 and body.get("status") == "ok":
                    return body
            except (requests.ConnectionError, requests.Timeout, ValueError):
                pass
            time.sleep(0.2)
        raise BenchError(f"server not ready after {SERVER_READY_TIMEOUT:g} s (last health {body}); log:\n{self.log_tail()}")

    def stop(self, grace: float = 30.0) -> None:
        """SIGTERM to serve (it stops web, scheduler, worker in order), then SIGKILL any leftover."""
        if self.process is None:
            return
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not cut the cleanup short
            signal.signal(sig, signal.SIG_IGN)
        # serve's children run in sessions of their own: remember them now, while serve is their parent.
        below = descendants(self.process.pid)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        below.update(descendants(self.process.pid))  # empty once serve is gone; harmless otherwise
        for pid, started in below.items():
            stat = _stat(pid)
            if stat and stat[1] == started:  # the same process, still there
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.process = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def release(server: Server, workdir: Path, *, keep: bool) -> None:
    """Every exit path of a bench: the server and its children stop; the temp directory goes
    unless ``--keep`` asked for it."""
    server.stop()
    if keep:
        print(f"(database and server log kept in {workdir})", file=sys.stderr)
    else:
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def failures_reported(server: Server, workdir: Path, *, keep: bool) -> Iterator[None]:
    """A bench's measuring part: a BenchError or Ctrl-C ends the process with its message and its
    code (1, 130), and the server and the temporary folder are released on every way out."""
    try:
        yield
    except BenchError as error:
        print(f"bench failed: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        release(server, workdir, keep=keep)


def project_env(workdir: Path, db: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("REDIS_URL", None)
    env["DATABASE_URL"] = f"sqlite:///{db}"
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    env["TASKDECK_EXTRA_APPS"] = ""  # no example tasks: only the bench's rows in the table
    env["TASKDECK_DEFINITIONS"] = str(workdir / "taskdeck.toml")  # absent: declares nothing
    env["TASKDECK_DATA_DIR"] = str(workdir / "data")
    env.setdefault("LOG_LEVEL", "WARNING")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def manage(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    completed = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                               text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if completed.returncode:
        raise BenchError(f"manage.py {' '.join(args)} failed:\n{completed.stdout}\n{completed.stderr}")
    return completed.stdout


def populate(env: dict[str, str], db: Path, args: argparse.Namespace) -> dict[str, Any]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--populate", "--db", str(db),
            "--runs", str(args.runs), "--other-runs", str(args.other_runs), "--seed", str(args.seed)]
    completed = subprocess.run(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    if completed.returncode:
        raise BenchError(f"populating the database failed (exit code {completed.returncode})")
    return json.loads(completed.stdout.strip().splitlines()[-1])


# --- Parent: the measurements ------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    label: str
    path: str
    key: str
    """The list in the body ("history", "runs"), or "health" / "task" for the reference rows."""
    total: int
    """The expected pagination total."""
    page: int
    limit: int
    goal: bool = True
    """Whether the issue's goal applies; reference rows (health, task detail) are for comparison."""

    @property
    def expected_items(self) -> int:
        return max(0, min(self.limit, self.total - (self.page - 1) * self.limit))


def endpoints(counts: dict[str, Any], runs_limit: int = 20) -> list[Endpoint]:
    history_total = sum(counts["history"].values())
    failed_all = counts["all"].get("failed", 0)
    completed_failed_all = failed_all + counts["all"].get("completed", 0)
    failed_history = counts["history"].get("failed", 0)

    def pages(total: int, limit: int) -> int:
        return max(1, math.ceil(total / limit))

    def history(label: str, page: int, limit: int = 20, status: str = "", goal: bool = True) -> Endpoint:
        query = f"page={page}" + (f"&limit={limit}" if limit != 20 else "") + (f"&status={status}" if status else "")
        total = failed_history if status == "failed" else history_total
        return Endpoint(label, f"/api/tasks/{HISTORY_TASK}/history?{query}", "history", total, page, limit, goal)

    last20, last100 = pages(history_total, 20), pages(history_total, 100)
    middle_cf = pages(completed_failed_all, runs_limit) // 2 or 1
    return [
        Endpoint("health (reference, no auth)", "/api/health", "health", 0, 1, 0, goal=False),
        Endpoint("task detail (reference)", f"/api/tasks/{HISTORY_TASK}", "task", 0, 1, 0, goal=False),
        history("history page 1", 1),
        history(f"history page {last20 // 2} (middle)", last20 // 2 or 1),
        history(f"history page {last20} (last)", last20),
        # Five times the default page: outside the goal (default pages), shown for scale.
        history(f"history page {last100} limit=100 (reference)", last100, 100, goal=False),
        history(f"history status=failed page {pages(failed_history, 20) // 2 or 1}",
                pages(failed_history, 20) // 2 or 1, status="failed"),
        Endpoint("runs status=failed", "/api/runs?status=failed", "runs", failed_all, 1, runs_limit),
        Endpoint(f"runs status=completed,failed page {middle_cf}",
                 f"/api/runs?status=completed,failed&page={middle_cf}", "runs", completed_failed_all, middle_cf, runs_limit),
    ]


def check(endpoint: Endpoint, response: Any) -> None:
    if response.status_code != 200:
        raise BenchError(f"{endpoint.path}: HTTP {response.status_code}: {response.text[:500]}")
    body = response.json()
    if endpoint.key in ("health", "task"):
        if (endpoint.key == "health" and body.get("status") not in ("ok", "degraded")) or (endpoint.key == "task" and body.get("id") != HISTORY_TASK):
            raise BenchError(f"{endpoint.path}: unexpected body {str(body)[:300]}")
        return
    items, pagination = body[endpoint.key], body["pagination"]
    if pagination["total"] != endpoint.total or len(items) != endpoint.expected_items:
        raise BenchError(f"{endpoint.path}: {len(items)} items, total {pagination['total']}; expected "
                         f"{endpoint.expected_items} items, total {endpoint.total}")


def measure(session: Any, server: Server, endpoint: Endpoint, requests_count: int, budget: float) -> dict[str, float]:
    """``requests_count`` timed requests, or fewer (at least MIN_SAMPLES) once ``budget`` seconds are spent."""
    import requests

    url = server.base + endpoint.path
    latencies: list[float] = []
    try:
        for _ in range(WARM_UP):
            check(endpoint, session.get(url, timeout=30))
        began = time.perf_counter()
        for _ in range(requests_count):
            if len(latencies) >= MIN_SAMPLES and time.perf_counter() - began > budget:
                break  # a pathological endpoint must not hold the bench for an hour
            start = time.perf_counter()
            response = session.get(url, timeout=30)  # not streamed: returns after the last body byte
            latencies.append((time.perf_counter() - start) * 1000)
            check(endpoint, response)  # outside the timed span
        elapsed = time.perf_counter() - began
    except requests.RequestException as error:
        # The likely cause: the server stopped (it stops its worker first, so give it a moment).
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
        server.check_alive()
        raise BenchError(f"{endpoint.path}: {error}; server log:\n{server.log_tail()}") from None
    return {
        "p50": percentile(latencies, 0.50), "p95": percentile(latencies, 0.95), "max": max(latencies),
        "rps": len(latencies) / elapsed, "bytes": len(response.content), "n": len(latencies),
    }


def percentile(values: list[float], fraction: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def load() -> str:
    try:
        return "/".join(f"{value:.2f}" for value in os.getloadavg()) + " (1/5/15 min)"
    except OSError:
        return "unknown"


def print_row(label: str, figures: dict[str, float], width: int, requests_count: int) -> None:
    capped = f"  (time-capped: {figures['n']:.0f} requests)" if figures["n"] < requests_count else ""
    print(f"  {label:<{width}} p50 {figures['p50']:7.2f} ms  p95 {figures['p95']:7.2f} ms  "
          f"max {figures['max']:7.2f} ms  {figures['rps']:7.1f} req/s  {figures['bytes'] / 1024:6.1f} KiB{capped}", flush=True)


def parent_main(args: argparse.Namespace) -> int:
    import requests

    workdir = Path(tempfile.mkdtemp(prefix="taskdeck-bench-api-"))
    db = workdir / "db.sqlite3"
    env = project_env(workdir, db)
    server = Server(env, workdir / "serve.log")
    with failures_reported(server, workdir, keep=args.keep):
        manage(env, "migrate", "--noinput")
        counts = populate(env, db, args)
        print(f"Database: {counts['inserted']:,} runs inserted in {counts['seconds']:.1f} s "
              f"({counts['db_bytes'] / 2**20:.0f} MiB); {HISTORY_TASK}: "
              + ", ".join(f"{status} {n:,}" for status, n in sorted(counts["history"].items()))
              + "; all tasks: " + ", ".join(f"{status} {n:,}" for status, n in sorted(counts["all"].items())), flush=True)
        key = manage(env, "create_api_key", "--name", "bench", "--scopes", "tasks:read").strip().splitlines()[-1]
        server.start()
        session = requests.Session()
        health = server.wait_ready(session)
        session.headers["X-API-Key"] = key
        print(f"Server: manage.py serve on 127.0.0.1:{server.port} (health {health['status']}, "
              f"checks {health['checks']}); {args.requests} requests per endpoint after {WARM_UP} warm-up, "
              f"one keep-alive connection, {args.repeats} repetition(s).", flush=True)

        print(f"Machine: {os.cpu_count()} CPU(s), load average {load()} before measuring.", flush=True)
        targets = endpoints(counts)
        width = max(len(endpoint.label) for endpoint in targets)
        results: dict[str, list[dict[str, float]]] = {endpoint.label: [] for endpoint in targets}
        for rep in range(args.repeats):
            print(f"\nRepetition {rep + 1}:", flush=True)
            for endpoint in targets:
                server.check_alive()
                figures = measure(session, server, endpoint, args.requests, args.endpoint_budget)
                results[endpoint.label].append(figures)
                print_row(endpoint.label, figures, width, args.requests)
        server.check_alive()
        print(f"\nLoad average {load()} after measuring (other processes on the machine count too).")

        print(f"\nMedian of {args.repeats} repetition(s):")
        met_all = True
        goal_lines = []
        for endpoint in targets:
            median = {key: statistics.median(rep[key] for rep in results[endpoint.label])
                      for key in ("p50", "p95", "max", "rps", "bytes", "n")}
            print_row(endpoint.label, median, width, args.requests)
            if not endpoint.goal:
                continue
            met = median["p95"] <= GOAL_P95_MS
            met_all &= met
            goal_lines.append(f"  {endpoint.label:<{width}} p95 {median['p95']:7.2f} ms: {'met' if met else 'NOT met'}")
        print(f"\nGoal: p95 <= {GOAL_P95_MS:g} ms on SQLite with {counts['history'] and sum(counts['history'].values()):,} runs of one task:")
        print("\n".join(goal_lines))
        print(f"Goal overall: {'met' if met_all else 'NOT met'}", flush=True)
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000, help="Runs of the history task.")
    parser.add_argument("--other-runs", type=int, default=10_000, help="Runs spread over five other tasks.")
    parser.add_argument("--requests", type=int, default=200, help="Timed requests per endpoint and repetition.")
    parser.add_argument("--repeats", type=int, default=3, help="Repetitions; the summary is their median.")
    parser.add_argument("--endpoint-budget", type=float, default=60.0,
                        help=f"Seconds per endpoint and repetition after which sampling stops (at least {MIN_SAMPLES} requests).")
    parser.add_argument("--seed", type=int, default=1, help="Seed of the generated rows.")
    parser.add_argument("--keep", action="store_true", help="Keep the database and the server log.")
    parser.add_argument("--populate", action="store_true", help=argparse.SUPPRESS)  # internal: fill --db
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.runs < 1 or args.requests < 1 or args.repeats < 1 or args.other_runs < 0:
        parser.error("--runs, --requests and --repeats must be at least 1, --other-runs at least 0")
    return args


def main() -> int:
    args = parse_args()
    if args.populate:
        try:
            populate_main(args)
        except KeyboardInterrupt:
            return 130  # the parent reports it
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # finally blocks run: the server stops
    return parent_main(args)


if __name__ == "__main__":
    sys.exit(main())
