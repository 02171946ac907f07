"""The admin, where operators run, watch and stop everything; a module per page family:

- ``tasks``: the task list (live status, schedule, last run, durations chart), the task page
  (schedule with a preview, policy, recent runs) and its run-now form;
- ``runs``: the run list, the live run page (progress, activity, output, cancel), activity;
- ``api_keys``: creating (shown once) and revoking API keys;
- ``dashboard``: what runs and waits now, failures in the last day, process health (admin index).

Pages call the services for every write and report through the messages framework.
"""
from django.contrib import admin

from tasks_app.admin import api_keys, dashboard, runs, tasks  # noqa: F401  (registers the ModelAdmins)
from tasks_app.queue import hooks

hooks.hide_queue_admin(admin.site)
