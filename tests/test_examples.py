"""The example tasks `make run` loads, executed by a real worker on a generated library."""
import json
from pathlib import Path

import pytest

from examples.library import ensure_library
from tasks_app import services
from tasks_app.definitions.load import all_definitions
from tasks_app.models import Activity, EndReason, RunStatus, RunTrigger

from .conftest import run_until_ended

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("qcluster")]


@pytest.fixture
def library(process_env) -> Path:
    """The generated library in the session's data folder, which the workers share."""
    services.sync_definitions(all_definitions())
    return ensure_library()


def run(task_id, **kwargs):
    return run_until_ended(services.trigger(task_id, source=RunTrigger.API, requested_by="test", **kwargs), timeout=30)


def test_scan_library_hashes_the_chosen_platforms(library):
    result = run("scan_library", parameters={"platforms": "gba,snes", "pace": 0})
    assert (result.status, result.result["files"]) == (RunStatus.COMPLETED, 80)
    assert result.summary["items"] == 80 and result.summary["actions"] == {"scan": 80}
    assert result.progress["percent"] == 100.0
    assert Activity.objects.filter(run=result, item_id="rom:gba-game-000").exists()


def test_scan_library_rejects_an_unknown_platform(library):
    result = run("scan_library", parameters={"platforms": "dreamcast", "pace": 0})
    assert result.end_reason == EndReason.FAILED and result.error == "ValueError: unknown platform(s): dreamcast"


def test_evaluate_rules_dry_run_reports_without_changing_the_catalogue(library):
    before = (library / "catalogue.json").read_text()
    dry = run("evaluate_rules", dry_run=True)
    assert dry.status == RunStatus.COMPLETED and dry.result == {"evaluated": 60, "dry_run": True}
    assert set(dry.summary["actions"]) <= {"keep", "unmonitor", "delete"} and sum(dry.summary["actions"].values()) == 60
    assert (library / "catalogue.json").read_text() == before

    real = run("evaluate_rules")
    assert real.summary["actions"] == dry.summary["actions"]
    changed = dry.summary["actions"].get("delete", 0) + dry.summary["actions"].get("unmonitor", 0)
    assert real.items_affected == changed > 0
    states = [item["state"] for item in json.loads((library / "catalogue.json").read_text())]
    assert len(states) - states.count("monitored") == changed
    (library / ".generated").unlink()  # leave a fresh library for the next test


def test_cleanup_orphaned_resources_deletes_the_cache_leftovers(library):
    result = run("cleanup_orphaned_resources")
    assert result.result == {"removed": 12} and result.summary["actions"] == {"delete": 12}
    assert not list((library / "cache").glob("*.tmp"))
    (library / ".generated").unlink()


def test_scan_library_given_the_watchers_changed_paths_scans_only_their_platforms(library):
    changed = f"{library}/roms/gba/new-game.bin\n{library}/roms/psx/"
    result = run("scan_library", parameters={"changed_paths": changed, "pace": 0})
    assert (result.status, result.result["files"]) == (RunStatus.COMPLETED, 80)
    assert Activity.objects.filter(run=result, item_id="rom:psx-game-000").exists()
    assert not Activity.objects.filter(run=result, item_id="rom:n64-game-000").exists()


def test_the_example_watcher_watches_the_example_librarys_roms_and_triggers_scan_library():
    from django.conf import settings as django_settings

    from examples.tasks import platforms_of

    [watcher] = [definition for definition in all_definitions() if definition["id"] == "filesystem_watcher"]
    assert (watcher["kind"], watcher["enabled"], watcher["watch"]["target"]) == ("watcher", False, "scan_library")
    assert Path(django_settings.BASE_DIR) / watcher["watch"]["paths"][0] == (
        Path(django_settings.BASE_DIR) / "var" / "example-library" / "roms")  # where `make run` keeps the library
    assert platforms_of(["/v/roms/snes/a.bin", "/v/roms/gba/b.bin", "/v/roms/gba/c.bin"]) == ["gba", "snes"]
    assert platforms_of(["/v/roms/"]) == ["gba", "n64", "snes", "psx"] and platforms_of([]) == []
