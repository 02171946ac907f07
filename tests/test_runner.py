"""The runner through a real qcluster worker on the test database."""
import os
import signal

import pytest
from django.db import transaction
from django_q.models import OrmQ

from tasks_app import queue, services
from tasks_app.models import Activity, EndReason, Event, Run, RunStatus, RunTrigger

from .conftest import run_until_ended, wait_until
from .factories import make_task, number, string

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("qcluster")]


def trigger(task, **kwargs):
    return services.trigger(task, source=RunTrigger.API, requested_by="key:test", **kwargs)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed worker may linger as a zombie until its parent reaps it.
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().split(")")[-1].split()[0] != "Z"


def test_a_run_records_progress_activity_summary_output_result_and_events():
    task = make_task(callable="tests.sample_tasks.items", parameters=[number("count", 10)], supports_dry_run=True)
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


def test_a_failing_task_keeps_its_traceback_out_of_the_error_message():
    run = run_until_ended(trigger(make_task(callable="tests.sample_tasks.fail")))
    assert (run.status, run.end_reason) == (RunStatus.FAILED, EndReason.FAILED)
    assert run.error == "ValueError: disk on fire"
    assert "Traceback (most recent call last)" in run.traceback and "Traceback" not in run.error
    assert Event.objects.filter(run_id=run.id, name="task:error").exists()


def test_a_result_that_is_not_json_fails_the_run_clearly():
    run = run_until_ended(trigger(make_task(callable="tests.sample_tasks.bad_result")))
    assert run.end_reason == EndReason.FAILED and "not JSON-serialisable" in run.error


def test_a_missing_callable_fails_the_run():
    run = run_until_ended(trigger(make_task(callable="tests.sample_tasks.gone")))
    assert run.end_reason == EndReason.FAILED and "cannot import" in run.error


def test_cancelling_a_cooperative_run_ends_it_cancelled():
    task = make_task(callable="tests.sample_tasks.cooperative", parameters=[number("seconds", 30)])
    run = trigger(task)
    wait_until(lambda: Run.objects.get(pk=run.pk).status == RunStatus.RUNNING, what="run to start")
    services.cancel_run(run.pk)
    run = run_until_ended(run, timeout=10)
    assert (run.status, run.end_reason) == (RunStatus.CANCELLED, EndReason.CANCELLED)
    assert Event.objects.filter(run_id=run.id, name="task:cancelled").count() == 1


def test_a_run_that_ignores_cancel_is_killed_after_the_grace_period():
    task = make_task(callable="tests.sample_tasks.stubborn", parameters=[number("seconds", 60)])
    run = trigger(task)
    run = wait_until(lambda: Run.objects.filter(pk=run.pk, status=RunStatus.RUNNING).first(), what="start")
    services.cancel_run(run.pk)
    run = run_until_ended(run, timeout=15)
    assert (run.status, run.end_reason) == (RunStatus.CANCELLED, EndReason.CANCELLED)
    assert "Did not stop" in run.error
    wait_until(lambda: not pid_alive(run.worker_pid), what="the stuck worker to be killed")


def test_a_callable_that_never_checks_times_out_and_its_worker_is_stopped():
    task = make_task(callable="tests.sample_tasks.stubborn", timeout=1, parameters=[number("seconds", 60)])
    run = run_until_ended(trigger(task), timeout=15)
    assert (run.status, run.end_reason) == (RunStatus.FAILED, EndReason.TIMEOUT)
    assert run.error == "Timed out after 1 s."
    assert 1 <= run.duration < 5
    wait_until(lambda: not pid_alive(run.worker_pid), what="the timed-out worker to be killed")
    # The cluster replaced the worker and keeps running runs.
    assert run_until_ended(trigger(make_task())).status == RunStatus.COMPLETED


def test_a_duplicated_delivery_does_not_execute_twice(tmp_path):
    path = tmp_path / "executions.txt"
    task = make_task(callable="tests.sample_tasks.record", parameters=[string("path"), number("hold", 0.3)])
    run = trigger(task, parameters={"path": str(path)})
    with transaction.atomic():
        queue.enqueue(queue.prepare(run))  # the same run handed to the queue a second time
    run = run_until_ended(run)
    wait_until(lambda: not OrmQ.objects.exists(), what="both deliveries to be acknowledged")
    assert run.status == RunStatus.COMPLETED
    assert path.read_text().count(str(run.id)) == 1


def test_a_worker_killed_mid_run_leaves_a_run_that_ends_crashed():
    task = make_task(callable="tests.sample_tasks.stubborn", parameters=[number("seconds", 60)])
    run = trigger(task)
    run = wait_until(lambda: Run.objects.filter(pk=run.pk, status=RunStatus.RUNNING).first(), what="start")
    os.kill(run.worker_pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(run.worker_pid), what="the worker to die")
    [reaped] = services.reap_lost_runs()
    assert reaped.pk == run.pk
    run.refresh_from_db()
    assert (run.status, run.end_reason, run.exit_code) == (RunStatus.FAILED, EndReason.CRASHED, None)
    assert Event.objects.filter(run_id=run.id, name="task:error").exists()


def test_progress_writes_are_throttled_and_the_last_one_lands():
    task = make_task(callable="tests.sample_tasks.fast_progress", parameters=[number("count", 20000)])
    run = run_until_ended(trigger(task))
    assert run.status == RunStatus.COMPLETED
    assert run.progress == {"current": 20000, "total": 20000, "percent": 100.0, "message": "step 20000"}
    progress_events = Event.objects.filter(run_id=run.id, name="task:progress")
    assert 1 <= progress_events.count() <= 1 + run.duration / 0.25 + 1
    assert progress_events.last().data["progress"]["current"] == 20000


def test_the_scheduler_process_ends_a_run_whose_worker_was_killed(process_env):
    import subprocess
    import sys

    from .conftest import ROOT

    scheduler = subprocess.Popen([sys.executable, "manage.py", "scheduler"], cwd=ROOT, env=process_env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        task = make_task(callable="tests.sample_tasks.stubborn", parameters=[number("seconds", 60)])
        run = trigger(task)
        run = wait_until(lambda: Run.objects.filter(pk=run.pk, status=RunStatus.RUNNING).first(), what="start")
        os.kill(run.worker_pid, signal.SIGKILL)
        run = run_until_ended(run, timeout=10)
        assert (run.status, run.end_reason) == (RunStatus.FAILED, EndReason.CRASHED)
    finally:
        scheduler.terminate()
        assert scheduler.wait(10) == 0


def test_text_no_database_takes_is_escaped_where_task_code_writes_it_and_the_run_completes():
    task = make_task(callable="tests.sample_tasks.odd_text", parameters=[{"key": "fail", "type": "boolean"}])
    run = run_until_ended(trigger(task))
    assert (run.status, run.end_reason) == (RunStatus.COMPLETED, EndReason.SUCCESS), run.error
    assert run.progress_message == "done" and run.progress_total == 2
    assert run.result == {"file": "caf\\udce9.rom", "caf\\udce9.rom": "caf\\udce9.rom"}
    [row] = Activity.objects.filter(run=run)
    assert (row.item_id, row.item_title, row.message) == ("caf\\udce9.rom", "caf\\udce9.rom\\x00", "caf\\udce9.rom")
    assert row.data == {"caf\\udce9.rom": ["caf\\udce9.rom"]}
    assert "found caf\\udce9.rom\\x00" in run.output and "logged caf\\udce9.rom" in run.output


def test_a_task_failing_with_such_text_records_its_real_error_not_a_crash():
    task = make_task(callable="tests.sample_tasks.odd_text", parameters=[{"key": "fail", "type": "boolean"}])
    run = run_until_ended(trigger(task, parameters={"fail": True}))
    assert (run.status, run.end_reason) == (RunStatus.FAILED, EndReason.FAILED)
    assert run.error == "ValueError: cannot open caf\\udce9.rom\\x00"
    assert "cannot open caf\\udce9.rom" in run.traceback


def test_a_result_with_nan_fails_the_run_clearly():
    run = run_until_ended(trigger(make_task(callable="tests.sample_tasks.nan_result")))
    assert run.end_reason == EndReason.FAILED and "not JSON-serialisable" in run.error and "Out of range" in run.error


def test_the_worker_that_frees_a_queue_slot_runs_the_next_held_run_itself():
    task = make_task(callable="tests.sample_tasks.noop", on_overlap="queue", queue_max=10)
    with transaction.atomic():  # committed together: no worker can take the first one before the rest exist
        runs = [trigger(task) for _ in range(5)]  # one handed to the queue, four held
    assert [run.enqueued_at is not None for run in runs] == [True, False, False, False, False]
    ended = [run_until_ended(run) for run in runs]
    assert all(run.status == RunStatus.COMPLETED for run in ended)
    assert [run.started_at for run in ended] == sorted(run.started_at for run in ended)  # first in, first out
    # The one worker went from each run to the next, none of them through the queue (with two
    # workers, a message would go to whichever takes it).
    assert len({run.worker_pid for run in ended}) == 1
    assert not OrmQ.objects.exists()
