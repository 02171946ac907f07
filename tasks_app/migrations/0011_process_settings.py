"""Command tasks (issue 14): a task's process settings; a run's exit signal and child pid.

Three nullable columns without a default: SQLite adds each in place (ALTER TABLE ADD COLUMN), so
the run table is not rebuilt and its RunCount triggers (0005, 0009) stay; no data to move.
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('tasks_app', '0010_task_defaults_follow_settings'),
    ]

    operations = [
        migrations.AddField(
            model_name='run',
            name='exit_signal',
            field=models.CharField(blank=True, help_text='The signal that ended the process (SIGTERM, SIGKILL…)', max_length=16, null=True),
        ),
        migrations.AddField(
            model_name='run',
            name='pid',
            field=models.PositiveIntegerField(blank=True, help_text="The child process's pid; none for python runs", null=True),
        ),
        migrations.AddField(
            model_name='task',
            name='process',
            field=models.JSONField(blank=True, help_text="A command task's process settings, normalised (definitions/process.py); null for python tasks", null=True),
        ),
    ]
