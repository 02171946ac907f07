"""WebSocket /ws/tasks/: the live events of /api/events as JSON text frames, through Channels.

A client authenticates like an HTTP one: with an API key (``X-API-Key`` or ``Authorization:
Bearer`` header) or with its admin session cookie. A session counts only from a page of this site:
the ``Origin`` must be the socket's own origin (scheme, host and port) or one of
CSRF_TRUSTED_ORIGINS, as Django's CSRF check requires of a form post, so no other page (another
port or scheme on the same host included) can open a socket with a visitor's cookie. The socket is
accepted, then closed with 4401 when there is no caller, 4403 when the caller lacks
``tasks:read`` and 4400 when its Last-Event-ID is not an event id.

Frames are ``{"id", "event", "data"}`` with the same ids as SSE. ``?task=`` and ``?run=`` filter
from the start; a client may change its filter at any time by sending
``{"subscribe": {"task": "scan_library"}}`` or ``{"subscribe": {"run": "<uuid>"}}`` (``{}`` for
everything). A client resumes as an SSE one does (``streams.py``), with a ``Last-Event-ID``
header or, from a browser, which cannot send one, ``?last_event_id=``: every retained event after
that id comes first.
"""
from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.utils.http import is_same_domain
from django.utils.datastructures import CaseInsensitiveMapping

from tasks_app.services import keys
from tasks_app.api.authentication import key_from_headers
from tasks_app.api.permissions import scopes_of
from tasks_app.live import streams
from tasks_app.models import Scope

NO_CALLER = 4401
MISSING_SCOPE = 4403
#: A Last-Event-ID that is not an event id (SSE answers 400).
BAD_EVENT_ID = 4400
MESSAGE_TOO_BIG = 1009
#: The longest frame a client may send (characters): a subscribe message is under 200.
MAX_FRAME = 4096
#: Seconds a quiet socket waits before looking again (frames go out as soon as events come).
QUIET_WAIT = 30.0


class TaskEventsConsumer(AsyncWebsocketConsumer):
    """The WebSocket adapter over ``streams.Stream``: one JSON text frame per event."""

    stream: streams.Stream | None = None
    sender: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        scopes = await database_sync_to_async(caller_scopes)(self.scope)
        if scopes is None or Scope.READ not in scopes:
            await self.accept()  # close codes need an accepted socket
            await self.close(code=NO_CALLER if scopes is None else MISSING_SCOPE)
            return
        query = parse_qs(self.scope.get("query_string", b"").decode())
        try:
            resume_after = last_event_id(headers_of(self.scope), query)
        except ValueError:
            await self.accept()
            await self.close(code=BAD_EVENT_ID)
            return
        self.stream = streams.Stream(task_id=first(query, "task"), run_id=first(query, "run"),
                                     resume_after=resume_after)
        await self.stream.open()
        await self.accept()  # subscribed first: once the client is connected, it misses nothing
        self.sender = asyncio.get_running_loop().create_task(self.forward())

    async def forward(self) -> None:
        """Nothing is sent when quiet (SSE sends a comment): uvicorn's WebSocket pings keep the
        connection alive."""
        assert self.stream is not None
        async for batch in self.stream.batches(quiet_after=QUIET_WAIT):
            for event in batch:
                await self.send(text_data=json.dumps(event.as_frame()))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """``{"subscribe": {"task": ..., "run": ...}}`` changes the filter; anything else is ignored.

        A frame longer than ``MAX_FRAME`` closes the socket (1009, message too big): nothing a
        client needs to say is longer, and what it sends is never parsed at any cost."""
        if len(text_data or bytes_data or b"") > MAX_FRAME:
            await self.close(code=MESSAGE_TOO_BIG)
            return
        try:
            message = json.loads(text_data or "")
        except (ValueError, RecursionError):
            return
        wanted = message.get("subscribe") if isinstance(message, dict) else None
        if self.stream is not None and isinstance(wanted, dict):
            self.stream.follow(task_id=str(wanted["task"]) if wanted.get("task") else None,
                               run_id=str(wanted["run"]) if wanted.get("run") else None)

    async def disconnect(self, code: int) -> None:
        if self.sender is not None:
            self.sender.cancel()
        if self.stream is not None:
            self.stream.close()


def first(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values and values[0] else None


def last_event_id(headers: CaseInsensitiveMapping, query: dict[str, list[str]]) -> int | None:
    """The id a client resumes after, as SSE reads it: the Last-Event-ID header when sent, else
    ``?last_event_id=``; ValueError when it is not an event id."""
    header = headers.get("Last-Event-ID", "").strip()
    if header:
        return streams.parse_event_id(header)
    value = first(query, "last_event_id")
    return None if value is None else streams.parse_event_id(value)


def headers_of(scope: dict[str, Any]) -> CaseInsensitiveMapping:
    return CaseInsensitiveMapping({name.decode("latin-1"): value.decode("latin-1")
                                   for name, value in scope.get("headers", [])})


def caller_scopes(scope: dict[str, Any]) -> frozenset[str] | None:
    """The caller's scopes, or None when there is no caller (no valid key, no usable session)."""
    headers = headers_of(scope)
    plain = key_from_headers(headers)
    if plain:
        key = keys.find_key(plain)
        return None if key is None else scopes_of(user=None, key=key)
    user = scope.get("user")
    if user is None or not user.is_authenticated or not same_origin(scope, headers):
        return None
    return scopes_of(user=user, key=None)


def same_origin(scope: dict[str, Any], headers: CaseInsensitiveMapping) -> bool:
    """Whether a browser's Origin is this site, checked as Django's CSRF check checks a form post:
    the request's own origin (scheme, host and port, for a Host in ALLOWED_HOSTS) or one of
    CSRF_TRUSTED_ORIGINS (``https://*.example.com`` covering its subdomains)."""
    origin = headers.get("Origin", "")
    host = headers.get("Host", "")
    if not origin or origin == "null" or not host:
        return False
    domain, _ = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return False
    scheme = "https" if scope.get("scheme") in ("wss", "https") else "http"
    if origin == f"{scheme}://{host}" or origin in settings.CSRF_TRUSTED_ORIGINS:
        return True
    parsed = urlsplit(origin)
    wildcards = [urlsplit(trusted) for trusted in settings.CSRF_TRUSTED_ORIGINS if "*" in trusted]
    return any(trusted.scheme == parsed.scheme and is_same_domain(parsed.netloc, trusted.netloc.lstrip("*"))
               for trusted in wildcards)
