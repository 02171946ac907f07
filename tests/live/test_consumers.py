"""tasks_app/live/consumers.py over a real `serve`: the WebSocket /ws/tasks/ (``clients.serving``)."""
from __future__ import annotations

import json
import time

import pytest
import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from .clients import Stream, ended, trigger


def test_the_websocket_sends_the_same_events_as_json_frames(live):
    with connect(f"{live.ws}?task=quick", additional_headers={"Authorization": f"Bearer {live.read_key}"}) as socket:
        stream = Stream(live, "?task=quick")
        run_id = trigger(live, "quick")
        frames = []
        while not frames or frames[-1]["event"] != "task:completed":
            frames.append(json.loads(socket.recv(timeout=10)))
        sse = stream.until(ended(run_id))
        stream.close()
    assert [(frame["id"], frame["event"], frame["data"]) for frame in frames] == [
        (message["id"], message["event"], message["data"]) for message in sse]


def test_a_websocket_client_can_change_what_it_follows(live):
    with connect(live.ws, additional_headers={"X-API-Key": live.read_key}) as socket:
        socket.send(json.dumps({"subscribe": {"task": "counting"}}))
        time.sleep(0.3)  # the filter applies to what comes next; give the message time to land
        trigger(live, "quick")
        run_id = trigger(live, "counting", parameters={"count": 5})
        frame = json.loads(socket.recv(timeout=10))
        assert frame["data"]["task_id"] == "counting" and frame["data"]["run_id"] == run_id


@pytest.mark.parametrize(("headers", "code"), [
    ({}, 4401),
    ({"X-API-Key": "td_not-a-key"}, 4401),
    ({"Cookie": "sessionid=SESSION", "Origin": "BASE"}, 4403),  # this site's page, a user with no scopes
    ({"Cookie": "sessionid=SESSION", "Origin": "http://evil.example"}, 4401),  # another site's page
    # The same host, another origin: another port, another scheme, no port (issue 11).
    ({"Cookie": "sessionid=SESSION", "Origin": "http://localhost:6666"}, 4401),
    ({"Cookie": "sessionid=SESSION", "Origin": "http://127.0.0.1:6666"}, 4401),
    ({"Cookie": "sessionid=SESSION", "Origin": "https://127.0.0.1:1"}, 4401),
    ({"Cookie": "sessionid=SESSION", "Origin": "http://127.0.0.1"}, 4401),
    ({"Cookie": "sessionid=SESSION", "Origin": "null"}, 4401),
    ({"Cookie": "sessionid=SESSION"}, 4401),
])
def test_the_websocket_closes_4401_without_a_caller_and_4403_without_the_scope(live, headers, code):
    headers = {name: value.replace("SESSION", live.visitor_session).replace("BASE", live.base)
               for name, value in headers.items()}
    with connect(live.ws, additional_headers=headers) as socket, pytest.raises(ConnectionClosed) as closed:
        socket.recv(timeout=10)
    assert closed.value.rcvd.code == code


def test_the_admin_session_opens_the_socket_from_this_sites_pages_only(live):
    """A superuser's session reads events from a page of this site, and from nowhere else on its host."""
    admin = requests.Session()
    page = admin.get(f"{live.base}/admin/login/", timeout=10)
    token = page.cookies["csrftoken"]
    admin.post(f"{live.base}/admin/login/", data={"username": "root", "password": "root-password",
                                                  "csrfmiddlewaretoken": token, "next": "/admin/"},
               headers={"Referer": f"{live.base}/admin/login/"}, timeout=10)
    cookie = f"sessionid={admin.cookies['sessionid']}"
    with connect(f"{live.ws}?task=quick", additional_headers={"Cookie": cookie, "Origin": live.base}) as socket:
        run_id = trigger(live, "quick")
        frame = json.loads(socket.recv(timeout=10))
        assert frame["data"]["run_id"] == run_id
    for origin in ("http://localhost:6666", live.base.replace("http:", "https:")):
        with connect(live.ws, additional_headers={"Cookie": cookie, "Origin": origin}) as socket, \
                pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=10)
        assert closed.value.rcvd.code == 4401


def test_a_websocket_frame_too_big_or_too_deep_never_kills_the_stream(live):
    with connect(f"{live.ws}?task=quick", additional_headers={"X-API-Key": live.read_key}) as socket:
        socket.send("[" * 4000 + "]" * 4)  # deep, within the size limit: ignored
        run_id = trigger(live, "quick")
        frame = json.loads(socket.recv(timeout=10))
        assert frame["data"]["run_id"] == run_id
        socket.send("[" * 100_000)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                socket.recv(timeout=10)
        assert closed.value.rcvd.code == 1009
    with connect(f"{live.ws}?task=quick", additional_headers={"X-API-Key": live.read_key}) as socket:
        run_id = trigger(live, "quick")  # the web process still serves sockets
        assert json.loads(socket.recv(timeout=10))["data"]["task_id"] == "quick"
