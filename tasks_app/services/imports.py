"""Tasks brought in by the importers (``manage.py import_compose``, ``import_crontab``,
``import_supervisord``): written to the Task table with their source, beside the declared ones.

An import owns the tasks of its source and nothing else: it creates them, updates them in place
(keeping what an operator changed, as the definitions sync does), and refuses, before writing
anything, an id that belongs to another source. It never removes a task: one imported before and
gone from the file is the importer's to report (``selectors.imported_tasks``) and the operator's
to delete. The definitions sync, for its part, never touches an imported task (it removes only
code and file tasks).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.db import transaction

from tasks_app import clock
from tasks_app.db.locks import retry_on_conflict
from tasks_app.exceptions import TaskOfAnotherSource
from tasks_app.live import outbox
from tasks_app.models import DefinitionSource, Task
from tasks_app.services.tasks import write_definition

#: The sources an importer writes (models.DefinitionSource).
IMPORT_SOURCES = (DefinitionSource.COMPOSE, DefinitionSource.CRONTAB, DefinitionSource.SUPERVISORD)

#: What became of an imported definition.
CREATED, UPDATED, UNCHANGED = "created", "updated", "unchanged"


@retry_on_conflict
def import_definitions(definitions: Iterable[Mapping[str, Any]], *, source: str) -> dict[str, str]:
    """Write imported ``definitions`` (each built by ``build_definition`` with this ``source``)
    and say what became of each id, in the order given: ``created``, ``updated`` in place, or
    ``unchanged`` (declared as the task already holds it; nothing written, nothing announced).

    All or nothing: an id held by a task of another source raises TaskOfAnotherSource naming the
    first such id and its source, and nothing is written. Each task written is announced
    (task:updated), so an admin page or a live client sees it; a supervisor starts a new service at
    its next look, and a changed one's running instances use the change from their next start.
    """
    declared = {definition["id"]: dict(definition) for definition in definitions}
    if source not in IMPORT_SOURCES:
        raise ValueError(f"not an import source: {source!r}")
    stray = [task_id for task_id, definition in declared.items() if definition.get("source") != source]
    if stray:
        raise ValueError(f"definition {stray[0]!r} was not built with source {source!r}")
    outcome: dict[str, str] = {}
    now = clock.now()
    with transaction.atomic():
        existing = {task.pk: task for task in Task.objects.select_for_update().filter(pk__in=declared)}
        for task_id in declared:
            task = existing.get(task_id)
            if task is not None and task.source != source:
                raise TaskOfAnotherSource(
                    f"Task {task_id!r} already exists, from {DefinitionSource(task.source).label.lower()} "
                    f"(source {task.source}); an import of source {source} does not overwrite it.")
        for task_id, definition in declared.items():
            task = existing.get(task_id)
            values = {key: value for key, value in definition.items() if key != "id"}
            if task is not None and task.removed_at is None and task.definition == values:
                outcome[task_id] = UNCHANGED
                continue
            written = write_definition(task, definition, now=now)
            outcome[task_id] = CREATED if task is None else UPDATED
            outbox.emit_task_updated(written, message=f"Task {outcome[task_id]} by an import ({source})")
    return outcome
