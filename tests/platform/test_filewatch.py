"""platform/filewatch.py on real files: a path watched on its own thread (inotify and polling),
changes handed over and the loop woken, a missing or vanished path reported, and the mode chosen
by the file system a path lies on."""
from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import time

import pytest

from tasks_app.platform.filewatch import INOTIFY, POLLING, PathWatch, WakePipe, filesystem_of, mode_for

from ..conftest import ROOT, wait_until


@pytest.fixture
def wake():
    pipe = WakePipe()
    yield pipe
    pipe.close()


@pytest.fixture
def watches():
    made: list[PathWatch] = []
    yield made
    for watch in made:
        watch.close()


def watch(watches, wake, path, *, mode=INOTIFY, recursive=True) -> PathWatch:
    made = PathWatch(str(path), recursive=recursive, mode=mode, poll_interval=0.1, wake=wake.wake).start()
    watches.append(made)
    return made


def changes_until(watch: PathWatch, predicate, *, what: str) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []

    def done():
        seen.extend(watch.drain())
        return predicate(seen)

    wait_until(done, what=what)
    return seen


@pytest.mark.parametrize("mode", [INOTIFY, POLLING])
def test_changes_under_a_folder_are_handed_over_and_wake_the_loop(tmp_path, wake, watches, mode):
    (tmp_path / "gba").mkdir()
    watched = watch(watches, wake, tmp_path, mode=mode)
    wait_until(lambda: watched.state == "watching", what="the watch to be in place")
    assert select.select([wake], [], [], 5)[0]  # "watching" woke the loop
    wake.drain()
    (tmp_path / "gba" / "game.rom").write_bytes(b"x")
    seen = changes_until(watched, lambda seen: ("created", str(tmp_path / "gba" / "game.rom")) in seen,
                         what="the new file")
    assert select.select([wake], [], [], 0)[0]
    (tmp_path / "gba" / "game.rom").unlink()
    changes_until(watched, lambda seen: ("deleted", str(tmp_path / "gba" / "game.rom")) in seen, what="the delete")
    assert watched.mode == mode and watched.note == "" and {kind for kind, _ in seen} <= {"created", "modified"}


def test_a_folder_touched_is_not_a_change_its_new_file_is(tmp_path, wake, watches):
    """Polling reports a folder whose entries changed as modified (it did under load): the
    entries' own changes are reported, and the folder would reach a target as a changed path
    (a whole library to rescan for one new file)."""
    (tmp_path / "gba").mkdir()
    watched = watch(watches, wake, tmp_path, mode=POLLING)
    wait_until(lambda: watched.state == "watching", what="the watch to be in place")
    later = time.time() + 60
    for folder in (tmp_path, tmp_path / "gba"):
        os.utime(folder, (later, later))  # as a new entry moves a folder's times
    (tmp_path / "gba" / "game.rom").write_bytes(b"x")
    seen = changes_until(watched, lambda seen: ("created", str(tmp_path / "gba" / "game.rom")) in seen,
                         what="the new file")
    time.sleep(0.3)  # more polls (every 0.1 s): the folders' times are seen by now
    assert {path for _, path in seen + watched.drain()} == {str(tmp_path / "gba" / "game.rom")}


def test_a_watch_that_is_not_recursive_sees_only_its_own_folder(tmp_path, wake, watches):
    (tmp_path / "sub").mkdir()
    watched = watch(watches, wake, tmp_path, recursive=False)
    wait_until(lambda: watched.state == "watching", what="the watch")
    (tmp_path / "sub" / "deep.rom").write_bytes(b"x")
    (tmp_path / "top.rom").write_bytes(b"x")
    seen = changes_until(watched, lambda seen: any(path.endswith("top.rom") for _, path in seen), what="top.rom")
    assert not any(path.endswith("deep.rom") for _, path in seen + watched.drain())


def test_a_missing_path_fails_saying_so(tmp_path, wake, watches):
    watched = watch(watches, wake, tmp_path / "absent")
    wait_until(lambda: watched.state == "failed", what="the failure")
    assert watched.error == f"{tmp_path / 'absent'}: no such file or folder; watching it once it appears"


def test_a_folder_deleted_under_its_watch_ends_the_watch(tmp_path, wake, watches):
    folder = tmp_path / "library"
    folder.mkdir()
    watched = watch(watches, wake, folder)
    wait_until(lambda: watched.state == "watching", what="the watch")
    shutil.rmtree(folder)
    wait_until(lambda: watched.state == "failed", what="the watch to notice", timeout=5)
    assert watched.error == f"{folder}: no longer there (deleted or replaced); watching again once it is back"
    assert ("deleted", str(folder)) in watched.drain()


def test_closing_a_watch_ends_its_thread(tmp_path, wake):
    watched = PathWatch(str(tmp_path), recursive=True, mode=INOTIFY, poll_interval=1, wake=wake.wake).start()
    wait_until(lambda: watched.state == "watching", what="the watch")
    watched.close()
    assert not watched._thread.is_alive()


def test_the_mode_follows_the_file_system_a_path_lies_on(tmp_path):
    here = filesystem_of(str(tmp_path))
    assert here and filesystem_of("/proc/self") == "proc"
    assert mode_for(str(tmp_path), polled_filesystems={"nfs", "nfs4"}) == INOTIFY
    assert mode_for(str(tmp_path), polled_filesystems={here}) == POLLING
    assert mode_for(str(tmp_path / "not" / "yet"), polled_filesystems={here}) == POLLING  # its mount, all the same


#: Run in a user namespace of its own (inotify's limits are per user namespace), with room for
#: 5 inotify watches: a tree of 20 folders is polled instead, saying why, and its changes seen.
OUT_OF_WATCHES = r"""
import os, sys, time
from pathlib import Path
from tasks_app.platform.filewatch import PathWatch, WakePipe
Path("/proc/sys/user/max_inotify_watches").write_text("5")
root = Path(sys.argv[1])
for index in range(20):
    (root / f"folder{index}").mkdir()
pipe = WakePipe()
watch = PathWatch(str(root), recursive=True, mode="inotify", poll_interval=0.1, wake=pipe.wake).start()
deadline = time.monotonic() + 20
while watch.state == "starting" and time.monotonic() < deadline:
    time.sleep(0.05)
print(watch.state, watch.mode, watch.error, sep="|")
print(watch.note)
(root / "folder7" / "new.rom").write_bytes(b"x")
seen = []
while not seen and time.monotonic() < deadline:
    time.sleep(0.05)
    seen = watch.drain()
print(sorted(seen))
watch.close()
"""


def test_inotify_out_of_watches_falls_back_to_polling_and_says_why(tmp_path):
    unshare = shutil.which("unshare")
    assert unshare, "util-linux's unshare is needed to give the watch a user namespace of its own"
    done = subprocess.run([unshare, "--user", "--map-root-user", sys.executable, "-c", OUT_OF_WATCHES, str(tmp_path)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    state, note, seen = done.stdout.splitlines()
    assert state == "watching|polling|"
    assert note.startswith("inotify refused (") and note.endswith("); polling instead"), note
    assert seen == str([("created", f"{tmp_path}/folder7/new.rom")])
