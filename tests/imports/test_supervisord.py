"""manage.py import_supervisord (definitions/imports/supervisord.py): [program:x] sections as
services, written to the database or to a definitions file."""
from __future__ import annotations

import os
import subprocess

import pytest
from django.core.management import CommandError

from tasks_app.definitions.imports.entries import build_definitions
from tasks_app.definitions.imports.supervisord import read_supervisord
from tasks_app.definitions.load import load_definitions_file
from tasks_app.definitions.process import process_defaults
from tasks_app.definitions.service import service_defaults
from tasks_app.models import Task

from ..factories import make_task
from .conftest import FILES, call

CONF = FILES / "supervisord.conf"
#: The web program's shell text: each instance's port, in its environment and its argv.
PORT = "80\"$(printf '%02d' \"$TASKDECK_INSTANCE_INDEX\")\""
WEB = f"export PORT={PORT}; exec /srv/app/bin/gunicorn app.wsgi --bind 127.0.0.1:{PORT} --name web"
SUPERVISORD = {"restart_backoff": "linear", "restart_delay": 1, "healthy_after": 1, "start_retries": 4,
               "graceful_stop": 10, "priority": 999}

pytestmark = pytest.mark.django_db


def test_each_program_becomes_a_service_with_supervisords_own_defaults(settings):
    settings.TASKDECK = {**settings.TASKDECK, "LOG_MAX_SIZE": 5000}
    call("import_supervisord", str(CONF))

    web = Task.objects.get(pk="web")
    assert (web.source, web.kind, web.title, web.type) == ("supervisord", "service", "web", "supervisord")
    assert web.description == f"supervisord program web, imported from {CONF}."
    assert web.process == {
        **process_defaults(), **service_defaults(), "command": WEB, "working_dir": str(FILES), "umask": "0022",
        "env": {"LANG": "C.UTF-8", "APP_ENV": "staging", "WORKERS": "4"}, "exit_codes": [0, 2],
        "stop_signal": "SIGQUIT", "graceful_stop": 30, "instances": 2, "autostart": True, "restart": "on_failure",
        "restart_backoff": "linear", "restart_delay": 1, "start_retries": 3, "healthy_after": 5, "priority": 100,
    }
    queue = Task.objects.get(pk="queue")
    assert queue.process == {
        **process_defaults(), **service_defaults(), **SUPERVISORD, "argv": ["/srv/app/bin/worker", "--queue", "default,low"],
        "env": {"LANG": "C.UTF-8", "APP_ENV": "production"}, "restart": "always"}
    mailer = Task.objects.get(pk="report-mailer")
    assert (mailer.title, mailer.process["argv"], mailer.process["autostart"], mailer.process["restart"]) == (
        "Report-Mailer", ["/srv/app/bin/mailer", "--once"], False, "never")
    assert Task.objects.count() == 3


def test_the_table_says_what_became_of_each_section_and_what_was_not_carried_over():
    assert call("import_supervisord", str(CONF)).splitlines() == [
        "SECTION                  TASK           RESULT   NOT CARRIED OVER",
        "program:web              web            created  process_name: instances are known by their index",
        "                                                 stdout_logfile, stdout_logfile_maxbytes: output goes to the "
        "run's log, stdout and stderr together",
        "program:queue            queue          created  -",
        "program:Report-Mailer    report-mailer  created  serverurl: Taskdeck gives a program no supervisord to talk to",
        "eventlistener:crashmail  -              skipped  skipped: event listeners are not imported",
        "[group:app]: not carried over (its programs web, queue are imported alone)",
        "3 task(s) to the database (source supervisord): 3 created; 1 skipped.",
    ]
    assert call("import_supervisord", str(CONF)).splitlines()[-1] == (
        "3 task(s) to the database (source supervisord): 3 unchanged; 1 skipped.")


def test_the_shell_text_gives_each_instance_its_own_port():
    for index, port in ((0, "8000"), (1, "8001")):
        shown = subprocess.run(["/bin/sh", "-c", WEB.replace("exec /srv/app/bin/gunicorn", 'exec printf "%s\\n" "$PORT"'),
                                "sh"], env={**os.environ, "TASKDECK_INSTANCE_INDEX": str(index)},
                               capture_output=True, text=True, check=True).stdout.splitlines()
        assert shown == [port, "app.wsgi", "--bind", f"127.0.0.1:{port}", "--name", "web"]


def test_expansions_known_now_are_put_in_and_the_others_left_to_each_instance(tmp_path):
    path = tmp_path / "app.conf"
    path.write_text(
        "[program:w]\n"
        "command = run %(program_name)s %(group_name)s %(numprocs)d --slot=%(process_num)d --home %(ENV_HOME)s "
        "--site=%(ENV_SITE)s 100%%\n"
        "numprocs = 3\nnumprocs_start = 5\nprocess_name = w%(process_num)d\n"
        "environment = SITE=\"%(here)s/site\"\n"
        "[group:g]\nprograms = w\n")
    [entry] = read_supervisord(path).entries
    assert entry.fields["command"] == (
        f"exec run w g 3 --slot=\"$((TASKDECK_INSTANCE_INDEX + 5))\" --home \"${{HOME}}\" --site={tmp_path}/site "
        "100%")
    assert entry.fields["env"] == {"SITE": f"{tmp_path}/site"}
    assert entry.lost == ["process_name: instances are known by their index",
                          "%(ENV_HOME)s: read from the worker's environment as each instance starts, not supervisord's"]


def test_included_files_are_read_with_their_own_here(tmp_path):
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "supervisord.conf").write_text("[supervisord]\n[include]\nfiles = conf.d/*.conf\n")
    (tmp_path / "conf.d" / "b.conf").write_text("[program:b]\ncommand = %(here)s/run-b\n")
    (tmp_path / "conf.d" / "a.conf").write_text("[program:a]\ncommand = /bin/a\nautorestart = yes\n")
    reading = read_supervisord(tmp_path / "supervisord.conf")
    assert [(entry.task_id, entry.fields["argv"]) for entry in reading.entries] == [
        ("a", ["/bin/a"]), ("b", [f"{tmp_path}/conf.d/run-b"])]
    assert reading.notes == ["[include]: read conf.d/a.conf, conf.d/b.conf"]


@pytest.mark.skipif(os.geteuid() != 0, reason="a task with a user needs the worker to run as root")
def test_a_programs_user_is_carried_over(tmp_path):
    path = tmp_path / "app.conf"
    path.write_text("[program:app]\ncommand = /bin/app\nuser = root\n")
    call("import_supervisord", str(path))
    assert Task.objects.get(pk="app").process["user"] == "root"


@pytest.mark.parametrize(("text", "message"), [
    ("command = x\n", "line 1: not under a [section]"),
    ("[program:a]\ncommand = x\nthis is not a key\n", "line 3: not a key = value line"),
    ("[supervisord]\n", "has no [program:x] section"),
    ("[program:a]\nautostart = true\n", "[program:a] command: is missing (a program names the command it runs)"),
    ("[program:a]\ncommand = x\nautorestart = maybe\n", "[program:a] autorestart: 'maybe' is not true, false or "
                                                       "unexpected"),
    ("[program:a]\ncommand = x\nnumprocs = 2\n", "[program:a] process_name: must hold %(process_num) when numprocs > 1 "
                                                "(supervisord refuses it too)"),
    ("[program:a]\ncommand = x\nstartsecs = soon\n", "[program:a] startsecs: 'soon' is not a whole number"),
    ("[program:a]\ncommand = x\nstopsignal = NOPE\n", "[program:a] stopsignal: 'NOPE' is not a signal (like TERM, INT, "
                                                     "QUIT)"),
    ("[program:a]\ncommand = x\nexitcodes = 0,256\n", "[program:a] exitcodes: '0,256' is not a list of exit codes from "
                                                     "0 to 255"),
    ("[program:a]\ncommand = date +%s\n", "[program:a] command: has a % that is neither %% nor %(name)s (supervisord "
                                          "refuses it too)"),
    ("[program:a]\ncommand = x %(nope)s\n", "[program:a] command: %(nope)s: supervisord knows no 'nope' here"),
    ("[program:a]\ncommand = x 'unclosed\n", "[program:a] command: cannot be split into words (No closing quotation)"),
    ("[program:a]\ncommand = x\nenvironment = A=1,B\n", "[program:a] environment: is not KEY=value pairs separated by "
                                                       "commas (quote a value: KEY=\"a,b\")"),
    ("[program:a]\ncommand = x\nnumprocs = 65\nprocess_name = a%(process_num)d\n",
     "[program:a]: Task 'a': field 'instances': must be a whole number from 1 to 64"),
    ("[program:a]\ncommand = x\n[program:A]\ncommand = y\n", "[program:A] and [program:a] both become task 'a'"),
])
def test_a_malformed_configuration_fails_in_one_line_naming_it_and_writes_nothing(tmp_path, text, message):
    path = tmp_path / "supervisord.conf"
    path.write_text(text)
    with pytest.raises(CommandError) as raised:
        call("import_supervisord", str(path))
    assert str(raised.value) == f"{path}: {message}"
    assert not Task.objects.exists()


def test_a_program_whose_directory_differs_by_instance_is_skipped(tmp_path):
    path = tmp_path / "app.conf"
    path.write_text("[program:a]\ncommand = x\nnumprocs = 2\nprocess_name = a%(process_num)d\n"
                    "directory = /srv/%(process_num)d\n")
    [entry] = read_supervisord(path).entries
    assert entry.skipped == "its directory differs by instance, which a task's working_dir cannot"


def test_a_task_of_another_source_is_never_overwritten():
    make_task(id="queue", source="code")
    with pytest.raises(CommandError, match=r"^Task 'queue' already exists, from code \(@task\) \(source code\)"):
        call("import_supervisord", str(CONF))
    assert Task.objects.count() == 1


def test_output_writes_definitions_that_load_back_as_the_import_built_them(tmp_path):
    output = tmp_path / "programs.toml"
    assert call("import_supervisord", str(CONF), "--output", str(output)).splitlines()[-1] == (
        f"3 task(s) to {output}: 3 written; 1 skipped.")
    assert not Task.objects.exists()
    assert load_definitions_file(output) == build_definitions(read_supervisord(CONF), source="file")
