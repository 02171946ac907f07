"""The scheduler process's loop: ticks fire, nothing stays running, held runs get their slots.

Each pass:

1. fires the cron and interval ticks that have come (``services.plan_tick``/``fire_ticks``, in
   batches, each tick claimed in the database so two schedulers never fire one twice), with
   catch-up after downtime;
2. reaps runs whose worker is gone (crashed, or timeout if past it);
3. admits held runs that have a free slot or whose time has come (queued overlaps, retries);
4. once a minute sends again queued runs whose queue message was lost and prunes old events;
5. every ``RETENTION_SWEEP_INTERVAL`` (an hour) removes ended runs past their task's
   ``keep_runs``/``keep_for`` (``retention.sweep``).

``run_on_start`` tasks fire once when the loop starts.

Jitter: tasks with a ``jitter`` that fall due at the same moment go through a one-at-a-time
gate, ``JITTER_GAP`` seconds apart, so a hundred nightly jobs do not all start in the same
instant; a task never waits past its due time plus its jitter, and alone it does not wait at
all. The gate belongs to this process (each scheduler spaces its own ticks). Time comes from
``clock.now()``, so tests and bench/scheduler.py move it instead of sleeping.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import OperationalError, close_old_connections, connections

from tasks_app import clock, retention, services
from tasks_app.conf import taskdeck_settings
from tasks_app.db import slots
from tasks_app.models import HeartbeatRole, Run, Task
from tasks_app.platform.stopflag import StopFlag

logger = logging.getLogger(__name__)

#: Seconds between the scheduler's heartbeats (the health check calls it stale after a minute).
HEARTBEAT_EVERY = 5.0
#: Seconds between looks for queued runs whose queue message was lost.
REDELIVERY_CHECK_INTERVAL = 60.0
#: Ticks fired per write transaction: short enough for SQLite's one write lock, long enough
#: that a thousand ticks due together cost a handful of transactions.
TICK_BATCH = 200


class Scheduler:
    def __init__(self, *, interval: float | None = None) -> None:
        self.interval = float(interval if interval is not None else taskdeck_settings.SCHEDULER_INTERVAL)
        self.stopping = StopFlag()
        self._next_redelivery = clock.monotonic()
        self._next_beat = clock.monotonic()
        self._next_sweep = clock.monotonic()
        self.gate_opens_at: datetime | None = None
        """When the jitter gate lets the next task through (clock time)."""
        self.gate_waiting = False
        """Whether a task with jitter is waiting for the gate (the loop then wakes early)."""
        self.planned: dict[str, services.TickPlan] = {}
        """Plans made ahead for ticks due before the next pass, by task id."""
        self.database_failed_at: datetime | None = None
        """When a pass last failed because the database refused it (full disk, read-only, away):
        heartbeats written meanwhile could not land, so the reaper does not judge them for a while."""

    def start(self) -> None:
        """What happens once per start: run_on_start tasks fire."""
        services.fire_startup_runs(now=clock.now())

    def tick(self) -> None:
        """One pass; safe to run from several schedulers at once (every step is conditional)."""
        if clock.monotonic() >= self._next_beat:
            self._next_beat = clock.monotonic() + HEARTBEAT_EVERY
            services.beat(HeartbeatRole.SCHEDULER)
        self.fire_due_ticks()
        services.reap_lost_runs(database_failed_at=self.database_failed_at)
        for task_id in slots.tasks_with_held_runs():
            services.release_held_runs(task_id)
        if clock.monotonic() >= self._next_redelivery:
            self._next_redelivery = clock.monotonic() + REDELIVERY_CHECK_INTERVAL
            services.redeliver_lost_runs(older_than=taskdeck_settings.REDELIVER_AFTER)
            retention.prune_events(now=clock.now())
        if clock.monotonic() >= self._next_sweep:
            self._next_sweep = clock.monotonic() + taskdeck_settings.RETENTION_SWEEP_INTERVAL
            report = retention.sweep(now=clock.now())
            if report.runs_deleted:
                logger.info("Retention removed %d ended run(s).", report.runs_deleted)

    def fire_due_ticks(self) -> list[Run]:
        """Every tick that has come, in batches; tasks with jitter through the gate.

        Ticks due before the next pass are planned now (their runs built, queue packages
        signed, next ticks computed: nothing written), so when they come only the short write
        transactions are left: a thousand ticks due together go out in half the time.
        """
        now = clock.now()
        services.initialise_schedules(now=now)
        soon = services.due_tasks(now=now + timedelta(seconds=self.interval))
        due = [task for task in soon if task.next_run_at <= now]
        fired: list[Run] = []
        open_now = [task for task in due if not task.jitter]
        for start in range(0, len(open_now), TICK_BATCH):
            plans = [self.plan_for(task, now=now) for task in open_now[start: start + TICK_BATCH]]
            fired += services.fire_ticks(plans, now=now)
        self.plan_ahead([task for task in soon if task.next_run_at > now and not task.jitter])
        self.gate_waiting = False
        for task in (task for task in due if task.jitter):
            now = clock.now()
            latest_start = task.next_run_at + timedelta(seconds=task.jitter)
            if self.gate_opens_at is not None and now < self.gate_opens_at and now < latest_start:
                self.gate_waiting = True
                break  # its turn comes in a later pass, a gap after the previous one
            fired += services.fire_ticks([services.plan_tick(task, now=now)], now=now)
            self.gate_opens_at = now + timedelta(seconds=taskdeck_settings.JITTER_GAP)
        return fired

    def plan_ahead(self, tasks: list[Task]) -> None:
        """Plan the coming ticks of ``tasks`` as they will be when due (see fire_due_ticks)."""
        coming = {task.pk for task in tasks}
        self.planned = {task_id: plan for task_id, plan in self.planned.items() if task_id in coming}
        for task in tasks:
            if task.pk not in self.planned or self.planned[task.pk].due_at != task.next_run_at:
                self.planned[task.pk] = services.plan_tick(task, now=task.next_run_at)

    def plan_for(self, task: Task, *, now: datetime) -> services.TickPlan:
        """The plan made ahead for this tick if it still holds (same tick, and no later tick has
        come meanwhile, which would make it a catch-up); else a plan made now."""
        plan = self.planned.pop(task.pk, None)
        if plan is not None and plan.due_at == task.next_run_at and plan.next_run_at is not None \
                and now < plan.next_run_at:
            return plan
        return services.plan_tick(task, now=now)

    def run_forever(self) -> None:
        logger.info("Scheduler running (every %.1f s).", self.interval)
        try:
            self.start()
        except Exception:  # start-up runs must not keep the scheduler from scheduling
            logger.exception("Firing run_on_start tasks failed.")
        while not self.stopping.is_set():
            close_old_connections()
            try:
                self.tick()
            except OperationalError as error:  # the database refused (full, read-only, locked, away)
                if self.database_failed_at is None or clock.now() - self.database_failed_at > timedelta(minutes=1):
                    logger.warning("The database refused a scheduler pass (%s); retrying every %.1f s.",
                                   error, self.interval)
                self.database_failed_at = clock.now()
                connections.close_all()
            except Exception:  # one bad pass must not stop the loop that keeps runs honest
                logger.exception("Scheduler pass failed; retrying in %.1f s.", self.interval)
            self.stopping.wait(self.pause())
        logger.info("Scheduler stopped.")

    def pause(self) -> float:
        """Seconds until the next pass: the interval, or sooner when the jitter gate opens."""
        if self.gate_waiting and self.gate_opens_at is not None:
            until_gate = (self.gate_opens_at - clock.now()).total_seconds()
            return max(0.01, min(self.interval, until_gate))
        return self.interval

    def stop(self) -> None:
        """From a signal handler or another thread: the loop ends within ``stopflag.LOOK_EVERY``."""
        self.stopping.signal()

