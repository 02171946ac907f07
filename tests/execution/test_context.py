"""execution/context.py: what task code reports through ``ctx`` (progress, activity, output,
cancellation) and how it reaches the database: through a real qcluster worker, and in this
process on a claimed run where the throttle and the output cap are set small."""
import threading

import pytest

from tasks_app import services
from tasks_app.execution.context import RunCancelled, RunContext
from tasks_app.models import Activity, EndReason, Event, LogOnFull, Run, RunStatus, StopRequest

from ..conftest import run_until_ended, wait_until
from ..factories import log_of, make_run, make_task, number
from .conftest import trigger


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("qcluster")
class TestInAWorker:
    def test_a_run_records_progress_activity_summary_output_result_and_events(self):
        task = make_task(callable="tests.sample_tasks.items", parameters=[number("count", 10)],
                         supports_dry_run=True)
        run = run_until_ended(trigger(task, dry_run=True))
        assert (run.status, run.end_reason) == (RunStatus.COMPLETED, EndReason.SUCCESS)
        assert run.result == {"count": 10, "dry_run": True}
        assert run.progress == {"current": 10, "total": 10, "percent": 100.0, "message": "item 10"}
        assert Activity.objects.filter(run=run).count() == 10
        assert run.summary == {"items": 10, "actions": {"keep": 7, "delete": 3}, "statuses": {"success": 9, "failed": 1}}
        assert (run.items_processed, run.items_affected) == (10, 3)
        _, log, _ = log_of(run)
        assert b"INFO processed 10 items\n" in log and b"printed line\n" in log
        assert run.started_at and run.ended_at and run.duration >= 0 and run.worker_pid
        names = list(Event.objects.filter(run_id=run.id).values_list("name", flat=True))
        assert names[:2] == ["task:queued", "task:started"] and names[-1] == "task:completed"
        assert "task:progress" in names

    def test_progress_writes_are_throttled_and_the_last_one_lands(self):
        task = make_task(callable="tests.sample_tasks.fast_progress", parameters=[number("count", 20000)])
        run = run_until_ended(trigger(task))
        assert run.status == RunStatus.COMPLETED
        assert run.progress == {"current": 20000, "total": 20000, "percent": 100.0, "message": "step 20000"}
        progress_events = Event.objects.filter(run_id=run.id, name="task:progress")
        assert 1 <= progress_events.count() <= 1 + run.duration / 0.25 + 1
        assert progress_events.last().data["progress"]["current"] == 20000

    def test_text_no_database_takes_is_escaped_where_task_code_writes_it_and_the_run_completes(self):
        task = make_task(callable="tests.sample_tasks.odd_text", parameters=[{"key": "fail", "type": "boolean"}])
        run = run_until_ended(trigger(task))
        assert (run.status, run.end_reason) == (RunStatus.COMPLETED, EndReason.SUCCESS), run.error
        assert run.progress_message == "done" and run.progress_total == 2
        assert run.result == {"file": "caf\\udce9.rom", "caf\\udce9.rom": "caf\\udce9.rom"}
        [row] = Activity.objects.filter(run=run)
        assert (row.item_id, row.item_title, row.message) == ("caf\\udce9.rom", "caf\\udce9.rom\\x00", "caf\\udce9.rom")
        assert row.data == {"caf\\udce9.rom": ["caf\\udce9.rom"]}
        # The log keeps bytes: the undecodable name's own byte, and the NUL, as written.
        _, log, _ = log_of(run)
        assert b"found caf\xe9.rom\x00\n" in log and b"logged caf\xe9.rom\n" in log


@pytest.fixture
def context(settings, clock):
    """A ctx on a run claimed in this process (no worker, no watchdog) and its stop event; its
    writes wait a minute apart (``clock.advance`` moves past that), its output is capped at 20
    bytes. Its log writer leaves the process's flusher (joined at the first output) afterwards."""
    settings.TASKDECK = {**settings.TASKDECK, "PROGRESS_INTERVAL": 60.0, "LOG_MAX_SIZE": 20}
    run = services.claim_run(make_run(make_task()).pk)
    stop = threading.Event()
    ctx = RunContext(run, stop_event=stop)
    yield ctx, stop
    ctx.log_writer.abandon()


def stored(ctx: RunContext) -> Run:
    return Run.objects.get(pk=ctx.run_id)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_reports_wait_for_the_progress_interval_then_land_together(context, clock):
    ctx, _ = context
    ctx.progress(1, 4, "one")
    ctx.activity(item_id="a", action="delete", status="success")
    ctx.write_output("first line\n")
    run = stored(ctx)
    assert (run.progress_current, run.items_processed) == (None, 0)
    assert not Activity.objects.filter(run_id=ctx.run_id).exists()
    assert not Event.objects.filter(run_id=ctx.run_id, name="task:progress").exists()

    clock.advance(seconds=61)
    ctx.progress(2, 4, "two")
    run = stored(ctx)
    assert run.progress == {"current": 2, "total": 4, "percent": 50.0, "message": "two"}
    assert (run.items_processed, run.items_affected) == (1, 1)
    assert run.summary == {"items": 1, "actions": {"delete": 1}, "statuses": {"success": 1}}
    assert Activity.objects.filter(run_id=ctx.run_id).count() == 1
    [event] = Event.objects.filter(run_id=ctx.run_id, name="task:progress")
    assert event.data["progress"]["current"] == 2 and event.data["message"] == "two"
    # Output goes its own way: the log flusher stores it once it has waited FLUSH_INTERVAL.
    wait_until(lambda: log_of(run)[1] == b"first line\n", what="the output to be stored")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_forced_flush_writes_at_once_and_a_flush_with_nothing_new_writes_nothing(context):
    ctx, _ = context
    ctx.write_output("done\n")
    ctx.flush(force=True)
    assert log_of(stored(ctx)) == (0, b"done\n", 5)
    ctx.flush(force=True)
    assert log_of(stored(ctx)) == (0, b"done\n", 5)
    assert not Event.objects.filter(run_id=ctx.run_id, name="task:progress").exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_output_past_the_cap_keeps_its_newest_bytes_and_counts_the_ones_dropped(context):
    ctx, _ = context
    ctx.write_output("0123456789")
    ctx.flush(force=True)
    assert log_of(stored(ctx)) == (0, b"0123456789", 10)

    print("abcdefghij", file=ctx.output_stream)  # 21 bytes in all: the oldest one goes
    ctx.flush(force=True)
    assert log_of(stored(ctx)) == (1, b"123456789abcdefghij\n", 21)

    ctx.log.info("x")  # "HH:MM:SS INFO x\n": 16 bytes more, so 16 more go
    ctx.flush(force=True)
    dropped, kept, size = log_of(stored(ctx))
    assert kept.startswith(b"hij\n") and kept.endswith(b" INFO x\n") and len(kept) == 20
    assert (dropped, size) == (17, 37)

    ctx.write_output("€" * 7)  # 21 bytes: the cut falls inside the first €; bytes are kept exactly
    ctx.flush(force=True)
    assert log_of(stored(ctx)) == (38, "€".encode()[1:] + "€".encode() * 6, 58)
    ctx.close_log()
    assert log_of(stored(ctx)) == (38, "€".encode()[1:] + "€".encode() * 6, 58)  # drop_old adds no marker


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_kill_task_cap_stores_a_marker_asks_the_run_to_stop_and_sets_the_stop_event(settings):
    run = services.claim_run(make_run(make_task()).pk)
    stop = threading.Event()
    ctx = RunContext(run, stop_event=stop, log_max_size=12, log_on_full=LogOnFull.KILL_TASK)
    try:
        ctx.write_output("0123456789")
        assert not ctx.log_overflowed
        ctx.write_output("abcdef")  # 16 bytes: 12 kept, the marker, the rest discarded
        assert ctx.log_overflowed
        wait_until(stop.is_set, what="the writer's thread to store the marker and ask the run to stop")
        assert stored(ctx).stop_requested == StopRequest.OVERFLOW and ctx.cancelled
        ctx.write_output("more\n")
        ctx.close_log()
    finally:
        ctx.log_writer.abandon()
    assert log_of(stored(ctx))[1] == (b"0123456789ab\n"
                                     b"[taskdeck: log_max_size of 12 bytes reached; stopping the run (log_on_full = kill_task)]\n"
                                     b"[taskdeck: 9 bytes dropped]\n")


@pytest.mark.postgres
@pytest.mark.django_db
def test_check_cancelled_raises_once_the_stop_event_is_set_and_remembers_it_was_seen(context):
    ctx, stop = context
    ctx.check_cancelled()
    assert not ctx.cancelled and not ctx.stop_seen
    stop.set()
    with pytest.raises(RunCancelled):
        ctx.check_cancelled()
    assert ctx.stop_seen


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_claimed_run_carries_what_execution_reads_without_another_query(django_assert_num_queries):
    run = services.claim_run(make_run(make_task()).pk)
    with django_assert_num_queries(0):
        RunContext(run, stop_event=threading.Event())
        assert (run.task.kind, run.task.callable, run.task.timeout, run.task.on_overlap) == (
            "python", "tests.sample_tasks.noop", 60, "skip")
