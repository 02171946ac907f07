"""django-q2's signals and admin pages, as Taskdeck wants them."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django_q.signals import post_spawn


def on_worker_start(callback: Callable[[], None]) -> None:
    """Call ``callback`` in each worker process django-q2 starts (its post_spawn signal)."""

    def receiver(**kwargs: object) -> None:
        callback()

    post_spawn.connect(receiver, weak=False, dispatch_uid=f"taskdeck-{callback.__module__}.{callback.__qualname__}")


def hide_queue_admin(site: Any) -> None:
    """Take django-q2's own admin pages off ``site``: its schedules would fire any dotted function
    with any arguments (a staff user could define a shell command that way), and its queue and
    result lists show packages, not runs. Taskdeck's task and run pages replace them."""
    from django_q import models as queue_models

    for model in (queue_models.Schedule, queue_models.Success, queue_models.Failure, queue_models.OrmQ):
        if site.is_registered(model):
            site.unregister(model)
