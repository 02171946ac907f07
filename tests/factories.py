"""Test data: make_task(**overrides) builds a complete, valid task row; make_run(task, ...) a run row."""
from __future__ import annotations

import itertools
from typing import Any

from tasks_app import clock
from tasks_app.models import (
    STATUS_FOR_REASON,
    DefinitionSource,
    Run,
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
    fields["parameters"] = normalize_spec(task_id, fields.get("parameters", []))
    return Task.objects.create(id=task_id, **fields)


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
