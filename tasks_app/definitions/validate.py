"""What a definition may say: its fields, their defaults, and the one check of a definition.

A definition is checked here once, whoever declared it, so a bad field fails start-up with one
line naming the task and the field.
"""
from __future__ import annotations

import re
from typing import Any

from django.db import models

from tasks_app import text
from tasks_app.conf import taskdeck_settings
from tasks_app.definitions.callables import resolve_callable
from tasks_app.definitions.process import PROCESS_FIELDS, check_process
from tasks_app.definitions.service import SERVICE_FIELDS, check_service, service_field_errors
from tasks_app.definitions.watcher import WATCHER_FIELDS, check_watcher, watcher_field_errors
from tasks_app.exceptions import DefinitionError
from tasks_app.models import (
    POLICY_FIELDS,
    CatchUp,
    IntervalUnit,
    OverlapPolicy,
    RetryBackoff,
    Task,
    TaskKind,
)
from tasks_app.parameters import normalize_spec
from tasks_app.scheduling import rules

TASK_ID_PATTERN = re.compile(r"^[a-z0-9_.-]{1,200}$")

#: Fields an operator may change; a sync leaves them alone once changed (Task.overrides).
OPERATOR_FIELDS = ("enabled", "interval", "interval_unit", "cron_string", "timezone")

#: Every field a definition may set. Its default is the Task model's (``definition_defaults``). A
#: command task may also set the process fields (process.PROCESS_FIELDS), and a service task those
#: and the service fields (service.SERVICE_FIELDS), flat in its table; the definition holds them as
#: one ``process`` dict (the Task column), None for a python task. A watcher task sets the watcher
#: fields (watcher.WATCHER_FIELDS), held as its ``watch`` dict, None for the other kinds.
DEFINITION_FIELDS = (
    "title", "description", "type", "kind", "callable", "enabled", "manual_run", "cron_string", "timezone",
    "interval", "interval_unit", "supports_cancel", "supports_dry_run", "supports_history", "parameters",
    *POLICY_FIELDS,
)


def definition_defaults() -> dict[str, Any]:
    """What a definition that leaves a field out gets: the model's default, read now (some follow
    settings). One exception: a definition without ``timeout`` gets TASKDECK_DEFAULT_TIMEOUT,
    where a task added in the admin starts with none."""
    defaults = {name: Task._meta.get_field(name).get_default() for name in DEFINITION_FIELDS}
    defaults = {name: str(value) if isinstance(value, models.Choices) else value for name, value in defaults.items()}
    defaults["timeout"] = taskdeck_settings.DEFAULT_TIMEOUT
    return defaults


def build_definition(
    task_id: str, fields: dict[str, Any], *, source: str, resolve: bool = True, effective_uid: int | None = None
) -> dict[str, Any]:
    """Check every field of one definition and return the complete, clean field dict.

    ``effective_uid``: the uid a command or service task's process would be started by (this
    process's by default), which decides whether ``user`` may be given (definitions/process.py).
    A service's ``depends_on`` and a watcher's ``target`` are checked against the other definitions
    by the loader (load.all_definitions), which sees them all.
    """
    if not isinstance(task_id, str) or not TASK_ID_PATTERN.match(task_id):
        raise DefinitionError(str(task_id), "id", "must be 1-200 characters of a-z, 0-9, _ . -")
    for nested in ("process", "watch"):
        if nested in fields:
            raise DefinitionError(task_id, nested, f"unknown field ({'process' if nested == 'process' else 'watcher'} "
                                                   "fields sit flat in the task's table)")
    unknown = set(fields) - set(DEFINITION_FIELDS) - set(PROCESS_FIELDS) - set(SERVICE_FIELDS) - set(WATCHER_FIELDS)
    if unknown:
        raise DefinitionError(task_id, text.storable(str(sorted(unknown)[0])), "unknown field")
    for name, value in fields.items():
        bad = text.first_unstorable(value, location=name)
        if bad is not None:
            raise DefinitionError(task_id, bad.location, bad.clause)
    defaults = definition_defaults()
    process = {name: value for name, value in fields.items() if name in _SETTINGS_FIELDS}
    watch = {name: value for name, value in fields.items() if name in WATCHER_FIELDS}
    clean = {**defaults, **{name: value for name, value in fields.items() if name not in process and name not in watch}}
    check = _Checker(task_id, clean)

    check.choice("kind", TaskKind)
    if watch and clean["kind"] != TaskKind.WATCHER:
        raise DefinitionError(task_id, min(watch, key=WATCHER_FIELDS.index), "applies to watcher tasks only")
    if clean["kind"] == TaskKind.PYTHON:
        if process:
            first = min(process, key=_SETTINGS_FIELDS.index)
            raise DefinitionError(task_id, first, "applies to service tasks only" if first in SERVICE_FIELDS
                                  else "applies to command and service tasks only")
        check.text("callable", required=True)
        if resolve:
            try:
                resolve_callable(clean["callable"])
            except ImportError as error:
                raise DefinitionError(task_id, "callable", str(error)) from None
    elif clean["kind"] == TaskKind.COMMAND:
        service_only = [name for name in SERVICE_FIELDS if name in process]
        if service_only:
            raise DefinitionError(task_id, service_only[0], "applies to service tasks only")
        _check_command_capabilities(task_id, fields)
        clean["callable"], clean["supports_cancel"] = "", True
    elif clean["kind"] == TaskKind.WATCHER:
        if process:
            first = min(process, key=_SETTINGS_FIELDS.index)
            raise DefinitionError(task_id, first, "applies to service tasks only" if first in SERVICE_FIELDS
                                  else "applies to command and service tasks only")
        refused = watcher_field_errors(task_id, fields)
        if refused:
            raise refused[0]
        # What a watcher holds instead, as a service does (service.held_task_fields).
        clean["callable"], clean["supports_cancel"], clean["manual_run"], clean["timeout"] = "", True, False, 0
    else:
        refused = service_field_errors(task_id, fields)
        if refused:
            raise refused[0]
        # What a service holds instead (service.held_task_fields); a timeout of 0 is none.
        clean["callable"], clean["supports_cancel"], clean["manual_run"], clean["timeout"] = "", True, False, 0
    check.text("title")
    clean["title"] = clean["title"] or task_id.replace("_", " ").capitalize()
    check.text("description")
    check.text("type")
    for name in ("enabled", "manual_run", "supports_cancel", "supports_dry_run", "supports_history", "run_on_start"):
        check.boolean(name)
    check.text("cron_string")
    clean["cron_string"] = check.rule(rules.check_cron, clean["cron_string"]) if clean["cron_string"].strip() else ""
    clean["timezone"] = clean["timezone"] or defaults["timezone"]
    check.rule(rules.check_timezone, clean["timezone"])
    if clean["interval"] is not None:
        clean["interval_unit"] = clean["interval_unit"] or IntervalUnit.MINUTES.value
        clean["interval"], clean["interval_unit"] = check.rule(rules.check_interval, clean["interval"],
                                                               clean["interval_unit"])
    elif clean["interval_unit"]:
        raise DefinitionError(task_id, "interval_unit", "given without an interval")
    if clean["interval"] is not None and clean["cron_string"]:
        raise DefinitionError(task_id, "cron_string", "a task has a cron string or an interval, not both")
    check.choice("on_overlap", OverlapPolicy)
    check.integer("max_concurrent", minimum=1)
    check.integer("queue_max", minimum=0)
    if clean["timeout"] is None:
        clean["timeout"] = defaults["timeout"]
    if clean["timeout"] != 0:
        check.number("timeout", minimum=0.001)
    clean["timeout"] = clean["timeout"] or None  # 0 means no timeout
    check.integer("retry_attempts", minimum=0)
    check.choice("retry_backoff", RetryBackoff)
    check.number("retry_delay", minimum=0)
    check.choice("catch_up", CatchUp)
    check.integer("max_catch_up_runs", minimum=1)
    check.number("jitter", minimum=0)
    for name in ("keep_runs", "keep_for"):  # None (from @task) means the default too
        clean[name] = defaults[name] if clean[name] is None else clean[name]
    check.integer("keep_runs", minimum=1)
    check.number("keep_for", minimum=1)
    clean["parameters"] = normalize_spec(task_id, clean["parameters"], tokens=clean["kind"] == TaskKind.COMMAND)
    if clean["kind"] == TaskKind.COMMAND:
        clean["process"] = check_process(task_id, process, effective_uid=effective_uid)
    elif clean["kind"] == TaskKind.SERVICE:
        clean["process"] = check_service(task_id, process, effective_uid=effective_uid)
    else:
        clean["process"] = None
    clean["watch"] = check_watcher(task_id, watch) if clean["kind"] == TaskKind.WATCHER else None
    clean["id"] = task_id
    clean["source"] = str(source)
    clean["default_interval"] = clean["interval"]
    return clean


#: The fields that become ``process``: a command task's, then a service's own.
_SETTINGS_FIELDS = (*PROCESS_FIELDS, *SERVICE_FIELDS)


def _check_command_capabilities(task_id: str, fields: dict[str, Any]) -> None:
    """What a command task cannot be: a callable, uncancellable (its process group can always be
    stopped), or dry-runnable (nothing would tell its process it is a dry run, so it would do it)."""
    if "callable" in fields:
        raise DefinitionError(task_id, "callable", "a command task runs command or argv, not a callable")
    if fields.get("supports_cancel", True) is not True:
        raise DefinitionError(task_id, "supports_cancel", "a command run can always be cancelled (leave it out)")
    if fields.get("supports_dry_run", False) is not False:
        raise DefinitionError(task_id, "supports_dry_run", "a command task cannot be told it is a dry run")


class _Checker:
    """Field checks that raise DefinitionError naming the task and the field."""

    def __init__(self, task_id: str, fields: dict[str, Any]) -> None:
        self.task_id = task_id
        self.fields = fields

    def fail(self, name: str, message: str) -> None:
        raise DefinitionError(self.task_id, name, message)

    def text(self, name: str, *, required: bool = False) -> None:
        value = self.fields[name]
        if not isinstance(value, str):
            self.fail(name, "must be a string")
        if required and not value.strip():
            self.fail(name, "is required")

    def boolean(self, name: str) -> None:
        if not isinstance(self.fields[name], bool):
            self.fail(name, "must be true or false")

    def integer(self, name: str, *, minimum: int) -> None:
        value = self.fields[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.fail(name, f"must be a whole number >= {minimum}")

    def number(self, name: str, *, minimum: float) -> None:
        value = self.fields[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
            self.fail(name, f"must be a number >= {minimum}")

    def choice(self, name: str, choices: type) -> None:
        if self.fields[name] not in choices.values:
            self.fail(name, f"must be one of {', '.join(choices.values)}")
        self.fields[name] = str(self.fields[name])

    def rule(self, check: Any, *values: Any) -> Any:
        """A schedule rule (scheduling/rules.py): the value as stored, or the rule's message."""
        try:
            return check(*values)
        except rules.InvalidValue as error:
            self.fail(error.field, error.message())
