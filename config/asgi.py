"""ASGI entry point: Django over HTTP; Channels routes WebSockets (live issue)."""
import os

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Django's advice for ASGI: no persistent connections, since every request runs in a thread of
# its own and a connection kept open would be abandoned with it. Workers keep theirs.
os.environ.setdefault("CONN_MAX_AGE", "0")
# Static files (admin CSS/JS) are served by the app itself: `serve` is a one-machine default
# with no front proxy. Behind nginx, collectstatic and let it serve STATIC_ROOT instead.
django_asgi_app = ASGIStaticFilesHandler(get_asgi_application())

from channels.routing import ProtocolTypeRouter  # noqa: E402  (needs Django set up first)

application = ProtocolTypeRouter({"http": django_asgi_app})
