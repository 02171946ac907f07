"""Keeping service instances running, one owner per instance across hosts (by lease).

Modules, bottom first:

- ``restarts``: the restart policy after an exit (pure: backoff, fatal);
- ``health``: an instance's health check (command or HTTP), run off the loop;
- ``owned``: ``Instance``, what a supervisor knows of an instance it runs;
- ``order``: dependencies first at boot, dependents first at shutdown;
- ``supervisor``: the loop of ``manage.py supervisor`` (leases, starts, exits, operators' asks).
"""
