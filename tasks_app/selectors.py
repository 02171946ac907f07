"""Reads shared by the API, the admin, the command line and the consumers."""
from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import OuterRef, Q, QuerySet, Subquery, Sum

from tasks_app.db.run_reads import latest_runs_of_each, page_ids
from tasks_app.models import (
    Activity,
    Heartbeat,
    InstanceState,
    Run,
    RunCount,
    RunLogChunk,
    RunQuerySet,
    RunStatus,
    ServiceInstance,
    Task,
    TaskKind,
    TaskStatus,
    TaskTrigger,
    Watcher,
    WatcherState,
    dropped_marker,
    unpack,
)
from tasks_app.text import whole_characters


def task_status(task: Task) -> str:
    """running while a run runs, queued while one waits, error if the latest ended run failed, else idle."""
    return task_statuses([task])[task.pk]


def task_statuses(tasks: Iterable[Task]) -> dict[str, str]:
    """The status of many tasks in two queries, whatever their number."""
    ids = [task.pk for task in tasks]
    statuses: dict[str, str] = {task_id: TaskStatus.IDLE for task_id in ids}
    # order_by(): without it the model's ordering joins the DISTINCT and reads every run of the task.
    active = Run.objects.filter(task_id__in=ids).active().order_by().values_list("task_id", "status").distinct()
    for task_id, status in active:
        if status == RunStatus.RUNNING or statuses[task_id] == TaskStatus.IDLE:
            statuses[task_id] = TaskStatus(status)
    idle = [task_id for task_id, status in statuses.items() if status == TaskStatus.IDLE]
    latest = Run.objects.filter(task_id=OuterRef("pk")).ended().order_by("-created_at").values("status")[:1]
    for task_id, status in Task.objects.filter(pk__in=idle).annotate(latest=Subquery(latest)).values_list("pk", "latest"):
        if status == RunStatus.FAILED:
            statuses[task_id] = TaskStatus.ERROR
    return statuses


def latest_run(task: Task) -> Run | None:
    return task.runs.order_by("-created_at").first()


def imported_task_ids(source: str, *, compose_project: str | None = None) -> list[str]:
    """The present tasks an import of ``source`` wrote (of one compose project when given, by
    their ``compose`` provenance), by id: what an importer compares its file with, to report
    those no longer in it."""
    tasks = Task.objects.present().filter(source=source)
    if compose_project is not None:
        tasks = tasks.filter(process__compose__project_name=compose_project)
    return list(tasks.values_list("id", flat=True))


# --- Run lists (history, /api/runs) ------------------------------------------------------------


#: What the Run object of the API is made of: a list reads these and no more (not the traceback,
#: nor the task's definition).
RUN_OBJECT_FIELDS = (
    "id", "task", "status", "end_reason", "trigger", "triggered_by", "parameters", "dry_run", "attempt", "retry_of",
    "created_at", "enqueued_at", "not_before", "started_at", "ended_at", "progress_current", "progress_total", "progress_message",
    "items_processed", "items_affected", "summary", "result", "error", "exit_code", "exit_signal", "pid", "instance_index",
    "stop_requested",
)


def service_dependencies() -> tuple[dict[str, str], dict[str, list[str]]]:
    """Every present task's kind by id, and each present service's depends_on: what the admin
    checks a service's depends_on against (definitions/service.dependency_errors). One query."""
    kinds: dict[str, str] = {}
    depends_on: dict[str, list[str]] = {}
    for task_id, kind, process in Task.objects.present().values_list("id", "kind", "process"):
        kinds[task_id] = kind
        if kind == TaskKind.SERVICE:
            depends_on[task_id] = list((process or {}).get("depends_on") or [])
    return kinds, depends_on


def trigger_targets() -> dict[str, tuple[str, list[dict[str, Any]]]]:
    """Every present task's kind and parameters by id: what the admin checks a watcher's target
    against (definitions/watcher.target_errors). One query."""
    return {task_id: (kind, list(parameters or [])) for task_id, kind, parameters
            in Task.objects.present().values_list("id", "kind", "parameters")}


def filter_runs(*, task_id: str | None = None, statuses: Collection[str] = (),
                trigger: str | None = None) -> RunQuerySet:
    """Runs matching the list filters, in no order yet."""
    runs = Run.objects.all()
    if task_id is not None:
        runs = runs.filter(task_id=task_id)
    if statuses:
        runs = runs.filter(status__in=sorted(set(statuses)))
    if trigger is not None:
        runs = runs.filter(trigger=trigger)
    return runs


def count_runs(*, task_id: str | None = None, statuses: Collection[str] = (), trigger: str | None = None) -> int:
    """Exact, from the per-(task, status) counts the database keeps; counted rows for ?trigger=."""
    if trigger is not None:
        return filter_runs(task_id=task_id, statuses=statuses, trigger=trigger).count()
    counts = RunCount.objects.all()
    if task_id is not None:
        counts = counts.filter(task_id=task_id)
    if statuses:
        counts = counts.filter(status__in=statuses)
    return counts.aggregate(total=Sum("count"))["total"] or 0


def page_of_runs(*, page: int, limit: int, task_id: str | None = None, statuses: Collection[str] = (),
                 trigger: str | None = None) -> tuple[list[Run], int]:
    """One page of runs, newest first, and the total the filters match.

    The page's ids are read first, from an index alone (``list_index``); only its ``limit`` rows
    are then read, with the fields of the Run object. A page in the older half is read from the
    oldest end, so the last page of a long history costs what the first one does. Runs created in
    the same microsecond have no defined order between them.
    """
    total = count_runs(task_id=task_id, statuses=statuses, trigger=trigger)
    offset = (page - 1) * limit
    if offset >= total:
        return [], total
    runs = filter_runs(task_id=task_id, statuses=statuses, trigger=trigger)
    index = None if trigger is not None else list_index(task_id=task_id, statuses=statuses)
    if offset <= total - offset - limit:
        ids = page_ids(runs.order_by("-created_at"), start=offset, size=limit, index=index)
    else:
        size = min(limit, total - offset)
        ids = page_ids(runs.order_by("created_at"), start=total - offset - size, size=size, index=index)[::-1]
    rows = {run.id: run for run in Run.objects.select_related("task").only(*RUN_OBJECT_FIELDS, "task__title")
            .filter(pk__in=ids).order_by()}
    return [rows[run_id] for run_id in ids if run_id in rows], total


def list_index(*, task_id: str | None, statuses: Collection[str]) -> str:
    """The index (models.Run.Meta) that holds a run list in its own order, status and id included."""
    one_status = len(set(statuses)) == 1
    if task_id is not None:
        return "run_task_status" if one_status else "run_task_history"
    return "run_status_recent" if one_status else "run_recent"


# --- Admin pages (task list, run page, dashboard) -----------------------------------------------


@dataclass(frozen=True)
class RecentRun:
    """A run as the task list shows it: a bar of the durations chart, the last-run column."""

    id: uuid.UUID
    status: str
    end_reason: str
    created_at: datetime
    duration: float | None


#: What the task list reads of each recent run (RecentRun, plus the task it belongs to).
RECENT_FIELDS = ("id", "task", "status", "end_reason", "created_at", "started_at", "ended_at")


def recent_runs(task_ids: Iterable[str], *, limit: int = 20) -> dict[str, list[RecentRun]]:
    """The latest ``limit`` runs of each task, newest first, in one statement (db/run_reads.py)."""
    ids = list(dict.fromkeys(task_ids))
    found: dict[str, list[RecentRun]] = {task_id: [] for task_id in ids}
    if not ids:
        return found
    for row in latest_runs_of_each(ids, fields=RECENT_FIELDS, limit=limit):
        run_id, task_id, status, end_reason, created_at, started_at, ended_at = row
        found[task_id].append(RecentRun(run_id, status, end_reason, created_at,
                                        (ended_at - started_at).total_seconds() if started_at and ended_at else None))
    for runs in found.values():
        runs.sort(key=lambda run: run.created_at, reverse=True)  # UNION ALL promises no order
    return found


def activity_page(run: Run, *, page: int, limit: int, status: str = "", action: str = "") -> tuple[list[Activity], int]:
    """One page of a run's activity, oldest first (rows are appended as the run goes), and the total."""
    rows = run.activity.order_by("id")
    if status:
        rows = rows.filter(status=status)
    if action:
        rows = rows.filter(action=action)
    total = rows.count()
    start = (page - 1) * limit
    return list(rows[start:start + limit]), total


def activity_choices(run: Run) -> dict[str, list[str]]:
    """The statuses and actions a run's activity has, for the filters above its table."""
    return {
        "status": sorted(run.activity.order_by().values_list("status", flat=True).distinct()),
        "action": sorted(run.activity.order_by().values_list("action", flat=True).distinct()),
    }


@dataclass(frozen=True)
class ProcessHealth:
    role: str
    host: str
    pid: int
    seen_at: datetime
    fresh: bool


def process_health(*, now: datetime, fresh_for: timedelta) -> list[ProcessHealth]:
    """Every worker and scheduler that reported in, freshest first; stale ones stay listed a day."""
    beats = Heartbeat.objects.filter(seen_at__gte=now - timedelta(days=1)).order_by("role", "-seen_at")
    return [ProcessHealth(beat.role, beat.host, beat.pid, beat.seen_at, beat.seen_at >= now - fresh_for)
            for beat in beats]


@dataclass(frozen=True)
class Dashboard:
    running: list[Run]
    running_total: int
    queued: list[Run]
    queued_total: int
    failures: list[Run]
    failures_total: int
    processes: list[ProcessHealth]


def dashboard(*, now: datetime, fresh_for: timedelta, limit: int = 10) -> Dashboard:
    """What is running and waiting now, what failed in the last 24 hours, and who is alive."""
    running = Run.objects.filter(status=RunStatus.RUNNING).select_related("task").order_by("-started_at")
    queued = Run.objects.filter(status=RunStatus.QUEUED).select_related("task").order_by("created_at")
    failures = (Run.objects.filter(status=RunStatus.FAILED, created_at__gte=now - timedelta(hours=24))
                .select_related("task").order_by("-created_at"))
    return Dashboard(
        running=list(running[:limit]), running_total=count_runs(statuses=[RunStatus.RUNNING]),
        queued=list(queued[:limit]), queued_total=count_runs(statuses=[RunStatus.QUEUED]),
        failures=list(failures[:limit]), failures_total=failures.count(),
        processes=process_health(now=now, fresh_for=fresh_for),
    )


# --- A run's log (models/logs.py) ------------------------------------------------------------------


#: Bytes a log read returns at most unless told otherwise (a page of the API's /log, an SSE event).
LOG_PAGE_BYTES = 256 * 1024


@dataclass(frozen=True)
class LogBounds:
    """What a run's log holds, read in one statement with the run's status: the bytes of
    ``[first, size)`` (``first`` > 0: ``drop_old`` dropped the head). Read together, so a reader
    that finds the run ended and has every byte up to ``size`` has all there will ever be (a
    run's last output lands before its end)."""

    first: int
    size: int
    status: str
    end_reason: str

    @property
    def active(self) -> bool:
        """Queued or running when read: more output may come."""
        return self.status in (RunStatus.QUEUED, RunStatus.RUNNING)


def log_bounds(run_id: uuid.UUID | str) -> LogBounds | None:
    """None when the run does not exist (or no longer: retention)."""
    chunks = RunLogChunk.objects.filter(run_id=OuterRef("pk"))
    row = (Run.objects.filter(pk=run_id)
           .annotate(first=Subquery(chunks.order_by("end").values("start")[:1]),
                     size=Subquery(chunks.order_by("-end").values("end")[:1]))
           .values_list("status", "end_reason", "first", "size").first())
    if row is None:
        return None
    status, end_reason, first, size = row
    return LogBounds(first=first or 0, size=size or 0, status=status, end_reason=end_reason)


@dataclass(frozen=True)
class LogPiece:
    """Bytes of a run's log read from ``offset``: ``data`` starts at ``start``; the bytes between
    ``offset`` and ``start`` were dropped (``dropped``: the head ``drop_old`` cut). ``bounds`` as
    read first: a piece never goes past ``bounds.size``."""

    offset: int
    start: int
    data: bytes
    bounds: LogBounds

    @property
    def end(self) -> int:
        """The offset to read from next."""
        return self.start + len(self.data)

    @property
    def dropped(self) -> int:
        return self.start - self.offset

    @property
    def size(self) -> int:
        return self.bounds.size

    def as_text(self) -> str:
        """For a page or a client: the marker line where bytes were dropped, then the bytes as
        UTF-8 with anything invalid replaced (a binary log still renders)."""
        marker = dropped_marker(self.dropped).decode() if self.dropped else ""
        return marker + self.data.decode("utf-8", "replace")

    def as_bytes(self) -> bytes:
        """For a terminal or a file: the same marker line, then the bytes exactly as written."""
        return (dropped_marker(self.dropped) if self.dropped else b"") + self.data


def read_log(run_id: uuid.UUID | str, *, offset: int, limit: int = LOG_PAGE_BYTES,
             until: int | None = None) -> LogPiece | None:
    """At most ``limit`` bytes of a run's log from byte ``offset`` (and before ``until``), in two
    statements: the bounds (``log_bounds``), then the chunks the range touches, by the
    (run, end) index. A piece cut short by ``limit`` ends on a whole UTF-8 character (the next
    read starts with it); the writer's own flushes never split one. None when the run is gone."""
    for _ in range(2):  # twice at most: a cut between the two statements may drop the range read
        bounds = log_bounds(run_id)
        if bounds is None:
            return None
        stop = bounds.size if until is None else min(until, bounds.size)
        start = max(offset, bounds.first)
        if start >= stop:
            break
        stop = min(stop, start + limit)
        rows = (RunLogChunk.objects.filter(run_id=run_id, end__gt=start, start__lt=stop).order_by("end")
                .values_list("start", "end", "data", "compressed"))
        pieces, first = [], None
        for chunk_start, chunk_end, data, compressed in rows:
            data = unpack(data, compressed=compressed)
            low, high = max(start, chunk_start), min(stop, chunk_end)
            if first is None:
                first = low  # later than ``start`` if a cut dropped more meanwhile
            pieces.append(data[len(data) - (chunk_end - low):len(data) - (chunk_end - high)])
        if first is None:
            continue
        data = b"".join(pieces)
        if first + len(data) < bounds.size:
            data = whole_characters(data) or data
        return LogPiece(offset, first, data, bounds)
    return LogPiece(offset, max(offset, min(start, stop)), b"", bounds)


def service_states(tasks: Iterable[Task]) -> dict[str, tuple[str, list[dict[str, Any]]]]:
    """Each service's roll-up state and its instances (API.md "Services"), in one query; tasks of
    other kinds are left out (their ``service_state`` and ``instances`` are null)."""
    ids = [task.pk for task in tasks if task.kind == TaskKind.SERVICE]
    rows: dict[str, list[ServiceInstance]] = {task_id: [] for task_id in ids}
    for row in ServiceInstance.objects.filter(task_id__in=ids).order_by("task_id", "index"):
        rows[row.task_id].append(row)
    return {task_id: (service_state([row.state for row in instances]), [instance_data(row) for row in instances])
            for task_id, instances in rows.items()}


def service_state(states: Collection[str]) -> str:
    """A service's state from its instances': running (every one up and healthy), starting (every
    one up, some not healthy yet), degraded (some up, some not), backoff (none up, some starting
    again soon), fatal (every one fatal), stopped (none running, none to be started)."""
    found = set(states)
    up = {InstanceState.RUNNING, InstanceState.STARTING}
    if not found or found == {InstanceState.STOPPED}:
        return InstanceState.STOPPED
    if found == {InstanceState.RUNNING}:
        return InstanceState.RUNNING
    if found == {InstanceState.FATAL}:
        return InstanceState.FATAL
    if found <= up:
        return InstanceState.STARTING
    if found & up:
        return "degraded"
    if InstanceState.BACKOFF in found:
        return InstanceState.BACKOFF
    return InstanceState.FATAL if InstanceState.FATAL in found else InstanceState.STOPPED


def instance_data(row: ServiceInstance) -> dict[str, Any]:
    return {"index": row.index, "state": row.state, "pid": row.pid, "run_id": str(row.run_id) if row.run_id else None,
            "started_at": row.started_at, "restarts": row.restarts, "last_exit_code": row.last_exit_code,
            "next_start_at": row.next_start_at}


def watcher_states(tasks: Iterable[Task]) -> dict[str, dict[str, Any]]:
    """Each watcher's ``watcher`` object (API.md "Watchers"): its settings and its state as its
    owner last wrote it, in one query; tasks of other kinds are left out (their ``watcher`` is
    null). A watcher no supervisor has looked at yet is ``stopped``."""
    watchers = {task.pk: task for task in tasks if task.kind == TaskKind.WATCHER and task.watch is not None}
    rows = {row.task_id: row for row in Watcher.objects.filter(task_id__in=list(watchers))}
    return {task_id: watcher_data(task.watch, rows.get(task_id)) for task_id, task in watchers.items()}


def watcher_data(settings: dict[str, Any], row: Watcher | None) -> dict[str, Any]:
    row = row or Watcher(state=WatcherState.STOPPED)
    return {**settings, "state": row.state, "last_change_at": row.last_change_at,
            "last_triggered_at": row.last_triggered_at, "pending_changes": row.pending_changes, "error": row.error,
            "path_states": [dict(path) for path in row.paths],
            "last_run_id": str(row.last_run_id) if row.last_run_id else None}


def filter_by_trigger(tasks: QuerySet[Task], trigger: str) -> QuerySet[Task]:
    """Tasks by how they start (``Task.trigger``; RomM's grouping, API.md): scheduled (a cron
    string or an interval), manual (neither), watcher, service."""
    if trigger in (TaskTrigger.WATCHER, TaskTrigger.SERVICE):
        return tasks.filter(kind=trigger)
    others = tasks.exclude(kind__in=[TaskKind.WATCHER, TaskKind.SERVICE])
    scheduled = ~Q(cron_string="") | Q(interval__isnull=False)
    return others.filter(scheduled) if trigger == TaskTrigger.SCHEDULED else others.exclude(scheduled)
