"""What a file watcher does with the changes it sees (API.md "Watchers"), as plain logic: no
files, no database, no clock of its own (callers pass monotonic seconds), so tests drive it
change by change.

- ``ChangeFilter``: which changes count (``events``, ``patterns``, ``ignore_patterns``);
- ``Pending``: the changes seen since the last trigger, when they are due (the last change plus
  ``quiet_delay``, or later after a refusal), and what a trigger or a refusal does with them;
- ``summarise``: changed paths as the target's ``changed_paths``: one a line, at most 1,000 lines;
  past that, paths are cut to their common folders (``/srv/library/gba/``) until they fit.

A move reaches a watcher as its old path deleted and its new path created (inotify reports the
two halves, and watchfiles passes them on as such), so ``moved`` in ``events`` takes those two
kinds of change.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from tasks_app.parameters import MAX_VALUE_LENGTH

#: Lines of ``changed_paths`` at most (API.md).
MAX_CHANGED_PATHS = 1000

#: Distinct paths a watcher remembers between two triggers; past them it counts changes and keeps
#: their folders only, so a burst of millions costs the memory of its folders.
MAX_REMEMBERED = 100_000

#: What each kind of change the file system reports counts as in ``events``.
EVENTS_TAKING = {
    "created": frozenset({"created", "moved"}),
    "modified": frozenset({"modified"}),
    "deleted": frozenset({"deleted", "moved"}),
}


@dataclass(frozen=True)
class ChangeFilter:
    """Which changes a watcher counts. A pattern without a slash is matched against each name on
    the way from the watched folder to the path (the file's own and its folders'), so ``*.rom``
    takes ``gba/game.rom`` and ``.git`` in ``ignore_patterns`` leaves out all of ``.git/``; a
    pattern with a slash is matched against the whole path below the watched folder (``*``
    crossing slashes). No ``patterns``: every path; ``ignore_patterns`` win over ``patterns``."""

    events: frozenset[str]
    patterns: tuple[str, ...] = ()
    ignore_patterns: tuple[str, ...] = ()

    @classmethod
    def of(cls, settings: dict) -> ChangeFilter:
        return cls(frozenset(settings["events"]), tuple(settings["patterns"]), tuple(settings["ignore_patterns"]))

    def accepts(self, kind: str, path: str, *, root: str) -> bool:
        """Whether a change of ``kind`` (created, modified, deleted) to ``path``, seen by the watch
        of ``root``, counts."""
        if not EVENTS_TAKING.get(kind, frozenset()) & self.events:
            return False
        relative = os.path.relpath(path, root) if path != root else os.path.basename(path)
        names = relative.split(os.sep)
        if any(_matches(pattern, relative, names) for pattern in self.ignore_patterns):
            return False
        return not self.patterns or any(_matches(pattern, relative, names) for pattern in self.patterns)


def _matches(pattern: str, relative: str, names: Sequence[str]) -> bool:
    if "/" in pattern:
        return fnmatchcase(relative, pattern.strip("/"))
    return any(fnmatchcase(name, pattern) for name in names)


@dataclass
class Pending:
    """The changes seen since the last trigger.

    They are due ``quiet_delay`` seconds after the last of them; after a refusal (the target busy
    or disabled), not before ``retry_at`` either. ``fired`` forgets them; ``refused`` keeps them
    for the next attempt. A new change always starts the quiet delay again.
    """

    quiet_delay: float
    paths: dict[str, None] = field(default_factory=dict)
    """Distinct changed paths, in the order first seen (at most MAX_REMEMBERED)."""
    beyond: int = 0
    """Changes seen past MAX_REMEMBERED paths: counted, their folders kept in ``folders``."""
    folders: set[str] = field(default_factory=set)
    carried: list[str] = field(default_factory=list)
    """Summarised paths a previous owner left pending (``restore``)."""
    carried_count: int = 0
    last_change: float | None = None
    retry_at: float | None = None

    @property
    def count(self) -> int:
        """Changed paths pending (distinct, up to MAX_REMEMBERED; counted changes past that)."""
        return len(self.paths) + self.beyond + self.carried_count

    def add(self, paths: Iterable[str], *, now: float) -> int:
        """Changes seen at ``now``; returns how many more are pending than before."""
        before = self.count
        for path in paths:
            self.last_change = now
            if path in self.paths:
                continue
            if len(self.paths) < MAX_REMEMBERED:
                self.paths[path] = None
            else:
                self.beyond += 1
                self.folders.add(os.path.dirname(path) + "/")
        return self.count - before

    def due_at(self) -> float | None:
        """When to trigger, in monotonic seconds; None while nothing is pending."""
        if not self.count or self.last_change is None:
            return None
        quiet = self.last_change + self.quiet_delay
        return quiet if self.retry_at is None else max(quiet, self.retry_at)

    def due(self, now: float) -> bool:
        due_at = self.due_at()
        return due_at is not None and now >= due_at

    def changed_paths(self) -> list[str]:
        """What the target's ``changed_paths`` gets: ``summarise``d."""
        return summarise([*self.paths, *self.folders, *self.carried])

    def fired(self) -> None:
        """The target took them: nothing is pending any more."""
        self.paths, self.beyond, self.folders, self.carried, self.carried_count = {}, 0, set(), [], 0
        self.last_change = self.retry_at = None

    def refused(self, *, now: float, retry_after: float) -> None:
        """The target could not take them: they stay, to be tried again ``retry_after`` from ``now``."""
        self.retry_at = now + retry_after

    def restore(self, *, count: int, paths: Sequence[str], now: float) -> None:
        """Changes a previous owner left pending (it died, or let go): ``count`` of them,
        summarised as ``paths``; due a quiet delay from ``now``, unless more come."""
        if count:
            self.carried, self.carried_count, self.last_change = list(paths), count, now


def summarise(paths: Iterable[str], *, limit: int = MAX_CHANGED_PATHS, max_chars: int = MAX_VALUE_LENGTH) -> list[str]:
    """Paths (absolute; a folder ends with ``/``) as at most ``limit`` lines of at most
    ``max_chars`` characters in all, sorted: the paths themselves when they fit, else each cut to
    its first folders, as deep as they fit (``/srv/library/gba/x.rom`` becomes
    ``/srv/library/gba/``), ``/`` at worst. Paths that fit within the depth stay as they are."""
    entries = {_entry(path) for path in paths if path}
    if not entries:
        return []
    depth = max(len(parts) for parts, _ in entries)
    while True:
        cut = {_cut(parts, folder, depth) for parts, folder in entries}
        lines = sorted(_line(parts, folder) for parts, folder in cut)
        if depth == 0 or (len(lines) <= limit and sum(len(line) + 1 for line in lines) - 1 <= max_chars):
            return lines
        depth -= 1


def _entry(path: str) -> tuple[tuple[str, ...], bool]:
    """A path as its names below ``/``, and whether it is a folder."""
    folder = path.endswith("/")
    return tuple(name for name in path.strip("/").split("/") if name), folder


def _cut(parts: tuple[str, ...], folder: bool, depth: int) -> tuple[tuple[str, ...], bool]:
    return (parts[:depth], True) if len(parts) > depth else (parts, folder)


def _line(parts: tuple[str, ...], folder: bool) -> str:
    text = "/" + "/".join(parts)
    return text + "/" if folder and parts else text
