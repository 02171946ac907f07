"""tasks_app.db.sqlite3: one write transaction at a time across processes, waits bounded."""
import fcntl
import subprocess
import sys
import threading
import time

import pytest
from django.db import connection, transaction

from .conftest import ROOT, wait_until
from .processes import Project

DEFINITIONS = """
[tasks.locked_finish]
kind = "python"
callable = "tests.sample_tasks.return_while_database_locked"
parameters = [{ key = "seconds", type = "number", default = 2.5 }]
"""


@pytest.fixture
def project(tmp_path, process_env) -> Project:
    definitions = tmp_path / "taskdeck.toml"
    definitions.write_text(DEFINITIONS)
    env = {**process_env, "SQLITE_BUSY_TIMEOUT": "1", "TASKDECK_DEFINITIONS": str(definitions)}
    project = Project(tmp_path / "db.sqlite3", env)
    project.manage("migrate", "--noinput", "-v0")
    return project


def hold_write_lock(database, seconds: float) -> None:
    with open(f"{database}-writelock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        time.sleep(seconds)


@pytest.mark.django_db(transaction=True)
def test_a_second_writer_waits_for_the_first_to_commit():
    order = []
    first_in = threading.Event()

    def first():
        with transaction.atomic():
            first_in.set()
            time.sleep(0.3)
            order.append("first committed")
        connection.close()

    def second():
        first_in.wait(5)
        with transaction.atomic():
            order.append("second began")
        connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert order == ["first committed", "second began"]


def test_a_writer_that_cannot_get_the_lock_fails_after_the_busy_timeout(project):
    holder = threading.Thread(target=hold_write_lock, args=(project.database, 6))  # a loaded command starts in 1-2 s
    holder.start()
    time.sleep(0.2)
    started = time.monotonic()
    result = project.manage("tasks", "sync", check=False)
    took = time.monotonic() - started  # before the join, which waits for the holder's 6 s
    holder.join()
    assert result.returncode == 1
    assert result.stderr.strip() == "CommandError: Database error: database is locked (waited 1 s for the write lock)"
    assert 1 <= took < 5.5  # gave up before the lock was let go


def test_a_run_whose_end_meets_a_locked_database_still_ends_completed(project):
    project.manage("tasks", "sync")
    cluster = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=project.env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        run_id = project.manage("tasks", "run", "locked_finish").stdout.strip()
        wait_until(lambda: project.show(run_id)["Status"] == "completed (success)", timeout=20, interval=0.3,
                   what="the run to be recorded completed despite the lock")
    finally:
        cluster.terminate()
        cluster.wait(15)
