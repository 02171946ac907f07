"""The process side of the Task object (API.md "Process settings", "Services"): a command or
service task's ``process`` settings, and a service's instances. Output only."""
from __future__ import annotations

from rest_framework import serializers

from tasks_app.models import InstanceState, LogOnFull, RestartPolicy, RetryBackoff


class HealthCheckSerializer(serializers.Serializer):
    """A service's health check: exactly one of command and http (API.md "Services")."""

    command = serializers.CharField(required=False, help_text="Shell text run as the check; absent with http.")
    http = serializers.CharField(required=False, help_text="An http:// or https:// URL asked as the check; absent "
                                                           "with command.")
    interval = serializers.FloatField(help_text="Seconds between checks.")
    timeout = serializers.FloatField(help_text="Seconds a check may take.")
    retries = serializers.IntegerField(min_value=1, help_text="Failures in a row that restart the instance.")


class ComposeSerializer(serializers.Serializer):
    """Where an imported service came from (import_compose)."""

    file = serializers.CharField()
    project_name = serializers.CharField()
    service = serializers.CharField()


class ProcessSerializer(serializers.Serializer):
    """A command or service task's process settings (API.md "Process settings"), complete: defaults
    filled in, stop_signal and umask normalised. The env values and the secrets_file path are
    shown; what the secrets file holds never is (only the worker reads it, when it starts the
    process). The service fields (``instances`` to ``compose``) are a service's settings (API.md
    "Services"), null for a command task."""

    command = serializers.CharField(allow_null=True, help_text="Shell text run as `shell -c command`; null with argv.")
    argv = serializers.ListField(child=serializers.CharField(), allow_null=True,
                                 help_text="Executed directly, without a shell; null with command.")
    shell = serializers.CharField()
    working_dir = serializers.CharField(allow_blank=True, help_text="Empty: the worker's.")
    user = serializers.CharField(allow_blank=True, help_text="name, name:group or numeric; empty: the worker's.")
    umask = serializers.CharField(allow_blank=True, help_text="Octal, like 0022; empty: the worker's.")
    env = serializers.DictField(child=serializers.CharField(allow_blank=True))
    env_file = serializers.CharField(allow_blank=True)
    secrets_file = serializers.CharField(allow_blank=True, help_text="Its path only; read by the worker at spawn.")
    exit_codes = serializers.ListField(child=serializers.IntegerField(min_value=0, max_value=255))
    stop_signal = serializers.CharField(help_text="A signal name, like SIGTERM.")
    graceful_stop = serializers.FloatField(min_value=0, help_text="Seconds from stop_signal to SIGKILL.")
    log_max_size = serializers.IntegerField(min_value=1, help_text="Bytes of log kept.")
    log_on_full = serializers.ChoiceField(choices=LogOnFull.choices)
    instances = serializers.IntegerField(min_value=1, max_value=64, allow_null=True,
                                         help_text="Processes kept running. Services only, like what follows.")
    autostart = serializers.BooleanField(allow_null=True, help_text="Started when the supervisor starts.")
    restart = serializers.ChoiceField(choices=RestartPolicy.choices, allow_null=True,
                                      help_text="Whether an instance that exited is started again.")
    restart_backoff = serializers.ChoiceField(choices=RetryBackoff.choices, allow_null=True,
                                              help_text="The curve of restart delays, capped at 60 s.")
    restart_delay = serializers.FloatField(min_value=0, allow_null=True, help_text="Seconds before the first restart.")
    start_retries = serializers.IntegerField(
        min_value=0, allow_null=True, help_text="Exits before healthy_after, in a row, that make an instance fatal.")
    healthy_after = serializers.FloatField(min_value=0, allow_null=True,
                                           help_text="Seconds up after which an instance is healthy.")
    depends_on = serializers.ListField(child=serializers.CharField(), allow_null=True,
                                       help_text="Services waited for (until healthy) before this one starts.")
    priority = serializers.IntegerField(allow_null=True, help_text="Start order: lowest first, then id.")
    health_check = HealthCheckSerializer(allow_null=True)
    compose = ComposeSerializer(allow_null=True, help_text="Null unless imported from a compose file.")


SERVICE_STATES = [*InstanceState.values, "degraded"]


class InstanceSerializer(serializers.Serializer):
    """One instance of a service (API.md "Services")."""

    index = serializers.IntegerField(min_value=0)
    state = serializers.ChoiceField(choices=InstanceState.choices)
    pid = serializers.IntegerField(allow_null=True)
    run_id = serializers.UUIDField(allow_null=True, help_text="Its current (or last) lifetime's run.")
    started_at = serializers.DateTimeField(allow_null=True)
    restarts = serializers.IntegerField(min_value=0)
    last_exit_code = serializers.IntegerField(allow_null=True)
    next_start_at = serializers.DateTimeField(allow_null=True, help_text="In backoff: when it starts again.")
