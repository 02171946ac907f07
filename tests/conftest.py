"""Shared fixtures: a movable clock, a real qcluster on the test database, polling helpers."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.db import connection

from tasks_app import clock as clock_module

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``postgres_only`` tests exist only where the database is PostgreSQL (``make test``'s first pass)."""
    if os.environ.get("DATABASE_URL", "").startswith(("postgres:", "postgresql:")):
        return
    kept = [item for item in items if item.get_closest_marker("postgres_only") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept


def wait_until(predicate: Callable[[], T], *, timeout: float = 10, interval: float = 0.05, what: str = "") -> T:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"Timed out after {timeout} s waiting for {what or predicate.__name__}")
        time.sleep(interval)


class FakeClock:
    """``now`` stands still until the test moves it; ``monotonic`` keeps flowing (loops and waits
    in the code under test still see time pass) and jumps by what the test moves."""

    def __init__(self, start: datetime) -> None:
        self.current = start
        self.moved = 0.0

    def now(self) -> datetime:
        return self.current

    def monotonic(self) -> float:
        return time.monotonic() + self.moved

    def advance(self, **delta: float) -> datetime:
        step = timedelta(**delta)
        self.current += step
        self.moved += step.total_seconds()
        return self.current


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """Taskdeck's clock, frozen at the real now and moved by the test (``clock.advance(seconds=…)``)."""
    fake = FakeClock(datetime.now(UTC).replace(microsecond=0))
    monkeypatch.setattr(clock_module, "now", fake.now)
    monkeypatch.setattr(clock_module, "monotonic", fake.monotonic)
    return fake


def subprocess_database_url() -> str:
    """The test database, as a DATABASE_URL for processes the tests start."""
    settings = connection.settings_dict
    if settings["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{settings['NAME']}"
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path=f"/{settings['NAME']}"))


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TASKDECK_DATA_DIR for the whole session, so tests never touch the developer's var/."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture(autouse=True)
def _use_test_data_dir(settings: Any, data_dir: Path) -> None:
    settings.TASKDECK = {**settings.TASKDECK, "DATA_DIR": str(data_dir)}


@pytest.fixture(scope="session")
def process_env(django_db_setup: Any, django_db_blocker: Any, data_dir: Path) -> dict[str, str]:
    """Environment for child processes: the test database, the test data folder, fast heartbeats,
    and a 1 MiB log cap (the default is 100 MiB), so the cap tests stay small and quick."""
    with django_db_blocker.unblock():
        url = subprocess_database_url()
    return {
        **os.environ,
        "DATABASE_URL": url,
        "TASKDECK_DATA_DIR": str(data_dir),
        "TASKDECK_HEARTBEAT_INTERVAL": "0.5",
        "TASKDECK_CANCEL_GRACE": "2",
        "TASKDECK_SCHEDULER_INTERVAL": "0.2",
        "TASKDECK_HEARTBEAT_STALE_AFTER": "5",
        "TASKDECK_LOG_MAX_SIZE": str(1024 * 1024),
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }


class Cluster:
    """A real `manage.py qcluster` process group on the test database."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=self.env,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def qcluster(process_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One worker cluster for the session; tests using it need django_db(transaction=True)."""
    cluster = Cluster(process_env, tmp_path_factory.mktemp("qcluster") / "qcluster.log")
    cluster.start()
    yield cluster
    cluster.stop()


@contextmanager
def postgres_disk_full(table: str, *, on: str) -> Iterator[None]:
    """Within the block, PostgreSQL answers every ``on`` (``INSERT``, ``UPDATE``, ``INSERT OR
    UPDATE``) of a row of ``table`` with its own "disk full" error (SQLSTATE 53100): what psycopg
    raises when the server's disk is full."""
    with connection.cursor() as cursor:
        cursor.execute(f"""
            CREATE FUNCTION taskdeck_test_disk_full() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full';
            END $$ LANGUAGE plpgsql;
            CREATE TRIGGER taskdeck_test_disk_full BEFORE {on} ON {table}
                FOR EACH ROW EXECUTE FUNCTION taskdeck_test_disk_full();
        """)
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TRIGGER taskdeck_test_disk_full ON {table}; DROP FUNCTION taskdeck_test_disk_full();")


def run_until_ended(run: Any, *, timeout: float = 20) -> Any:
    """Wait for a run to end; returns it refreshed."""
    def ended() -> bool:
        run.refresh_from_db()
        return not run.is_active
    wait_until(ended, timeout=timeout, what=f"run {run.id} to end")
    return run
