"""services/triggering.py: the one door for a new run, its overlap policy and held runs."""
import threading

import pytest
from django.db import connection, transaction
from django_q.models import OrmQ

from tasks_app import queue, services
from tasks_app.exceptions import (
    AlreadyRunning,
    DryRunUnsupported,
    InvalidParameters,
    NotManuallyRunnable,
    QueueFull,
    TaskDisabled,
    TaskNotFound,
    TaskRemoved,
    UseRestart,
)
from tasks_app.models import EndReason, Event, Run, RunStatus, RunTrigger, StopRequest, Task, TaskKind
from tasks_app.services.transitions import lock_and_count

from ..factories import make_service, make_task, number, string
from .conftest import api_trigger, schedule_trigger, events_of

pytestmark = pytest.mark.django_db


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

    @pytest.mark.parametrize("source", RunTrigger.values)
    def test_a_service_is_never_triggered_whatever_the_source(self, source):
        """Its instances' runs are its supervisor's to start (start, stop, restart)."""
        task = make_service(id="web")
        with pytest.raises(UseRestart) as caught:
            services.trigger(task, source=source, requested_by="test", force=True)
        assert caught.value.detail == "Task 'web' is a service, kept running by its supervisor: restart it, do not run it."
        assert (caught.value.status, caught.value.slug) == (409, "use-restart")
        assert not Run.objects.exists() and not Event.objects.exists() and OrmQ.objects.count() == 0

    @pytest.mark.parametrize("source", RunTrigger.values)
    def test_a_watcher_is_never_triggered_whatever_the_source(self, source):
        """It has no runs: it triggers its target when files change (API.md: 409 not-manually-runnable)."""
        task = make_task(id="watch", kind=TaskKind.WATCHER, callable="", manual_run=False,
                         watch={"paths": ["/srv"], "target": "scan"})
        with pytest.raises(NotManuallyRunnable) as caught:
            services.trigger(task, source=source, requested_by="test", force=True)
        assert caught.value.detail == ("Task 'watch' is a file watcher: it triggers 'scan' when files change, and is "
                                       "not run itself.")
        assert (caught.value.status, caught.value.slug) == (409, "not-manually-runnable")
        assert not Run.objects.exists() and not Event.objects.exists() and OrmQ.objects.count() == 0

    def test_the_kind_is_read_again_under_the_lock(self, clock):
        """A definitions sync may turn a task into a service between the door's read and its lock."""
        task = make_service(id="web")
        with transaction.atomic():
            policy, _ = lock_and_count(task.pk, now=clock.now())
        assert policy.kind == "service"

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

    def test_a_watcher_meeting_a_full_task_is_refused_and_leaves_no_run(self):
        """It keeps its changes and asks again once the task is free: a skipped run a second
        while a long scan runs would bury the task's history."""
        task = make_task(on_overlap="skip")
        first = api_trigger(task)
        with pytest.raises(AlreadyRunning):
            services.trigger(task, source=RunTrigger.WATCHER, requested_by="watcher:watch")
        queued = make_task(on_overlap="queue", queue_max=0)
        api_trigger(queued)
        with pytest.raises(QueueFull):
            services.trigger(queued, source=RunTrigger.WATCHER, requested_by="watcher:watch")
        assert list(Run.objects.filter(task=task)) == [first] and Run.objects.filter(task=queued).count() == 1
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
        held = [api_trigger(task), api_trigger(task), api_trigger(task), api_trigger(task)]
        first, _ = services.claim_run(first.pk), services.claim_run(second.pk)
        OrmQ.objects.all().delete()
        Task.objects.filter(pk=task.pk).update(max_concurrent=3)  # raised meanwhile: two slots free at the end
        claimed = services.finish_and_claim_next(first, reason=EndReason.SUCCESS, claim_for=4242)
        assert claimed == held[0].pk
        claimed = Run.objects.get(pk=claimed)
        assert (claimed.status, claimed.worker_pid) == (RunStatus.RUNNING, 4242) and claimed.enqueued_at is not None
        assert queue.pending_run_ids() == {str(held[1].pk)}  # the further free slot; the claimed run skips the queue
        services.finish_run(second.pk, reason=EndReason.SUCCESS)  # this one hands its slot to the queue
        assert queue.pending_run_ids() == {str(held[1].pk), str(held[2].pk)}
        forced = api_trigger(task, force=True)  # over the slots
        services.claim_run(forced.pk)
        assert services.finish_and_claim_next(Run.objects.get(pk=forced.pk), reason=EndReason.SUCCESS,
                                              claim_for=4242) is None  # three slots taken without it
        assert Run.objects.get(pk=held[3].pk).enqueued_at is None
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
