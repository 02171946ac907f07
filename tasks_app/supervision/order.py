"""The order services start and stop in: dependencies first at boot, dependents first at
shutdown (API.md "Services": Boot)."""
from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from tasks_app.supervision.owned import Instance


def shutdown_levels(instances: Iterable[Instance]) -> list[list[Instance]]:
    """Instances grouped by how deep their service sits in the dependency graph: level 0 depends
    on nothing here, level n on something of level n-1. Boot goes up the levels; shutdown down."""
    instances = list(instances)
    by_task: dict[str, list[Instance]] = {}
    for instance in instances:
        by_task.setdefault(instance.task_id, []).append(instance)
    depth: dict[str, int] = {}

    def depth_of(task_id: str, seen: frozenset[str] = frozenset()) -> int:
        if task_id not in depth:
            deps = [dep for dep in by_task[task_id][0].dependencies if dep in by_task and dep not in seen]
            depth[task_id] = 1 + max((depth_of(dep, seen | {task_id}) for dep in deps), default=-1)
        return depth[task_id]

    levels: list[list[Instance]] = []
    for task_id, members in by_task.items():
        level = depth_of(task_id)
        while len(levels) <= level:
            levels.append([])
        levels[level].extend(members)
    return levels


def boot_wait(instance: Instance, *, healthy_services: Collection[str], healthy_after: Mapping[str, float],
              now: float) -> str | None:
    """At boot, an instance waits for each service it depends on to be healthy, at most that
    service's healthy_after + 5 s (API.md). None: it waits; else what to note in its log before it
    starts ('' when nothing)."""
    if instance.booted:
        return ""
    unmet = [task_id for task_id in instance.dependencies if task_id not in healthy_services]
    if not unmet:
        return ""
    if instance.boot_deadline is None:
        instance.boot_deadline = now + max(healthy_after.get(task_id, 10.0) for task_id in unmet) + 5
    if now < instance.boot_deadline:
        return None
    return (f"[taskdeck: started without waiting any longer for {', '.join(unmet)}: not healthy "
            "within its healthy_after + 5 s]\n")
