"""python manage.py serve: web + worker + scheduler + supervisor on one machine, supervised,
stopped together.

A child that dies is started again (``platform.children.Children``: a pause that doubles with
each quick exit, restarts counted in ``/api/health``); serve gives up, stopping everything, only
on a child that keeps dying. Ctrl-C or SIGTERM stops them all: the worker gives running runs
``--grace`` seconds, then ends what still runs ``shutdown``; the supervisor stops the services'
instances, dependents first, within the same grace.
"""
from __future__ import annotations

import logging
import signal
import socket
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from tasks_app import clock, services
from tasks_app.definitions.load import all_definitions
from tasks_app.exceptions import DefinitionError
from tasks_app.management.errors import database_errors_in_one_line
from tasks_app.models import HeartbeatRole
from tasks_app.platform.children import Child, Children, ChildKeepsDying
from tasks_app.platform.stopflag import StopFlag

logger = logging.getLogger(__name__)

#: Seconds between serve's heartbeats (which carry its children's restart counts).
HEARTBEAT_EVERY = 5.0


class Command(BaseCommand):
    help = "Start the web server (ASGI), a worker cluster and the scheduler, kept running; Ctrl-C stops all three."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default=settings.HOST, help="Address to bind (default %(default)s).")
        parser.add_argument("--port", type=int, default=settings.PORT, help="Port (default %(default)s).")
        parser.add_argument("--grace", type=float, default=5.0, help="Seconds running runs get to stop on shutdown.")
        parser.add_argument("--no-web", action="store_true", help="Only the worker and the scheduler.")

    def handle(self, *args: Any, host: str, port: int, grace: float, no_web: bool, **options: Any) -> None:
        if not no_web:
            check_port_free(host, port)
        with database_errors_in_one_line():
            self.prepare()
        children = Children(self.children(host=host, port=port, grace=grace, no_web=no_web),
                            on_restart=self.restarted)
        stopping = StopFlag()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, stopping.signal)
        children.start()
        if not no_web:
            self.stdout.write(self.style.SUCCESS(f"Taskdeck is running at http://{host}:{port}/admin/  (Ctrl-C to stop)"))
        else:
            self.stdout.write("Taskdeck worker and scheduler running (Ctrl-C to stop).")
        self.stdout.flush()
        report = RestartReport(children)
        gave_up = None
        try:
            children.watch(stopping, tick=report.tick)
        except ChildKeepsDying as error:
            self.stderr.write(f"{error}; stopping Taskdeck.")
            gave_up = error
        self.shutdown(children, grace=grace)
        if gave_up:
            raise CommandError(str(gave_up))

    def prepare(self) -> None:
        """Definitions loaded, runs left by a hard stop ended, the queue rebuilt from the runs."""
        try:
            report = services.sync_definitions(all_definitions())
        except DefinitionError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            f"Tasks: {len(report['created']) + len(report['updated'])} loaded"
            + (f", {len(report['removed'])} removed" if report["removed"] else "")
        )
        lost = services.reap_lost_runs()
        if lost:
            self.stdout.write(f"Ended {len(lost)} run(s) left running by a previous stop (crashed).")
        requeued = services.rebuild_queue()
        if requeued:
            self.stdout.write(f"{requeued} queued run(s) waiting for a worker.")

    @staticmethod
    def children(*, host: str, port: int, grace: float, no_web: bool) -> list[Child]:
        python = sys.executable
        children = [
            Child("worker", [python, "manage.py", "worker", "--grace", str(grace)]),
            Child("scheduler", [python, "manage.py", "scheduler"]),
            Child("supervisor", [python, "manage.py", "supervisor"]),
        ]
        if not no_web:
            children.insert(0, Child("web", [
                python, "-m", "uvicorn", "config.asgi:application", "--host", host, "--port", str(port),
                "--lifespan", "off", "--log-level", "warning", "--no-server-header", "--ws-max-size", "65536",
            ]))
        return children

    def restarted(self, child: Child) -> None:
        self.stderr.write(f"Started the {child.name} process again (restart {child.restarts}).")

    def shutdown(self, children: Children, *, grace: float) -> None:
        """All asked to stop at once: the worker gives runs ``grace`` s (then ends them shutdown),
        the supervisor stops its instances, web and scheduler wind down meanwhile; whatever
        remains is killed."""
        self.stdout.write("Stopping Taskdeck...")
        children.stop(first=("worker", "supervisor"), then=("web", "scheduler"), grace=grace + 5, last_grace=5)
        try:
            ended = services.reap_lost_runs()  # runs of a worker that could not end them itself
        except DatabaseError as error:
            self.stderr.write(f"Could not end the last runs ({error}); the next start ends them.")
            ended = []
        if ended:
            self.stdout.write(f"Ended {len(ended)} run(s) whose worker stopped.")
        self.stdout.write("Taskdeck stopped.")


def check_port_free(host: str, port: int) -> None:
    """Fail at once, in one line, when the web server could never listen (rather than restarting it)."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind((host, port))
    except OSError as error:
        raise CommandError(f"Cannot listen on {host}:{port} ({error.strerror}); is Taskdeck already running? "
                           "Choose another with --port or PORT.") from None


class RestartReport:
    """serve's heartbeat, carrying how often each child was started again (shown by /api/health)."""

    def __init__(self, children: Children) -> None:
        self.children = children
        self.next_at = 0.0
        self.reported: dict[str, int] | None = None
        self.failing = False

    def tick(self) -> None:
        restarts = self.children.restarts()
        if clock.monotonic() < self.next_at and restarts == self.reported:
            return
        self.next_at = clock.monotonic() + HEARTBEAT_EVERY
        try:
            services.beat(HeartbeatRole.SERVE, details={"restarts": restarts})
        except DatabaseError as error:
            if not self.failing:
                logger.warning("serve could not write its heartbeat (%s).", error)
            self.failing = True
            return
        self.failing = False
        self.reported = restarts
