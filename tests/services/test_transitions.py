"""services/transitions.py and outcomes.py: a conditional end won once, deleting a run, retries."""
import pytest

from tasks_app import services
from tasks_app.exceptions import RunActive
from tasks_app.models import EndReason, Event, Run, RunStatus, RunTrigger, Task

from ..factories import make_task, number
from .conftest import api_trigger, schedule_trigger, events_of

pytestmark = pytest.mark.django_db


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
