"""What an importer reads a file into, the one build of it into definitions, and the definitions
file ``--output`` writes.

An importer reads its file into a ``Reading``: one ``Entry`` per thing the file declares (a compose
service, a crontab line, a ``[program:x]`` section), each with the flat fields of a task (as a
``[tasks.<id>]`` table holds them) or the reason it was skipped, and what of it could not be
carried over; plus what of the file as a whole was not (``MAILTO``, a ``[group:x]``).

``build_definitions`` checks every entry through ``build_definition``, then ``depends_on`` across
them (as the loader does a definitions file), so an import fails on exactly what loading the same
tables would fail on, in the loader's words, behind the file and the entry's place in it.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from tasks_app.definitions.load import check_dependencies
from tasks_app.definitions.validate import build_definition
from tasks_app.exceptions import DefinitionError, ImportFileError


@dataclass
class Entry:
    """One thing the file declares, and what the import makes of it."""

    name: str
    """As the file names it: a compose service, ``line 12``, ``program:web``."""
    where: str
    """Where it is in the file, for an error: ``services.web``, ``line 12``, ``[program:web]``."""
    task_id: str
    """The task it becomes (or would have become, when skipped)."""
    fields: dict[str, Any] = field(default_factory=dict)
    """The task's fields, flat, as a ``[tasks.<id>]`` table holds them."""
    skipped: str = ""
    """Why it is not imported ("" when it is)."""
    lost: list[str] = field(default_factory=list)
    """What of it could not be carried over, each as ``key: why``."""


@dataclass
class Reading:
    """A file as an importer read it."""

    path: Path
    """The file, absolute."""
    entries: list[Entry]
    notes: list[str] = field(default_factory=list)
    """What of the file as a whole could not be carried over (``MAILTO (line 2): not carried over
    (why)``), or what the operator should check, each a line of the report."""
    compose_project: str | None = None
    """The compose project the file's services belong to (import_compose only)."""

    @property
    def imported(self) -> list[Entry]:
        return [entry for entry in self.entries if not entry.skipped]


def read_text(path: Path) -> str:
    """The file's text, or ImportFileError: unreadable, or not UTF-8 (naming the line)."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ImportFileError(str(path), f"cannot be read ({error.strerror or error})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[:error.start].count(b"\n") + 1
        raise ImportFileError(str(path), f"not UTF-8 text (line {line})") from None


def build_definitions(reading: Reading, *, source: str, effective_uid: int | None = None) -> list[dict[str, Any]]:
    """Every imported entry's definition, checked as the loader checks a definitions file; the
    first bad one raises ImportFileError: the file, the entry's place, then the loader's line.
    ``effective_uid``: as for build_definition (``user`` needs root)."""
    by_id: dict[str, Entry] = {}
    for entry in reading.entries:
        other = by_id.setdefault(entry.task_id, entry)
        if other is not entry:
            raise ImportFileError(str(reading.path), f"{entry.where} and {other.where} both become task "
                                                     f"{entry.task_id!r}")
    definitions = []
    for entry in reading.imported:
        try:
            definitions.append(build_definition(entry.task_id, entry.fields, source=source,
                                                effective_uid=effective_uid))
        except DefinitionError as error:
            raise ImportFileError(str(reading.path), f"{entry.where}: {error.detail}") from None
    try:
        check_dependencies(definitions)
    except DefinitionError as error:
        where = by_id[error.task_id].where if error.task_id in by_id else error.task_id
        raise ImportFileError(str(reading.path), f"{where}: {error.detail}") from None
    return definitions


def write_definitions_file(reading: Reading, output: Path, *, written_by: str) -> None:
    """The imported entries as ``[tasks.<id>]`` tables in ``output``, with the fields the import
    set (every other one takes its default when the file loads). A file that already declares
    other tasks is refused, not merged: writing would drop its comments and layout, so the
    tables go to a file of their own and the operator copies them in. One that declares only
    tasks of this import (an earlier ``--output`` of it) is written again."""
    tables = {entry.task_id: entry.fields for entry in reading.imported}
    if output.exists():
        try:
            existing = tomllib.loads(read_text(output)).get("tasks", {})
        except tomllib.TOMLDecodeError as error:
            raise ImportFileError(str(output), f"is not a definitions file this import wrote (not valid TOML: "
                                               f"{error}); write to a new file") from None
        others = sorted(set(existing) - set(tables)) if isinstance(existing, dict) else ["(tasks)"]
        if others:
            raise ImportFileError(str(output), f"already declares other tasks ({', '.join(others[:3])}"
                                               f"{', ...' if len(others) > 3 else ''}); write to a new file and "
                                               "copy its tables into your definitions file")
    header = (f"# Written by {written_by} from {reading.path}.\n"
              "# Tasks for Taskdeck's definitions file (TASKDECK_DEFINITIONS): copy these tables into it,\n"
              "# or point TASKDECK_DEFINITIONS here.\n\n")
    try:
        output.write_text(header + tomli_w.dumps({"tasks": tables}), encoding="utf-8")
    except OSError as error:
        raise ImportFileError(str(output), f"cannot be written ({error.strerror or error})") from None
