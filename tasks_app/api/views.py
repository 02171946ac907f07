"""The HTTP contract (API.md) over services and selectors: parse, call, render.

Every route names the scope it needs (``required_scopes``); every error is a problem document
(``problems.exception_handler``).
"""
from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tasks_app import __version__, health, selectors, services, text
from tasks_app.access.callers import caller_label
from tasks_app.api import serializers as s
from tasks_app.api.pagination import paginate, pagination, parse_query
from tasks_app.conf import taskdeck_settings
from tasks_app.exceptions import InvalidQuery, RunNotFound
from tasks_app.live import logs, streams
from tasks_app.models import RunTrigger, Scope, Task, TaskTrigger

PROBLEM = OpenApiResponse(s.ProblemSerializer, description="Problem document (RFC 9457)")


def problems(*statuses: int) -> dict[tuple[int, str], OpenApiResponse]:
    return {(code, "application/problem+json"): PROBLEM for code in (401, 403, *statuses)}


class TaskViewSet(viewsets.ViewSet):
    lookup_field = "id"
    lookup_value_regex = r"[A-Za-z0-9_.\-]+"
    required_scopes = {
        "list": Scope.READ, "retrieve": Scope.READ, "history": Scope.READ,
        "run": Scope.RUN, "cancel": Scope.RUN, "start": Scope.RUN, "stop": Scope.RUN, "restart": Scope.RUN,
        "enabled": Scope.MANAGE, "interval": Scope.MANAGE, "schedule": Scope.MANAGE,
    }

    @extend_schema(parameters=[s.TaskListQuerySerializer], responses={
        200: PolymorphicProxySerializer(component_name="TaskListOrGroups", resource_type_field_name=None, many=False,
                                        serializers=[s.TaskListSerializer, s.TaskGroupsSerializer]),
        **problems(400)}, description="`{\"tasks\": [...]}`; with `?group=trigger`, the tasks grouped by how they "
                                      "start: `{\"scheduled\", \"manual\", \"watcher\", \"service\"}`.")
    def list(self, request: Request) -> Response:
        query = parse_query(s.TaskListQuerySerializer, request)
        group = query.pop("group", None)
        tasks = render_tasks(filter_tasks(Task.objects.present(), **query))
        if group is None:
            return Response({"tasks": tasks})
        groups: dict[str, list[dict[str, Any]]] = {trigger: [] for trigger in TaskTrigger.values}
        for task in tasks:
            groups[task["trigger"]].append(task)
        return Response(groups)

    @extend_schema(responses={200: s.TaskSerializer, **problems(404)})
    def retrieve(self, request: Request, id: str) -> Response:
        return Response(s.TaskSerializer(services.get_task(id)).data)

    @extend_schema(request=s.RunRequestSerializer, responses={202: s.RunQueuedSerializer, **problems(400, 404, 409)})
    @action(detail=True, methods=["post"])
    def run(self, request: Request, id: str) -> Response:
        body = s.RunRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        run = services.trigger(id, source=RunTrigger.API, requested_by=caller_label(request), **body.validated_data)
        return Response(s.RunQueuedSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={200: s.CancelTaskResultSerializer, **problems(400, 404)})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, id: str) -> Response:
        runs = services.cancel_task(id)
        return Response({"task_id": id, "run_ids": [str(run.id) for run in runs], "status": "cancelling"})

    @extend_schema(request=None, responses={200: s.TaskSerializer, **problems(404, 409)},
                   description="Start a service's stopped and fatal instances, with a fresh retry budget.")
    @action(detail=True, methods=["post"])
    def start(self, request: Request, id: str) -> Response:
        return Response(render_task(services.start_service(id)))

    @extend_schema(request=None, responses={200: s.TaskSerializer, **problems(404, 409)},
                   description="Stop every instance of a service; they stay stopped, across restarts of "
                               "Taskdeck too, until started again.")
    @action(detail=True, methods=["post"])
    def stop(self, request: Request, id: str) -> Response:
        return Response(render_task(services.stop_service(id)))

    @extend_schema(request=None, responses={200: s.TaskSerializer, **problems(404, 409)},
                   description="Stop a service's instances and start them again.")
    @action(detail=True, methods=["post"])
    def restart(self, request: Request, id: str) -> Response:
        return Response(render_task(services.restart_service(id)))

    @extend_schema(request=s.EnabledRequestSerializer, responses={200: s.TaskSerializer, **problems(400, 404)})
    @action(detail=True, methods=["put"])
    def enabled(self, request: Request, id: str) -> Response:
        body = parse_task_body(id, s.EnabledRequestSerializer, request)
        return Response(s.TaskSerializer(services.set_enabled(id, enabled=body["enabled"])).data)

    @extend_schema(request=s.IntervalRequestSerializer, responses={200: s.IntervalResultSerializer, **problems(400, 404)})
    @action(detail=True, methods=["put"])
    def interval(self, request: Request, id: str) -> Response:
        body = parse_task_body(id, s.IntervalRequestSerializer, request)
        task = services.set_interval(id, interval=body["interval"], unit=body["unit"])
        return Response({"task_id": task.id, "interval": task.interval, "interval_unit": task.interval_unit,
                         "next_run_at": task.next_run_at})

    @extend_schema(request=s.ScheduleRequestSerializer, responses={200: s.TaskSerializer, **problems(400, 404)})
    @action(detail=True, methods=["put"])
    def schedule(self, request: Request, id: str) -> Response:
        body = parse_task_body(id, s.ScheduleRequestSerializer, request)
        task = services.set_schedule(id, cron_string=body["cron_string"], timezone=body.get("timezone"))
        return Response(s.TaskSerializer(task).data)

    @extend_schema(parameters=[s.HistoryQuerySerializer], responses={200: s.HistorySerializer, **problems(400, 404)})
    @action(detail=True, methods=["get"])
    def history(self, request: Request, id: str) -> Response:
        task = services.get_task(id)
        query = parse_query(s.HistoryQuerySerializer, request)
        limit = query.get("limit") or 20
        runs, total = selectors.page_of_runs(task_id=task.pk, statuses=query.get("status") or (),
                                             page=query["page"], limit=limit)
        return Response({"history": s.RunSerializer(runs, many=True).data,
                         "pagination": pagination(page=query["page"], limit=limit, total=total)})


def parse_task_body(task_id: str, serializer_class: type, request: Request) -> dict[str, Any]:
    """The checked body of a request about one task: an unknown task is 404 before a bad body is 400."""
    services.get_task(task_id)
    body = serializer_class(data=request.data)
    body.is_valid(raise_exception=True)
    return body.validated_data


def filter_tasks(tasks: QuerySet[Task], *, type: str | None = None, kind: str | None = None,
                 trigger: str | None = None, enabled: bool | None = None) -> QuerySet[Task]:
    if type:
        tasks = tasks.filter(type=type)
    if kind:
        tasks = tasks.filter(kind=kind)
    if enabled is not None:
        tasks = tasks.filter(enabled=enabled)
    return selectors.filter_by_trigger(tasks, trigger) if trigger else tasks


def render_tasks(tasks: QuerySet[Task]) -> list[dict[str, Any]]:
    tasks = list(tasks)
    context = {"statuses": selectors.task_statuses(tasks), "services": selectors.service_states(tasks),
               "watchers": selectors.watcher_states(tasks)}
    return s.TaskSerializer(tasks, many=True, context=context).data


def render_task(task: Task) -> dict[str, Any]:
    """One Task object as it is now (a service's instances read after the operator's request)."""
    return s.TaskSerializer(services.get_task(task.pk)).data


class EventStreamRenderer(BaseRenderer):
    """Lets ``Accept: text/event-stream`` through content negotiation; the stream renders itself."""

    media_type = "text/event-stream"
    format = "event-stream"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> Any:
        return data


RUN_ID = OpenApiParameter("run_id", OpenApiTypes.UUID, OpenApiParameter.PATH)


class RunViewSet(viewsets.ViewSet):
    lookup_field = "run_id"
    required_scopes = {
        "list": Scope.READ, "retrieve": Scope.READ, "activity": Scope.READ, "log": Scope.READ,
        "log_stream": Scope.READ, "cancel": Scope.RUN, "destroy": Scope.MANAGE,
    }

    @extend_schema(parameters=[s.RunsQuerySerializer], responses={200: s.RunListSerializer, **problems(400)})
    def list(self, request: Request) -> Response:
        query = parse_query(s.RunsQuerySerializer, request)
        limit = query.get("limit") or 20
        runs, total = selectors.page_of_runs(task_id=query.get("task") or None, statuses=query.get("status") or (),
                                             trigger=query.get("trigger") or None, page=query["page"], limit=limit)
        return Response({"runs": s.RunSerializer(runs, many=True).data,
                         "pagination": pagination(page=query["page"], limit=limit, total=total)})

    @extend_schema(parameters=[RUN_ID], responses={200: s.RunSerializer, 202: s.RunSerializer, **problems(404)},
                   description="202 while the run is queued or running, 200 once it ended (whatever the outcome).")
    def retrieve(self, request: Request, run_id: str) -> Response:
        run = services.get_run(run_id)
        return Response(s.RunSerializer(run).data, status=status.HTTP_202_ACCEPTED if run.is_active else status.HTTP_200_OK)

    @extend_schema(parameters=[RUN_ID], request=None, responses={200: s.RunSerializer, **problems(400, 404)})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, run_id: str) -> Response:
        return Response(s.RunSerializer(services.cancel_run(run_id)).data)

    @extend_schema(parameters=[RUN_ID], request=None, responses={204: None, **problems(404, 409)})
    def destroy(self, request: Request, run_id: str) -> Response:
        services.delete_run(run_id)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(parameters=[RUN_ID, s.ActivityQuerySerializer], responses={200: s.ActivityListSerializer, **problems(400, 404)})
    @action(detail=True, methods=["get"])
    def activity(self, request: Request, run_id: str) -> Response:
        run = services.get_run(run_id)
        query = parse_query(s.ActivityQuerySerializer, request)
        rows = run.activity.order_by("id")
        if query.get("status"):
            rows = rows.filter(status=query["status"])
        if query.get("action"):
            rows = rows.filter(action=query["action"])
        page, pagination = paginate(rows, page=query["page"], limit=query.get("limit") or 50)
        return Response({"activity": s.ActivitySerializer(page, many=True).data, "pagination": pagination})

    @extend_schema(
        parameters=[RUN_ID, s.LogQuerySerializer, OpenApiParameter(
            "X-Log-Size", OpenApiTypes.INT, OpenApiParameter.HEADER, response=[200],
            description="Bytes of output written so far, dropped head included: the next offset to ask for.")],
        responses={(200, "text/plain"): OpenApiTypes.STR, **problems(400, 404)},
        description=("Captured output from byte `offset`; the header X-Log-Size gives the size written so far. "
                     "Output is UTF-8 with invalid bytes replaced; where the log's cap dropped bytes, a line "
                     "`[taskdeck: N bytes dropped]` stands in their place."),
    )
    @action(detail=True, methods=["get"])
    def log(self, request: Request, run_id: str) -> HttpResponse:
        run = services.get_run(run_id)
        offset = parse_query(s.LogQuerySerializer, request)["offset"]
        piece = selectors.read_log(run.pk, offset=offset)
        if piece is None:
            raise RunNotFound(f"Run {run.pk} does not exist.")
        if piece.end >= piece.size:
            response: HttpResponse = HttpResponse(piece.as_text(), content_type="text/plain; charset=utf-8")
        else:  # a long log goes out page by page, never whole in memory
            response = StreamingHttpResponse(log_pages(run.pk, piece), content_type="text/plain; charset=utf-8")
        response["X-Log-Size"] = str(piece.size)
        return response

    @extend_schema(
        operation_id="runs_log_stream",
        parameters=[RUN_ID, s.LogStreamQuerySerializer, OpenApiParameter(
            "Last-Event-ID", OpenApiTypes.INT, OpenApiParameter.HEADER,
            description="Resume: the byte offset of the last `log` event received (its `id`).")],
        responses={(200, "text/event-stream"): OpenApiResponse(OpenApiTypes.STR, description=(
            "`log` events whose `id:` is the byte offset after the output they carry and whose `data:` lines "
            "are that output (UTF-8, invalid bytes replaced, line ends as SSE gives them: `\\n`); a line "
            "`[taskdeck: N bytes dropped]` where the log's cap dropped bytes; an `end` event (JSON: run_id, "
            "status, end_reason, size) once the run ended and all its output was sent, then the stream ends; "
            "a `: keep-alive` comment when quiet.")),
            **problems(400, 404)},
    )
    @action(detail=True, methods=["get"], url_path="log/stream",
            renderer_classes=[EventStreamRenderer, JSONRenderer])
    def log_stream(self, request: Request, run_id: str) -> StreamingHttpResponse:
        run = services.get_run(run_id)
        offset = parse_query(s.LogStreamQuerySerializer, request)["offset"]
        header = request.headers.get("Last-Event-ID", "").strip()
        if header:
            try:
                offset = streams.parse_event_id(header)
            except ValueError:
                raise InvalidQuery("Invalid Last-Event-ID header.", errors=[
                    {"location": "header.Last-Event-ID", "message": "A byte offset (an integer).",
                     "value": text.storable(header[:100])}]) from None
        return event_stream_response(log_event_stream(str(run.pk), offset=offset))


def log_pages(run_id: Any, piece: selectors.LogPiece) -> Iterator[str]:
    """A log from ``piece`` on, a page at a time, up to the size the first page read."""
    yield piece.as_text()
    while piece.end < piece.size:
        following = selectors.read_log(run_id, offset=piece.end, until=piece.size)
        if following is None or not following.data:
            return
        piece = following
        yield piece.as_text()


async def log_event_stream(run_id: str, *, offset: int) -> AsyncIterator[str]:
    """The SSE body over ``live.logs``: ``retry:`` once subscribed, then the output as ``log``
    events, a comment when quiet, and ``end`` once the run ended and everything was sent."""
    async with logs.followed(run_id, offset=offset) as follower:
        yield "retry: 2000\n\n"
        async for item in follower.items(quiet_after=taskdeck_settings.SSE_KEEPALIVE):
            if item is None:
                yield ": keep-alive\n\n"
            elif isinstance(item, logs.LogEnd):
                data = {"run_id": run_id, "status": item.status, "end_reason": item.end_reason or None, "size": item.size}
                yield f"id: {item.size}\nevent: end\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
            else:
                lines = "".join(f"data: {line}\n" for line in LINE_ENDS.split(item.as_text()))
                yield f"id: {item.end}\nevent: log\n{lines}\n"


#: What SSE reads as the end of a line: a ``data:`` line each, joined again with ``\n`` by clients.
LINE_ENDS = re.compile(r"\r\n|\r|\n")


def event_stream_response(stream: AsyncIterator[str]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(stream, content_type="text/event-stream; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # a proxy in front must not hold events back
    return response


class HealthView(APIView):
    """GET /api/health, without authentication: database (a real write), workers, scheduler, and
    the children serve restarted. 503 when the database cannot serve Taskdeck (``health.check``)."""

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []

    @extend_schema(responses={200: OpenApiTypes.OBJECT, 503: OpenApiTypes.OBJECT}, auth=[])
    def get(self, request: Request) -> Response:
        report = health.check()
        body = {"status": report.status, "version": __version__,
                "checks": {"database": report.database, "workers": report.workers, "scheduler": report.scheduler,
                           "supervisor": report.supervisor},
                "restarts": report.restarts}
        return Response(body, status=503 if report.status == "error" else 200)


class EventsView(APIView):
    """GET /api/events: Server-Sent Events, resumable with Last-Event-ID.

    A sync view like every other (authentication, scope and problems as usual) that returns an
    asynchronous stream: ``config/asgi.py`` routes this path through Django's ASGI handler, so
    the stream is an asyncio task, not a thread, and the handler ends it when the client goes.
    """

    required_scope = Scope.READ
    renderer_classes = [EventStreamRenderer, JSONRenderer]

    @extend_schema(
        parameters=[s.EventsQuerySerializer, OpenApiParameter(
            "Last-Event-ID", OpenApiTypes.INT, OpenApiParameter.HEADER,
            description="Resume: every retained event after this id is sent first.")],
        responses={(200, "text/event-stream"): OpenApiResponse(OpenApiTypes.STR, description=(
            "`id:`, `event:` and JSON `data:` per event; a `: keep-alive` comment when quiet (every 10 s by default).")),
            **problems(400)},
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        query = parse_query(s.EventsQuerySerializer, request)
        last_id = query.get("last_event_id")
        header = request.headers.get("Last-Event-ID", "").strip()
        if header:
            try:
                last_id = streams.parse_event_id(header)
            except ValueError:
                raise InvalidQuery("Invalid Last-Event-ID header.", errors=[
                    {"location": "header.Last-Event-ID", "message": "An event id (an integer).",
                     "value": text.storable(header[:100])}]) from None
        run_id = str(query["run"]) if query.get("run") else None
        return event_stream_response(event_stream(task_id=query.get("task") or None, run_id=run_id, last_id=last_id))


async def event_stream(*, task_id: str | None, run_id: str | None, last_id: int | None) -> AsyncIterator[str]:
    """The SSE body over ``live.streams``: ``retry:`` once subscribed, then the missed events when
    resuming and live ones, as messages, a comment when quiet. The client leaving cancels it, and
    leaving the ``opened`` block lets go of its subscription at once."""
    async with streams.opened(task_id=task_id, run_id=run_id, resume_after=last_id) as stream:
        yield "retry: 2000\n\n"
        async for batch in stream.batches(quiet_after=taskdeck_settings.SSE_KEEPALIVE):
            yield "".join(event.as_sse() for event in batch) if batch else ": keep-alive\n\n"
