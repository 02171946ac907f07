"""A database that refuses writes (a full disk, a read-only file): Taskdeck says so and loses nothing.

On SQLite the disk is a real small file system (tmpfs) the test fills up, or remounts read-only;
on PostgreSQL a trigger answers every write of a run with the server's own "disk full" error
(SQLSTATE 53100), which is what psycopg raises when the server's disk is full.
"""
from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tasks_app import services
from tasks_app.execution.entry import execute_claimed
from tasks_app.models import EndReason, LogOnFull, Run, RunStatus, RunTrigger

from .conftest import postgres_disk_full, run_until_ended, wait_until
from .factories import make_run, make_task, number
from .processes import Project, free_port, stop_serve

DEFINITIONS = """
[tasks.steady]
kind = "python"
callable = "tests.sample_tasks.cooperative"
max_concurrent = 10
parameters = [{ key = "seconds", type = "number", default = 3 }]
"""


@contextmanager
def small_disk(path: Path, *, size: str = "64m") -> Iterator[Path]:
    """A tmpfs of ``size`` at ``path``: a file system the test can fill, or make read-only."""
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"this machine cannot mount a file system ({mounted.stderr.strip()}); "
                    "test_a_run_whose_end_postgresql_refuses covers a database refusing writes")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(disk: Path) -> Path:
    """Write a file until the disk has no byte left."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as handle:
        for chunk in (1024 * 1024, 4096, 1):
            try:
                while True:
                    handle.write(b"\0" * chunk)
            except OSError as error:
                assert error.errno == errno.ENOSPC, error
    return filler


@pytest.fixture
def project_on_disk(tmp_path, process_env) -> Iterator[Project]:
    with small_disk(tmp_path / "disk") as disk:
        definitions = tmp_path / "taskdeck.toml"
        definitions.write_text(DEFINITIONS)
        env = {**process_env, "TASKDECK_DEFINITIONS": str(definitions), "TASKDECK_EXTRA_APPS": ""}
        project = Project(disk / "db.sqlite3", env)
        project.manage("migrate", "--noinput", "-v0")
        yield project


def test_a_full_disk_is_reported_refused_and_the_run_still_records_its_real_end(project_on_disk, tmp_path):
    project = project_on_disk
    key = project.manage("create_api_key", "--name", "disk", "--scopes", "tasks:run").stdout.split()[-1]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    serve = project.start_serve(port, log)
    try:
        def health() -> requests.Response:
            return requests.get(f"{base}/api/health", timeout=5)

        wait_until(lambda: health().json()["status"] == "ok", timeout=30, what="serve to be healthy")
        # Long enough that the disk is full before its code is over, even on a loaded machine (at
        # 3 s, its end was sometimes written before the disk filled).
        seconds = 8
        run_id = requests.post(f"{base}/api/tasks/steady/run", json={"parameters": {"seconds": seconds}},
                               headers={"X-API-Key": key}, timeout=10).json()["run_id"]
        show = lambda: project.show(run_id)["Status"]  # noqa: E731
        wait_until(lambda: show() == "running", timeout=20, what="the run to start")
        started = time.monotonic()
        # Empty the write-ahead log first, so that every later write must grow it on the full disk
        # (SQLite would otherwise reuse the log's pages for a while).
        with sqlite3.connect(project.database, timeout=30) as database:
            wait_until(lambda: database.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0,
                       timeout=10, interval=0.01, what="the write-ahead log to be emptied")
            filler = fill(project.database.parent)

        [refused] = wait_until(lambda: [response] if (response := health()).status_code == 503 else None,
                               timeout=10, what="health to report the full disk")  # (a 503 Response is falsy)
        assert refused.json()["status"] == "error" and refused.json()["checks"]["database"] == "read_only"
        trigger = requests.post(f"{base}/api/tasks/steady/run", json={}, headers={"X-API-Key": key}, timeout=10)
        assert trigger.status_code == 503 and trigger.headers["Content-Type"] == "application/problem+json"
        assert trigger.json()["type"] == "/api/problems/database-unavailable" and trigger.headers["Retry-After"] == "5"
        assert show() == "running", "the run ended before the disk filled: nothing left to test"
        # The run's code is over, and its heartbeat is past HEARTBEAT_STALE_AFTER (5 s in tests): its
        # worker is alive, waiting for the disk, so the reaper must not call it crashed.
        deadline = max(time.monotonic() + 8, started + seconds + 6)
        while time.monotonic() < deadline:
            assert show() == "running"
            time.sleep(0.5)

        filler.unlink()
        wait_until(lambda: show() != "running", timeout=20, what="the run's end to be written")
        assert show() == "completed (success)"
        wait_until(lambda: health().status_code == 200, timeout=10, what="health to recover")
        again = requests.post(f"{base}/api/tasks/steady/run", json={"parameters": {"seconds": 0}},
                              headers={"X-API-Key": key}, timeout=10)
        assert again.status_code == 202
    finally:
        stop_serve(serve, log=log)
    assert "Traceback" not in log.read_text()


def test_serve_on_a_read_only_database_fails_in_one_line(tmp_path, process_env):
    with small_disk(tmp_path / "disk", size="16m") as disk:
        project = Project(disk / "db.sqlite3", process_env)
        project.manage("migrate", "--noinput", "-v0")
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        result = project.manage("serve", "--port", str(free_port()), check=False, timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"CommandError: The database ({disk / 'db.sqlite3'}) refused: ")
    assert "attempt to write a readonly database" in line or "unable to open" in line
    assert line.endswith("Check DATABASE_URL, its disk space and its file permissions.")


# --- PostgreSQL: the server says its disk is full ------------------------------------------------


@pytest.mark.postgres
@pytest.mark.postgres_only  # on SQLite: test_a_full_disk_is_reported_refused_and_the_run_still_records_its_real_end
@pytest.mark.django_db(transaction=True)
def test_a_run_whose_end_postgresql_refuses_records_it_once_the_disk_has_room(qcluster):
    task = make_task(callable="tests.sample_tasks.cooperative", parameters=[number("seconds", 1)])
    run = services.trigger(task, source=RunTrigger.API, requested_by="test")
    wait_until(lambda: Run.objects.filter(pk=run.pk, status=RunStatus.RUNNING).exists(), what="the run to start")
    with postgres_disk_full("tasks_app_run", on="UPDATE"):
        deadline = time.monotonic() + 3  # a real worker in real time: its 1 s passes, its end is refused
        while time.monotonic() < deadline:
            assert Run.objects.get(pk=run.pk).status == RunStatus.RUNNING
            assert services.reap_lost_runs(stale_after=0.5) == []  # alive on this host: never crashed
            time.sleep(0.2)
    run = run_until_ended(run)
    assert (run.status, run.end_reason, run.result) == (RunStatus.COMPLETED, EndReason.SUCCESS, "finished")
    assert run.error == ""


@pytest.mark.postgres
@pytest.mark.postgres_only  # the refusal comes from a trigger of PostgreSQL's
@pytest.mark.django_db(transaction=True)
def test_a_worker_whose_end_committed_but_whose_retry_was_refused_still_runs_the_run_its_end_claimed():
    """The end of a failed run of a ``queue`` task claims the next held run for its worker in the
    same transaction; the retry the failure sets off comes after it commits. When the database
    refuses that retry, the worker records the end again (as for any refused end), finds the run
    ended, and must still get the run its end claimed: otherwise that run would stay running with
    no one running it until the reaper ended it crashed."""
    task = make_task(callable="tests.sample_tasks.fail", on_overlap="queue", queue_max=10, retry_attempts=1)
    run = services.claim_run(make_run(task).pk, task_id=task.pk)
    held = make_run(task)
    with postgres_disk_full("tasks_app_run", on="INSERT"):
        recorded = execute_claimed(run, keep_slot=True, log_max_size=10_000, log_on_full=LogOnFull.DROP_OLD)
    assert recorded == (EndReason.FAILED, held.pk)
    run.refresh_from_db()
    held.refresh_from_db()
    assert (run.status, run.error) == (RunStatus.FAILED, "ValueError: disk on fire")
    assert (held.status, held.worker_pid) == (RunStatus.RUNNING, os.getpid())
