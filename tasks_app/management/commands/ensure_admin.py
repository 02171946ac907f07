"""python manage.py ensure_admin: make sure someone can log in to the admin, and say how."""
from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from tasks_app.conf import taskdeck_settings


class Command(BaseCommand):
    help = "Create an admin superuser with a random password on first run; print how to log in."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--username", default="admin")

    def handle(self, *args: Any, username: str, **options: Any) -> None:
        password_file = Path(taskdeck_settings.DATA_DIR) / "admin-password.txt"
        url = f"http://{settings.HOST}:{settings.PORT}/admin/"
        users = get_user_model().objects
        if not users.filter(is_superuser=True).exists():
            password = secrets.token_urlsafe(12)
            users.create_superuser(username=username, email="", password=password)
            password_file.parent.mkdir(parents=True, exist_ok=True)
            password_file.write_text(password + "\n", encoding="utf-8")
            password_file.chmod(0o600)
            self.stdout.write(f"Created the admin user {username!r}.")
        if password_file.exists() and users.filter(username=username, is_superuser=True).exists():
            self.stdout.write(f"Admin: {url}  user: {username}  password: in {password_file}")
        else:
            self.stdout.write(f"Admin: {url}  (log in with your superuser; manage.py changepassword to reset)")
