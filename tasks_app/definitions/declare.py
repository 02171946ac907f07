"""``@task``: python tasks declared in code, collected per process as admin.site collects ModelAdmins."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tasks_app.definitions.validate import build_definition
from tasks_app.exceptions import DefinitionError
from tasks_app.models import DefinitionSource, TaskKind


class CodeRegistry:
    """The @task declarations of this process, by task id (like admin.site for ModelAdmins)."""

    def __init__(self) -> None:
        self._definitions: dict[str, dict[str, Any]] = {}

    def add(self, definition: dict[str, Any]) -> None:
        task_id = definition["id"]
        existing = self._definitions.get(task_id)
        if existing and existing["callable"] != definition["callable"]:
            raise DefinitionError(
                task_id, "id", f"declared twice ({existing['callable']} and {definition['callable']})"
            )
        self._definitions[task_id] = definition

    def definitions(self) -> list[dict[str, Any]]:
        return list(self._definitions.values())


code_registry = CodeRegistry()


def task(func: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Declare a python task: ``@task`` or ``@task(title=..., cron_string=..., timeout=...)``.

    The function takes the run context ``ctx``; its JSON-serialisable return value becomes the
    run's result. The id defaults to the function's name.
    """

    def register(function: Callable[..., Any]) -> Callable[..., Any]:
        fields = dict(options)
        task_id = fields.pop("id", function.__name__)
        fields.setdefault("title", function.__name__.replace("_", " ").capitalize())
        if function.__doc__ and "description" not in fields:
            fields["description"] = function.__doc__.strip()
        fields["kind"] = TaskKind.PYTHON.value
        fields["callable"] = f"{function.__module__}.{function.__qualname__}"
        code_registry.add(build_definition(task_id, fields, source=DefinitionSource.CODE, resolve=False))
        return function

    if func is not None:
        return register(func)
    return register
