"""One path watched for changes by watchfiles, on a thread of its own (``PathWatch``), and how
each path is watched (``mode_for``): inotify, or polling on file systems that send no events.

watchfiles (the Rust ``notify`` crate) was chosen over watchdog by measurement (README, "File
watchers"; bench/watchers.py): on a tree of 100,000 files in 1,000 folders both start watching
with inotify in under a second within a few MB, but watchdog's polling keeps a Python snapshot
of every file (+140 MB, 4 s to start, 3 s a pass), where watchfiles' costs 13 MB. Its
``RustNotify`` (the documented Rust backend under ``watchfiles.watch``) is used directly: the
setup's errors (a missing or unreadable path) come back at once, and the thread says when the
watch is in place.

Setting a watch up walks the whole tree (0.3 s to a second for 100,000 files), on the watch's
thread; but ``RustNotify`` holds the GIL while it does (measured: the main thread got no turn for
the whole 2.1 s of a setup on a loaded machine), so the supervisor's loop stalls that long each
time a large tree's watch is set up (a watcher taken, enabled, edited, or a path back). The
thread buffers changes and calls ``wake`` (the loop's pipe, ``WakePipe``) when there are some;
the loop ``drain``s them.

Where inotify is out of resources (the system's watches or instances used up), a path is polled
instead (``note`` says why). A path that disappears (its folder deleted, or replaced by another) ends its watch
(``failed``, saying so): inotify would go on watching nothing. Its owner starts a new one once
the path is back.
"""
from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable, Collection
from pathlib import Path

from watchfiles._rust_notify import RustNotify, WatchfilesRustInternalError

#: How the change kinds of watchfiles (its ``Change``: 1, 2, 3) are named here.
KINDS = {1: "created", 2: "modified", 3: "deleted"}

#: A batch of changes is handed over once no new change came for this long (ms)...
STEP_MS = 50
#: ... or once it has gathered this long, during a steady stream of changes (ms).
BATCH_MS = 500
#: While nothing changes, the thread looks this often whether its path is still there (ms).
CHECK_MS = 1000

INOTIFY = "inotify"
POLLING = "polling"


def mode_for(path: str, *, polled_filesystems: Collection[str]) -> str:
    """``polling`` when ``path`` lies on a file system of ``polled_filesystems`` (network mounts,
    which send no inotify events for changes made on other machines), else ``inotify``."""
    return POLLING if filesystem_of(path) in polled_filesystems else INOTIFY


def filesystem_of(path: str) -> str:
    """The type of the file system ``path`` lies on (``ext4``, ``nfs4``, ``fuse.sshfs``...), from
    /proc/self/mountinfo: the mount point that holds it most closely; "" when unknown."""
    try:
        target = os.path.realpath(path)
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return ""
    best, kind = "", ""
    for line in lines:
        before, _, after = line.partition(" - ")
        fields = before.split()
        if len(fields) < 5 or not after:
            continue
        mount_point = fields[4].replace("\\040", " ")
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, kind = mount_point, after.split()[0]
    return kind


class PathWatch:
    """One path watched on a thread of its own, by inotify or by polling every
    ``poll_interval`` seconds. ``state``: ``starting``, ``watching``, or ``failed`` (``error``
    says why: the thread has ended)."""

    def __init__(self, path: str, *, recursive: bool, mode: str, poll_interval: float,
                 wake: Callable[[], None]) -> None:
        self.path = path
        self.recursive = recursive
        self.mode = mode
        self.poll_interval = poll_interval
        self.state = "starting"
        self.error = ""
        self.note = ""
        """Why the mode is not the one asked for (inotify fell back to polling), when it is not."""
        self._wake = wake
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._changes: list[tuple[str, str]] = []
        self._thread = threading.Thread(target=self._watch, name=f"taskdeck-watch {path}", daemon=True)

    def start(self) -> PathWatch:
        self._thread.start()
        return self

    def drain(self) -> list[tuple[str, str]]:
        """The changes seen since the last call: (kind, path), kind created, modified or deleted."""
        with self._lock:
            changes, self._changes = self._changes, []
        return changes

    def close(self, *, timeout: float = 2.0) -> None:
        """Stop watching (the thread sees it within STEP_MS)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    # -- the thread --

    def _watch(self) -> None:
        try:
            identity = _identity(self.path)
            notify = self._notify()
        except (OSError, WatchfilesRustInternalError) as error:
            self._fail(describe(error, self.path))
            return
        self.state = "watching"
        self._wake()
        with notify:
            while not self._stop.is_set():
                try:
                    result = notify.watch(BATCH_MS, STEP_MS, CHECK_MS, self._stop)
                except WatchfilesRustInternalError as error:
                    self._fail(describe(error, self.path))
                    return
                if isinstance(result, set) and result:
                    with self._lock:
                        self._changes.extend((KINDS.get(kind, "modified"), path) for kind, path in result
                                             if not _folder_touched(kind, path))
                    self._wake()
                if result == "stop":
                    return
                if identity != _identity(self.path, missing_ok=True):
                    self._fail(f"{self.path}: no longer there (deleted or replaced); watching again once it is back")
                    return

    def _notify(self) -> RustNotify:
        """The watch set up, by inotify or polling as asked; inotify out of resources (the
        system's watches or instances used up) falls back to polling, saying why in ``note``."""
        if self.mode == INOTIFY:
            try:
                return RustNotify([self.path], False, False, 0, self.recursive, False)
            except OSError as error:
                if isinstance(error, (FileNotFoundError, PermissionError)) or not _out_of_inotify(error):
                    raise
                self.mode, self.note = POLLING, f"inotify refused ({error}); polling instead"
        return RustNotify([self.path], False, True, int(self.poll_interval * 1000), self.recursive, False)

    def _fail(self, error: str) -> None:
        self.error, self.state = error, "failed"
        self._wake()


def _folder_touched(kind: int, path: str) -> bool:
    """A folder reported modified: its entries changed (polling reports it), and each entry's own
    change is reported too. Counted, it would reach a target as a changed path of its own."""
    return kind == 2 and os.path.isdir(path)


def _identity(path: str, *, missing_ok: bool = False) -> tuple[int, int] | None:
    """Which file ``path`` is: a folder deleted and made again is another one."""
    try:
        status = os.stat(path)
    except OSError:
        if missing_ok:
            return None
        raise
    return status.st_dev, status.st_ino


def _out_of_inotify(error: OSError) -> bool:
    """Whether inotify refused for want of resources: watches (ENOSPC, or notify's own words for
    it) or instances (EMFILE) used up; polling needs neither."""
    return error.errno in (errno.ENOSPC, errno.EMFILE) or "watch limit" in str(error).lower()


def describe(error: BaseException, path: str) -> str:
    """Why a path cannot be watched, in one line."""
    if isinstance(error, FileNotFoundError):
        return f"{path}: no such file or folder; watching it once it appears"
    if isinstance(error, PermissionError):
        detail = str(error)
        return f"{path}: permission denied ({detail})" if path not in detail else f"permission denied: {detail}"
    return f"{path}: {error}"


class WakePipe:
    """What a watch's thread calls (``wake``) to wake the loop that polls ``fileno()``."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)

    def fileno(self) -> int:
        return self._read

    def wake(self) -> None:
        try:
            os.write(self._write, b"!")
        except OSError:
            pass  # full (the loop will read it) or closed (it stopped)

    def drain(self) -> None:
        try:
            while os.read(self._read, 4096):
                pass
        except OSError:
            pass  # nothing more to read

    def close(self) -> None:
        """Once: a second call must not close descriptors the process has handed out again since."""
        fds, self._read, self._write = (self._read, self._write), -1, -1
        for fd in fds:
            if fd >= 0:
                os.close(fd)
