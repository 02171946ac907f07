"""execution/flusher.py: every open LogWriter of a process is stored by one thread on one
connection; a writer whose flushes fail, or a database refusing every write, holds no one else up."""
from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.db.backends.signals import connection_created

from tasks_app import services
from tasks_app.execution.flusher import flusher
from tasks_app.execution.output import MAX_PENDING, LogWriter
from tasks_app.models import LogOnFull, Run, RunLogChunk

from ..conftest import postgres_disk_full, wait_until
from ..factories import log_of, make_run, make_task

FLUSHER = "taskdeck-log-flusher"


def claimed_runs(count: int) -> list[Run]:
    task = make_task()
    return [services.claim_run(make_run(task).pk) for _ in range(count)]


def writer(run: Run) -> LogWriter:
    return LogWriter(run.pk, task_id=run.task_id, max_size=10**9, on_full=LogOnFull.DROP_OLD)


def stored(run: Run) -> int:
    return log_of(run)[2]


def flusher_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == FLUSHER]


def server_connections() -> int:
    """Connections to the test database that PostgreSQL sees (this test's own among them)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        return cursor.fetchone()[0]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_fifty_writers_are_stored_by_one_thread_on_one_connection():
    assert flusher_threads() == [], "a writer of an earlier test was never closed"
    runs = claimed_runs(50)
    postgres = connection.vendor == "postgresql"
    before = server_connections() if postgres else 0
    opened: list[object] = []
    receiver = lambda sender, connection, **kwargs: opened.append(connection)  # noqa: E731
    connection_created.connect(receiver)
    try:
        writers = [writer(run) for run in runs]
        for index, log in enumerate(writers):
            log.write(b"first line of %d\n" % index)
        wait_until(lambda: all(stored(run) for run in runs), what="every writer's first line stored")
        assert len(flusher_threads()) == 1
        assert len(opened) == 1  # the flusher's, in its thread
        if postgres:
            assert server_connections() == before + 1
        for index, log in enumerate(writers):
            log.write(b"second line of %d\n" % index)
        for log in writers:
            log.close()
    finally:
        connection_created.disconnect(receiver)
    assert flusher_threads() == []  # the last close waits for the thread to close its connection and end
    if postgres:
        assert server_connections() == before
    for index, run in enumerate(runs):
        assert log_of(run)[1] == b"first line of %d\nsecond line of %d\n" % (index, index)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_writer_whose_flushes_keep_failing_neither_waits_nor_holds_the_others_up(caplog):
    gone, kept = claimed_runs(2)
    doomed, log = writer(gone), writer(kept)
    Run.objects.filter(pk=gone.pk).delete()  # its chunks now break a foreign key: each flush fails
    for _ in range(3 * MAX_PENDING // 65536):  # past MAX_PENDING: a failing writer does not wait
        doomed.write(b"x" * 65535 + b"\n")
    for round_ in range(3):
        log.write(b"round %d\n" % round_)
        wait_until(lambda: stored(kept) == 8 * (round_ + 1), what="the other writer's output stored")
    doomed.abandon()
    log.close()
    assert log_of(kept)[1] == b"round 0\nround 1\nround 2\n"
    failures = [record for record in caplog.records if f"output of run {gone.pk}" in record.getMessage()]
    assert len(failures) == 1  # said once, not at every try


@pytest.mark.postgres
@pytest.mark.postgres_only  # the refusal comes from a trigger of PostgreSQL's
@pytest.mark.django_db(transaction=True)
def test_while_the_database_refuses_writes_writers_go_on_and_nothing_is_lost_once_it_accepts():
    runs = claimed_runs(3)
    writers = [writer(run) for run in runs]
    line = b"y" * 65535 + b"\n"
    size = 2 * MAX_PENDING // len(line) * len(line)

    def write_past_the_limit(log: LogWriter) -> None:
        for _ in range(size // len(line)):
            log.write(line)

    try:
        with postgres_disk_full("tasks_app_runlogchunk", on="INSERT OR UPDATE"):
            threads = [threading.Thread(target=write_past_the_limit, args=(log,)) for log in writers]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=30)
                assert not thread.is_alive(), "a writer waited for a database that refuses writes"
            assert flusher().refusing
            assert not RunLogChunk.objects.exists()
        wait_until(lambda: all(stored(run) == size for run in runs), what="the buffered output stored")
        assert not flusher().refusing
    finally:
        for log in writers:
            log.close()
    assert all(log_of(run)[1] == line * (size // len(line)) for run in runs)
