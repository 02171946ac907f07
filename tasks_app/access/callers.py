"""How a caller is named in a run's ``triggered_by`` (API.md): ``key:<name>`` for a request made
with an API key, ``user:<username>`` for a signed-in user, whether the request came through the
API (a DRF ``Request``) or the admin (a plain ``HttpRequest``, which never carries a key)."""
from __future__ import annotations

from typing import Any

from tasks_app.models import ApiKey


def caller_label(request: Any) -> str:
    """``triggered_by`` for what ``request`` starts."""
    key = getattr(request, "auth", None)
    if isinstance(key, ApiKey):
        return f"key:{key.name}"
    return f"user:{request.user.get_username()}"
