#!/usr/bin/env python
"""Service tasks against supervisord: restart latency, 200 instances, and a takeover.

Run from the project root::

    .venv/bin/python bench/services.py --supervisord PATH [--repeats 3]
    scripts/with-postgres .venv/bin/python bench/services.py --database both --supervisord PATH

``--supervisord`` names a supervisord installed in an environment of the bench's own (``make
bench`` makes one in var/), never the project's. As bench/process.py does, each repetition runs
one child process per side, the sides alternating which goes first; Taskdeck's child has a fresh
database (SQLite, or with ``--database postgres`` a PostgreSQL database made from a migrated
template), loads its services as ``manage.py tasks sync`` does (a definitions file, written per
measurement) and runs real ``manage.py supervisor`` processes; supervisord's child runs
supervisord in the foreground with the same programs. Three measurements:

1. **Restart latency.** One instance of ``bash -c`` writing the realtime clock
   (``$EPOCHREALTIME``) twice on one line, as it starts and just before it exits, and nothing else
   (no fork of its own): the time from one instance's last stamp to the next one's first is the
   time from an exit to the next start, the program's own start (exec, bash's ~1 ms) included on
   both sides. Taskdeck: ``restart = "always"``, ``restart_backoff = "constant"``,
   ``restart_delay = 0``, ``start_retries`` a million (the instance is never healthy, so every
   exit adds to its streak). supervisord: ``autorestart=true``, ``startsecs=0``: a process that
   exits before ``startsecs`` is a failed start and goes through BACKOFF (1 s, 2 s, ... then
   FATAL after ``startretries``), so with 0 every exit is a plain exit, restarted at once, with no
   backoff: both sides restart immediately and forever, which is what makes them comparable.
   Beside them, the floor: the same program started again by a bare loop as soon as the last one
   is reaped (``subprocess.run``, no supervisor). ``--restarts`` restarts for Taskdeck,
   ``--peer-restarts`` for supervisord, after ``WARM_UP_RESTARTS``. supervisord's loop waits up
   to 1 s in ``select`` between two turns, and spawns at the turn after the one that reaped the
   exit: a restart comes 1 s after the exit when the pipe's end woke it with the process already
   reaped, 2 s when not, about half and half, so its median is either (the mean is printed too).
2. **Scale.** ``--instances`` instances of ``sleep infinity`` under one supervisor, in services
   of ``--per-service`` instances (the most a service has is 64; 200 as 4 services of 50, each
   ``healthy_after = 1``), against supervisord with as many programs of ``numprocs`` 50 each
   (``startsecs=1``). From just before the supervisor's process is started: to every ``sleep``
   running (live children of the supervisor named ``sleep``, from /proc every 50 ms; Taskdeck's
   include Django's start-up, ~1 s); to each side's record of all of them up (Taskdeck: every
   instance row ``running``, i.e. healthy; supervisord: its log's "entered RUNNING state" lines).
   Then, after a 2 s pause, ``--idle-seconds`` of idle: the supervisor's CPU (utime + stime of
   /proc/<pid>/stat, every thread) as a share of one core, and its RSS (VmRSS; VmHWM its peak)
   at the end; on PostgreSQL also the CPU of the server processes serving the supervisor's
   connections (its queries' other half). Then SIGTERM, and the time until the supervisor has
   stopped every instance and exited; no ``sleep`` may outlive it (one that does is killed and
   reported).
3. **Takeover** (Taskdeck only: supervisord has no peer to take over from). One service of
   ``--takeover-instances`` instances (``echo "$TASKDECK_INSTANCE_INDEX $$" >> file; exec sleep
   infinity``), two ``manage.py supervisor`` processes on one database with
   ``TASKDECK_LEASE_TTL`` = ``--lease-ttl`` and ``TASKDECK_SUPERVISOR_INTERVAL`` =
   ``--interval``. Once both have written a heartbeat and every instance runs, after a random
   pause of up to one interval, the one holding most leases gets SIGKILL (its instances die with
   it: its keeper kills them); from just before the kill to every instance running again as a
   child of the other (from /proc every 10 ms). At every look no instance may run twice. Then
   its leases must all be the survivor's and the dead one's runs must have ended ``crashed``.
   Two cases:

   * *same host*: a supervisor takes over the leases of a holder on its own host whose process is
     gone at once (services/leases.py), without waiting for them to expire;
   * *another host*, simulated: a third supervisor starts, and once it is up the survivor (which
     now holds every lease) has its lease rows' ``host``, and its running runs' ``worker_host``,
     set to another host's name by an UPDATE, then gets SIGKILL. The third can no longer see
     that the holder died (it looks at a holder's pid only on its own host), so it waits for the
     leases to expire, as a supervisor on another machine would. What this does not simulate:
     a clock or network between two machines, nor a host cut off but alive (its instances would
     run on there; here they die with their supervisor, as on a machine whose supervisor was
     killed). The holder renews its leases by its owner name,
     which the UPDATE leaves alone, so until the kill it keeps them as before. The time from
     the kill to the leases' expiry (their ``expires_at``, read just after the kill) is printed
     beside it.

The summary is the median over repetitions of each repetition's figure (restart p50 and p95 are
each repetition's percentiles); the load average is printed with every repetition, since the
machine may be shared. Goals (issue 15): restart latency at most supervisord's; idle CPU under 2 %
of one core and RSS under 120 MB with 200 instances; takeover within ``TASKDECK_LEASE_TTL`` + 5 s.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: bench/ is sys.path[0], the project is not

from bench.logs import Supervisord  # noqa: E402 (after the path above)
from bench.process import load_average, met  # noqa: E402
from bench.throughput import (  # noqa: E402
    SIDES, BenchError, Cluster, Repetitions, Watched, add_repetition_arguments, percentile, run_bench, run_child,
    side_env, wait_for,
)

LABELS = {"taskdeck": "Taskdeck", "peer": "supervisord"}

RESTART_TASK = "bench-restart"
SCALE_TASK = "bench-sleep-{number}"
TAKEOVER_TASK = "bench-takeover"
OTHER_HOST = "another-host.bench.invalid"
"""The host name the cross-host case gives the holder's leases (an .invalid name: no real host)."""

WARM_UP_RESTARTS = 5
PROC_POLL = 0.05
TAKEOVER_POLL = 0.01
RECORDED_POLL = 0.1
SETTLE = 2.0
HEALTHY_AFTER = 1
"""Taskdeck's ``healthy_after`` and supervisord's ``startsecs`` in the scale and takeover runs."""

GOAL_IDLE_CPU = 2.0
GOAL_RSS_MB = 120.0
GOAL_TAKEOVER_EXTRA = 5.0


# --- Processes, as /proc shows them -------------------------------------------------------------


@dataclass(frozen=True)
class ProcessStat:
    name: str
    """Its command's name (``comm``): ``sleep`` once the instance's launcher has exec'd it."""
    state: str
    parent: int
    cpu_ticks: int
    """utime + stime of every thread, in clock ticks."""


def process_stat(pid: int) -> ProcessStat | None:
    """``pid`` as /proc/<pid>/stat shows it; None once it has gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            head, tail = stat.read().rsplit(b")", 1)
    except (OSError, ValueError):
        return None
    fields = tail.split()  # from the state on: field 3 of proc(5) is fields[0]
    return ProcessStat(name=head.split(b"(", 1)[1].decode(errors="replace"), state=fields[0].decode(),
                       parent=int(fields[1]), cpu_ticks=int(fields[11]) + int(fields[12]))


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie runs nothing)."""
    stat = process_stat(pid)
    return stat is not None and stat.state != "Z"


def children_named(parent: int, name: str) -> list[int]:
    """The live children of ``parent`` whose command is ``name``."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = process_stat(int(entry.name))
            if stat is not None and stat.parent == parent and stat.name == name and stat.state != "Z":
                found.append(int(entry.name))
    return found


def memory(pid: int) -> dict[str, float]:
    """``pid``'s resident memory now and at its peak (MB), and its thread count."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {"rss_mb": int(status["VmRSS"].split()[0]) * 1024 / 1e6,
            "peak_rss_mb": int(status["VmHWM"].split()[0]) * 1024 / 1e6, "threads": int(status["Threads"])}


def cpu_ticks(pids: list[int]) -> int:
    return sum(stat.cpu_ticks for stat in map(process_stat, pids) if stat is not None)


def idle_usage(pid: int, seconds: float, *, others: list[int]) -> dict[str, float]:
    """CPU of ``pid`` (and of ``others``) over ``seconds`` of nothing happening, as % of one core;
    ``pid``'s memory at the end."""
    tick = os.sysconf("SC_CLK_TCK")
    before, before_others, began = cpu_ticks([pid]), cpu_ticks(others), time.perf_counter()
    time.sleep(seconds)
    used, used_others = cpu_ticks([pid]) - before, cpu_ticks(others) - before_others
    elapsed = time.perf_counter() - began
    return {"cpu_percent": 100 * used / tick / elapsed, "others_cpu_percent": 100 * used_others / tick / elapsed,
            **memory(pid)}


def outlived(pids: list[int]) -> list[str]:
    """Problems: any of ``pids`` still running after its supervisor exited (each is killed)."""
    left = [pid for pid in pids if alive(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return [f"{len(left)} instance process(es) outlived their supervisor (killed: {left[:10]})"] if left else []


class Watching:
    """Several processes watched as one by ``wait_for`` (the supervisors of the takeover, which
    share one log)."""

    def __init__(self, *processes: Watched) -> None:
        self.processes = processes

    @property
    def name(self) -> str:
        return " and ".join(process.name for process in self.processes)

    def check_alive(self) -> None:
        for process in self.processes:
            process.check_alive()

    def log_tail(self, lines: int = 40) -> str:
        return self.processes[0].log_tail(lines)


# --- The restart program ------------------------------------------------------------------------


def restart_argv(starts: Path) -> list[str]:
    """bash writing the realtime clock as it starts and again as it is about to exit, on one
    line, with no process of its own: its start, then its end, to the microsecond."""
    return ["bash", "-c", f'start=$EPOCHREALTIME; echo "$start $EPOCHREALTIME" >> {shlex.quote(str(starts))}']


def lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def restart_gaps(starts: Path, *, count: int) -> list[float]:
    """ms from each instance's end stamp to the next one's start stamp: ``count`` of them, after
    ``WARM_UP_RESTARTS``."""
    stamps = [tuple(map(float, line.split())) for line in starts.read_text().splitlines()]
    gaps = [(stamps[i + 1][0] - stamps[i][1]) * 1000 for i in range(WARM_UP_RESTARTS, len(stamps) - 1)]
    if len(gaps) < count:
        raise BenchError(f"{len(gaps)} restarts in {starts}, {count} wanted")
    return gaps[:count]


def wait_restarts(starts: Path, count: int, watched: Watched, *, seconds_each: float) -> None:
    needed = WARM_UP_RESTARTS + count + 1
    wait_for(lambda: lines(starts) >= needed, timeout=30 + needed * seconds_each, interval=0.05, cluster=watched,
             what=f"{needed} starts of the restart program")


def restart_floor(folder: Path, count: int) -> list[float]:
    """The program started again as soon as the last one is reaped, by a bare loop."""
    starts = folder / "floor-starts"
    for _ in range(WARM_UP_RESTARTS + count + 1):
        subprocess.run(restart_argv(starts), check=True)
    return restart_gaps(starts, count=count)


# --- Scale: shared by both sides ----------------------------------------------------------------


def instance_counts(instances: int, per_service: int) -> list[int]:
    """``instances`` split in services (programs) of ``per_service``; the last may have fewer."""
    return [min(per_service, instances - start) for start in range(0, instances, per_service)]


def measure_scale(watched: Watched, pid: int, began: float, *, count: int, recorded: Callable[[], bool],
                  idle_seconds: float, others: Callable[[], list[int]]) -> tuple[dict[str, float], list[int]]:
    """From ``began`` (just before supervisor ``pid`` was started): to its ``count``-th ``sleep``
    running, and to ``recorded`` (the side's own record of all up); then
    its idle usage. Returns the figures and the ``sleep`` processes' pids."""
    deadline = began + 120 + count * 0.5
    while True:
        running = children_named(pid, "sleep")
        now = time.perf_counter()
        if len(running) >= count:
            break
        watched.check_alive()
        if now > deadline:
            raise BenchError(f"{len(running)} of {count} instances running after {now - began:.0f} s; "
                             f"{watched.name}'s log:\n{watched.log_tail()}")
        time.sleep(PROC_POLL)
    all_up = now - began
    wait_for(recorded, timeout=120.0, interval=RECORDED_POLL, cluster=watched,
             what=f"the record of all {count} instances running")
    recorded_s = time.perf_counter() - began
    time.sleep(SETTLE)
    idle = idle_usage(pid, idle_seconds, others=others())
    return {"all_up_s": all_up, "recorded_s": recorded_s, **idle}, running


def stop_timed(stop: Callable[[], None]) -> float:
    began = time.perf_counter()
    stop()
    return time.perf_counter() - began


# --- Taskdeck's child ---------------------------------------------------------------------------


def load_services(path: Path, tables: dict[str, dict[str, Any]]) -> None:
    """Write ``tables`` as a definitions file's services and load it as ``manage.py tasks sync``
    does: in one call, so the bench's services of an earlier measurement are removed."""
    from tasks_app import services
    from tasks_app.definitions.load import all_definitions

    text = []
    for task_id, fields in tables.items():  # JSON's strings, arrays, numbers and booleans are TOML's
        text += [f"[tasks.{task_id}]", *(f"{key} = {json.dumps(value)}" for key, value in
                                          {"kind": "service", **fields}.items()), ""]
    path.write_text("\n".join(text))
    services.sync_definitions(all_definitions(path))


def taskdeck_restarts(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    from tasks_app.models import InstanceState, Run, ServiceInstance

    starts = folder / "restart-starts"
    load_services(folder / "restart.toml", {RESTART_TASK: {
        "argv": restart_argv(starts), "restart": "always", "restart_backoff": "constant", "restart_delay": 0,
        "start_retries": 1_000_000}})
    with Cluster(Path(args.log), command="supervisor") as supervisor:
        wait_restarts(starts, args.restarts, supervisor, seconds_each=0.5)
    problems = []
    state = ServiceInstance.objects.filter(task_id=RESTART_TASK).values_list("state", flat=True).first()
    if state == InstanceState.FATAL:
        problems.append("the restart instance went fatal")
    runs = Run.objects.filter(task_id=RESTART_TASK).count()
    if runs < lines(starts):
        problems.append(f"{lines(starts)} starts of the restart program but {runs} runs recorded")
    return {"gaps_ms": restart_gaps(starts, count=args.restarts), "runs": runs, "problems": problems}


def database_backends() -> list[int]:
    """PostgreSQL: the server processes of this database's other connections (the supervisor's:
    its queries' other half of the work); none on SQLite."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
        return [pid for (pid,) in cursor.fetchall()]


def taskdeck_scale(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    from tasks_app.models import InstanceState, ServiceInstance

    counts = instance_counts(args.instances, args.per_service)
    tables = {SCALE_TASK.format(number=number): {"argv": ["sleep", "infinity"], "instances": count,
                                                 "healthy_after": HEALTHY_AFTER}
              for number, count in enumerate(counts, start=1)}
    load_services(folder / "scale.toml", tables)

    def recorded() -> bool:
        rows = ServiceInstance.objects.filter(task_id__in=list(tables), state=InstanceState.RUNNING)
        return rows.count() >= args.instances

    began = time.perf_counter()
    with Cluster(Path(args.log), command="supervisor") as supervisor:
        assert supervisor.process is not None
        figures, pids = measure_scale(supervisor, supervisor.process.pid, began, count=args.instances,
                                      recorded=recorded, idle_seconds=args.idle_seconds, others=database_backends)
        figures["stop_s"] = stop_timed(lambda: supervisor.stop(grace=120.0))
        problems = [] if supervisor.process.returncode == 0 else [
            f"the supervisor did not stop by itself within 120 s (exit {supervisor.process.returncode})"]
    return {**figures, "services": len(counts), "problems": problems + outlived(pids)}


def started(starts: Path) -> list[tuple[int, int]]:
    """(instance index, pid) of every instance start, from the lines the instances wrote."""
    text = starts.read_text() if starts.exists() else ""
    return [(int(index), int(pid)) for index, pid in  # whole lines only: one may be on its way
            (line.split() for line in text[:text.rfind("\n") + 1].splitlines())]


def live_instances(starts: Path) -> dict[int, tuple[int, int]]:
    """Instance index -> (pid, parent pid) of every instance process running now; BenchError if
    an index runs twice."""
    running: dict[int, tuple[int, int]] = {}
    for index, pid in started(starts):
        stat = process_stat(pid)
        if stat is None or stat.state == "Z":
            continue
        if index in running:
            raise BenchError(f"instance {index} runs twice: pids {running[index][0]} and {pid}")
        running[index] = (pid, stat.parent)
    return running


def under(starts: Path, supervisor: Cluster, count: int) -> bool:
    """Whether all ``count`` instances run, each a child of ``supervisor``."""
    assert supervisor.process is not None
    running = live_instances(starts)
    return len(running) == count and all(parent == supervisor.process.pid for _, parent in running.values())


def up(supervisor: Cluster) -> bool:
    """Whether ``supervisor`` has been through a first look at the database (its heartbeat)."""
    from tasks_app.models import Heartbeat, HeartbeatRole

    assert supervisor.process is not None
    return Heartbeat.objects.filter(role=HeartbeatRole.SUPERVISOR, pid=supervisor.process.pid).exists()


def lease_holders() -> dict[int, int]:
    """Supervisor pid -> how many of the takeover service's leases it holds."""
    from django.db.models import Count

    from tasks_app.models import Lease

    return dict(Lease.objects.filter(name__startswith=f"service:{TAKEOVER_TASK}:").values_list("pid")
                .annotate(held=Count("name")))


def move_to_another_host(pid: int) -> None:
    """The cross-host case: supervisor ``pid``'s lease rows and running runs say it runs on
    another host (see the module's docstring)."""
    from tasks_app.models import Lease, Run, RunStatus, RunTrigger

    Lease.objects.filter(pid=pid, name__startswith=f"service:{TAKEOVER_TASK}:").update(host=OTHER_HOST)
    Run.objects.filter(task_id=TAKEOVER_TASK, trigger=RunTrigger.SUPERVISOR, status=RunStatus.RUNNING,
                       worker_pid=pid).update(worker_host=OTHER_HOST)


def kill_and_time(victim: Cluster, survivor: Cluster, *, starts: Path, count: int, args: argparse.Namespace,
                  rng: random.Random) -> dict[str, Any]:
    """SIGKILL ``victim``; seconds until every instance runs under ``survivor``."""
    from django.db.models import Max

    from tasks_app.models import EndReason, Lease, Run, RunStatus

    assert victim.process is not None and survivor.process is not None
    lost_runs = list(Run.objects.filter(task_id=TAKEOVER_TASK, status=RunStatus.RUNNING,
                                        worker_pid=victim.process.pid).values_list("pk", flat=True))
    time.sleep(rng.uniform(0.0, args.interval))
    killed_at = time.time()
    began = time.perf_counter()
    victim.process.send_signal(signal.SIGKILL)
    victim.process.wait()  # reaped: a zombie's pid would still look alive to the survivor
    expires = Lease.objects.filter(pid=victim.process.pid).aggregate(latest=Max("expires_at"))["latest"]
    wait_for(lambda: under(starts, survivor, count), timeout=args.lease_ttl + 60, interval=TAKEOVER_POLL,
             cluster=survivor, what=f"all {count} instances running under the survivor")
    seconds = time.perf_counter() - began
    problems = []
    holders = lease_holders()
    if holders != {survivor.process.pid: count}:
        problems.append(f"after the takeover the leases are held by {holders}, not all by the survivor")
    ends = list(Run.objects.filter(pk__in=lost_runs).values_list("status", "end_reason"))
    if not lost_runs or set(ends) != {(RunStatus.FAILED, EndReason.CRASHED)}:
        problems.append(f"the killed supervisor's {len(lost_runs)} runs ended {sorted(set(ends))}, "
                        f"not all failed/crashed")
    return {"seconds": seconds, "to_expiry_s": expires.timestamp() - killed_at if expires else None,
            "problems": problems}


def taskdeck_takeover(args: argparse.Namespace, folder: Path, rng: random.Random) -> dict[str, Any]:
    count = args.takeover_instances
    starts = folder / "takeover-starts"
    load_services(folder / "takeover.toml", {TAKEOVER_TASK: {
        "command": f'echo "$TASKDECK_INSTANCE_INDEX $$" >> {shlex.quote(str(starts))}; exec sleep infinity',
        "instances": count, "healthy_after": HEALTHY_AFTER}})
    env = {**os.environ, "TASKDECK_LEASE_TTL": f"{args.lease_ttl:g}", "TASKDECK_SUPERVISOR_INTERVAL": f"{args.interval:g}"}
    with ExitStack() as stack:
        def supervisor() -> Cluster:
            return stack.enter_context(Cluster(Path(args.log), command="supervisor", env=env))

        first, second = supervisor(), supervisor()
        wait_for(lambda: up(first) and up(second) and len(live_instances(starts)) == count, timeout=120.0,
                 interval=PROC_POLL, cluster=Watching(first, second), what=f"two supervisors up and {count} instances")
        holders = lease_holders()
        victim, survivor = sorted((first, second), key=lambda cluster: -holders.get(cluster.process.pid, 0))
        victim_held = holders.get(victim.process.pid, 0)
        same_host = kill_and_time(victim, survivor, starts=starts, count=count, args=args, rng=rng)

        third = supervisor()
        wait_for(lambda: up(third), timeout=120.0, interval=PROC_POLL, cluster=Watching(survivor, third),
                 what="a third supervisor up")
        move_to_another_host(survivor.process.pid)
        other_host = kill_and_time(survivor, third, starts=starts, count=count, args=args, rng=rng)
        third.stop(grace=60.0)
    return {"same_host": same_host, "other_host": other_host, "victim_held": victim_held,
            "problems": same_host["problems"] + other_host["problems"] + outlived([pid for _, pid in started(starts)])}


def taskdeck_main(args: argparse.Namespace, folder: Path, rng: random.Random) -> dict[str, Any]:
    restart = taskdeck_restarts(args, folder)
    scale = taskdeck_scale(args, folder)
    takeover = taskdeck_takeover(args, folder, rng)
    return {"side": "taskdeck", "restart": restart, "scale": scale, "takeover": takeover,
            "problems": restart["problems"] + scale["problems"] + takeover["problems"]}


# --- supervisord's child ------------------------------------------------------------------------


RESTART_PROGRAM = """
[program:restart]
command={command}
autorestart=true
startsecs=0
redirect_stderr=true
"""
SLEEP_PROGRAM = """
[program:sleep-{number}]
command=sleep infinity
numprocs={count}
process_name=%(program_name)s-%(process_num)02d
startsecs={startsecs}
redirect_stderr=true
"""


def peer_restarts(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    starts = folder / "restart-starts"
    with Supervisord(args.supervisord, folder, RESTART_PROGRAM.format(command=shlex.join(restart_argv(starts)))) as daemon:
        wait_restarts(starts, args.peer_restarts, daemon, seconds_each=3.0)
    return {"gaps_ms": restart_gaps(starts, count=args.peer_restarts)}


def peer_scale(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    counts = instance_counts(args.instances, args.per_service)
    programs = "".join(SLEEP_PROGRAM.format(number=number, count=count, startsecs=HEALTHY_AFTER)
                       for number, count in enumerate(counts, start=1))
    log = folder / "supervisord.log"

    def recorded() -> bool:
        return log.read_text(errors="replace").count("entered RUNNING state") >= args.instances

    began = time.perf_counter()
    with Supervisord(args.supervisord, folder, programs) as daemon:
        assert daemon.process is not None
        figures, pids = measure_scale(daemon, daemon.process.pid, began, count=args.instances, recorded=recorded,
                                      idle_seconds=args.idle_seconds, others=list)
        figures["stop_s"] = stop_timed(lambda: daemon.stop(timeout=120.0))
        problems = [] if daemon.process.returncode == 0 else [
            f"supervisord did not stop by itself within 120 s (exit {daemon.process.returncode})"]
    return {**figures, "services": len(counts), "problems": problems + outlived(pids)}


def peer_main(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    for name in ("restart", "scale"):
        (folder / name).mkdir()
    restart = peer_restarts(args, folder / "restart")
    floor = restart_floor(folder, args.restarts)
    scale = peer_scale(args, folder / "scale")
    return {"side": "peer", "restart": restart, "floor": {"gaps_ms": floor}, "scale": scale,
            "problems": scale["problems"]}


def side_main(args: argparse.Namespace) -> None:
    """Child process: measure one side once, print one JSON line on stdout."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally blocks stop the supervisors
    folder = Path(tempfile.mkdtemp(prefix=f"{args.side}-{args.rep + 1}-", dir=args.workdir))
    if args.side == "taskdeck":
        import django

        django.setup()
        result = taskdeck_main(args, folder, random.Random(args.seed))
    else:
        result = peer_main(args, folder)
    print(json.dumps(result), flush=True)


# --- Parent: orchestration and the summary ------------------------------------------------------


SCALE_KEYS = ("all_up_s", "recorded_s", "cpu_percent", "others_cpu_percent", "rss_mb", "peak_rss_mb", "threads",
              "stop_s")


def figures_of(result: dict[str, Any]) -> dict[str, float]:
    """One repetition's figures of one side."""
    gaps = result["restart"]["gaps_ms"]
    figures = {"restart_p50": percentile(gaps, 0.5), "restart_p95": percentile(gaps, 0.95),
               "restart_mean": statistics.mean(gaps),
               **{f"scale_{key}": result["scale"][key] for key in SCALE_KEYS}}
    if result["side"] == "peer":
        floor = result["floor"]["gaps_ms"]
        return {**figures, "floor_p50": percentile(floor, 0.5), "floor_p95": percentile(floor, 0.95)}
    takeover = result["takeover"]
    return {**figures, "same_host_s": takeover["same_host"]["seconds"], "other_host_s": takeover["other_host"]["seconds"],
            "other_host_expiry_s": takeover["other_host"]["to_expiry_s"] or float("nan")}


def print_repetition(rep: int, result: dict[str, Any], figures: dict[str, float]) -> None:
    side = result["side"]
    line = (f"rep {rep + 1} {LABELS[side]:<11} restart p50 {figures['restart_p50']:7.1f} ms, p95 "
            f"{figures['restart_p95']:7.1f} ms ({len(result['restart']['gaps_ms'])})   "
            f"{result['scale']['services']} x {'services' if side == 'taskdeck' else 'programs'}: all up "
            f"{figures['scale_all_up_s']:.2f} s, idle CPU {figures['scale_cpu_percent']:.2f} %, "
            f"RSS {figures['scale_rss_mb']:.1f} MB")
    if side == "peer":
        line += f"   floor p50 {figures['floor_p50']:.1f} ms"
    else:
        line += (f"   takeover: same host {figures['same_host_s']:.2f} s, another host {figures['other_host_s']:.2f} s "
                 f"(leases expired {figures['other_host_expiry_s']:.2f} s after the kill)")
    print(line, flush=True)
    print(f"      (load average {load_average()})", flush=True)
    for problem in result["problems"]:
        print(f"      WARNING: {problem}", flush=True)


def print_summary(figures: dict[str, list[dict[str, float]]], args: argparse.Namespace, kind: str) -> dict[str, float]:
    """The medians, side by side with ratios and goals; returns them."""
    medians = {f"{side}.{key}": statistics.median(rep[key] for rep in figures[side])
               for side in SIDES for key in figures[side][0]}
    ours, peer = (lambda key: medians[f"taskdeck.{key}"]), (lambda key: medians[f"peer.{key}"])

    def row(label: str, key: str, unit: str = "", goal: str = "") -> None:
        print(f"{label:<50} {ours(key):10.2f} {peer(key):12.2f} {ours(key) / peer(key):8.2f}x{unit}   {goal}".rstrip())

    print(f"\nMedians of {args.repeats} repetition(s), {kind}{'':<21} Taskdeck  supervisord     ratio")
    print(f"restart: exit -> next start ({args.restarts} restarts; supervisord {args.peer_restarts})")
    row("  p50 (ms)", "restart_p50", goal=f"goal <= supervisord: {met(ours('restart_p50') <= peer('restart_p50'))}")
    row("  p95 (ms)", "restart_p95")
    row("  mean (ms; supervisord's are 1 s or 2 s, its median either)", "restart_mean")
    print(f"  floor, a bare loop: p50 {peer('floor_p50'):.2f} ms, p95 {peer('floor_p95'):.2f} ms")
    counts = instance_counts(args.instances, args.per_service)
    print(f"scale: {args.instances} x `sleep infinity` ({len(counts)} services / programs of {args.per_service})")
    row("  start -> all running (s)", "scale_all_up_s")
    row(f"  start -> all recorded up ({HEALTHY_AFTER} s healthy / startsecs) (s)", "scale_recorded_s")
    row(f"  idle CPU, % of one core ({args.idle_seconds:g} s)", "scale_cpu_percent",
        goal=f"goal < {GOAL_IDLE_CPU:g} %: {met(ours('scale_cpu_percent') < GOAL_IDLE_CPU)}")
    if ours("scale_others_cpu_percent"):
        print(f"  + PostgreSQL's processes serving it, idle: {ours('scale_others_cpu_percent'):.2f} % of one core")
    row("  RSS idle (MB)", "scale_rss_mb", goal=f"goal < {GOAL_RSS_MB:g} MB: {met(ours('scale_rss_mb') < GOAL_RSS_MB)}")
    row("  RSS peak (MB)", "scale_peak_rss_mb")
    row("  threads", "scale_threads")
    row("  SIGTERM -> all stopped, supervisor exited (s)", "scale_stop_s")
    limit = args.lease_ttl + GOAL_TAKEOVER_EXTRA
    print(f"takeover: {args.takeover_instances} instances, TASKDECK_LEASE_TTL {args.lease_ttl:g} s, interval "
          f"{args.interval:g} s; SIGKILL -> every instance running under the other supervisor")
    print(f"  same host (the dead holder's pid seen gone)        {ours('same_host_s'):10.2f} s   goal <= {limit:g} s: "
          f"{met(ours('same_host_s') <= limit)}")
    print(f"  another host (simulated: the TTL path)             {ours('other_host_s'):10.2f} s   goal <= {limit:g} s: "
          f"{met(ours('other_host_s') <= limit)}   (kill -> leases' expiry {ours('other_host_expiry_s'):.2f} s)")
    return medians


def run_side(side: str, database_url: str, workdir: Path, log: Path, args: argparse.Namespace,
             rep: int, seed: int) -> dict[str, Any]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--side", side, "--log", str(log),
            "--workdir", str(workdir), "--rep", str(rep), "--seed", str(seed), "--supervisord", args.supervisord,
            "--restarts", str(args.restarts), "--peer-restarts", str(args.peer_restarts),
            "--instances", str(args.instances), "--per-service", str(args.per_service),
            "--idle-seconds", str(args.idle_seconds), "--takeover-instances", str(args.takeover_instances),
            "--lease-ttl", str(args.lease_ttl), "--interval", str(args.interval)]
    return run_child(side, argv, side_env(side, database_url, args.workers), timeout=args.side_timeout)


def parent_main(args: argparse.Namespace) -> int:
    with Repetitions(args, prefix="taskdeck-bench-services-") as bench:
        print(f"restart: {args.restarts} restarts (supervisord {args.peer_restarts}); scale: {args.instances} "
              f"instances, {args.idle_seconds:g} s idle; takeover: {args.takeover_instances} instances, lease TTL "
              f"{args.lease_ttl:g} s; {args.repeats} repetition(s), {' and '.join(bench.kinds)}.\n"
              f"supervisord: {args.supervisord}", flush=True)
        medians: dict[str, dict[str, float]] = {}
        for kind in bench.kinds:
            print(f"\n--- {kind} (load average {load_average()}) ---", flush=True)
            figures: dict[str, list[dict[str, float]]] = {side: [] for side in SIDES}
            for rep, side, url, log, seed in bench.sides(kind):
                result = run_side(side, url, bench.workdir, log, args, rep, seed)
                figures[side].append(figures_of(result))
                print_repetition(rep, result, figures[side][-1])
            medians[kind] = print_summary(figures, args, kind)
        if len(medians) > 1:
            print_side_by_side(medians)
        print(f"\n(load average at the end {load_average()})")
    return bench.code


def print_side_by_side(medians: dict[str, dict[str, float]]) -> None:
    """Each database's medians in one table."""
    kinds = list(medians)
    rows = (("restart p50 ms, Taskdeck", "taskdeck.restart_p50"), ("restart p50 ms, supervisord", "peer.restart_p50"),
            ("restart p95 ms, Taskdeck", "taskdeck.restart_p95"), ("all up s, Taskdeck", "taskdeck.scale_all_up_s"),
            ("all up s, supervisord", "peer.scale_all_up_s"), ("idle CPU %, Taskdeck", "taskdeck.scale_cpu_percent"),
            ("idle CPU %, its PostgreSQL processes", "taskdeck.scale_others_cpu_percent"),
            ("idle CPU %, supervisord", "peer.scale_cpu_percent"), ("RSS MB, Taskdeck", "taskdeck.scale_rss_mb"),
            ("RSS MB, supervisord", "peer.scale_rss_mb"), ("takeover s, same host", "taskdeck.same_host_s"),
            ("takeover s, another host", "taskdeck.other_host_s"))
    print("\nSide by side (medians)                 " + "".join(f"{kind:>12}" for kind in kinds))
    for label, key in rows:
        print(f"{label:<39}" + "".join(f"{medians[kind][key]:12.2f}" for kind in kinds))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--supervisord", required=True, help="A supervisord executable (the peer).")
    parser.add_argument("--restarts", type=int, default=200, help="Taskdeck's restarts per repetition (and the floor's).")
    parser.add_argument("--peer-restarts", type=int, default=30,
                        help="supervisord's restarts per repetition (each takes it 1-2 s).")
    parser.add_argument("--instances", type=int, default=200, help="Instances of `sleep infinity`, in all.")
    parser.add_argument("--per-service", type=int, default=50, help="Instances per service (at most 64).")
    parser.add_argument("--idle-seconds", type=float, default=30.0, help="The idle window of the scale run.")
    parser.add_argument("--takeover-instances", type=int, default=8, help="Instances of the takeover's service.")
    parser.add_argument("--lease-ttl", type=float, default=5.0, help="TASKDECK_LEASE_TTL of the takeover (s).")
    parser.add_argument("--interval", type=float, default=1.0,
                        help="TASKDECK_SUPERVISOR_INTERVAL of the takeover (s; the default setting's value).")
    add_repetition_arguments(parser)
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(run_bench(parse_args(), side_main=side_main, parent_main=parent_main))
