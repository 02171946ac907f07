"""The file watchers a supervisor owns (API.md "Watchers"): ``Watching``, beside the service
instances in the supervisor's loop, owned the same way: one owner across hosts by the lease
``watcher:<task id>``, taken over from a dead owner once its lease expires.

At each look at the database (``sync``) it holds the leases of the enabled watchers it can, starts
watching those it newly holds, follows edits, and lets go of those disabled or removed (state
``stopped``, their pending changes dropped). Between looks (``turn``, after each wait of the loop)
it takes the changes its paths' threads saw (platform/filewatch.py), keeps those that count
(supervision/watchers.py), and once they are due (the last change plus ``quiet_delay``) fires
the target through the trigger door (services.fire_watcher). A target that refuses (busy, or
disabled) keeps them pending: they are tried again every ``RETRY_EVERY`` seconds and fired once
it takes them.

A path that is missing or unreadable puts the watcher in ``error``, saying which and why; the
other paths are watched meanwhile, and the path is tried again every ``PATH_RETRY_EVERY``
seconds until it can be watched. Each path is watched by inotify, or polled where its file
system sends no events (``WATCHER_POLLED_FILESYSTEMS``), which its ``mode`` shows.

At shutdown the pending changes stay on the watcher's row (summarised), so whoever owns it next
fires them: nothing seen is lost by a restart or a takeover. Time comes from ``clock``.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from typing import Any

from django.db import DatabaseError

from tasks_app import clock, services
from tasks_app.conf import taskdeck_settings
from tasks_app.exceptions import (
    AlreadyRunning,
    InvalidParameters,
    NotManuallyRunnable,
    QueueFull,
    TaskDisabled,
    TaskNotFound,
    TaskRemoved,
    UseRestart,
)
from tasks_app.models import Task, Watcher, WatcherState
from tasks_app.platform.filewatch import PathWatch, WakePipe, mode_for
from tasks_app.supervision.watchers import ChangeFilter, Pending

logger = logging.getLogger(__name__)

#: Seconds between two attempts to fire changes a target refused (busy, disabled).
RETRY_EVERY = 1.0
#: Seconds between two attempts to watch a path that could not be watched.
PATH_RETRY_EVERY = 2.0
#: A growing pending count is written (and announced) at most this often (seconds).
WRITE_EVERY = 1.0

#: The refusals that keep changes pending until the target takes them.
BUSY = (AlreadyRunning, QueueFull, TaskDisabled)
#: The target cannot take triggers at all, until someone mends it: the watcher is in error.
UNTRIGGERABLE = (TaskNotFound, TaskRemoved, UseRestart, NotManuallyRunnable, InvalidParameters)


def lease_name(task_id: str) -> str:
    return f"watcher:{task_id}"


@dataclass
class PathState:
    """One of a watcher's paths, as its owner watches it. A path in error keeps its error while
    it is tried again, until a watch of it is in place."""

    path: str
    """As its settings give it."""
    root: str
    """Absolute: what is watched."""
    watch: PathWatch | None = None
    error: str = ""
    retry_at: float | None = None

    def shown(self) -> dict[str, str]:
        """As the watcher's row (and API) shows it: its mode once watched, "" until then."""
        watching = self.watch is not None and self.watch.state == "watching"
        mode = self.watch.mode if watching else ""
        error = self.error or (self.watch.note if watching and self.watch else "")
        return {"path": self.path, "mode": mode, "error": error}


@dataclass(eq=False)
class Watched:
    """A watcher this supervisor owns."""

    task_id: str
    settings: dict[str, Any]
    pending: Pending
    paths: list[PathState] = field(default_factory=list)
    target_error: str = ""
    """Why its target cannot take triggers at all (unknown, a service...); '' when it can."""
    refusal: str = ""
    """Why its target refused the last attempt (busy, disabled); '' after a trigger."""
    last_change_at: Any = None
    written: dict[str, Any] = field(default_factory=dict)
    """What its row says, as this owner last wrote it."""
    write_at: float = 0.0

    @property
    def name(self) -> str:
        return lease_name(self.task_id)

    @property
    def filter(self) -> ChangeFilter:
        return ChangeFilter.of(self.settings)

    def state(self) -> tuple[str, str]:
        """Its state and error now: error while a path or its target is in trouble, starting
        while a path's watch is being set up, else watching."""
        errors = [path.error for path in self.paths if path.error]
        if self.target_error:
            errors.append(self.target_error)
        if errors:
            return WatcherState.ERROR, "; ".join(errors)
        if any(path.watch is None or path.watch.state == "starting" for path in self.paths):
            return WatcherState.STARTING, ""
        return WatcherState.WATCHING, ""


class Watching:
    """The watchers one supervisor owns; its loop calls ``sync`` at each look at the database,
    ``turn`` after each wait, and polls ``fileno()`` (the watches' threads wake it)."""

    def __init__(self, owner: services.Owner, *, ttl: float) -> None:
        self.owner = owner
        self.ttl = ttl
        self.watched: dict[str, Watched] = {}
        self.pipe = WakePipe()

    def fileno(self) -> int:
        return self.pipe.fileno()

    # -- what the database says --

    def sync(self, watchers: list[Task]) -> None:
        """Given the watcher tasks (the supervisor's look reads them with the services): hold the
        leases of the enabled ones this supervisor can; start those newly held, follow edits, let
        go of those disabled or removed. A watcher left ``watching`` by an owner that died while it
        was disabled is set ``stopped`` by whoever gets its lease."""
        tasks = {task.pk: task for task in watchers}
        if not tasks and not self.watched:
            return
        rows = services.ensure_watchers(tasks.values())
        wanted = {lease_name(task.pk): task for task in tasks.values() if task.enabled and task.removed_at is None}
        stale = {lease_name(task_id) for task_id, row in rows.items()
                 if lease_name(task_id) not in wanted and lease_name(task_id) not in self.watched
                 and row.state != WatcherState.STOPPED}
        held = services.hold_leases(set(wanted) | set(self.watched) | stale, owner=self.owner, ttl=self.ttl)
        for name in set(self.watched) - held.names:
            self.lost(self.watched[name])
        for name in sorted(held.taken):
            task = wanted.get(name)
            if task is not None and name not in self.watched:
                self.take(task, rows[task.pk])
        for name, watched in list(self.watched.items()):
            task = wanted.get(name)
            if task is None:
                self.let_go(watched, why="disabled" if watched.task_id in tasks else "removed")
            elif task.watch != watched.settings:
                self.follow_edit(watched, task.watch)
        for name in sorted(stale & held.names):
            services.set_watcher_state(name.removeprefix("watcher:"), message="not watching: disabled or removed",
                                       **_stopped_fields())
        services.release_leases([name for name in held.names if name not in self.watched], owner=self.owner)

    def take(self, task: Task, row: Watcher) -> None:
        """A watcher this supervisor newly holds: its paths' watches start (on their threads), and
        what a previous owner left pending is due a quiet delay from now."""
        settings = dict(task.watch)
        watched = Watched(task.pk, settings, Pending(quiet_delay=float(settings["quiet_delay"])))
        watched.pending.restore(count=row.pending_changes,
                                paths=row.pending_paths or [path.root + "/" for path in self._paths_of(settings)],
                                now=clock.monotonic())
        watched.last_change_at = row.last_change_at
        watched.paths = self._paths_of(settings)
        self.watched[watched.name] = watched
        if row.pending_changes:
            logger.info("Watcher %s: took it with %d change(s) pending.", task.pk, row.pending_changes)
        self.write(watched, message="taken by " + self.owner.name, force=True)  # starting: before the watches
        for path in watched.paths:
            self.start_path(watched, path)

    @staticmethod
    def _paths_of(settings: dict[str, Any]) -> list[PathState]:
        return [PathState(path, os.path.abspath(os.path.expanduser(path))) for path in settings["paths"]]

    def follow_edit(self, watched: Watched, settings: dict[str, Any]) -> None:
        """New settings: its paths watched again when they or ``recursive`` changed; the pending
        changes kept, due by the new quiet delay."""
        before, watched.settings = watched.settings, dict(settings)
        watched.pending.quiet_delay = float(settings["quiet_delay"])
        watched.target_error = ""
        if (before["paths"], before["recursive"]) != (settings["paths"], settings["recursive"]):
            self.close_paths(watched)
            watched.paths = self._paths_of(settings)
            for path in watched.paths:
                self.start_path(watched, path)
        self.write(watched, message="settings changed", force=True)

    # -- watching paths --

    def start_path(self, watched: Watched, path: PathState) -> None:
        """Its watch set up on a thread of its own; a path still missing keeps its error and is
        tried again later (no thread for that)."""
        path.retry_at = None
        if path.error and not os.path.lexists(path.root):
            path.retry_at = clock.monotonic() + PATH_RETRY_EVERY
            return
        mode = mode_for(path.root, polled_filesystems=taskdeck_settings.WATCHER_POLLED_FILESYSTEMS)
        path.watch = PathWatch(path.root, recursive=bool(watched.settings["recursive"]), mode=mode,
                               poll_interval=float(taskdeck_settings.WATCHER_POLL_INTERVAL),
                               wake=self.pipe.wake).start()

    def close_paths(self, watched: Watched) -> None:
        for path in watched.paths:
            if path.watch is not None:
                path.watch.close()
                path.watch = None

    def collect(self, watched: Watched, now: float) -> None:
        """Take each path's changes (those that count go pending), notice a watch that failed (its
        path in error, tried again later), and start again those whose retry is due."""
        accepts = watched.filter.accepts
        for path in watched.paths:
            watch = path.watch
            if watch is not None:
                counted = [changed for kind, changed in watch.drain() if accepts(kind, changed, root=path.root)]
                if counted:
                    watched.pending.add(counted, now=now)
                    watched.last_change_at = clock.now()
                if watch.state == "watching" and path.error:
                    logger.info("Watcher %s: watching %s again.", watched.task_id, path.root)
                    path.error = ""
                elif watch.state == "failed":
                    if watch.error != path.error:
                        logger.warning("Watcher %s: %s", watched.task_id, watch.error)
                    path.watch, path.error, path.retry_at = None, watch.error, now + PATH_RETRY_EVERY
            elif path.retry_at is not None and now >= path.retry_at:
                self.start_path(watched, path)

    # -- each turn --

    def turn(self) -> None:
        """After each wait of the loop: changes taken, due ones fired, what changed written."""
        self.pipe.drain()
        for watched in list(self.watched.values()):
            now = clock.monotonic()
            self.collect(watched, now)
            try:
                if watched.pending.due(now):
                    self.fire(watched, now)
                if watched.name in self.watched:
                    self.write(watched)
            except DatabaseError as error:
                logger.warning("Watcher %s: could not write to the database (%s); trying again.",
                               watched.task_id, error)
                watched.pending.refused(now=now, retry_after=RETRY_EVERY)

    def fire(self, watched: Watched, now: float) -> None:
        """Trigger the target with the pending changes; a refusal keeps them for later."""
        try:
            run = services.fire_watcher(watched.task_id, lease=watched.name, owner=self.owner,
                                        changed_paths=watched.pending.changed_paths())
        except services.LeaseLost:
            self.lost(watched)
            return
        except BUSY as refusal:
            watched.pending.refused(now=now, retry_after=RETRY_EVERY)
            watched.target_error = ""
            if refusal.detail != watched.refusal:
                watched.refusal = refusal.detail
                self.write(watched, message=f"kept {watched.pending.count} change(s) pending: {refusal.detail}",
                           force=True, with_paths=True)
            return
        except UNTRIGGERABLE as error:
            watched.pending.refused(now=now, retry_after=RETRY_EVERY)
            why = f"cannot trigger its target: {error.detail}"
            if why != watched.target_error:
                logger.warning("Watcher %s %s", watched.task_id, why)
                watched.target_error = why
                self.write(watched, message=why, force=True, with_paths=True)
            return
        logger.info("Watcher %s: %d change(s) settled; triggered %s (run %s).", watched.task_id,
                    watched.pending.count, run.task_id, run.pk)
        watched.pending.fired()
        watched.refusal = watched.target_error = ""
        watched.written["pending_changes"] = 0
        self.write(watched)

    def write(self, watched: Watched, *, message: str = "", force: bool = False, with_paths: bool = False) -> None:
        """Its row, when what it says changed: state, error and paths at once, a growing pending
        count at most every WRITE_EVERY seconds (``force``: now). ``with_paths``: the pending
        changes' summary too, so an owner taking over fires them."""
        state, error = watched.state()
        fields: dict[str, Any] = {"state": state, "error": error, "paths": [path.shown() for path in watched.paths],
                                  "pending_changes": watched.pending.count, "last_change_at": watched.last_change_at}
        changed = {name: value for name, value in fields.items() if watched.written.get(name, _UNSET) != value}
        if not changed and not force:
            return
        now = clock.monotonic()
        only_counting = set(changed) <= {"pending_changes", "last_change_at"}
        if only_counting and not force and watched.written.get("pending_changes") and now < watched.write_at:
            return  # a burst: its count is written at most every WRITE_EVERY
        if with_paths:
            fields["pending_paths"] = watched.pending.changed_paths()
        services.set_watcher_state(watched.task_id, message=message or _describe(changed, fields), **fields)
        watched.written.update(fields)
        watched.write_at = now + WRITE_EVERY

    def next_due(self) -> float:
        """When this needs its next turn (monotonic seconds): the next pending changes due, path to
        try again, or count to write; infinity when nothing waits."""
        due = [math.inf]
        for watched in self.watched.values():
            pending_due = watched.pending.due_at()
            if pending_due is not None:
                due.append(pending_due)
            if watched.pending.count != watched.written.get("pending_changes"):
                due.append(watched.write_at)
            due.extend(path.retry_at for path in watched.paths if path.retry_at is not None)
        return min(due)

    # -- letting go --

    def let_go(self, watched: Watched, *, why: str) -> None:
        """Disabled or removed: it stops watching, and what was pending is dropped (nothing
        watched it meanwhile: firing it later would be news from another time)."""
        self.close_paths(watched)
        del self.watched[watched.name]
        services.set_watcher_state(watched.task_id, message=f"not watching: {why}", **_stopped_fields())
        services.release_leases([watched.name], owner=self.owner)

    def lost(self, watched: Watched) -> None:
        """Another supervisor holds its lease now: it stops watching here at once, writing nothing."""
        logger.error("Lost the lease of watcher %s; it stops watching here.", watched.task_id)
        self.close_paths(watched)
        self.watched.pop(watched.name, None)

    def shutdown(self) -> None:
        """Every watch closed; each watcher left ``stopped`` with its pending changes kept (and
        summarised) for whoever owns it next, and its lease released so that one may at once."""
        for watched in list(self.watched.values()):
            self.close_paths(watched)
            try:
                services.set_watcher_state(
                    watched.task_id, message="its supervisor stopped", state=WatcherState.STOPPED, error="",
                    paths=[{"path": path.path, "mode": "", "error": ""} for path in watched.paths],
                    pending_changes=watched.pending.count, pending_paths=watched.pending.changed_paths(),
                    last_change_at=watched.last_change_at)
            except DatabaseError as error:
                logger.warning("Watcher %s: could not record its pending changes (%s).", watched.task_id, error)
        try:
            services.release_leases(list(self.watched), owner=self.owner)
        except DatabaseError as error:
            logger.warning("Could not release the watchers' leases (%s); they expire by themselves.", error)
        self.watched.clear()
        self.pipe.close()


_UNSET = object()


def _stopped_fields() -> dict[str, Any]:
    return {"state": WatcherState.STOPPED, "error": "", "paths": [], "pending_changes": 0, "pending_paths": []}


def _describe(changed: dict[str, Any], fields: dict[str, Any]) -> str:
    """The event's message for a write: what moved."""
    if "state" in changed or "error" in changed:
        return fields["state"] + (f": {fields['error']}" if fields["error"] else "")
    if "pending_changes" in changed:
        return f"{fields['pending_changes']} change(s) pending"
    return "paths: " + ", ".join(f"{path['path']} ({path['mode'] or 'starting'})" for path in fields["paths"])
