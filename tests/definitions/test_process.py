"""definitions/process.py, through the loader: command tasks declared in the definitions file."""
from __future__ import annotations

import grp
import os
import pwd
import subprocess
import sys

import pytest

from tasks_app.definitions.load import load_definitions_file
from tasks_app.definitions.process import check_process, read_env_file, validate_process
from tasks_app.definitions.validate import build_definition
from tasks_app.exceptions import DefinitionError

from ..conftest import ROOT

#: DESIGN.md's example, as the definitions file declares it.
DISK_USAGE = """
[tasks.disk_usage]
kind = "command"
command = 'du -s "$TARGET" "$@"'           # parameters arrive as "$@", never spliced into text
interval = 15
interval_unit = "minutes"
env = { TARGET = "var/library" }
timeout = 60
log_max_size = 1048576
log_on_full = "drop_old"
parameters = [{ key = "--max-depth", kind = "option", type = "number", default = "1" }]
"""

NOBODY_GROUP = grp.getgrgid(pwd.getpwnam("nobody").pw_gid).gr_name


def command(**fields):
    return build_definition("broken", {"kind": "command", **fields}, source="file", effective_uid=0)


def test_the_design_example_loads_with_every_default_applied(tmp_path, settings):
    settings.TASKDECK = {**settings.TASKDECK, "LOG_MAX_SIZE": 5000}
    path = tmp_path / "taskdeck.toml"
    path.write_text(DISK_USAGE)

    [definition] = load_definitions_file(path)

    assert definition["process"] == {
        "command": 'du -s "$TARGET" "$@"', "argv": None, "shell": "/bin/sh", "working_dir": "", "user": "",
        "umask": "", "env": {"TARGET": "var/library"}, "env_file": "", "secrets_file": "", "exit_codes": [0],
        "stop_signal": "SIGTERM", "graceful_stop": 5, "log_max_size": 1048576, "log_on_full": "drop_old",
    }
    assert (definition["kind"], definition["callable"], definition["supports_cancel"]) == ("command", "", True)
    assert (definition["interval"], definition["interval_unit"], definition["timeout"]) == (15, "minutes", 60)
    assert definition["parameters"][0]["kind"] == "option" and definition["parameters"][0]["default"] == 1
    assert not any(name in definition for name in ("command", "env", "log_on_full"))  # only in "process"
    assert command(command="true")["process"]["log_max_size"] == 5000  # left out: TASKDECK_LOG_MAX_SIZE


def test_argv_runs_without_a_shell_and_every_policy_of_python_tasks_applies():
    policy = {"on_overlap": "terminate", "max_concurrent": 2, "queue_max": 4, "timeout": 30, "retry_attempts": 3,
              "retry_backoff": "linear", "retry_delay": 7, "catch_up": "all", "max_catch_up_runs": 5, "jitter": 2,
              "keep_runs": 9, "keep_for": 600, "run_on_start": True}
    definition = command(argv=["rsync", "-a", "/src", "/dst"], cron_string="0 3 * * *", **policy)
    assert definition["process"]["argv"] == ["rsync", "-a", "/src", "/dst"]
    assert definition["process"]["command"] is None
    assert {name: definition[name] for name in policy} == policy
    manual = command(command="true", manual_run=True)
    assert (manual["cron_string"], manual["interval"], manual["manual_run"]) == ("", None, True)


@pytest.mark.parametrize(("fields", "field", "words"), [
    ({"command": "true", "argv": ["true"]}, "argv", "not both"),
    ({}, "command", "is required"),
    ({"command": "   "}, "command", "must not be empty"),
    ({"command": ["du"]}, "command", "must be a string"),
    ({"argv": []}, "argv", "non-empty list of strings"),
    ({"argv": "du -s /srv"}, "argv", "non-empty list of strings"),
    ({"argv": ["du", 3]}, "argv[1]", "must be a string"),
    ({"argv": ["", "-s"]}, "argv[0]", "must name the program"),
    ({"argv": ["du"], "shell": "/bin/bash"}, "shell", "argv runs without a shell"),
    ({"command": "true", "shell": ""}, "shell", "must name a shell"),
    ({"command": "true", "stop_signal": "SIGFOO"}, "stop_signal", "unknown signal 'SIGFOO'"),
    ({"command": "true", "stop_signal": 15}, "stop_signal", "must be a signal name"),
    ({"command": "true", "umask": "999"}, "umask", "is not an octal umask"),
    ({"command": "true", "umask": "0o1000"}, "umask", "is not an octal umask"),
    ({"command": "true", "umask": "0o"}, "umask", "is not an octal umask"),
    ({"command": "true", "umask": 18}, "umask", "must be an octal string"),
    ({"command": "true", "user": "no_such_user_here"}, "user", "unknown user 'no_such_user_here'"),
    ({"command": "true", "user": "nobody:no_such_group_here"}, "user", "unknown group 'no_such_group_here'"),
    ({"command": "true", "user": "nobody:"}, "user", "is not name, name:group or a numeric id"),
    ({"command": "true", "env": "A=1"}, "env", "must be a table of strings"),
    ({"command": "true", "env": {"A": 1}}, "env.A", "must be a string"),
    ({"command": "true", "env": {"A=B": "1"}}, "env", "is not a variable name"),
    ({"command": "true", "env_file": "/nonexistent/taskdeck.env"}, "env_file", "no such file"),
    ({"command": "true", "env_file": "/"}, "env_file", "cannot read '/'"),
    ({"command": "true", "secrets_file": 3}, "secrets_file", "must be a string"),
    ({"command": "true", "working_dir": 3}, "working_dir", "must be a string"),
    ({"command": "true", "exit_codes": []}, "exit_codes", "non-empty list of exit statuses"),
    ({"command": "true", "exit_codes": [0, 256]}, "exit_codes", "from 0 to 255"),
    ({"command": "true", "exit_codes": [-1]}, "exit_codes", "from 0 to 255"),
    ({"command": "true", "exit_codes": [True]}, "exit_codes", "from 0 to 255"),
    ({"command": "true", "exit_codes": 0}, "exit_codes", "non-empty list"),
    ({"command": "true", "graceful_stop": -1}, "graceful_stop", "number of seconds >= 0"),
    ({"command": "true", "graceful_stop": "5"}, "graceful_stop", "number of seconds >= 0"),
    ({"command": "true", "graceful_stop": float("inf")}, "graceful_stop", "number of seconds >= 0"),
    ({"command": "true", "log_max_size": 0}, "log_max_size", "whole number of bytes"),
    ({"command": "true", "log_max_size": 1.5}, "log_max_size", "whole number of bytes"),
    ({"command": "true", "log_max_size": "1MB"}, "log_max_size", "whole number of bytes"),
    ({"command": "true", "log_on_full": "truncate"}, "log_on_full", "must be one of drop_old, drop_new, kill_task"),
    ({"command": "true", "stop_sgnal": "SIGINT"}, "stop_sgnal", "unknown field"),
    ({"command": "true", "process": {"shell": "/bin/sh"}}, "process", "sit flat in the task's table"),
    ({"command": "true", "callable": "tests.sample_tasks.noop"}, "callable", "not a callable"),
    ({"command": "true", "callable": ""}, "callable", "not a callable"),
    ({"command": "true", "supports_cancel": False}, "supports_cancel", "always be cancelled"),
    ({"command": "true", "supports_dry_run": True}, "supports_dry_run", "cannot be told it is a dry run"),
    ({"command": "true", "timeout": "long"}, "timeout", "must be a number"),
])
def test_a_bad_process_field_fails_in_one_line_naming_the_task_and_the_field(fields, field, words):
    with pytest.raises(DefinitionError) as caught:
        command(**fields)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"Task 'broken': field '{field}': ")
    assert words in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("field", ["command", "argv", "env", "log_on_full", "user"])
def test_a_python_task_with_a_process_field_fails_naming_it(field):
    value = {"argv": ["true"], "env": {"A": "1"}, "log_on_full": "drop_new"}.get(field, "nobody")
    with pytest.raises(DefinitionError) as caught:
        build_definition("report", {"callable": "tests.sample_tasks.noop", field: value}, source="file")
    assert str(caught.value) == f"Task 'report': field '{field}': applies to command and service tasks only"


def test_a_watcher_with_a_process_field_fails_naming_it():
    with pytest.raises(DefinitionError) as caught:
        build_definition("later", {"kind": "watcher", "command": "true", "paths": ["/srv"], "target": "x"},
                         source="file")
    assert str(caught.value) == "Task 'later': field 'command': applies to command and service tasks only"


@pytest.mark.parametrize(("given", "stored"), [
    ({"stop_signal": "SIGTERM"}, {"stop_signal": "SIGTERM"}),
    ({"stop_signal": "TERM"}, {"stop_signal": "SIGTERM"}),
    ({"stop_signal": "sigterm"}, {"stop_signal": "SIGTERM"}),
    ({"stop_signal": " int "}, {"stop_signal": "SIGINT"}),
    ({"stop_signal": "KILL"}, {"stop_signal": "SIGKILL"}),
    ({"umask": "022"}, {"umask": "0022"}),
    ({"umask": "0o022"}, {"umask": "0022"}),
    ({"umask": "0O77"}, {"umask": "0077"}),
    ({"umask": "0"}, {"umask": "0000"}),
    ({"umask": ""}, {"umask": ""}),
    ({"exit_codes": [3, 0, 3]}, {"exit_codes": [0, 3]}),
    ({"graceful_stop": 0.5}, {"graceful_stop": 0.5}),
    ({"log_on_full": "kill_task"}, {"log_on_full": "kill_task"}),
])
def test_values_are_stored_normalised(given, stored):
    process = command(command="true", **given)["process"]
    assert {name: process[name] for name in stored} == stored


@pytest.mark.parametrize("user", ["nobody", f"nobody:{NOBODY_GROUP}", "65534", "65534:65534", "nobody:0", 65534])
def test_user_is_accepted_when_the_worker_runs_as_root(user):
    assert command(command="id", user=user)["process"]["user"] == str(user)


def test_user_needs_root():
    with pytest.raises(DefinitionError) as caught:
        build_definition("as_nobody", {"kind": "command", "command": "id", "user": "nobody"}, source="file",
                         effective_uid=1000)
    assert str(caught.value) == ("Task 'as_nobody': field 'user': needs the worker to run as root "
                                 "(this process runs as uid 1000)")
    assert build_definition("as_worker", {"kind": "command", "command": "id", "user": ""}, source="file",
                            effective_uid=1000)["process"]["user"] == ""


def test_user_needs_root_asks_the_loading_process_itself():
    """No uid given: the loading process's own. When the tests run as root (CI), a forked child
    becomes nobody first (the interpreter may live where nobody cannot exec it)."""
    fields = {"command": "id", "user": "nobody"}
    if os.geteuid() != 0:
        with pytest.raises(DefinitionError, match="needs the worker to run as root"):
            check_process("as_nobody", fields)
        return
    nobody = pwd.getpwnam("nobody")
    readable, writable = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child)
        try:
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            check_process("as_nobody", fields)
            os.write(writable, b"accepted")
        except DefinitionError as error:
            os.write(writable, str(error).encode())
        finally:
            os._exit(0)
    os.close(writable)
    os.waitpid(child, 0)
    with os.fdopen(readable, "rb") as pipe:
        said = pipe.read().decode()
    assert said == ("Task 'as_nobody': field 'user': needs the worker to run as root "
                    f"(this process runs as uid {nobody.pw_uid})")


def test_an_env_file_is_checked_and_never_copied(tmp_path):
    env_file = tmp_path / "task.env"
    env_file.write_text("# settings\nexport REGION=eu\nTOKEN='planted-env-file-value'\n\nQUOTED=\"a b\"\n")

    definition = command(command="true", env_file=str(env_file))

    assert definition["process"]["env_file"] == str(env_file)
    assert "planted-env-file-value" not in repr(definition)
    assert read_env_file(env_file) == {"REGION": "eu", "TOKEN": "planted-env-file-value", "QUOTED": "a b"}


@pytest.mark.parametrize(("content", "words"), [
    ("REGION=eu\nthis is not a setting\n", "is not a dotenv file: line 2 is not NAME=value"),
    (b"REGION=caf\xe9\n", "is not a dotenv file: not UTF-8 text (line 1)"),
])
def test_an_env_file_that_does_not_parse_fails_naming_the_line_not_its_text(tmp_path, content, words):
    env_file = tmp_path / "task.env"
    env_file.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DefinitionError) as caught:
        command(command="true", env_file=str(env_file))
    assert caught.value.field == "env_file" and words in str(caught.value)
    assert "not a setting" not in str(caught.value)


def test_the_secrets_file_is_never_read_at_load(tmp_path):
    """Only its path is checked; the worker reads it at spawn. Missing here is fine (it may exist
    only on the worker's host), and its contents never reach the definition."""
    secrets = tmp_path / "secrets.env"
    assert command(command="true", secrets_file=str(secrets))["process"]["secrets_file"] == str(secrets)
    secrets.write_text("API_TOKEN=planted-secret-value\nnot even dotenv\n")
    secrets.chmod(0)
    definition = command(command="true", secrets_file=str(secrets))
    assert "planted-secret-value" not in repr(definition)


def test_every_bad_field_is_reported_for_a_form_and_the_first_for_the_loader():
    settings, errors = validate_process("t", {"command": "true", "stop_signal": "NOPE", "umask": "9",
                                              "log_on_full": "x", "color": "red"}, effective_uid=0)
    assert [error.field for error in errors] == ["color", "umask", "stop_signal", "log_on_full"]
    assert errors[1].message == "'9' is not an octal umask from \"000\" to \"777\""
    assert settings["command"] == "true"


def test_start_up_with_a_bad_command_task_fails_in_one_line(tmp_path):
    path = tmp_path / "taskdeck.toml"
    path.write_text('[tasks.backup]\nkind = "command"\nargv = ["tar", "-czf", "/tmp/x.tgz", "/srv"]\n'
                    'stop_signal = "SIGSTOPPLEASE"\n')
    result = subprocess.run(
        [sys.executable, "manage.py", "tasks", "sync"], cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "TASKDECK_DEFINITIONS": str(path), "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"},
    )
    assert result.returncode != 0
    assert "Task 'backup': field 'stop_signal': unknown signal 'SIGSTOPPLEASE'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_environment_sets_the_default_log_cap():
    script = "import django; django.setup()\nfrom tasks_app.conf import taskdeck_settings as s; print(s.LOG_MAX_SIZE)"
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings",
                                 "TASKDECK_LOG_MAX_SIZE": "4096"})
    assert result.stdout.strip() == "4096", result.stderr
    from tasks_app.conf import DEFAULTS
    assert DEFAULTS["LOG_MAX_SIZE"] == 100 * 1024 * 1024  # API.md's default


def test_a_command_tasks_options_and_flags_may_be_keyed_by_their_token():
    parameters = [{"key": "--max-depth", "type": "number", "default": 1}, {"key": "-v", "type": "boolean"},
                  {"key": "TARGET", "kind": "env"}]
    spec = command(command='du "$@"', parameters=parameters)["parameters"]
    assert [(item["key"], item["kind"]) for item in spec] == [("--max-depth", "option"), ("-v", "flag"),
                                                              ("TARGET", "env")]
    with pytest.raises(DefinitionError) as caught:
        command(command="du", parameters=[{"key": "--target", "kind": "env"}])
    assert caught.value.field == "parameters[0].key" and "variable name" in str(caught.value)
    with pytest.raises(DefinitionError) as caught:  # a python task's parameters stay names, as before
        build_definition("report", {"callable": "tests.sample_tasks.noop", "parameters": [{"key": "--v"}]},
                         source="file")
    assert caught.value.field == "parameters[0].key"
