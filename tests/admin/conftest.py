"""Admin views through Django's test client: real database, real templates, no browser.

The browser tests (tests/browser/) drive the same pages in chromium against a real `serve`."""
from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client


@pytest.fixture
def root_client(db) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", password="x"))
    return client


def staff_client(*codenames: str, username: str = "staff") -> Client:
    """A staff user holding exactly these tasks_app permissions."""
    user = User.objects.create_user(username, password="x", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="tasks_app", codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client
