#!/usr/bin/env python
"""Taskdeck's trigger path against raw django-q2: runs per second and trigger-to-start latency.

Run from the project root::

    .venv/bin/python bench/throughput.py [--runs 2000] [--repeats 3] [--latency-samples 30]
    scripts/with-postgres .venv/bin/python bench/throughput.py --database both

Two sides, each on a fresh database (a SQLite file: WAL, the PRAGMAs of config.settings; or, with
``--database postgres``, a PostgreSQL database copied from a migrated template) with a real
worker cluster of the same worker count (``manage.py worker`` for Taskdeck, as ``serve`` runs it;
``manage.py qcluster`` for the peer):

* taskdeck: the project's settings as they are; ``services.trigger`` on a python task whose
  callable does nothing, every run recorded as a Run row (queued, started, completed events).
* peer: django-q2 out of the box (bench/peer_settings.py: ORM broker, poll 0.2 s, bulk 1,
  save_limit 250, CONN_MAX_AGE 0); plain ``async_task("bench.noop.noop_plain")``.

Each repetition starts one child process per side (``--side``), so each side has its own settings
module; the child owns its qcluster and stops it however it ends. Sides alternate which goes
first, so neither always gets the warmer machine. Per side and repetition:

* throughput: from one thread, submit N no-ops as fast as possible while the cluster drains;
  N / (first submit -> all N done), "done" polled every 50 ms with a COUNT;
* latency: one stamp task at a time, after a random 0-1 s pause (so arrivals do not phase-lock
  with the poll loop), measured from just before the trigger/enqueue call to the moment the task
  code began (the stamp task returns time.time(); same host, same clock).

The summary is the median over repetitions of each repetition's figure.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: bench/ is sys.path[0], the project is not

SIDES = ("taskdeck", "peer")
SETTINGS = {"taskdeck": "config.settings", "peer": "bench.peer_settings"}
LABELS = {"taskdeck": "Taskdeck", "peer": "django-q2"}

NOOP_TASK = "bench-noop"
STAMP_TASK = "bench-stamp"
WARM_UP_SAMPLES = 3
DONE_POLL = 0.05
SAMPLE_POLL = 0.01

GOAL_RATIO = 2.0
GOAL_RUNS_PER_S = 300.0
GOAL_P50_MS = 35.0

T = TypeVar("T")


class BenchError(RuntimeError):
    """The bench could not measure (a cluster died, a wait timed out, a run failed)."""


# --- Child: one side, one repetition ------------------------------------------------------------


class Side(Protocol):
    """What the measurements need from a side; everything else is shared."""

    def setup(self) -> None:
        """Create what submitting needs (Taskdeck: the task definitions)."""

    def submit_noop(self) -> None:
        """Trigger/enqueue one no-op run."""

    def noops_done(self, count: int) -> bool:
        """Whether all ``count`` submitted no-ops have been executed and recorded."""

    def submit_stamp(self) -> str:
        """Trigger/enqueue one stamp run; returns a handle for ``stamp_result``."""

    def stamp_result(self, handle: str) -> Sample | None:
        """The stamp run's start times once it ended, else None; raises if it failed."""

    def report(self, runs: int) -> dict[str, Any]:
        """Effective configuration and after-the-fact counts; ``problems`` lists what is off."""


@dataclass(frozen=True)
class Sample:
    began: float
    """Epoch seconds at which the task code began (its return value)."""
    recorded: float | None = None
    """Epoch seconds of the side's own recorded start, where it keeps one (Run.started_at)."""


#: Queue policy with room for every trigger: the benches measure admission, not refusal.
QUEUE_POLICY = {"on_overlap": "queue", "max_concurrent": 100_000, "queue_max": 100_000, "timeout": 60}


def definition(task_id: str, **fields: Any) -> dict[str, Any]:
    """A bench task's definition with ``QUEUE_POLICY``, checked as the definitions file's are."""
    from tasks_app.definitions.validate import build_definition
    from tasks_app.models import DefinitionSource

    return build_definition(task_id, {**QUEUE_POLICY, **fields}, source=DefinitionSource.FILE)


class TaskdeckSide:
    """Taskdeck's one trigger path, with the project's settings as they are."""

    noop_task = NOOP_TASK
    """The task ``submit_noop`` triggers and ``noops_done`` counts (bench/process.py switches it)."""

    def definitions(self) -> list[dict[str, Any]]:
        return [definition(NOOP_TASK, callable="bench.noop.noop"), definition(STAMP_TASK, callable="bench.noop.stamp")]

    def setup(self) -> None:
        from tasks_app import services

        services.sync_definitions(self.definitions())  # one call: a task left out of it is removed

    def submit_noop(self) -> None:
        self._trigger(self.noop_task)

    def noops_done(self, count: int) -> bool:
        from tasks_app.models import Run

        # Ended, not only completed, so a failure ends the wait; report() then shows it.
        return Run.objects.filter(task_id=self.noop_task).ended().count() >= count

    def submit_stamp(self) -> str:
        return str(self._trigger(STAMP_TASK).pk)

    def stamp_result(self, handle: str) -> Sample | None:
        from tasks_app.models import Run, RunStatus

        row = Run.objects.filter(pk=handle).values("status", "result", "started_at", "error").get()
        if row["status"] in (RunStatus.QUEUED, RunStatus.RUNNING):
            return None
        if row["status"] != RunStatus.COMPLETED:
            raise BenchError(f"stamp run {handle} ended {row['status']}: {row['error']}")
        return Sample(began=float(row["result"]), recorded=row["started_at"].timestamp())

    def report(self, runs: int) -> dict[str, Any]:
        from django.db.models import Count
        from django_q.models import OrmQ

        from tasks_app.models import Event, Run

        statuses = dict(Run.objects.filter(task_id=NOOP_TASK).values_list("status").annotate(n=Count("pk")))
        recorded = Run.objects.filter(task_id=NOOP_TASK, started_at__isnull=False, ended_at__isnull=False).count()
        problems = []
        if statuses != {"completed": runs}:
            problems.append(f"no-op runs by status {statuses}, expected {runs} completed")
        if recorded != runs:
            problems.append(f"{recorded} of {runs} no-op runs have both a start and an end time")
        return {
            **_cluster_config(),
            "noop_runs_by_status": statuses,
            "events": Event.objects.count(),
            "queue_rows_left": OrmQ.objects.count(),
            "problems": problems,
        }

    @staticmethod
    def _trigger(task_id: str) -> Any:
        from tasks_app import services
        from tasks_app.models import RunTrigger

        return services.trigger(task_id, source=RunTrigger.API, requested_by="bench")


class PeerSide:
    """Plain django-q2: ``async_task`` with no options, as its documentation shows it."""

    noop_callable = "bench.noop.noop_plain"
    """What ``submit_noop`` enqueues (bench/process.py switches it)."""

    def setup(self) -> None:
        pass

    def submit_noop(self) -> None:
        from django_q.tasks import async_task

        async_task(self.noop_callable)

    def noops_done(self, count: int) -> bool:
        # Out of the box django-q2 keeps only the newest 250 results (save_limit 250), so its
        # result rows cannot count 2,000 runs, and save_limit 0 would change the peer's work. Its
        # own end-of-run step does: the monitor deletes a task's queue row (acknowledges it) after
        # saving its result, so an empty queue after N submits means N executed and saved.
        from django_q.models import OrmQ

        return not OrmQ.objects.exists()

    def submit_stamp(self) -> str:
        from django_q.tasks import async_task

        return async_task("bench.noop.stamp_plain")

    def stamp_result(self, handle: str) -> Sample | None:
        from django_q.models import Task

        task = Task.objects.filter(id=handle).first()
        if task is None:
            return None
        if not task.success:
            raise BenchError(f"stamp task {handle} failed: {task.result}")
        return Sample(began=float(task.result))

    def report(self, runs: int) -> dict[str, Any]:
        from django_q.models import Failure, OrmQ, Success

        failures = Failure.objects.count()
        return {
            **_cluster_config(),
            "success_rows_kept": Success.objects.count(),
            "failures": failures,
            "queue_rows_left": OrmQ.objects.count(),
            "problems": [f"{failures} failed task(s)"] if failures else [],
        }


def _cluster_config() -> dict[str, Any]:
    """What the side actually ran with, read back from Django and django-q2, not assumed."""
    from django.conf import settings
    from django.db import connection
    from django_q.conf import Conf

    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            journal_mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
    else:
        journal_mode = f"({connection.vendor})"
    return {
        "settings": settings.SETTINGS_MODULE,
        "workers": Conf.WORKERS,
        "poll": Conf.POLL,
        "bulk": Conf.BULK,
        "save_limit": Conf.SAVE_LIMIT,
        "recycle": Conf.RECYCLE,
        "conn_max_age": settings.DATABASES["default"]["CONN_MAX_AGE"],
        "journal_mode": journal_mode,
    }


def die_with_parent() -> None:
    """In a child of the bench (a cluster, a supervisor, supervisord) before exec: Linux sends it
    SIGTERM if the bench process that started it dies."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the finally blocks still stop it on every normal exit path


class Cluster:
    """A long-running ``manage.py`` process (a worker cluster: ``worker`` or ``qcluster``; a
    ``supervisor``) in its own process group, output to a log file, stopped with it. ``env``: its
    environment (this process's by default)."""

    def __init__(self, log_path: Path, *, command: str, env: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        self.command = command
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return f"manage.py {self.command}"

    def __enter__(self) -> Cluster:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", self.command],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,
            )
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def check_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            code = self.process.returncode if self.process else None
            raise BenchError(f"{self.name} exited (code {code}); its log:\n{self.log_tail()}")

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM (django-q2 stops its workers, a supervisor its instances), then SIGKILL whatever
        of the group is left."""
        if self.process is None:
            return
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not cut the cleanup short
            signal.signal(sig, signal.SIG_IGN)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class Watched(Protocol):
    """What ``wait_for`` watches while it waits: a process that must stay up (a ``Cluster``), with
    a log to show when it did not."""

    @property
    def name(self) -> str:
        """What to call it in a message."""

    def check_alive(self) -> None:
        """Raise BenchError if it has exited."""

    def log_tail(self, lines: int = 40) -> str:
        """The end of its log."""


def wait_for(probe: Callable[[], T], *, timeout: float, interval: float, cluster: Watched, what: str) -> T:
    """Call ``probe`` every ``interval`` s until it returns something truthy; never wait forever."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        cluster.check_alive()
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:g} s waiting for {what}; {cluster.name}'s log:\n"
                             f"{cluster.log_tail()}")
        time.sleep(interval)


def measure_throughput(side: Side, runs: int, cluster: Cluster) -> dict[str, float]:
    """Submit ``runs`` no-ops back to back from this thread; the cluster drains meanwhile."""
    start = time.perf_counter()
    for _ in range(runs):
        side.submit_noop()
    submitted = time.perf_counter()
    wait_for(lambda: side.noops_done(runs), timeout=max(120.0, runs / 10), interval=DONE_POLL,
             cluster=cluster, what=f"{runs} no-op runs to finish")
    seconds = time.perf_counter() - start
    return {"runs_per_s": runs / seconds, "seconds": seconds, "submit_seconds": submitted - start}


def stamp_once(side: Side, cluster: Cluster, *, timeout: float = 30.0) -> tuple[float, Sample]:
    """One stamp run; returns the time just before its trigger/enqueue call and its sample."""
    before = time.time()
    handle = side.submit_stamp()
    sample = wait_for(lambda: side.stamp_result(handle), timeout=timeout, interval=SAMPLE_POLL,
                      cluster=cluster, what="a stamp run to finish")
    return before, sample


def measure_latency(side: Side, samples: int, cluster: Cluster, rng: random.Random) -> dict[str, list[float]]:
    """Trigger-to-start in ms, one run at a time after a random 0-1 s pause."""
    began: list[float] = []
    recorded: list[float] = []
    for _ in range(samples):
        time.sleep(rng.uniform(0.0, 1.0))
        before, sample = stamp_once(side, cluster)
        began.append((sample.began - before) * 1000)
        if sample.recorded is not None:
            recorded.append((sample.recorded - before) * 1000)
    return {"began_ms": began, "recorded_ms": recorded}


def side_main(args: argparse.Namespace) -> None:
    """Child process: measure one side once, print one JSON line on stdout."""
    import django

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally below stops qcluster
    django.setup()
    side: Side = TaskdeckSide() if args.side == "taskdeck" else PeerSide()
    side.setup()
    command = "worker" if args.side == "taskdeck" else "qcluster"
    with Cluster(Path(args.log), command=command) as cluster:
        # Readiness and warm-up at once: the first stamp runs prove the whole pipeline (broker,
        # pusher, worker, monitor) is up and have the workers import the bench's callables.
        stamp_once(side, cluster, timeout=60.0)
        for _ in range(WARM_UP_SAMPLES - 1):
            stamp_once(side, cluster)
        throughput = measure_throughput(side, args.runs, cluster)
        latency = measure_latency(side, args.latency_samples, cluster, random.Random(args.seed))
    result = {"side": args.side, "throughput": throughput, "latency": latency, "report": side.report(args.runs)}
    print(json.dumps(result), flush=True)


# --- Parent: orchestration and the summary ------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def side_env(side: str, database_url: str, workers: int) -> dict[str, str]:
    """The side's environment: its settings module and database; the rest as the caller has it.

    Taskdeck's tuning variables (TASKDECK_POLL, TASKDECK_BULK, CONN_MAX_AGE) pass through, so a
    tuning experiment is one environment variable away; the printout shows what each side used.
    """
    env = dict(os.environ)
    env.pop("REDIS_URL", None)  # both sides use the ORM broker on the same database
    env["DATABASE_URL"] = database_url
    env["DJANGO_SETTINGS_MODULE"] = SETTINGS[side]
    env["TASKDECK_WORKERS"] = str(workers)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


class Databases:
    """A fresh, migrated database for each side and repetition: a copy of a migrated SQLite file,
    or a PostgreSQL database made from a migrated template database (in the cluster DATABASE_URL
    names, which ``scripts/with-postgres`` starts)."""

    def __init__(self, kind: str, workdir: Path, workers: int) -> None:
        self.kind = kind
        self.workdir = workdir
        self.workers = workers
        self.made: list[str] = []
        if kind == "postgres":
            url = os.environ.get("DATABASE_URL", "")
            if not url.startswith("postgres"):
                raise BenchError("--database postgres needs DATABASE_URL; run it under scripts/with-postgres")
            self.server_url = url
        self._migrate(self.url("template"))

    def url(self, name: str) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.workdir / f'{name}.sqlite3'}"
        from urllib.parse import urlsplit, urlunsplit

        return urlunsplit(urlsplit(self.server_url)._replace(path=f"/bench_{name.replace('-', '_')}"))

    def fresh(self, name: str) -> str:
        """A new database named ``name``, a copy of the migrated template."""
        if self.kind == "sqlite":
            shutil.copyfile(self.workdir / "template.sqlite3", self.workdir / f"{name}.sqlite3")
        else:
            self._sql(f"CREATE DATABASE bench_{name.replace('-', '_')} TEMPLATE bench_template")
            self.made.append(f"bench_{name.replace('-', '_')}")
        return self.url(name)

    def _migrate(self, url: str) -> None:
        if self.kind == "postgres":
            self._sql("DROP DATABASE IF EXISTS bench_template")
            self._sql("CREATE DATABASE bench_template")
            self.made.append("bench_template")
        completed = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"],
            cwd=ROOT, env=side_env("taskdeck", url, self.workers), capture_output=True, text=True,
        )
        if completed.returncode:
            raise BenchError(f"migrate failed:\n{completed.stdout}\n{completed.stderr}")

    def _sql(self, statement: str) -> None:
        import psycopg
        from urllib.parse import parse_qs, urlsplit

        parts = urlsplit(self.server_url)
        with psycopg.connect(dbname=parts.path.lstrip("/"), user=parts.username, autocommit=True,
                             host=parse_qs(parts.query).get("host", [parts.hostname])[0]) as connection:
            connection.execute(statement)

    def drop_all(self) -> None:
        for name in reversed(self.made):
            try:
                self._sql(f"DROP DATABASE IF EXISTS {name}")
            except Exception as error:  # cleanup: report, never mask the bench's own outcome
                print(f"(could not drop {name}: {error})", file=sys.stderr)


@contextmanager
def running(argv: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """A side child; whatever happens here, it is stopped before we go on (it stops its qcluster)."""
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def run_side(side: str, database_url: str, log: Path, args: argparse.Namespace, seed: int) -> dict[str, Any]:
    argv = [
        sys.executable, str(Path(__file__).resolve()), "--side", side, "--log", str(log),
        "--runs", str(args.runs), "--latency-samples", str(args.latency_samples), "--seed", str(seed),
    ]
    return run_child(side, argv, side_env(side, database_url, args.workers), timeout=args.side_timeout)


def run_child(side: str, argv: list[str], env: dict[str, str], *, timeout: float) -> dict[str, Any]:
    """Run one side's child to its end; its last line of output is its JSON result."""
    with running(argv, env) as process:
        stdout, _ = process.communicate(timeout=timeout)
    if process.returncode:
        raise BenchError(f"the {side} side failed (exit code {process.returncode}); see its output above")
    return json.loads(stdout.strip().splitlines()[-1])


def summarize_repetition(result: dict[str, Any]) -> dict[str, float]:
    latency = result["latency"]
    return {
        "runs_per_s": result["throughput"]["runs_per_s"],
        "p50": percentile(latency["began_ms"], 0.50),
        "p95": percentile(latency["began_ms"], 0.95),
        "recorded_p50": percentile(latency["recorded_ms"], 0.50),
        "recorded_p95": percentile(latency["recorded_ms"], 0.95),
    }


def print_repetition(rep: int, side: str, result: dict[str, Any], figures: dict[str, float]) -> None:
    throughput = result["throughput"]
    line = (
        f"rep {rep + 1} {LABELS[side]:<9} {figures['runs_per_s']:7.1f} runs/s "
        f"({throughput['seconds']:.2f} s, submits took {throughput['submit_seconds']:.2f} s)   "
        f"latency p50 {figures['p50']:6.1f} ms  p95 {figures['p95']:6.1f} ms"
    )
    if result["latency"]["recorded_ms"]:
        line += f"   (to Run.started_at: p50 {figures['recorded_p50']:.1f} ms, p95 {figures['recorded_p95']:.1f} ms)"
    print(line, flush=True)
    for problem in result["report"]["problems"]:
        print(f"      WARNING: {problem}", flush=True)


def print_config(results: dict[str, dict[str, Any]]) -> None:
    for side, result in results.items():
        report = dict(result["report"])
        report.pop("problems")
        config = {key: report.pop(key) for key in ("settings", "workers", "poll", "bulk", "save_limit",
                                                   "recycle", "conn_max_age", "journal_mode")}
        print(f"  {LABELS[side]:<9} " + ", ".join(f"{key} {value}" for key, value in config.items()))
        print(f"  {'':<9} checks (last repetition): " + ", ".join(f"{key} {value}" for key, value in report.items()))


def print_summary(figures: dict[str, list[dict[str, float]]], repeats: int) -> None:
    def median(side: str, key: str) -> float:
        return statistics.median(rep[key] for rep in figures[side])

    print(f"\nMedian of {repeats} repetition(s)     {'Taskdeck':>10} {'django-q2':>10} {'ratio':>8}")
    rows = (("throughput (runs/s)", "runs_per_s"), ("latency p50 (ms)", "p50"), ("latency p95 (ms)", "p95"))
    for label, key in rows:
        ours, theirs = median("taskdeck", key), median("peer", key)
        print(f"{label:<30} {ours:10.1f} {theirs:10.1f} {ours / theirs:7.2f}x")
    print(f"{'Taskdeck to Run.started_at':<30} p50 {median('taskdeck', 'recorded_p50'):.1f} ms, "
          f"p95 {median('taskdeck', 'recorded_p95'):.1f} ms")

    ours, theirs = median("taskdeck", "runs_per_s"), median("peer", "runs_per_s")
    throughput_ok = ours >= GOAL_RATIO * theirs and ours >= GOAL_RUNS_PER_S
    latency_ok = median("taskdeck", "p50") <= GOAL_P50_MS
    print(f"\nGoal: throughput >= {GOAL_RATIO:g}x django-q2 and >= {GOAL_RUNS_PER_S:g} runs/s: "
          f"{'met' if throughput_ok else 'NOT met'}; p50 latency <= {GOAL_P50_MS:g} ms: "
          f"{'met' if latency_ok else 'NOT met'}")


class Repetitions:
    """The parent's loop of a bench whose sides each run in a child of their own: for each database
    kind (``--database``), ``--repeats`` repetitions of every side, each on a fresh database, the
    sides alternating which goes first. As a context manager it owns the work folder and the
    databases, removed however the bench ends (unless ``--keep``), and turns a BenchError or
    Ctrl-C into the exit code ``code``."""

    def __init__(self, args: argparse.Namespace, *, prefix: str) -> None:
        self.args = args
        self.kinds = ["sqlite", "postgres"] if args.database == "both" else [args.database]
        self.workdir = Path(tempfile.mkdtemp(prefix=prefix))
        self.code = 0
        self._seeds = random.Random(args.seed)
        self._databases: list[Databases] = []

    def __enter__(self) -> Repetitions:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: Any) -> bool:
        if isinstance(error, BenchError):
            print(f"bench failed: {error}", file=sys.stderr)
            self.code = 1
        elif isinstance(error, KeyboardInterrupt):
            print("interrupted", file=sys.stderr)
            self.code = 130
        for made in self._databases:
            if made.kind == "postgres":
                made.drop_all()
        if self.args.keep:
            print(f"(databases and cluster logs kept in {self.workdir})", file=sys.stderr)
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return self.code != 0

    def sides(self, kind: str) -> Iterator[tuple[int, str, str, Path, int]]:
        """(repetition, side, database URL, cluster log, seed) for every side of every repetition
        on database ``kind``, each database made as its turn comes."""
        databases = Databases(kind, self.workdir, self.args.workers)
        self._databases.append(databases)
        for rep in range(self.args.repeats):
            for side in SIDES if rep % 2 == 0 else SIDES[::-1]:
                yield (rep, side, databases.fresh(f"{side}-{rep + 1}"), self.workdir / f"{kind}-{side}-{rep + 1}.cluster.log",
                       self._seeds.randrange(2**32))


def parent_main(args: argparse.Namespace) -> int:
    with Repetitions(args, prefix="taskdeck-bench-") as bench:
        print(f"{args.runs} no-op runs per side, {args.repeats} repetition(s), {args.latency_samples} latency "
              f"samples each, {args.workers} workers, {' and '.join(bench.kinds)}; throughput from the first submit "
              f"to all done; latency from just before the trigger/enqueue call to the task code's start.", flush=True)
        summaries: dict[str, dict[str, list[dict[str, float]]]] = {}
        for kind in bench.kinds:
            print(f"\n--- {kind} ---", flush=True)
            figures: dict[str, list[dict[str, float]]] = {side: [] for side in SIDES}
            last: dict[str, dict[str, Any]] = {}
            for rep, side, url, log, seed in bench.sides(kind):
                result = run_side(side, url, log, args, seed)
                figures[side].append(summarize_repetition(result))
                print_repetition(rep, side, result, figures[side][-1])
                last[side] = result
            print("\nConfiguration read back from each side:")
            print_config({side: last[side] for side in SIDES})
            print_summary(figures, args.repeats)
            summaries[kind] = figures
        if len(summaries) > 1:
            print_side_by_side(summaries)
    return bench.code


def print_side_by_side(summaries: dict[str, dict[str, list[dict[str, float]]]]) -> None:
    """Each database's medians in one table: Taskdeck and django-q2 on SQLite and on PostgreSQL."""
    columns = [(kind, side) for kind in summaries for side in SIDES]
    print("\nSide by side (medians)          " + "".join(f"{LABELS[side] + ' ' + kind:>22}" for kind, side in columns))
    for label, key in (("throughput (runs/s)", "runs_per_s"), ("latency p50 (ms)", "p50"), ("latency p95 (ms)", "p95")):
        values = [statistics.median(rep[key] for rep in summaries[kind][side]) for kind, side in columns]
        print(f"{label:<32}" + "".join(f"{value:22.1f}" for value in values))


def add_repetition_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``Repetitions`` and of the side children, shared by the benches that use them."""
    parser.add_argument("--repeats", type=int, default=3, help="Repetitions; the summary is their median.")
    parser.add_argument("--workers", type=int, default=2, help="django-q2 workers, both sides.")
    parser.add_argument("--database", choices=["sqlite", "postgres", "both"], default="sqlite",
                        help="postgres (or both) needs DATABASE_URL: run under scripts/with-postgres.")
    parser.add_argument("--seed", type=int, default=None, help="Seed the random pauses (reproducible runs).")
    parser.add_argument("--side-timeout", type=float, default=900.0, help=argparse.SUPPRESS)
    parser.add_argument("--keep", action="store_true", help="Keep the databases and cluster logs.")
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)  # internal: one side, one repetition
    parser.add_argument("--log", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)  # the parent's folder (Repetitions.workdir)
    parser.add_argument("--rep", type=int, default=0, help=argparse.SUPPRESS)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2000, help="No-op runs per side and repetition.")
    parser.add_argument("--latency-samples", type=int, default=30, help="Latency samples per side and repetition.")
    add_repetition_arguments(parser)
    return parser.parse_args()


def run_bench(args: argparse.Namespace, *, side_main: Callable[[argparse.Namespace], None],
              parent_main: Callable[[argparse.Namespace], int]) -> int:
    """A bench's process: with ``--side``, one side's child; otherwise the parent."""
    if args.side:
        try:
            side_main(args)
        except BenchError as error:
            print(f"{args.side} side: {error}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 130  # the parent reports it
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # finally blocks run: children stop
    return parent_main(args)


if __name__ == "__main__":
    sys.exit(run_bench(parse_args(), side_main=side_main, parent_main=parent_main))
