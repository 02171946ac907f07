"""Taskdeck settings accessor: one defaults dict, read lazily, reset when a test changes settings.

Code reads ``taskdeck_settings.HEARTBEAT_INTERVAL``; only ``config/settings.py`` reads the
environment and builds the ``TASKDECK`` dict that overrides these defaults.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

DEFAULTS: dict[str, Any] = {
    # Where the definitions file (TOML) lives; missing file means "no file-defined tasks".
    "DEFINITIONS": "",
    # Scratch space for example data and captured files.
    "DATA_DIR": "var",
    # A running run writes its heartbeat this often (seconds) and picks up cancel requests.
    "HEARTBEAT_INTERVAL": 2.0,
    # The scheduler ends a run as crashed when its heartbeat is older than this (seconds).
    "HEARTBEAT_STALE_AFTER": 30.0,
    # A running run asked to stop (cancel, terminate, shutdown) is killed after this (seconds).
    "CANCEL_GRACE": 10.0,
    # Progress and activity are flushed to the database at most this often (seconds).
    "PROGRESS_INTERVAL": 0.25,
    # A queued run whose queue message is gone this long (seconds) is sent again.
    "REDELIVER_AFTER": 300.0,
    # A worker or scheduler heartbeat older than this makes /api/health degraded.
    "HEALTH_FRESH_FOR": 60.0,
    # The scheduler loop wakes this often (seconds).
    "SCHEDULER_INTERVAL": 1.0,
    # A supervisor holds each service instance it runs by a lease this long (seconds), renewed
    # at a third of it; another supervisor takes over an instance whose lease expired.
    "LEASE_TTL": 30.0,
    # A supervisor looks at the database for what to run (new services, operators' starts and
    # stops) this often (seconds).
    "SUPERVISOR_INTERVAL": 1.0,
    # A file watcher's path on a file system that sends no inotify events (network mounts) is
    # polled this often (seconds): each pass looks at every file under it.
    "WATCHER_POLL_INTERVAL": 2.0,
    # The file systems whose paths are polled rather than watched by inotify (their type in
    # /proc/self/mountinfo): changes made on another machine never reach this one's inotify.
    "WATCHER_POLLED_FILESYSTEMS": (
        "nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "ceph", "glusterfs", "fuse.glusterfs", "afs", "ncpfs",
        "fuse.sshfs", "fuse.rclone", "fuse.s3fs", "fuse.gcsfuse", "davfs", "fuse.davfs2",
    ),
    # Captured output kept per run (bytes; API.md: 100 MiB); older text is dropped past it. A
    # command task's log_max_size defaults to it (TASKDECK_LOG_MAX_SIZE).
    "LOG_MAX_SIZE": 100 * 1024 * 1024,
    # Threads of the web process answering plain HTTP requests (config/asgi.py); one database
    # connection each at most.
    "WEB_THREADS": 8,
    # Task defaults: for a definition that leaves a field out, and a task added in the admin
    # (models.default_*; a task added in the admin starts with no timeout).
    "DEFAULT_TIMEOUT": 3600,
    "DEFAULT_TIMEZONE": "UTC",
    # Retention defaults for tasks whose definition leaves them out: ended runs kept per task,
    # and for how long (seconds). Both apply; both are at least 1.
    "DEFAULT_KEEP_RUNS": 100,
    "DEFAULT_KEEP_FOR": 30 * 86400,
    # How often the scheduler sweeps ended runs past their task's retention (seconds).
    "RETENTION_SWEEP_INTERVAL": 3600.0,
    # Events (the SSE/WebSocket outbox) are kept this long (seconds); never less than 600, so a
    # client that reconnects within ten minutes misses nothing.
    "EVENT_RETENTION": 3600.0,
    # Tasks with a jitter that fall due together start one at a time, this far apart (seconds).
    "JITTER_GAP": 0.25,
    # With REDIS_URL a web process reads new live events when a writer announces them, and
    # unasked only this often (seconds), so a lost announcement delays its events, never loses them.
    "EVENT_FALLBACK_POLL": 1.0,
    # A quiet SSE stream gets a comment this often (seconds; API.md asks for at most 15).
    "SSE_KEEPALIVE": 10.0,
    # Retry delays grow with the backoff up to this (seconds).
    "RETRY_MAX_DELAY": 86400.0,
}


#: Settings read as durations (timedelta) rather than seconds.
_DURATIONS = frozenset({"HEALTH_FRESH_FOR"})


class TaskdeckSettings:
    """Attribute access over DEFAULTS overridden by settings.TASKDECK, cached until reset."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown Taskdeck setting: {name!r}")
        if name not in self._cache:
            user = getattr(settings, "TASKDECK", {}) or {}
            value = user.get(name, DEFAULTS[name])
            self._cache[name] = timedelta(seconds=value) if name in _DURATIONS else value
        return self._cache[name]

    def reset(self) -> None:
        self._cache.clear()


taskdeck_settings = TaskdeckSettings()


def _reload(*, setting: str, **kwargs: Any) -> None:
    if setting == "TASKDECK":
        taskdeck_settings.reset()


setting_changed.connect(_reload)
