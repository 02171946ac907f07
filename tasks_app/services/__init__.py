"""Every write Taskdeck makes. The API, the admin, the command line, the scheduler and the runner
call these as ``services.trigger(...)``; a public service takes keyword-only arguments past its
first.

The package is layered: a module imports only those listed before it (tests/test_imports.py
checks), so the rules of a run's life sit at the bottom and the callers of those rules on top.

- ``lookups``: a task or a run by id, or the API's 404;
- ``transitions``: the conditional writes that move a run between states (claim, end, admit a
  held run, stop request, delete), each under the task's row lock (db/locks.py);
- ``progress``: what a running run writes about itself (heartbeat, pid, progress, activity, its log);
- ``triggering``: the one door for a new run, ``trigger``, and its overlap policy;
- ``outcomes``: ``finish_run`` (and ``finish_and_claim_next``, for a worker keeping its slot) and
  what an end sets off (retries);
- ``ticks``: schedule ticks and start-up runs, through the same policy as ``trigger``;
- ``recovery``: lost workers' runs reaped (and what their commands left killed), lost queue
  messages sent again;
- ``stopping``: cancels and a worker's shutdown;
- ``leases``: one owner across hosts for what must run once (service instances);
- ``instances``: what a supervisor writes as it runs service instances;
- ``tasks``: the definitions sync, the admin's saves and the operator's edits of a task;
- ``imports``: the tasks the importers bring (compose, crontab, supervisord), written with their source;
- ``keys``: API keys (created and shown once, found by hash, revoked);
- ``heartbeats``: processes saying they are alive.
"""
from tasks_app.services.tasks import (
    save_task,
    set_enabled,
    set_interval,
    set_operator_fields,
    set_schedule,
    sync_definitions,
)
from tasks_app.services.heartbeats import beat
from tasks_app.services.imports import import_definitions
from tasks_app.services.instances import (
    InstanceEnd,
    InstanceRow,
    beat_instances,
    begin_instances,
    end_previous_instance_runs,
    look_at_instances,
    instances_ended,
    instances_up,
    restart_service,
    set_instance_state,
    set_instances_state,
    start_service,
    stop_service,
    supervisor_wakeup,
)
from tasks_app.services.leases import Owner, hold_leases, release_leases
from tasks_app.services.lookups import HOSTNAME, get_run, get_task
from tasks_app.services.outcomes import after_run_ended, finish_and_claim_next, finish_run, schedule_retry
from tasks_app.services.progress import LogTail, append_log, beat_run, record_pid, record_progress
from tasks_app.services.recovery import reap_lost_runs, rebuild_queue, redeliver_lost_runs
from tasks_app.services.stopping import cancel_run, cancel_task, end_shutdown_runs, request_shutdown
from tasks_app.services.ticks import TickPlan, due_tasks, fire_startup_runs, fire_ticks, initialise_schedules, plan_tick
from tasks_app.services.transitions import claim_run, delete_run, read_for_execution, stop_wakeup
from tasks_app.services.triggering import parameters_for, release_held_runs, trigger

__all__ = [
    "HOSTNAME", "InstanceEnd", "InstanceRow", "LogTail", "Owner", "TickPlan", "after_run_ended", "append_log", "beat", "beat_instances", "beat_run",
    "begin_instances", "cancel_run", "cancel_task", "claim_run", "delete_run", "due_tasks",
    "end_previous_instance_runs", "end_shutdown_runs", "finish_and_claim_next", "finish_run",
    "fire_startup_runs", "fire_ticks", "get_run", "get_task", "hold_leases", "import_definitions", "initialise_schedules",
    "instances_ended",
    "instances_up", "look_at_instances", "parameters_for", "plan_tick", "read_for_execution", "reap_lost_runs", "rebuild_queue",
    "record_pid", "record_progress", "redeliver_lost_runs", "release_held_runs", "release_leases",
    "request_shutdown", "restart_service", "save_task", "schedule_retry", "set_enabled", "set_instance_state", "set_instances_state",
    "set_interval", "set_operator_fields",
    "set_schedule", "start_service", "stop_service", "stop_wakeup", "supervisor_wakeup", "sync_definitions", "trigger",
]
