"""python manage.py create_api_key --name NAME --scopes tasks:read,tasks:run [--expires-in 30d]"""
from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from tasks_app.services import keys
from tasks_app.exceptions import TaskdeckError
from tasks_app.models import Scope


class Command(BaseCommand):
    help = "Create an API key. The key is printed once, alone on the last line; only its hash is stored."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--name", required=True, help="A unique name; requests by the key show as key:NAME.")
        parser.add_argument("--scopes", required=True, help=f"Comma-separated: {', '.join(Scope.values)}.")
        parser.add_argument("--expires-in", default=None, help="e.g. 30d, 12h, 2w (default: never).")
        parser.add_argument("--owner", default=None, help="Username of the key's owner (optional).")

    def handle(self, *args: Any, name: str, scopes: str, expires_in: str | None, owner: str | None, **options: Any) -> None:
        try:
            user = get_user_model().objects.get(username=owner) if owner else None
            expiry = keys.parse_duration(expires_in) if expires_in else None
            key, plain = keys.create_key(
                name=name, scopes=[s.strip() for s in scopes.split(",") if s.strip()], owner=user, expires_in=expiry
            )
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user named {owner!r}.") from None
        except TaskdeckError as error:
            raise CommandError(error.detail) from None
        expiry_text = f", expires {key.expires_at:%Y-%m-%d %H:%M} UTC" if key.expires_at else ""
        self.stdout.write(f"Created API key {key.name!r} with scopes {', '.join(key.scopes)}{expiry_text}.")
        self.stdout.write("Store it now: it cannot be shown again.")
        self.stdout.write(plain)
