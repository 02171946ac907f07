"""Reaping: nothing stays running when its worker is gone. Time moves with the clock fixture."""
import os

import pytest

from tasks_app import services
from tasks_app.models import EndReason, Event, Run, RunStatus, RunTrigger, StopRequest
from tasks_app.scheduler import Scheduler

from .factories import make_task

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
