"""services/imports.py: imported tasks created, updated in place or left unchanged, never over
another source's task, never touched by the definitions sync."""
import pytest

from tasks_app import selectors, services
from tasks_app.definitions.validate import build_definition
from tasks_app.exceptions import TaskOfAnotherSource
from tasks_app.models import Event, EventName, Task

from ..factories import make_task

pytestmark = pytest.mark.django_db


def imported(task_id, source="crontab", **fields):
    return build_definition(task_id, {"kind": "command", "command": "backup.sh", "cron_string": "0 3 * * *", **fields},
                            source=source)


def test_an_import_creates_then_updates_in_place_then_leaves_alone():
    assert services.import_definitions([imported("cron.a"), imported("cron.b")], source="crontab") == {
        "cron.a": "created", "cron.b": "created"}
    first = Task.objects.get(pk="cron.a")
    assert (first.source, first.kind, first.cron_string, first.process["command"]) == (
        "crontab", "command", "0 3 * * *", "backup.sh")
    assert first.next_run_at is None  # the scheduler gives it its first tick (initialise_schedules)

    outcome = services.import_definitions([imported("cron.a", command="backup.sh --full"), imported("cron.b")],
                                          source="crontab")
    assert outcome == {"cron.a": "updated", "cron.b": "unchanged"}
    task = Task.objects.get(pk="cron.a")
    assert task.process["command"] == "backup.sh --full" and task.created_at == first.created_at
    assert Event.objects.filter(name=EventName.UPDATED, task_id="cron.a").count() == 2
    assert Event.objects.filter(name=EventName.UPDATED, task_id="cron.b").count() == 1


def test_a_re_import_keeps_what_an_operator_changed():
    services.import_definitions([imported("cron.a")], source="crontab")
    services.set_operator_fields("cron.a", cron_string="15 4 * * *", enabled=False)
    outcome = services.import_definitions([imported("cron.a", cron_string="0 5 * * *", title="Backup")],
                                          source="crontab")
    task = Task.objects.get(pk="cron.a")
    assert outcome == {"cron.a": "updated"}
    assert (task.cron_string, task.enabled, task.title, task.definition["cron_string"]) == (
        "15 4 * * *", False, "Backup", "0 5 * * *")


@pytest.mark.parametrize("source", ["file", "code", "admin", "supervisord"])
def test_an_id_of_another_source_is_refused_and_nothing_is_written(source):
    make_task(id="cron.b", source=source, title="Theirs")
    with pytest.raises(TaskOfAnotherSource) as raised:
        services.import_definitions([imported("cron.a"), imported("cron.b")], source="crontab")
    assert str(raised.value).startswith(f"Task 'cron.b' already exists, from ")
    assert f"(source {source}); an import of source crontab does not overwrite it." in str(raised.value)
    assert not Task.objects.filter(pk="cron.a").exists() and Task.objects.get(pk="cron.b").title == "Theirs"


def test_the_definitions_sync_never_removes_an_imported_task():
    services.import_definitions([imported("cron.a")], source="crontab")
    report = services.sync_definitions([])
    assert "cron.a" not in report["removed"] and not Task.objects.get(pk="cron.a").is_removed


def test_a_definition_must_be_built_with_the_source_it_is_imported_as():
    with pytest.raises(ValueError, match="not built with source 'crontab'"):
        services.import_definitions([imported("cron.a", source="file")], source="crontab")
    with pytest.raises(ValueError, match="not an import source"):
        services.import_definitions([imported("cron.a", source="file")], source="file")


@pytest.mark.postgres  # a lookup into a JSON column: SQLite's text and PostgreSQL's jsonb alike
def test_imported_task_ids_of_a_source_or_of_one_compose_project():
    compose = {"kind": "service", "command": "docker compose run web", "compose": {
        "file": "/srv/compose.yml", "project_name": "media", "service": "web"}}
    other = {**compose, "compose": {**compose["compose"], "project_name": "blog"}}
    services.import_definitions([build_definition("media.web", compose, source="compose"),
                                 build_definition("blog.web", other, source="compose")], source="compose")
    services.import_definitions([imported("cron.a")], source="crontab")
    assert sorted(selectors.imported_task_ids("compose")) == ["blog.web", "media.web"]
    assert selectors.imported_task_ids("compose", compose_project="media") == ["media.web"]
    assert selectors.imported_task_ids("crontab") == ["cron.a"]
