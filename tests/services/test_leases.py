"""services/leases.py: one holder per name; a live holder keeps it, an expired one or a dead one
on this host loses it; what a call newly took is reported."""
import subprocess
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tasks_app import services
from tasks_app.models import Lease
from tasks_app.services.leases import Owner

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def test_the_first_holder_keeps_a_lease_until_it_expires_then_another_takes_it(clock):
    first = Owner("host-a", 100, "a")
    second = Owner("host-b", 200, "b")
    held = services.hold_leases(["service:x:0", "service:x:1"], owner=first, ttl=30)
    assert held.names == held.taken == {"service:x:0", "service:x:1"}
    assert services.hold_leases(["service:x:0"], owner=second, ttl=30).names == set()

    clock.advance(seconds=20)
    renewed = services.hold_leases(["service:x:0"], owner=first, ttl=30)  # renews only what it asks for
    assert renewed.names == {"service:x:0"} and renewed.taken == set()
    clock.advance(seconds=15)  # x:1 expired 5 s ago, x:0 has 15 s left
    took = services.hold_leases(["service:x:0", "service:x:1"], owner=second, ttl=30)
    assert took.names == took.taken == {"service:x:1"}
    assert Lease.objects.get(name="service:x:1").owner == second.name
    assert services.hold_leases(["service:x:1"], owner=first, ttl=30).names == set()


def test_a_dead_holder_on_this_host_loses_its_leases_at_once():
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = Owner(services.HOSTNAME, gone.pid, "dead")
    services.hold_leases(["service:y:0"], owner=dead, ttl=30)
    heir = Owner(services.HOSTNAME, 1, "heir")  # pid 1 lives
    assert services.hold_leases(["service:y:0"], owner=heir, ttl=30).taken == {"service:y:0"}
    late = Owner(services.HOSTNAME, gone.pid + 1, "late")
    assert services.hold_leases(["service:y:0"], owner=late, ttl=30).names == set()  # the heir (pid 1) lives


def test_a_released_lease_is_free_for_the_next_at_once():
    first, second = Owner("host-a", 100, "a"), Owner("host-b", 200, "b")
    services.hold_leases(["service:z:0"], owner=first, ttl=30)
    services.release_leases(["service:z:0"], owner=second)  # not its own: nothing happens
    assert Lease.objects.get().owner == first.name
    services.release_leases(["service:z:0"], owner=first)
    assert services.hold_leases(["service:z:0"], owner=second, ttl=30).taken == {"service:z:0"}


def test_a_holder_writes_only_once_a_third_of_the_ttl_has_passed(clock):
    """A supervisor looks every second: while its leases are fresh and nothing is free, a look
    reads and writes nothing."""
    holder, other = Owner("host-a", 100, "a"), Owner("host-b", 200, "b")
    services.hold_leases(["service:w:0"], owner=other, ttl=30)
    services.hold_leases(["service:w:1", "service:w:2"], owner=holder, ttl=30)
    first_expiry = Lease.objects.get(name="service:w:1").expires_at

    clock.advance(seconds=9)
    with CaptureQueriesContext(connection) as queries:
        held = services.hold_leases(["service:w:0", "service:w:1", "service:w:2"], owner=holder, ttl=30)
    assert held.names == {"service:w:1", "service:w:2"} and held.taken == set()
    writes = [query["sql"] for query in queries if not query["sql"].lstrip().upper().startswith("SELECT")]
    assert writes == [] and Lease.objects.get(name="service:w:1").expires_at == first_expiry

    clock.advance(seconds=2)  # 11 s: past a third of 30
    services.hold_leases(["service:w:1", "service:w:2"], owner=holder, ttl=30)
    assert {lease.expires_at for lease in Lease.objects.filter(owner=holder.name)} == {first_expiry + timedelta(seconds=11)}
