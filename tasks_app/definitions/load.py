"""The TOML definitions file (``[tasks.<id>]`` tables), and every definition together."""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from tasks_app.conf import taskdeck_settings
from tasks_app.definitions.declare import code_registry
from tasks_app.definitions.service import dependency_errors
from tasks_app.definitions.validate import build_definition
from tasks_app.definitions.watcher import target_errors
from tasks_app.exceptions import DefinitionError
from tasks_app.models import DefinitionSource, TaskKind


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
    """Code and file definitions together; one id declared in both is an error, and so is a
    service's ``depends_on`` naming a task that is not a service declared beside it, or closing
    a cycle, and a watcher's ``target`` that is not a task declared beside it that runs and takes
    its ``target_parameters`` (the first such error, naming the task)."""
    code = {definition["id"]: definition for definition in code_registry.definitions()}
    for definition in load_definitions_file(path):
        if definition["id"] in code:
            raise DefinitionError(definition["id"], "id", "declared both in code (@task) and in the definitions file")
        code[definition["id"]] = definition
    definitions = list(code.values())
    check_dependencies(definitions)
    check_targets(definitions)
    return definitions


def check_dependencies(definitions: list[dict[str, Any]]) -> None:
    """Every service's ``depends_on`` against the definitions loaded together (API.md: unknown ids
    and cycles fail loading, naming the task); DefinitionError for the first that fails."""
    depends_on = {definition["id"]: definition["process"]["depends_on"] for definition in definitions
                  if definition["kind"] == TaskKind.SERVICE}
    errors = dependency_errors(depends_on, kinds={definition["id"]: definition["kind"] for definition in definitions})
    if errors:
        raise errors[0]


def check_targets(definitions: list[dict[str, Any]]) -> None:
    """Every watcher's ``target`` against the definitions loaded together (definitions/watcher.py);
    DefinitionError for the first that fails."""
    tasks = {definition["id"]: (definition["kind"], definition["parameters"]) for definition in definitions}
    errors = target_errors(((definition["id"], definition["watch"]) for definition in definitions
                            if definition["kind"] == TaskKind.WATCHER), tasks)
    if errors:
        raise errors[0]
