#!/usr/bin/env python
"""Schedule ticks at scale: 1,000 tasks on a one-minute cron over 60 simulated minutes.

Run from the project root::

    .venv/bin/python bench/scheduler.py [--tasks 1000] [--minutes 60] [--repeats 3]

Each side runs in a child process of its own on a fresh SQLite file (WAL, the PRAGMAs of
config.settings) in a temp directory, migrated first, and moves time with a simulated clock
instead of waiting 60 real minutes:

- **Taskdeck**: ``--tasks`` tasks with ``cron_string = "* * * * *"``, scheduled from the first
  minute. For each simulated minute, as the scheduler loop passes once a second: one
  ``Scheduler.fire_due_ticks()`` pass a second before the tick (it plans the coming ticks:
  runs built, queue packages signed, next ticks computed; nothing written), then one at the
  exact instant the ticks fall due, which fires them: each tick claimed in the database and
  placed by the overlap policy, its Run row, event and queue message written. Ticks per second
  count the time of both passes; the lag starts when the ticks fall due. Time comes from
  ``tasks_app.clock.now``, the project's one clock function, which the bench replaces.
- **django-q2** (the peer): as many ``Schedule`` rows (type CRON, ``* * * * *``) and one call of
  django-q2's own ``scheduler()`` per simulated minute, which creates a queued task per due
  schedule. Its clock is ``django.utils.timezone.now``, replaced the same way.

Between minutes the bench plays the workers: the runs just queued are marked completed and the
queue is emptied, so every tick meets an idle task (no skipped runs) and the queue does not grow.
That bookkeeping is outside the timings.

Figures per side: ticks fired per second of wall time (all ticks over the summed time of the
passes) and the lag of a tick: real time from the start of the pass at the instant it fell due to
the commit that wrote its run (Taskdeck commits every ``TICK_BATCH`` ticks; django-q2 commits its
whole pass at once, so its lag is its pass time). Goal (issue 5): no tick late by more than 1 s of
real time when 1,000 fall due together. Every tick is checked to have fired exactly once.
The summary is the median over ``--repeats`` repetitions; temp directories are removed on exit.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: bench/ is sys.path[0], the project is not

GOAL_MAX_LAG_S = 1.0
START = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)


class SimulatedClock:
    def __init__(self) -> None:
        self.current = START

    def now(self) -> datetime:
        return self.current


# --- Children: one side each ---------------------------------------------------------------------


def setup_django(db: Path) -> None:
    os.environ["DATABASE_URL"] = f"sqlite:///{db}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ["TASKDECK_EXTRA_APPS"] = ""  # only the bench's tasks
    os.environ["TASKDECK_DEFINITIONS"] = str(db.parent / "taskdeck.toml")  # absent: declares nothing
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def measure_taskdeck(tasks: int, minutes: int) -> dict[str, Any]:
    from django.db.models import Count

    from tasks_app import clock, queue, services
    from tasks_app.models import Run, RunStatus, Task
    from tasks_app.scheduling import loop

    simulated = SimulatedClock()
    clock.now = simulated.now  # the project's one clock function
    Task.objects.bulk_create([Task(id=f"tick-{n:04d}", title=f"Tick {n}", callable="bench.noop.noop", timeout=60,
                                   cron_string="* * * * *", timezone="UTC") for n in range(tasks)])
    simulated.current = START - timedelta(seconds=30)
    services.initialise_schedules(now=simulated.now())

    lags: list[float] = []
    original = services.fire_ticks
    pass_started = 0.0

    def timed_fire_ticks(plans: list[Any], *, now: datetime) -> list[Any]:
        runs = original(plans, now=now)
        lags.extend([time.perf_counter() - pass_started] * len(runs))  # committed when it returns
        return runs

    services.fire_ticks = timed_fire_ticks
    the_scheduler = loop.Scheduler(interval=1)
    busy = 0.0
    for minute in range(minutes):
        # As the loop runs: a pass one interval before the tick (it plans the coming ticks and
        # writes nothing), then one at the instant the ticks fall due. Both count as work.
        simulated.current = START + timedelta(minutes=minute, seconds=-the_scheduler.interval)
        ahead_started = time.perf_counter()
        if the_scheduler.fire_due_ticks():
            raise SystemExit(f"minute {minute}: ticks fired before they were due")
        busy += time.perf_counter() - ahead_started
        simulated.current = START + timedelta(minutes=minute)
        pass_started = time.perf_counter()
        fired = the_scheduler.fire_due_ticks()
        busy += time.perf_counter() - pass_started
        if len(fired) != tasks:
            raise SystemExit(f"minute {minute}: {len(fired)} ticks fired, expected {tasks}")
        Run.objects.filter(status=RunStatus.QUEUED).update(status=RunStatus.COMPLETED, end_reason="success")
        queue.purge()
    per_task = set(Run.objects.values("task_id").annotate(n=Count("pk")).values_list("n", flat=True))
    if per_task != {minutes} or Run.objects.exclude(trigger="schedule").exists():
        raise SystemExit(f"not every tick fired exactly once: runs per task {per_task}")
    return {"ticks": tasks * minutes, "busy": busy, "lags": lags}


def measure_django_q2(tasks: int, minutes: int) -> dict[str, Any]:
    from django.utils import timezone
    from django_q.brokers import get_broker
    from django_q.models import OrmQ, Schedule
    from django_q.scheduler import scheduler

    simulated = SimulatedClock()
    timezone.now = simulated.now  # django-q2's clock (its localtime() reads it too)
    Schedule.objects.bulk_create([Schedule(name=f"tick-{n:04d}", func="bench.noop.noop_plain", schedule_type=Schedule.CRON,
                                           cron="* * * * *", repeats=-1, next_run=START) for n in range(tasks)])
    broker = get_broker()
    lags: list[float] = []
    busy = 0.0
    queued = 0
    for minute in range(minutes):
        # django-q2 fires schedules with next_run strictly before now.
        simulated.current = START + timedelta(minutes=minute, microseconds=1)
        started = time.perf_counter()
        scheduler(broker=broker)
        elapsed = time.perf_counter() - started
        busy += elapsed
        fired = OrmQ.objects.count()
        if fired != tasks:
            raise SystemExit(f"minute {minute}: {fired} ticks fired, expected {tasks}")
        queued += fired
        lags.extend([elapsed] * fired)
        OrmQ.objects.all().delete()
    return {"ticks": queued, "busy": busy, "lags": lags}


def child_main(args: argparse.Namespace) -> None:
    setup_django(Path(args.db))
    measure = measure_taskdeck if args.side == "taskdeck" else measure_django_q2
    result = measure(args.tasks, args.minutes)
    lags = sorted(result["lags"])
    print(json.dumps({
        "ticks_per_s": result["ticks"] / result["busy"],
        "lag_p50": statistics.median(lags), "lag_max": lags[-1], "ticks": result["ticks"],
    }))


# --- Parent ----------------------------------------------------------------------------------------


def run_side(side: str, args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"taskdeck-bench-scheduler-{side}-"))
    try:
        argv = [sys.executable, str(Path(__file__).resolve()), "--child", side, "--db", str(workdir / "db.sqlite3"),
                "--tasks", str(args.tasks), "--minutes", str(args.minutes)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        env.pop("REDIS_URL", None)
        completed = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if completed.returncode:
            raise SystemExit(f"{side} failed:\n{completed.stdout[-2000:]}\n{completed.stderr[-4000:]}")
        return json.loads(completed.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def parent_main(args: argparse.Namespace) -> int:
    print(f"{args.tasks} tasks on a one-minute cron, {args.minutes} simulated minutes, {args.repeats} repetition(s); "
          f"load average {os.getloadavg()[0]:.2f}")
    results: dict[str, list[dict[str, Any]]] = {"taskdeck": [], "django-q2": []}
    for repetition in range(1, args.repeats + 1):
        for side in results:
            figures = run_side(side, args)
            results[side].append(figures)
            print(f"  #{repetition} {side:10s} {figures['ticks_per_s']:8.0f} ticks/s  lag p50 {figures['lag_p50'] * 1000:7.1f} ms"
                  f"  max {figures['lag_max'] * 1000:7.1f} ms", flush=True)
    summary = {side: {name: statistics.median(run[name] for run in runs) for name in ("ticks_per_s", "lag_p50", "lag_max")}
               for side, runs in results.items()}
    ours, peer = summary["taskdeck"], summary["django-q2"]
    print(f"\nMedian of {args.repeats}:")
    print(f"  {'':10s} {'ticks/s':>10s} {'lag p50':>10s} {'lag max':>10s}")
    for side, figures in summary.items():
        print(f"  {side:10s} {figures['ticks_per_s']:10.0f} {figures['lag_p50'] * 1000:8.1f} ms {figures['lag_max'] * 1000:8.1f} ms")
    print(f"  ratio      {ours['ticks_per_s'] / peer['ticks_per_s']:9.2f}x {ours['lag_p50'] / peer['lag_p50']:9.2f}x "
          f"{ours['lag_max'] / peer['lag_max']:9.2f}x  (Taskdeck / django-q2)")
    met = ours["lag_max"] <= GOAL_MAX_LAG_S
    print(f"\nGoal: no tick later than {GOAL_MAX_LAG_S:.0f} s when {args.tasks} fall due together: "
          f"{'met' if met else 'NOT met'} (max lag {ours['lag_max'] * 1000:.0f} ms); load average {os.getloadavg()[0]:.2f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1000, help="Tasks on a one-minute cron.")
    parser.add_argument("--minutes", type=int, default=60, help="Simulated minutes.")
    parser.add_argument("--repeats", type=int, default=3, help="Repetitions; the summary is their median.")
    parser.add_argument("--child", choices=["taskdeck", "django-q2"], help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.side = args.child
        child_main(args)
        return 0
    return parent_main(args)


if __name__ == "__main__":
    sys.exit(main())
