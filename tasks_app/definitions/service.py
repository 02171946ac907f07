"""The one check of a service task's settings (API.md "Process settings" and "Services").

A service has every process field of a command task (definitions/process.py checks those) and the
service fields below; both sit flat in the task's table and are stored together, normalised, in
``Task.process``. The definitions loader (``validate.build_definition``) and the admin's task form
both call ``validate_service``, so the admin refuses what start-up refuses, in the same words.

Three checks live here because a service's rules do not fit one field:

- ``service_field_errors``: the task fields that schedule, queue, retry or parameterise runs,
  which a service (kept running by its supervisor) cannot have;
- ``validate_service``: the process and service fields of one service;
- ``dependency_errors``: ``depends_on`` across tasks (every id a service, no cycle), which only
  the whole set of definitions (the loader) or the database (the admin) can answer.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from tasks_app import text
from tasks_app.definitions.process import InvalidField, apply_checks, boolean, choice, validate_process
from tasks_app.exceptions import DefinitionError
from tasks_app.models import RestartPolicy, RetryBackoff, Task, TaskKind

#: The service fields, in the order API.md lists them, after the process fields in ``Task.process``.
SERVICE_FIELDS = (
    "instances", "autostart", "restart", "restart_backoff", "restart_delay", "start_retries", "healthy_after",
    "depends_on", "priority", "health_check", "compose",
)

#: Instances a service may keep running (API.md: 1 to 64).
MAX_INSTANCES = 64

#: A priority fits a 32-bit integer, as supervisord's does.
MAX_PRIORITY = 2**31 - 1

#: A health check's fields: exactly one of command and http, then how often, how long, how many.
HEALTH_CHECK_FIELDS = ("command", "http", "interval", "timeout", "retries")

#: Where an imported service came from; only the importers write it (``import_compose``).
COMPOSE_FIELDS = ("file", "project_name", "service")

#: Why a service cannot have a task field, by field: a service is kept running by its supervisor,
#: so nothing schedules, queues, retries or parameterises its runs.
_NO_SCHEDULE = "a service has no schedule: its supervisor keeps it running"
_NOT_RETRIED = "a service is restarted (restart, restart_backoff, restart_delay), not retried"
REFUSED_TASK_FIELDS: dict[str, str] = {
    "callable": "a service runs command or argv, not a callable",
    "manual_run": "a service is not run on demand: it is started, stopped and restarted",
    "cron_string": _NO_SCHEDULE,
    "timezone": _NO_SCHEDULE,
    "interval": _NO_SCHEDULE,
    "interval_unit": _NO_SCHEDULE,
    "supports_cancel": "a service's runs can always be stopped",
    "supports_dry_run": "a service cannot be told it is a dry run",
    "parameters": "the supervisor starts a service without parameters: put values in command, argv or env",
    "on_overlap": "a service's instances are kept running, never skipped, queued or terminated",
    "max_concurrent": "a service runs as many processes as its instances",
    "queue_max": "a service's instances are kept running, never queued",
    "timeout": "a service runs until it is stopped: it has no timeout",
    "retry_attempts": _NOT_RETRIED,
    "retry_backoff": _NOT_RETRIED,
    "retry_delay": _NOT_RETRIED,
    "catch_up": _NO_SCHEDULE,
    "max_catch_up_runs": _NO_SCHEDULE,
    "jitter": _NO_SCHEDULE,
    "run_on_start": "a service starts with autostart, not run_on_start",
}


def service_defaults() -> dict[str, Any]:
    """What a service that leaves a service field out gets (API.md "Services")."""
    return {
        "instances": 1, "autostart": True, "restart": RestartPolicy.ON_FAILURE.value,
        "restart_backoff": RetryBackoff.EXPONENTIAL.value, "restart_delay": 1, "start_retries": 3, "healthy_after": 10,
        "depends_on": [], "priority": 0, "health_check": None, "compose": None,
    }


def health_check_defaults() -> dict[str, Any]:
    """A health check's fields left out (beside its ``command`` or ``http``, whichever it has)."""
    return {"interval": 10, "timeout": 5, "retries": 3}


def held_task_fields() -> dict[str, Any]:
    """The value a service (or a watcher) holds for each task field it cannot set: the field's
    default, except that it is not run on demand and has no timeout. Giving one of these values is
    not an error."""
    held = {name: Task._meta.get_field(name).get_default() for name in REFUSED_TASK_FIELDS}
    held = {name: str(value) if isinstance(value, str) else value for name, value in held.items()}
    return {**held, "callable": "", "manual_run": False, "supports_cancel": True, "timeout": None}


def service_field_errors(task_id: str, fields: Mapping[str, Any]) -> list[DefinitionError]:
    """The task fields given that a service cannot have (REFUSED_TASK_FIELDS), in that order:
    each given with another value than the one a service holds (``held_task_fields``)."""
    return held_field_errors(task_id, fields, refused=REFUSED_TASK_FIELDS)


def held_field_errors(task_id: str, fields: Mapping[str, Any], *, refused: Mapping[str, str]) -> list[DefinitionError]:
    """The task fields of ``refused`` (name: why not) given with another value than the one a task
    of that kind holds (``held_task_fields``), in ``refused``'s order: a service's, a watcher's."""
    held = held_task_fields()
    return [DefinitionError(task_id, name, message) for name, message in refused.items()
            if name in fields and not _holds(name, fields[name], held[name])]


def validate_service(
    task_id: str, fields: Mapping[str, Any], *, effective_uid: int | None = None
) -> tuple[dict[str, Any], list[DefinitionError]]:
    """A service's process and service fields checked: its settings (process fields, then service
    fields, complete and normalised), and one DefinitionError per bad field, in API.md's order (the
    loader reports the first, a form puts each on its field). A field given as None counts as
    left out. ``effective_uid``: as for validate_process (``user`` needs root)."""
    process = {name: value for name, value in fields.items() if name not in SERVICE_FIELDS}
    settings, errors = validate_process(task_id, process, effective_uid=effective_uid)
    settings.update(service_defaults())
    given = {name: value for name, value in fields.items() if name in SERVICE_FIELDS and value is not None}
    checks: dict[str, Callable[[Any], Any]] = {
        "instances": _instances, "autostart": boolean, "restart": _restart, "restart_backoff": _restart_backoff,
        "restart_delay": _seconds, "start_retries": _start_retries, "healthy_after": _seconds,
        "depends_on": lambda value: _depends_on(value, task_id), "priority": _priority, "health_check": _health_check, "compose": _compose,
    }
    errors.extend(apply_checks(task_id, given, checks, settings))
    return settings, errors


def check_service(task_id: str, fields: Mapping[str, Any], *, effective_uid: int | None = None) -> dict[str, Any]:
    """A service's complete settings, or DefinitionError naming the task and the first bad field."""
    settings, errors = validate_service(task_id, fields, effective_uid=effective_uid)
    if errors:
        raise errors[0]
    return settings


def dependency_errors(
    depends_on: Mapping[str, Sequence[str]], *, kinds: Mapping[str, str], through: str | None = None
) -> list[DefinitionError]:
    """``depends_on`` across tasks: each id a known service, and no cycle (API.md: unknown ids and
    cycles fail loading, naming the task).

    ``depends_on`` maps each service to the ids it waits for; ``kinds`` is every known task's kind
    by id. Errors come in task id order: each service's first unknown or non-service id, then one
    cycle, written from its first id (``a -> b -> a``). ``through``: only the errors of that one
    service, and a cycle through it, written from it (the admin's form, checking one service
    against the others in the database).
    """
    errors = []
    for task_id in sorted(depends_on) if through is None else [through]:
        for dependency in depends_on[task_id]:
            kind = kinds.get(dependency)
            if kind is None:
                errors.append(DefinitionError(task_id, "depends_on", f"unknown task {dependency!r}"))
                break
            if kind != TaskKind.SERVICE:
                errors.append(DefinitionError(task_id, "depends_on", f"{dependency!r} is a {kind} task, not a service"))
                break
    starts = [through] if through is not None else sorted(_left_in_cycles(depends_on))
    for start in starts:
        cycle = _cycle_through(start, depends_on)
        if cycle is not None:
            errors.append(DefinitionError(start, "depends_on", f"forms a cycle: {' -> '.join(cycle)}"))
            break
    return errors


def _left_in_cycles(depends_on: Mapping[str, Sequence[str]]) -> set[str]:
    """The services a topological sort cannot place: those on a cycle, and those waiting for one.
    Linear in services and dependencies, so a set without cycles costs one pass."""
    waiting = {task_id: {item for item in items if item in depends_on} for task_id, items in depends_on.items()}
    waited_by: dict[str, list[str]] = {}
    for task_id, items in waiting.items():
        for item in items:
            waited_by.setdefault(item, []).append(task_id)
    ready = [task_id for task_id, items in waiting.items() if not items]
    while ready:
        done = ready.pop()
        del waiting[done]
        for task_id in waited_by.get(done, ()):
            waiting[task_id].discard(done)
            if not waiting[task_id]:
                ready.append(task_id)
    return set(waiting)


def _cycle_through(start: str, depends_on: Mapping[str, Sequence[str]]) -> list[str] | None:
    """The first path from ``start`` back to itself, following each service's depends_on in the
    order declared (depth first), or None."""
    path, seen = [start], {start}
    stack = [iter(depends_on.get(start, ()))]
    while stack:
        for item in stack[-1]:
            if item == start:
                return [*path, start]
            if item not in seen and item in depends_on:
                seen.add(item)
                path.append(item)
                stack.append(iter(depends_on[item]))
                break
        else:
            stack.pop()
            path.pop()
    return None


def _holds(name: str, value: Any, held: Any) -> bool:
    """Whether ``value`` is what a service holds for task field ``name`` (no timeout is None or 0)."""
    if name == "timeout":
        return value is None or (type(value) in (int, float) and value == 0)
    if isinstance(held, str):
        return isinstance(value, str) and value.strip() == held
    return type(value) is type(held) and value == held or (
        type(held) in (int, float) and type(value) in (int, float) and value == held)


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _is_whole(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int)


def _instances(value: Any) -> int:
    if not _is_whole(value) or not 1 <= value <= MAX_INSTANCES:
        raise InvalidField(f"must be a whole number from 1 to {MAX_INSTANCES}")
    return value


_restart = choice(RestartPolicy.values)
_restart_backoff = choice(RetryBackoff.values)


def _seconds(value: Any) -> float | int:
    if not _is_number(value) or value < 0:
        raise InvalidField("must be a number of seconds >= 0")
    return value


def _start_retries(value: Any) -> int:
    if not _is_whole(value) or value < 0:
        raise InvalidField("must be a whole number >= 0")
    return value


def _priority(value: Any) -> int:
    if not _is_whole(value) or not -MAX_PRIORITY - 1 <= value <= MAX_PRIORITY:
        raise InvalidField("must be a whole number (lower starts first)")
    return value


def _depends_on(value: Any, task_id: str) -> list[str]:
    """Task ids, each once, in the order given (whether each is a service is dependency_errors's)."""
    if not isinstance(value, list):
        raise InvalidField('must be a list of service ids, like ["database"]')
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise InvalidField("must be a task id", where=f"[{index}]")
    if task_id in value:
        raise InvalidField("a service cannot depend on itself")
    return list(dict.fromkeys(value))


def _health_check(value: Any) -> dict[str, Any]:
    """Exactly one of ``command`` (shell text) or ``http`` (a URL), then interval, timeout, retries;
    stored as API.md writes it, with only the one it has (``{"http": ..., "interval": 10, ...}``)."""
    if not isinstance(value, Mapping):
        raise InvalidField('must be a table, like { http = "http://127.0.0.1:8765/", interval = 10 }')
    for key in value:
        if key not in HEALTH_CHECK_FIELDS:
            raise InvalidField(f"unknown field (a health check has {', '.join(HEALTH_CHECK_FIELDS)})",
                               where=f".{text.storable(str(key))}")
    given = {key: item for key, item in value.items() if item is not None}
    if ("command" in given) == ("http" in given):
        raise InvalidField("give command (shell text) or http (a URL), not both" if "command" in given
                           else "needs command (shell text) or http (a URL)")
    checked: dict[str, Any] = {"command" if "command" in given else "http": None, **health_check_defaults()}
    checks: dict[str, Callable[[Any], Any]] = {"command": _check_command, "http": _check_url,
                                               "interval": _positive_seconds, "timeout": _positive_seconds,
                                               "retries": _check_retries}
    for key, check in checks.items():
        if key in given:
            try:
                checked[key] = check(given[key])
            except InvalidField as error:
                raise InvalidField(error.message, where=f".{key}") from None
    return checked


def _check_command(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidField("must be shell text, like \"pg_isready -q\"")
    return value


def _check_url(value: Any) -> str:
    example = "like http://127.0.0.1:8765/health"
    if not isinstance(value, str):
        raise InvalidField(f"must be an http:// or https:// URL, {example}")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (reading it checks it: a port that is not a number from 0 to 65535 raises)
    except ValueError as error:
        raise InvalidField(f"{value!r} is not a valid URL: {error}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or any(char.isspace() for char in value):
        raise InvalidField(f"{value!r} is not an http:// or https:// URL, {example}")
    return value


def _positive_seconds(value: Any) -> float | int:
    if not _is_number(value) or value <= 0:
        raise InvalidField("must be a number of seconds > 0")
    return value


def _check_retries(value: Any) -> int:
    if not _is_whole(value) or value < 1:
        raise InvalidField("must be a whole number >= 1")
    return value


def _compose(value: Any) -> dict[str, str]:
    """An imported service's provenance; written by the importers, so a definitions file they
    wrote (``import_compose --output``) loads back."""
    if not isinstance(value, Mapping):
        raise InvalidField(f"must be a table of {', '.join(COMPOSE_FIELDS)} (strings)")
    for key in value:
        if key not in COMPOSE_FIELDS:
            raise InvalidField(f"unknown field (compose has {', '.join(COMPOSE_FIELDS)})",
                               where=f".{text.storable(str(key))}")
    for key in COMPOSE_FIELDS:
        if key not in value:
            raise InvalidField(f"needs {', '.join(COMPOSE_FIELDS)}")
        if not isinstance(value[key], str):
            raise InvalidField("must be a string", where=f".{key}")
    return {key: value[key] for key in COMPOSE_FIELDS}
