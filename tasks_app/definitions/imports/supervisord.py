"""A supervisord configuration's ``[program:x]`` sections as services (``manage.py
import_supervisord``).

The file is read as supervisord reads it: an ini file (``;`` and ``#`` start comments, inline too;
a section given twice is merged), ``%(here)s`` the folder of the file a value is in, the files of
an ``[include]`` section read after it. Each program becomes one service task, with supervisord's
own defaults where the section says nothing, so the program keeps the behaviour it had:

==================  ==========================================================================
supervisord         Taskdeck
==================  ==========================================================================
command             ``argv``, split as supervisord splits it (no shell); shell text
                    (``exec ...``, each word quoted) when a part is only known as an instance
                    starts (``%(process_num)d``, ``%(ENV_X)s``)
numprocs            ``instances``; ``%(process_num)02d`` becomes the instance's index (plus
                    ``numprocs_start``) formatted alike by the shell's printf
autostart           ``autostart``
autorestart         true → ``always``, false → ``never``, unexpected (its default) → ``on_failure``
startsecs           ``healthy_after`` (default 1)
startretries        ``start_retries`` = startretries + 1 (default 3 → 4): supervisord counts the
                    retries after a first start, Taskdeck the failed starts in a row
                    (``restart_backoff = "linear"``, ``restart_delay = 1``: supervisord's 1, 2, 3 s)
stopsignal          ``stop_signal`` (default TERM)
stopwaitsecs        ``graceful_stop`` (default 10)
priority            ``priority`` (default 999)
directory, user,    ``working_dir``, ``user``, ``umask``
umask
environment         ``env`` (``KEY="val",KEY2=val``, as supervisord parses it; the
                    ``[supervisord]`` section's under each program's); a value known only as an
                    instance starts is exported by the command's shell text instead
exitcodes           ``exit_codes`` (default 0)
==================  ==========================================================================

``redirect_stderr = true`` and ``stopasgroup``/``killasgroup = true`` are what Taskdeck always
does (one log; the whole process group stopped). Every other key of a section (the log files,
``process_name``, ``serverurl``...) is reported as not carried over. ``[group:x]`` sections are not
carried (their programs are imported alone, ``%(group_name)s`` still theirs); event listeners and
FastCGI programs are skipped. A task's id is the program's name, lowercase, any character a task
id cannot hold written ``_``.
"""
from __future__ import annotations

import configparser
import glob
import os
import re
import shlex
import signal
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks_app.definitions.imports.entries import Entry, Reading, read_text
from tasks_app.exceptions import ImportFileError

#: A ``%`` expansion as supervisord's Python formatting reads one: ``%%``, or ``%(name)spec``.
EXPANSION = re.compile(r"%(?:(?P<percent>%)|\((?P<name>[^)]*)\)(?P<spec>[#0\- +]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]))")
#: Truthy and falsy words supervisord accepts for a boolean.
TRUE_WORDS, FALSE_WORDS = ("yes", "true", "on", "1"), ("no", "false", "off", "0")
#: The keys of a [program:x] section this import carries over.
CARRIED = {
    "command", "numprocs", "numprocs_start", "autostart", "autorestart", "startsecs", "startretries", "stopsignal",
    "stopwaitsecs", "priority", "directory", "user", "umask", "environment", "exitcodes",
}
#: Why a key that is not carried over is not, by key (any other: "not carried over").
OUTPUT = "output goes to the run's log, stdout and stderr together"
LOST_WHY = {
    **{f"{stream}_{key}": OUTPUT for stream in ("stdout", "stderr") for key in (
        "logfile", "logfile_maxbytes", "logfile_backups", "capture_maxbytes", "events_enabled", "syslog")},
    "process_name": "instances are known by their index",
    "serverurl": "Taskdeck gives a program no supervisord to talk to",
}
#: Keys whose one value is what Taskdeck always does: carried when they hold it.
ALWAYS = {"redirect_stderr": (True, "Taskdeck keeps stdout and stderr in one log"),
          "stopasgroup": (True, "Taskdeck always stops the whole process group"),
          "killasgroup": (True, "Taskdeck always kills the whole process group")}


@dataclass
class Part:
    """Text the shell works out when an instance starts (``"$TASKDECK_INSTANCE_INDEX"``)."""

    shell: str
    note: str = ""


@dataclass
class Expanded:
    """A value with supervisord's expansions done: text, with markers where a ``Part`` goes."""

    text: str
    parts: dict[str, Part] = field(default_factory=dict)

    @property
    def static(self) -> bool:
        return not any(marker in self.text for marker in self.parts)

    def word(self, item: str) -> str:
        """``item`` (text with markers) as one shell word: its text quoted, its parts in double quotes."""
        if not item:
            return "''"
        pieces = re.split("(" + "|".join(map(re.escape, self.parts)) + ")", item) if self.parts else [item]
        return "".join(f'"{self.parts[piece].shell}"' if piece in self.parts else shlex.quote(piece)
                       for piece in pieces if piece)


def read_supervisord(path: str | Path) -> Reading:
    """The configuration at ``path`` (and the files its ``[include]`` names) as one entry per
    program, event listener and FastCGI program; ImportFileError for what supervisord would refuse."""
    path = Path(os.path.abspath(path))
    sections, origins, notes = _read_all(path)
    groups: dict[str, str] = {}
    for name, options in sections.items():
        if name.startswith("group:"):
            programs = [item.strip() for item in options.get("programs", "").split(",") if item.strip()]
            groups.update({program: name.partition(":")[2] for program in programs})
            notes.append(f"[{name}]: not carried over (its programs {', '.join(programs) or '(none)'} are imported "
                         "alone)")
    base_env = sections.get("supervisord", {}).get("environment", "")
    entries = []
    for name, options in sections.items():
        kind, _, program = name.partition(":")
        if kind not in ("program", "eventlistener", "fcgi-program") or not program:
            continue
        where = f"[{name}]" + (f" (in {origins[name]})" if origins[name] != path else "")
        if any(char in program.strip() for char in " :/") or not program.strip():
            raise ImportFileError(str(path), f"{where}: {program!r} is not a program name (no space, : or /)")
        program = program.strip()
        task_id = re.sub(r"[^a-z0-9_.-]", "_", program.lower())
        if kind != "program":
            why = "event listeners are not imported" if kind == "eventlistener" else \
                "FastCGI programs are not imported (Taskdeck hands a process no socket)"
            entries.append(Entry(name, where, task_id, skipped=why))
            continue
        try:
            entries.append(_program(path, program, options, where=where, task_id=task_id,
                                    here=str(origins[name].parent), group=groups.get(program, program),
                                    base_env=base_env))
        except InvalidValue as error:
            raise ImportFileError(str(path), f"{where} {error.key}: {error.message}") from None
    if not entries:
        raise ImportFileError(str(path), "has no [program:x] section")
    return Reading(path, entries, notes=notes)


class InvalidValue(Exception):
    """A value supervisord would refuse; ``key`` names it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


def _program(path: Path, program: str, options: Mapping[str, str], *, where: str, task_id: str, here: str,
             group: str, base_env: str) -> Entry:
    numprocs = _integer(options, "numprocs", 1, minimum=0)
    start = _integer(options, "numprocs_start", 0, minimum=0)
    if numprocs > 1 and "%(process_num)" not in options.get("process_name", "%(program_name)s"):
        raise InvalidValue("process_name", "must hold %(process_num) when numprocs > 1 (supervisord refuses it too)")
    static: dict[str, Any] = {"program_name": program, "group_name": group, "here": here, "numprocs": numprocs}
    notes: list[str] = []
    env, exported = {}, {}
    for source, text in (("[supervisord] environment", base_env), ("environment", options.get("environment", ""))):
        expanded = _expand(text, static=static, start=start, key=source, notes=notes)
        for key, value in _pairs(expanded.text, key=source).items():
            env.pop(key, None)  # a program's value wins over [supervisord]'s
            exported.pop(key, None)
            if Expanded(value, expanded.parts).static:
                env[key] = value
            else:
                exported[key] = expanded.word(value)
    command_text = options.get("command")
    if command_text is None or not command_text.strip():
        raise InvalidValue("command", "is missing (a program names the command it runs)")
    known = {**static, **{f"ENV_{key}": value for key, value in env.items()}}
    command = _expand(command_text, static=known, start=start, key="command", notes=notes,
                      exported=set(exported))
    try:
        argv = shlex.split(command.text)
    except ValueError as error:
        raise InvalidValue("command", f"cannot be split into words ({error})") from None
    if not argv:
        raise InvalidValue("command", "is empty")
    fields: dict[str, Any] = {"kind": "service", "title": program, "type": "supervisord",
                              "description": f"supervisord program {program}, imported from {path}."}
    if command.static and not exported:
        fields["argv"] = argv
    else:
        exports = "".join(f"export {key}={word}; " for key, word in exported.items())
        fields["command"] = exports + "exec " + " ".join(command.word(item) for item in argv)
    fields.update({
        "instances": numprocs, "autostart": _boolean(options, "autostart", True),
        "restart": _autorestart(options.get("autorestart", "unexpected")),
        "healthy_after": _integer(options, "startsecs", 1, minimum=0),
        "start_retries": _integer(options, "startretries", 3, minimum=0) + 1,
        "restart_backoff": "linear", "restart_delay": 1,
        "stop_signal": _signal(options.get("stopsignal", "TERM")),
        "graceful_stop": _integer(options, "stopwaitsecs", 10, minimum=0),
        "priority": _integer(options, "priority", 999, minimum=None),
        "exit_codes": _exit_codes(options.get("exitcodes", "0")),
    })
    for key, target in (("directory", "working_dir"), ("user", "user"), ("umask", "umask")):
        if key in options:
            value = _expand(options[key], static=known, start=start, key=key, notes=notes)
            if not value.static:
                return Entry(f"program:{program}", where, task_id,
                             skipped=f"its {key} differs by instance, which a task's {target} cannot")
            fields[target] = value.text.strip()
    if env:
        fields["env"] = env
    return Entry(f"program:{program}", where, task_id, fields=fields, lost=_lost(options) + notes)


def _expand(text: str, *, static: Mapping[str, Any], start: int, key: str, notes: list[str],
            exported: set[str] | None = None) -> Expanded:
    """``text`` with supervisord's ``%`` expansions: what is known now put in, each part only an
    instance's start knows (its index, the host's name, a variable of the worker's environment)
    left as a marker for the shell. A name supervisord would not know, or a stray ``%``, is refused."""
    marker = f"TDX{uuid.uuid4().hex[:8]}N"
    expanded = Expanded("")
    pieces = []
    position = 0
    for match in EXPANSION.finditer(text):
        pieces.append(_no_stray_percent(text[position:match.start()], key=key))
        position = match.end()
        if match.group("percent"):
            pieces.append("%")
            continue
        name, spec = match.group("name"), match.group("spec")
        if name in static:
            try:
                pieces.append(("%" + spec) % static[name])
            except (TypeError, ValueError):
                raise InvalidValue(key, f"%({name}){spec} cannot format {static[name]!r}") from None
            continue
        part = _shell_part(name, spec, start=start, key=key, exported=exported or set())
        if part.note and part.note not in notes:
            notes.append(part.note)
        token = f"{marker}{len(expanded.parts)}X"
        expanded.parts[token] = part
        pieces.append(token)
    pieces.append(_no_stray_percent(text[position:], key=key))
    expanded.text = "".join(pieces)
    return expanded


def _shell_part(name: str, spec: str, *, start: int, key: str, exported: set[str]) -> Part:
    if name == "process_num":
        index = "$TASKDECK_INSTANCE_INDEX" if not start else f"$((TASKDECK_INSTANCE_INDEX + {start}))"
        if spec in ("d", "i", "u", "s"):
            return Part(index)
        if spec[-1] in "diouxX":
            return Part(f"$(printf '%{spec}' \"{index}\")")
    elif name == "host_node_name" and spec == "s":
        return Part("$(uname -n)", "%(host_node_name)s: the name of the host each instance starts on")
    elif name.startswith("ENV_") and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name[4:]) and spec == "s":
        variable = name[4:]
        note = "" if variable in exported else \
            f"%({name})s: read from the worker's environment as each instance starts, not supervisord's"
        return Part(f"${{{variable}}}", note)
    else:
        raise InvalidValue(key, f"%({name}){spec}: supervisord knows no {name!r} here")
    raise InvalidValue(key, f"%({name}){spec}: a format the import cannot carry over")


def _no_stray_percent(text: str, *, key: str) -> str:
    if "%" in text:
        raise InvalidValue(key, "has a % that is neither %% nor %(name)s (supervisord refuses it too)")
    return text


def _pairs(text: str, *, key: str) -> dict[str, str]:
    """``KEY="val",KEY2=val`` read as supervisord reads it (a shell-like lexer; quotes keep commas)."""
    lexer = shlex.shlex(text, posix=True)
    lexer.wordchars += "/.+-():"
    try:
        tokens = list(lexer)
    except ValueError as error:
        raise InvalidValue(key, f"is not KEY=value pairs ({error})") from None
    pairs = {}
    for position in range(0, len(tokens), 4):
        triple = tokens[position:position + 3]
        if len(triple) != 3 or triple[1] != "=" or tokens[position + 3:position + 4] not in ([], [","]):
            raise InvalidValue(key, 'is not KEY=value pairs separated by commas (quote a value: KEY="a,b")')
        pairs[triple[0]] = triple[2]
    return pairs


def _integer(options: Mapping[str, str], key: str, default: int, *, minimum: int | None) -> int:
    value = options.get(key)
    if value is None:
        return default
    try:
        number = int(value.strip())
    except ValueError:
        raise InvalidValue(key, f"{value!r} is not a whole number") from None
    if minimum is not None and number < minimum:
        raise InvalidValue(key, f"{value!r} is below {minimum}")
    return number


def _boolean(options: Mapping[str, str], key: str, default: bool) -> bool:
    value = options.get(key)
    if value is None:
        return default
    word = value.strip().lower()
    if word not in TRUE_WORDS + FALSE_WORDS:
        raise InvalidValue(key, f"{value!r} is not true or false")
    return word in TRUE_WORDS


def _autorestart(value: str) -> str:
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return "always"
    if word in FALSE_WORDS:
        return "never"
    if word == "unexpected":
        return "on_failure"
    raise InvalidValue("autorestart", f"{value!r} is not true, false or unexpected")


def _signal(value: str) -> str:
    name = value.strip().upper()
    if name.isdigit():
        try:
            return signal.Signals(int(name)).name
        except ValueError:
            raise InvalidValue("stopsignal", f"{value!r} is not a signal") from None
    name = name if name.startswith("SIG") else "SIG" + name
    if name not in signal.Signals.__members__:
        raise InvalidValue("stopsignal", f"{value!r} is not a signal (like TERM, INT, QUIT)")
    return name


def _exit_codes(value: str) -> list[int]:
    try:
        codes = [int(item) for item in value.split(",") if item.strip()]
    except ValueError:
        raise InvalidValue("exitcodes", f"{value!r} is not a list of exit codes, like 0,2") from None
    if not codes or any(not 0 <= code <= 255 for code in codes):
        raise InvalidValue("exitcodes", f"{value!r} is not a list of exit codes from 0 to 255")
    return codes


def _lost(options: Mapping[str, str]) -> list[str]:
    """Each key not carried over, with why, keys that share a reason on one line."""
    by_why: dict[str, list[str]] = {}
    for key, value in options.items():
        if key in CARRIED:
            continue
        if key in ALWAYS:
            always, why = ALWAYS[key]
            if value.strip().lower() in (TRUE_WORDS if always else FALSE_WORDS):
                continue
            by_why.setdefault(why, []).append(key)
            continue
        by_why.setdefault(LOST_WHY.get(key, "not carried over"), []).append(key)
    return [f"{', '.join(keys)}: {why}" for why, keys in by_why.items()]


def _read_all(path: Path) -> tuple[dict[str, dict[str, str]], dict[str, Path], list[str]]:
    """Every section of the file and of the files its ``[include]`` names, merged in order;
    where each section was (last) read; and which files were included."""
    sections: dict[str, dict[str, str]] = {}
    origins: dict[str, Path] = {}
    _merge(path, sections, origins)
    notes = []
    include = sections.get("include")
    if include is not None:
        if "files" not in include:
            raise ImportFileError(str(path), "[include]: has no files (supervisord refuses it too)")
        try:
            patterns = _expand(include["files"], static={"here": str(path.parent)}, start=0, key="files",
                               notes=[])
        except InvalidValue as error:
            raise ImportFileError(str(path), f"[include] {error.key}: {error.message}") from None
        if not patterns.static:
            raise ImportFileError(str(path), "[include] files: uses a variable the import cannot read")
        included = []
        for pattern in patterns.text.split():
            for name in sorted(glob.glob(os.path.join(path.parent, pattern))):
                _merge(Path(name), sections, origins)
                included.append(os.path.relpath(name, path.parent))
        notes.append(f"[include]: read {', '.join(included)}" if included else "[include]: no file matches its files")
    return sections, origins, notes


def _merge(path: Path, sections: dict[str, dict[str, str]], origins: dict[str, Path]) -> None:
    """One file's sections into ``sections`` (a key given again wins), ``%(here)s`` its folder."""
    parser = configparser.RawConfigParser(inline_comment_prefixes=(";", "#"), strict=False)
    try:
        parser.read_string(read_text(path), source=str(path))
    except configparser.MissingSectionHeaderError as error:
        raise ImportFileError(str(path), f"line {error.lineno}: not under a [section]") from None
    except configparser.ParsingError as error:
        line = error.errors[0][0] if error.errors else "?"
        raise ImportFileError(str(path), f"line {line}: not a key = value line") from None
    except configparser.Error as error:
        raise ImportFileError(str(path), str(error).splitlines()[0]) from None
    here = str(path.parent)
    for name in parser.sections():
        options = {key: value.replace("%(here)s", here) for key, value in parser.items(name)}
        sections.setdefault(name, {}).update(options)
        origins[name] = path

