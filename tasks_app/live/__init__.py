"""Live events: how a change committed in any process reaches SSE and WebSocket clients.

- ``outbox``: the writer: one Event row per change, inside the change's transaction (the only
  module of this package the services import);
- ``announce``: with REDIS_URL, "new events up to id N" sent once committed and heard by relays;
- ``relay``: each web process's reader of the outbox, and the subscriptions of its clients;
- ``streams``: one subscribe / backlog / forward path, so SSE and the WebSocket resume alike;
- ``consumers`` and ``routing``: the WebSocket /ws/tasks/ (``config/asgi.py`` wires the router).
"""
