"""The WebSocket routes, for Channels' URLRouter (``config/asgi.py`` wires it, with sessions)."""
from __future__ import annotations

from django.urls import path

from tasks_app.live.consumers import TaskEventsConsumer

websocket_urlpatterns = [
    path("ws/tasks/", TaskEventsConsumer.as_asgi()),
]
