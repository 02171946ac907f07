"""Watchers over HTTP (API.md "Watchers"): the watcher object, run refused, RomM's grouping."""
import pytest

from tasks_app.definitions.watcher import check_watcher
from tasks_app.models import Event, Run, TaskKind, Watcher, WatcherState

from ..factories import make_service, make_task, string
from .conftest import assert_problem, make_key

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def key():
    return make_key("tasks:manage")


def make_watcher(task_id="watch", *, enabled=True, **settings):
    settings = {"paths": ["/srv/library"], "target": "scan", "patterns": ["*.rom"], "quiet_delay": 5, **settings}
    return make_task(id=task_id, kind=TaskKind.WATCHER, callable="", manual_run=False, enabled=enabled,
                     watch=check_watcher(task_id, settings))


def test_a_watcher_shows_what_it_watches_and_where_it_is(api, key, clock):
    make_task(id="scan", parameters=[string("platforms")])
    make_watcher(target_parameters={"platforms": "gba"})
    Watcher.objects.create(task_id="watch", state=WatcherState.WATCHING, pending_changes=4,
                           paths=[{"path": "/srv/library", "mode": "inotify", "error": ""}],
                           last_change_at=clock.now())
    task = api.get("/api/tasks/watch", key=key).json()
    assert (task["kind"], task["trigger"], task["manual_run"], task["process"], task["service_state"]) == (
        "watcher", "watcher", False, None, None)
    assert task["watcher"] == {
        "paths": ["/srv/library"], "recursive": True, "patterns": ["*.rom"], "ignore_patterns": [],
        "events": ["created", "modified", "deleted", "moved"], "quiet_delay": 5, "target": "scan",
        "target_parameters": {"platforms": "gba"}, "state": "watching",
        "last_change_at": clock.now().isoformat().replace("+00:00", "Z"), "last_triggered_at": None,
        "pending_changes": 4, "error": "", "path_states": [{"path": "/srv/library", "mode": "inotify", "error": ""}],
        "last_run_id": None,
    }
    assert api.get("/api/tasks/scan", key=key).json()["watcher"] is None


def test_a_watcher_is_not_run_on_demand(api, key):
    make_watcher()
    body = assert_problem(api.post("/api/tasks/watch/run", key=key, json={"force": True}), 409,
                          "not-manually-runnable")
    assert body["detail"] == "Task 'watch' is a file watcher: it triggers 'scan' when files change, and is not run itself."
    assert not Run.objects.exists() and not Event.objects.filter(name__startswith="task:").exists()


def test_tasks_grouped_by_how_they_start_as_romm_groups_them(api, key):
    make_task(id="nightly", cron_string="0 3 * * *")
    make_task(id="every", interval=6, interval_unit="hours", enabled=False)
    make_task(id="adhoc")
    make_watcher()
    make_service(id="web")
    response = api.get("/api/tasks?group=trigger", key=key)
    assert response.status_code == 200
    groups = {name: [task["id"] for task in tasks] for name, tasks in response.json().items()}
    assert groups == {"scheduled": ["every", "nightly"], "manual": ["adhoc"], "watcher": ["watch"], "service": ["web"]}
    assert response.json()["watcher"][0]["watcher"]["target"] == "scan"  # whole Task objects

    enabled = api.get("/api/tasks?group=trigger&enabled=true", key=key).json()
    assert {name: [task["id"] for task in tasks] for name, tasks in enabled.items()} == {
        "scheduled": ["nightly"], "manual": ["adhoc"], "watcher": ["watch"], "service": ["web"]}
    assert [task["id"] for task in api.get("/api/tasks?trigger=service", key=key).json()["tasks"]] == ["web"]
    assert [task["id"] for task in api.get("/api/tasks?trigger=watcher", key=key).json()["tasks"]] == ["watch"]
    body = assert_problem(api.get("/api/tasks?group=kind", key=key), 400, "invalid-query")
    assert body["errors"][0]["location"] == "query.group"


def test_health_wants_a_supervisor_for_an_enabled_watcher(api):
    from tasks_app import services

    services.beat("worker")
    services.beat("scheduler")
    make_watcher(enabled=False)
    assert api.get("/api/health").json()["checks"]["supervisor"] == "idle"
    services.set_enabled("watch", enabled=True)
    body = api.get("/api/health").json()
    assert body["status"] == "degraded" and body["checks"]["supervisor"] == "none"  # nobody watches its paths
