"""Live events through Redis (REDIS_URL): writers announce committed events, relays wake on them.

A throwaway ``redis-server`` on a free loopback port. First over a real ``manage.py serve`` (web,
worker, scheduler, all with REDIS_URL; the SSE helpers of tests/live/clients.py); then the
relay and the writers in this process, on the test database. The fallback poll is set so long
that only an announcement explains a prompt delivery; Redis is also absent, or restarted.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any

import pytest
import redis
from django.db import transaction
from websockets.sync.client import connect

from tasks_app import clock, services
from tasks_app.live import announce, outbox
from tasks_app.live.relay import Relay, Subscription
from tasks_app.models import Event, EventName, Run, RunStatus, RunTrigger

from ..conftest import wait_until
from ..factories import make_task
from ..processes import Project, free_port
from .clients import DEFINITIONS, Live, Stream, ended, trigger
from .loops import close, on_a_thread, run_apart

# --- A real Redis ---------------------------------------------------------------------------------


def start_redis(port: int) -> subprocess.Popen[bytes]:
    """``redis-server`` on 127.0.0.1:``port``, keeping nothing on disk; fails the test without it."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed, and these tests need a real Redis: run "
                    "scripts/install-test-deps (Debian package redis-server).", pytrace=False)
    server = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    client = redis.Redis(port=port, socket_connect_timeout=1)

    def answers() -> bool:
        assert server.poll() is None, f"redis-server exited with code {server.returncode}"
        try:
            return client.ping()
        except redis.ConnectionError:
            return False

    try:
        wait_until(answers, timeout=10, what="redis-server to answer")
    finally:
        client.close()
    return server


def stop_redis(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(10)


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    port = free_port()
    server = start_redis(port)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_redis(server)


def layers(url: str) -> dict[str, Any]:
    """CHANNEL_LAYERS as config/settings.py builds it for ``url``."""
    return {announce.LAYER: {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [{"address": url, "socket_connect_timeout": 2}], "prefix": "taskdeck"},
    }}


# --- Over a real serve ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def live(process_env: dict[str, str], redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """serve with REDIS_URL (django-q2's Redis broker too) and a fallback poll of a minute."""
    folder = tmp_path_factory.mktemp("announced")
    definitions = folder / "taskdeck.toml"
    definitions.write_text(DEFINITIONS)
    env = {**process_env, "REDIS_URL": redis_url, "TASKDECK_EVENT_FALLBACK_POLL": "60",
           "TASKDECK_DEFINITIONS": str(definitions), "TASKDECK_EXTRA_APPS": ""}
    project = Project(folder / "db.sqlite3", env)
    project.manage("migrate", "--noinput", "-v0")
    read_key = project.manage("create_api_key", "--name", "reader", "--scopes", "tasks:read").stdout.split()[-1]
    run_key = project.manage("create_api_key", "--name", "runner", "--scopes", "tasks:run").stdout.split()[-1]
    port = free_port()
    serve = project.start_serve(port, folder / "serve.log")
    try:
        yield Live(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/ws/tasks/", read_key, run_key,
                   visitor_session="", database=project.database, web_pid=0)  # the last three unused here
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(20)
        except subprocess.TimeoutExpired:
            serve.kill()


def latency(message: dict[str, Any], at: float) -> float:
    return at - datetime.fromisoformat(message["data"]["timestamp"]).timestamp()


def test_an_sse_client_gets_a_run_s_events_through_redis_at_once(live):
    """The fallback poll is a minute here: events arriving within half a second were announced."""
    stream = Stream(live, "?task=counting")
    run_id = trigger(live, "counting")
    seen, delays = [], []
    while not seen or not ended(run_id)(seen[-1]):
        seen.append(stream.next(within=10))
        delays.append(latency(seen[-1], time.time()))
    stream.close()
    names = [message["event"] for message in seen]
    assert names[:2] == ["task:queued", "task:started"] and names[-1] == "task:completed", names
    assert "task:progress" in names and seen[-2]["data"]["progress"]["current"] == 200
    assert [message["id"] for message in seen] == sorted({message["id"] for message in seen})
    # From the writer's clock to this client: commit, announcement, the relay's read, the socket.
    assert max(delays) < 0.5, [round(delay, 3) for delay in delays]


def test_a_websocket_client_gets_them_too_and_resuming_still_reads_the_outbox(live):
    with connect(f"{live.ws}?task=quick", additional_headers={"X-API-Key": live.read_key}) as socket:
        run_id = trigger(live, "quick")
        frames = [json.loads(socket.recv(timeout=5))]
        while frames[-1]["event"] != "task:completed":
            frames.append(json.loads(socket.recv(timeout=5)))
    assert [frame["event"] for frame in frames] == ["task:queued", "task:started", "task:completed"]
    assert {frame["data"]["run_id"] for frame in frames} == {run_id}
    resumed = Stream(live, "?task=quick", headers={"Last-Event-ID": str(frames[0]["id"] - 1)})
    assert [(message["id"], message["event"]) for message in (resumed.next(within=5) for _ in frames)] == [
        (frame["id"], frame["event"]) for frame in frames]
    resumed.close()


# --- The relay and the writers, in this process ---------------------------------------------------


@pytest.fixture
def announcing(settings, redis_url: str) -> None:
    """Announcements on (as with REDIS_URL), and a fallback poll too long to deliver anything here."""
    settings.CHANNEL_LAYERS = layers(redis_url)
    settings.TASKDECK = {**settings.TASKDECK, "EVENT_FALLBACK_POLL": 30.0}


@pytest.fixture
def publisher(monkeypatch: pytest.MonkeyPatch) -> announce.Publisher:
    """A publisher of this test's own, so what it logs is not what an earlier test's logged."""
    fresh = announce.Publisher()
    monkeypatch.setattr(announce, "publisher", fresh)
    return fresh


def quiet_event(task_id: str) -> int:
    """An event row written the way no writer does: with no announcement."""
    return Event.objects.create(name=EventName.UPDATED, task_id=task_id, data={"task_id": task_id},
                                created_at=clock.now()).id


def announced_event(task_id: str) -> int:
    """An event row written as services do, announced once its transaction commits."""
    task = make_task(id=task_id)
    with transaction.atomic():
        outbox.emit_task_updated(task, message="Changed: enabled")
    return Event.objects.filter(task_id=task_id).latest("id").id


@contextlib.asynccontextmanager
async def relaying(subscription: Subscription) -> AsyncIterator[Relay]:
    """A relay of its own serving ``subscription``, closed (with its Redis listener) afterwards."""
    relay = Relay()
    await relay.subscribe(subscription)
    try:
        yield relay
    finally:
        await close(relay)


async def received(subscription: Subscription, *, within: float) -> tuple[list[int], float]:
    """The ids of the next batch (maybe none after ``within`` s), and how long they took."""
    started = time.monotonic()
    batch = await subscription.next_batch(timeout=within)
    return [event.id for event in batch], time.monotonic() - started


@pytest.mark.django_db(transaction=True)
def test_the_relay_reads_when_an_announcement_comes_and_not_before(announcing, publisher):
    async def scenario() -> None:
        subscription = Subscription(task_id="announced")
        async with relaying(subscription):
            first = await on_a_thread(lambda: announced_event("announced"))
            ids, took = await received(subscription, within=5)
            assert ids == [first] and took < 0.5
            quiet = await on_a_thread(lambda: quiet_event("announced"))
            assert (await received(subscription, within=1.5))[0] == []  # unannounced: not read yet
            subscription.task_id = None  # before the write: the relay may read it at once
            loud = await on_a_thread(lambda: announced_event("announced-too"))
            ids, took = await received(subscription, within=5)
            # The announcement woke the relay: both are read (with whatever else was written
            # meanwhile: the package's serve shares this database and writes events of its own).
            assert [event_id for event_id in ids if event_id in (quiet, loud)] == [quiet, loud] and took < 0.5

    run_apart(scenario)


@pytest.mark.django_db(transaction=True)
def test_a_lost_announcement_delays_an_event_by_the_fallback_poll_at_most(settings, publisher):
    settings.CHANNEL_LAYERS = layers(f"redis://127.0.0.1:{free_port()}/0")  # nobody listens there
    settings.TASKDECK = {**settings.TASKDECK, "EVENT_FALLBACK_POLL": 0.5}

    async def scenario() -> None:
        subscription = Subscription(task_id="lost")
        async with relaying(subscription):
            lost = await on_a_thread(lambda: announced_event("lost"))
            ids, took = await received(subscription, within=5)
            assert ids == [lost] and took < 1.0

    run_apart(scenario)


@pytest.mark.django_db(transaction=True)
def test_a_transaction_announces_once_with_its_newest_id_and_a_rollback_not_at_all(announcing, publisher):
    def write() -> int:
        task = make_task(id="many")
        run = Run(task_id=task.id, status=RunStatus.QUEUED)
        with transaction.atomic():
            outbox.emit_run_events([(EventName.QUEUED, run, "")] * 1000)  # a scheduler pass's worth
            outbox.emit_task_updated(task)
            outbox.emit_task_updated(task)
        with pytest.raises(ZeroDivisionError), transaction.atomic():
            outbox.emit_task_updated(task)
            1 / 0  # noqa: B018  a writer failing mid-transaction
        return Event.objects.latest("id").id

    async def scenario() -> None:
        heard: list[int | None] = []
        listener = announce.Listener(heard.append)
        listening = asyncio.create_task(listener.run())
        await listener.wait_tried(timeout=5)
        assert heard == [None]  # subscribed
        newest = await on_a_thread(write)
        await asyncio.sleep(1)  # time for any announcement (they take a millisecond) to arrive
        listening.cancel()
        await asyncio.wait({listening})
        assert heard == [None, newest]

    run_apart(scenario)


@pytest.mark.django_db(transaction=True)
def test_a_trigger_succeeds_while_redis_is_away(settings, publisher, caplog):
    settings.CHANNEL_LAYERS = layers(f"redis://127.0.0.1:{free_port()}/0")  # nobody listens there
    caplog.set_level(logging.INFO, logger="tasks_app.live.announce")
    task = make_task()
    run = services.trigger(task, source=RunTrigger.API, requested_by="test")
    run.refresh_from_db()
    assert run.enqueued_at is not None  # committed and handed over (a session's qcluster may have run it since)
    assert Event.objects.filter(run_id=run.id, name=EventName.QUEUED).exists()
    wait_until(lambda: "Could not announce new live events (ConnectionError" in caplog.text,
               what="the publisher to give up on Redis")
    services.trigger(task, source=RunTrigger.API, requested_by="test", force=True)  # and again, once it failed


@pytest.mark.django_db(transaction=True)
def test_a_relay_started_while_redis_is_away_hears_announcements_once_it_is_back(settings, publisher, caplog):
    port = free_port()
    settings.CHANNEL_LAYERS = layers(f"redis://127.0.0.1:{port}/0")
    settings.TASKDECK = {**settings.TASKDECK, "EVENT_FALLBACK_POLL": 30.0}
    caplog.set_level(logging.INFO, logger="tasks_app.live.announce")

    async def scenario() -> None:
        subscription = Subscription(task_id="back")
        started = time.monotonic()
        async with relaying(subscription):
            assert time.monotonic() - started < 0.5  # a client does not wait on a Redis that refuses
            assert "Not hearing live-event announcements (ConnectionError" in caplog.text
            server = start_redis(port)
            try:
                await asyncio.to_thread(wait_until, lambda: "Hearing live-event announcements again" in caplog.text,
                                        timeout=5, what="the listener to subscribe again")
                loud = await on_a_thread(lambda: announced_event("back"))
                ids, took = await received(subscription, within=5)
                assert ids == [loud] and took < 0.5
            finally:
                stop_redis(server)

    run_apart(scenario)


@pytest.mark.django_db(transaction=True)
def test_a_relay_hears_announcements_again_after_redis_restarts(settings, publisher):
    port = free_port()
    settings.CHANNEL_LAYERS = layers(f"redis://127.0.0.1:{port}/0")
    settings.TASKDECK = {**settings.TASKDECK, "EVENT_FALLBACK_POLL": 30.0}
    client = redis.Redis(port=port)
    group = f"taskdeck__group__{announce.GROUP}"  # how channels-redis names a group's channel

    def listeners() -> int:
        try:
            return dict(client.pubsub_numsub(group)).get(group.encode(), 0)
        except redis.ConnectionError:
            return 0

    async def scenario() -> None:
        servers = [start_redis(port)]
        subscription = Subscription(task_id="restart")
        try:
            async with relaying(subscription):
                stop_redis(servers.pop())
                servers.append(start_redis(port))
                await asyncio.to_thread(wait_until, listeners, timeout=10, what="the relay to subscribe again")
                loud = await on_a_thread(lambda: announced_event("restart"))
                ids, took = await received(subscription, within=5)
                # Heard, not polled (30 s): after a connection error channels-redis's receive loop
                # pauses a second before reading again (measured 0.95 s), hence not the usual 0.5.
                assert ids == [loud] and took < 2
        finally:
            for server in servers:
                stop_redis(server)
            client.close()

    run_apart(scenario)
