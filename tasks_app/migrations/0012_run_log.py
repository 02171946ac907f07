"""A run's captured output moves from two Run columns (``output``, the kept tail as text, and
``output_dropped``, the bytes cut from its head) to RunLogChunk rows of bytes (models/logs.py).

The kept text is carried over at the offsets it had: it starts at ``output_dropped``, so a client
that read a run's log up to some offset before the upgrade goes on from the same offset after it.
Dropping the two columns does not rebuild the run table on SQLite 3.35.5 and later (ALTER TABLE
DROP COLUMN); on an older SQLite Django rebuilds it and the RunCount triggers go with the old
table, so they are installed again if missing (as 0007 and 0009 say a rebuild must). On
PostgreSQL the chunks' bytes are compressed with lz4 rather than pglz (``compress_chunks_fast``).
"""
import importlib
import zlib

import django.db.models.deletion
from django.db import migrations, models

#: The largest chunk carried over (the writer's own chunks are no larger; execution/output.py).
CARRY_CHUNK = 1024 * 1024
#: Runs read per query, and bytes of chunks held before they are written.
RUNS_PER_BATCH = 200
BYTES_PER_BATCH = 8 * 1024 * 1024

held_counts = importlib.import_module("tasks_app.migrations.0009_held_runs_counted_and_indexed")
RECOUNT = f"""INSERT INTO tasks_app_runcount (task_id, status, "count", held)
              SELECT task_id, status, COUNT(*), SUM({held_counts.HELD_NEW.replace("NEW.", "")})
              FROM tasks_app_run GROUP BY task_id, status"""


def compress_chunks_fast(apps, schema_editor):
    """PostgreSQL compresses large values with pglz, which halves the speed a command's output is
    stored at (db/log_chunks.py): lz4 where the server has it (PostgreSQL 14+), else no compression."""
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'")
        row = cursor.fetchone()
        if row is not None and "lz4" in row[0]:
            cursor.execute("ALTER TABLE tasks_app_runlogchunk ALTER COLUMN data SET COMPRESSION lz4")
        else:
            cursor.execute("ALTER TABLE tasks_app_runlogchunk ALTER COLUMN data SET STORAGE EXTERNAL")


def carry_output_over(apps, schema_editor):
    Run = apps.get_model("tasks_app", "Run")
    RunLogChunk = apps.get_model("tasks_app", "RunLogChunk")
    alias = schema_editor.connection.alias
    runs = Run.objects.using(alias).exclude(output="").order_by("pk").values_list("pk", "output", "output_dropped")
    batch, held = [], 0
    for run_id, output, dropped in runs.iterator(chunk_size=RUNS_PER_BATCH):
        data = output.encode("utf-8", "backslashreplace")
        for at in range(0, len(data), CARRY_CHUNK):
            piece = data[at:at + CARRY_CHUNK]
            batch.append(RunLogChunk(run_id=run_id, start=dropped + at, end=dropped + at + len(piece), data=piece))
            held += len(piece)
        if held >= BYTES_PER_BATCH or len(batch) >= RUNS_PER_BATCH:
            RunLogChunk.objects.using(alias).bulk_create(batch)
            batch, held = [], 0
    RunLogChunk.objects.using(alias).bulk_create(batch)


def carry_output_back(apps, schema_editor):
    """Reversed: each run's kept bytes as text again (invalid UTF-8 replaced), from its first offset."""
    Run = apps.get_model("tasks_app", "Run")
    RunLogChunk = apps.get_model("tasks_app", "RunLogChunk")
    alias = schema_editor.connection.alias
    run_ids = RunLogChunk.objects.using(alias).order_by().values_list("run_id", flat=True).distinct()
    for run_id in list(run_ids):
        chunks = RunLogChunk.objects.using(alias).filter(run_id=run_id).order_by("end")
        pieces = []
        for start, end, data, compressed in chunks.values_list("start", "end", "data", "compressed"):
            data = zlib.decompress(data) if compressed else bytes(data)
            pieces.append((start, data[len(data) - (end - start):]))
        text = b"".join(piece for _, piece in pieces).decode("utf-8", "replace")
        Run.objects.using(alias).filter(pk=run_id).update(output=text, output_dropped=pieces[0][0])


def reinstall_run_count_triggers(apps, schema_editor):
    """Only where SQLite rebuilt the run table (older than 3.35.5) and the triggers went with it."""
    connection = schema_editor.connection
    if connection.vendor != "sqlite":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'tasks_app_run'")
        if cursor.fetchone()[0] == len(held_counts.statements("sqlite", drop=False)):
            return
        for sql in held_counts.statements("sqlite", drop=True) + held_counts.statements("sqlite", drop=False):
            cursor.execute(sql)
        cursor.execute("DELETE FROM tasks_app_runcount")
        cursor.execute(RECOUNT)


class Migration(migrations.Migration):

    dependencies = [
        ('tasks_app', '0011_process_settings'),
    ]

    operations = [
        migrations.CreateModel(
            name='RunLogChunk',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('start', models.PositiveBigIntegerField(help_text='Offset of the first byte shown')),
                ('end', models.PositiveBigIntegerField(help_text='Offset after the last byte')),
                ('data', models.BinaryField(help_text='The bytes of [end - len(data), end), zlib-compressed when compressed')),
                ('compressed', models.BooleanField(default=False)),
                ('run', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='log_chunks', to='tasks_app.run')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('run', 'end'), name='run_log_chunk_end')],
            },
        ),
        migrations.RunPython(compress_chunks_fast, migrations.RunPython.noop),
        migrations.RunPython(carry_output_over, carry_output_back),
        migrations.RemoveField(
            model_name='run',
            name='output',
        ),
        migrations.RemoveField(
            model_name='run',
            name='output_dropped',
        ),
        migrations.RunPython(reinstall_run_count_triggers, migrations.RunPython.noop),
        migrations.AlterField(
            model_name='event',
            name='name',
            field=models.CharField(choices=[('task:queued', 'Queued'), ('task:started', 'Started'), ('task:progress', 'Progress'), ('task:completed', 'Completed'), ('task:error', 'Error'), ('task:cancelled', 'Cancelled'), ('task:skipped', 'Skipped'), ('task:updated', 'Definition updated'), ('run:log', 'Output logged')], max_length=30),
        ),
        migrations.AlterField(
            model_name='run',
            name='stop_requested',
            field=models.CharField(blank=True, choices=[('cancel', 'Cancel'), ('terminate', 'Terminate (overlap)'), ('shutdown', 'Shutdown'), ('overflow', 'Log overflow')], max_length=10),
        ),
    ]
