"""A service instance's health check (API.md "Services"): ``{"command": "..."}`` (shell text; exit
code 0 passes) or ``{"http": "http://..."}`` (a status below 400 passes), every ``interval``
seconds, each given ``timeout`` seconds.

Checks run on a small pool of threads, so a slow one never holds the supervisor's loop; the loop
collects results on its turns (``Probe.collect``). A command check runs in a process group of its
own, killed whole when it overruns its timeout.
"""
from __future__ import annotations

import os
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from tasks_app import clock
from tasks_app.platform import groups

#: Checks running at once, across every instance of one supervisor.
CHECK_THREADS = 4

_pool: ThreadPoolExecutor | None = None


def _checks() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=CHECK_THREADS, thread_name_prefix="taskdeck-health")
    return _pool


class Probe:
    """The health check of one instance's current process."""

    def __init__(self, spec: Mapping[str, Any], *, env: Mapping[str, str]) -> None:
        self.spec = dict(spec)
        self.env = dict(env)
        self.interval = float(self.spec.get("interval", 10))
        self.timeout = float(self.spec.get("timeout", 5))
        self.retries = int(self.spec.get("retries", 3))
        self.next_at = clock.monotonic()  # the first check at once
        self.failures = 0
        """Failed checks in a row."""
        self.last_error = ""
        self._running: Future[str] | None = None

    def due(self) -> bool:
        return self._running is None and clock.monotonic() >= self.next_at

    def start(self) -> None:
        self._running = _checks().submit(self._check)

    def collect(self) -> bool | None:
        """The result of the check that finished since the last call (True: passed), or None."""
        if self._running is None or not self._running.done():
            return None
        error = self._running.result()
        self._running = None
        self.next_at = clock.monotonic() + self.interval
        self.failures = 0 if not error else self.failures + 1
        self.last_error = error
        return not error

    def _check(self) -> str:
        """Run the check; '' when it passed, else why not (one line)."""
        try:
            if "http" in self.spec:
                return _http(self.spec["http"], timeout=self.timeout)
            return _command(self.spec["command"], env=self.env, timeout=self.timeout)
        except Exception as error:  # a check must never take the supervisor down
            return f"{type(error).__name__}: {error}"


def _http(url: str, *, timeout: float) -> str:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (http(s) only: checked on load)
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return f"GET {url}: {reason}"
    return "" if status < 400 else f"GET {url}: HTTP {status}"


def _command(command: str, *, env: Mapping[str, str], timeout: float) -> str:
    process = groups.spawn(["/bin/sh", "-c", command], env={**os.environ, **env})
    try:
        process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        groups.signal_group(process.pid, signal.SIGKILL)
        process.communicate()
        return f"the check command did not finish within {timeout:g} s"
    return "" if process.returncode == 0 else f"the check command exited with {process.returncode}"
