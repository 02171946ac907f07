"""Test data: make_task(**overrides) builds a complete, valid task row; make_run(task, ...) a run row;
write_log(run, data) stores a run's log as its writer would have."""
from __future__ import annotations

import itertools
from typing import Any

from tasks_app import clock
from tasks_app.models import (
    STATUS_FOR_REASON,
    DefinitionSource,
    Run,
    RunLogChunk,
    RunTrigger,
    Task,
    TaskKind,
)
from tasks_app.parameters import normalize_spec

_ids = itertools.count(1)


def make_task(**overrides: Any) -> Task:
    task_id = overrides.pop("id", f"task_{next(_ids)}")
    fields: dict[str, Any] = {
        "title": task_id.replace("_", " ").capitalize(),
        "kind": TaskKind.PYTHON,
        "callable": "tests.sample_tasks.noop",
        "source": DefinitionSource.ADMIN,
        "timeout": 60,
    }
    fields.update(overrides)
    fields["parameters"] = normalize_spec(task_id, fields.get("parameters", []), tokens=fields["kind"] == TaskKind.COMMAND)
    return Task.objects.create(id=task_id, **fields)


def make_service(*, process: dict[str, Any] | None = None, **overrides: Any) -> Task:
    """A service task row as the definitions sync writes one: ``process`` (the fields as a
    definitions file gives them; ``sleep infinity`` when none) checked and completed."""
    from tasks_app.definitions.service import check_service

    settings = check_service(overrides.get("id", "service"), process or {"argv": ["sleep", "infinity"]})
    return make_task(**{"kind": TaskKind.SERVICE, "callable": "", "manual_run": False, "timeout": None,
                        "process": settings, **overrides})


def number(key: str, default: float | None = None) -> dict[str, Any]:
    return {"key": key, "type": "number", "default": default}


def string(key: str, default: str = "", **extra: Any) -> dict[str, Any]:
    return {"key": key, "type": "string", "default": default, **extra}


def make_run(task: Task, *, end_reason: str = "", **overrides: Any) -> Run:
    """A run row written directly (no queue, no worker): ended with ``end_reason``, else queued."""
    fields: dict[str, Any] = {"trigger": RunTrigger.MANUAL, "created_at": clock.now()}
    if end_reason:
        fields.update(status=STATUS_FOR_REASON[end_reason], end_reason=end_reason,
                      started_at=fields["created_at"], ended_at=fields["created_at"])
    fields.update(overrides)
    return Run.objects.create(task=task, **fields)


def write_log(run: Run, data: bytes | str, *, at: int = 0, chunk_size: int = 1024 * 1024) -> Run:
    """``data`` into ``run``'s log from offset ``at``, in chunks of ``chunk_size`` bytes: after what
    it holds (its size), or, for a log that holds nothing, after ``at`` bytes its cap dropped."""
    data = data.encode() if isinstance(data, str) else data
    RunLogChunk.objects.bulk_create(
        RunLogChunk(run=run, start=at + index, end=at + index + len(data[index:index + chunk_size]),
                    data=data[index:index + chunk_size])
        for index in range(0, len(data), chunk_size))
    return run


def log_of(run: Run) -> tuple[int, bytes, int]:
    """A run's stored log: the bytes dropped from its head, the bytes kept, and its size."""
    from tasks_app import selectors

    piece = selectors.read_log(run.pk, offset=0, limit=2**62)
    assert piece is not None, f"run {run.pk} is gone"
    return piece.dropped, piece.data, piece.size
