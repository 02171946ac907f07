"""python manage.py tasks list | run | log | cancel | show | set | sync | start | stop | restart

``set`` changes what an operator may change on a task (interval, cron and zone, enabled)
through the same services as the API and admin; it only parses the options and prints.

``run --wait`` and ``log --follow`` follow a run (management/follow.py reads it): the run's output
goes to stdout as the bytes it wrote, so ``> file`` keeps them exactly; what Taskdeck says (the
state, the progress bar, the end) goes to stderr.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper
from django.db import OperationalError, transaction

from tasks_app import selectors, services, text
from tasks_app.definitions.load import all_definitions
from tasks_app.exceptions import DefinitionError, TaskdeckError
from tasks_app.management.follow import RunFollower, stored_log
from tasks_app.management.listing import task_table
from tasks_app.models import IntervalUnit, Run, RunStatus, RunTrigger, Task, TaskKind
from tasks_app.scheduling import rules

BAR_WIDTH = 30

#: ``--interval`` values: a whole number, then m, h or d; no unit means minutes.
INTERVAL_PATTERN = re.compile(r"([0-9]+)([mhd]?)")
INTERVAL_UNITS = {"": IntervalUnit.MINUTES, "m": IntervalUnit.MINUTES, "h": IntervalUnit.HOURS, "d": IntervalUnit.DAYS}
INTERVAL_EXAMPLES = "(like 90m, 6h, 2d)"


class Command(BaseCommand):
    help = "List, run, cancel and inspect Taskdeck tasks; change a task's schedule or enable/disable it."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True,
                                    metavar="{list,run,log,cancel,show,set,sync,start,stop,restart}")
        sub.add_parser("list", help="List tasks with their status.")
        run = sub.add_parser(
            "run", help="Trigger a task; prints the run id.",
            description="Prints the run id. With --wait, then the run's output as it is written (stdout, "
                        "byte for byte), its state and its end (stderr); Ctrl-C stops following, not the run.",
        )
        run.add_argument("task_id")
        run.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="A parameter (repeatable).")
        run.add_argument("--dry-run", action="store_true", help="Ask the task to change nothing.")
        run.add_argument("--force", action="store_true", help="Run even if the overlap policy would refuse.")
        run.add_argument(
            "--wait", action="store_true",
            help="Follow the run: its output to stdout, progress and its end to stderr; exit 1 unless it completes.",
        )
        log = sub.add_parser(
            "log", help="Print a run's output (its log); --follow tails it until the run ends.",
            description="The output as the run wrote it (bytes, unchanged), to stdout; a line "
                        "[taskdeck: N bytes dropped] stands where log_max_size dropped bytes.",
        )
        log.add_argument("run_id")
        log.add_argument(
            "--follow", "-f", action="store_true",
            help="Keep printing output as it is written until the run ends; then its end to stderr, "
                 "exit 1 unless it completed.",
        )
        cancel = sub.add_parser("cancel", help="Cancel a run.")
        cancel.add_argument("run_id")
        show = sub.add_parser("show", help="Show a run.")
        show.add_argument("run_id")
        change = sub.add_parser(
            "set",
            help="Change a task's interval, cron and time zone, or enable/disable it; prints the next run.",
            description="A schedule change and --enable/--disable may be combined: the schedule is applied first.",
        )
        change.add_argument("task_id")
        change.add_argument(
            "--interval", metavar="N[m|h|d]",
            help="Interval tasks: every N minutes (m, or no unit), hours (h) or days (d).",
        )
        change.add_argument("--cron", metavar="EXPRESSION", help='Cron tasks: a 5-field expression such as "30 2 * * *".')
        change.add_argument(
            "--timezone", metavar="ZONE",
            help="Cron tasks: the zone the expression is read in (e.g. Europe/Paris); alone, keeps the expression.",
        )
        change.add_argument("--enable", action="store_true", help="Enable the task (scheduling resumes).")
        change.add_argument("--disable", action="store_true", help="Disable the task (no scheduled or manual runs).")
        sub.add_parser("sync", help="Load task definitions (code and definitions file) into the database.")
        for verb, about in (("start", "Start a service's stopped and fatal instances (a fresh retry budget)."),
                           ("stop", "Stop every instance of a service; they stay stopped until started again."),
                           ("restart", "Stop a service's instances and start them again.")):
            sub.add_parser(verb, help=about, description=f"{about} Its supervisor acts within a second.").add_argument(
                "task_id")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        refuse_unstorable(options)
        try:
            getattr(self, f"do_{action}")(**options)
        except (TaskdeckError, DefinitionError) as error:
            raise CommandError(error.detail) from None
        except OperationalError as error:
            raise CommandError(f"Database error: {error}") from None

    # -- subcommands --

    def do_list(self, **options: Any) -> None:
        tasks = list(Task.objects.present())
        if not tasks:
            self.stdout.write("No tasks. Declare one with @task in an app's tasks.py, then run: manage.py tasks sync")
            return
        for line in task_table(tasks):
            self.stdout.write(line)

    def do_run(self, *, task_id: str, param: list[str], dry_run: bool, force: bool, wait: bool, **options: Any) -> None:
        values = {}
        for item in param:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise CommandError(f"--param takes KEY=VALUE, got {item!r}")
            values[key] = value
        run = services.trigger(
            task_id, source=RunTrigger.MANUAL, requested_by="cli", parameters=values, dry_run=dry_run, force=force
        )
        self.stdout.write(str(run.id))
        self.stdout.flush()
        if wait:
            self.follow_to_the_end(run.id)

    def do_start(self, *, task_id: str, **options: Any) -> None:
        self.service_asked(services.start_service(task_id), "start")

    def do_stop(self, *, task_id: str, **options: Any) -> None:
        self.service_asked(services.stop_service(task_id), "stop")

    def do_restart(self, *, task_id: str, **options: Any) -> None:
        self.service_asked(services.restart_service(task_id), "restart")

    def service_asked(self, task: Task, verb: str) -> None:
        state, instances = selectors.service_states([task])[task.id]
        self.stdout.write(f"{task.id}: {verb} requested ({len(instances)} instance(s), {state} now); "
                          "its supervisor acts within a second.")

    def do_log(self, *, run_id: str, follow: bool, **options: Any) -> None:
        run = services.get_run(run_id)  # an unknown or malformed id: one line
        if follow:
            self.follow_to_the_end(run.id)
            return
        output = self.stdout.buffer
        with self.interruptible(run.id, following=False):
            for data in stored_log(run.id):
                output.write(data)
            output.flush()

    def do_cancel(self, *, run_id: str, **options: Any) -> None:
        run = services.cancel_run(run_id)
        if run.is_active:
            self.stdout.write(f"Run {run.id}: cancel requested; it will stop within seconds.")
        else:
            self.stdout.write(f"Run {run.id}: {run.status}.")

    def do_show(self, *, run_id: str, **options: Any) -> None:
        run = services.get_run(run_id)
        fields = [
            ("Run", str(run.id)),
            ("Task", f"{run.task_id} ({run.task.title})"),
            ("Status", run.status + (f" ({run.end_reason})" if run.end_reason else "")),
            ("Trigger", f"{run.trigger} by {run.triggered_by or '-'}"),
            ("Parameters", ", ".join(f"{k}={v}" for k, v in run.parameters.items()) or "-"),
            ("Dry run", "yes" if run.dry_run else "no"),
            ("Created", _when(run.created_at)),
            ("Started", _when(run.started_at)),
            ("Ended", _when(run.ended_at)),
            ("Duration", f"{run.duration:.2f} s" if run.duration is not None else "-"),
            ("Progress", _progress_text(run)),
            ("Items", f"{run.items_processed} processed, {run.items_affected} affected"),
            *([("Process", _process_text(run))] if run.pid or run.exit_code is not None or run.exit_signal else []),
        ]
        if run.summary.get("actions"):
            fields.append(("Actions", ", ".join(f"{k} {v}" for k, v in sorted(run.summary["actions"].items()))))
        if run.result is not None:
            fields.append(("Result", str(run.result)))
        if run.error:
            fields.append(("Error", run.error))
        for label, value in fields:
            self.stdout.write(f"{label + ':':<12}{value}")

    def do_set(
        self,
        *,
        task_id: str,
        interval: str | None,
        cron: str | None,
        timezone: str | None,
        enable: bool,
        disable: bool,
        **options: Any,
    ) -> None:
        """Every option is checked before anything is written, then the changes apply all or none.

        The schedule goes first, so a schedule the task refuses (an interval for a cron task)
        leaves it enabled or disabled as it was. Lines are printed after the commit, so nothing
        printed describes a change that was rolled back.
        """
        if enable and disable:
            raise CommandError("--enable and --disable contradict each other; give one of them.")
        if interval is not None and cron is not None:
            raise CommandError("--interval and --cron cannot be combined: a task runs on an interval or on a cron.")
        if interval is not None and timezone is not None:
            raise CommandError("--timezone applies to cron schedules; it cannot be combined with --interval.")
        if interval is None and cron is None and timezone is None and not (enable or disable):
            raise CommandError("Nothing to change: give --interval, --cron, --timezone, --enable or --disable.")
        every = _parse_interval(interval) if interval is not None else None
        if cron is not None:
            cron = _checked("--cron", rules.check_cron, " ".join(cron.split()), cron)
        if timezone is not None:
            _checked("--timezone", rules.check_timezone, timezone, timezone)

        lines = []
        with transaction.atomic():
            if every is not None:
                task = services.set_interval(task_id, interval=every[0], unit=every[1])
                lines.append(f"{task.id}: {_interval_text(task)}; {_next_run_text(task)}")
            elif cron is not None or timezone is not None:
                # --timezone alone keeps the expression: read under the same transaction as the write.
                cron_string = cron if cron is not None else services.get_task(task_id).cron_string
                task = services.set_schedule(task_id, cron_string=cron_string, timezone=timezone)
                lines.append(f'{task.id}: cron "{task.cron_string}" ({task.timezone}); {_next_run_text(task)}')
            if enable or disable:
                task = services.set_enabled(task_id, enabled=enable)
                lines.append(f"{task.id}: {'enabled' if task.enabled else 'disabled'}; {_next_run_text(task)}")
        for line in lines:
            self.stdout.write(line)

    def do_sync(self, **options: Any) -> None:
        report = services.sync_definitions(all_definitions())
        for key in ("created", "updated", "removed"):
            if report[key]:
                self.stdout.write(f"{key.capitalize()}: {', '.join(report[key])}")
        self.stdout.write(f"{len(report['created']) + len(report['updated'])} task(s) loaded.")

    # -- following a run --

    def follow_to_the_end(self, run_id: Any) -> None:
        """Follow the run; a CommandError (exit 1) naming its end unless it completed."""
        run = self.follow(run_id)
        if run.status != RunStatus.COMPLETED:
            raise CommandError(f"Run {run.id} {run.status} ({run.end_reason})" + (f": {run.error}" if run.error else ""))

    def follow(self, run_id: Any) -> Run:
        """The run's output to stdout's bytes as it is stored, its state to stderr, until it ends."""
        output = self.stdout.buffer
        status = StatusLine(self.stderr, shares_terminal=self.stdout.isatty())
        run = None
        with self.interruptible(run_id, following=True, status=status):
            for item in RunFollower(run_id).items():
                if isinstance(item, bytes):
                    status.before_output()
                    output.write(item)
                    output.flush()
                    status.after_output(item)
                else:
                    run = item
                    if run.is_active:  # the end has a line of its own
                        status.show(_bar(run))
        assert run is not None  # the follower's last item is the ended run
        status.end()
        duration = f" in {run.duration:.1f} s" if run.duration is not None else ""
        status.say(f"Run {run.id} {run.status} ({run.end_reason}){duration}")
        return run

    @contextmanager
    def interruptible(self, run_id: Any, *, following: bool, status: StatusLine | None = None) -> Iterator[None]:
        """Ctrl-C (exit 130), or a reader of stdout that went away (``| head``; exit 1), stops the
        command and never the run: a follower says so, and how to follow it again."""
        try:
            yield
        except (KeyboardInterrupt, BrokenPipeError) as stop:
            if isinstance(stop, BrokenPipeError):
                # Later flushes (Python's own at exit) would fail again on the closed pipe.
                os.dup2(os.open(os.devnull, os.O_WRONLY), self.stdout.fileno())
            if following:
                status = status or StatusLine(self.stderr, shares_terminal=False)
                status.end(keep=True)  # where the run was when the follower stopped
                status.say(f"Stopped following run {run_id}; the run goes on. "
                           f"Follow it again: manage.py tasks log {run_id} --follow")
            raise SystemExit(130 if isinstance(stop, KeyboardInterrupt) else 1) from None


class StatusLine:
    """A followed run's state on stderr: one line per change, or, on a terminal, one line drawn
    again in place. When stdout shows on the terminal too, the drawn line is wiped before output
    is written, and drawn again below it once the output has ended a line (never glued to half a
    line the run has not finished)."""

    def __init__(self, stream: OutputWrapper, *, shares_terminal: bool) -> None:
        self.stream = stream
        self.redraw = stream.isatty()
        self.shared = self.redraw and shares_terminal
        self.text = ""
        self.drawn = 0
        """Characters of the line drawn in place (0: none is)."""
        self.at_line_start = True
        """The output written so far ends a line (or there is none)."""

    def show(self, text: str) -> None:
        if text == self.text:
            return
        self.text = text
        if not self.redraw:
            self.say(text)
        elif not self.shared or self.at_line_start:
            self._draw()

    def before_output(self) -> None:
        if self.shared and self.drawn:
            self._wipe()

    def after_output(self, data: bytes) -> None:
        self.at_line_start = data.endswith(b"\n")
        if self.shared and self.at_line_start and self.text:
            self._draw()

    def end(self, *, keep: bool = False) -> None:
        """Make room for a last line: the drawn line is wiped (the last line takes its place; it
        may be stale by then), or kept (``keep``) with the last line below; a half line of output
        is ended first."""
        if self.drawn and not keep:
            self._wipe()
        elif self.drawn or (self.shared and not self.at_line_start):
            self._write("\n")
        self.drawn = 0
        self.at_line_start = True

    def say(self, line: str) -> None:
        self._write(line + "\n")

    def _draw(self) -> None:
        self._write("\r" + self.text.ljust(self.drawn))
        self.drawn = len(self.text)

    def _wipe(self) -> None:
        self._write("\r" + " " * self.drawn + "\r")
        self.drawn = 0

    def _write(self, text: str) -> None:
        self.stream.write(text, style_func=_plain, ending="")
        self.stream.flush()


def _plain(text: str) -> str:
    """No colour: Django paints everything on stderr as an error."""
    return text


def _bar(run: Run) -> str:
    if run.status == RunStatus.QUEUED:
        return "queued: waiting for a worker"
    percent = run.percent
    if percent is None:
        return f"{run.status}: {run.progress_message or (f'pid {run.pid}' if run.pid else 'working')}"
    filled = int(BAR_WIDTH * percent / 100)
    return f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {percent:5.1f}% {run.progress_message}"


def _process_text(run: Run) -> str:
    """pid 4242, exit code 3 (or killed by signal SIGTERM): a command run's process."""
    parts = [f"pid {run.pid}"] if run.pid else []
    if run.exit_signal:
        parts.append(f"killed by signal {run.exit_signal}")
    elif run.exit_code is not None:
        parts.append(f"exit code {run.exit_code}")
    return ", ".join(parts)


def _progress_text(run: Run) -> str:
    if run.progress_current is None:
        return "-"
    total = f"/{run.progress_total:g}" if run.progress_total else ""
    percent = f" ({run.percent}%)" if run.percent is not None else ""
    return f"{run.progress_current:g}{total}{percent} {run.progress_message}".rstrip()


def _when(value: Any) -> str:
    return value.isoformat() if value else "-"


def _quoted(value: str) -> str:
    """Double-quoted with escapes, so an option value with a newline still gives a one-line error."""
    return json.dumps(value, ensure_ascii=False)


def _parse_interval(value: str) -> tuple[int, str]:
    """``--interval`` ("90m", "6h", "2d") as (number, unit) for services.set_interval, checked
    by scheduling/rules.py (at least 1, at most 10 years: past that the next run overflows a datetime)."""
    match = INTERVAL_PATTERN.fullmatch(value.strip())
    if match is None:
        raise CommandError(
            f"--interval: {_quoted(value)} is not a whole number of minutes, hours or days {INTERVAL_EXAMPLES}."
        )
    return _checked("--interval", rules.check_interval, value, int(match[1]), INTERVAL_UNITS[match[2]].value)


def _checked(option: str, check: Any, typed: str, *values: Any) -> Any:
    """``check(*values)``, or a one-line CommandError naming ``option`` and quoting what was typed.

    services.set_interval and set_schedule check again; a bad value must stop here anyway, with
    the option's name in the message."""
    try:
        return check(*values)
    except rules.InvalidValue as error:
        raise CommandError(f"{option}: {error.message(_quoted(typed))}.") from None


def _interval_text(task: Task) -> str:
    unit = str(task.interval_unit or IntervalUnit.MINUTES)
    return f"every {task.interval} {unit.removesuffix('s') if task.interval == 1 else unit}"


def _next_run_text(task: Task) -> str:
    if task.kind == TaskKind.WATCHER:
        return ("its supervisor starts watching within a second" if task.enabled
                else "its supervisor stops watching within a second")
    if task.next_run_at is None:
        return "no next run"
    return f"next run {task.next_run_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


#: The command's own options (Django's, such as --settings, are not text Taskdeck stores).
_TEXT_OPTIONS = ("task_id", "run_id", "param", "interval", "cron", "timezone")


def refuse_unstorable(options: dict[str, Any]) -> None:
    """Arguments are text the database must take: bytes that are not UTF-8 (which Python hands
    over as lone surrogates) or a NUL are refused here, naming the argument."""
    for name in _TEXT_OPTIONS:
        values = options.get(name)
        for value in values if isinstance(values, list) else [values]:
            bad = text.first_unstorable(value, location=name) if isinstance(value, str) else None
            if bad is not None:
                label = name if name.endswith("_id") else f"--{name}"
                raise CommandError(f'{label}: "{text.storable(value)}" {bad.clause}')
