"""The brokers runs go to: Taskdeck's ORM broker (taken by deleting) and the Redis broker.

django-q2 freezes its configuration at import, so the Redis broker is exercised in child
processes: a qcluster and the `tasks run` command, both with REDIS_URL set.
"""
import sqlite3
import subprocess
import sys

import pytest
from django_q.brokers import get_broker
from django_q.models import OrmQ

from tasks_app import services
from tasks_app.queue import handoff
from tasks_app.db.deletes import delete_returning_ids
from tasks_app.queue.brokers import RunQueueBroker
from tasks_app.models import Run, RunTrigger

from ..conftest import ROOT, wait_until
from ..factories import make_task
from ..processes import Project


@pytest.fixture
def redis_url(tmp_path):
    socket_path = tmp_path / "redis.sock"
    server = subprocess.Popen(
        ["redis-server", "--port", "0", "--unixsocket", str(socket_path), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(socket_path.exists, what="redis-server's socket")
        yield f"unix://{socket_path}"
    finally:
        server.terminate()
        server.wait(10)


def redis_cli(url: str, *args: str) -> str:
    return subprocess.run(["redis-cli", "-s", url.removeprefix("unix://"), *args],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_runs_go_through_the_redis_broker_when_redis_url_is_set(tmp_path, process_env, redis_url):
    project = Project(tmp_path / "db.sqlite3", {**process_env, "REDIS_URL": redis_url})
    project.manage("migrate", "--noinput", "-v0")
    project.manage("tasks", "sync")
    run_id = project.manage("tasks", "run", "evaluate_rules", "--dry-run").stdout.strip()

    # No worker yet: the message waits in a Redis list, and nothing went to the ORM queue.
    [key] = redis_cli(redis_url, "keys", "*").splitlines()
    assert redis_cli(redis_url, "llen", key) == "1"
    with sqlite3.connect(project.database) as db:
        assert db.execute("select count(*) from django_q_ormq").fetchone() == (0,)

    cluster = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=project.env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until(lambda: project.show(run_id)["Status"] == "completed (success)", timeout=30, interval=0.2,
                   what="the run to complete through Redis")
    finally:
        cluster.terminate()
        cluster.wait(15)


# --- The ORM broker Taskdeck uses ------------------------- ---------------------------------


def queue_some(count: int) -> list[Run]:
    task = make_task(on_overlap="queue", max_concurrent=count)
    return [services.trigger(task, source=RunTrigger.API, requested_by="test") for _ in range(count)]


@pytest.mark.django_db
def test_the_broker_takes_messages_by_deleting_them_in_one_batch(settings):
    runs = queue_some(3)
    broker = get_broker()
    assert isinstance(broker, RunQueueBroker)
    assert handoff.pending_run_ids() == {str(run.pk) for run in runs}
    taken = broker.dequeue()
    assert len(taken) == 3 and not OrmQ.objects.exists()
    assert broker.acknowledge(taken[0][0]) is None


@pytest.mark.django_db
def test_two_clusters_never_take_the_same_message():
    queue_some(2)
    ids = list(OrmQ.objects.values_list("pk", flat=True))
    assert delete_returning_ids(OrmQ, ids, using="default") == set(ids)
    assert delete_returning_ids(OrmQ, ids, using="default") == set()
