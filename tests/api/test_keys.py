"""An API key's plain text exists only in the output that creates it: not in the database, the
logs or the admin."""
import hashlib
import logging
import re

import pytest
import requests
from django.apps import apps
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client

from tasks_app.models import ApiKey

from ..factories import make_task
from .conftest import make_key

pytestmark = pytest.mark.django_db(transaction=True)


def database_text() -> str:
    """Every row of every table, as text."""
    chunks = []
    with connection.cursor() as cursor:
        for model in apps.get_models():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(model._meta.db_table)}")
            chunks.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(chunks)


def admin_session(live_server) -> requests.Session:
    User.objects.create_superuser("root", password="correct horse battery")
    client = Client()
    client.login(username="root", password="correct horse battery")
    session = requests.Session()
    session.cookies.set("sessionid", client.cookies["sessionid"].value)
    return session


def test_the_plain_key_is_stored_nowhere_and_logged_nowhere(api, live_server, caplog):
    caplog.set_level(logging.DEBUG)
    make_task(id="report")
    plain = make_key("tasks:run", name="ci-bot")
    stored = ApiKey.objects.get(name="ci-bot")
    assert stored.key_hash == hashlib.sha256(plain.encode()).hexdigest() and stored.prefix == plain[:10]
    assert api.post("/api/tasks/report/run", key=plain).status_code == 202
    assert api.get("/api/tasks", headers={"Authorization": f"Bearer {plain}"}).status_code == 200
    api.get("/api/tasks", key=plain + "x")  # a failed attempt is logged too; the key must not be
    session = admin_session(live_server)
    pages = [session.get(f"{live_server.url}{path}").text
             for path in ("/admin/tasks_app/apikey/", f"/admin/tasks_app/apikey/{stored.pk}/change/", "/admin/tasks_app/run/")]
    assert "ci-bot" in pages[0] and stored.prefix in pages[0]
    secret = plain[10:]
    assert secret not in database_text()
    assert secret not in caplog.text
    assert not any(secret in page for page in pages)


def test_the_admin_shows_a_new_key_once_and_keeps_only_its_hash(live_server):
    session = admin_session(live_server)
    form = session.get(f"{live_server.url}/admin/tasks_app/apikey/add/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    response = session.post(
        f"{live_server.url}/admin/tasks_app/apikey/add/",
        data={"csrfmiddlewaretoken": token, "name": "dashboard", "scopes": ["tasks:read"]},
        headers={"Referer": f"{live_server.url}/admin/tasks_app/apikey/add/"},
    )
    assert response.status_code == 200 and "no-store" in response.headers["Cache-Control"]
    plain = re.search(r'id="api-key" readonly value="([^"]+)"', response.text).group(1)
    assert plain.startswith("td_")
    key = ApiKey.objects.get(name="dashboard")
    assert key.key_hash == hashlib.sha256(plain.encode()).hexdigest() and key.scopes == ["tasks:read"]
    assert plain[10:] not in database_text()  # sessions and messages included
    assert plain[10:] not in session.get(f"{live_server.url}/admin/tasks_app/apikey/").text
    assert requests.get(f"{live_server.url}/api/tasks", headers={"X-API-Key": plain}, timeout=10).status_code == 200


def test_revoking_from_the_admin_stops_the_key(live_server):
    plain = make_key("tasks:read", name="old")
    session = admin_session(live_server)
    listing = session.get(f"{live_server.url}/admin/tasks_app/apikey/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', listing.text).group(1)
    session.post(f"{live_server.url}/admin/tasks_app/apikey/",
                 data={"csrfmiddlewaretoken": token, "action": "revoke", "_selected_action": [ApiKey.objects.get(name="old").pk]},
                 headers={"Referer": f"{live_server.url}/admin/tasks_app/apikey/"})
    assert ApiKey.objects.get(name="old").revoked_at is not None
    assert requests.get(f"{live_server.url}/api/tasks", headers={"X-API-Key": plain}, timeout=10).status_code == 401
