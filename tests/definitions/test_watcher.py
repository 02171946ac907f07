"""definitions/watcher.py, through the loader: watcher tasks declared in the definitions file."""
from __future__ import annotations

import pytest

from tasks_app.definitions.load import all_definitions, load_definitions_file
from tasks_app.definitions.validate import build_definition
from tasks_app.definitions.watcher import target_errors, validate_watcher
from tasks_app.exceptions import DefinitionError

#: DESIGN.md's example, beside a target that takes the changed paths.
WATCHER = """
[tasks.filesystem_watcher]
kind = "watcher"
enabled = false
paths = ["var/library"]
patterns = ["*.rom", "*.zip"]
quiet_delay = 5
target = "rescan"

[tasks.rescan]
callable = "tests.sample_tasks.noop"
parameters = [{ key = "changed_paths" }, { key = "platforms", choices = ["gba", "n64"] }]
"""


def watcher(**fields):
    return build_definition("broken", {"kind": "watcher", "paths": ["/srv"], "target": "scan", **fields},
                            source="file")


def write(tmp_path, content):
    path = tmp_path / "taskdeck.toml"
    path.write_text(content)
    return path


def test_the_design_example_loads_with_every_default_applied(tmp_path):
    definitions = {definition["id"]: definition for definition in all_definitions(write(tmp_path, WATCHER))}
    definition = definitions["filesystem_watcher"]
    assert definition["watch"] == {
        "paths": ["var/library"], "recursive": True, "patterns": ["*.rom", "*.zip"], "ignore_patterns": [],
        "events": ["created", "modified", "deleted", "moved"], "quiet_delay": 5, "target": "rescan",
        "target_parameters": {},
    }
    assert (definition["kind"], definition["enabled"], definition["manual_run"], definition["callable"]) == (
        "watcher", False, False, "")
    assert (definition["process"], definition["timeout"], definition["parameters"]) == (None, None, [])
    assert not any(name in definition for name in ("paths", "target", "quiet_delay"))  # only in "watch"
    assert definitions["rescan"]["watch"] is None


def test_every_watcher_field_is_stored_as_given_and_normalised():
    watch = watcher(paths=["/srv/a", "/srv/b", "/srv/a"], recursive=False, patterns=["*.rom"],
                    ignore_patterns=["*.tmp", ".*"], events=["moved", "created", "moved"], quiet_delay=0.5,
                    target_parameters={"platforms": "gba", "pace": 0}, title="Watch", manual_run=False,
                    enabled=False)["watch"]
    assert watch == {"paths": ["/srv/a", "/srv/b"], "recursive": False, "patterns": ["*.rom"],
                     "ignore_patterns": ["*.tmp", ".*"], "events": ["created", "moved"], "quiet_delay": 0.5,
                     "target": "scan", "target_parameters": {"platforms": "gba", "pace": 0}}


@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"paths": None}, "paths", 'is required: the files or folders to watch, like ["/srv/library"]'),
    ({"paths": []}, "paths", 'must be a non-empty list of strings, like ["/srv/library"]'),
    ({"paths": "/srv"}, "paths", 'must be a non-empty list of strings, like ["/srv/library"]'),
    ({"paths": ["/srv", " "]}, "paths[1]", "must be a non-empty string"),
    ({"paths": ["/srv", 3]}, "paths[1]", "must be a non-empty string"),
    ({"recursive": "yes"}, "recursive", "must be true or false"),
    ({"patterns": "*.rom"}, "patterns", 'must be a list of strings, like ["*.rom", "*.zip"]'),
    ({"ignore_patterns": [""]}, "ignore_patterns[0]", "must be a non-empty string"),
    ({"events": []}, "events", "must be a non-empty list of created, modified, deleted, moved"),
    ({"events": ["created", "renamed"]}, "events[1]", "must be one of created, modified, deleted, moved"),
    ({"quiet_delay": -1}, "quiet_delay", "must be a number of seconds from 0 to 604,800"),
    ({"quiet_delay": "5s"}, "quiet_delay", "must be a number of seconds from 0 to 604,800"),
    ({"quiet_delay": float("nan")}, "quiet_delay", "must be a number of seconds from 0 to 604,800"),
    ({"quiet_delay": True}, "quiet_delay", "must be a number of seconds from 0 to 604,800"),
    ({"target": None}, "target", "is required: the id of the task to trigger"),
    ({"target": "two words"}, "target", "must be the id of the task to trigger"),
    ({"target": "broken"}, "target", "a watcher cannot trigger itself"),
    ({"target_parameters": "gba"}, "target_parameters",
     "must be a table of the target's parameters, like { platforms = \"gba\" }"),
    ({"target_parameters": {"platforms": ["gba"]}}, "target_parameters.platforms",
     "must be a string, a number or true/false"),
    ({"target_parameters": {"changed_paths": "/srv"}}, "target_parameters.changed_paths",
     "changed_paths is filled in by the watcher"),
    ({"callable": "tests.sample_tasks.noop"}, "callable", "a watcher triggers its target, it calls nothing"),
    ({"manual_run": True}, "manual_run", "a watcher is not run on demand: it triggers its target when files change"),
    ({"interval": 5}, "interval", "a watcher has no schedule: it triggers its target when files change"),
    ({"on_overlap": "queue"}, "on_overlap", "a watcher has no runs of its own: its target's policy decides"),
    ({"parameters": [{"key": "x"}]}, "parameters",
     "a watcher takes no parameters: give its target's in target_parameters"),
    ({"argv": ["true"]}, "argv", "applies to command and service tasks only"),
    ({"instances": 2}, "instances", "applies to service tasks only"),
    ({"watch": {}}, "watch", "unknown field (watcher fields sit flat in the task's table)"),
])
def test_a_bad_watcher_field_fails_naming_it(fields, field, message):
    with pytest.raises(DefinitionError) as caught:
        watcher(**fields)
    assert (caught.value.field, caught.value.message) == (field, message)
    assert str(caught.value) == f"Task 'broken': field '{field}': {message}"


@pytest.mark.parametrize("field", ["paths", "patterns", "quiet_delay", "target"])
def test_a_watcher_field_on_another_kind_fails_naming_it(field):
    with pytest.raises(DefinitionError) as caught:
        build_definition("report", {"callable": "tests.sample_tasks.noop", field: "x"}, source="file")
    assert str(caught.value) == f"Task 'report': field '{field}': applies to watcher tasks only"


def test_validate_watcher_reports_every_bad_field_in_the_order_api_md_lists_them():
    _, errors = validate_watcher("w", {"target_parameters": 1, "quiet_delay": -1, "paths": [], "colour": "red"})
    assert [error.field for error in errors] == ["colour", "paths", "quiet_delay", "target", "target_parameters"]


TASKS = {
    "scan": ("python", [{"key": "platforms", "type": "string", "required": True, "default": "", "choices": ["gba"],
                         "allow_custom": False, "kind": "option", "description": ""},
                        {"key": "changed_paths", "type": "string", "required": True, "default": "", "choices": [],
                         "allow_custom": False, "kind": "option", "description": ""}]),
    "du": ("command", []),
    "web": ("service", []),
    "other_watcher": ("watcher", []),
    "counted": ("python", [{"key": "changed_paths", "type": "number", "required": False, "default": None,
                            "choices": [], "allow_custom": False, "kind": "option", "description": ""}]),
}


@pytest.mark.parametrize(("target", "given", "field", "message"), [
    ("nowhere", {}, "target", "unknown task 'nowhere'"),
    ("web", {}, "target", "'web' is a service task: a watcher triggers a python or command task"),
    ("other_watcher", {}, "target", "'other_watcher' is a watcher task: a watcher triggers a python or command task"),
    ("counted", {}, "target", "'counted' declares changed_paths as a number: the watcher gives it text (one path a line)"),
    ("scan", {}, "target_parameters.platforms", "this parameter is required (a parameter of 'scan')"),
    ("scan", {"platforms": "psx"}, "target_parameters.platforms", "must be one of: gba (a parameter of 'scan')"),
    ("du", {"depth": 1}, "target_parameters.depth", "unknown parameter (a parameter of 'du')"),
])
def test_a_target_that_cannot_take_the_watchers_triggers_fails_naming_the_watcher(target, given, field, message):
    settings = {"target": target, "target_parameters": given}
    [error] = target_errors([("watch", settings)], TASKS)
    assert (error.task_id, error.field, error.message) == ("watch", field, message)


def test_a_target_that_takes_the_triggers_passes():
    assert target_errors([("a", {"target": "scan", "target_parameters": {"platforms": "gba"}}),
                          ("b", {"target": "du", "target_parameters": {}})], TASKS) == []


def test_the_loader_refuses_a_watcher_whose_target_is_not_declared(tmp_path):
    path = write(tmp_path, WATCHER.replace('target = "rescan"', 'target = "rescna"'))
    with pytest.raises(DefinitionError) as caught:
        all_definitions(path)
    assert str(caught.value) == "Task 'filesystem_watcher': field 'target': unknown task 'rescna'"
    assert len(load_definitions_file(path)) == 2  # each table alone is fine: only together they fail
