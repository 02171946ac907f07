#!/usr/bin/env python
"""A busy operator's day: 100,000 triggers from 4 HTTP clients against one ``serve``.

Run from the project root (``make soak`` runs both)::

    .venv/bin/python bench/soak.py --database sqlite [--triggers 100000] [--clients 4]
    scripts/with-postgres .venv/bin/python bench/soak.py --database postgres

What it does, on a fresh database (a SQLite file in a temp directory, or the database
``scripts/with-postgres`` made in its throwaway cluster):

1. ``manage.py migrate``, a ``tasks:run`` key, and three tasks whose callable does nothing:
   ``soak-forced`` (triggered with ``force``), ``soak-queue`` (``on_overlap = "queue"``, 4 at a
   time, up to 200,000 waiting) and ``soak-skip`` (``skip``: most of its triggers are refused).
2. ``manage.py serve`` (web, worker with 2 workers, scheduler) on a free loopback port.
3. ``--clients`` threads send ``--triggers`` POSTs in all, as fast as each gets its answer:
   45 % forced, 45 % queued, 10 % skip, in a seeded order. Every answer must be 202 or 409
   (a refused skip); anything 5xx is counted.
4. Each second, from the counters the database keeps: runs ended so far and the backlog (queued
   runs); each 10 s, the RSS (and the anonymous part of it) of every process of the stack.
5. Once the clients are done, the backlog drains to nothing (up to ``--drain-timeout`` s).

6. Then the backlog check: a child of this script (``--hold``) builds 100, then 10,000 runs of
   ``soak-queue`` waiting (held, admitted 4 at a time) in batches placed by the trigger's policy,
   keeps them for ``--hold-seconds``, topping them up with single triggers as they drain, then
   clears them; the same for ``soak-forced`` (each handed to the queue at once, a free slot for
   every one). Runs completed are counted each second of each hold; ``--rounds`` rounds
   alternate the order, and the median of all samples counts.

``--triggers 0`` skips the clients (the backlog check alone); ``--history N`` writes N ended runs
first, as a long day leaves them behind.

It prints: requests per second and answers by status; the 5xx count (goal 0); per role of the
stack, its RSS after the first minute and at the end (goal: flat within 10 %); the rate at which
runs complete with 100 and with 10,000 waiting (goal: within 20 % of each other), and a queue 10,000
deep against forced runs (goal: no slower, within 20 %). The
anonymous part is printed beside RSS: SQLite's pages are memory-mapped (SQLITE_MMAP_SIZE, 256 MiB),
so a file that grows adds file pages to RSS that the kernel may drop at will.

Stops by itself; the server and the temp directory are released on every way out (``--keep``
keeps the directory).
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: bench/ is sys.path[0], the project is not

from bench.api import BenchError, Server, descendants, failures_reported, load, manage, project_env  # noqa: E402

#: keep_runs: the day's whole history stays (retention would otherwise sweep it at start-up).
DEFINITIONS = """
[tasks.soak-forced]
kind = "python"
callable = "bench.noop.noop"
max_concurrent = 4
keep_runs = 1000000

[tasks.soak-queue]
kind = "python"
callable = "bench.noop.noop"
on_overlap = "queue"
max_concurrent = 4
queue_max = 200000
keep_runs = 1000000

[tasks.soak-skip]
kind = "python"
callable = "bench.noop.noop"
on_overlap = "skip"
keep_runs = 1000000
"""
MIX = [("soak-forced", True)] * 9 + [("soak-queue", False)] * 9 + [("soak-skip", False)] * 2
#: Backlog bands of the drain after the clients stop (informational), and the backlogs held steady.
LARGE = (8_000, 12_000)
SMALL_BACKLOG, LARGE_BACKLOG = 100, 10_000
#: Processes triggering to keep a backlog held, and how long they may take to build it up.
PRODUCERS, REACH_WITHIN = 3, 90.0
RSS_EVERY = 10.0


@dataclass
class Sample:
    at: float
    ended: int
    backlog: int
    clients_done: bool


@dataclass
class Memory:
    """RSS samples of one process: (seconds since start, RSS kB, anonymous kB)."""

    role: str
    samples: list[tuple[float, int, int]] = field(default_factory=list)


class Counters:
    """The stack's own counters (RunCount), read straight from its database."""

    def __init__(self, url: str) -> None:
        if url.startswith("sqlite"):
            import sqlite3

            self.connection: Any = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30,
                                                   check_same_thread=False)  # made here, read by the sampler
            self.mark = "?"
        else:
            import psycopg

            from urllib.parse import parse_qs, urlsplit

            parts = urlsplit(url)
            self.connection = psycopg.connect(dbname=parts.path.lstrip("/"), user=parts.username,
                                              host=parse_qs(parts.query).get("host", [parts.hostname])[0],
                                              autocommit=True)
            self.mark = "%s"
        self.lock = threading.Lock()  # the sampler and the backlog check read through one connection

    def completed(self, task_id: str) -> int:
        return self._count(task_id, "completed")

    def running(self, task_id: str) -> int:
        return self._count(task_id, "running")

    def _count(self, task_id: str, status: str) -> int:
        with self.lock:
            cursor = self.connection.cursor()
            cursor.execute(f'SELECT "count" FROM tasks_app_runcount WHERE task_id = {self.mark} AND status = {self.mark}',
                           [task_id, status])
            row = cursor.fetchone()
        return int(row[0]) if row else 0

    def read(self, task_id: str | None = None) -> tuple[int, int]:
        """(runs ended, runs queued), of every task or of one."""
        where, params = (f"WHERE task_id = {self.mark}", [task_id]) if task_id else ("", [])
        with self.lock:
            cursor = self.connection.cursor()
            cursor.execute(f'SELECT status, SUM("count") FROM tasks_app_runcount {where} GROUP BY status', params)
            counts = {status: int(total) for status, total in cursor.fetchall()}
        return sum(counts.get(status, 0) for status in ("completed", "failed", "cancelled", "skipped")), \
            counts.get("queued", 0)


def role_of(pid: int, serve_pid: int) -> str:
    try:
        line = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return "gone"
    if pid == serve_pid:
        return "serve"
    if "uvicorn" in line:
        return "web"
    if "manage.py scheduler" in line:
        return "scheduler"
    if "manage.py worker" in line and parent == serve_pid:
        return "worker"
    try:
        grandparent = int(Path(f"/proc/{parent}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return "gone"
    return "cluster sentinel" if grandparent == serve_pid else "cluster process (pusher, monitor, workers)"


def memory_kb(pid: int) -> tuple[int, int] | None:
    try:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    except OSError:
        return None
    return int(fields["VmRSS"].split()[0]), int(fields.get("RssAnon", "0 kB").split()[0])


def run_clients(base: str, key: str, *, total: int, clients: int, seed: int) -> tuple[Counter[int], float]:
    import requests

    answers: Counter[int] = Counter()
    lock = threading.Lock()
    rng = random.Random(seed)
    plan = [rng.choice(MIX) for _ in range(total)]
    errors: list[str] = []

    def client(share: list[tuple[str, bool]]) -> None:
        session = requests.Session()
        session.headers["X-API-Key"] = key
        for task_id, force in share:
            try:
                response = session.post(f"{base}/api/tasks/{task_id}/run", json={"force": force} if force else {},
                                        timeout=60)
                code = response.status_code
            except requests.RequestException as error:
                code = 0
                errors.append(str(error))
            with lock:
                answers[code] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(plan[index::clients],)) for index in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        print(f"  {len(errors)} request(s) failed to connect, e.g. {errors[0]}", file=sys.stderr)
    return answers, time.monotonic() - started


def drain_rates(samples: list[Sample], band: tuple[int, int]) -> list[float]:
    """Runs ended per second, each 1-s step of the drain whose backlog was in ``band``."""
    rates = []
    for before, after in zip(samples, samples[1:]):
        if before.clients_done and after.clients_done and band[0] <= before.backlog <= band[1]:
            rates.append((after.ended - before.ended) / (after.at - before.at))
    return rates


def hold_main(args: argparse.Namespace) -> None:
    """Child (``--hold TASK``): keep ``--backlog`` runs of one task waiting for ``--seconds``.

    First the backlog is built in batches (``build_backlog``), then PRODUCERS processes top the
    task's queued runs up to the target as they drain, with single triggers (``services.trigger``,
    as the API does), at most 50 between looks at the counter, so the stack works with that
    backlog the whole time. It prints "reached" once the target is reached, or after REACH_WITHIN s
    if it is not (the parent prints the depth seen, and a goal measured short of its depth is not
    met), and "held" when the hold ends. Then it clears the backlog, so the next measurement need
    not wait for it to drain: the task's queued runs end cancelled, BATCH to a statement (the
    counters follow; a benchmark's shortcut, no events) and, for forced runs, their queue messages
    go (no other task has any queued then)."""
    import django

    django.setup()
    from django.db import connections, transaction

    from tasks_app import clock, queue, services
    from tasks_app.db.locks import lock_task
    from tasks_app.models import EndReason, Run, RunCount, RunStatus

    force = args.hold == "soak-forced"
    started = time.monotonic()
    build_backlog(args.hold, target=args.backlog, force=force, until=started + REACH_WITHIN)
    connections.close_all()  # before forking: no connection is shared
    producers: list[int] | None = []
    for _ in range(PRODUCERS - 1):
        pid = os.fork()
        if pid == 0:
            producers = None  # a fork: it only triggers
            break
        producers.append(pid)
    main = producers is not None
    deadline = None
    while deadline is None or time.monotonic() < deadline:
        queued = RunCount.objects.filter(task_id=args.hold, status=RunStatus.QUEUED).values_list("count", flat=True).first() or 0
        if deadline is None and (queued >= args.backlog or time.monotonic() - started > REACH_WITHIN):
            deadline = time.monotonic() + args.seconds  # not reached in time: the drain outpaces the producers
            if main:
                print("reached", flush=True)
        for _ in range(min(max(args.backlog - queued, 0), 50)):
            services.trigger(args.hold, source="api", requested_by="soak", force=force)
        if queued >= args.backlog:
            time.sleep(0.05)
    if not main:
        os._exit(0)
    print("held", flush=True)
    for pid in producers or []:
        os.waitpid(pid, 0)
    while True:  # in batches, as the backlog was built (see BATCH)
        with transaction.atomic():  # the task's row first, as every write takes its locks (db/locks.py)
            lock_task(args.hold)
            batch = list(Run.objects.filter(task_id=args.hold, status=RunStatus.QUEUED).values_list("pk", flat=True)[:BATCH])
            Run.objects.filter(pk__in=batch, status=RunStatus.QUEUED).update(
                status=RunStatus.CANCELLED, end_reason=EndReason.CANCELLED, ended_at=clock.now())
        if not batch:
            break
    if force:
        queue.purge()


#: Runs placed, or cleared, per transaction. Each run moves its task's counter row (RunCount, kept
#: by the database's triggers), and PostgreSQL cannot prune the row's old versions before the
#: transaction ends: 500 a transaction left 570-900 dead versions and indexes to match, and every
#: read of the counters in the hold that followed cost about twice as much until autovacuum came
#: (up to a minute); 50 a transaction left none.
BATCH = 50


def build_backlog(task_id: str, *, target: int, force: bool, until: float) -> None:
    """Bring the task's queued runs up to ``target`` in batches of BATCH new API runs, each
    batch placed by the trigger's own policy (``place``, the task's row locked, its slots counted)
    in one transaction, as the scheduler fires its ticks: forced runs are handed to the queue,
    runs of the queue task held. One trigger at a time builds about 100 runs a second on
    PostgreSQL, each waiting for the task's row lock behind the workers' claims and ends (a
    10,000-deep backlog took over 90 s and was measured while still filling); batches build it in
    seconds. Stops at ``until`` (monotonic) if the workers drain faster."""
    from django.db import transaction

    from tasks_app import clock, queue, services
    from tasks_app.db.locks import retry_on_conflict
    from tasks_app.models import Run, RunCount, RunStatus, RunTrigger
    from tasks_app.services.transitions import lock_and_count
    from tasks_app.services.triggering import Writes, place

    @retry_on_conflict
    def place_batch(runs: list[Run], packages: list[queue.Package]) -> None:
        writes = Writes()
        with transaction.atomic():
            now = clock.now()
            policy, slots = lock_and_count(task_id, now=now)
            for run, package in zip(runs, packages, strict=True):
                place(run, package, policy, slots, writes, source=RunTrigger.API, force=force, now=now)
            writes.flush()

    task = services.get_task(task_id)
    while time.monotonic() < until:
        queued = RunCount.objects.filter(task_id=task_id, status=RunStatus.QUEUED).values_list("count", flat=True).first() or 0
        if queued >= target:
            return
        runs = [Run(task=task, trigger=RunTrigger.API, triggered_by="soak", parameters=services.parameters_for(task, given=None),
                    created_at=clock.now()) for _ in range(min(target - queued, BATCH))]
        place_batch(runs, [queue.prepare(run) for run in runs])


def fill_main(args: argparse.Namespace) -> None:
    """Child (``--fill N``): N ended runs of the soak's tasks, as a long day leaves them behind."""
    import django

    django.setup()
    from datetime import timedelta

    from tasks_app import clock, services
    from tasks_app.definitions.load import all_definitions
    from tasks_app.models import EndReason, Run, RunStatus, Task

    services.sync_definitions(all_definitions())
    tasks = list(Task.objects.filter(pk__in=["soak-forced", "soak-queue", "soak-skip"]))
    start = clock.now() - timedelta(hours=2)
    for first in range(0, args.fill, 5000):
        Run.objects.bulk_create([
            Run(task=tasks[number % len(tasks)], trigger="api", triggered_by="soak", status=RunStatus.COMPLETED,
                end_reason=EndReason.SUCCESS, created_at=start + timedelta(milliseconds=number),
                started_at=start, ended_at=start)
            for number in range(first, min(first + 5000, args.fill))])


def held_rates(env: dict[str, str], counters: Counters, task_id: str, backlog: int,
               seconds: float) -> tuple[list[float], list[int]]:
    """Runs of ``task_id`` completed each second while a child keeps ``backlog`` of them waiting,
    and the backlog seen each second."""
    import subprocess

    child = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--hold", task_id, "--backlog", str(backlog),
                              "--seconds", str(seconds)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        if child.stdout.readline().strip() != "reached":
            raise BenchError(f"holding {backlog:,} runs of {task_id} failed (exit code {child.wait()})")
        # The child prints "held" when the hold ends, before it clears the backlog: clearing 10,000
        # runs holds the task's lock for seconds, and those seconds are no drain at that depth.
        held = threading.Event()

        def wait_for_end(stdout: Any) -> None:
            if stdout.readline().strip() == "held":
                held.set()

        threading.Thread(target=wait_for_end, args=(child.stdout,), daemon=True).start()
        before, done_before = time.monotonic(), counters.completed(task_id)
        backlogs, rates = [], []
        while not held.is_set() and child.poll() is None:
            time.sleep(1)
            now, done = time.monotonic(), counters.completed(task_id)
            if not held.is_set() and child.poll() is None:  # a second the hold ended in is not one
                rates.append((done - done_before) / (now - before))
                backlogs.append(counters.read(task_id)[1])
            before, done_before = now, done
        child.wait()
        if child.returncode:
            raise BenchError(f"holding {backlog:,} runs of {task_id} failed (exit code {child.returncode})")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    while counters.read(task_id)[1] or counters.running(task_id):  # settle before the next measurement
        time.sleep(0.5)
    print(f"  {task_id:12} {backlog:>6,} waiting (median seen {statistics.median(backlogs):>6,.0f}): "
          f"{statistics.median(rates):6.1f} runs/s (median of {len(rates)} 1-s samples)", flush=True)
    return rates, backlogs


def backlog_check(env: dict[str, str], counters: Counters, seconds: float, rounds: int) -> None:
    """The completion rate with a short and a deep backlog, for a queue task and for forced runs:
    ``rounds`` rounds, each holding every case in turn, and the median of all their 1-s samples
    (the machine's other load moves between cases; alternating spreads it over all of them)."""
    print(f"\nBacklog held steady ({rounds} rounds of {seconds:g} s per case; the same stack, no HTTP clients):",
          flush=True)
    cases = [(task_id, depth) for task_id in ("soak-queue", "soak-forced") for depth in (SMALL_BACKLOG, LARGE_BACKLOG)]
    samples: dict[tuple[str, int], list[float]] = {case: [] for case in cases}
    seen: dict[tuple[str, int], list[int]] = {case: [] for case in cases}
    for round_number in range(rounds):
        for case in cases if round_number % 2 == 0 else cases[::-1]:
            rates_of_case, backlogs = held_rates(env, counters, *case, seconds)
            samples[case] += rates_of_case
            seen[case] += backlogs
    rates = {case: statistics.median(values) for case, values in samples.items()}
    depths = {case: statistics.median(values) for case, values in seen.items()}
    print("  medians over all rounds: " + ", ".join(
        f"{task_id} at {depth:,} (seen {depths[task_id, depth]:,.0f}): {rates[task_id, depth]:.1f}/s"
        for task_id, depth in cases))
    # A deep case that never got near its depth measured something else: its goals are not met.
    short = [case for case in cases if depths[case] < 0.9 * case[1]]
    if short:
        print("  NOT reached (median depth under 90 % of the target): "
              + ", ".join(f"{task_id} at {depth:,}" for task_id, depth in short))
    for task_id in ("soak-queue", "soak-forced"):
        ratio = rates[task_id, LARGE_BACKLOG] / rates[task_id, SMALL_BACKLOG]
        met = abs(ratio - 1) <= 0.2 and not {(task_id, LARGE_BACKLOG), (task_id, SMALL_BACKLOG)} & set(short)
        print(f"  {task_id}: {LARGE_BACKLOG:,} waiting / {SMALL_BACKLOG} waiting = {ratio:.2f} "
              f"(goal: within 20 %: {'met' if met else 'NOT met'})")
    ratio = rates["soak-queue", LARGE_BACKLOG] / rates["soak-forced", LARGE_BACKLOG]
    met = ratio >= 0.8 and not {("soak-queue", LARGE_BACKLOG), ("soak-forced", LARGE_BACKLOG)} & set(short)
    print(f"  a queue {LARGE_BACKLOG:,} deep / forced runs with a free slot = {ratio:.2f} "
          f"(goal: no slower, within 20 %: {'met' if met else 'NOT met'})")


def parent_main(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="taskdeck-soak-"))
    (workdir / "taskdeck.toml").write_text(DEFINITIONS)
    env = project_env(workdir, workdir / "soak.sqlite3")
    if args.database == "postgres":
        if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
            raise SystemExit("--database postgres needs DATABASE_URL; run it under scripts/with-postgres")
        env["DATABASE_URL"] = os.environ["DATABASE_URL"]
    server = Server(env, workdir / "serve.log")
    with failures_reported(server, workdir, keep=args.keep):
        manage(env, "migrate", "--noinput", "-v0")
        key = manage(env, "create_api_key", "--name", "soak", "--scopes", "tasks:run").split()[-1]
        if args.history:
            import subprocess

            subprocess.run([sys.executable, str(Path(__file__).resolve()), "--fill", str(args.history)], cwd=ROOT,
                           env=env, check=True)
        import requests

        server.start()
        server.wait_ready(requests.Session())
        counters = Counters(env["DATABASE_URL"])
        print(f"{args.triggers:,} triggers from {args.clients} clients, {args.database}; load {load()}", flush=True)

        samples: list[Sample] = []
        memory: dict[tuple[int, str], Memory] = {}
        clients_done = threading.Event()
        stop_sampling = threading.Event()
        began = time.monotonic()

        def sample() -> None:
            next_rss = next_print = 0.0
            while not stop_sampling.wait(1.0):
                ended, backlog = counters.read()
                now = time.monotonic() - began
                samples.append(Sample(now, ended, backlog, clients_done.is_set()))
                if now >= next_rss:
                    next_rss = now + RSS_EVERY
                    assert server.process is not None
                    for pid, started in {server.process.pid: "", **descendants(server.process.pid)}.items():
                        kb = memory_kb(pid)
                        if kb is not None:
                            entry = memory.setdefault((pid, started), Memory(role_of(pid, server.process.pid)))
                            entry.samples.append((now, *kb))
                if now >= next_print:
                    next_print = now + 30
                    print(f"  {now:5.0f} s  ended {ended:7,}  backlog {backlog:7,}", flush=True)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            answers, seconds = (run_clients(server.base, key, total=args.triggers, clients=args.clients, seed=args.seed)
                                if args.triggers else (Counter(), 0.0))
            clients_done.set()
            deadline = time.monotonic() + args.drain_timeout
            while (not samples or samples[-1].backlog > 0) and time.monotonic() < deadline:
                server.check_alive()
                if not sampler.is_alive():
                    raise BenchError("the sampler stopped (its traceback is above)")
                time.sleep(1)
            time.sleep(RSS_EVERY + 1)  # one more memory sample of the settled stack
        finally:
            stop_sampling.set()
            sampler.join(5)
        if args.triggers:
            report(args, answers, seconds, samples, memory)
        if args.hold_seconds:
            backlog_check(env, counters, args.hold_seconds, args.rounds)
    return 0


def report(args: argparse.Namespace, answers: Counter[int], seconds: float, samples: list[Sample],
           memory: dict[tuple[int, str], Memory]) -> None:
    server_errors = sum(count for code, count in answers.items() if code >= 500 or code == 0)
    print(f"\nRequests: {sum(answers.values()):,} in {seconds:.0f} s ({sum(answers.values()) / seconds:.0f}/s); "
          f"answers {dict(sorted(answers.items()))}; 5xx (or no answer): {server_errors}")
    peak = max((sample.backlog for sample in samples), default=0)
    last = samples[-1] if samples else None
    print(f"Backlog peaked at {peak:,}; at the end {last.backlog if last else '?':,} queued, "
          f"{last.ended if last else 0:,} runs ended")
    large = drain_rates(samples, LARGE)
    if len(large) >= 3:
        print(f"Drain after the clients stopped, backlog ~10,000: {statistics.median(large):.1f} runs/s "
              f"(median of {len(large)} 1-s samples)")
    print("Memory (kB, RSS / anonymous), after the first minute and at the end; django-q2 recycles each "
          "worker after 1,000 runs, so cluster processes are summed up by their largest:")
    flat = True
    by_role: dict[str, list[tuple[int, tuple[float, int, int], tuple[float, int, int]]]] = {}
    for (pid, _), entry in memory.items():
        later = [sample for sample in entry.samples if sample[0] >= 60]
        if len(later) >= 2:
            by_role.setdefault(entry.role, []).append((pid, later[0], later[-1]))
    for role, processes in sorted(by_role.items()):
        growths = [(end[1] - first[1]) / first[1] for _, first, end in processes]
        steady = max(growths) <= 0.10
        flat = flat and steady
        pid, first, end = max(processes, key=lambda item: item[2][1])
        who = f"pid {pid}" if len(processes) == 1 else f"{len(processes)} processes, largest"
        print(f"  {role:42} {who:>24}  {first[1]:>7,} / {first[2]:>7,}  ->  {end[1]:>7,} / {end[2]:>7,}  "
              f"(growth at most {max(growths):+.1%}{'' if steady else ', grew'})")
    print(f"Goals: 5xx {server_errors} (goal 0: {'met' if server_errors == 0 else 'NOT met'}); "
          f"memory flat within 10 % after the first minute: {'met' if flat else 'NOT met'}")
    print(f"Load average after: {load()}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--triggers", type=int, default=100_000, help="POSTs in all.")
    parser.add_argument("--clients", type=int, default=4, help="HTTP clients at once.")
    parser.add_argument("--drain-timeout", type=float, default=1800.0, help="Seconds to wait for the backlog to drain.")
    parser.add_argument("--hold-seconds", type=float, default=20.0,
                        help="Seconds each backlog is held steady for the backlog check (0: skip it).")
    parser.add_argument("--rounds", type=int, default=2, help="Rounds of the backlog check.")
    parser.add_argument("--history", type=int, default=0,
                        help="Ended runs written before the stack starts (a long day's history; default none).")
    parser.add_argument("--hold", help=argparse.SUPPRESS)  # internal: the child that holds a backlog
    parser.add_argument("--fill", type=int, help=argparse.SUPPRESS)  # internal: the child that writes --history
    parser.add_argument("--backlog", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="Keep the database and the server log.")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    # A SIGTERM unwinds like an error: the stack stops and the temp directory goes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.hold:
        hold_main(args)
        return 0
    if args.fill:
        fill_main(args)
        return 0
    try:
        return parent_main(args)
    except BenchError as error:
        print(f"bench failed: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
