"""tasks_app/admin/api_keys.py: the key list shows each key's scopes, state, expiry and last use."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from tasks_app.services import keys

pytestmark = pytest.mark.django_db


def test_the_key_list_shows_state_scopes_and_last_use_but_never_a_key(root_client, clock):
    _, active = keys.create_key(name="reader", scopes=["tasks:read"])
    revoked, _ = keys.create_key(name="old", scopes=["tasks:run"])
    keys.revoke_key(revoked)
    keys.create_key(name="short", scopes=["tasks:manage"], expires_in=timedelta(minutes=5))
    clock.advance(minutes=10)
    keys.find_key(active)  # a use: recorded as last use

    page = root_client.get("/admin/tasks_app/apikey/").content.decode()

    states = dict(re.findall(r'<th class="field-name"><a [^>]+>(\w+)</a></th>.*?td-badge-\w+">(\w+)</span>', page,
                             flags=re.S))
    assert states == {"reader": "active", "old": "revoked", "short": "expired"}
    assert "tasks:manage" in page and active not in page and active[10:] not in page
    last_use = re.findall(r'<td class="field-last_used_at[^"]*">(.*?)</td>', page)
    assert sorted(value != "-" for value in last_use) == [False, False, True]
    assert page.count('class="td-badge ') == 3 and "taskdeck/admin.css" in page
