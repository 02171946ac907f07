"""Who is calling: an API key (X-API-Key or Authorization: Bearer) or a Django session."""
from __future__ import annotations

from typing import Any

from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from tasks_app.services import keys
from tasks_app.models import ApiKey


class KeyCaller:
    """request.user for a request made with an API key: what it may do comes from the key's scopes."""

    is_authenticated = True
    is_anonymous = False
    is_staff = False
    is_superuser = False
    is_active = True

    def __init__(self, key: ApiKey) -> None:
        self.key = key
        self.pk = None

    def get_username(self) -> str:
        return f"key:{self.key.name}"

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        return False

    def __str__(self) -> str:
        return self.get_username()


def key_from_headers(headers: Any) -> str:
    """The plain key a client sent, from X-API-Key or a Bearer Authorization header ('' if none)."""
    key = headers.get("X-API-Key", "")
    if not key:
        scheme, _, value = headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            key = value.strip()
    return key.strip()


class ApiKeyAuthentication(BaseAuthentication):
    """First in the list, so an unauthenticated request gets 401 with a WWW-Authenticate header."""

    def authenticate(self, request: Request) -> tuple[KeyCaller, ApiKey] | None:
        plain = key_from_headers(request.headers)
        if not plain:
            return None
        key = keys.find_key(plain)
        if key is None:
            raise AuthenticationFailed("Unknown, revoked or expired API key.")
        return KeyCaller(key), key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="taskdeck"'
