"""python manage.py serve: web + worker + scheduler on one machine, stopped together."""
from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from tasks_app import services
from tasks_app.exceptions import DefinitionError
from tasks_app.models import Run
from tasks_app.processes import Child
from tasks_app.registry import all_definitions

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Start the web server (ASGI), a django-q2 worker cluster and the scheduler; Ctrl-C stops all three."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default=settings.HOST, help="Address to bind (default %(default)s).")
        parser.add_argument("--port", type=int, default=settings.PORT, help="Port (default %(default)s).")
        parser.add_argument("--grace", type=float, default=5.0, help="Seconds running runs get to stop on shutdown.")
        parser.add_argument("--no-web", action="store_true", help="Only the worker and the scheduler.")

    def handle(self, *args: Any, host: str, port: int, grace: float, no_web: bool, **options: Any) -> None:
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

        python = sys.executable
        children = [
            Child("worker", [python, "manage.py", "qcluster"]),
            Child("scheduler", [python, "manage.py", "scheduler"]),
        ]
        if not no_web:
            children.insert(0, Child("web", [
                python, "-m", "uvicorn", "config.asgi:application", "--host", host, "--port", str(port),
                "--lifespan", "off", "--log-level", "warning", "--no-server-header",
            ]))
        stopping = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stopping.set())
        for child in children:
            child.start()
        if not no_web:
            self.stdout.write(self.style.SUCCESS(f"Taskdeck is running at http://{host}:{port}/admin/  (Ctrl-C to stop)"))
        else:
            self.stdout.write("Taskdeck worker and scheduler running (Ctrl-C to stop).")
        self.stdout.flush()

        failed = None
        while not stopping.wait(0.2):
            failed = next((child for child in children if not child.alive()), None)
            if failed:
                self.stderr.write(f"The {failed.name} process exited (code {failed.process.returncode}); stopping Taskdeck.")
                break
        self.shutdown(children, grace=grace)
        if failed:
            raise CommandError(f"{failed.name} process exited unexpectedly")

    def shutdown(self, children: list[Child], *, grace: float) -> None:
        """Web and scheduler first (no new work), then give running runs ``grace`` s, then workers."""
        self.stdout.write("Stopping Taskdeck...")
        asked = services.request_shutdown()
        by_name = {child.name: child for child in children}
        others = [by_name[name] for name in ("web", "scheduler") if name in by_name]
        for child in others:
            child.terminate()  # they wind down while the runs get their grace period
        deadline = time.monotonic() + grace
        while asked and time.monotonic() < deadline and Run.objects.running().exists():
            time.sleep(0.2)
        for child in others:
            child.stop(grace=max(0.5, deadline - time.monotonic()))
        by_name["worker"].stop(grace=3)
        ended = services.end_shutdown_runs()
        if ended:
            self.stdout.write(f"Ended {len(ended)} run(s) as shutdown.")
        self.stdout.write("Taskdeck stopped.")
