"""services/stopping.py: cancels of queued and running runs, and of a task's active runs."""
import pytest

from tasks_app import services
from tasks_app.exceptions import (
    CancelUnsupported,
    NotRunning,
    RunAlreadyEnded,
    RunNotFound,
)
from tasks_app.models import EndReason, Run, RunStatus

from ..factories import make_task
from .conftest import api_trigger, events_of

pytestmark = pytest.mark.django_db


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
