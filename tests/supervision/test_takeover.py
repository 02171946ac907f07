"""Two real supervisor processes on one database: each instance runs once, and when the owner of
some is killed (SIGKILL) the other takes them over within the lease time, after ending the dead
owner's runs crashed; a file watcher fires once per change, and moves to the survivor the same way."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tasks_app.models import EndReason, Event, EventName, Lease, Run, RunStatus, Watcher, WatcherState
from tasks_app.services import HOSTNAME

from ..conftest import ROOT, wait_until
from ..execution.conftest import pid_alive
from .test_supervisor import service
from .test_watching import make_target, make_watcher

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

TTL = 3.0


def start_supervisor(env: dict[str, str], log) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "manage.py", "supervisor"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env={**env, "TASKDECK_LEASE_TTL": str(TTL), "TASKDECK_SUPERVISOR_INTERVAL": "0.2"})


def stop_supervisors(supervisors: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to those still running, then each waited for."""
    for process in supervisors:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in supervisors:
        process.wait(20)


def started(path) -> list[tuple[int, int]]:
    """(instance index, pid) of every start the instances wrote."""
    if not path.exists():
        return []
    return [(int(index), int(pid)) for index, pid in (line.split() for line in path.read_text().splitlines())]


def test_two_supervisors_never_run_an_instance_twice_and_take_over_a_killed_one(process_env, tmp_path):
    starts = tmp_path / "starts"
    service(command=f'echo "$TASKDECK_INSTANCE_INDEX $$" >> {starts}; exec sleep 300', instances=4,
                   healthy_after=1)
    with (tmp_path / "supervisors.log").open("wb") as log:
        supervisors = [start_supervisor(process_env, log) for _ in range(2)]
    try:
        def running_now() -> dict[int, list[int]]:
            alive: dict[int, list[int]] = {}
            for index, pid in started(starts):
                if pid_alive(pid):
                    alive.setdefault(index, []).append(pid)
            assert all(len(pids) == 1 for pids in alive.values()), f"an instance runs twice: {alive}"
            return alive

        wait_until(lambda: len(running_now()) == 4, timeout=20, what="all 4 instances running")
        owners = dict(Lease.objects.values_list("name", "pid"))
        assert len(owners) == 4 and set(owners.values()) <= {process.pid for process in supervisors}
        victim = max(supervisors, key=lambda process: list(owners.values()).count(process.pid))
        survivor = next(process for process in supervisors if process is not victim)
        orphaned = {name for name, pid in owners.items() if pid == victim.pid}
        lost_runs = set(Run.objects.filter(status=RunStatus.RUNNING, worker_pid=victim.pid).values_list("pk", flat=True))

        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(5)
        killed_at = time.monotonic()
        wait_until(lambda: len(running_now()) == 4 and
                   set(Lease.objects.values_list("pid", flat=True)) == {survivor.pid},
                   timeout=TTL + 10, interval=0.05, what="the survivor to run every instance")
        took = time.monotonic() - killed_at
        assert took <= TTL + 5, f"took {took:.1f} s"
        assert len(orphaned) >= 2
        for run in Run.objects.filter(pk__in=lost_runs):
            assert (run.status, run.end_reason) == (RunStatus.FAILED, EndReason.CRASHED)
        for _ in range(20):  # and it stays so
            running_now()
            time.sleep(0.05)
    finally:
        stop_supervisors(supervisors)
    assert not any(pid_alive(pid) for _, pid in started(starts))


def test_two_supervisors_watch_once_and_the_survivor_takes_a_killed_owners_watcher_over(process_env, tmp_path):
    library = tmp_path / "library"
    library.mkdir()
    make_target(on_overlap="queue", queue_max=100)  # no worker here: each run waits, and is counted
    make_watcher(paths=[str(library)], quiet_delay=0.5)

    def runs() -> int:
        return Run.objects.filter(task_id="scan").count()

    with (tmp_path / "supervisors.log").open("wb") as log:
        supervisors = [start_supervisor(process_env, log) for _ in range(2)]
    try:
        wait_until(lambda: Watcher.objects.filter(state=WatcherState.WATCHING).exists(), timeout=20,
                   what="one supervisor to watch")
        owner_pid = Lease.objects.get(name="watcher:watch").pid
        victim = next(process for process in supervisors if process.pid == owner_pid)
        survivor = next(process for process in supervisors if process is not victim)
        (library / "a.rom").write_bytes(b"x")
        wait_until(lambda: runs() == 1, timeout=10, what="the first run")

        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(5)
        killed_at = time.monotonic()
        wait_until(lambda: Event.objects.filter(name=EventName.WATCHER_UPDATED,
                                                data__message__startswith=f"taken by {HOSTNAME}:{survivor.pid}:").exists(),
                   timeout=TTL + 10, interval=0.05, what="the survivor to take the watcher")
        took = time.monotonic() - killed_at
        assert took <= TTL + 5, f"took {took:.1f} s"
        wait_until(lambda: Watcher.objects.get(task_id="watch").state == WatcherState.WATCHING, timeout=10,
                   what="the survivor to watch")
        (library / "b.rom").write_bytes(b"x")
        wait_until(lambda: runs() == 2, timeout=10, what="the survivor's run")
        time.sleep(1.5)  # another process: only real time can show that no third run comes
        assert runs() == 2 and Lease.objects.get(name="watcher:watch").pid == survivor.pid
        last = Run.objects.filter(task_id="scan").order_by("-created_at").first()
        assert (last.triggered_by, last.parameters["changed_paths"]) == ("watcher:watch", f"{library}/b.rom")
    finally:
        stop_supervisors(supervisors)
