"""The hand-off: what a trigger sends (seen through the fake broker), what waits, and sending
again what was lost (services.redeliver_lost_runs, services.rebuild_queue read it from here)."""
import pytest
from django.db import transaction
from django_q.models import OrmQ

from tasks_app import queue, services
from tasks_app.models import Run, RunStatus, RunTrigger
from tasks_app.queue.brokers import FakeRunBroker

from ..factories import make_task


def queue_some(count: int) -> list[Run]:
    task = make_task(on_overlap="queue", max_concurrent=count)
    return [services.trigger(task, source=RunTrigger.API, requested_by="test") for _ in range(count)]


def run_ids(broker: FakeRunBroker) -> set[str]:
    with queue.using_broker(broker):
        return queue.pending_run_ids()


@pytest.mark.django_db(transaction=True)
def test_a_committed_trigger_sends_its_run_and_a_rolled_back_one_sends_nothing():
    task = make_task()
    with queue.using_broker(FakeRunBroker()) as broker:
        run = services.trigger(task, source=RunTrigger.API, requested_by="test")
        with pytest.raises(RuntimeError), transaction.atomic():
            services.trigger(task, source=RunTrigger.API, requested_by="test", force=True)
            raise RuntimeError("the caller's transaction fails after the trigger")
    assert len(broker.sent) == 1
    assert run_ids(broker) == {str(run.pk)}
    assert Run.objects.count() == 1 and not OrmQ.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_held_runs_are_sent_only_as_slots_free_up():
    task = make_task(on_overlap="queue", max_concurrent=2, queue_max=10)
    with queue.using_broker(FakeRunBroker()) as broker:
        runs = [services.trigger(task, source=RunTrigger.API, requested_by="test") for _ in range(4)]
        assert run_ids(broker) == {str(runs[0].pk), str(runs[1].pk)}
        assert services.claim_run(runs[0].pk, task_id=task.pk) is not None
        services.finish_run(runs[0].pk, reason="success")
    assert run_ids(broker) == {str(runs[0].pk), str(runs[1].pk), str(runs[2].pk)}
    assert Run.objects.get(pk=runs[3].pk).enqueued_at is None  # still held


@pytest.mark.django_db
def test_a_package_signed_with_another_key_is_left_alone(settings):
    broker = FakeRunBroker()
    broker.sent.append("not-a-signed-package")
    assert run_ids(broker) == set()


@pytest.mark.django_db
def test_a_lost_message_is_sent_again_once_it_is_stale(clock):
    lost, waiting = queue_some(2)
    OrmQ.objects.filter(pk=OrmQ.objects.order_by("pk").first().pk).delete()  # taken by a cluster that died
    assert queue.pending_run_ids() == {str(waiting.pk)}
    assert services.redeliver_lost_runs(older_than=300) == []  # not stale yet
    clock.advance(seconds=301)
    [sent] = services.redeliver_lost_runs(older_than=300)
    assert sent.pk == lost.pk
    assert queue.pending_run_ids() == {str(lost.pk), str(waiting.pk)}
    lost.refresh_from_db()
    assert lost.enqueued_at == clock.now() and lost.status == RunStatus.QUEUED
    assert services.redeliver_lost_runs(older_than=300) == []


@pytest.mark.django_db
def test_rebuilding_the_queue_sends_every_admitted_run_once():
    runs = queue_some(3)
    queue.purge()
    OrmQ.objects.all().delete()
    assert services.rebuild_queue() == 3
    assert queue.pending_run_ids() == {str(run.pk) for run in runs}
    assert OrmQ.objects.count() == 3
