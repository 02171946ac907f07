"""Leases: one owner across hosts for what must run exactly once (models/leases.py).

A supervisor calls ``hold_leases`` with every name it wants to run, each pass: it keeps those it holds
(renewed), takes those nobody holds or whose holder let them expire (a dead supervisor stops
renewing; on its own host, one whose holder's process is gone is taken at once), and learns
which it newly took, whose previous holder's runs it must end first. Two
supervisors racing for one expired lease: the conditional UPDATE lets exactly one win (on
PostgreSQL the loser's UPDATE waits for the winner's row lock, then finds the lease no longer
expired; on SQLite writers go one at a time).

A pass is a read, and only a read, while nothing is to be taken and the holder's leases are
fresh: they are renewed once a third of ``ttl`` has passed (``RENEW_AFTER``), all together. A
supervisor looks every second; writing each look cost 200 idle instances a few % of a core. So
a holder that stalls for more than two thirds of ``ttl`` may lose what it holds (30 s: 20 s).
"""
from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import BooleanField, ExpressionWrapper, Q

from tasks_app import clock
from tasks_app.db.locks import retry_on_conflict
from tasks_app.models import Lease
from tasks_app.platform import children


@dataclass(frozen=True)
class Owner:
    """A supervisor process as leases know it: ``token`` tells apart two processes that had the
    same pid on one host."""

    host: str
    pid: int
    token: str

    @property
    def name(self) -> str:
        return f"{self.host}:{self.pid}:{self.token}"


@dataclass(frozen=True)
class Held:
    names: frozenset[str]
    """Every name of those asked for that ``owner`` holds now."""
    taken: frozenset[str]
    """Those it did not hold before this call (free, expired, or never held)."""


#: The part of a lease's ``ttl`` after which its holder renews it.
RENEW_AFTER = 1 / 3


def hold_leases(names: Collection[str], *, owner: Owner, ttl: float) -> Held:
    """Renew ``owner``'s leases among ``names`` when due and take the free and expired ones, for
    ``ttl`` s. Reads only, when nothing is due."""
    if not names:
        return Held(frozenset(), frozenset())
    now = clock.now()
    wanted = set(names)
    renew_by = now + timedelta(seconds=ttl * (1 - RENEW_AFTER))
    mine = dict(Lease.objects.filter(owner=owner.name).annotate(
        due=ExpressionWrapper(Q(expires_at__lte=renew_by), output_field=BooleanField())).values_list("name", "due"))
    held = wanted & set(mine)
    if held != wanted and _takeable(wanted - held, owner=owner, now=now):
        return _take_and_renew(list(wanted), owner=owner, ttl=ttl)
    if any(mine[name] for name in held):
        renewed = Lease.objects.filter(name__in=held, owner=owner.name).update(expires_at=now + timedelta(seconds=ttl))
        if renewed < len(held):  # one expired and was taken meanwhile
            held &= set(Lease.objects.filter(name__in=held, owner=owner.name).values_list("name", flat=True))
    return Held(frozenset(held), frozenset())  # what it does not hold, live others do


def _takeable(names: set[str], *, owner: Owner, now) -> bool:
    """Whether any of ``names`` is free, expired, or held by a dead supervisor of this host."""
    present = {name: (host, pid, expired) for name, host, pid, expired in Lease.objects.filter(name__in=names).annotate(
        expired=ExpressionWrapper(Q(expires_at__lte=now), output_field=BooleanField())).values_list(
            "name", "host", "pid", "expired")}
    if len(present) < len(names):
        return True
    return any(expired or (host == owner.host and not children.alive(pid)) for host, pid, expired in present.values())


@retry_on_conflict
def _take_and_renew(names: list[str], *, owner: Owner, ttl: float) -> Held:
    now = clock.now()
    expires = now + timedelta(seconds=ttl)
    with transaction.atomic():
        before = set(Lease.objects.filter(name__in=names, owner=owner.name).values_list("name", flat=True))
        present = set(Lease.objects.filter(name__in=names).values_list("name", flat=True))
        for name in names:
            if name not in present:
                try:
                    with transaction.atomic():
                        Lease.objects.create(name=name, owner=owner.name, host=owner.host, pid=owner.pid,
                                             acquired_at=now, expires_at=expires)
                except IntegrityError:
                    pass  # another supervisor created it first
        Lease.objects.filter(name__in=before, owner=owner.name).update(expires_at=expires)
        gone = _dead_neighbours(names, owner=owner)
        Lease.objects.filter(Q(name__in=names) & (Q(expires_at__lte=now) | Q(owner__in=gone)) & ~Q(owner=owner.name)).update(
            owner=owner.name, host=owner.host, pid=owner.pid, acquired_at=now, expires_at=expires)
        held = set(Lease.objects.filter(name__in=names, owner=owner.name).values_list("name", flat=True))
    return Held(frozenset(held), frozenset(held - before))


def _dead_neighbours(names: list[str], *, owner: Owner) -> list[str]:
    """Holders of some of ``names`` on ``owner``'s host whose process is gone: no need to wait for
    their leases to expire (a supervisor restarted by serve takes its instances back at once)."""
    holders = (Lease.objects.filter(name__in=names, host=owner.host).exclude(owner=owner.name)
               .values_list("owner", "pid").distinct())
    return [holder for holder, pid in holders if not children.alive(pid)]


def release_leases(names: Collection[str], *, owner: Owner) -> None:
    """Give up ``owner``'s leases among ``names`` (an instance it stopped): another supervisor
    may take them at once."""
    if names:
        Lease.objects.filter(name__in=list(names), owner=owner.name).delete()
