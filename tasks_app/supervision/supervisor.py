"""The supervisor process's loop (``manage.py supervisor``, or beside the others in ``serve``):
keeps every wanted service instance running, exactly once across hosts, and the file watchers
watching (``watching.Watching``, owned the same way, looked after at the same turns).

Every ``SUPERVISOR_INTERVAL`` it reads the services and their instance rows (``sync``): it holds
a lease on each wanted instance it can (services/leases.py; one taken from a dead supervisor
first has that supervisor's runs ended ``crashed``), starts what it newly holds, and acts on what
operators asked (stop, start, restart) and on services disabled, removed or shrunk. Between two
looks it waits on one poll for every instance's output and exit (``RunningProcess``, the command
executor's own), so 200 idle instances cost next to nothing.

An instance's lifetime is a Run (services/instances.py). When its process exits, the restart
policy (``restarts.after_exit``) says whether it starts again, after which delay, or goes
``fatal``. It is ``starting`` until it has been up ``healthy_after`` seconds, then ``running``
(its streak reset). A stop sends ``stop_signal`` to the instance's group and SIGKILL after its
``graceful_stop``; at shutdown every instance is stopped, services that others depend on last,
and their runs end ``shutdown``. Time comes from ``clock``, so tests move it.
"""
from __future__ import annotations

import logging
import os
import select
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db import DatabaseError, close_old_connections

from tasks_app import clock, services
from tasks_app.conf import taskdeck_settings
from tasks_app.execution.command_line import SpawnRefused
from tasks_app.execution.output import LogWriter
from tasks_app.execution.running import RunningProcess, ending
from tasks_app.models import EndReason, HeartbeatRole, InstanceState, Run, Task, TaskKind
from tasks_app.platform import wakeups
from tasks_app.platform.stopflag import StopFlag
from tasks_app.supervision.health import Probe
from tasks_app.supervision.owned import Instance, instance_exists, lease_name
from tasks_app.supervision.records import TurnRecords
from tasks_app.supervision.order import boot_wait, shutdown_levels
from tasks_app.supervision.restarts import after_exit
from tasks_app.supervision.watching import Watching

logger = logging.getLogger(__name__)

#: Seconds between the supervisor's own heartbeats.
HEARTBEAT_EVERY = 5.0


@dataclass
class Supervisor:
    interval: float = field(default_factory=lambda: float(taskdeck_settings.SUPERVISOR_INTERVAL))
    ttl: float = field(default_factory=lambda: float(taskdeck_settings.LEASE_TTL))

    def __post_init__(self) -> None:
        self.owner = services.Owner(services.HOSTNAME, os.getpid(), uuid.uuid4().hex[:12])
        self.instances: dict[str, Instance] = {}
        self.stopping = StopFlag()
        self._poller = select.poll()
        self._by_fd: dict[int, Instance] = {}
        self._wakeup = wakeups.listen(services.supervisor_wakeup(os.getpid()))
        if self._wakeup is not None:  # an operator's ask on this host: look at the database now
            self._poller.register(self._wakeup.fileno(), select.POLLIN)
        self._next_sync = 0.0
        self.healthy_services: set[str] = set()
        """Services with an instance running (healthy), as last read, and as seen here since."""
        self.healthy_after: dict[str, float] = {}
        """Each service's healthy_after, for the wait of those that depend on it."""
        self._next_beat = 0.0
        self._next_run_beat = 0.0
        self.records = TurnRecords()
        self.watching = Watching(self.owner, ttl=self.ttl)
        self._poller.register(self.watching.fileno(), select.POLLIN)  # its watches' threads wake the loop

    # -- the loop --

    def run_forever(self) -> None:
        logger.info("Supervisor running (pid %s).", os.getpid())
        try:
            while not self.stopping.is_set():
                self.step()
        finally:
            self.shutdown()

    def stop(self) -> None:
        """From a signal handler or another thread: the loop's wait ends at once (its own wake-up),
        not at the next look, and it shuts down. Takes no lock (platform/stopflag.py)."""
        self.stopping.signal()
        wakeups.wake(services.supervisor_wakeup(os.getpid()))

    def step(self, *, wait: float | None = None) -> None:
        """One turn: look at the database when due, start what is due, wait for output and exits
        (at most ``wait`` seconds, or until the next thing due), end what exited."""
        now = clock.monotonic()
        if now >= self._next_sync:
            self._next_sync = now + self.interval
            try:
                close_old_connections()
                self.sync()
            except DatabaseError as error:
                logger.warning("Supervisor could not read or renew its services (%s); trying again.", error)
        self.start_due()
        self.wait(self._timeout() if wait is None else wait)
        self.end_exited()
        self.records.write_ends()
        self.mark_healthy()
        self.check_health()
        self.watching.turn()
        self.records.write_healthy()
        self.beat()

    def _timeout(self) -> float:
        now = clock.monotonic()
        due = [self._next_sync, self.watching.next_due()]
        for instance in self.instances.values():
            due.extend(instance.due(now))
        return max(0.0, min(due) - now)

    # -- what the database says --

    def sync(self) -> None:
        """One look: the services and watchers read together (every second: only what a look
        needs), then each kind followed."""
        tasks, watchers = {}, []
        for task in Task.objects.filter(kind__in=(TaskKind.SERVICE, TaskKind.WATCHER)).only(
                "id", "kind", "enabled", "removed_at", "process", "watch"):
            if task.kind == TaskKind.SERVICE and task.process is not None:
                tasks[task.id] = task
            elif task.kind == TaskKind.WATCHER and task.watch is not None:
                watchers.append(task)
        self.sync_services(tasks)
        self.watching.sync(watchers)

    def sync_services(self, tasks: dict[str, Task]) -> None:
        live = [task for task in tasks.values() if task.enabled and task.removed_at is None]
        rows = {(row.task_id, row.index): row for row in services.look_at_instances(live)}
        self.healthy_services = {row.task_id for row in rows.values() if row.state == InstanceState.RUNNING}
        self.healthy_services |= {instance.task_id for instance in self.instances.values() if instance.healthy}
        self.healthy_after = {task.id: float(task.process.get("healthy_after", 10)) for task in live}
        wanted = {lease_name(*key): row for key, row in rows.items()
                  if row.wanted and instance_exists(tasks.get(row.task_id), row.index)}
        held = services.hold_leases(set(wanted) | set(self.instances), owner=self.owner, ttl=self.ttl)
        for name in set(self.instances) - held.names:
            self.lost(self.instances[name])
        taken = [wanted[name] for name in held.taken if name in wanted and name not in self.instances]
        self.take(tasks, taken)
        for instance in list(self.instances.values()):
            row = rows.get((instance.task_id, instance.index))
            task = tasks.get(instance.task_id)
            self.follow_operator(instance, task, row)
        unused = [name for name in held.names if name not in self.instances]
        services.release_leases(unused, owner=self.owner)

    def take(self, tasks: dict[str, Task], rows: list[services.InstanceRow]) -> None:
        """Instances this supervisor newly holds: what a dead owner left ends first (for all of
        them together); then each starts now, unless it is fatal (an operator starts it)."""
        for run in services.end_previous_instance_runs([(row.task_id, row.index) for row in rows]):
            logger.warning("Took over %s[%d] from a lost supervisor; its run %s ended crashed.",
                           run.task_id, run.instance_index, run.id)
        for row in rows:
            process = tasks[row.task_id].process
            instance = Instance(row.task_id, row.index, dict(process), tuple(process.get("depends_on") or ()),
                                int(process.get("priority", 0)), requests=(row.start_requested, row.restart_requested))
            if row.state == InstanceState.FATAL:
                instance.state = InstanceState.FATAL
            else:
                instance.next_start = clock.monotonic()
            self.instances[instance.name] = instance

    def follow_operator(self, instance: Instance, task: Task | None, row: services.InstanceRow | None) -> None:
        """Stops, starts and restarts asked for since the last look; a service disabled, removed
        or shrunk past this instance stops it."""
        if row is None or task is None or not row.wanted or not instance_exists(task, instance.index):
            self.stop_instance(instance, EndReason.CANCELLED)
            return
        if task.process != instance.settings:  # an edit: the next start uses it
            instance.settings = dict(task.process)
            instance.dependencies = tuple(task.process.get("depends_on") or ())
            instance.priority = int(task.process.get("priority", 0))
        started, restarted = instance.requests
        instance.requests = (row.start_requested, row.restart_requested)
        if row.restart_requested > restarted:
            instance.streak = 0
            if instance.process is not None:
                self.stop_instance(instance, "restart")
            else:
                instance.next_start = clock.monotonic()
        elif row.start_requested > started and instance.process is None:
            instance.streak = 0
            instance.next_start = clock.monotonic()

    # -- starting --

    def start_due(self) -> None:
        if not self.records.write_ends():  # an instance's old run must be ended before its next one begins
            return
        now = clock.monotonic()
        due = [instance for instance in self.instances.values()
               if instance.process is None and instance.next_start is not None and instance.next_start <= now
               and not instance.stopping_for]
        starting = []
        for instance in sorted(due, key=lambda item: (item.priority, item.task_id, item.index)):
            note = boot_wait(instance, healthy_services=self.healthy_services, healthy_after=self.healthy_after,
                             now=now)
            if note is not None:
                starting.append((instance, note))
        if not starting or self.stopping.is_set():
            return
        try:
            self.start(starting)
        except DatabaseError as error:
            logger.warning("Could not start %d instance(s) (%s); trying again.", len(starting), error)
            for instance, _ in starting:
                instance.next_start = now + self.interval

    def start(self, starting: list[tuple[Instance, str]]) -> None:
        """Start these instances, in this order (each with the note for its log): their runs
        begun in one transaction, their processes spawned, their pids written in another (at
        boot, 200 instances cost two transactions, not 400)."""
        restarts = [instance.restarts + (1 if instance.started else 0) for instance, _ in starting]
        runs = services.begin_instances([(instance.task_id, instance.index, count)
                                         for (instance, _), count in zip(starting, restarts)], supervisor_pid=os.getpid())
        up = []
        for (instance, note), run, count in zip(starting, runs, restarts):
            pid = self.spawn(instance, run, restarts=count, note=note)
            if pid is not None:
                up.append((run, pid))
        try:
            services.instances_up(up)
        except DatabaseError as error:  # they run; only their pids are not on record
            logger.warning("Could not record the pids of %d started instance(s) (%s).", len(up), error)

    def spawn(self, instance: Instance, run: Run, *, restarts: int, note: str) -> int | None:
        """The instance's process for ``run``; its pid, or None when it could not start (a
        failed start, for the restart policy)."""
        instance.booted, instance.boot_deadline = True, None
        instance.run, instance.restarts, instance.next_start, instance.overflowed = run, restarts, None, False
        instance.started += 1
        settings = instance.settings
        instance.log = LogWriter(run.id, task_id=run.task_id, max_size=int(settings["log_max_size"]),
                                 on_full=settings["log_on_full"], on_overflow=lambda: self._overflowed(instance))
        env = {"TASKDECK_RUN_ID": str(run.id), "TASKDECK_TASK_ID": run.task_id, "TASKDECK_ATTEMPT": "1",
               "TASKDECK_INSTANCE_INDEX": str(instance.index)}
        if note:
            instance.log.write(note.encode())
        try:
            process = RunningProcess.start(settings, log=instance.log, run_env=env)
        except SpawnRefused as error:
            instance.log.close()
            self.after_exit(instance, reason=EndReason.FAILED, fields={"error": str(error)}, failed=True)
            return None
        instance.process, instance.up_since, instance.healthy = process, clock.monotonic(), False
        instance.state = InstanceState.STARTING
        check = settings.get("health_check")
        instance.probe = Probe(check, env=env) if check else None
        for fd in process.descriptors():
            self._poller.register(fd, select.POLLIN)
            self._by_fd[fd] = instance
        return process.pid

    def _overflowed(self, instance: Instance) -> None:
        """The instance's log passed its cap with kill_task (from the log flusher's thread)."""
        instance.overflowed = True

    # -- waiting, ending --

    def wait(self, timeout: float) -> None:
        for fd, _ in self._poller.poll(timeout * 1000):
            if self._wakeup is not None and fd == self._wakeup.fileno():
                wakeups.drain(self._wakeup)
                self._next_sync = 0.0
                continue
            instance = self._by_fd.get(fd)
            if instance is not None and instance.process is not None and not instance.process.handle(fd):
                self._forget(fd)

    def _forget(self, fd: int) -> None:
        if self._by_fd.pop(fd, None) is not None:
            self._poller.unregister(fd)

    def end_exited(self) -> None:
        for instance in list(self.instances.values()):
            process = instance.process
            if process is None:
                continue
            if instance.overflowed and not process.stopping:
                process.stop()
            process.tick()
            if not process.exited:
                continue
            for fd in process.descriptors():
                self._forget(fd)
            returncode = process.finish()
            instance.process = None
            self.ended(instance, returncode)

    def ended(self, instance: Instance, returncode: int) -> None:
        assert instance.log is not None
        instance.log.close()
        outcome = ending(returncode, exit_codes=instance.settings.get("exit_codes", [0]), stopped=False)
        fields = dict(outcome.fields)
        reason, failed = outcome.reason, outcome.reason != EndReason.SUCCESS
        if instance.overflowed:
            reason, failed = EndReason.LOG_OVERFLOW, True
            fields["error"] = (f"Its output passed log_max_size ({int(instance.settings['log_max_size']):,} bytes) "
                               "with log_on_full = kill_task; the instance was stopped.")
        if instance.stopping_for:
            why = instance.stopping_for
            instance.stopping_for = ""
            fields.pop("error", None)
            if why == "unhealthy":
                assert instance.probe is not None
                fields["error"] = (f"Its health check failed {instance.probe.failures} times in a row "
                                   f"({instance.probe.last_error}); restarted.")
                self.after_exit(instance, reason=EndReason.FAILED, fields=fields, failed=True)
                return
            if why == "restart":
                self.finish(instance, reason=EndReason.CANCELLED, state=InstanceState.STARTING,
                            fields={**fields, "error": "Restarted by an operator."})
                instance.next_start, instance.streak = clock.monotonic(), 0
                return
            message = "Taskdeck stopped." if why == EndReason.SHUTDOWN else "Stopped by an operator."
            self.finish(instance, reason=why, state=InstanceState.STOPPED, fields={**fields, "error": message})
            if why != EndReason.SHUTDOWN:
                self.let_go(instance)
            return
        self.after_exit(instance, reason=reason, fields=fields, failed=failed)

    def after_exit(self, instance: Instance, *, reason: str, fields: dict[str, Any], failed: bool) -> None:
        decision = after_exit(instance.settings, failed=failed, healthy=instance.healthy, streak=instance.streak)
        instance.streak = decision.streak
        next_start_at = None
        if decision.state == InstanceState.BACKOFF:
            instance.next_start = clock.monotonic() + decision.delay
            next_start_at = clock.now() + timedelta(seconds=decision.delay)
        self.finish(instance, reason=reason, state=decision.state, fields=fields, next_start_at=next_start_at,
                    message=decision.reason)
        if decision.state == InstanceState.FATAL:
            logger.error("Service %s[%d] is fatal: %s.", instance.task_id, instance.index, decision.reason)

    def finish(self, instance: Instance, *, reason: str, state: str, fields: dict[str, Any], **extra: Any) -> None:
        """The instance's run ends; written with the others of this turn (``records``)."""
        instance.state, instance.healthy, instance.up_since, instance.probe = state, False, None, None
        run, instance.run, instance.log = instance.run, None, None
        if run is not None:
            self.records.ended(run, reason=reason, state=state, fields=fields, **extra)

    def mark_healthy(self) -> None:
        """Instances up ``healthy_after`` seconds are ``running``: their streak starts again."""
        now = clock.monotonic()
        for instance in self.instances.values():
            if instance.up_long_enough(now):
                self.healthy(instance, f"up {instance.settings.get('healthy_after', 10)} s")

    def healthy(self, instance: Instance, why: str) -> None:
        """``running``: written with the others found healthy this turn (``records``)."""
        instance.healthy, instance.streak, instance.state = True, 0, InstanceState.RUNNING
        self.healthy_services.add(instance.task_id)
        self.records.found_healthy(instance.task_id, instance.index, why)

    def check_health(self) -> None:
        """Health checks: the first pass makes an instance healthy; ``retries`` failures in a row
        after that restart it."""
        for instance in self.instances.values():
            probe = instance.probe
            if probe is None or instance.process is None or instance.stopping_for:
                continue
            passed = probe.collect()
            if passed and not instance.healthy:
                self.healthy(instance, "its health check passed")
            elif passed is False and instance.healthy and probe.failures >= probe.retries:
                logger.warning("Service %s[%d] failed its health check %d times (%s); restarting it.",
                               instance.task_id, instance.index, probe.failures, probe.last_error)
                instance.stopping_for = "unhealthy"
                instance.process.stop()
                continue
            if probe.due():
                probe.start()

    # -- stopping --

    def stop_instance(self, instance: Instance, why: str) -> None:
        """Stop an instance's process (``why``: the end reason its run gets, or ``restart``); an
        instance with none goes ``stopped`` and is let go (its lease released)."""
        if instance.process is not None:
            if not instance.stopping_for:
                instance.stopping_for = why
                instance.process.stop()
            return
        if instance.state != InstanceState.STOPPED:
            services.set_instance_state(instance.task_id, instance.index, InstanceState.STOPPED, next_start_at=None)
        self.let_go(instance)

    def let_go(self, instance: Instance) -> None:
        """No longer this supervisor's: its lease released, so it is free for whoever wants it."""
        self.instances.pop(instance.name, None)
        services.release_leases([instance.name], owner=self.owner)

    def lost(self, instance: Instance) -> None:
        """Another supervisor holds this instance's lease now (this one could not renew it in
        time): it must not run here a moment longer."""
        logger.error("Lost the lease of %s[%d]; killing its process.", instance.task_id, instance.index)
        if instance.process is not None:
            instance.process.close()  # SIGKILL to its group, then reaped
            instance.process = None
        if instance.log is not None:
            instance.log.abandon()
        for fd in [fd for fd, owner in self._by_fd.items() if owner is instance]:
            self._forget(fd)
        del self.instances[instance.name]

    def shutdown(self) -> None:
        """Every instance stopped, dependents first, each within its graceful_stop; their runs end
        ``shutdown`` and their leases go, so another supervisor can take them at once."""
        for level in reversed(shutdown_levels(self.instances.values())):
            for instance in level:
                if instance.process is not None:
                    self.stop_instance(instance, EndReason.SHUTDOWN)
            while any(instance.process is not None for instance in level):
                self.wait(0.05)
                self.end_exited()
            self.records.write_ends()
        services.release_leases(list(self.instances), owner=self.owner)
        self.instances.clear()
        if self.watching.fileno() >= 0:
            self._poller.unregister(self.watching.fileno())
            self.watching.shutdown()
        if self._wakeup is not None:
            self._poller.unregister(self._wakeup.fileno())
            self._wakeup.close()
            self._wakeup = None

    # -- heartbeats --

    def beat(self) -> None:
        now = clock.monotonic()
        try:
            if now >= self._next_run_beat:  # a third of the staleness: a write every 10 s, not every 2
                self._next_run_beat = now + float(taskdeck_settings.HEARTBEAT_STALE_AFTER) / 3
                services.beat_instances(instance.run.id for instance in self.instances.values() if instance.run)
            if now >= self._next_beat:
                self._next_beat = now + HEARTBEAT_EVERY
                services.beat(HeartbeatRole.SUPERVISOR, details={"instances": len(self.instances)})
        except DatabaseError as error:
            logger.warning("The supervisor could not write its heartbeats (%s).", error)
