"""Keeping service instances running: ``supervisor`` (the loop of ``manage.py supervisor``, one
owner per instance across hosts by lease) and ``restarts`` (the restart policy, pure)."""
