"""manage.py import_crontab (definitions/imports/crontab.py): a crontab's lines as command tasks
with their cron strings, written to the database or to a definitions file."""
from __future__ import annotations

import os
import shutil

import pytest
from django.core.management import CommandError

from tasks_app.definitions.imports.crontab import read_crontab, task_id_for
from tasks_app.definitions.imports.entries import build_definitions
from tasks_app.definitions.load import load_definitions_file
from tasks_app.definitions.process import process_defaults
from tasks_app.models import Task

from ..factories import make_task
from .conftest import FILES, call

CRONTAB = FILES / "crontab"
SYSTEM = FILES / "cron.d-logrotate"
BACKUP = '/usr/local/bin/backup.sh --full "$BACKUP_DIR"'
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "BACKUP_DIR": "/srv/backups"}
#: The sample's task ids, by line.
IDS = {6: task_id_for(BACKUP), 7: task_id_for("find /tmp -name '*.tmp' -mmin +60 -delete"),
       8: task_id_for("tar -czf /srv/backups/etc-$(date +%F).tgz /etc"), 9: task_id_for("/usr/local/bin/warm-cache"),
       12: task_id_for(BACKUP) + "-2"}

pytestmark = pytest.mark.django_db


def test_each_line_becomes_a_command_task_with_its_schedule_environment_and_shell(settings):
    settings.TASKDECK = {**settings.TASKDECK, "LOG_MAX_SIZE": 5000, "DEFAULT_TIMEZONE": "UTC"}
    call("import_crontab", str(CRONTAB))
    assert IDS[6] == "cron.backup_sh_full_backup.7541f242" and IDS[12] == "cron.backup_sh_full_backup.7541f242-2"

    nightly = Task.objects.get(pk=IDS[6])
    assert (nightly.source, nightly.kind, nightly.type, nightly.cron_string, nightly.timezone) == (
        "crontab", "command", "cron", "30 2 * * *", "UTC")
    assert (nightly.title, nightly.timeout, nightly.catch_up, nightly.on_overlap, nightly.run_on_start) == (
        BACKUP, None, "skip", "skip", False)
    assert nightly.description == f"Imported from the crontab {CRONTAB}: 30 2 * * *   {BACKUP}"
    assert nightly.process == {**process_defaults(), "command": BACKUP, "env": ENV}

    weekdays = Task.objects.get(pk=IDS[12])  # after SHELL= and CRON_TZ=
    assert (weekdays.cron_string, weekdays.timezone) == ("0 8 * * 1-5", "Europe/Paris")
    assert weekdays.process == {**process_defaults(), "command": BACKUP, "shell": "/bin/bash",
                                "env": {**ENV, "SHELL": "/bin/bash"}}

    assert Task.objects.get(pk=IDS[7]).cron_string == "*/15 * * * *"
    daily = Task.objects.get(pk=IDS[8])
    assert (daily.cron_string, daily.process["command"]) == ("@daily", "tar -czf /srv/backups/etc-$(date +%F).tgz /etc")
    reboot = Task.objects.get(pk=IDS[9])
    assert (reboot.cron_string, reboot.run_on_start, reboot.interval) == ("", True, None)
    assert Task.objects.count() == 5  # line 13 (an unescaped %) is skipped


def test_the_table_says_what_became_of_each_line_and_what_was_not_carried_over():
    assert call("import_crontab", str(CRONTAB)).splitlines() == [
        "LINE  TASK                                   RESULT   NOT CARRIED OVER",
        f"6     {IDS[6]}    created  -",
        f"7     {IDS[7]}   created  -",
        f"8     {IDS[8]}  created  -",
        f"9     {IDS[9]}               created  @reboot: runs when Taskdeck's scheduler starts (run_on_start), not "
        "when the machine boots",
        f"12    {IDS[12]}  created  -",
        "13    -                                      skipped  skipped: an unescaped % (cron sends what follows it to "
        "the command's standard input); write it as \\% or rewrite the line",
        "MAILTO (line 2): not carried over (Taskdeck keeps each run's output in its log and sends no mail)",
        "5 task(s) to the database (source crontab): 5 created; 1 skipped.",
    ]


def test_ids_follow_the_line_not_its_place_and_a_new_schedule_updates_in_place(tmp_path):
    path = tmp_path / "crontab"
    shutil.copy(CRONTAB, path)
    call("import_crontab", str(path))
    created = Task.objects.get(pk=IDS[6]).created_at
    path.write_text("# a comment and a new line on top\n0 1 * * * /usr/bin/true\n" + path.read_text().replace(
        "30 2 * * *   /usr", "45 3 * * *   /usr"))
    output = call("import_crontab", str(path)).splitlines()
    assert output[-1] == "6 task(s) to the database (source crontab): 1 created, 1 updated, 4 unchanged; 1 skipped."
    task = Task.objects.get(pk=IDS[6])
    assert (task.cron_string, task.created_at) == ("45 3 * * *", created)

    path.write_text("0 1 * * * /usr/bin/true\n")
    assert call("import_crontab", str(path)).splitlines()[-2] == (
        "Imported before and no longer in the file, left as they are (delete them in the admin if they are gone): "
        + ", ".join(sorted(IDS.values())))
    assert Task.objects.filter(pk__in=IDS.values(), removed_at=None).count() == 5


@pytest.mark.skipif(os.geteuid() != 0, reason="a task with a user needs the worker to run as root")
def test_a_system_crontab_gives_each_task_its_user():
    call("import_crontab", str(SYSTEM), "--system")
    rotate = Task.objects.get(pk=task_id_for("/usr/sbin/logrotate /etc/logrotate.conf", user="root"))
    assert (rotate.cron_string, rotate.process["user"], rotate.process["shell"]) == ("@hourly", "root", "/bin/sh")
    daily = Task.objects.get(pk=task_id_for("test -x /usr/sbin/anacron || run-parts --report /etc/cron.daily",
                                            user="root"))
    assert (daily.cron_string, daily.process["command"]) == (
        "25 6 * * *", "test -x /usr/sbin/anacron || run-parts --report /etc/cron.daily")


def test_a_crontab_that_looks_like_a_system_one_is_said_so():
    reading = read_crontab(SYSTEM)
    assert reading.entries[0].fields["command"].startswith("root ")
    assert reading.notes == ["Each command starts with a user's name: if this is a system crontab (a user after the "
                             "schedule), import it with --system."]
    assert read_crontab(SYSTEM, system=True).notes == []


def test_timezone_applies_where_no_cron_tz_line_says(tmp_path):
    path = tmp_path / "crontab"
    path.write_text("0 1 * * * a\nCRON_TZ=Asia/Tokyo\n0 2 * * * b\n")
    first, second = read_crontab(path, timezone="America/New_York").entries
    assert (first.fields["timezone"], second.fields["timezone"]) == ("America/New_York", "Asia/Tokyo")


@pytest.mark.parametrize(("text", "message"), [
    ("0 1 * * *\n", "line 1: not NAME=value, a comment or a cron line (5 time fields (or an @alias), then the command)"),
    ("# ok\n\n0 1 * * cmd\n", "line 3: not NAME=value, a comment or a cron line (5 time fields (or an @alias), then "
                              "the command)"),
    ("61 * * * * cmd\n", f"line 1: Task '{task_id_for('cmd')}': field 'cron_string': '61 * * * *' is not a 5-field "
                         "cron expression that fires (like \"30 2 * * *\" or @daily)"),
    ("@fortnightly cmd\n", f"line 1: Task '{task_id_for('cmd')}': field 'cron_string': '@fortnightly' is not a "
                           "5-field cron expression that fires (like \"30 2 * * *\" or @daily)"),
    ("CRON_TZ=Mars/Olympus\n0 1 * * * cmd\n", f"line 2: Task '{task_id_for('cmd')}': field 'timezone': unknown time "
                                              "zone 'Mars/Olympus' (like UTC or Europe/Paris)"),
])
def test_a_malformed_crontab_fails_in_one_line_naming_it_and_writes_nothing(tmp_path, text, message):
    path = tmp_path / "crontab"
    path.write_text(text)
    with pytest.raises(CommandError) as raised:
        call("import_crontab", str(path))
    assert str(raised.value) == f"{path}: {message}"
    assert not Task.objects.exists()


def test_a_task_of_another_source_is_never_overwritten():
    make_task(id=IDS[7], source="admin")
    with pytest.raises(CommandError, match=rf"^Task '{IDS[7]}' already exists, from admin \(source admin\)"):
        call("import_crontab", str(CRONTAB))
    assert Task.objects.count() == 1


def test_output_writes_definitions_that_load_back_as_the_import_built_them(tmp_path):
    output = tmp_path / "cron.toml"
    assert call("import_crontab", str(CRONTAB), "--output", str(output)).splitlines()[-1] == (
        f"5 task(s) to {output}: 5 written; 1 skipped.")
    assert not Task.objects.exists()
    assert load_definitions_file(output) == build_definitions(read_crontab(CRONTAB), source="file")
