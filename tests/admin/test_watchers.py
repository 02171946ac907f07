"""Watchers in the admin: only superusers define them (checked by the definitions file's own
checks, the target against the tasks in the database); a watcher's page shows its state live,
and the task list filters by RomM's groups."""
from __future__ import annotations

import html

import pytest

from tasks_app.definitions.watcher import check_watcher
from tasks_app.models import Task, TaskKind, Watcher, WatcherState

from ..factories import make_run, make_service, make_task, string
from .conftest import staff_client
from .test_tasks import add_form, errors_by_field

pytestmark = pytest.mark.django_db


def watcher_form(**fields):
    """What the add page posts for a new watcher: no schedule, Manual run unticked."""
    form = add_form(id="watch", kind="watcher", interval="", interval_unit="", paths='["/srv/library"]',
                    recursive="True", patterns='["*.rom"]', ignore_patterns="", events=["created", "moved"],
                    quiet_delay="5", target="scan", target_parameters='{"platforms": "gba"}')
    del form["manual_run"]
    return {**form, **fields}


def make_watcher(task_id="watch", **fields):
    return make_task(id=task_id, kind=TaskKind.WATCHER, callable="", manual_run=False,
                     watch=check_watcher(task_id, {"paths": ["/srv/library"], "target": "scan"}), **fields)


def test_a_superuser_adds_a_watcher_with_its_settings(root_client):
    make_task(id="scan", parameters=[string("platforms"), string("changed_paths")])
    page = root_client.get("/admin/tasks_app/task/add/").content.decode()
    assert 'class="fieldset-heading">Watcher</h2>' in page and 'name="quiet_delay"' in page

    response = root_client.post("/admin/tasks_app/task/add/", watcher_form())

    assert response.status_code == 302, errors_by_field(response.content.decode())
    task = Task.objects.get(pk="watch")
    assert task.watch == {"paths": ["/srv/library"], "recursive": True, "patterns": ["*.rom"], "ignore_patterns": [],
                          "events": ["created", "moved"], "quiet_delay": 5, "target": "scan",
                          "target_parameters": {"platforms": "gba"}}
    assert (task.kind, task.manual_run, task.process, task.source) == ("watcher", False, None, "admin")
    page = root_client.get("/admin/tasks_app/task/watch/change/").content.decode()
    assert 'name="paths"' in page and 'data-live-fragment="watcher:watch"' in page and "td-run-now" not in page


@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"target": "nowhere"}, "target", "Unknown task 'nowhere'."),
    ({"target": "web"}, "target", "'web' is a service task: a watcher triggers a python or command task."),
    ({"target_parameters": '{"region": "eu"}'}, "target_parameters",
     "Region: unknown parameter (a parameter of 'scan')."),
    ({"paths": "[]"}, "paths", 'Is required: the files or folders to watch, like ["/srv/library"].'),
    ({"quiet_delay": "-1"}, "quiet_delay", "Ensure this value is greater than or equal to 0."),
    ({"interval": "5", "interval_unit": "minutes"}, "interval",
     "A watcher has no schedule: it triggers its target when files change."),
    ({"callable": "tests.sample_tasks.noop"}, "callable", "A watcher triggers its target, it calls nothing."),
])
def test_a_bad_watcher_is_refused_on_its_field_in_the_definitions_files_words(root_client, fields, field, message):
    make_task(id="scan", parameters=[string("platforms")])
    make_service(id="web")
    response = root_client.post("/admin/tasks_app/task/add/", watcher_form(**fields))
    assert response.status_code == 200
    errors = {name: html.unescape(text) for name, text in errors_by_field(response.content.decode()).items()}
    assert errors.get(field) == message, errors
    assert not Task.objects.filter(pk="watch").exists()


def test_manual_run_left_as_the_add_page_offers_it_is_off_and_ticked_later_is_refused(root_client):
    make_task(id="scan", parameters=[string("platforms")])
    response = root_client.post("/admin/tasks_app/task/add/", watcher_form(manual_run="on"))
    assert response.status_code == 302, errors_by_field(response.content.decode())
    assert Task.objects.get(pk="watch").manual_run is False

    response = root_client.post("/admin/tasks_app/task/watch/change/", watcher_form(manual_run="on"))
    assert response.status_code == 200
    errors = {name: html.unescape(text) for name, text in errors_by_field(response.content.decode()).items()}
    assert errors.get("manual_run") == "A watcher is not run on demand: it triggers its target when files change."
    assert Task.objects.get(pk="watch").manual_run is False


def test_a_watcher_field_on_another_kind_is_refused(root_client):
    response = root_client.post("/admin/tasks_app/task/add/", add_form(paths='["/srv"]', quiet_delay="5",
                                                                       command="true"))
    assert errors_by_field(response.content.decode())["paths"] == "Applies to watcher tasks only."


def test_only_superusers_change_a_watcher(root_client):
    make_watcher()
    manager = staff_client("view_task", "change_task", "manage_task", username="manager")
    page = manager.get("/admin/tasks_app/task/watch/change/").content.decode()
    assert 'name="paths"' not in page and "/srv/library" in page  # shown, read-only
    assert manager.post("/admin/tasks_app/task/watch/change/", {"title": "x"}).status_code == 403
    assert manager.get("/admin/tasks_app/task/add/").status_code == 403


def test_a_watchers_page_and_the_list_show_its_state_live(root_client, clock):
    scan = make_task(id="scan")
    make_watcher()
    run = make_run(scan)
    Watcher.objects.create(task_id="watch", state=WatcherState.ERROR, error="/mnt: no such file or folder",
                           paths=[{"path": "/srv/library", "mode": "polling", "error": ""}], pending_changes=7,
                           last_triggered_at=clock.now(), last_run_id=run.pk)
    page = root_client.get("/admin/tasks_app/task/watch/change/").content.decode()
    assert "td-badge-error" in page and "/mnt: no such file or folder" in page and "polling" in page
    assert f"/admin/tasks_app/run/{run.pk}/change/" in page and "<td>7</td>" in page
    fragments = root_client.get("/admin/tasks_app/task/live/?keys=watch&history=1").json()["fragments"]
    assert "polling" in fragments["watcher:watch"] and "td-badge-error" in fragments["status:watch"]
    assert "/srv/library → scan after 5 s quiet" in fragments["schedule:watch"]


def test_the_task_list_filters_by_how_tasks_start(root_client):
    make_task(id="nightly", cron_string="0 3 * * *")
    make_task(id="adhoc")
    make_watcher()
    make_service(id="web")
    for trigger, shown in (("scheduled", {"nightly"}), ("manual", {"adhoc"}), ("watcher", {"watch"}),
                           ("service", {"web"})):
        page = root_client.get(f"/admin/tasks_app/task/?trigger={trigger}").content.decode()
        listed = {task_id for task_id in ("nightly", "adhoc", "watch", "web")
                  if f"/admin/tasks_app/task/{task_id}/change/" in page}
        assert listed == shown, trigger
