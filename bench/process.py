#!/usr/bin/env python
"""Command tasks against their peers: a process per run, its output captured, its group stopped.

Run from the project root::

    .venv/bin/python bench/process.py [--runs 500] [--repeats 3] [--supervisord PATH]
    scripts/with-postgres .venv/bin/python bench/process.py --database both --supervisord PATH

``--supervisord`` names a supervisord installed in an environment of the bench's own (``make
bench`` makes one in var/), never the project's. As bench/throughput.py does, each repetition
starts one child process per side, each with a fresh database (SQLite, or with ``--database
postgres`` a PostgreSQL database made from a migrated template) and, where it needs one, a real
cluster of ``--workers`` workers; the sides alternate which goes first. Three measurements:

1. **Spawn.** ``--runs`` command runs of ``true`` (argv, no shell) triggered back to back from one
   thread while the cluster drains (``manage.py worker``, the project's settings), and as many
   python no-op runs (throughput.py's), in alternating order; runs/s from the first trigger to
   all ended. The peer: raw django-q2 out of the box (``qcluster``, bench/peer_settings.py), as
   many ``async_task`` calls of a function that runs ``subprocess.run(["true"])``. Then
   ``--latency-samples`` runs of each, one at a time after a random 0-0.5 s pause, from just
   before the trigger/enqueue call to the side's record of the end seen (polled every 10 ms: the
   Run ended; django-q2's result row saved). What a command costs over a no-op is shown as wall
   time per run (from the two rates) and as the median started -> ended time of a run inside a
   worker.
2. **Log capture.** One command run of bench/logs.py's CHILD, writing ``--megabytes`` of text lines
   to stdout, from just before the trigger to the run seen ended (a run ends after its log is
   stored); the log is then read back and compared with the program's output, byte for byte.
   Its cap is above the output, so every byte is kept, as supervisord keeps every byte. Beside
   it, in the peer's child: the same program as a supervisord program with ``stdout_logfile``
   (from supervisord's start to the file holding every byte), and the floor, its stdout a file
   (``> file``). Meanwhile the resident memory of every process of the worker's process group
   (the keeper, django-q2's sentinel, pusher, monitor and workers; not the command, which has a
   group of its own) is sampled every 0.1 s, as it is through the whole child.
3. **Stop.** ``--cancels`` runs of ``sleep 300`` (argv: SIGTERM ends it), each cancelled with
   ``services.cancel_run`` a random 0-1 s after its pid was recorded (so cancels fall anywhere in
   the watchdog's 0.5 s look at stop requests); from just before the call to its return, to the
   process group gone (no live member left in /proc: a zombie runs nothing), to its group id free
   (the worker reaped the leader), and to the run seen ended. The floor, in the peer's child:
   ``sleep 300`` started in a session of its own and sent SIGTERM directly, to its group gone.

The summary is the median over repetitions of each repetition's figure; the load average is
printed with every repetition, since the machine may be shared.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: bench/ is sys.path[0], the project is not

from bench.logs import CHILD, floor, supervised  # noqa: E402 (after the path above)
from bench.throughput import (  # noqa: E402
    LABELS, NOOP_TASK, SIDES, WARM_UP_SAMPLES, BenchError, Cluster, PeerSide, Repetitions, TaskdeckSide,
    add_repetition_arguments, definition, measure_throughput, percentile, run_bench, run_child, side_env, stamp_once,
    wait_for,
)

TRUE_TASK = "bench-true"
FLOOD_TASK = "bench-flood"
SLEEP_TASK = "bench-sleep"
SLEEP_ARGV = ["sleep", "300"]

END_POLL = 0.01
GONE_POLL = 0.001
RSS_EVERY = 0.1
GROUP_SCAN_EVERY = 1.0

GOAL_RATIO = 2.0
GOAL_EXTRA_MS = 5.0
GOAL_RSS_MB = 150.0


# --- Child: one side, one repetition ------------------------------------------------------------


class TaskdeckCommands(TaskdeckSide):
    """throughput.py's Taskdeck side with the bench's command tasks beside its python ones."""

    def __init__(self, *, flood: list[str], flood_bytes: int) -> None:
        self.flood = flood
        self.flood_bytes = flood_bytes
        self.ended_before = 0
        """Runs of ``noop_task`` that had ended before the burst (warm-up runs)."""

    def definitions(self) -> list[dict[str, Any]]:
        return [
            *super().definitions(),
            definition(TRUE_TASK, kind="command", argv=["true"]),
            definition(FLOOD_TASK, kind="command", argv=self.flood, timeout=600,
                       log_max_size=2 * self.flood_bytes),  # nothing dropped: every byte is stored
            definition(SLEEP_TASK, kind="command", argv=SLEEP_ARGV),
        ]

    def noops_done(self, count: int) -> bool:
        return super().noops_done(self.ended_before + count)

    def ended_count(self, task_id: str) -> int:
        from tasks_app.models import Run

        return Run.objects.filter(task_id=task_id).ended().count()

    def trigger(self, task_id: str) -> str:
        return str(self._trigger(task_id).pk)

    def ended(self, handle: str) -> dict[str, Any] | None:
        """The run's end as recorded, once it ended."""
        from tasks_app.models import Run

        return (Run.objects.filter(pk=handle).ended()
                .values("id", "status", "end_reason", "exit_code", "exit_signal", "error").first())

    def running_pid(self, handle: str) -> int | None:
        """The pid of the run's process once it runs."""
        from tasks_app.models import Run, RunStatus

        return Run.objects.filter(pk=handle, status=RunStatus.RUNNING).values_list("pid", flat=True).first()

    def run_ms(self, task_id: str, *, since: datetime) -> list[float]:
        """started_at -> ended_at of each run created since ``since``: its time inside a worker,
        from its claim to its recorded end."""
        from tasks_app.models import Run

        times = Run.objects.filter(task_id=task_id, created_at__gte=since).ended().values_list("started_at", "ended_at")
        return [(ended - started).total_seconds() * 1000 for started, ended in times]

    def problems(self, *, runs: int, latency_samples: int) -> list[str]:
        """What is off in the spawn runs: each ``true`` and no-op run must have completed."""
        from django.db.models import Count

        from tasks_app.models import Run

        found = []
        for task_id, count in ((TRUE_TASK, runs + 1 + latency_samples), (NOOP_TASK, runs + latency_samples)):
            statuses = dict(Run.objects.filter(task_id=task_id).values_list("status").annotate(n=Count("pk")))
            if statuses != {"completed": count}:
                found.append(f"{task_id} runs by status {statuses}, expected {count} completed")
        return found


class PeerCommands(PeerSide):
    """throughput.py's peer, enqueueing a function that runs ``true``."""

    noop_callable = "bench.noop.true_plain"

    def trigger(self, function: str) -> str:
        from django_q.tasks import async_task

        return async_task(function)

    def ended(self, handle: str) -> dict[str, Any] | None:
        from django_q.models import Task

        return Task.objects.filter(id=handle).values("success", "result").first()


def time_to_end(side: TaskdeckCommands | PeerCommands, task: str, cluster: Cluster,
                *, timeout: float = 30.0) -> tuple[float, dict[str, Any]]:
    """One run of ``task`` (a task id; the peer: a function), alone: ms from just before its
    trigger/enqueue call to its end seen recorded."""
    before = time.perf_counter()
    handle = side.trigger(task)
    row = wait_for(lambda: side.ended(handle), timeout=timeout, interval=END_POLL, cluster=cluster,
                   what=f"a {task} run to end")
    return (time.perf_counter() - before) * 1000, row


def serial_latency(side: TaskdeckCommands | PeerCommands, tasks: list[str], samples: int, cluster: Cluster,
                   rng: random.Random) -> dict[str, list[float]]:
    """``samples`` runs of each task, one at a time, the tasks taking turns."""
    latency: dict[str, list[float]] = {task: [] for task in tasks}
    for _ in range(samples):
        for task in tasks:
            time.sleep(rng.uniform(0.0, 0.5))
            latency[task].append(time_to_end(side, task, cluster)[0])
    return latency


class GroupMemory(threading.Thread):
    """Samples the resident memory of every process of process group ``group_id`` every
    ``RSS_EVERY`` s (the members looked up again every ``GROUP_SCAN_EVERY`` s, so a recycled
    worker is seen); keeps, per ``phase``, the largest process's peak and the group's total peak."""

    def __init__(self, group_id: int) -> None:
        super().__init__(name="bench-rss", daemon=True)
        self.group_id = group_id
        self.phase = "start"
        self.peaks: dict[str, dict[str, float]] = {}
        self._done = threading.Event()

    def __enter__(self) -> GroupMemory:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self.join()

    def run(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        members: list[int] = []
        scanned_at = float("-inf")
        while not self._done.wait(RSS_EVERY):
            if time.monotonic() - scanned_at >= GROUP_SCAN_EVERY:
                members, scanned_at = group_members(self.group_id), time.monotonic()
            sizes = [size for size in (resident(pid, page) for pid in members) if size]
            if not sizes:
                continue
            peak = self.peaks.setdefault(self.phase, {"process_mb": 0.0, "total_mb": 0.0, "processes": 0})
            peak["process_mb"] = max(peak["process_mb"], max(sizes) / 1e6)
            peak["total_mb"] = max(peak["total_mb"], sum(sizes) / 1e6)
            peak["processes"] = max(peak["processes"], len(sizes))


def resident(pid: int, page: int) -> int:
    """Bytes of ``pid`` in memory now; 0 if it has gone."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * page
    except (OSError, IndexError, ValueError):
        return 0


def process_state(pid: int) -> tuple[bytes, int] | None:
    """``pid``'s state letter and process group; None once it has gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[2])


def group_members(group_id: int) -> list[int]:
    """The pids of process group ``group_id``, zombies included."""
    members = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            state = process_state(int(entry.name))
            if state is not None and state[1] == group_id:
                members.append(int(entry.name))
    return members


def group_gone(group_id: int, members: list[int]) -> bool:
    """Whether none of ``members`` still runs in group ``group_id`` (a zombie runs nothing)."""
    for pid in members:
        state = process_state(pid)
        if state is not None and state[0] != b"Z" and state[1] == group_id:
            return False
    return True


def group_id_free(group_id: int) -> bool:
    """Whether the kernel has no process left in the group, zombies included (what
    ``os.killpg(group, 0)`` tells)."""
    try:
        os.killpg(group_id, 0)
    except ProcessLookupError:
        return True
    return False


def wait_gone(group_id: int, members: list[int], *, since: float, timeout: float = 30.0) -> dict[str, float]:
    """Poll every ``GONE_POLL`` s until the group is gone and its id free; ms since ``since``."""
    marks: dict[str, float] = {}
    deadline = since + timeout
    while len(marks) < 2:
        now = time.perf_counter()
        if "gone_ms" not in marks and group_gone(group_id, members):
            marks["gone_ms"] = (now - since) * 1000
        if "reaped_ms" not in marks and group_id_free(group_id):
            marks["reaped_ms"] = (now - since) * 1000
        if now > deadline:
            raise BenchError(f"process group {group_id} still there {timeout:g} s after its stop")
        time.sleep(GONE_POLL)
    return marks


def measure_stops(side: TaskdeckCommands, count: int, cluster: Cluster, rng: random.Random) -> dict[str, Any]:
    """``count`` runs of ``sleep 300``, each cancelled once its process runs."""
    from tasks_app import services
    from tasks_app.models import EndReason

    figures: dict[str, list[float]] = {"call_ms": [], "gone_ms": [], "reaped_ms": [], "ended_ms": []}
    problems = []
    for _ in range(count):
        handle = side.trigger(SLEEP_TASK)
        group = wait_for(lambda: side.running_pid(handle), timeout=30.0, interval=END_POLL, cluster=cluster,
                         what="a sleep run's process to start")
        time.sleep(rng.uniform(0.0, 1.0))
        members = group_members(group)
        before = time.perf_counter()
        services.cancel_run(handle)
        called = time.perf_counter()
        marks = {"call_ms": (called - before) * 1000, **wait_gone(group, members, since=before)}
        row = wait_for(lambda: side.ended(handle), timeout=30.0, interval=END_POLL, cluster=cluster,
                       what="a cancelled run to end")
        marks["ended_ms"] = (time.perf_counter() - before) * 1000
        for key, value in marks.items():
            figures[key].append(value)
        if (row["end_reason"], row["exit_signal"]) != (EndReason.CANCELLED, "SIGTERM"):
            problems.append(f"a cancelled sleep run ended {row['end_reason']} ({row['exit_signal']}): {row['error']}")
    return {**figures, "problems": problems}


def stop_floor(count: int) -> list[float]:
    """``sleep 300`` in a session of its own, SIGTERM to its group, ms to the group gone."""
    figures = []
    for _ in range(count):
        # SIGTERM at its default action: once a Cluster stopped, this process ignores it, and an
        # ignored signal stays ignored across exec.
        process = subprocess.Popen(SLEEP_ARGV, start_new_session=True,
                                   preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))
        try:
            time.sleep(0.05)
            members = group_members(process.pid)
            before = time.perf_counter()
            os.killpg(process.pid, signal.SIGTERM)
            while not group_gone(process.pid, members):
                if time.perf_counter() - before > 10.0:
                    raise BenchError(f"{' '.join(SLEEP_ARGV)} still there 10 s after SIGTERM")
                time.sleep(GONE_POLL)
            figures.append((time.perf_counter() - before) * 1000)
        finally:
            process.kill()
            process.wait()
    return figures


def output_digest(program: Path, total: int) -> str:
    """The SHA-256 of what ``program`` writes: what the run's stored log must match."""
    digest = hashlib.sha256()
    process = subprocess.Popen([sys.executable, str(program), str(total)], stdout=subprocess.PIPE)
    assert process.stdout is not None
    while data := process.stdout.read(1024 * 1024):
        digest.update(data)
    if process.wait():
        raise BenchError(f"{program} exited {process.returncode}")
    return digest.hexdigest()


def stored_log(run_id: str) -> dict[str, Any]:
    """The run's stored log read back: its size, its chunks, and its SHA-256; the chunks must
    follow one another with no gap."""
    from tasks_app.models import RunLogChunk
    from tasks_app.models.logs import unpack

    digest = hashlib.sha256()
    size = chunks = compressed = 0
    rows = (RunLogChunk.objects.filter(run_id=run_id).order_by("end")
            .values_list("start", "end", "data", "compressed").iterator(chunk_size=8))
    for start, end, data, packed in rows:
        data = unpack(data, compressed=packed)
        if start != size or end - start != len(data):
            raise BenchError(f"run {run_id}'s log has a chunk [{start}, {end}) of {len(data)} bytes after {size}")
        digest.update(data)
        size, chunks, compressed = end, chunks + 1, compressed + packed
    return {"bytes": size, "chunks": chunks, "compressed_chunks": compressed, "sha256": digest.hexdigest()}


def measure_flood(side: TaskdeckCommands, cluster: Cluster, *, program: Path, total: int) -> dict[str, Any]:
    """One run writing ``total`` bytes of lines; MB/s from the trigger to the run seen ended."""
    milliseconds, row = time_to_end(side, FLOOD_TASK, cluster, timeout=600.0)
    stored = stored_log(str(row["id"]))
    problems = []
    if (row["end_reason"], row["exit_code"]) != ("success", 0):
        problems.append(f"the flood run ended {row['end_reason']} (exit code {row['exit_code']}): {row['error']}")
    if stored["sha256"] != output_digest(program, total):
        problems.append(f"the stored log ({stored['bytes']:,} bytes) differs from the program's output ({total:,})")
    return {"seconds": milliseconds / 1000, "mb_per_s": total / 1e6 / (milliseconds / 1000),
            "stored": stored, "problems": problems}


def taskdeck_main(args: argparse.Namespace, rng: random.Random) -> dict[str, Any]:
    from tasks_app import clock

    program = Path(args.workdir) / "child.py"
    total = int(args.megabytes * 1_000_000)
    side = TaskdeckCommands(flood=[sys.executable, str(program), str(total)], flood_bytes=total)
    side.setup()
    with Cluster(Path(args.log), command="worker") as cluster, GroupMemory(cluster.process.pid) as memory:
        # Readiness and warm-up: the pipeline is up, the workers imported the callables, and a
        # first command run has started a process.
        for _ in range(WARM_UP_SAMPLES):
            stamp_once(side, cluster, timeout=60.0)
        time_to_end(side, TRUE_TASK, cluster)
        memory.phase = "spawn"
        bursts = {}
        for task_id in (TRUE_TASK, NOOP_TASK)[::1 if args.rep % 2 == 0 else -1]:
            side.noop_task, side.ended_before, since = task_id, side.ended_count(task_id), clock.now()
            bursts[task_id] = {**measure_throughput(side, args.runs, cluster),
                               "run_ms": side.run_ms(task_id, since=since)}
        latency = serial_latency(side, [TRUE_TASK, NOOP_TASK], args.latency_samples, cluster, rng)
        memory.phase = "log"
        flood = measure_flood(side, cluster, program=program, total=total)
        memory.phase = "stop"
        stops = measure_stops(side, args.cancels, cluster, rng)
    return {
        "side": "taskdeck",
        "true": {**bursts[TRUE_TASK], "latency_ms": latency[TRUE_TASK]},
        "noop": {**bursts[NOOP_TASK], "latency_ms": latency[NOOP_TASK]},
        "log": flood,
        "memory": memory.peaks,
        "stop": stops,
        "problems": side.problems(runs=args.runs, latency_samples=args.latency_samples) + flood["problems"] + stops["problems"],
    }


def peer_main(args: argparse.Namespace, rng: random.Random) -> dict[str, Any]:
    from django_q.models import Failure

    side = PeerCommands()
    with Cluster(Path(args.log), command="qcluster") as cluster:
        for _ in range(WARM_UP_SAMPLES):
            stamp_once(side, cluster, timeout=60.0)
        time_to_end(side, side.noop_callable, cluster)
        burst = measure_throughput(side, args.runs, cluster)
        latency = serial_latency(side, [side.noop_callable], args.latency_samples, cluster, rng)[side.noop_callable]
    failures = Failure.objects.count()
    folder = Path(tempfile.mkdtemp(prefix="peer-", dir=args.workdir))
    total = int(args.megabytes * 1_000_000)
    log = {"floor_seconds": floor(total, folder)}
    (folder / "floor.log").unlink()
    if args.supervisord:
        log["supervisord_seconds"] = supervised(total, folder, args.supervisord)
        (folder / "supervised.log").unlink()
    return {
        "side": "peer",
        "true": {**burst, "latency_ms": latency},
        "log": log,
        "stop": {"floor_ms": stop_floor(args.cancels)},
        "problems": [f"{failures} failed task(s)"] if failures else [],
    }


def side_main(args: argparse.Namespace) -> None:
    """Child process: measure one side once, print one JSON line on stdout."""
    import django

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally blocks stop the cluster
    django.setup()
    rng = random.Random(args.seed)
    result = taskdeck_main(args, rng) if args.side == "taskdeck" else peer_main(args, rng)
    print(json.dumps(result), flush=True)


# --- Parent: orchestration and the summary ------------------------------------------------------


def figures_of(result: dict[str, Any]) -> dict[str, float]:
    """One repetition's figures of one side."""
    true = result["true"]
    figures = {"true_runs_per_s": true["runs_per_s"], "true_p50": percentile(true["latency_ms"], 0.5),
               "true_p95": percentile(true["latency_ms"], 0.95)}
    if result["side"] == "peer":
        log, stop = result["log"], result["stop"]
        figures["floor_seconds"] = log["floor_seconds"]
        if "supervisord_seconds" in log:
            figures["supervisord_seconds"] = log["supervisord_seconds"]
        return {**figures, "floor_stop_p50": percentile(stop["floor_ms"], 0.5),
                "floor_stop_p95": percentile(stop["floor_ms"], 0.95)}
    noop, stop, memory = result["noop"], result["stop"], result["memory"]
    figures.update({
        "noop_runs_per_s": noop["runs_per_s"], "noop_p50": percentile(noop["latency_ms"], 0.5),
        "noop_p95": percentile(noop["latency_ms"], 0.95),
        "true_run_ms": statistics.median(true["run_ms"]), "noop_run_ms": statistics.median(noop["run_ms"]),
        "log_seconds": result["log"]["seconds"],
        "log_rss_process": memory.get("log", {}).get("process_mb", 0.0),
        "log_rss_total": memory.get("log", {}).get("total_mb", 0.0),
        "rss_process": max(peak["process_mb"] for peak in memory.values()),
        "rss_total": max(peak["total_mb"] for peak in memory.values()),
    })
    for key in ("call_ms", "gone_ms", "reaped_ms", "ended_ms"):
        figures[f"stop_{key}_p50"] = percentile(stop[key], 0.5)
        figures[f"stop_{key}_p95"] = percentile(stop[key], 0.95)
    return figures


def print_repetition(rep: int, result: dict[str, Any], figures: dict[str, float], total: int) -> None:
    side = result["side"]
    head = f"rep {rep + 1} {LABELS[side]:<9}"
    if side == "peer":
        log = f"floor {total / 1e6 / figures['floor_seconds']:.0f} MB/s"
        if "supervisord_seconds" in figures:
            log = f"supervisord {total / 1e6 / figures['supervisord_seconds']:.1f} MB/s, " + log
        print(f"{head} true {figures['true_runs_per_s']:6.1f} runs/s (p50 {figures['true_p50']:.1f} ms)   {log}   "
              f"stop floor p50 {figures['floor_stop_p50']:.1f} ms", flush=True)
    else:
        print(f"{head} true {figures['true_runs_per_s']:6.1f} runs/s (p50 {figures['true_p50']:.1f} ms), "
              f"no-op {figures['noop_runs_per_s']:.1f} runs/s (p50 {figures['noop_p50']:.1f} ms)   "
              f"log {total / 1e6 / figures['log_seconds']:.1f} MB/s, RSS peak {figures['log_rss_process']:.1f} MB   "
              f"stop p50 {figures['stop_gone_ms_p50']:.0f} ms, p95 {figures['stop_gone_ms_p95']:.0f} ms", flush=True)
    print(f"      (load average {load_average()})", flush=True)
    for problem in result["problems"]:
        print(f"      WARNING: {problem}", flush=True)


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def print_summary(figures: dict[str, list[dict[str, float]]], args: argparse.Namespace,
                  last: dict[str, dict[str, Any]]) -> dict[str, float]:
    """The medians, side by side with ratios and goals; returns them."""
    total = int(args.megabytes * 1_000_000)
    medians = {f"{side}.{key}": statistics.median(rep[key] for rep in figures[side])
               for side in SIDES for key in figures[side][0]}
    ours, peer = (lambda key: medians[f"taskdeck.{key}"]), (lambda key: medians[f"peer.{key}"])
    ratio = ours("true_runs_per_s") / peer("true_runs_per_s")
    wall_ms = 1000 / ours("true_runs_per_s") - 1000 / ours("noop_runs_per_s")
    worker_ms = ours("true_run_ms") - ours("noop_run_ms")
    print(f"\nMedians of {args.repeats} repetition(s)                 Taskdeck  django-q2     ratio")
    print(f"spawn: `true` (runs/s)                      {ours('true_runs_per_s'):9.1f} {peer('true_runs_per_s'):10.1f} "
          f"{ratio:8.2f}x   goal >= {GOAL_RATIO:g}x: {met(ratio >= GOAL_RATIO)}")
    for label, key in (("trigger -> ended p50 (ms)", "true_p50"), ("trigger -> ended p95 (ms)", "true_p95")):
        print(f"       {label:<36} {ours(key):9.1f} {peer(key):10.1f} {ours(key) / peer(key):8.2f}x")
    print(f"spawn: python no-op (runs/s)                {ours('noop_runs_per_s'):9.1f}")
    print(f"       trigger -> ended p50 / p95 (ms)      {ours('noop_p50'):9.1f} / {ours('noop_p95'):.1f}")
    print(f"       command - no-op, per run: {wall_ms:+.2f} ms of wall time ({args.workers} workers)   goal <= "
          f"{GOAL_EXTRA_MS:g} ms: {met(wall_ms <= GOAL_EXTRA_MS)};  inside a worker (median started -> ended): "
          f"`true` {ours('true_run_ms'):.2f} ms, no-op {ours('noop_run_ms'):.2f} ms, {worker_ms:+.2f} ms")

    taskdeck_mbps = total / 1e6 / ours("log_seconds")
    floor_mbps = total / 1e6 / peer("floor_seconds")
    line = f"\nlog: {args.megabytes:g} MB of lines   Taskdeck {taskdeck_mbps:.1f} MB/s ({ours('log_seconds'):.2f} s)"
    if "peer.supervisord_seconds" in medians:
        supervisord_mbps = total / 1e6 / peer("supervisord_seconds")
        line += (f", supervisord {supervisord_mbps:.1f} MB/s ({taskdeck_mbps / supervisord_mbps:.2f}x)   "
                 f"goal >= supervisord: {met(taskdeck_mbps >= supervisord_mbps)}")
    print(line + f";  floor (> file) {floor_mbps:.0f} MB/s ({taskdeck_mbps / floor_mbps:.2f}x)")
    stored = last["taskdeck"]["log"]["stored"]
    print(f"     stored (last repetition): {stored['bytes']:,} bytes in {stored['chunks']} chunks "
          f"({stored['compressed_chunks']} compressed), checked against the program's output")
    print(f"     worker processes' RSS peak while capturing: largest {ours('log_rss_process'):.1f} MB   goal < "
          f"{GOAL_RSS_MB:g} MB: {met(ours('log_rss_process') < GOAL_RSS_MB)};  the group together "
          f"{ours('log_rss_total'):.1f} MB (a sum of RSS: shared pages count in each);  through the whole child: largest {ours('rss_process'):.1f} MB, "
          f"together {ours('rss_total'):.1f} MB")

    print(f"\nstop: {args.cancels} cancels of `sleep 300`      p50 (ms)  p95 (ms)")
    for label, key in (("cancel_run's call itself", "stop_call_ms"), ("cancel_run -> group gone", "stop_gone_ms"),
                       ("cancel_run -> group id free (reaped)", "stop_reaped_ms"),
                       ("cancel_run -> run seen ended", "stop_ended_ms")):
        print(f"      {label:<36} {ours(key + '_p50'):8.1f}  {ours(key + '_p95'):8.1f}")
    print(f"      {'floor: killpg -> group gone':<36} {peer('floor_stop_p50'):8.1f}  {peer('floor_stop_p95'):8.1f}")
    return medians


def met(condition: bool) -> str:
    return "met" if condition else "NOT met"


def run_side(side: str, database_url: str, workdir: Path, log: Path, args: argparse.Namespace,
             rep: int, seed: int) -> dict[str, Any]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--side", side, "--log", str(log),
            "--workdir", str(workdir), "--rep", str(rep), "--seed", str(seed), "--runs", str(args.runs),
            "--latency-samples", str(args.latency_samples), "--megabytes", str(args.megabytes),
            "--cancels", str(args.cancels), "--supervisord", args.supervisord]
    return run_child(side, argv, side_env(side, database_url, args.workers), timeout=args.side_timeout)


def parent_main(args: argparse.Namespace) -> int:
    total = int(args.megabytes * 1_000_000)
    with Repetitions(args, prefix="taskdeck-bench-process-") as bench:
        print(f"{args.runs} runs of `true` per side (and as many python no-ops), {args.latency_samples} latency "
              f"samples; {args.megabytes:g} MB of log lines; {args.cancels} cancels; {args.workers} workers, "
              f"{args.repeats} repetition(s), {' and '.join(bench.kinds)}.\nsupervisord: "
              f"{args.supervisord or '(not measured: --supervisord)'}", flush=True)
        (bench.workdir / "child.py").write_text(CHILD)
        medians: dict[str, dict[str, float]] = {}
        for kind in bench.kinds:
            print(f"\n--- {kind} (load average {load_average()}) ---", flush=True)
            figures: dict[str, list[dict[str, float]]] = {side: [] for side in SIDES}
            last: dict[str, dict[str, Any]] = {}
            for rep, side, url, log, seed in bench.sides(kind):
                result = run_side(side, url, bench.workdir, log, args, rep, seed)
                figures[side].append(figures_of(result))
                print_repetition(rep, result, figures[side][-1], total)
                last[side] = result
            medians[kind] = print_summary(figures, args, last)
        if len(medians) > 1:
            print_side_by_side(medians, total)
        print(f"\n(load average at the end {load_average()})")
    return bench.code


def print_side_by_side(medians: dict[str, dict[str, float]], total: int) -> None:
    """Each database's medians in one table."""
    kinds = list(medians)
    rows: list[tuple[str, Callable[[dict[str, float]], float]]] = [
        ("`true` runs/s, Taskdeck", lambda m: m["taskdeck.true_runs_per_s"]),
        ("`true` runs/s, django-q2", lambda m: m["peer.true_runs_per_s"]),
        ("python no-op runs/s, Taskdeck", lambda m: m["taskdeck.noop_runs_per_s"]),
        ("`true` trigger -> ended p50 ms, Taskdeck", lambda m: m["taskdeck.true_p50"]),
        ("`true` trigger -> ended p50 ms, django-q2", lambda m: m["peer.true_p50"]),
        ("log MB/s, Taskdeck", lambda m: total / 1e6 / m["taskdeck.log_seconds"]),
        ("worker RSS peak MB (largest process)", lambda m: m["taskdeck.log_rss_process"]),
        ("stop p50 ms (to group gone)", lambda m: m["taskdeck.stop_gone_ms_p50"]),
        ("stop p95 ms (to group gone)", lambda m: m["taskdeck.stop_gone_ms_p95"]),
    ]
    print("\nSide by side (medians)                    " + "".join(f"{kind:>12}" for kind in kinds))
    for label, value in rows:
        print(f"{label:<42}" + "".join(f"{value(medians[kind]):12.1f}" for kind in kinds))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=500, help="`true` runs (and python no-ops) per side and repetition.")
    parser.add_argument("--latency-samples", type=int, default=20, help="One-at-a-time runs of each, per repetition.")
    parser.add_argument("--megabytes", type=float, default=200, help="Output of the log capture's program.")
    parser.add_argument("--cancels", type=int, default=20, help="Cancelled `sleep 300` runs per repetition.")
    parser.add_argument("--supervisord", default="", help="A supervisord executable (the log capture's peer).")
    add_repetition_arguments(parser)
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(run_bench(parse_args(), side_main=side_main, parent_main=parent_main))
