import threading

import pytest
from django.db import connection
from django_q.models import OrmQ

from tasks_app import queue, services
from tasks_app.exceptions import (
    AlreadyRunning,
    CancelUnsupported,
    DryRunUnsupported,
    InvalidParameters,
    NotManuallyRunnable,
    NotRunning,
    QueueFull,
    RunActive,
    RunAlreadyEnded,
    RunNotFound,
    TaskDisabled,
    TaskNotFound,
    TaskRemoved,
)
from tasks_app.models import EndReason, Event, Run, RunStatus, RunTrigger, StopRequest, Task
from tasks_app.registry import build_definition

from .factories import make_task, number, string

pytestmark = pytest.mark.django_db


def api_trigger(task, **kwargs):
    return services.trigger(task, source=RunTrigger.API, requested_by="key:test", **kwargs)


def schedule_trigger(task, **kwargs):
    return services.trigger(task, source=RunTrigger.SCHEDULE, requested_by="schedule", **kwargs)


def events_of(run):
    return list(Event.objects.filter(run_id=run.id).values_list("name", flat=True))


class TestTrigger:
    def test_a_run_is_recorded_queued_with_its_event_and_handed_to_the_queue(self):
        task = make_task(parameters=[string("region", "eu")])
        run = api_trigger(task)
        run.refresh_from_db()
        assert run.status == RunStatus.QUEUED and run.enqueued_at is not None
        assert run.parameters == {"region": "eu"}
        assert run.triggered_by == "key:test" and run.trigger == RunTrigger.API
        assert events_of(run) == ["task:queued"]
        assert OrmQ.objects.count() == 1

    def test_unknown_task(self):
        with pytest.raises(TaskNotFound):
            api_trigger("nope")

    def test_disabled_task_is_refused(self):
        with pytest.raises(TaskDisabled):
            api_trigger(make_task(enabled=False))

    def test_manual_only_applies_to_on_demand_sources(self):
        task = make_task(manual_run=False)
        with pytest.raises(NotManuallyRunnable):
            api_trigger(task)
        assert schedule_trigger(task).status == RunStatus.QUEUED

    def test_removed_task_cannot_be_triggered(self, clock):
        task = make_task()
        Task.objects.filter(pk=task.pk).update(removed_at=clock.now())
        with pytest.raises(TaskRemoved):
            api_trigger(task)

    def test_dry_run_needs_support(self):
        with pytest.raises(DryRunUnsupported):
            api_trigger(make_task(), dry_run=True)
        assert api_trigger(make_task(supports_dry_run=True), dry_run=True).dry_run is True

    def test_bad_parameters_create_no_run(self):
        task = make_task(parameters=[string("region", choices=["eu", "us"])])
        with pytest.raises(InvalidParameters) as caught:
            api_trigger(task, parameters={"region": "mars"})
        assert caught.value.errors[0]["location"] == "body.parameters.region"
        assert not Run.objects.exists()


class TestOverlap:
    def test_skip_refuses_an_on_demand_trigger_and_records_a_scheduled_one(self):
        task = make_task(on_overlap="skip")
        first = api_trigger(task)
        with pytest.raises(AlreadyRunning) as caught:
            api_trigger(task)
        assert str(first.id) in caught.value.detail
        skipped = schedule_trigger(task)
        assert (skipped.status, skipped.end_reason) == (RunStatus.SKIPPED, EndReason.SKIPPED)
        assert events_of(skipped) == ["task:skipped"]
        assert Run.objects.count() == 2

    def test_force_bypasses_the_policy(self):
        task = make_task(on_overlap="skip")
        api_trigger(task)
        assert api_trigger(task, force=True).enqueued_at is not None

    def test_max_concurrent_slots(self):
        task = make_task(on_overlap="skip", max_concurrent=2)
        api_trigger(task)
        api_trigger(task)
        with pytest.raises(AlreadyRunning):
            api_trigger(task)

    def test_queue_holds_runs_up_to_queue_max_then_refuses_or_records_queue_full(self):
        task = make_task(on_overlap="queue", queue_max=2)
        running = api_trigger(task)
        held = [api_trigger(task), api_trigger(task)]
        assert all(run.status == RunStatus.QUEUED and run.enqueued_at is None for run in held)
        with pytest.raises(QueueFull):
            api_trigger(task)
        full = schedule_trigger(task)
        assert (full.status, full.end_reason) == (RunStatus.SKIPPED, EndReason.QUEUE_FULL)
        # The slot frees when the running one ends: the oldest held run is admitted, in order.
        Run.objects.filter(pk=running.pk).update(status=RunStatus.RUNNING)
        services.finish_run(running.pk, reason=EndReason.SUCCESS)
        held[0].refresh_from_db()
        held[1].refresh_from_db()
        assert held[0].enqueued_at is not None and held[1].enqueued_at is None
        assert str(held[0].pk) in queue.pending_run_ids()  # handed over by the end itself

    def test_a_worker_keeping_the_slot_claims_the_next_held_run_and_hands_the_rest_to_the_queue(self):
        task = make_task(on_overlap="queue", queue_max=5, max_concurrent=2)
        first, second = api_trigger(task), api_trigger(task)
        held = [api_trigger(task), api_trigger(task), api_trigger(task)]
        for run in (first, second):
            services.claim_run(run.pk)
        OrmQ.objects.all().delete()
        services.finish_run(first.pk, reason=EndReason.SUCCESS, keep_slot=True)
        assert not Run.objects.filter(pk=held[0].pk, enqueued_at__isnull=False).exists()  # kept, not handed over
        claimed = services.claim_next_held(task.pk, pid=4242)
        assert claimed is not None and claimed.pk == held[0].pk
        claimed.refresh_from_db()
        assert (claimed.status, claimed.worker_pid) == (RunStatus.RUNNING, 4242) and claimed.enqueued_at is not None
        assert not OrmQ.objects.exists()  # no trip through the queue
        services.finish_run(second.pk, reason=EndReason.SUCCESS)  # this one hands its slot to the queue
        assert queue.pending_run_ids() == {str(held[1].pk)}
        assert services.claim_next_held(task.pk, pid=4242) is None  # both slots taken
        assert Event.objects.filter(run_id=claimed.pk, name="task:started").exists()

    def test_a_new_run_waits_behind_held_runs_even_when_a_slot_is_free(self):
        task = make_task(on_overlap="queue", queue_max=5)
        first = api_trigger(task)
        second = api_trigger(task)
        services.cancel_run(first.pk)  # frees the slot and releases `second`
        second.refresh_from_db()
        assert second.enqueued_at is not None
        third = api_trigger(task)
        assert third.enqueued_at is None

    def test_terminate_stops_the_oldest_active_run(self):
        task = make_task(on_overlap="terminate")
        old = api_trigger(task)
        Run.objects.filter(pk=old.pk).update(status=RunStatus.RUNNING)
        new = api_trigger(task)
        old.refresh_from_db()
        assert old.stop_requested == StopRequest.TERMINATE and new.enqueued_at is not None

    def test_terminate_ends_a_still_queued_run_at_once(self):
        task = make_task(on_overlap="terminate")
        old = api_trigger(task)
        api_trigger(task)
        old.refresh_from_db()
        assert (old.status, old.end_reason) == (RunStatus.CANCELLED, EndReason.TERMINATED)
        assert events_of(old) == ["task:queued", "task:cancelled"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_triggers_of_a_skip_task_give_exactly_one_run():
    # A run that holds its slot for the whole race, whether or not a worker picks it up.
    task = make_task(on_overlap="skip", callable="tests.sample_tasks.cooperative", parameters=[number("seconds", 30)])
    start = threading.Barrier(50)
    outcomes: list[str] = []

    def fire() -> None:
        start.wait()
        try:
            services.trigger(task.pk, source=RunTrigger.API, requested_by="race")
            outcomes.append("run")
        except AlreadyRunning:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=fire) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes).count("run") == 1 and len(outcomes) == 50
    assert Run.objects.filter(task=task).count() == 1
    services.cancel_task(task.pk)


class TestCancel:
    def test_a_queued_run_is_cancelled_at_once(self):
        run = api_trigger(make_task())
        run = services.cancel_run(run.pk)
        assert (run.status, run.end_reason) == (RunStatus.CANCELLED, EndReason.CANCELLED)
        assert run.ended_at is not None
        assert events_of(run) == ["task:queued", "task:cancelled"]

    def test_a_running_run_is_asked_to_stop(self):
        run = api_trigger(make_task())
        Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)
        run = services.cancel_run(run.pk)
        assert run.status == RunStatus.RUNNING and run.cancel_requested

    def test_running_run_of_a_task_without_cancel_support(self):
        run = api_trigger(make_task(supports_cancel=False))
        Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)
        with pytest.raises(CancelUnsupported):
            services.cancel_run(run.pk)

    def test_an_ended_run_cannot_be_cancelled(self):
        run = services.cancel_run(api_trigger(make_task()).pk)
        with pytest.raises(RunAlreadyEnded):
            services.cancel_run(run.pk)

    def test_unknown_and_malformed_run_ids(self):
        with pytest.raises(RunNotFound):
            services.cancel_run("00000000-0000-0000-0000-000000000000")
        with pytest.raises(RunNotFound):
            services.cancel_run("not-a-uuid")

    def test_cancel_task_needs_an_active_run(self):
        task = make_task(on_overlap="queue", queue_max=3)
        with pytest.raises(NotRunning):
            services.cancel_task(task.pk)
        runs = [api_trigger(task) for _ in range(3)]
        cancelled = services.cancel_task(task.pk)
        assert {run.pk for run in cancelled} == {run.pk for run in runs}
        assert not Run.objects.active().exists()


def test_finish_run_is_won_once():
    run = api_trigger(make_task())
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)
    assert services.finish_run(run.pk, reason=EndReason.SUCCESS) is not None
    assert services.finish_run(run.pk, reason=EndReason.CRASHED) is None
    run.refresh_from_db()
    assert run.end_reason == EndReason.SUCCESS
    assert events_of(run).count("task:completed") == 1


def test_delete_run_refuses_active_runs_and_removes_events():
    run = api_trigger(make_task())
    with pytest.raises(RunActive):
        services.delete_run(run.pk)
    services.cancel_run(run.pk)
    services.delete_run(run.pk)
    assert not Run.objects.filter(pk=run.pk).exists()
    assert not Event.objects.filter(run_id=run.pk).exists()


class TestSync:
    def definition(self, **fields):
        return build_definition("report", {"callable": "tests.sample_tasks.noop", **fields}, source="file")

    def test_operator_changes_survive_a_re_sync(self):
        services.sync_definitions([self.definition(cron_string="0 3 * * *", title="Report")])
        services.set_operator_fields("report", cron_string="15 4 * * *", enabled=False)
        services.sync_definitions([self.definition(cron_string="0 5 * * *", title="Daily report")])
        task = Task.objects.get(pk="report")
        assert (task.cron_string, task.enabled, task.title) == ("15 4 * * *", False, "Daily report")
        assert task.definition["cron_string"] == "0 5 * * *"

    def test_a_vanished_definition_is_marked_removed_and_keeps_its_history(self):
        services.sync_definitions([self.definition()])
        ended = services.cancel_run(api_trigger("report").pk)
        queued = api_trigger("report", force=True)
        report = services.sync_definitions([])
        assert report["removed"] == ["report"]
        task = Task.objects.get(pk="report")
        assert task.is_removed
        queued.refresh_from_db()
        assert queued.status == RunStatus.CANCELLED and "removed" in queued.error
        assert Run.objects.filter(pk=ended.pk).exists()
        assert Event.objects.filter(name="task:updated", task_id="report").exists()
        services.sync_definitions([self.definition()])
        assert not Task.objects.get(pk="report").is_removed


# --- Retries ----------------------------------------------------------------------------------------


def fail(run, reason=EndReason.FAILED):
    """The worker side of a failing attempt: claimed, then ended with ``reason``."""
    assert services.claim_run(run.pk) is not None
    return services.finish_run(run.pk, reason=reason, error="boom")


def next_attempt(run):
    return Run.objects.filter(trigger=RunTrigger.RETRY, attempt=run.attempt + 1).order_by("created_at").last()


@pytest.mark.parametrize(("backoff", "delays"), [
    ("constant", [10, 10, 10]), ("linear", [10, 20, 30]), ("exponential", [10, 20, 40]),
])
def test_a_failing_run_is_retried_with_its_backoff_until_attempts_run_out(clock, backoff, delays):
    from tasks_app.scheduling.loop import Scheduler

    task = make_task(retry_attempts=3, retry_delay=10, retry_backoff=backoff, parameters=[number("n", 1)])
    first = api_trigger(task, parameters={"n": 7})
    run = first
    for delay in delays:
        fail(run)
        retry = next_attempt(run)
        assert (retry.status, retry.enqueued_at, retry.retry_of_id) == (RunStatus.QUEUED, None, first.pk)
        assert (retry.not_before - clock.now()).total_seconds() == delay
        assert retry.parameters == {"n": 7} and retry.triggered_by == "key:test"
        clock.advance(seconds=delay - 1)
        Scheduler(interval=1).tick()
        retry.refresh_from_db()
        assert retry.enqueued_at is None  # waits for its time
        clock.advance(seconds=1)
        Scheduler(interval=1).tick()
        retry.refresh_from_db()
        assert retry.enqueued_at == clock.now()  # handed to the queue
        run = retry
    fail(run)
    assert run.attempt == 4 and next_attempt(run) is None
    assert Run.objects.filter(task=task).count() == 4


@pytest.mark.parametrize("reason", [EndReason.TIMEOUT, EndReason.CRASHED])
def test_timeouts_and_crashes_are_retried(clock, reason):
    run = api_trigger(make_task(retry_attempts=1, retry_delay=0))
    fail(run, reason)
    retry = next_attempt(run)
    assert retry is not None and retry.enqueued_at == clock.now()  # no delay: admitted at once


@pytest.mark.parametrize("reason", [EndReason.CANCELLED, EndReason.TERMINATED, EndReason.SUCCESS])
def test_cancel_terminate_and_success_end_the_chain(reason):
    run = api_trigger(make_task(retry_attempts=3))
    fail(run, reason)
    assert not Run.objects.filter(trigger=RunTrigger.RETRY).exists()


def test_a_skipped_tick_is_not_retried():
    task = make_task(retry_attempts=3)
    api_trigger(task)
    skipped = schedule_trigger(task)
    assert skipped.end_reason == EndReason.SKIPPED
    assert not Run.objects.filter(trigger=RunTrigger.RETRY).exists()


def test_a_pending_retry_can_be_cancelled_which_ends_the_chain(clock):
    run = api_trigger(make_task(retry_attempts=3, retry_delay=60))
    fail(run)
    retry = next_attempt(run)
    cancelled = services.cancel_run(retry.pk)
    assert (cancelled.status, cancelled.end_reason) == (RunStatus.CANCELLED, EndReason.CANCELLED)
    clock.advance(minutes=5)
    assert Run.objects.filter(trigger=RunTrigger.RETRY).count() == 1


def test_a_retry_of_a_task_disabled_meanwhile_is_not_created():
    task = make_task(retry_attempts=3)
    run = api_trigger(task)
    Task.objects.filter(pk=task.pk).update(enabled=False)
    fail(run)
    assert next_attempt(run) is None


def test_operator_changes_recompute_the_next_tick_at_once_and_announce_it(clock):
    from datetime import UTC, datetime, timedelta

    clock.current = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    every = make_task(interval=6, interval_unit="hours", last_run_at=clock.now() - timedelta(hours=1))
    nightly = make_task(cron_string="0 3 * * *")
    services.initialise_schedules(now=clock.now())
    assert Task.objects.get(pk=every.pk).next_run_at == clock.now() + timedelta(hours=5)

    assert services.set_interval(every.pk, interval=2, unit="hours").next_run_at == clock.now() + timedelta(hours=1)
    assert services.set_interval(every.pk, interval=45, unit="minutes").next_run_at == clock.now() + timedelta(minutes=30)  # 11:00 + 2 x 45
    changed = services.set_schedule(nightly.pk, cron_string="0 9 * * *", timezone="America/New_York")
    assert changed.next_run_at == datetime(2026, 11, 23, 14, 0, tzinfo=UTC)  # 09:00 EST
    assert services.set_enabled(nightly.pk, enabled=False).next_run_at is None
    assert services.set_enabled(nightly.pk, enabled=True).next_run_at == datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
    updates = Event.objects.filter(name="task:updated")
    assert updates.filter(task_id=every.pk).count() == 2 and updates.filter(task_id=nightly.pk).count() == 3


@pytest.mark.parametrize(("call", "location"), [
    (lambda task: services.set_interval(task.pk, interval=0, unit="hours"), "body.interval"),
    (lambda task: services.set_interval(task.pk, interval=1.5, unit="hours"), "body.interval"),
    (lambda task: services.set_interval(task.pk, interval=True, unit="hours"), "body.interval"),
    (lambda task: services.set_interval(task.pk, interval=11 * 366, unit="days"), "body.interval"),
    (lambda task: services.set_interval(task.pk, interval=6, unit="weeks"), "body.unit"),
])
def test_set_interval_refuses_bad_values_whoever_calls(call, location):
    from tasks_app.exceptions import InvalidSchedule

    task = make_task(interval=6, interval_unit="hours")
    with pytest.raises(InvalidSchedule) as refused:
        call(task)
    assert refused.value.errors[0]["location"] == location
    task.refresh_from_db()
    assert (task.interval, task.interval_unit, task.overrides) == (6, "hours", [])


def test_set_schedule_refuses_a_bad_cron_or_zone_naming_each():
    from tasks_app.exceptions import InvalidSchedule

    task = make_task(cron_string="0 3 * * *")
    with pytest.raises(InvalidSchedule) as refused:
        services.set_schedule(task.pk, cron_string="61 * * * *", timezone="Mars/Olympus")
    assert [error["location"] for error in refused.value.errors] == ["body.cron_string", "body.timezone"]
    task.refresh_from_db()
    assert (task.cron_string, task.timezone) == ("0 3 * * *", "UTC")
    assert services.set_schedule(task.pk, cron_string="  30   2 * * * ", timezone="Europe/Paris").cron_string == "30 2 * * *"


def test_save_task_writes_only_what_the_admin_changed_and_announces_it(clock):
    from datetime import timedelta

    task = make_task(source="admin", interval=5, interval_unit="minutes", keep_runs=100)
    services.initialise_schedules(now=clock.now())
    edited = Task.objects.get(pk=task.pk)  # the admin's copy, read before the scheduler moves on
    Task.objects.filter(pk=task.pk).update(last_run_at=clock.now(), next_run_at=clock.now() + timedelta(minutes=5))
    edited.keep_runs, edited.title = 7, "Edited"

    saved = services.save_task(edited, changed=["keep_runs", "title"])

    task.refresh_from_db()
    assert (task.keep_runs, task.title, task.overrides) == (7, "Edited", [])
    assert task.last_run_at == clock.now() and task.next_run_at == clock.now() + timedelta(minutes=5)  # not put back
    assert saved.next_run_at == task.next_run_at
    assert Event.objects.filter(name="task:updated", task_id=task.pk).last().data["message"] == "Changed: keep_runs, title"


def test_save_task_remembers_operator_fields_and_starts_a_new_schedule_from_now(clock):
    from datetime import timedelta

    task = make_task(source="admin", interval=5, interval_unit="minutes")
    edited = Task.objects.get(pk=task.pk)
    edited.interval = 2

    assert services.save_task(edited, changed=["interval"]).next_run_at == clock.now() + timedelta(minutes=2)
    assert Task.objects.get(pk=task.pk).overrides == ["interval"]


def test_save_task_refuses_a_broken_schedule_whoever_built_the_object():
    from tasks_app.exceptions import InvalidSchedule

    task = make_task(source="admin", interval=5, interval_unit="minutes")
    edited = Task.objects.get(pk=task.pk)
    edited.interval, edited.cron_string, edited.timezone = 11 * 366, "0 3 * * *", "Mars/Olympus"
    edited.interval_unit = "days"
    with pytest.raises(InvalidSchedule) as refused:
        services.save_task(edited, changed=["interval", "interval_unit", "cron_string", "timezone"])
    assert [error["location"] for error in refused.value.errors] == ["body.timezone", "body.interval",
                                                                     "body.cron_string"]
    assert Task.objects.get(pk=task.pk).interval == 5


def test_a_task_added_in_the_admin_is_the_admins_and_survives_a_definitions_sync(clock):
    task = Task(id="added", callable="tests.sample_tasks.noop", interval=5, interval_unit="minutes")

    services.save_task(task, changed=["id", "callable", "interval", "interval_unit"], created=True)
    services.sync_definitions([])

    added = Task.objects.get(pk="added")
    assert added.source == "admin" and added.removed_at is None and added.next_run_at is not None
    assert Event.objects.filter(name="task:updated", task_id="added").exists()
