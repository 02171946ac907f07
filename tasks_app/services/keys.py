"""API keys: created (shown once), looked up by hash, revoked; last use recorded sparingly."""
from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import timedelta

from django.contrib.auth.models import User
from django.db import IntegrityError

from tasks_app import clock
from tasks_app.exceptions import BadRequest
from tasks_app.models import ApiKey, Scope

KEY_PREFIX = "td_"
#: A key's last use is written at most this often (seconds), not on every request.
LAST_USED_RESOLUTION = 60


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(
    *, name: str, scopes: Iterable[str], owner: User | None = None, expires_in: timedelta | None = None
) -> tuple[ApiKey, str]:
    """A new key and its plain text, which is never stored and cannot be shown again."""
    scopes = sorted(set(scopes))
    unknown = [scope for scope in scopes if scope not in Scope.values]
    if not name.strip():
        raise BadRequest("An API key needs a name.")
    if unknown or not scopes:
        raise BadRequest(f"Scopes must be some of: {', '.join(Scope.values)}.")
    plain = KEY_PREFIX + secrets.token_urlsafe(32)
    now = clock.now()
    try:
        key = ApiKey.objects.create(
            name=name.strip(), prefix=plain[:10], key_hash=hash_key(plain), scopes=scopes, owner=owner,
            created_at=now, expires_at=now + expires_in if expires_in else None,
        )
    except IntegrityError:
        raise BadRequest(f"An API key named {name!r} already exists.") from None
    return key, plain


def find_key(plain: str) -> ApiKey | None:
    """The usable key with this plain text, or None (unknown, revoked or expired)."""
    now = clock.now()
    key = ApiKey.objects.usable(now).filter(key_hash=hash_key(plain)).first()
    if key is not None and (key.last_used_at is None or (now - key.last_used_at).total_seconds() >= LAST_USED_RESOLUTION):
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key


def revoke_key(key: ApiKey) -> None:
    ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=clock.now())


def parse_duration(text: str) -> timedelta:
    """'30d', '12h', '90m', '2w' as the command line takes them."""
    units = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    number, unit = text[:-1], text[-1:].lower()
    if unit not in units or not number.isdigit() or int(number) <= 0:
        raise BadRequest(f"Durations look like 30d, 12h, 90m or 2w, not {text!r}.")
    return timedelta(seconds=int(number) * units[unit])
