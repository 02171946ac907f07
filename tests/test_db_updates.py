"""tasks_app/db/updates.py: update_row writes what QuerySet.update writes, only while its conditions hold."""
import pytest
from django.db.models import F

from tasks_app import clock
from tasks_app.db.updates import update_row
from tasks_app.models import EndReason, Run, RunStatus

from .factories import make_run, make_task

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

ENDED = ["status", "end_reason", "ended_at", "result", "error", "exit_code", "exit_signal", "pid", "enqueued_at"]


def test_it_writes_what_the_orm_writes_nulls_json_and_times_alike():
    task = make_task()
    by_hand, by_orm = make_run(task, result={"kept": 1}), make_run(task, result={"kept": 1})
    values = {"status": RunStatus.COMPLETED, "end_reason": EndReason.SUCCESS, "ended_at": clock.now(),
              "result": None, "error": "caf\u00e9", "exit_code": 0, "exit_signal": None, "pid": 4242}
    assert update_row(Run, str(by_hand.pk), values, where={"status": [RunStatus.QUEUED, RunStatus.RUNNING]})
    assert Run.objects.filter(pk=by_orm.pk, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).update(**values) == 1
    rows = Run.objects.filter(pk__in=[by_hand.pk, by_orm.pk]).values_list("pk", *ENDED)
    assert [row[1:] for row in sorted(rows, key=lambda row: row[0] != by_hand.pk)] == [
        (*[values.get(name) for name in ENDED[:-1]], None)] * 2
    assert Run.objects.filter(pk=by_hand.pk, result__isnull=True).exists()  # SQL NULL, not JSON null


def test_it_writes_nothing_once_a_condition_fails_and_reads_null_as_is_null():
    run = make_run(make_task())
    assert not update_row(Run, run.pk, {"status": RunStatus.RUNNING}, where={"status": RunStatus.RUNNING})
    assert not update_row(Run, run.pk, {"pid": 1}, where={"ended_at": clock.now()})
    assert update_row(Run, run.pk, {"pid": 2}, where={"status": RunStatus.QUEUED, "enqueued_at": None})
    run.refresh_from_db()
    assert (run.status, run.pid) == (RunStatus.QUEUED, 2)
    with pytest.raises(ValueError):
        update_row(Run, run.pk, {"pid": F("pid") + 1})
