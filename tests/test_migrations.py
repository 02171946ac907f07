"""Migrations that move data: taken back and forth on the test database, with rows they must carry."""
from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tasks_app import clock, selectors
from tasks_app.models import Run, RunLogChunk, RunStatus

from .factories import log_of, make_run, make_task

BEFORE_LOG = ("tasks_app", "0010_task_defaults_follow_settings")


def migrate(target: tuple[str, str]) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate([target])
    return executor


def migrate_to_the_latest() -> None:
    """Forward through the migration under test to the latest, which the models (and the tests
    after this one) expect."""
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes("tasks_app"))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_0012_carries_each_runs_output_into_its_log_at_the_same_offsets():
    old = migrate(BEFORE_LOG).loader.project_state([BEFORE_LOG]).apps
    task = old.get_model("tasks_app", "Task").objects.create(id="legacy", title="Legacy", kind="python",
                                                            callable="tests.sample_tasks.noop", timeout=60)
    old_run = old.get_model("tasks_app", "Run")
    now = clock.now()
    tail = "kept tail, é and €\n"
    cut = old_run.objects.create(task=task, trigger="manual", created_at=now, output=tail, output_dropped=1000)
    whole = old_run.objects.create(task=task, trigger="manual", created_at=now, output="all of it\n")
    silent = old_run.objects.create(task=task, trigger="manual", created_at=now)

    migrate_to_the_latest()

    assert log_of(Run.objects.get(pk=cut.pk)) == (1000, tail.encode(), 1000 + len(tail.encode()))
    assert log_of(Run.objects.get(pk=whole.pk)) == (0, b"all of it\n", 10)
    assert not RunLogChunk.objects.filter(run_id=silent.pk).exists()
    piece = selectors.read_log(cut.pk, offset=1005)  # a client that had read up to 1005 goes on from there
    assert piece.as_text() == tail.encode()[5:].decode()
    # The run counts are still kept by the database's triggers, whatever the table went through.
    make_run(make_task())
    assert selectors.count_runs(task_id="legacy", statuses=[RunStatus.QUEUED]) == 3
    assert selectors.count_runs(statuses=[RunStatus.QUEUED]) == 4


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_0012_taken_back_puts_the_kept_bytes_into_the_output_column_again():
    run = make_run(make_task(id="later"))
    RunLogChunk.objects.create(run=run, start=40, end=46, data=b"\xff tail")  # 6 bytes, after 40 dropped
    old = migrate(BEFORE_LOG).loader.project_state([BEFORE_LOG]).apps
    try:
        row = old.get_model("tasks_app", "Run").objects.get(pk=run.pk)
        assert (row.output, row.output_dropped) == ("\ufffd tail", 40)
    finally:
        migrate_to_the_latest()
    assert log_of(Run.objects.get(pk=run.pk)) == (40, "\ufffd tail".encode(), 40 + len("\ufffd tail".encode()))


@pytest.mark.postgres
@pytest.mark.postgres_only
@pytest.mark.django_db
def test_0012_has_postgresql_compress_log_chunks_with_lz4_or_not_at_all():
    """pglz halves the speed a command's output is stored at (db/log_chunks.py)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'")
        lz4 = "lz4" in (cursor.fetchone() or [[]])[0]
        cursor.execute("""SELECT attcompression, attstorage FROM pg_attribute
                          WHERE attrelid = 'tasks_app_runlogchunk'::regclass AND attname = 'data'""")
        compression, storage = cursor.fetchone()
    assert (compression, storage) == (("l", "x") if lz4 else ("", "e"))
