"""WebSocket /ws/tasks/: the live events of /api/events as JSON text frames, through Channels.

A client authenticates like an HTTP one: with an API key (``X-API-Key`` or ``Authorization:
Bearer`` header) or with its admin session cookie. A session counts only from a page of this site
(the ``Origin`` must be one of ALLOWED_HOSTS), so another site cannot open a socket with a
visitor's cookie. The socket is accepted, then closed with 4401 when there is no caller and 4403
when the caller lacks ``tasks:read``.

Frames are ``{"id", "event", "data"}`` with the same ids as SSE. ``?task=`` and ``?run=`` filter
from the start; a client may change its filter at any time by sending
``{"subscribe": {"task": "scan_library"}}`` or ``{"subscribe": {"run": "<uuid>"}}`` (``{}`` for
everything).
"""
from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.http.request import validate_host
from django.utils.datastructures import CaseInsensitiveMapping

from tasks_app import events
from tasks_app.api import keys
from tasks_app.api.authentication import key_from_headers
from tasks_app.api.permissions import scopes_of
from tasks_app.models import Scope

NO_CALLER = 4401
MISSING_SCOPE = 4403
#: Seconds a quiet socket waits before looking again (frames go out as soon as events come).
QUIET_WAIT = 30.0


class TaskEventsConsumer(AsyncWebsocketConsumer):
    subscription: events.Subscription | None = None
    sender: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        scopes = await database_sync_to_async(caller_scopes)(self.scope)
        if scopes is None or Scope.READ not in scopes:
            await self.accept()  # close codes need an accepted socket
            await self.close(code=NO_CALLER if scopes is None else MISSING_SCOPE)
            return
        query = parse_qs(self.scope.get("query_string", b"").decode())
        self.subscription = events.Subscription(task_id=first(query, "task"), run_id=first(query, "run"))
        await events.relay.subscribe(self.subscription)
        await self.accept()  # subscribed first: once the client is connected, it misses nothing
        self.sender = asyncio.get_running_loop().create_task(self.forward())

    async def forward(self) -> None:
        assert self.subscription is not None
        while True:
            for event in await self.subscription.next_batch(timeout=QUIET_WAIT):
                await self.send(text_data=json.dumps(event.as_frame()))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """``{"subscribe": {"task": ..., "run": ...}}`` changes the filter; anything else is ignored."""
        try:
            message = json.loads(text_data or "")
        except ValueError:
            return
        wanted = message.get("subscribe") if isinstance(message, dict) else None
        if self.subscription is not None and isinstance(wanted, dict):
            self.subscription.task_id = str(wanted["task"]) if wanted.get("task") else None
            self.subscription.run_id = str(wanted["run"]) if wanted.get("run") else None

    async def disconnect(self, code: int) -> None:
        if self.sender is not None:
            self.sender.cancel()
        if self.subscription is not None:
            events.relay.unsubscribe(self.subscription)


def first(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values and values[0] else None


def caller_scopes(scope: dict[str, Any]) -> frozenset[str] | None:
    """The caller's scopes, or None when there is no caller (no valid key, no usable session)."""
    headers = CaseInsensitiveMapping({name.decode("latin-1"): value.decode("latin-1")
                                      for name, value in scope.get("headers", [])})
    plain = key_from_headers(headers)
    if plain:
        key = keys.find_key(plain)
        return None if key is None else scopes_of(user=None, key=key)
    user = scope.get("user")
    if user is None or not user.is_authenticated or not same_site(headers.get("Origin", "")):
        return None
    return scopes_of(user=user, key=None)


def same_site(origin: str) -> bool:
    """Whether a browser's Origin is this site (a host in ALLOWED_HOSTS)."""
    host = urlsplit(origin).hostname if origin else None
    return bool(host) and validate_host(host, settings.ALLOWED_HOSTS)
