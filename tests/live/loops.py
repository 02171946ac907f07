"""A relay of a test's own in this process: its event loop on a thread apart, database code off it."""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.db import connections

from tasks_app.live.relay import Relay


def on_a_thread(function: Any) -> Any:
    """Run database code off the event loop (Django refuses it there), letting go of the connection."""
    def call() -> Any:
        try:
            return function()
        finally:
            connections.close_all()
    return asyncio.to_thread(call)


def run_apart(scenario: Any) -> None:
    """``asyncio.run(scenario())`` on a thread of its own: Playwright's sync API (tests/test_admin.py)
    keeps an event loop running on this one for the rest of the session."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(lambda: asyncio.run(scenario())).result()


async def close(relay: Relay) -> None:
    """Stop a test's relay, with its Redis listener, and its reader thread's connection."""
    relay.task.cancel()
    await asyncio.wait({relay.task})
    if relay.listening is not None:
        await asyncio.wait({relay.listening})  # it lets go of Redis
    await relay.read(connections.close_all)
    relay.reader.shutdown()
