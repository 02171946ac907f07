import subprocess
import sys

import pytest

from tasks_app.definitions.declare import code_registry
from tasks_app.definitions.load import load_definitions_file
from tasks_app.definitions.validate import build_definition
from tasks_app.exceptions import DefinitionError
from tasks_app.models import Task

from ..conftest import ROOT

GOOD_FILE = """
[tasks.nightly_report]
kind = "python"
callable = "tests.sample_tasks.noop"
title = "Nightly report"
cron_string = "30 2 * * *"
timezone = "Europe/Paris"
on_overlap = "skip"
timeout = 600
retry_attempts = 2
parameters = [{ key = "region", type = "string", choices = ["eu", "us"], default = "eu" }]
"""


def test_the_definitions_file_example_from_the_design_loads(tmp_path):
    path = tmp_path / "taskdeck.toml"
    path.write_text(GOOD_FILE)
    [definition] = load_definitions_file(path)
    assert definition["id"] == "nightly_report"
    assert definition["source"] == "file"
    assert definition["timezone"] == "Europe/Paris"
    assert definition["parameters"][0]["choices"] == ["eu", "us"]
    assert definition["timeout"] == 600


def test_a_missing_definitions_file_declares_nothing(tmp_path):
    assert load_definitions_file(tmp_path / "absent.toml") == []


@pytest.mark.parametrize("fields, field", [
    ({"callable": "tests.sample_tasks.nope"}, "callable"),
    ({"callable": "tests.sample_tasks.noop", "cron_string": "61 * * * *"}, "cron_string"),
    ({"callable": "tests.sample_tasks.noop", "timezone": "Mars/Olympus"}, "timezone"),
    ({"callable": "tests.sample_tasks.noop", "interval": 0}, "interval"),
    ({"callable": "tests.sample_tasks.noop", "interval": 1.5}, "interval"),
    ({"callable": "tests.sample_tasks.noop", "interval": 5, "interval_unit": "weeks"}, "interval_unit"),
    ({"callable": "tests.sample_tasks.noop", "interval": 3700, "interval_unit": "days"}, "interval"),  # > 10 years
    ({"callable": "tests.sample_tasks.noop", "interval": True}, "interval"),
    ({"callable": "tests.sample_tasks.noop", "interval": 5, "cron_string": "* * * * *"}, "cron_string"),
    ({"callable": "tests.sample_tasks.noop", "on_overlap": "panic"}, "on_overlap"),
    ({"callable": "tests.sample_tasks.noop", "max_concurrent": 0}, "max_concurrent"),
    ({"callable": "tests.sample_tasks.noop", "enabled": "yes"}, "enabled"),
    ({"callable": "tests.sample_tasks.noop", "colour": "red"}, "colour"),
    ({"callable": "tests.sample_tasks.noop", "kind": "robot"}, "kind"),
    ({"callable": "tests.sample_tasks.noop", "keep_runs": 0}, "keep_runs"),
    ({"callable": "tests.sample_tasks.noop", "keep_for": 0}, "keep_for"),
])
def test_a_bad_field_names_the_task_and_the_field(fields, field):
    with pytest.raises(DefinitionError) as caught:
        build_definition("broken_task", fields, source="file")
    assert caught.value.field == field
    assert str(caught.value).startswith(f"Task 'broken_task': field '{field}'")


def test_task_ids_are_machine_names():
    with pytest.raises(DefinitionError) as caught:
        build_definition("Has Spaces", {"callable": "tests.sample_tasks.noop"}, source="file")
    assert caught.value.field == "id"


def test_the_decorator_registers_the_examples_with_their_options():
    definitions = {definition["id"]: definition for definition in code_registry.definitions()}
    assert {"scan_library", "cleanup_orphaned_resources", "evaluate_rules"} <= set(definitions)
    assert definitions["scan_library"]["cron_string"] == "0 3 * * *"
    assert definitions["evaluate_rules"]["supports_dry_run"] is True
    assert definitions["scan_library"]["callable"] == "examples.tasks.scan_library"


def test_start_up_with_a_bad_definition_fails_naming_task_and_field(tmp_path):
    path = tmp_path / "taskdeck.toml"
    path.write_text('[tasks.report]\ncallable = "tests.sample_tasks.noop"\ntimeout = "long"\n')
    result = subprocess.run(
        [sys.executable, "manage.py", "tasks", "sync"], cwd=ROOT, capture_output=True, text=True,
        env={**__import__("os").environ, "TASKDECK_DEFINITIONS": str(path), "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"},
    )
    assert result.returncode != 0
    assert "Task 'report': field 'timeout'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_retention_left_out_of_a_definition_comes_from_the_settings(settings):
    settings.TASKDECK = {**settings.TASKDECK, "DEFAULT_KEEP_RUNS": 7, "DEFAULT_KEEP_FOR": 3600.0}
    bare = build_definition("report", {"callable": "tests.sample_tasks.noop"}, source="file")
    assert (bare["keep_runs"], bare["keep_for"]) == (7, 3600.0)
    explicit = build_definition("report", {"callable": "tests.sample_tasks.noop", "keep_runs": 3, "keep_for": 60},
                                source="file")
    assert (explicit["keep_runs"], explicit["keep_for"]) == (3, 60)


def test_a_task_made_anywhere_else_gets_the_same_defaults_as_a_definition(settings):
    settings.TASKDECK = {**settings.TASKDECK, "DEFAULT_KEEP_RUNS": 7, "DEFAULT_KEEP_FOR": 3600.0,
                         "DEFAULT_TIMEZONE": "Europe/Paris"}
    made = Task(id="added")  # as the admin's add form starts one
    defined = build_definition("report", {"callable": "tests.sample_tasks.noop"}, source="file")
    for name in ("keep_runs", "keep_for", "timezone", "max_concurrent", "on_overlap", "retry_delay", "catch_up"):
        assert getattr(made, name) == defined[name], name
    assert (made.keep_runs, made.timezone) == (7, "Europe/Paris")


@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"title": "Report\x00"}, "title", "contains a NUL character"),
    ({"description": "caf\udce9"}, "description", "contains a lone surrogate (\\udce9)"),
    ({"parameters": [{"key": "region", "default": "e\ud800u"}]}, "parameters[0].default", "contains a lone surrogate"),
])
def test_text_that_cannot_be_stored_names_the_task_and_the_field(fields, field, message):
    with pytest.raises(DefinitionError) as caught:
        build_definition("report", {"callable": "tests.sample_tasks.noop", **fields}, source="code")
    assert caught.value.field == field and message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_definitions_file_with_a_nul_or_bytes_that_are_not_utf8_fails_in_one_line(tmp_path):
    path = tmp_path / "taskdeck.toml"
    path.write_text('[tasks.report]\ncallable = "tests.sample_tasks.noop"\ntitle = "Re\\u0000port"\n')
    with pytest.raises(DefinitionError) as caught:
        load_definitions_file(path)
    assert str(caught.value) == "Task 'report': field 'title': contains a NUL character (\\u0000), which cannot be stored."
    path.write_bytes(b'[tasks.report]\ncallable = "tests.sample_tasks.noop"\ntitle = "Caf\xe9"\n')
    with pytest.raises(DefinitionError) as caught:
        load_definitions_file(path)
    assert str(caught.value) == "Task 'taskdeck.toml': field '(file)': not UTF-8 text (line 3)"
