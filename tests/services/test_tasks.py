"""services/tasks.py: the definitions sync, operator edits, and the admin's saves."""
import pytest

from tasks_app import services
from tasks_app.definitions.validate import build_definition
from tasks_app.models import Event, Run, RunStatus, Task

from ..factories import make_task
from .conftest import api_trigger

pytestmark = pytest.mark.django_db


class TestSync:
    def definition(self, **fields):
        return build_definition("report", {"callable": "tests.sample_tasks.noop", **fields}, source="file")

    def test_operator_changes_survive_a_re_sync(self):
        services.sync_definitions([self.definition(cron_string="0 3 * * *", title="Report")])
        services.set_operator_fields("report", cron_string="15 4 * * *", enabled=False)
        services.sync_definitions([self.definition(cron_string="0 5 * * *", title="Daily report")])
        task = Task.objects.get(pk="report")
        assert (task.cron_string, task.enabled, task.title) == ("15 4 * * *", False, "Daily report")
        assert task.definition["cron_string"] == "0 5 * * *"

    def test_a_task_that_becomes_a_service_drops_the_schedule_an_operator_gave_it(self):
        command = build_definition("report", {"kind": "command", "argv": ["true"], "interval": 5}, source="file")
        services.sync_definitions([command])
        services.set_operator_fields("report", interval=9, enabled=False)
        service = build_definition("report", {"kind": "service", "argv": ["httpd"]}, source="file")
        services.sync_definitions([service])
        task = Task.objects.get(pk="report")
        assert (task.kind, task.interval, task.cron_string, task.next_run_at) == ("service", None, "", None)
        assert task.overrides == ["enabled"] and not task.enabled  # the operator's other changes stay

    def test_a_vanished_definition_is_marked_removed_and_keeps_its_history(self):
        services.sync_definitions([self.definition()])
        ended = services.cancel_run(api_trigger("report").pk)
        queued = api_trigger("report", force=True)
        report = services.sync_definitions([])
        assert report["removed"] == ["report"]
        task = Task.objects.get(pk="report")
        assert task.is_removed
        queued.refresh_from_db()
        assert queued.status == RunStatus.CANCELLED and "removed" in queued.error
        assert Run.objects.filter(pk=ended.pk).exists()
        assert Event.objects.filter(name="task:updated", task_id="report").exists()
        services.sync_definitions([self.definition()])
        assert not Task.objects.get(pk="report").is_removed


    @pytest.mark.postgres  # a JSON column: SQLite's text and PostgreSQL's jsonb read back alike
    def test_a_command_tasks_process_settings_are_written_and_follow_the_definition(self):
        declared = build_definition("backup", {"kind": "command", "argv": ["tar", "-czf", "/tmp/b.tgz", "/srv"],
                                               "interval": 1, "interval_unit": "hours", "stop_signal": "INT"},
                                    source="file")
        services.sync_definitions([declared])
        services.set_operator_fields("backup", enabled=False)
        task = Task.objects.get(pk="backup")
        assert task.process == declared["process"] and task.process["stop_signal"] == "SIGINT"
        assert task.definition["process"]["argv"] == ["tar", "-czf", "/tmp/b.tgz", "/srv"]

        changed = build_definition("backup", {"kind": "command", "command": "tar -czf /tmp/b.tgz /srv",
                                              "interval": 1, "interval_unit": "hours", "graceful_stop": 30},
                                   source="file")
        services.sync_definitions([changed])
        task.refresh_from_db()
        assert (task.process["command"], task.process["argv"], task.process["graceful_stop"]) == (
            "tar -czf /tmp/b.tgz /srv", None, 30)
        assert task.enabled is False  # the operator's change is kept; the declaration is not

        services.sync_definitions([build_definition("backup", {"callable": "tests.sample_tasks.noop"}, source="file")])
        task.refresh_from_db()
        assert (task.kind, task.process, task.callable) == ("python", None, "tests.sample_tasks.noop")


def test_operator_changes_recompute_the_next_tick_at_once_and_announce_it(clock):
    from datetime import UTC, datetime, timedelta

    clock.current = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    every = make_task(interval=6, interval_unit="hours", last_run_at=clock.now() - timedelta(hours=1))
    nightly = make_task(cron_string="0 3 * * *")
    services.initialise_schedules(now=clock.now())
    assert Task.objects.get(pk=every.pk).next_run_at == clock.now() + timedelta(hours=5)

    assert services.set_interval(every.pk, interval=2, unit="hours").next_run_at == clock.now() + timedelta(hours=1)
    assert services.set_interval(every.pk, interval=45, unit="minutes").next_run_at == clock.now() + timedelta(minutes=30)  # 11:00 + 2 x 45
    changed = services.set_schedule(nightly.pk, cron_string="0 9 * * *", timezone="America/New_York")
    assert changed.next_run_at == datetime(2026, 11, 23, 14, 0, tzinfo=UTC)  # 09:00 EST
    assert services.set_enabled(nightly.pk, enabled=False).next_run_at is None
    assert services.set_enabled(nightly.pk, enabled=True).next_run_at == datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
    updates = Event.objects.filter(name="task:updated")
    assert updates.filter(task_id=every.pk).count() == 2 and updates.filter(task_id=nightly.pk).count() == 3


@pytest.mark.parametrize(("call", "location"), [
    (lambda task: services.set_interval(task.pk, interval=0, unit="hours"), "body.interval"),
    (lambda task: services.set_interval(task.pk, interval=1.5, unit="hours"), "body.interval"),
    (lambda task: services.set_interval(task.pk, interval=True, unit="hours"), "body.interval"),
    (lambda task: services.set_interval(task.pk, interval=11 * 366, unit="days"), "body.interval"),
    (lambda task: services.set_interval(task.pk, interval=6, unit="weeks"), "body.unit"),
])
def test_set_interval_refuses_bad_values_whoever_calls(call, location):
    from tasks_app.exceptions import InvalidSchedule

    task = make_task(interval=6, interval_unit="hours")
    with pytest.raises(InvalidSchedule) as refused:
        call(task)
    assert refused.value.errors[0]["location"] == location
    task.refresh_from_db()
    assert (task.interval, task.interval_unit, task.overrides) == (6, "hours", [])


def test_set_schedule_refuses_a_bad_cron_or_zone_naming_each():
    from tasks_app.exceptions import InvalidSchedule

    task = make_task(cron_string="0 3 * * *")
    with pytest.raises(InvalidSchedule) as refused:
        services.set_schedule(task.pk, cron_string="61 * * * *", timezone="Mars/Olympus")
    assert [error["location"] for error in refused.value.errors] == ["body.cron_string", "body.timezone"]
    task.refresh_from_db()
    assert (task.cron_string, task.timezone) == ("0 3 * * *", "UTC")
    assert services.set_schedule(task.pk, cron_string="  30   2 * * * ", timezone="Europe/Paris").cron_string == "30 2 * * *"


def test_save_task_writes_only_what_the_admin_changed_and_announces_it(clock):
    from datetime import timedelta

    task = make_task(source="admin", interval=5, interval_unit="minutes", keep_runs=100)
    services.initialise_schedules(now=clock.now())
    edited = Task.objects.get(pk=task.pk)  # the admin's copy, read before the scheduler moves on
    Task.objects.filter(pk=task.pk).update(last_run_at=clock.now(), next_run_at=clock.now() + timedelta(minutes=5))
    edited.keep_runs, edited.title = 7, "Edited"

    saved = services.save_task(edited, changed=["keep_runs", "title"])

    task.refresh_from_db()
    assert (task.keep_runs, task.title, task.overrides) == (7, "Edited", [])
    assert task.last_run_at == clock.now() and task.next_run_at == clock.now() + timedelta(minutes=5)  # not put back
    assert saved.next_run_at == task.next_run_at
    assert Event.objects.filter(name="task:updated", task_id=task.pk).last().data["message"] == "Changed: keep_runs, title"


def test_save_task_remembers_operator_fields_and_starts_a_new_schedule_from_now(clock):
    from datetime import timedelta

    task = make_task(source="admin", interval=5, interval_unit="minutes")
    edited = Task.objects.get(pk=task.pk)
    edited.interval = 2

    assert services.save_task(edited, changed=["interval"]).next_run_at == clock.now() + timedelta(minutes=2)
    assert Task.objects.get(pk=task.pk).overrides == ["interval"]


def test_save_task_refuses_a_broken_schedule_whoever_built_the_object():
    from tasks_app.exceptions import InvalidSchedule

    task = make_task(source="admin", interval=5, interval_unit="minutes")
    edited = Task.objects.get(pk=task.pk)
    edited.interval, edited.cron_string, edited.timezone = 11 * 366, "0 3 * * *", "Mars/Olympus"
    edited.interval_unit = "days"
    with pytest.raises(InvalidSchedule) as refused:
        services.save_task(edited, changed=["interval", "interval_unit", "cron_string", "timezone"])
    assert [error["location"] for error in refused.value.errors] == ["body.timezone", "body.interval",
                                                                     "body.cron_string"]
    assert Task.objects.get(pk=task.pk).interval == 5


def test_a_task_added_in_the_admin_is_the_admins_and_survives_a_definitions_sync(clock):
    task = Task(id="added", callable="tests.sample_tasks.noop", interval=5, interval_unit="minutes")

    services.save_task(task, changed=["id", "callable", "interval", "interval_unit"], created=True)
    services.sync_definitions([])

    added = Task.objects.get(pk="added")
    assert added.source == "admin" and added.removed_at is None and added.next_run_at is not None
    assert Event.objects.filter(name="task:updated", task_id="added").exists()
