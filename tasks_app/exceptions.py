"""Taskdeck's exceptions. Services raise them; each interface renders them its own way.

    TaskdeckError
    ├── DefinitionError            a task definition is invalid (start-up fails, naming task + field)
    ├── ImportFileError            a file to import is not what its importer reads (names the file)
    ├── NotFound (404)
    │   ├── TaskNotFound           task-not-found
    │   └── RunNotFound            run-not-found
    ├── BadRequest (400)
    │   ├── InvalidParameters      invalid-parameters (with errors[])
    │   ├── DryRunUnsupported      dry-run-unsupported
    │   ├── NotRunning             not-running
    │   ├── CancelUnsupported      cancel-unsupported
    │   ├── RunAlreadyEnded        run-ended
    │   ├── NotIntervalScheduled   not-interval-scheduled
    │   ├── NotCronScheduled       not-cron-scheduled
    │   ├── InvalidSchedule        invalid-schedule (with errors[])
    │   ├── InvalidQuery           invalid-query (with errors[])
    │   └── InvalidText            invalid-text (with errors[])
    ├── RequestTooLarge (413)      request-too-large
    ├── Conflict (409)
    │   ├── AlreadyRunning         already-running
    │   ├── QueueFull              queue-full
    │   ├── TaskDisabled           task-disabled
    │   ├── NotManuallyRunnable    not-manually-runnable
    │   ├── TaskRemoved            task-removed
    │   ├── RunActive              run-active
    │   ├── UseRestart             use-restart (a service is not run: it is started, stopped, restarted)
    │   ├── NotAService            not-a-service
    │   └── TaskOfAnotherSource    task-of-another-source (an import would overwrite a task declared elsewhere)
    └── DatabaseUnavailable (503)  database-unavailable (the database refused to read or write)

Each class carries a problem ``slug``, an HTTP ``status`` and a ``title``: the API renders them
as RFC 9457 problem documents, the admin as messages, commands as one-line CommandErrors.
"""
from __future__ import annotations

from typing import Any


class TaskdeckError(Exception):
    slug = "taskdeck-error"
    status = 500
    title = "Taskdeck error"

    def __init__(self, detail: str = "", *, errors: list[dict[str, Any]] | None = None) -> None:
        self.detail = detail or self.title
        self.errors = errors or []
        super().__init__(self.detail)


class DefinitionError(TaskdeckError):
    """A task definition (decorator or definitions file) has a bad field."""

    slug = "invalid-definition"
    title = "Invalid task definition"

    def __init__(self, task_id: str, field: str, message: str) -> None:
        self.task_id = task_id
        self.field = field
        self.message = message  # the clause alone, for a form that shows it beside the field
        super().__init__(f"Task {task_id!r}: field {field!r}: {message}")


class ImportFileError(TaskdeckError):
    """A compose file, crontab or supervisord configuration that its importer cannot read, or that
    says something its own program would refuse; the message names the file and where in it."""

    slug = "invalid-import"
    title = "File cannot be imported"

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}")


class NotFound(TaskdeckError):
    status = 404
    slug = "not-found"
    title = "Not found"


class TaskNotFound(NotFound):
    slug = "task-not-found"
    title = "Task not found"


class RunNotFound(NotFound):
    slug = "run-not-found"
    title = "Run not found"


class BadRequest(TaskdeckError):
    status = 400
    slug = "bad-request"
    title = "Bad request"


class InvalidParameters(BadRequest):
    slug = "invalid-parameters"
    title = "Invalid parameters"


class DryRunUnsupported(BadRequest):
    slug = "dry-run-unsupported"
    title = "Dry run not supported"


class NotRunning(BadRequest):
    slug = "not-running"
    title = "Task not running"


class CancelUnsupported(BadRequest):
    slug = "cancel-unsupported"
    title = "Cancel not supported"


class RunAlreadyEnded(BadRequest):
    slug = "run-ended"
    title = "Run already ended"


class NotIntervalScheduled(BadRequest):
    slug = "not-interval-scheduled"
    title = "Task not interval-scheduled"


class NotCronScheduled(BadRequest):
    slug = "not-cron-scheduled"
    title = "Task not cron-scheduled"


class InvalidSchedule(BadRequest):
    """A cron string, time zone or interval that cannot schedule a task; errors[] names it."""

    slug = "invalid-schedule"
    title = "Invalid schedule"


class InvalidQuery(BadRequest):
    slug = "invalid-query"
    title = "Invalid query parameters"


class InvalidText(BadRequest):
    """Text that cannot be stored: a lone UTF-16 surrogate or a NUL character; errors[] names it."""

    slug = "invalid-text"
    title = "Text that cannot be stored"


class RequestTooLarge(TaskdeckError):
    """The request body is larger than the API accepts (1 MiB)."""

    status = 413
    slug = "request-too-large"
    title = "Request too large"


class DatabaseUnavailable(TaskdeckError):
    """The database refused the request (full disk, read-only, locked or unreachable); try again later.

    Nothing was changed. Retry-After says when to try again.
    """

    status = 503
    slug = "database-unavailable"
    title = "Database unavailable"


class Conflict(TaskdeckError):
    status = 409
    slug = "conflict"
    title = "Conflict"


class AlreadyRunning(Conflict):
    slug = "already-running"
    title = "Task already running"


class NotAService(Conflict):
    """Only service tasks start, stop and restart; this task is of another kind (run or cancel it instead)."""

    slug = "not-a-service"
    title = "Not a service"


class QueueFull(Conflict):
    slug = "queue-full"
    title = "Task queue full"


class TaskDisabled(Conflict):
    slug = "task-disabled"
    title = "Task disabled"


class NotManuallyRunnable(Conflict):
    slug = "not-manually-runnable"
    title = "Task cannot be run manually"


class TaskRemoved(Conflict):
    slug = "task-removed"
    title = "Task removed"


class RunActive(Conflict):
    slug = "run-active"
    title = "Run still active"


class UseRestart(Conflict):
    """A service is kept running by its supervisor: start, stop or restart it, never run it.

    Each instance's lifetime is a run the supervisor starts (POST /api/tasks/{id}/start, /stop,
    /restart); a run on demand would be one more process beside the instances it keeps.
    """

    slug = "use-restart"
    title = "Use restart for a service"


class TaskOfAnotherSource(Conflict):
    """An import would write a task whose id belongs to another source (code, the definitions
    file, the admin or another importer); nothing is written."""

    slug = "task-of-another-source"
    title = "Task declared elsewhere"
