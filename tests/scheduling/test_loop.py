"""Reaping: nothing stays running when its worker is gone. Time moves with the clock fixture."""
import os
import threading
import time
from datetime import timedelta

import pytest

from tasks_app import queue, services
from tasks_app.definitions.validate import build_definition
from tasks_app.models import CatchUp, EndReason, Event, Run, RunStatus, RunTrigger, StopRequest, Task
from tasks_app.queue.brokers import FakeRunBroker
from tasks_app.scheduling.loop import Scheduler

from ..factories import make_run, make_task

pytestmark = pytest.mark.django_db


def running_run(task, clock, *, host="elsewhere", pid=None):
    run = services.trigger(task, source=RunTrigger.API, requested_by="test", force=True)
    Run.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING, started_at=clock.now(), heartbeat_at=clock.now(),
        worker_host=host, worker_pid=pid or os.getpid(),
    )
    return run


def test_a_run_with_a_fresh_heartbeat_is_left_alone(clock):
    run = running_run(make_task(), clock)
    clock.advance(seconds=29)
    assert services.reap_lost_runs(stale_after=30) == []
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING


def test_a_stale_heartbeat_on_another_host_ends_crashed(clock):
    run = running_run(make_task(), clock)
    clock.advance(seconds=31)
    [reaped] = services.reap_lost_runs(stale_after=30)
    assert (reaped.pk, reaped.status, reaped.end_reason) == (run.pk, RunStatus.FAILED, EndReason.CRASHED)
    assert reaped.ended_at == clock.now()
    assert Event.objects.filter(run_id=run.pk, name="task:error").exists()


def test_a_lost_run_past_its_timeout_ends_timeout(clock):
    run = running_run(make_task(timeout=10), clock)
    clock.advance(seconds=60)
    services.reap_lost_runs(stale_after=30)
    run.refresh_from_db()
    assert run.end_reason == EndReason.TIMEOUT


def test_a_lost_run_that_was_asked_to_stop_ends_as_asked(clock):
    run = running_run(make_task(), clock)
    Run.objects.filter(pk=run.pk).update(stop_requested=StopRequest.CANCEL, stop_requested_at=clock.now())
    clock.advance(seconds=31)
    services.reap_lost_runs(stale_after=30)
    run.refresh_from_db()
    assert (run.status, run.end_reason) == (RunStatus.CANCELLED, EndReason.CANCELLED)


def test_a_dead_worker_on_this_host_is_noticed_without_waiting_for_the_heartbeat(clock):
    dead_pid = 2 ** 22 + 12345  # above the kernel's default pid_max: never a live process
    run = running_run(make_task(), clock, host=services.HOSTNAME, pid=dead_pid)
    [reaped] = services.reap_lost_runs(stale_after=30)
    assert reaped.pk == run.pk and reaped.end_reason == EndReason.CRASHED


def test_a_live_worker_on_this_host_is_never_reaped_whatever_its_heartbeat(clock):
    """It may be waiting for the database to take its writes: it will record the run's real end."""
    run = running_run(make_task(), clock, host=services.HOSTNAME, pid=os.getpid())
    clock.advance(hours=1)
    assert services.reap_lost_runs(stale_after=30) == []
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING


def test_heartbeats_are_not_stale_while_the_database_refused_writes_recently(clock):
    """No worker can beat while the database refuses writes: a heartbeat counts again only once
    the database has taken writes for longer than the stale time."""
    run = running_run(make_task(timeout=3600), clock)
    clock.advance(seconds=60)
    refused_at = clock.now() - timedelta(seconds=10)
    assert services.reap_lost_runs(stale_after=30, database_failed_at=refused_at) == []
    clock.advance(seconds=21)
    [reaped] = services.reap_lost_runs(stale_after=30, database_failed_at=refused_at)
    assert reaped.pk == run.pk and reaped.end_reason == EndReason.CRASHED


def test_a_scheduler_pass_reaps_and_admits_held_runs(clock):
    task = make_task(on_overlap="queue", queue_max=1)
    lost = running_run(task, clock)
    held = services.trigger(task, source=RunTrigger.API, requested_by="test")
    assert held.enqueued_at is None
    clock.advance(seconds=60)
    Scheduler(interval=1).tick()
    lost.refresh_from_db()
    held.refresh_from_db()
    assert lost.end_reason == EndReason.CRASHED and held.enqueued_at is not None


# --- Ticks ------------------------------------------------------------------------------------------


def scheduled(clock, **fields):
    """A task whose next tick is set as a scheduler's first pass sets it, from now."""
    task = make_task(**fields)
    services.initialise_schedules(now=clock.now())
    task.refresh_from_db()
    assert task.next_run_at is not None
    return task


def test_a_due_cron_tick_fires_one_run_and_moves_to_the_next_tick(clock):
    clock.current = clock.current.replace(minute=2, second=0)
    task = scheduled(clock, cron_string="*/5 * * * *")
    due = task.next_run_at
    assert due == clock.now().replace(minute=5)
    scheduler = Scheduler(interval=1)
    assert scheduler.fire_due_ticks() == []  # not yet
    clock.current = due + timedelta(seconds=0.3)
    [run] = scheduler.fire_due_ticks()
    assert (run.trigger, run.triggered_by, run.status) == (RunTrigger.SCHEDULE, "schedule", RunStatus.QUEUED)
    assert run.enqueued_at is not None
    task.refresh_from_db()
    assert (task.last_tick_at, task.next_run_at) == (due, due + timedelta(minutes=5))
    assert scheduler.fire_due_ticks() == []  # the tick is spent


def test_an_interval_keeps_its_cadence_when_a_tick_fires_late(clock):
    task = scheduled(clock, interval=10, interval_unit="minutes")
    due = task.next_run_at
    clock.current = due + timedelta(minutes=3)
    [run] = Scheduler(interval=1).fire_due_ticks()
    task.refresh_from_db()
    assert task.next_run_at == due + timedelta(minutes=10)


def test_a_tick_that_meets_a_full_skip_task_records_a_skipped_run(clock):
    task = scheduled(clock, interval=1, interval_unit="minutes")
    services.trigger(task, source=RunTrigger.API, requested_by="test")
    clock.current = task.next_run_at
    [run] = Scheduler(interval=1).fire_due_ticks()
    assert (run.status, run.end_reason, run.trigger) == (RunStatus.SKIPPED, EndReason.SKIPPED, RunTrigger.SCHEDULE)
    assert Event.objects.filter(run_id=run.pk, name="task:skipped").exists()


def test_disabled_and_unscheduled_tasks_never_fire(clock):
    disabled = make_task(cron_string="* * * * *", enabled=False)
    manual = make_task()
    services.initialise_schedules(now=clock.now())
    clock.advance(hours=2)
    assert Scheduler(interval=1).fire_due_ticks() == []
    assert not Run.objects.filter(task__in=[disabled, manual]).exists()
    assert Task.objects.get(pk=disabled.pk).next_run_at is None


def test_a_service_is_never_fired_by_ticks_or_a_start_up(clock):
    """A service has no schedule and no run_on_start (the loader and the admin refuse both); its
    instances' runs are its supervisor's."""
    definition = build_definition("web", {"kind": "service", "argv": ["sleep", "infinity"]}, source="file")
    services.sync_definitions([definition])
    services.initialise_schedules(now=clock.now())
    scheduler = Scheduler(interval=1)
    for _ in range(3):
        clock.advance(days=1)
        scheduler.tick()
        assert scheduler.fire_due_ticks() == [] and services.fire_startup_runs(now=clock.now()) == []
    assert not Run.objects.filter(task_id="web").exists()
    assert Task.objects.get(pk="web").next_run_at is None


@pytest.mark.parametrize(("policy", "fired"), [(CatchUp.LATEST, 1), (CatchUp.ALL, 5), (CatchUp.SKIP, 0)])
def test_catch_up_after_three_days_down(clock, policy, fired):
    """An hourly task last ticked three days ago: 72 ticks have come since (and the one due)."""
    clock.current = clock.current.replace(minute=0, second=0)
    task = make_task(cron_string="0 * * * *", catch_up=policy, max_catch_up_runs=5)
    down_since = clock.now() - timedelta(days=3)
    Task.objects.filter(pk=task.pk).update(next_run_at=down_since, last_tick_at=down_since - timedelta(hours=1))
    clock.advance(minutes=20)
    runs = Scheduler(interval=1).fire_due_ticks()
    [missed] = [run for run in runs if run.end_reason == EndReason.MISSED]
    caught_up = [run for run in runs if run.end_reason != EndReason.MISSED]
    assert len(caught_up) == fired and all(run.trigger == RunTrigger.CATCH_UP for run in caught_up)
    assert (missed.status, missed.trigger) == (RunStatus.SKIPPED, RunTrigger.CATCH_UP)
    assert missed.result["ticks"] == 73 and missed.result["fired"] == fired and missed.result["catch_up"] == policy
    assert "73 ticks" in missed.error
    task.refresh_from_db()
    hour = clock.now().replace(minute=0)
    assert (task.last_tick_at, task.next_run_at) == (hour, hour + timedelta(hours=1))
    # The overlap policy still applies: with `all`, one run is admitted and the rest meet a full task.
    assert sum(1 for run in caught_up if run.status == RunStatus.QUEUED) == min(fired, 1)


def test_a_tick_without_downtime_records_no_missed_run(clock):
    task = scheduled(clock, cron_string="* * * * *")
    clock.current = task.next_run_at + timedelta(seconds=59)
    runs = Scheduler(interval=1).fire_due_ticks()
    assert [run.end_reason for run in runs] == [""]


def test_a_tick_whose_task_was_rescheduled_meanwhile_is_not_fired(clock):
    task = scheduled(clock, cron_string="* * * * *")
    clock.current = task.next_run_at
    plan = services.plan_tick(Task.objects.get(pk=task.pk), now=clock.now())
    Task.objects.filter(pk=task.pk).update(next_run_at=task.next_run_at + timedelta(minutes=7))  # another scheduler
    assert services.fire_ticks([plan], now=clock.now()) == []
    assert not Run.objects.filter(task=task).exists()


def test_tasks_with_jitter_due_together_take_turns_through_the_gate(clock, settings):
    settings.TASKDECK = {**settings.TASKDECK, "JITTER_GAP": 2.0}
    clock.current = clock.current.replace(second=0)
    tasks = [scheduled(clock, cron_string="* * * * *", jitter=5) for _ in range(4)]
    clock.current = tasks[0].next_run_at
    scheduler = Scheduler(interval=1)
    started = {}
    for _ in range(8):
        for run in scheduler.fire_due_ticks():
            started[run.task_id] = clock.now()
        if not scheduler.gate_waiting:
            break
        clock.advance(seconds=scheduler.pause())
    due = tasks[0].next_run_at
    slips = sorted((at - due).total_seconds() for at in started.values())
    assert len(started) == 4
    assert slips[0] == 0 and slips[1] == 2.0 and slips[2] == 4.0  # one at a time, a gap apart
    assert slips[3] <= 5.0  # never later than the task's jitter


def test_a_lone_task_with_jitter_does_not_wait(clock):
    task = scheduled(clock, cron_string="* * * * *", jitter=30)
    clock.current = task.next_run_at
    scheduler = Scheduler(interval=1)
    scheduler.gate_opens_at = clock.now() - timedelta(minutes=5)  # the last gated start was long ago
    assert len(scheduler.fire_due_ticks()) == 1


def test_run_on_start_fires_once_per_start(clock):
    task = make_task(run_on_start=True)
    make_task(run_on_start=True, enabled=False)
    [run] = services.fire_startup_runs(now=clock.now())
    assert (run.task_id, run.trigger) == (task.pk, RunTrigger.STARTUP)
    clock.advance(seconds=5)
    assert services.fire_startup_runs(now=clock.now()) == []  # a second scheduler starting alongside
    clock.advance(minutes=10)
    assert len(services.fire_startup_runs(now=clock.now())) == 1  # a later restart


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_schedulers_at_once_fire_every_tick_exactly_once(clock):
    """Two scheduler loops on one database, passing at the same instant for 15 minutes of ticks;
    in the last pass a worker holds one task's row (claiming a run) while they lock theirs.

    The runs go to a fake broker: the session's qcluster may be running against this database,
    and claims of these runs while the teardown truncates every table deadlocked on PostgreSQL.
    What the fake received also shows each fired run was handed over exactly once."""
    from django.db import connection, transaction

    from tasks_app.db.locks import lock_task

    clock.current = clock.current.replace(second=0)
    tasks = [make_task(cron_string="* * * * *", max_concurrent=15) for _ in range(20)]  # none skipped
    services.initialise_schedules(now=clock.now())
    start = Task.objects.get(pk=tasks[0].pk).next_run_at
    schedulers = [Scheduler(interval=1), Scheduler(interval=1)]
    fired_by = {0: 0, 1: 0}
    with queue.using_broker(FakeRunBroker()) as broker:
        for minute in range(15):
            clock.current = start + timedelta(minutes=minute, seconds=1)
            barrier = threading.Barrier(2)
            errors: list[BaseException] = []

            def pass_of(index: int, barrier: threading.Barrier = barrier, errors: list = errors) -> None:
                try:
                    barrier.wait(timeout=10)
                    fired_by[index] += len(schedulers[index].fire_due_ticks())
                except BaseException as error:  # reported below, with the thread's own exception
                    errors.append(error)
                finally:
                    connection.close()

            threads = [threading.Thread(target=pass_of, args=(index,)) for index in (0, 1)]
            if minute == 14:
                locked = threading.Event()

                def worker_claiming() -> None:
                    try:
                        with transaction.atomic():
                            lock_task(tasks[0].pk)
                            locked.set()
                            time.sleep(0.5)
                    finally:
                        connection.close()

                holder = threading.Thread(target=worker_claiming)
                holder.start()
                assert locked.wait(10)
                threads.append(holder)
            for thread in threads[:2]:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
            assert not errors, errors
        handed_over = queue.pending_run_ids()
    runs = Run.objects.filter(task__in=tasks)
    assert runs.count() == 20 * 15 == fired_by[0] + fired_by[1] == len(broker.sent)
    assert handed_over == {str(run_id) for run_id in runs.values_list("id", flat=True)}
    for task in tasks:
        assert runs.filter(task=task).count() == 15
    assert {task.next_run_at for task in Task.objects.filter(pk__in=[t.pk for t in tasks])} == {
        start + timedelta(minutes=15)}


def test_a_tick_a_dead_scheduler_left_is_fired_by_the_next_one(clock):
    task = scheduled(clock, cron_string="*/10 * * * *")
    clock.current = task.next_run_at + timedelta(seconds=40)  # the old scheduler died before its pass
    [run] = Scheduler(interval=1).fire_due_ticks()  # a new one starts
    assert run.trigger == RunTrigger.SCHEDULE


def test_a_scheduler_pass_applies_retention(clock):
    task = make_task(keep_for=3600, keep_runs=5)
    make_run(task, end_reason=EndReason.SUCCESS)  # ends now, two hours before the sweep
    clock.advance(hours=2)
    recent = make_run(task, end_reason=EndReason.SUCCESS)
    active = make_run(task)
    Run.objects.filter(pk=active.pk).update(created_at=clock.now() - timedelta(days=9))
    Scheduler(interval=1).tick()
    assert set(Run.objects.filter(task=task).values_list("pk", flat=True)) == {recent.pk, active.pk}


def test_ticks_due_before_the_next_pass_are_planned_ahead_then_fired_when_due(clock):
    clock.current = clock.current.replace(second=0)
    task = scheduled(clock, cron_string="* * * * *")
    due = task.next_run_at
    scheduler = Scheduler(interval=1)
    clock.current = due - timedelta(seconds=0.5)
    assert scheduler.fire_due_ticks() == [] and set(scheduler.planned) == {task.pk}
    assert not Run.objects.exists()  # planning writes nothing
    [(planned_run, _)] = scheduler.planned[task.pk].runs
    clock.current = due + timedelta(seconds=0.1)
    [run] = scheduler.fire_due_ticks()
    assert run.pk == planned_run.pk  # the plan made ahead is the one fired
    assert (run.trigger, run.status) == (RunTrigger.SCHEDULE, RunStatus.QUEUED) and scheduler.planned == {}
    task.refresh_from_db()
    assert (task.last_tick_at, task.next_run_at) == (due, due + timedelta(minutes=1))


def test_a_plan_made_ahead_gives_way_to_catch_up_when_more_ticks_came(clock):
    clock.current = clock.current.replace(second=0)
    task = scheduled(clock, cron_string="* * * * *")
    scheduler = Scheduler(interval=1)
    clock.current = task.next_run_at - timedelta(seconds=0.5)
    scheduler.fire_due_ticks()
    clock.current = task.next_run_at + timedelta(minutes=3, seconds=5)  # the scheduler stalled
    runs = scheduler.fire_due_ticks()
    assert sorted(run.end_reason for run in runs) == ["", EndReason.MISSED]
    assert {run.trigger for run in runs} == {RunTrigger.CATCH_UP}
