"""definitions/service.py, through the loader: service tasks declared in the definitions file."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tasks_app.definitions.load import all_definitions, load_definitions_file
from tasks_app.definitions.service import dependency_errors, held_task_fields, validate_service
from tasks_app.definitions.validate import build_definition
from tasks_app.exceptions import DefinitionError

from ..conftest import ROOT

#: DESIGN.md's example, as the project's definitions file declares it.
HEARTBEAT = """
[tasks.heartbeat_service]
kind = "service"
argv = ["python3", "-m", "http.server", "8765", "--bind", "127.0.0.1"]
instances = 1
restart = "on_failure"
healthy_after = 5
health_check = { http = "http://127.0.0.1:8765/", interval = 10 }
"""

#: What import_compose --output writes for one compose service (API.md "Compose and other imports").
IMPORTED = """
[tasks.media_web]
kind = "service"
command = "docker compose -f docker-compose.yml -p media run --rm --no-deps --service-ports --name media_web_$TASKDECK_INSTANCE_INDEX web"
instances = 2
graceful_stop = 10
restart = "on_failure"
depends_on = ["media_db"]
compose = { file = "docker-compose.yml", project_name = "media", service = "web" }

[tasks.media_db]
kind = "service"
command = "docker compose -f docker-compose.yml -p media run --rm --no-deps --name media_db_$TASKDECK_INSTANCE_INDEX db"
compose = { file = "docker-compose.yml", project_name = "media", service = "db" }
"""


def service(**fields):
    return build_definition("broken", {"kind": "service", **fields}, source="file", effective_uid=0)


def write(tmp_path, content):
    path = tmp_path / "taskdeck.toml"
    path.write_text(content)
    return path


def test_the_design_example_loads_with_every_default_applied(tmp_path, settings):
    settings.TASKDECK = {**settings.TASKDECK, "LOG_MAX_SIZE": 5000}

    [definition] = load_definitions_file(write(tmp_path, HEARTBEAT))

    assert definition["process"] == {
        "command": None, "argv": ["python3", "-m", "http.server", "8765", "--bind", "127.0.0.1"], "shell": "/bin/sh",
        "working_dir": "", "user": "", "umask": "", "env": {}, "env_file": "", "secrets_file": "", "exit_codes": [0],
        "stop_signal": "SIGTERM", "graceful_stop": 5, "log_max_size": 5000, "log_on_full": "drop_old",
        "instances": 1, "autostart": True, "restart": "on_failure", "restart_backoff": "exponential",
        "restart_delay": 1, "start_retries": 3, "healthy_after": 5, "depends_on": [], "priority": 0,
        "health_check": {"http": "http://127.0.0.1:8765/", "interval": 10, "timeout": 5, "retries": 3},
        "compose": None,
    }
    assert list(definition["process"])[:14] == list(service(command="true")["process"])[:14]  # process fields first
    assert (definition["kind"], definition["callable"], definition["supports_cancel"]) == ("service", "", True)
    assert (definition["manual_run"], definition["timeout"], definition["run_on_start"]) == (False, None, False)
    assert (definition["cron_string"], definition["interval"], definition["parameters"]) == ("", None, [])
    assert not any(name in definition for name in ("argv", "instances", "health_check"))  # only in "process"


def test_every_service_field_is_stored_as_given():
    process = service(
        command="redis-server --port 6390", instances=64, autostart=False, restart="always", restart_backoff="linear",
        restart_delay=0.5, start_retries=0, healthy_after=0, depends_on=["db", "cache", "db"], priority=-5,
        health_check={"command": "redis-cli -p 6390 ping", "interval": 2.5, "timeout": 1, "retries": 1},
        stop_signal="INT", enabled=False, keep_runs=10, title="Cache", supports_history=True)["process"]
    assert {name: process[name] for name in ("instances", "autostart", "restart", "restart_backoff", "restart_delay",
                                             "start_retries", "healthy_after", "depends_on", "priority")} == {
        "instances": 64, "autostart": False, "restart": "always", "restart_backoff": "linear", "restart_delay": 0.5,
        "start_retries": 0, "healthy_after": 0, "depends_on": ["db", "cache"], "priority": -5}
    assert process["health_check"] == {"command": "redis-cli -p 6390 ping", "interval": 2.5, "timeout": 1, "retries": 1}
    assert process["stop_signal"] == "SIGINT"


def test_what_import_compose_writes_loads_back(tmp_path):
    web, db = load_definitions_file(write(tmp_path, IMPORTED))
    assert web["process"]["compose"] == {"file": "docker-compose.yml", "project_name": "media", "service": "web"}
    assert (web["process"]["instances"], web["process"]["graceful_stop"], web["process"]["depends_on"]) == (
        2, 10, ["media_db"])
    assert db["process"]["compose"]["service"] == "db"


@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"instances": 0}, "instances", "must be a whole number from 1 to 64"),
    ({"instances": 65}, "instances", "must be a whole number from 1 to 64"),
    ({"instances": 1.5}, "instances", "must be a whole number from 1 to 64"),
    ({"instances": True}, "instances", "must be a whole number from 1 to 64"),
    ({"autostart": "yes"}, "autostart", "must be true or false"),
    ({"restart": "unless-stopped"}, "restart", "must be one of never, on_failure, always"),
    ({"restart_backoff": "fibonacci"}, "restart_backoff", "must be one of constant, linear, exponential"),
    ({"restart_delay": -1}, "restart_delay", "must be a number of seconds >= 0"),
    ({"restart_delay": "1s"}, "restart_delay", "must be a number of seconds >= 0"),
    ({"restart_delay": float("inf")}, "restart_delay", "must be a number of seconds >= 0"),
    ({"start_retries": -1}, "start_retries", "must be a whole number >= 0"),
    ({"start_retries": 2.0}, "start_retries", "must be a whole number >= 0"),
    ({"healthy_after": -0.1}, "healthy_after", "must be a number of seconds >= 0"),
    ({"depends_on": "db"}, "depends_on", 'must be a list of service ids, like ["database"]'),
    ({"depends_on": ["db", 3]}, "depends_on[1]", "must be a task id"),
    ({"depends_on": [""]}, "depends_on[0]", "must be a task id"),
    ({"depends_on": ["broken"]}, "depends_on", "a service cannot depend on itself"),
    ({"priority": "high"}, "priority", "must be a whole number (lower starts first)"),
    ({"priority": 2**31}, "priority", "must be a whole number (lower starts first)"),
    ({"health_check": "curl localhost"}, "health_check",
     'must be a table, like { http = "http://127.0.0.1:8765/", interval = 10 }'),
    ({"health_check": {"interval": 5}}, "health_check", "needs command (shell text) or http (a URL)"),
    ({"health_check": {"command": "true", "http": "http://127.0.0.1/"}}, "health_check",
     "give command (shell text) or http (a URL), not both"),
    ({"health_check": {"http": "http://127.0.0.1/", "every": 5}}, "health_check.every",
     "unknown field (a health check has command, http, interval, timeout, retries)"),
    ({"health_check": {"command": "  "}}, "health_check.command", 'must be shell text, like "pg_isready -q"'),
    ({"health_check": {"http": "ftp://127.0.0.1/"}}, "health_check.http",
     "'ftp://127.0.0.1/' is not an http:// or https:// URL, like http://127.0.0.1:8765/health"),
    ({"health_check": {"http": "127.0.0.1:8765"}}, "health_check.http",
     "'127.0.0.1:8765' is not an http:// or https:// URL, like http://127.0.0.1:8765/health"),
    ({"health_check": {"http": "http:///health"}}, "health_check.http",
     "'http:///health' is not an http:// or https:// URL, like http://127.0.0.1:8765/health"),
    ({"health_check": {"http": "http://127.0.0.1:70000/"}}, "health_check.http",
     "'http://127.0.0.1:70000/' is not a valid URL: Port out of range 0-65535"),
    ({"health_check": {"http": 8765}}, "health_check.http",
     "must be an http:// or https:// URL, like http://127.0.0.1:8765/health"),
    ({"health_check": {"http": "http://127.0.0.1/", "interval": 0}}, "health_check.interval",
     "must be a number of seconds > 0"),
    ({"health_check": {"http": "http://127.0.0.1/", "timeout": -1}}, "health_check.timeout",
     "must be a number of seconds > 0"),
    ({"health_check": {"http": "http://127.0.0.1/", "retries": 0}}, "health_check.retries", "must be a whole number >= 1"),
    ({"compose": "docker-compose.yml"}, "compose", "must be a table of file, project_name, service (strings)"),
    ({"compose": {"file": "c.yml", "project_name": "media"}}, "compose", "needs file, project_name, service"),
    ({"compose": {"file": "c.yml", "project_name": "media", "service": "web", "image": "nginx"}}, "compose.image",
     "unknown field (compose has file, project_name, service)"),
    ({"compose": {"file": "c.yml", "project_name": "media", "service": 1}}, "compose.service", "must be a string"),
    ({"stop_signal": "SIGNOPE"}, "stop_signal",  # every process field applies
     "unknown signal 'SIGNOPE' (like SIGTERM, SIGINT, SIGHUP)"),
    ({"argv": ["true"]}, "argv", "give command (shell text) or argv (a list), not both"),
])
def test_a_bad_service_field_fails_in_one_line_naming_the_task_and_the_field(fields, field, message):
    with pytest.raises(DefinitionError) as caught:
        service(command="true", **fields)
    assert str(caught.value) == f"Task 'broken': field '{field}': {message}"
    assert caught.value.field == field and caught.value.message == message


def test_a_service_needs_a_command_or_argv():
    with pytest.raises(DefinitionError) as caught:
        service(instances=2)
    assert str(caught.value) == ("Task 'broken': field 'command': is required: shell text, or give argv (a list "
                                 "run without a shell)")


NO_SCHEDULE = "a service has no schedule: its supervisor keeps it running"
NOT_RETRIED = "a service is restarted (restart, restart_backoff, restart_delay), not retried"


@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"callable": "tests.sample_tasks.noop"}, "callable", "a service runs command or argv, not a callable"),
    ({"manual_run": True}, "manual_run", "a service is not run on demand: it is started, stopped and restarted"),
    ({"cron_string": "*/5 * * * *"}, "cron_string", NO_SCHEDULE),
    ({"interval": 5}, "interval", NO_SCHEDULE),
    ({"interval_unit": "hours"}, "interval_unit", NO_SCHEDULE),
    ({"timezone": "Europe/Paris"}, "timezone", NO_SCHEDULE),
    ({"catch_up": "all"}, "catch_up", NO_SCHEDULE),
    ({"max_catch_up_runs": 9}, "max_catch_up_runs", NO_SCHEDULE),
    ({"jitter": 3}, "jitter", NO_SCHEDULE),
    ({"run_on_start": True}, "run_on_start", "a service starts with autostart, not run_on_start"),
    ({"supports_cancel": False}, "supports_cancel", "a service's runs can always be stopped"),
    ({"supports_dry_run": True}, "supports_dry_run", "a service cannot be told it is a dry run"),
    ({"parameters": [{"key": "PORT", "kind": "env"}]}, "parameters",
     "the supervisor starts a service without parameters: put values in command, argv or env"),
    ({"on_overlap": "queue"}, "on_overlap", "a service's instances are kept running, never skipped, queued or terminated"),
    ({"max_concurrent": 4}, "max_concurrent", "a service runs as many processes as its instances"),
    ({"max_concurrent": True}, "max_concurrent", "a service runs as many processes as its instances"),
    ({"queue_max": 10}, "queue_max", "a service's instances are kept running, never queued"),
    ({"timeout": 3600}, "timeout", "a service runs until it is stopped: it has no timeout"),
    ({"retry_attempts": 2}, "retry_attempts", NOT_RETRIED),
    ({"retry_backoff": "linear"}, "retry_backoff", NOT_RETRIED),
    ({"retry_delay": 5}, "retry_delay", NOT_RETRIED),
])
def test_a_task_field_that_schedules_queues_or_retries_runs_is_refused(fields, field, message):
    with pytest.raises(DefinitionError) as caught:
        service(command="true", **fields)
    assert str(caught.value) == f"Task 'broken': field '{field}': {message}"


@pytest.mark.parametrize("fields", [
    {"manual_run": False}, {"cron_string": ""}, {"timezone": "UTC"}, {"run_on_start": False}, {"timeout": 0},
    {"supports_cancel": True}, {"supports_dry_run": False}, {"parameters": []}, {"on_overlap": "skip"},
    {"max_concurrent": 1}, {"queue_max": 0}, {"retry_attempts": 0}, {"retry_delay": 30.0}, {"jitter": 0},
])
def test_the_value_a_service_holds_anyway_is_no_error(fields):
    definition = service(command="true", **fields)
    assert (definition["manual_run"], definition["timeout"]) == (False, None)
    assert set(fields) <= set(held_task_fields())


def test_fields_of_another_kind_fail_naming_it():
    with pytest.raises(DefinitionError) as caught:
        build_definition("backup", {"kind": "command", "command": "true", "restart": "always"}, source="file")
    assert str(caught.value) == "Task 'backup': field 'restart': applies to service tasks only"
    with pytest.raises(DefinitionError) as caught:
        build_definition("report", {"callable": "tests.sample_tasks.noop", "depends_on": ["db"]}, source="file")
    assert str(caught.value) == "Task 'report': field 'depends_on': applies to service tasks only"
    with pytest.raises(DefinitionError) as caught:
        build_definition("report", {"callable": "tests.sample_tasks.noop", "health_check": {}, "env": {}},
                         source="file")
    assert str(caught.value) == "Task 'report': field 'env': applies to command and service tasks only"


def test_every_bad_field_is_reported_for_a_form_in_api_md_order():
    settings, errors = validate_service("web", {"command": "true", "umask": "9", "priority": "x", "instances": 0,
                                                "health_check": {"interval": 1}}, effective_uid=0)
    assert [error.field for error in errors] == ["umask", "instances", "priority", "health_check"]
    assert (settings["command"], settings["instances"], settings["restart"]) == ("true", 1, "on_failure")


# --- depends_on across definitions -------------------------------------------------------------------


SERVICES = """
[tasks.web]
kind = "service"
command = "serve-web"
depends_on = {web}

[tasks.db]
kind = "service"
command = "serve-db"
depends_on = {db}

[tasks.cache]
kind = "service"
command = "serve-cache"
depends_on = {cache}

[tasks.backup]
kind = "command"
command = "backup"
"""


def load(tmp_path, web="[]", db="[]", cache="[]"):
    return all_definitions(write(tmp_path, SERVICES.format(web=web, db=db, cache=cache)))


def test_services_may_depend_on_services_declared_beside_them(tmp_path):
    definitions = {definition["id"]: definition for definition in load(tmp_path, web='["db", "cache"]',
                                                                       cache='["db"]')}
    assert definitions["web"]["process"]["depends_on"] == ["db", "cache"]
    assert "scan_library" in definitions  # the code's python tasks, loaded beside them


@pytest.mark.parametrize(("depends", "message"), [
    ({"web": '["db", "nope"]'}, "Task 'web': field 'depends_on': unknown task 'nope'"),
    ({"cache": '["backup"]'}, "Task 'cache': field 'depends_on': 'backup' is a command task, not a service"),
    ({"db": '["scan_library"]'}, "Task 'db': field 'depends_on': 'scan_library' is a python task, not a service"),
    ({"web": '["db"]', "db": '["web"]'}, "Task 'db': field 'depends_on': forms a cycle: db -> web -> db"),
    ({"web": '["cache"]', "cache": '["db"]', "db": '["web"]'},
     "Task 'cache': field 'depends_on': forms a cycle: cache -> db -> web -> cache"),
    ({"web": '["db"]', "db": '["cache"]', "cache": '["db"]'},  # web waits for a cycle it is not on
     "Task 'cache': field 'depends_on': forms a cycle: cache -> db -> cache"),
    ({"web": '["db", "nope"]', "db": '["web"]'}, "Task 'web': field 'depends_on': unknown task 'nope'"),
])
def test_an_unknown_id_a_task_of_another_kind_or_a_cycle_fails_loading_in_one_line(tmp_path, depends, message):
    with pytest.raises(DefinitionError) as caught:
        load(tmp_path, **depends)
    assert str(caught.value) == message


def test_a_cycle_through_one_service_is_written_from_it():
    depends_on = {"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}
    kinds = dict.fromkeys(depends_on, "service")
    [error] = dependency_errors(depends_on, kinds=kinds, through="b")
    assert str(error) == "Task 'b': field 'depends_on': forms a cycle: b -> c -> a -> b"
    assert dependency_errors(depends_on, kinds=kinds, through="d") == []  # it only waits for one
    assert dependency_errors({"a": ["b"], "b": []}, kinds={"a": "service", "b": "service"}) == []


def test_a_long_chain_is_checked_in_one_pass():
    depends_on = {f"s{index}": [f"s{index + 1}"] for index in range(5000)} | {"s5000": []}
    assert dependency_errors(depends_on, kinds=dict.fromkeys(depends_on, "service")) == []
    depends_on["s5000"] = ["s0"]
    [error] = dependency_errors(depends_on, kinds=dict.fromkeys(depends_on, "service"))
    assert str(error).startswith("Task 's0': field 'depends_on': forms a cycle: s0 -> s1 -> s2")


def test_start_up_with_a_dependency_cycle_fails_in_one_line(tmp_path):
    path = write(tmp_path, SERVICES.format(web='["cache"]', db="[]", cache='["web"]'))
    result = subprocess.run(
        [sys.executable, "manage.py", "tasks", "sync"], cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "TASKDECK_DEFINITIONS": str(path), "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"},
    )
    assert result.returncode != 0
    assert result.stderr.strip() == "CommandError: Task 'cache': field 'depends_on': forms a cycle: cache -> web -> cache"


def test_the_projects_definitions_file_declares_the_design_example(tmp_path):
    """taskdeck.toml (what make run loads) holds heartbeat_service as DESIGN.md writes it."""
    declared = {definition["id"]: definition for definition in all_definitions(ROOT / "taskdeck.toml")}
    [example] = load_definitions_file(write(tmp_path, HEARTBEAT))
    assert declared["heartbeat_service"]["process"] == example["process"]
    assert declared["heartbeat_service"]["kind"] == "service" and declared["heartbeat_service"]["enabled"]
