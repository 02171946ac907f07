"""The one check of a watcher task's settings (API.md "Watchers").

A watcher's fields sit flat in its table of the definitions file and are stored together,
normalised, in ``Task.watch``. The definitions loader (``validate.build_definition``) and the
admin's task form both call ``validate_watcher``, so the admin refuses what start-up refuses, in
the same words. Like a service's, a watcher's rules do not all fit one field:

- ``watcher_field_errors``: the task fields that schedule, queue, retry or parameterise runs,
  which a watcher (it has no runs: it triggers its target) cannot have;
- ``validate_watcher``: the watcher fields of one watcher;
- ``target_errors``: each watcher's ``target`` against the other tasks (a task that exists, runs,
  and takes the ``target_parameters``), which only the whole set of definitions (the loader) or
  the database (the admin) can answer.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from tasks_app import parameters, text
from tasks_app.definitions.process import InvalidField, apply_checks, boolean, in_field_order
from tasks_app.definitions.service import REFUSED_TASK_FIELDS, held_field_errors
from tasks_app.exceptions import DefinitionError, InvalidParameters
from tasks_app.models import TaskKind

#: The watcher fields, in the order API.md lists them.
WATCHER_FIELDS = (
    "paths", "recursive", "patterns", "ignore_patterns", "events", "quiet_delay", "target", "target_parameters",
)

#: The changes a watcher may be told to see (``events``), in the order they are stored.
EVENTS = ("created", "modified", "deleted", "moved")

#: The parameter a target may declare to be given the changed paths (API.md).
CHANGED_PATHS = "changed_paths"

#: The longest quiet delay (seconds): a week; longer is surely a mistake of units.
MAX_QUIET_DELAY = 7 * 86400

_NO_SCHEDULE = "a watcher has no schedule: it triggers its target when files change"
_TARGETS_POLICY = "a watcher has no runs of its own: its target's policy decides"
#: Why a watcher cannot have a task field, by field (the same fields as a service: it holds the
#: same values for them, service.held_task_fields).
REFUSED_WATCHER_FIELDS: dict[str, str] = {
    "callable": "a watcher triggers its target, it calls nothing",
    "manual_run": "a watcher is not run on demand: it triggers its target when files change",
    "cron_string": _NO_SCHEDULE,
    "timezone": _NO_SCHEDULE,
    "interval": _NO_SCHEDULE,
    "interval_unit": _NO_SCHEDULE,
    "supports_cancel": _TARGETS_POLICY,
    "supports_dry_run": "a watcher has no runs to dry-run",
    "parameters": "a watcher takes no parameters: give its target's in target_parameters",
    "on_overlap": _TARGETS_POLICY,
    "max_concurrent": _TARGETS_POLICY,
    "queue_max": _TARGETS_POLICY,
    "timeout": _TARGETS_POLICY,
    "retry_attempts": _TARGETS_POLICY,
    "retry_backoff": _TARGETS_POLICY,
    "retry_delay": _TARGETS_POLICY,
    "catch_up": _NO_SCHEDULE,
    "max_catch_up_runs": _NO_SCHEDULE,
    "jitter": _NO_SCHEDULE,
    "run_on_start": "a watcher starts watching when it is enabled; it has no run to start",
}
assert set(REFUSED_WATCHER_FIELDS) == set(REFUSED_TASK_FIELDS)


def watcher_defaults() -> dict[str, Any]:
    """What a watcher that leaves a field out gets: every file of its paths, recursively, every
    kind of change, 5 s of quiet (``target`` has none: it is required)."""
    return {
        "paths": [], "recursive": True, "patterns": [], "ignore_patterns": [], "events": list(EVENTS),
        "quiet_delay": 5, "target": "", "target_parameters": {},
    }


def watcher_field_errors(task_id: str, fields: Mapping[str, Any]) -> list[DefinitionError]:
    """The task fields given that a watcher cannot have, in REFUSED_WATCHER_FIELDS's order."""
    return held_field_errors(task_id, fields, refused=REFUSED_WATCHER_FIELDS)


def validate_watcher(task_id: str, fields: Mapping[str, Any]) -> tuple[dict[str, Any], list[DefinitionError]]:
    """A watcher's fields checked: its settings, complete and normalised, and one DefinitionError
    per bad field, in API.md's order (the loader reports the first, a form puts each on its field).
    A field given as None counts as left out."""
    given = {name: value for name, value in fields.items() if value is not None}
    errors = [DefinitionError(task_id, text.storable(str(name)), "unknown watcher field")
              for name in given if name not in WATCHER_FIELDS]
    settings = watcher_defaults()
    checks: dict[str, Callable[[Any], Any]] = {
        "paths": _paths, "recursive": boolean, "patterns": _patterns, "ignore_patterns": _patterns,
        "events": _events, "quiet_delay": _quiet_delay, "target": lambda value: _target(value, task_id),
        "target_parameters": _target_parameters,
    }
    errors.extend(apply_checks(task_id, given, checks, settings))
    for name in ("paths", "target"):
        if name not in given:
            errors.append(DefinitionError(task_id, name, "is required" + (
                ': the files or folders to watch, like ["/srv/library"]' if name == "paths"
                else ": the id of the task to trigger")))
    return settings, in_field_order(errors, WATCHER_FIELDS)


def check_watcher(task_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """A watcher's complete settings, or DefinitionError naming the task and the first bad field."""
    settings, errors = validate_watcher(task_id, fields)
    if errors:
        raise errors[0]
    return settings


def target_errors(watchers: Iterable[tuple[str, Mapping[str, Any]]],
                  tasks: Mapping[str, tuple[str, list[dict[str, Any]]]]) -> list[DefinitionError]:
    """Each watcher's target against the tasks known: ``watchers`` are (task id, settings);
    ``tasks`` gives every task's kind and parameters by id. A target must exist, be a python or
    command task (a service is kept running, a watcher has no runs), and take the
    ``target_parameters`` (with ``changed_paths``, which the watcher fills in, as text). One error
    per watcher at most, in the order given."""
    errors = []
    for task_id, settings in watchers:
        target = settings["target"]
        if target not in tasks:
            errors.append(DefinitionError(task_id, "target", f"unknown task {target!r}"))
            continue
        kind, spec = tasks[target]
        if kind not in (TaskKind.PYTHON, TaskKind.COMMAND):
            errors.append(DefinitionError(task_id, "target", f"{target!r} is a {kind} task: a watcher triggers a "
                                                             "python or command task"))
            continue
        declared = {item["key"]: item for item in spec}
        if CHANGED_PATHS in declared and declared[CHANGED_PATHS]["type"] != "string":
            errors.append(DefinitionError(task_id, "target", f"{target!r} declares {CHANGED_PATHS} as a "
                                                             f"{declared[CHANGED_PATHS]['type']}: the watcher gives "
                                                             "it text (one path a line)"))
            continue
        given = dict(settings["target_parameters"])
        if CHANGED_PATHS in declared:
            given[CHANGED_PATHS] = "/"  # filled in by the watcher: stands for any list of paths
        try:
            parameters.resolve(spec, given)
        except InvalidParameters as error:
            first = error.errors[0]
            key = first["location"].removeprefix("body.parameters.")
            message = first["message"].rstrip(".")
            errors.append(DefinitionError(task_id, f"target_parameters.{key}",
                                          f"{message[0].lower()}{message[1:]} (a parameter of {target!r})"))
    return errors


def describe(settings: Mapping[str, Any]) -> str:
    """What a watcher watches and triggers, in one line (the admin's list, ``tasks list``):
    ``var/library (*.rom, *.zip) → scan_library after 5 s quiet``."""
    patterns = f" ({', '.join(settings['patterns'])})" if settings.get("patterns") else ""
    return (f"{', '.join(settings.get('paths') or [])}{patterns} → {settings.get('target', '?')} "
            f"after {settings.get('quiet_delay', 0):g} s quiet")


def _strings(value: Any, *, example: str, allow_empty_list: bool) -> list[str]:
    """A list of non-empty strings, each once, in the order given."""
    if not isinstance(value, list) or (not value and not allow_empty_list):
        raise InvalidField(f"must be a {'' if allow_empty_list else 'non-empty '}list of strings, like {example}")
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise InvalidField("must be a non-empty string", where=f"[{index}]")
        if "\0" in item:
            raise InvalidField("must not hold a NUL character", where=f"[{index}]")
    return list(dict.fromkeys(value))


def _paths(value: Any) -> list[str]:
    """Files or folders; a relative one is read from the supervisor's folder (the project's)."""
    return _strings(value, example='["/srv/library"]', allow_empty_list=False)


def _patterns(value: Any) -> list[str]:
    return _strings(value, example='["*.rom", "*.zip"]', allow_empty_list=True)


def _events(value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise InvalidField(f"must be a non-empty list of {', '.join(EVENTS)}")
    for index, item in enumerate(value):
        if item not in EVENTS:
            raise InvalidField(f"must be one of {', '.join(EVENTS)}", where=f"[{index}]")
    return [event for event in EVENTS if event in value]


def _quiet_delay(value: Any) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not (
            0 <= value <= MAX_QUIET_DELAY):
        raise InvalidField(f"must be a number of seconds from 0 to {MAX_QUIET_DELAY:,}")
    return value


def _target(value: Any, task_id: str) -> str:
    """A task id (whether such a task exists, and runs, is ``target_errors``'s to say)."""
    if not isinstance(value, str) or not value.strip() or len(value) > 200 or any(char.isspace() for char in value):
        raise InvalidField("must be the id of the task to trigger")
    if value == task_id:
        raise InvalidField("a watcher cannot trigger itself")
    return value


def _target_parameters(value: Any) -> dict[str, Any]:
    """Values for the target's parameters (checked against them by ``target_errors``)."""
    if not isinstance(value, Mapping):
        raise InvalidField('must be a table of the target\'s parameters, like { platforms = "gba" }')
    for key, item in value.items():
        if not isinstance(key, str) or not key:
            raise InvalidField(f"{text.storable(str(key))!r} is not a parameter name")
        if key == CHANGED_PATHS:
            raise InvalidField(f"{CHANGED_PATHS} is filled in by the watcher", where=f".{key}")
        if isinstance(item, (Mapping, list)) or item is None:
            raise InvalidField("must be a string, a number or true/false", where=f".{key}")
    return dict(value)
