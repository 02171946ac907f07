"""Taskdeck's data, one module per concept; import them from here (``from tasks_app.models import Run``).

- ``tasks``: Task and the choices of its fields;
- ``runs``: Run, Activity, RunCount, a run's states, end reasons and triggers;
- ``logs``: RunLogChunk, a run's captured output in chunks of bytes;
- ``events``: the live events' outbox;
- ``keys``: API keys and scopes;
- ``heartbeats``: processes saying they are alive;
- ``leases``: who runs, right now, what must run once across hosts;
- ``instances``: service instances, their states and what operators asked of them;
- ``watchers``: file watchers' live state.

Every state is a TextChoices with a docstring per member.
"""
from tasks_app.models.events import INTERNAL_EVENTS, Event, EventName
from tasks_app.models.heartbeats import Heartbeat, HeartbeatRole
from tasks_app.models.instances import InstanceState, ServiceInstance
from tasks_app.models.keys import SCOPE_GRANTS, ApiKey, ApiKeyQuerySet, Scope
from tasks_app.models.leases import Lease
from tasks_app.models.logs import RunLogChunk, dropped_marker, full_marker, unpack
from tasks_app.models.runs import (
    ON_DEMAND_TRIGGERS,
    REASON_FOR_STOP,
    REFUSED_TRIGGERS,
    RETRYABLE_REASONS,
    STATUS_FOR_REASON,
    Activity,
    EndReason,
    Run,
    RunCount,
    RunQuerySet,
    RunStatus,
    RunTrigger,
    StopRequest,
)
from tasks_app.models.tasks import (
    POLICY_FIELDS,
    CatchUp,
    DefinitionSource,
    IntervalUnit,
    LogOnFull,
    OverlapPolicy,
    RestartPolicy,
    RetryBackoff,
    Task,
    TaskKind,
    TaskQuerySet,
    TaskStatus,
    TaskTrigger,
    default_keep_for,
    default_keep_runs,
    default_timezone,
)
from tasks_app.models.watchers import Watcher, WatcherState

__all__ = [
    "INTERNAL_EVENTS", "ON_DEMAND_TRIGGERS", "POLICY_FIELDS", "REASON_FOR_STOP", "REFUSED_TRIGGERS", "RETRYABLE_REASONS", "SCOPE_GRANTS", "STATUS_FOR_REASON",
    "Activity", "ApiKey", "ApiKeyQuerySet", "CatchUp", "DefinitionSource", "EndReason", "Event", "EventName",
    "Heartbeat", "HeartbeatRole", "InstanceState", "IntervalUnit", "Lease", "LogOnFull", "OverlapPolicy", "RestartPolicy", "RetryBackoff", "Run", "RunCount",
    "RunQuerySet", "RunLogChunk", "RunStatus", "RunTrigger", "Scope", "ServiceInstance", "StopRequest", "Task", "TaskKind", "TaskQuerySet", "TaskStatus",
    "TaskTrigger", "Watcher", "WatcherState",
    "default_keep_for", "default_keep_runs", "default_timezone", "dropped_marker", "full_marker", "unpack",
]
