"""Wake-ups between processes of one host: a process listens on a name, another wakes it with a
datagram (Linux's abstract Unix sockets: no file, gone with the listener).

A worker's watchdog looks at its run's stop request every half second; a cancel made on the same
host wakes it at once (``wake``), so the stop starts within milliseconds instead of a quarter of
a second on average (bench/process.py). Best effort: a listener on another host, or none, is a
wake-up lost, and the half-second look still finds the request.
"""
from __future__ import annotations

import socket
import sys

_PREFIX = "taskdeck-"


def _address(name: str) -> str:
    return f"\0{_PREFIX}{name}"


def listen(name: str) -> socket.socket | None:
    """A socket that polls readable when ``wake(name)`` is called on this host; None where the
    platform has no abstract sockets, or the name is taken."""
    if not sys.platform.startswith("linux"):
        return None
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        listener.bind(_address(name))
    except OSError:
        listener.close()
        return None
    listener.setblocking(False)
    return listener


def drain(listener: socket.socket) -> None:
    """Read the wake-ups waiting, so the socket polls quiet again."""
    try:
        while listener.recv(64):
            pass
    except OSError:
        pass


def wake(name: str) -> None:
    """Wake whoever listens on ``name`` on this host; nothing happens if nobody does."""
    if not sys.platform.startswith("linux"):
        return
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"!", _address(name))
    except OSError:
        pass
