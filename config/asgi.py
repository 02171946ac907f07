"""ASGI entry point: what ``manage.py serve`` runs under uvicorn.

Plain HTTP (admin, REST API, static files) goes to Django's WSGI handler on a fixed pool of
threads (a2wsgi); only long-lived streams (/api/events) go through Django's ASGI handler, and
WebSockets (/ws/tasks/) through Channels. Why not all of it through the ASGI handler: for a sync view it
starts, and then joins, a fresh thread per request, about 4 ms each on a small machine (measured
with bench/api.py), and a persistent database connection opened in that thread is abandoned with
it. The pool's threads live as long as the process, so each keeps one connection (CONN_MAX_AGE).
"""
import os
from concurrent.futures import ThreadPoolExecutor

from a2wsgi import WSGIMiddleware
from asgiref.sync import ThreadSensitiveContext
from django.contrib.staticfiles.handlers import (
    ASGIStaticFilesHandler,
    StaticFilesHandler,
)
from django.core.asgi import get_asgi_application
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Static files (admin CSS/JS) are served by the app itself: `serve` is a one-machine default
# with no front proxy. Behind nginx, collectstatic and let it serve STATIC_ROOT instead.
django_wsgi_app = StaticFilesHandler(get_wsgi_application())
streams = ASGIStaticFilesHandler(get_asgi_application())

from tasks_app.conf import taskdeck_settings  # noqa: E402  (needs Django set up first)

plain_http = WSGIMiddleware(django_wsgi_app, workers=taskdeck_settings.WEB_THREADS)
# Paths served as streams, through the ASGI handler: Server-Sent Events (the live events, and a
# run's log: /api/runs/<id>/log/stream).
STREAM_PREFIXES = ("/api/events",)
STREAM_SUFFIXES = ("/log/stream", "/log/stream/")


def is_stream(path):
    return path.startswith(STREAM_PREFIXES) or (path.startswith("/api/runs/") and path.endswith(STREAM_SUFFIXES))


def on_one_thread(app, name):
    """``app`` with the sync parts of its connections (authentication, a sync view, database
    reads) all run on one thread of its own.

    Django's ASGI handler (and Channels) would give each connection a thread of its own for as
    long as it lasts, with a database connection each: for 500 SSE clients, 500 threads and
    +170 MB, and connections left open when the streams ended (bench/events.py).
    """
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def app_on_one_thread(scope, receive, send):
        async with ThreadSensitiveContext(executor=executor):
            await app(scope, receive, send)

    return app_on_one_thread


streams_on_one_thread = on_one_thread(streams, "taskdeck-streams")


async def http(scope, receive, send):
    """Streams to the ASGI handler, every other request to the thread pool."""
    app = streams_on_one_thread if is_stream(scope["path"]) else plain_http
    await app(scope, receive, send)


from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs Django set up first)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from tasks_app.live.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter({
    "http": http,
    # Sessions for the admin's live pages; the consumer checks the Origin before trusting one.
    "websocket": on_one_thread(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)), "taskdeck-websockets"),
})
