"""A new task's time zone and retention come from settings (models.default_*), not constants.

Defaults live in Python only (Django sets no database default), so the database has nothing to
do: the state changes alone, and SQLite is spared rebuilding the task table.
"""
import tasks_app.models
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('tasks_app', '0009_held_runs_counted_and_indexed'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.AlterField(
                model_name='task',
                name='keep_for',
                field=models.FloatField(default=tasks_app.models.default_keep_for, help_text='Seconds'),
            ),
            migrations.AlterField(
                model_name='task',
                name='keep_runs',
                field=models.PositiveIntegerField(default=tasks_app.models.default_keep_runs),
            ),
            migrations.AlterField(
                model_name='task',
                name='timezone',
                field=models.CharField(default=tasks_app.models.default_timezone, max_length=64),
            ),
        ]),
    ]
