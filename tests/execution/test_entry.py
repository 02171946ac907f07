"""execution/entry.py through a real qcluster worker on the test database: the claim, the
executor chosen by the task's kind, a worker dying mid-run, and the hand-over of held runs."""
import os
import re
import signal
import subprocess
import sys

import pytest
from django.db import transaction
from django_q.models import OrmQ

from tasks_app import queue, services
from tasks_app.execution.entry import execute_claimed
from tasks_app.models import EndReason, Event, EventName, LogOnFull, Run, RunStatus, StopRequest, TaskKind

from ..conftest import ROOT, run_until_ended, wait_until
from ..factories import log_of, make_run, make_task, number, string
from .conftest import pid_alive, trigger

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("qcluster")]


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


def test_a_run_of_a_kind_no_executor_runs_ends_failed_saying_so_and_the_worker_goes_on():
    run = make_run(make_task(kind=TaskKind.WATCHER, callable=""))  # the trigger door refuses watchers: a run
    with transaction.atomic():                                       # queued before its task became one
        queue.enqueue(queue.prepare(run))
    run = run_until_ended(run)
    assert (run.status, run.end_reason) == (RunStatus.FAILED, EndReason.FAILED)
    assert run.error == "Tasks of kind 'watcher' cannot run here: this worker runs only python, command tasks."
    assert run.traceback == "" and run.started_at and run.ended_at
    assert Event.objects.filter(run_id=run.id, name="task:error").count() == 1
    assert run_until_ended(trigger(make_task())).status == RunStatus.COMPLETED


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


def test_the_scheduler_process_ends_a_run_whose_worker_was_killed(process_env):
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


# --- A run's log and its cap, through the whole run ---------------------------------------------------


def test_a_python_run_keeps_the_newest_log_max_size_bytes_of_its_output_and_counts_the_rest():
    """Python runs: LOG_MAX_SIZE bytes (1 MiB in the worker), drop_old."""
    task = make_task(callable="tests.sample_tasks.flood", parameters=[number("lines", 100_000), number("stubborn", 1)])
    run = run_until_ended(trigger(task))
    assert (run.status, run.end_reason) == (RunStatus.COMPLETED, EndReason.SUCCESS)
    lines = b"".join(b"flood line %06d\n" % index for index in range(100_000))
    dropped, kept, size = log_of(run)
    assert (size, len(kept), dropped) == (len(lines), 1024 * 1024, len(lines) - 1024 * 1024)
    assert kept == lines[-1024 * 1024:]
    assert Event.objects.filter(run_id=run.id, name=EventName.LOG).exists()


def claimed(callable: str, **parameters: object) -> Run:
    task = make_task(callable=callable, parameters=[number(key) for key in parameters])
    return services.claim_run(make_run(task, parameters=parameters).pk)


@pytest.mark.parametrize("stubborn", [0, 1], ids=["cooperative", "stubborn"])
def test_a_log_past_a_kill_task_cap_stops_the_run_which_ends_failed_log_overflow(stubborn):
    """In this process: python runs have no kill_task of their own; command runs will."""
    run = claimed("tests.sample_tasks.flood", lines=5000, stubborn=stubborn)
    reason = execute_claimed(run, log_max_size=1000, log_on_full=LogOnFull.KILL_TASK).reason
    run.refresh_from_db()
    assert (reason, run.status, run.end_reason) == (EndReason.LOG_OVERFLOW, RunStatus.FAILED, EndReason.LOG_OVERFLOW)
    assert run.error == ("Its output passed log_max_size (1,000 bytes) with log_on_full = kill_task; "
                         "the run was stopped.")
    assert run.stop_requested == StopRequest.OVERFLOW
    dropped, kept, size = log_of(run)
    lines = b"".join(b"flood line %06d\n" % index for index in range(5000))
    assert dropped == 0 and kept[:1000] == lines[:1000] and size == len(kept)
    cut_line, marker, count, last = kept[1000:].split(b"\n")  # the cut fell inside a line
    assert (cut_line, last) == (b"", b"")
    assert marker == b"[taskdeck: log_max_size of 1,000 bytes reached; stopping the run (log_on_full = kill_task)]"
    if stubborn:  # it printed all it had, and the rest was counted
        assert count == f"[taskdeck: {len(lines) - 1000:,} bytes dropped]".encode()
    else:  # it stopped once asked
        assert re.fullmatch(rb"\[taskdeck: [0-9,]+ bytes dropped\]", count) and run.result is None
    assert Event.objects.filter(run_id=run.id, name="task:error").exists()


def test_a_log_past_a_drop_new_cap_keeps_its_first_bytes_and_the_run_goes_on():
    run = claimed("tests.sample_tasks.flood", lines=5000, stubborn=1)
    assert execute_claimed(run, log_max_size=1000, log_on_full=LogOnFull.DROP_NEW).reason == EndReason.SUCCESS
    _, kept, size = log_of(run)
    lines = b"".join(b"flood line %06d\n" % index for index in range(5000))
    assert kept == (lines[:1000] + b"\n"
                    + b"[taskdeck: log_max_size of 1,000 bytes reached; later output is dropped (log_on_full = drop_new)]\n"
                    + f"[taskdeck: {len(lines) - 1000:,} bytes dropped]\n".encode())
    assert size == len(kept)
