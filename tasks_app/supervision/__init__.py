"""Keeping service instances running and file watchers watching, one owner per instance or
watcher across hosts (by lease).

Modules, bottom first:

- ``restarts``: the restart policy after an exit (pure: backoff, fatal);
- ``health``: an instance's health check (command or HTTP), run off the loop;
- ``watchers``: what a watcher does with the changes it sees (pure: filter, quiet delay, pending
  changes kept through refusals, the changed paths a target gets);
- ``watching``: the watchers one supervisor owns (leases, their paths' watches, triggers, state);
- ``owned``: ``Instance``, what a supervisor knows of an instance it runs;
- ``order``: dependencies first at boot, dependents first at shutdown;
- ``records``: what one turn of the loop writes together (ends, instances found healthy);
- ``supervisor``: the loop of ``manage.py supervisor`` (leases, starts, exits, operators' asks).
"""
