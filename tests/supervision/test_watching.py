"""File watchers run by supervision/supervisor.py in this process, on real files, with the test
clock: a burst gives one run, the quiet delay holds, patterns choose, a refused trigger stays
pending and fires once, enable and disable, a missing path recovers, polling where inotify
would not hear, and pending changes carried over to the next owner."""
from __future__ import annotations

from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tasks_app import services
from tasks_app.definitions.watcher import check_watcher
from tasks_app.models import Event, EventName, Lease, Run, RunTrigger, TaskKind, Watcher, WatcherState
from tasks_app.platform.filewatch import filesystem_of
from tasks_app.supervision import watching
from tasks_app.supervision.supervisor import Supervisor

from ..factories import make_run, make_task, string
from .test_supervisor import turn

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def supervisor():
    made = Supervisor(interval=0.2, ttl=30)
    yield made
    made.shutdown()


@pytest.fixture
def library(tmp_path) -> Path:
    folder = tmp_path / "library"
    folder.mkdir()
    return folder


def make_target(task_id: str = "scan", **fields):
    """The task a watcher triggers; it takes the changed paths."""
    return make_task(id=task_id, parameters=[string("changed_paths"), string("platforms", "all")], **fields)


def make_watcher(task_id: str = "watch", *, enabled: bool = True, **settings):
    settings = {"paths": [], "target": "scan", "quiet_delay": 2, **settings}
    return make_task(id=task_id, kind=TaskKind.WATCHER, callable="", manual_run=False, enabled=enabled,
                     watch=check_watcher(task_id, settings))


def row(task_id: str = "watch") -> Watcher:
    return Watcher.objects.get(task_id=task_id)


def runs(task_id: str = "scan") -> list[Run]:
    return list(Run.objects.filter(task_id=task_id).order_by("created_at"))


def steps(supervisor: Supervisor, count: int = 10) -> None:
    """A few turns of the loop, for something that must not happen."""
    for _ in range(count):
        supervisor.step(wait=0.02)


def watching_now(supervisor: Supervisor, task_id: str = "watch") -> Watcher:
    return turn(supervisor, lambda: (current := row(task_id)).state == WatcherState.WATCHING and current,
                what=f"{task_id} to watch", timeout=20)


@pytest.mark.postgres  # the trigger and the watcher's row in one transaction, under the lease's lock
def test_a_burst_of_ten_thousand_files_gives_exactly_one_run_after_the_quiet_delay(supervisor, clock, library):
    make_target()
    make_watcher(paths=[str(library)], quiet_delay=2, target_parameters={"platforms": "gba"})
    folders = [library / f"d{number:02d}" for number in range(100)]
    for folder in folders:
        folder.mkdir()
    watched = watching_now(supervisor)
    assert watched.paths == [{"path": str(library), "mode": "inotify", "error": ""}]
    assert Lease.objects.get(name="watcher:watch").pid == supervisor.owner.pid

    for number in range(10_000):
        (folders[number % 100] / f"game-{number:05d}.rom").write_bytes(b"x")
    turn(supervisor, lambda: row().pending_changes == 10_000, what="the burst to be counted", timeout=30)
    assert not runs()
    clock.advance(seconds=2)
    turn(supervisor, runs, what="the run")
    steps(supervisor, 20)
    clock.advance(seconds=10)
    steps(supervisor, 20)

    [run] = runs()  # queued, or already run by the session's qcluster when an earlier test started one
    assert (run.trigger, run.triggered_by) == (RunTrigger.WATCHER, "watcher:watch")
    assert run.parameters["platforms"] == "gba"
    assert run.parameters["changed_paths"].split("\n") == [f"{folder}/" for folder in folders]  # 100 common folders
    after = row()
    assert (after.pending_changes, after.last_triggered_at, after.last_run_id) == (0, run.created_at, run.pk)
    fired = Event.objects.filter(name=EventName.WATCHER_UPDATED, task_id="watch", data__run_id=str(run.pk))
    assert fired.count() == 1


def test_the_run_comes_no_earlier_than_the_last_change_plus_the_quiet_delay(supervisor, clock, library):
    make_target()
    make_watcher(paths=[str(library)], quiet_delay=30)
    watching_now(supervisor)
    (library / "a.rom").write_bytes(b"x")
    turn(supervisor, lambda: row().pending_changes == 1, what="the change")
    clock.advance(seconds=29)
    steps(supervisor)
    (library / "b.rom").write_bytes(b"x")  # another change: the quiet starts again
    turn(supervisor, lambda: row().pending_changes == 2, what="the second change")
    last_change = row().last_change_at
    clock.advance(seconds=29)
    steps(supervisor)
    assert not runs()
    clock.advance(seconds=1)
    [run] = turn(supervisor, runs, what="the run")
    assert (run.created_at - last_change).total_seconds() == 30
    assert run.parameters["changed_paths"] == f"{library}/a.rom\n{library}/b.rom"


def test_patterns_and_ignore_patterns_choose_the_changes_that_count(supervisor, clock, library):
    make_target()
    make_watcher(paths=[str(library)], patterns=["*.rom"], ignore_patterns=["*.tmp", "cache"], quiet_delay=1,
                 events=["created", "modified"])
    (library / "cache").mkdir()
    (library / "old.rom").write_bytes(b"x")
    watching_now(supervisor)
    (library / "notes.txt").write_bytes(b"x")
    (library / "half.rom.tmp").write_bytes(b"x")
    (library / "cache" / "thumb.rom").write_bytes(b"x")
    (library / "old.rom").unlink()  # deleted: not among its events
    (library / "good.rom").write_bytes(b"x")  # the last, so once it is counted the others were seen
    turn(supervisor, lambda: row().pending_changes, what="a change to count")
    clock.advance(seconds=1)
    [run] = turn(supervisor, runs, what="the run")
    assert run.parameters["changed_paths"] == f"{library}/good.rom"


@pytest.mark.postgres
def test_a_refused_trigger_keeps_its_changes_pending_and_fires_them_once_the_target_can_run(
        supervisor, clock, library):
    target = make_target(on_overlap="skip")
    busy = make_run(target)  # queued: it holds the target's one slot
    make_watcher(paths=[str(library)], quiet_delay=1)
    watching_now(supervisor)
    (library / "a.rom").write_bytes(b"x")
    turn(supervisor, lambda: row().pending_changes == 1, what="the change")
    clock.advance(seconds=1)
    turn(supervisor, lambda: Event.objects.filter(name=EventName.WATCHER_UPDATED,
                                                  data__message__startswith="kept 1 change(s) pending").exists(),
         what="the refusal")
    assert row().pending_paths == [f"{library}/a.rom"] and row().state == WatcherState.WATCHING
    for _ in range(3):  # it asks again, and is refused again, recording nothing
        clock.advance(seconds=watching.RETRY_EVERY)
        steps(supervisor)
    (library / "b.rom").write_bytes(b"x")  # more changes meanwhile join them
    turn(supervisor, lambda: row().pending_changes == 2, what="the second change")

    services.set_enabled("scan", enabled=False)
    services.cancel_run(busy.pk)  # free, but disabled: still refused
    clock.advance(seconds=5)
    steps(supervisor)
    assert runs() == [busy] and row().pending_changes == 2

    services.set_enabled("scan", enabled=True)
    clock.advance(seconds=watching.RETRY_EVERY)
    turn(supervisor, lambda: len(runs()) == 2, what="the changes to fire")
    clock.advance(seconds=10)
    steps(supervisor, 20)
    fired = runs()[1]
    assert len(runs()) == 2 and fired.trigger == RunTrigger.WATCHER
    assert fired.parameters["changed_paths"] == f"{library}/a.rom\n{library}/b.rom"
    assert (row().pending_changes, row().pending_paths) == (0, [])


def test_enabling_starts_it_and_disabling_stops_it_and_drops_what_was_pending(supervisor, clock, library):
    make_target()
    make_watcher(paths=[str(library)], quiet_delay=5, enabled=False)
    steps(supervisor)
    assert row().state == WatcherState.STOPPED and not Lease.objects.exists()

    services.set_enabled("watch", enabled=True)
    watching_now(supervisor)
    (library / "a.rom").write_bytes(b"x")
    turn(supervisor, lambda: row().pending_changes == 1, what="the change")

    services.set_enabled("watch", enabled=False)
    turn(supervisor, lambda: row().state == WatcherState.STOPPED, what="it to stop")
    assert (row().pending_changes, row().paths) == (0, []) and not Lease.objects.exists()
    (library / "b.rom").write_bytes(b"x")
    clock.advance(seconds=10)
    steps(supervisor, 20)
    assert not runs() and row().pending_changes == 0


def test_a_missing_path_is_an_error_that_recovers_by_itself_while_the_others_are_watched(
        supervisor, clock, tmp_path, library):
    make_target(on_overlap="queue", queue_max=10)  # its first run, queued or running, leaves room for the second
    absent = tmp_path / "later"
    make_watcher(paths=[str(absent), str(library)], quiet_delay=1)
    make_target("other_scan")
    make_watcher("other", paths=[str(library)], target="other_scan", quiet_delay=1)
    errored = turn(supervisor, lambda: (current := row()).state == WatcherState.ERROR and current.paths[1]["mode"]
                   and current, what="the error, and the other path watched")
    assert errored.error == f"{absent}: no such file or folder; watching it once it appears"
    assert errored.paths == [{"path": str(absent), "mode": "", "error": errored.error},
                             {"path": str(library), "mode": "inotify", "error": ""}]
    watching_now(supervisor, "other")

    (library / "a.rom").write_bytes(b"x")  # the watched path still triggers, and so does the other watcher
    turn(supervisor, lambda: row().pending_changes == 1, what="the change")
    clock.advance(seconds=1)
    turn(supervisor, lambda: runs() and runs("other_scan"), what="both runs")

    absent.mkdir()
    clock.advance(seconds=watching.PATH_RETRY_EVERY)
    recovered = watching_now(supervisor)
    assert recovered.error == "" and recovered.paths[0] == {"path": str(absent), "mode": "inotify", "error": ""}
    (absent / "b.rom").write_bytes(b"x")
    turn(supervisor, lambda: row().pending_changes == 1, what="a change in the path that appeared")
    clock.advance(seconds=1)
    turn(supervisor, lambda: len(runs()) == 2, what="its run")
    assert runs()[1].parameters["changed_paths"] == f"{absent}/b.rom"


def test_a_path_on_a_file_system_that_sends_no_events_is_polled(supervisor, clock, library, settings):
    settings.TASKDECK = {**settings.TASKDECK, "WATCHER_POLLED_FILESYSTEMS": [filesystem_of(str(library))],
                         "WATCHER_POLL_INTERVAL": 0.1}
    make_target()
    make_watcher(paths=[str(library)], quiet_delay=1)
    assert watching_now(supervisor).paths == [{"path": str(library), "mode": "polling", "error": ""}]
    (library / "a.rom").write_bytes(b"x")
    turn(supervisor, lambda: row().pending_changes == 1, what="the change, polled")
    clock.advance(seconds=1)
    [run] = turn(supervisor, runs, what="the run")
    assert run.parameters["changed_paths"] == f"{library}/a.rom"


def test_a_target_that_cannot_be_triggered_puts_the_watcher_in_error_until_it_can(supervisor, clock, library):
    make_watcher(paths=[str(library)], target="later", quiet_delay=1)
    watching_now(supervisor)
    (library / "a.rom").write_bytes(b"x")
    turn(supervisor, lambda: row().pending_changes == 1, what="the change")
    clock.advance(seconds=1)
    errored = turn(supervisor, lambda: (current := row()).state == WatcherState.ERROR and current, what="the error")
    assert errored.error == "cannot trigger its target: Task 'later' does not exist." and errored.pending_changes == 1
    make_target("later")
    clock.advance(seconds=watching.RETRY_EVERY)
    turn(supervisor, lambda: runs("later"), what="the run once the target exists")
    assert row().state == WatcherState.WATCHING


def test_changes_pending_at_shutdown_are_fired_by_the_next_owner(clock, library):
    make_target()
    make_watcher(paths=[str(library)], quiet_delay=5)
    first = Supervisor(interval=0.2, ttl=30)
    try:
        watching_now(first)
        (library / "a.rom").write_bytes(b"x")
        turn(first, lambda: row().pending_changes == 1, what="the change")
    finally:
        first.shutdown()
    assert (row().state, row().pending_changes, row().pending_paths) == (WatcherState.STOPPED, 1, [f"{library}/a.rom"])
    assert not Lease.objects.exists()

    second = Supervisor(interval=0.2, ttl=30)
    try:
        watching_now(second)
        clock.advance(seconds=5)
        [run] = turn(second, runs, what="the carried changes to fire")
        assert run.parameters["changed_paths"] == f"{library}/a.rom"
    finally:
        second.shutdown()


def test_a_settled_look_reads_the_tasks_once_and_writes_nothing(supervisor, clock, library):
    """Services and watchers are read by one statement every look; a look with nothing to do writes nothing."""
    make_target()
    make_watcher(paths=[str(library)], quiet_delay=1)
    watching_now(supervisor)
    steps(supervisor, 3)
    supervisor._next_sync = 0.0  # the next step looks at the database
    with CaptureQueriesContext(connection) as looked:
        supervisor.step(wait=0.0)
    statements = [query["sql"] for query in looked.captured_queries]
    task_reads = [sql for sql in statements if 'FROM "tasks_app_task"' in sql.replace("`", '"')]
    assert len(task_reads) == 1, statements
    assert not [sql for sql in statements if sql.lstrip().split()[0].upper() in ("INSERT", "UPDATE", "DELETE")], statements
