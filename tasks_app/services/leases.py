"""Leases: one owner across hosts for what must run exactly once (models/leases.py).

A supervisor calls ``hold_leases`` with every name it wants to run, each pass: it keeps those it holds
(renewed), takes those nobody holds or whose holder let them expire (a dead supervisor stops
renewing; on its own host, one whose holder's process is gone is taken at once), and learns
which it newly took, whose previous holder's runs it must end first. Two
supervisors racing for one expired lease: the conditional UPDATE lets exactly one win (on
PostgreSQL the loser's UPDATE waits for the winner's row lock, then finds the lease no longer
expired; on SQLite writers go one at a time).
"""
from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q

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


@retry_on_conflict
def hold_leases(names: Collection[str], *, owner: Owner, ttl: float) -> Held:
    """Renew ``owner``'s leases among ``names`` and take the free and expired ones, for ``ttl`` s."""
    if not names:
        return Held(frozenset(), frozenset())
    now = clock.now()
    expires = now + timedelta(seconds=ttl)
    names = list(names)
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
