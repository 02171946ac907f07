"""execution/context.py: what task code reports through ``ctx`` (progress, activity, output)
and how it reaches the database: through a real qcluster worker, and in this process on a
claimed run."""
import threading

import pytest

from tasks_app import services
from tasks_app.execution.context import RunContext
from tasks_app.models import Activity, EndReason, Event, RunStatus

from ..conftest import run_until_ended
from ..factories import make_run, make_task, number
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
        assert "processed 10 items" in run.output and "printed line" in run.output
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
        assert "found caf\\udce9.rom\\x00" in run.output and "logged caf\\udce9.rom" in run.output


@pytest.mark.django_db
def test_a_claimed_run_carries_what_execution_reads_without_another_query(django_assert_num_queries):
    run = services.claim_run(make_run(make_task()).pk)
    with django_assert_num_queries(0):
        RunContext(run, stop_event=threading.Event())
        assert (run.task.kind, run.task.callable, run.task.timeout, run.task.on_overlap) == (
            "python", "tests.sample_tasks.noop", 60, "skip")
