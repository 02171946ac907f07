"""Input and output serializers: one output serializer per contract object (API.md)."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from tasks_app import parameters
from tasks_app.api.processes import SERVICE_STATES, InstanceSerializer, ProcessSerializer
from tasks_app.api.watchers import WatcherSerializer, watcher_object
from tasks_app.definitions.service import SERVICE_FIELDS
from tasks_app.models import (
    POLICY_FIELDS,
    Activity,
    CatchUp,
    EndReason,
    IntervalUnit,
    OverlapPolicy,
    RetryBackoff,
    Run,
    RunStatus,
    RunTrigger,
    Task,
    TaskKind,
    TaskStatus,
    TaskTrigger,
)
from tasks_app.scheduling import rules

#: A task's status (API.md): derived from its runs, not stored. Removed tasks are not in the API.
TASK_STATUSES = [status for status in TaskStatus.values if status != TaskStatus.REMOVED]



class ProblemErrorSerializer(serializers.Serializer):
    location = serializers.CharField()
    message = serializers.CharField()
    value = serializers.JSONField(required=False, allow_null=True)


class ProblemSerializer(serializers.Serializer):
    type = serializers.CharField()
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
    instance = serializers.CharField()
    errors = ProblemErrorSerializer(many=True, required=False)


PARAMETER_FIELDS = ("key", "type", "kind", "required", "default", "choices", "allow_custom", "description")


class ParameterSerializer(serializers.Serializer):
    key = serializers.CharField()
    type = serializers.ChoiceField(choices=parameters.TYPES)
    kind = serializers.ChoiceField(choices=parameters.KINDS)
    required = serializers.BooleanField()
    default = serializers.JSONField(allow_null=True)
    choices = serializers.ListField(child=serializers.JSONField())
    allow_custom = serializers.BooleanField()
    description = serializers.CharField(allow_blank=True)


class PolicySerializer(serializers.Serializer):
    on_overlap = serializers.ChoiceField(choices=OverlapPolicy.choices)
    max_concurrent = serializers.IntegerField()
    queue_max = serializers.IntegerField()
    timeout = serializers.FloatField(allow_null=True)
    retry_attempts = serializers.IntegerField()
    retry_backoff = serializers.ChoiceField(choices=RetryBackoff.choices)
    retry_delay = serializers.FloatField()
    catch_up = serializers.ChoiceField(choices=CatchUp.choices)
    max_catch_up_runs = serializers.IntegerField()
    jitter = serializers.FloatField()
    keep_runs = serializers.IntegerField()
    keep_for = serializers.FloatField()
    run_on_start = serializers.BooleanField()


class TaskSerializer(serializers.ModelSerializer):
    """The Task object. Pass ``context={"statuses": {task_id: status}, "services": {...},
    "watchers": {...}}`` (``selectors.task_statuses``, ``selectors.service_states``,
    ``selectors.watcher_states``) to avoid queries per task."""

    trigger = serializers.ChoiceField(choices=TaskTrigger.choices, read_only=True)
    interval = serializers.SerializerMethodField()
    interval_unit = serializers.SerializerMethodField()
    default_interval = serializers.SerializerMethodField()
    status = serializers.SerializerMethodField()
    parameters = ParameterSerializer(many=True, read_only=True)
    policy = serializers.SerializerMethodField()
    process = serializers.SerializerMethodField()
    service_state = serializers.SerializerMethodField()
    instances = serializers.SerializerMethodField()
    watcher = serializers.SerializerMethodField()

    class Meta:
        model = Task
        fields = (
            "id", "title", "description", "type", "kind", "trigger", "enabled", "manual_run", "cron_string",
            "timezone", "interval", "interval_unit", "default_interval", "last_run_at", "next_run_at", "status",
            "supports_cancel", "supports_history", "supports_dry_run", "parameters", "policy", "process",
            "service_state", "instances", "watcher",
        )
        read_only_fields = fields  # an output serializer: every field is always there

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_interval(self, task: Task) -> int | None:
        return task.interval if task.interval else None

    @extend_schema_field(serializers.ChoiceField(choices=IntervalUnit.choices, allow_null=True))
    def get_interval_unit(self, task: Task) -> str | None:
        return (task.interval_unit or IntervalUnit.MINUTES) if task.interval else None

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_default_interval(self, task: Task) -> int | None:
        return task.default_interval if task.interval else None

    @extend_schema_field(serializers.ChoiceField(choices=TASK_STATUSES))
    def get_status(self, task: Task) -> str:
        from tasks_app import selectors

        statuses = self.context.get("statuses")
        return statuses[task.pk] if statuses and task.pk in statuses else selectors.task_status(task)

    @extend_schema_field(PolicySerializer)
    def get_policy(self, task: Task) -> dict[str, Any]:
        return {name: getattr(task, name) for name in POLICY_FIELDS}

    def _service(self, task: Task) -> tuple[str, list[dict[str, Any]]] | None:
        from tasks_app import selectors

        if task.kind != TaskKind.SERVICE:
            return None
        known = self.context.get("services")
        if known is None or task.pk not in known:
            known = selectors.service_states([task])
        return known[task.pk]

    @extend_schema_field(serializers.ChoiceField(choices=SERVICE_STATES, allow_null=True))
    def get_service_state(self, task: Task) -> str | None:
        """A service's roll-up state; null for other kinds."""
        service = self._service(task)
        return service[0] if service else None

    @extend_schema_field(InstanceSerializer(many=True, allow_null=True))
    def get_instances(self, task: Task) -> list[dict[str, Any]] | None:
        service = self._service(task)
        return InstanceSerializer(service[1], many=True).data if service else None

    @extend_schema_field(WatcherSerializer(allow_null=True))
    def get_watcher(self, task: Task) -> dict[str, Any] | None:
        return watcher_object(task, known=self.context.get("watchers"))

    @extend_schema_field(ProcessSerializer(allow_null=True))
    def get_process(self, task: Task) -> dict[str, Any] | None:
        """A command or service task's settings as stored, a command's service fields null; null
        for python and watcher tasks (API.md)."""
        if task.kind not in (TaskKind.COMMAND, TaskKind.SERVICE) or task.process is None:
            return None
        settings = dict(task.process)
        for name in SERVICE_FIELDS:
            settings.setdefault(name, None)
        return settings

    def to_representation(self, task: Task) -> dict[str, Any]:
        """The fields above, written out: building a ModelSerializer's fields costs more than the
        queries behind a task. tests/api/test_serializers.py holds it equal to DRF's rendering."""
        scheduled_by_interval = bool(task.interval)
        return {
            "id": task.id, "title": task.title, "description": task.description, "type": task.type,
            "kind": task.kind, "trigger": task.trigger, "enabled": task.enabled, "manual_run": task.manual_run,
            "cron_string": task.cron_string, "timezone": task.timezone,
            "interval": self.get_interval(task), "interval_unit": self.get_interval_unit(task),
            "default_interval": task.default_interval if scheduled_by_interval else None,
            "last_run_at": iso_datetime(task.last_run_at), "next_run_at": iso_datetime(task.next_run_at),
            "status": self.get_status(task), "supports_cancel": task.supports_cancel,
            "supports_history": task.supports_history, "supports_dry_run": task.supports_dry_run,
            "parameters": [{name: parameter[name] for name in PARAMETER_FIELDS} for parameter in task.parameters],
            "policy": self.get_policy(task), "process": self.get_process(task),
            "service_state": self.get_service_state(task), "instances": self.get_instances(task),
            "watcher": self.get_watcher(task),
        }


class ProgressSerializer(serializers.Serializer):
    current = serializers.FloatField(allow_null=True)
    total = serializers.FloatField(allow_null=True)
    percent = serializers.FloatField(allow_null=True)
    message = serializers.CharField(allow_blank=True)


class RunSerializer(serializers.ModelSerializer):
    """The Run object. Beyond API.md: ``not_before``, when a queued run waits for its time (a
    retry's backoff); null otherwise."""

    task_title = serializers.CharField(source="task.title", read_only=True)
    end_reason = serializers.SerializerMethodField()
    exit_signal = serializers.SerializerMethodField()
    duration = serializers.FloatField(read_only=True, allow_null=True)
    progress = ProgressSerializer(read_only=True)
    cancel_requested = serializers.BooleanField(read_only=True)
    retry_of = serializers.UUIDField(source="retry_of_id", read_only=True, allow_null=True)

    class Meta:
        model = Run
        fields = (
            "id", "task_id", "task_title", "status", "end_reason", "trigger", "triggered_by", "parameters", "dry_run",
            "attempt", "retry_of", "created_at", "enqueued_at", "not_before", "started_at", "ended_at", "duration",
            "progress",
            "items_processed", "items_affected", "summary", "result", "error", "exit_code", "exit_signal", "pid",
            "instance_index", "cancel_requested",
        )
        read_only_fields = fields

    @extend_schema_field(serializers.ChoiceField(choices=EndReason.choices, allow_null=True))
    def get_end_reason(self, run: Run) -> str | None:
        return run.end_reason or None

    @extend_schema_field(serializers.CharField(allow_null=True, help_text="The signal that ended the process "
                                                                          "(SIGTERM, SIGKILL…); null when none."))
    def get_exit_signal(self, run: Run) -> str | None:
        return run.exit_signal or None

    def to_representation(self, run: Run) -> dict[str, Any]:
        """The fields above, written out: a page renders up to 500 runs and DRF's field-by-field
        walk costs about 0.1 ms a run. tests/api/test_serializers.py holds it equal to DRF's own
        rendering (``ModelSerializer.to_representation``) for runs in every state."""
        progress = {"current": optional_float(run.progress_current), "total": optional_float(run.progress_total),
                    "percent": optional_float(run.percent), "message": run.progress_message}
        return {
            "id": str(run.id), "task_id": run.task_id, "task_title": run.task.title, "status": run.status,
            "end_reason": run.end_reason or None, "trigger": run.trigger, "triggered_by": run.triggered_by,
            "parameters": run.parameters, "dry_run": run.dry_run, "attempt": run.attempt,
            "retry_of": str(run.retry_of_id) if run.retry_of_id else None,
            "created_at": iso_datetime(run.created_at), "enqueued_at": iso_datetime(run.enqueued_at),
            "not_before": iso_datetime(run.not_before), "started_at": iso_datetime(run.started_at), "ended_at": iso_datetime(run.ended_at),
            "duration": run.duration, "progress": progress,
            "items_processed": run.items_processed, "items_affected": run.items_affected, "summary": run.summary,
            "result": run.result, "error": run.error, "exit_code": run.exit_code, "exit_signal": run.exit_signal or None,
            "pid": run.pid, "instance_index": run.instance_index, "cancel_requested": run.cancel_requested,
        }


def optional_float(value: float | None) -> float | None:
    return None if value is None else float(value)


def iso_datetime(value: datetime | None) -> str | None:
    """As DRF's DateTimeField renders it in UTC: ISO 8601 with a ``Z``."""
    if value is None:
        return None
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


class RunQueuedSerializer(serializers.Serializer):
    run_id = serializers.UUIDField(source="id")
    task_id = serializers.CharField()
    status = serializers.ChoiceField(choices=RunStatus.choices)
    created_at = serializers.DateTimeField()
    enqueued_at = serializers.DateTimeField(allow_null=True)


class ActivitySerializer(serializers.ModelSerializer):
    run_id = serializers.UUIDField(read_only=True)

    class Meta:
        model = Activity
        fields = ("id", "run_id", "item_id", "item_title", "item_type", "action", "status", "message", "data", "timestamp")
        read_only_fields = fields


class PaginationSerializer(serializers.Serializer):
    page = serializers.IntegerField()
    limit = serializers.IntegerField()
    total = serializers.IntegerField()
    total_pages = serializers.IntegerField()


@extend_schema_serializer(many=False)
class TaskListSerializer(serializers.Serializer):
    tasks = TaskSerializer(many=True)


class TaskGroupsSerializer(serializers.Serializer):
    """``?group=trigger``: the tasks grouped by how they start (RomM's grouping, API.md)."""

    scheduled = TaskSerializer(many=True, help_text="With a cron string or an interval.")
    manual = TaskSerializer(many=True, help_text="Run only when someone asks.")
    watcher = TaskSerializer(many=True, help_text="File watchers.")
    service = TaskSerializer(many=True, help_text="Services, kept running by the supervisor.")


class HistorySerializer(serializers.Serializer):
    history = RunSerializer(many=True)
    pagination = PaginationSerializer()


@extend_schema_serializer(many=False)
class RunListSerializer(serializers.Serializer):
    runs = RunSerializer(many=True)
    pagination = PaginationSerializer()


class ActivityListSerializer(serializers.Serializer):
    activity = ActivitySerializer(many=True)
    pagination = PaginationSerializer()


class CancelTaskResultSerializer(serializers.Serializer):
    task_id = serializers.CharField()
    run_ids = serializers.ListField(child=serializers.UUIDField())
    status = serializers.ChoiceField(choices=["cancelling"])


class IntervalResultSerializer(serializers.Serializer):
    task_id = serializers.CharField()
    interval = serializers.IntegerField()
    interval_unit = serializers.ChoiceField(choices=IntervalUnit.choices)
    next_run_at = serializers.DateTimeField(allow_null=True)


# --- Request bodies ------------------------------------------------------------------------------


class RunRequestSerializer(serializers.Serializer):
    parameters = serializers.DictField(child=serializers.JSONField(), required=False, default=dict)
    dry_run = serializers.BooleanField(required=False, default=False)
    force = serializers.BooleanField(required=False, default=False)


class EnabledRequestSerializer(serializers.Serializer):
    enabled = serializers.BooleanField()


class StrictIntegerField(serializers.IntegerField):
    """An integer given as a JSON integer: 1.5, "6" and true are refused."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class IntervalRequestSerializer(serializers.Serializer):
    interval = StrictIntegerField(min_value=1, max_value=rules.MAX_INTERVAL_SECONDS // 60)
    unit = serializers.ChoiceField(choices=IntervalUnit.choices)

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        data["interval"], data["unit"] = _checked(rules.check_interval, data["interval"], data["unit"],
                                                  fields={"interval_unit": "unit"})
        return data


class ScheduleRequestSerializer(serializers.Serializer):
    cron_string = serializers.CharField(max_length=rules.MAX_CRON_LENGTH)
    timezone = serializers.CharField(required=False, max_length=rules.MAX_TIMEZONE_LENGTH)

    def validate_cron_string(self, value: str) -> str:
        return _checked(rules.check_cron, value)

    def validate_timezone(self, value: str) -> str:
        return _checked(rules.check_timezone, value)


def _checked(check: Any, *values: Any, fields: dict[str, str] | None = None) -> Any:
    """A schedule rule (scheduling/rules.py) as a DRF validation error. ``fields`` renames the rule's
    field to the request's (``interval_unit`` is ``unit`` here); in a field's own validator the
    error is that field's whatever the rule calls it."""
    try:
        return check(*values)
    except rules.InvalidValue as error:
        message = error.sentence()
        if fields is None:
            raise serializers.ValidationError(message) from None
        raise serializers.ValidationError({fields.get(error.field, error.field): message}) from None


# --- Query parameters ------------------------------------------------------------------------------


#: The highest offset or event id accepted (the largest 64-bit integer a database column holds).
MAX_POSITION = 2**63 - 1


class PageQuerySerializer(serializers.Serializer):
    page = serializers.IntegerField(min_value=1, required=False, default=1)
    limit = serializers.IntegerField(min_value=1, max_value=500, required=False)


class StatusListField(serializers.CharField):
    """A comma-separated list of run statuses (at least one)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=200, **kwargs)

    def to_internal_value(self, data: Any) -> list[str]:
        values = [value.strip() for value in str(super().to_internal_value(data)).split(",") if value.strip()]
        if not values:
            raise serializers.ValidationError(f"Give at least one status: {', '.join(RunStatus.values)}.")
        unknown = [value for value in values if value not in RunStatus.values]
        if unknown:
            raise serializers.ValidationError(f"Unknown status {unknown[0]!r}; use {', '.join(RunStatus.values)}.")
        return values


class HistoryQuerySerializer(PageQuerySerializer):
    status = StatusListField(required=False)


class RunsQuerySerializer(HistoryQuerySerializer):
    task = serializers.CharField(required=False, max_length=Task._meta.get_field("id").max_length)
    trigger = serializers.ChoiceField(choices=RunTrigger.choices, required=False)


class ActivityQuerySerializer(PageQuerySerializer):
    status = serializers.CharField(required=False, max_length=Activity._meta.get_field("status").max_length)
    action = serializers.CharField(required=False, max_length=Activity._meta.get_field("action").max_length)


class TaskListQuerySerializer(serializers.Serializer):
    type = serializers.CharField(required=False, max_length=Task._meta.get_field("type").max_length)
    kind = serializers.ChoiceField(choices=TaskKind.choices, required=False)
    trigger = serializers.ChoiceField(choices=TaskTrigger.choices, required=False)
    enabled = serializers.BooleanField(required=False, allow_null=True, default=None)
    group = serializers.ChoiceField(choices=["trigger"], required=False, help_text=(
        "trigger: the tasks grouped by how they start, {scheduled, manual, watcher, service} (RomM's grouping), "
        "the other filters still applying."))


class EventsQuerySerializer(serializers.Serializer):
    task = serializers.CharField(required=False, max_length=Task._meta.get_field("id").max_length)
    run = serializers.UUIDField(required=False)
    last_event_id = serializers.IntegerField(min_value=0, max_value=MAX_POSITION, required=False,
                                             help_text="Same as the Last-Event-ID header.")


class LogQuerySerializer(serializers.Serializer):
    offset = serializers.IntegerField(min_value=0, max_value=MAX_POSITION, required=False, default=0)


class LogStreamQuerySerializer(serializers.Serializer):
    offset = serializers.IntegerField(min_value=0, max_value=MAX_POSITION, required=False, default=0,
                                      help_text="The byte offset to start from; the Last-Event-ID header wins.")
