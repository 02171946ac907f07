"""execution/watchdog.py through a real qcluster worker: stop requests relayed to the run's code,
the grace they get, the timeout, and the kill of a worker whose code would not stop."""
import pytest

from tasks_app import services
from tasks_app.models import EndReason, Event, EventName, Run, RunStatus

from ..conftest import run_until_ended, wait_until
from ..factories import log_of, make_task, number, string
from .conftest import pid_alive, trigger

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("qcluster")]


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


def test_a_run_killed_on_timeout_keeps_its_output_and_its_log_ends_before_the_run(tmp_path):
    task = make_task(callable="tests.sample_tasks.talking", timeout=1,
                     parameters=[number("lines", 20), string("gate")])
    run = run_until_ended(trigger(task, parameters={"gate": str(tmp_path / "never")}), timeout=15)
    assert (run.status, run.end_reason) == (RunStatus.FAILED, EndReason.TIMEOUT)
    _, kept, size = log_of(run)
    assert kept.count(b"before ") == 20 and b"after " not in kept
    names = list(Event.objects.filter(run_id=run.id).order_by("id").values_list("name", flat=True))
    assert names[-1] == "task:error" and EventName.LOG in names  # a log stream sees all of it, then the end
    wait_until(lambda: not pid_alive(run.worker_pid), what="the stuck worker to be killed")
