"""services/transitions.py and outcomes.py: a conditional end won once, the worker's end that
claims the next held run, deleting a run, retries."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_q.models import OrmQ

from tasks_app import queue, services
from tasks_app.definitions.process import check_process
from tasks_app.exceptions import RunActive
from tasks_app.models import EndReason, Event, EventName, Run, RunStatus, RunTrigger, Task, TaskKind
from tasks_app.services.transitions import FOR_EXECUTION

from ..factories import make_run, make_task, number
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


@pytest.mark.postgres
def test_read_for_execution_reads_what_the_orm_would_in_one_statement():
    task = make_task(kind=TaskKind.COMMAND, callable="", timeout=30, parameters=[number("depth", 2)],
                     process=check_process("t", {"argv": ["du", "-d"], "env": {"LANG": "C"}}))
    run = make_run(task, parameters={"depth": 3}, attempt=2, dry_run=True, progress_message="caf\u00e9")
    expected = Run.objects.select_related("task").only(*FOR_EXECUTION).get(pk=run.pk)
    with CaptureQueriesContext(connection) as queries:
        read = services.read_for_execution(str(run.pk))
        fields = {name: getattr(read.task if name.startswith("task__") else read, name.removeprefix("task__"))
                  for name in FOR_EXECUTION}
    assert len(queries) == 1
    assert fields == {name: getattr(expected.task if name.startswith("task__") else expected,
                                    name.removeprefix("task__")) for name in FOR_EXECUTION}
    assert (read.get_deferred_fields(), read.task.get_deferred_fields()) == (
        expected.get_deferred_fields(), expected.task.get_deferred_fields())
    assert read.created_at == run.created_at  # left out, loaded when touched
    with pytest.raises(Run.DoesNotExist):
        services.read_for_execution("00000000-0000-0000-0000-000000000000")


# --- The hand-over: a worker's end claims the task's next held run --------------------------------


def running_with_held(*, held: int, **fields) -> tuple[Run, list[Run]]:
    """A run of a ``queue`` task claimed by a worker, and ``held`` runs held behind it."""
    task = make_task(on_overlap="queue", queue_max=100, max_concurrent=1, **fields)
    first = api_trigger(task)
    waiting = [api_trigger(task) for _ in range(held)]
    OrmQ.objects.all().delete()
    return services.claim_run(first.pk, task_id=task.pk), waiting


def statements(queries: CaptureQueriesContext, *, starting: str) -> list[str]:
    return [query["sql"] for query in queries.captured_queries if query["sql"].lstrip().startswith(starting)]


@pytest.mark.postgres
def test_a_workers_end_claims_the_next_held_run_in_the_same_transaction_under_one_lock():
    run, held = running_with_held(held=2)
    with CaptureQueriesContext(connection) as queries:
        claimed = services.finish_and_claim_next(run, reason=EndReason.SUCCESS, claim_for=4242)
    assert claimed == held[0].pk
    # One transaction (the test's own wraps it: one savepoint), and the task's row locked once
    # (PostgreSQL; SQLite's IMMEDIATE transaction is its lock).
    assert len(statements(queries, starting="SAVEPOINT")) == 1
    assert len([sql for sql in statements(queries, starting="SELECT") if "FOR UPDATE" in sql]) == (
        1 if connection.vendor == "postgresql" else 0)
    run.refresh_from_db()
    following = Run.objects.get(pk=claimed)
    assert (run.status, following.status, following.worker_pid) == (RunStatus.COMPLETED, RunStatus.RUNNING, 4242)
    assert following.enqueued_at == following.started_at == run.ended_at
    assert Run.objects.get(pk=held[1].pk).enqueued_at is None and not OrmQ.objects.exists()  # no trip through the queue
    # The end's event comes before the next run's start.
    assert list(Event.objects.filter(run_id__in=[run.pk, claimed], name__in=[EventName.COMPLETED, EventName.STARTED])
                .order_by("id").values_list("run_id", "name")) == [
        (run.pk, EventName.STARTED), (run.pk, EventName.COMPLETED), (claimed, EventName.STARTED)]


def test_an_end_that_lost_claims_nothing_and_the_winner_handed_the_slot_to_the_queue():
    run, held = running_with_held(held=2)
    assert services.finish_run(run.pk, reason=EndReason.CRASHED) is not None  # the reaper (or watchdog) first
    assert services.finish_and_claim_next(run, reason=EndReason.SUCCESS, claim_for=4242) is None
    run.refresh_from_db()
    assert (run.status, run.end_reason) == (RunStatus.FAILED, EndReason.CRASHED)
    assert queue.pending_run_ids() == {str(held[0].pk)}
    assert not Run.objects.filter(status=RunStatus.RUNNING).exists()
    assert Run.objects.get(pk=held[1].pk).enqueued_at is None


def test_an_end_ended_again_after_its_answer_was_lost_finds_the_run_it_claimed_and_claims_no_other():
    """The worker's end committed with its claim, then what followed raised (a retry the database
    refused) or the commit's answer never came: the worker records the end again, and loses to
    itself. The run it claimed must still be run, by this worker."""
    run, held = running_with_held(held=2)
    claimed = services.finish_and_claim_next(run, reason=EndReason.SUCCESS, claim_for=4242)
    assert services.finish_and_claim_next(run, reason=EndReason.SUCCESS, claim_for=4242) == claimed == held[0].pk
    assert services.finish_and_claim_next(run, reason=EndReason.SUCCESS, claim_for=4243) is None  # not another's
    assert Run.objects.get(pk=held[1].pk).enqueued_at is None
    assert Event.objects.filter(run_id=claimed, name=EventName.STARTED).count() == 1


def test_a_task_no_longer_queue_hands_the_freed_slot_to_the_queue_not_to_the_worker():
    run, held = running_with_held(held=2)
    Task.objects.filter(pk=run.task_id).update(on_overlap="skip")  # the operator changed it meanwhile
    assert services.finish_and_claim_next(run, reason=EndReason.SUCCESS, claim_for=4242) is None
    assert queue.pending_run_ids() == {str(held[0].pk)}
    assert not Run.objects.filter(status=RunStatus.RUNNING).exists()


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
