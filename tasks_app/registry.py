"""Where task definitions come from: ``@task`` in an app's ``tasks.py`` and the definitions file.

A definition is a plain dict of Task field values, checked here once so a bad field fails
start-up with a message naming the task and the field. ``services.sync_definitions`` writes them
to the Task table, keeping what an operator changed.
"""
from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.db import models
from django.utils.module_loading import import_string

from tasks_app import text
from tasks_app.conf import taskdeck_settings
from tasks_app.exceptions import DefinitionError
from tasks_app.models import (
    POLICY_FIELDS,
    CatchUp,
    DefinitionSource,
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

#: Every field a definition may set. Its default is the Task model's (``definition_defaults``).
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


class CodeRegistry:
    """The @task declarations of this process, by task id (like admin.site for ModelAdmins)."""

    def __init__(self) -> None:
        self._definitions: dict[str, dict[str, Any]] = {}

    def add(self, definition: dict[str, Any]) -> None:
        task_id = definition["id"]
        existing = self._definitions.get(task_id)
        if existing and existing["callable"] != definition["callable"]:
            raise DefinitionError(
                task_id, "id", f"declared twice ({existing['callable']} and {definition['callable']})"
            )
        self._definitions[task_id] = definition

    def definitions(self) -> list[dict[str, Any]]:
        return list(self._definitions.values())


code_registry = CodeRegistry()


def task(func: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Declare a python task: ``@task`` or ``@task(title=..., cron_string=..., timeout=...)``.

    The function takes the run context ``ctx``; its JSON-serialisable return value becomes the
    run's result. The id defaults to the function's name.
    """

    def register(function: Callable[..., Any]) -> Callable[..., Any]:
        fields = dict(options)
        task_id = fields.pop("id", function.__name__)
        fields.setdefault("title", function.__name__.replace("_", " ").capitalize())
        if function.__doc__ and "description" not in fields:
            fields["description"] = function.__doc__.strip()
        fields["kind"] = TaskKind.PYTHON.value
        fields["callable"] = f"{function.__module__}.{function.__qualname__}"
        code_registry.add(build_definition(task_id, fields, source=DefinitionSource.CODE, resolve=False))
        return function

    if func is not None:
        return register(func)
    return register


def load_definitions_file(path: str | Path | None = None) -> list[dict[str, Any]]:
    """Read the TOML definitions file (``[tasks.<id>]`` tables); a missing file declares nothing."""
    path = Path(path if path is not None else taskdeck_settings.DEFINITIONS)
    if not str(path) or not path.is_file():
        return []
    raw = path.read_bytes()
    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        line = raw[:error.start].count(b"\n") + 1
        raise DefinitionError(path.name, "(file)", f"not UTF-8 text (line {line})") from None
    except tomllib.TOMLDecodeError as error:
        raise DefinitionError(path.name, "(file)", f"not valid TOML: {error}") from None
    unknown = set(document) - {"tasks"}
    if unknown:
        raise DefinitionError(path.name, sorted(unknown)[0], "unknown top-level table (expected [tasks.<id>])")
    tables = document.get("tasks", {})
    return [build_definition(task_id, dict(fields), source=DefinitionSource.FILE) for task_id, fields in tables.items()]


def all_definitions(path: str | Path | None = None) -> list[dict[str, Any]]:
    """Code and file definitions together; one id declared in both is an error."""
    code = {definition["id"]: definition for definition in code_registry.definitions()}
    for definition in load_definitions_file(path):
        if definition["id"] in code:
            raise DefinitionError(definition["id"], "id", "declared both in code (@task) and in the definitions file")
        code[definition["id"]] = definition
    return list(code.values())


def resolve_callable(path: str) -> Callable[..., Any]:
    try:
        function = import_string(path)
    except ImportError as error:
        raise ImportError(f"cannot import {path!r}: {error}") from None
    if not callable(function):
        raise ImportError(f"{path!r} is not callable")
    return function


def build_definition(
    task_id: str, fields: dict[str, Any], *, source: str, resolve: bool = True
) -> dict[str, Any]:
    """Check every field of one definition and return the complete, clean field dict."""
    if not isinstance(task_id, str) or not TASK_ID_PATTERN.match(task_id):
        raise DefinitionError(str(task_id), "id", "must be 1-200 characters of a-z, 0-9, _ . -")
    unknown = set(fields) - set(DEFINITION_FIELDS)
    if unknown:
        raise DefinitionError(task_id, text.storable(str(sorted(unknown)[0])), "unknown field")
    for name, value in fields.items():
        bad = text.first_unstorable(value, location=name)
        if bad is not None:
            raise DefinitionError(task_id, bad.location, bad.clause)
    defaults = definition_defaults()
    clean = {**defaults, **fields}
    check = _Checker(task_id, clean)

    check.choice("kind", TaskKind)
    if clean["kind"] != TaskKind.PYTHON:
        raise DefinitionError(task_id, "kind", f"{clean['kind']!r} tasks are not supported yet; use kind = \"python\"")
    check.text("callable", required=True)
    if resolve:
        try:
            resolve_callable(clean["callable"])
        except ImportError as error:
            raise DefinitionError(task_id, "callable", str(error)) from None
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
    clean["parameters"] = normalize_spec(task_id, clean["parameters"])
    clean["id"] = task_id
    clean["source"] = str(source)
    clean["default_interval"] = clean["interval"]
    return clean


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
