"""A crontab's lines as command tasks (``manage.py import_crontab``).

Each cron line becomes a command task running its command through ``/bin/sh -c`` (or the
crontab's ``SHELL``), as cron does, with:

- its schedule as ``cron_string`` (five fields, or ``@daily`` and the other aliases), in the
  zone of the crontab's ``CRON_TZ`` line above it, else ``--timezone``, else Taskdeck's default;
  ``@reboot`` becomes ``run_on_start`` (a run when Taskdeck's scheduler starts) and no schedule;
- ``env``: the ``NAME=value`` lines above it (values as written: cron expands no variables in
  them; one pair of surrounding quotes dropped, as cron drops them); ``SHELL`` also sets ``shell``;
- ``user``: the sixth field of a system crontab (``/etc/crontab``, ``/etc/cron.d/*``, or
  ``--system``), which needs the worker to run as root;
- what cron does and Taskdeck would not by default: no timeout (``timeout = 0``) and no runs
  after downtime for the ticks missed (``catch_up = "skip"``). Unlike cron, a run still going
  when the next tick comes is not started twice (``on_overlap = "skip"``, Taskdeck's default).

``\\%`` in a command is cron's escaped ``%`` and becomes ``%``; a line with an unescaped ``%``
(cron turns it into a newline and sends what follows to the command's standard input, which
Taskdeck gives none) is skipped and said so. ``MAILTO`` and the other mail settings, and
``RANDOM_DELAY``, are not carried over: Taskdeck keeps each run's output in its log.

A task's id is ``cron.`` and a slug of the command, then 8 hex digits of a hash of the user and
the command: the same line gives the same id on every import, wherever it moves in the file, and
a changed schedule updates the task in place. Lines with the same user and command (two
schedules of one job) get ``-2``, ``-3``... in the order they come.
"""
from __future__ import annotations

import hashlib
import os
import pwd
import re
from pathlib import Path

from tasks_app.definitions.imports.entries import Entry, Reading, read_text
from tasks_app.exceptions import ImportFileError

#: ``NAME = value`` (spaces around ``=`` allowed, as cron allows them).
ASSIGNMENT = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")
#: A schedule of five fields, or an alias; then (a system crontab) the user; then the command.
FIELDS = r"^\s*(?P<schedule>@[A-Za-z]+|(?:\S+\s+){4}\S+)\s+"
COMMAND = r"(?P<command>\S.*?)\s*$"
USER_LINE = re.compile(FIELDS + r"(?P<user>\S+)\s+" + COMMAND)
LINE = re.compile(FIELDS + COMMAND)
#: Settings cron reads for itself and Taskdeck does not carry over, and why.
CRON_SETTINGS = {
    "MAILTO": "Taskdeck keeps each run's output in its log and sends no mail",
    "MAILFROM": "Taskdeck keeps each run's output in its log and sends no mail",
    "CONTENT_TYPE": "Taskdeck keeps each run's output in its log and sends no mail",
    "CONTENT_TRANSFER_ENCODING": "Taskdeck keeps each run's output in its log and sends no mail",
    "RANDOM_DELAY": "each task fires on its schedule",
}
#: The longest slug of a command in a task id (whole words, but the first).
SLUG_LENGTH = 24
#: Folders whose crontabs have the user column.
SYSTEM_PLACES = (Path("/etc/crontab"), Path("/etc/cron.d"))


def read_crontab(path: str | Path, *, system: bool | None = None, timezone: str | None = None) -> Reading:
    """The crontab at ``path`` as one entry per cron line. ``system``: whether its lines have the
    user column (None: when the file is /etc/crontab or in /etc/cron.d). ``timezone``: the zone
    of lines no ``CRON_TZ`` line governs (None: Taskdeck's default)."""
    path = Path(os.path.abspath(path))
    if system is None:
        system = path == SYSTEM_PLACES[0] or path.parent == SYSTEM_PLACES[1]
    env: dict[str, str] = {}
    shell, zone = "", timezone
    entries: list[Entry] = []
    notes: list[str] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        assignment = ASSIGNMENT.match(line)
        if assignment and not line.lstrip().startswith("@"):
            name, value = assignment.group(1), _unquote(assignment.group(2))
            if name in CRON_SETTINGS:
                notes.append(f"{name} (line {number}): not carried over ({CRON_SETTINGS[name]})")
            elif name == "CRON_TZ":
                zone = value
            else:
                env[name] = value
                if name == "SHELL":
                    shell = value
            continue
        match = (USER_LINE if system else LINE).match(line)
        if match is None:
            columns = "5 time fields (or an @alias), the user, then the command" if system else \
                "5 time fields (or an @alias), then the command"
            raise ImportFileError(str(path), f"line {number}: not NAME=value, a comment or a cron line ({columns})")
        user = match.group("user") if system else ""
        entries.append(_entry(path, number, line, match.group("schedule"), match.group("command"), user=user,
                              env=env, shell=shell, zone=zone, seen=seen))
    if not system and entries and all(_is_user(entry.fields.get("command", "").split()[0]) for entry in entries
                                      if not entry.skipped):
        notes.append("Each command starts with a user's name: if this is a system crontab (a user after the "
                     "schedule), import it with --system.")
    return Reading(path, entries, notes=notes)


def task_id_for(command: str, *, user: str = "") -> str:
    """``cron.<slug>.<hash>``: the slug from the command's words (the program without its
    folder), the hash of the user and the command, so the id follows the line, not its place."""
    words = command.split()
    words[0] = words[0].rpartition("/")[2] or words[0]
    slug = ""
    for part in re.findall(r"[a-z0-9]+", " ".join(words).lower()):
        if slug and len(slug) + 1 + len(part) > SLUG_LENGTH:
            break
        slug = f"{slug}_{part}" if slug else part[:SLUG_LENGTH]
    slug = slug or "command"
    digest = hashlib.sha256(f"{user}\0{command}".encode()).hexdigest()[:8]
    return f"cron.{slug}.{digest}"


def _entry(path: Path, number: int, line: str, schedule: str, written: str, *, user: str, env: dict[str, str],
           shell: str, zone: str | None, seen: dict[str, int]) -> Entry:
    where = f"line {number}"
    command, unescaped = _percent(written)
    task_id = task_id_for(command, user=user)
    seen[task_id] = seen.get(task_id, 0) + 1
    if seen[task_id] > 1:
        task_id = f"{task_id}-{seen[task_id]}"
    if unescaped:
        return Entry(str(number), where, task_id, skipped="an unescaped % (cron sends what follows it to the command's "
                                                    "standard input); write it as \\% or rewrite the line")
    shown = " ".join(command.split())
    fields = {
        "kind": "command", "title": shown if len(shown) <= 80 else shown[:79] + "…", "type": "cron",
        "description": f"Imported from the crontab {path}: {line.strip()}",
        "command": command, "timeout": 0, "catch_up": "skip",
    }
    lost = []
    if schedule.lower() == "@reboot":
        fields["run_on_start"] = True
        lost.append("@reboot: runs when Taskdeck's scheduler starts (run_on_start), not when the machine boots")
    else:
        fields["cron_string"] = " ".join(schedule.split())
        if zone:
            fields["timezone"] = zone
    if env:
        fields["env"] = dict(env)
    if shell:
        fields["shell"] = shell
    if user:
        fields["user"] = user
    return Entry(str(number), where, task_id, fields=fields, lost=lost)


def _is_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _percent(command: str) -> tuple[str, bool]:
    """The command with cron's ``\\%`` turned into ``%``, and whether an unescaped ``%`` is left."""
    parts = re.split(r"(\\%|%)", command)
    unescaped = "%" in parts
    return "".join("%" if part == "\\%" else part for part in parts), unescaped


def _unquote(value: str) -> str:
    """A value in one pair of matching quotes, without them (as cron reads ``NAME="a b"``)."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value
