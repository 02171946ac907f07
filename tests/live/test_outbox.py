"""tasks_app/live/outbox.py: the rows the writer inserts, on the test database (what reads them:
test_relay.py; what announces them: test_announce.py)."""
from __future__ import annotations

import pytest
from django.db import transaction

from tasks_app.live import outbox
from tasks_app.models import EndReason, Event, EventName, RunStatus

from ..factories import make_run, make_task


def rows() -> list[tuple[str, str, str | None, dict]]:
    return [(event.name, event.task_id, str(event.run_id) if event.run_id else None, event.data)
            for event in Event.objects.order_by("id")]


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_run_event_carries_what_a_live_view_needs(clock):
    run = make_run(make_task(id="scan"), status=RunStatus.RUNNING, progress_current=3, progress_total=10,
                   progress_message="scanning")
    outbox.emit_run_event(EventName.PROGRESS, run, message="scanning")
    at = clock.now().isoformat()
    assert rows() == [(EventName.PROGRESS, "scan", str(run.id), {
        "task_id": "scan", "run_id": str(run.id), "timestamp": at, "status": RunStatus.RUNNING,
        "progress": {"current": 3, "total": 10, "percent": 30.0, "message": "scanning"}, "message": "scanning"})]
    assert Event.objects.get().created_at == clock.now()


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.parametrize(("reason", "name"), [(EndReason.SUCCESS, EventName.COMPLETED), (EndReason.FAILED, EventName.ERROR),
                                              (EndReason.CANCELLED, EventName.CANCELLED),
                                              (EndReason.SKIPPED, EventName.SKIPPED)])
def test_a_run_s_end_is_named_by_its_final_status_and_says_why(clock, reason, name):
    run = make_run(make_task(), end_reason=reason)
    outbox.emit_run_end(run)
    [(written, _, _, data)] = rows()
    assert written == name and data["end_reason"] == reason and data["message"] == reason


@pytest.mark.postgres
@pytest.mark.django_db
def test_many_events_in_one_go_keep_their_order_and_a_definition_change_names_no_run(clock):
    task = make_task(id="many")
    runs = [make_run(task) for _ in range(3)]
    outbox.emit_run_events([(EventName.QUEUED, run, f"run {number}") for number, run in enumerate(runs)])
    outbox.emit_task_updated(task, message="Changed: enabled")
    written = rows()
    assert [(name, run_id, data["message"]) for name, _, run_id, data in written] == [
        (EventName.QUEUED, str(run.id), f"run {number}") for number, run in enumerate(runs)
    ] + [(EventName.UPDATED, None, "Changed: enabled")]
    assert written[-1][3] == {"task_id": "many", "timestamp": clock.now().isoformat(), "message": "Changed: enabled"}
    outbox.emit_run_events([])  # nothing to write
    assert len(rows()) == 4


@pytest.mark.postgres
@pytest.mark.django_db
def test_an_event_exists_exactly_when_its_change_committed():
    task = make_task()
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        outbox.emit_task_updated(task, message="rolled back")
        1 / 0  # noqa: B018  the change failing after its event was written
    outbox.emit_task_updated(task, message="committed")
    assert [data["message"] for *_, data in rows()] == ["committed"]
