"""Helpers for tests that drive Taskdeck's own commands as separate processes."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

from tasks_app.platform.children import descendants  # noqa: F401 (the tests walk process trees as serve does)

from .conftest import ROOT, wait_until


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class Project:
    """Taskdeck commands against one private SQLite database (migrated once, copied per test)."""

    def __init__(self, database: Path, env: dict[str, str]) -> None:
        self.database = database
        self.env = {**env, "DATABASE_URL": f"sqlite:///{database}"}

    def manage(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env,
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def show(self, run_id: str) -> dict[str, str]:
        lines = self.manage("tasks", "show", run_id).stdout.splitlines()
        return {line[:12].rstrip(": "): line[12:] for line in lines}

    def start_serve(self, port: int, log: Path) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(port)], cwd=ROOT, env=self.env,
            stdout=log.open("ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        import requests

        def up() -> bool:
            try:
                return requests.get(f"http://127.0.0.1:{port}/admin/login/", timeout=1).status_code == 200
            except requests.RequestException:  # refused, or too slow to answer while starting up
                assert process.poll() is None, log.read_text()
                return False

        wait_until(up, timeout=30, interval=0.2, what="serve to answer")
        return process


def copy_database(template: Path, target: Path) -> Path:
    shutil.copyfile(template, target)
    return target


def hard_kill(pid: int) -> None:
    """Kill a process and everything below it at once, like a power cut of the machine."""
    for child in descendants(pid) | {pid}:
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass


def stop_serve(process: subprocess.Popen[bytes], *, log: Path | None = None) -> None:
    """SIGTERM, as Ctrl-C would. A serve that is still up after 30 s, or leaves a child behind,
    is killed (with everything below it) and fails the caller, with the end of ``log``."""
    if process.poll() is not None:
        return
    tree = descendants(process.pid)
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
        stuck = False
    except subprocess.TimeoutExpired:
        hard_kill(process.pid)
        process.wait(10)
        stuck = True
    leftovers = {pid for pid in tree if alive(pid)}
    for pid in leftovers:
        hard_kill(pid)
    tail = log.read_text(errors="replace")[-4000:] if log else ""
    assert not stuck, f"serve did not stop on SIGTERM:\n{tail}"
    assert not leftovers, f"serve left processes behind after SIGTERM: {sorted(leftovers)}\n{tail}"
