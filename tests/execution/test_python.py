"""execution/python.py through a real qcluster worker: how a callable's return value and its
exceptions become the run's end."""
import pytest

from tasks_app.models import EndReason, Event, RunStatus

from ..conftest import run_until_ended
from ..factories import make_task
from .conftest import trigger

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("qcluster")]


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


def test_a_task_failing_with_such_text_records_its_real_error_not_a_crash():
    task = make_task(callable="tests.sample_tasks.odd_text", parameters=[{"key": "fail", "type": "boolean"}])
    run = run_until_ended(trigger(task, parameters={"fail": True}))
    assert (run.status, run.end_reason) == (RunStatus.FAILED, EndReason.FAILED)
    assert run.error == "ValueError: cannot open caf\\udce9.rom\\x00"
    assert "cannot open caf\\udce9.rom" in run.traceback


def test_a_result_with_nan_fails_the_run_clearly():
    run = run_until_ended(trigger(make_task(callable="tests.sample_tasks.nan_result")))
    assert run.end_reason == EndReason.FAILED and "not JSON-serialisable" in run.error and "Out of range" in run.error
