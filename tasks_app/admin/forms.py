"""Admin forms: a task's schedule, policy and process settings, the run-now form built from a
task's parameters, and API-key creation. Values are checked by the same code as the API's and the
definitions file's; errors land on fields."""
from __future__ import annotations

import json
import re
import signal
from collections.abc import Mapping
from typing import Any

from django import forms
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from tasks_app import selectors
from tasks_app.conf import taskdeck_settings
from tasks_app.definitions.process import DEFAULT_GRACEFUL_STOP, PROCESS_FIELDS, validate_process
from tasks_app.definitions.service import (
    MAX_INSTANCES,
    SERVICE_FIELDS,
    dependency_errors,
    service_defaults,
    service_field_errors,
    validate_service,
)
from tasks_app.exceptions import DefinitionError
from tasks_app.models import ApiKey, LogOnFull, RestartPolicy, RetryBackoff, Scope, Task, TaskKind
from tasks_app.parameters import normalize_spec
from tasks_app.scheduling import rules

#: Every signal by its name, in number order (SIGHUP, SIGINT, ... SIGTERM ...).
SIGNAL_CHOICES = [(number.name, number.name) for number in sorted(signal.Signals, key=int)]

#: The shell a command runs in when the form leaves it as offered.
DEFAULT_SHELL = "/bin/sh"

#: The service fields the form edits: compose is only ever written by the importers (kept as is).
SERVICE_FORM_FIELDS = tuple(name for name in SERVICE_FIELDS if name != "compose")

#: Every field of the form that becomes ``Task.process``.
SETTINGS_FORM_FIELDS = (*PROCESS_FIELDS, *SERVICE_FORM_FIELDS)


class ListJSONField(forms.JSONField):
    """A JSON list in a one-line box (argv, exit_codes); empty when there is none, not "null"."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("widget", forms.TextInput(attrs={"size": 80}))
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        return "" if value is None else super().prepare_value(value)


class TableJSONField(ListJSONField):
    """A JSON object in a one-line box (a service's health_check); empty when there is none."""


class YesNoField(forms.TypedChoiceField):
    """Yes or no as a select: unlike a checkbox, a form posted without it leaves it out (None),
    so the setting keeps its default (a service's autostart)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=[("True", "Yes"), ("False", "No")], coerce=lambda value: value == "True",
                         empty_value=None, **kwargs)


class EnvField(forms.CharField):
    """Environment variables as ``NAME=value`` lines (blank lines and ``#`` comments skipped) or a
    JSON object; whether each is acceptable is the process check's to say."""

    widget = forms.Textarea(attrs={"rows": 3, "cols": 80})

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strip=False, **kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, Mapping):
            return "\n".join(f"{name}={item}" for name, item in value.items())
        return value

    def to_python(self, value: Any) -> dict[str, Any]:
        if isinstance(value, Mapping):
            return dict(value)
        text = super().to_python(value)
        if text.strip().startswith("{"):
            try:
                parsed = json.loads(text)
            except ValueError as error:
                raise forms.ValidationError(f"Not a JSON object: {error}.") from None
            if not isinstance(parsed, dict):
                raise forms.ValidationError("Give NAME=value lines or a JSON object.")
            return parsed
        values: dict[str, Any] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            name, equals, item = line.partition("=")
            if not equals:
                raise forms.ValidationError(f"Line {number} is not NAME=value.")
            values[name.strip()] = item
        return values


class TaskForm(forms.ModelForm):
    """The schedule fields checked as the API and the definitions file check them, and a command or
    service task's settings checked by the definitions file's own checks (definitions/process.py,
    definitions/service.py).

    The process and service fields are this form's, not the model's: together they become
    ``Task.process``. They exist only where they can be edited: a new task, and a command or
    service task made in the admin (a declared one is shown as declared; see TaskAdmin). A
    service's depends_on is checked against the services in the database."""

    command = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        help_text='Shell text run as <code>shell -c command</code>; parameters arrive as "$@", never spliced in. '
                  "Give this or argv.")
    argv = ListJSONField(required=False, help_text='A JSON list run without a shell, like ["du", "-s", "/srv"].')
    shell = forms.CharField(required=False, initial=DEFAULT_SHELL, help_text="Runs command; not used with argv.")
    working_dir = forms.CharField(required=False, help_text="Empty: the worker's.")
    user = forms.CharField(required=False, help_text="name, name:group or a numeric id (the worker must run as root). "
                                                     "Empty: the worker's.")
    umask = forms.CharField(required=False, help_text="Octal, like 022. Empty: the worker's.")
    env = EnvField(required=False, help_text="NAME=value, one a line (or a JSON object). Shown to operators.")
    env_file = forms.CharField(required=False, help_text="A dotenv file, read when the process starts "
                                                         "(checked now: it must exist and parse).")
    secrets_file = forms.CharField(required=False, help_text="A dotenv file read by the worker when the process "
                                                             "starts; what it holds is never shown.")
    exit_codes = ListJSONField(required=False, initial=[0], help_text="Exit statuses that mean success, like [0, 1].")
    stop_signal = forms.ChoiceField(required=False, choices=SIGNAL_CHOICES, initial="SIGTERM",
                                    help_text="Sent to the process group to stop a run.")
    graceful_stop = forms.FloatField(required=False, min_value=0, initial=DEFAULT_GRACEFUL_STOP,
                                     help_text="Seconds from stop_signal to SIGKILL.")
    log_max_size = forms.IntegerField(required=False, min_value=1, help_text="Bytes of log kept. Empty: "
                                                                             "TASKDECK_LOG_MAX_SIZE.")
    log_on_full = forms.ChoiceField(required=False, choices=LogOnFull.choices, initial=LogOnFull.DROP_OLD)

    instances = forms.IntegerField(required=False, min_value=1, max_value=MAX_INSTANCES, initial=1,
                                   help_text=f"Processes kept running, 1 to {MAX_INSTANCES}.")
    autostart = YesNoField(required=False, initial="True", help_text="Started when the supervisor starts.")
    restart = forms.ChoiceField(required=False, choices=RestartPolicy.choices, initial=RestartPolicy.ON_FAILURE,
                                help_text="Whether an instance that exited is started again.")
    restart_backoff = forms.ChoiceField(required=False, choices=RetryBackoff.choices, initial=RetryBackoff.EXPONENTIAL,
                                        help_text="The curve of the delays between restarts, capped at 60 s.")
    restart_delay = forms.FloatField(required=False, min_value=0, initial=service_defaults()["restart_delay"],
                                     help_text="Seconds before the first restart.")
    start_retries = forms.IntegerField(required=False, min_value=0, initial=service_defaults()["start_retries"],
                                       help_text="Exits in a row before healthy_after that make an instance fatal.")
    healthy_after = forms.FloatField(required=False, min_value=0, initial=service_defaults()["healthy_after"],
                                     help_text="Seconds up after which an instance is healthy (its restarts reset).")
    depends_on = ListJSONField(required=False, help_text='Services waited for before this one starts, as a JSON '
                                                         'list, like ["database"].')
    priority = forms.IntegerField(required=False, initial=0, help_text="Start order: lowest first, then id.")
    health_check = TableJSONField(required=False, help_text='A JSON object with command (shell text) or http (a URL), '
                                                            'and interval, timeout, retries, like {"http": '
                                                            '"http://127.0.0.1:8765/", "interval": 10}. Empty: none.')

    class Meta:
        model = Task
        fields = "__all__"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.edits_process:
            for name in SETTINGS_FORM_FIELDS:
                del self.fields[name]
            return
        if self.instance.kind == TaskKind.COMMAND and not self.instance._state.adding:
            for name in SERVICE_FORM_FIELDS:
                del self.fields[name]
        self.fields["log_max_size"].help_text += f" ({taskdeck_settings.LOG_MAX_SIZE:,} bytes)"
        for name, value in (self.instance.process or {}).items():
            if name in self.fields:
                self.initial.setdefault(name, value)

    @property
    def edits_process(self) -> bool:
        """A new task (which may be a command or service task), or a command or service task made
        in the admin or imported."""
        task = self.instance
        return task._state.adding or (task.kind in (TaskKind.COMMAND, TaskKind.SERVICE) and task.edited_here)

    @property
    def changed_task_fields(self) -> list[str]:
        """The Task fields this form changed: ``process`` when any process or service field changed."""
        changed = [name for name in self.changed_data if name not in SETTINGS_FORM_FIELDS]
        return changed + ["process"] if set(self.changed_data) & set(SETTINGS_FORM_FIELDS) else changed

    def clean_cron_string(self) -> str:
        value = self.cleaned_data.get("cron_string", "")
        return _checked(rules.check_cron, value) if value.strip() else ""

    def clean_timezone(self) -> str:
        return _checked(rules.check_timezone, self.cleaned_data.get("timezone", ""))

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        interval, unit = data.get("interval"), data.get("interval_unit")
        if interval is not None and not unit:
            self.add_error("interval_unit", "Give the interval's unit.")
        elif interval is not None:
            try:
                rules.check_interval(interval, unit)
            except rules.InvalidValue as error:
                self.add_error(error.field, error.sentence())
        if interval and data.get("cron_string"):
            self.add_error("cron_string", "A task has a cron string or an interval, not both.")
        if not interval:
            data["interval_unit"] = ""
        if (data.get("kind") or self.instance.kind) == TaskKind.SERVICE:
            self._clean_service_task_fields(data)
        if self.edits_process:
            self._clean_process(data)
        return data

    def _clean_service_task_fields(self, data: dict[str, Any]) -> None:
        """The task fields a service cannot have (a schedule, a timeout, retries, parameters, a run
        on demand ...), refused on their fields in the definitions file's words; the operator fields
        of a declared service too, since a schedule would have the scheduler run it."""
        task_id = self.instance.pk or data.get("id") or "new"
        if self.instance._state.adding and "manual_run" not in self.changed_data:
            data["manual_run"] = False  # ticked as offered for every new task: left so, a service's is off
        given = {name: data[name] for name in self.fields if name in data and name not in self.errors}
        for error in service_field_errors(task_id, given):
            self.add_error(error.field, _sentence(error.message))
        if "timeout" in given and "timeout" not in self.errors:
            data["timeout"] = None  # a timeout of 0 is none

    def _clean_process(self, data: dict[str, Any]) -> None:
        """A command or service task's settings through definitions/process.py or
        definitions/service.py, each error on its field; a task of another kind has none (a
        command or argv given to one is an error, as is a service field set on a command task)."""
        kind = data.get("kind") or self.instance.kind
        given = self._process_given(data)
        if kind not in (TaskKind.COMMAND, TaskKind.SERVICE):
            for name in ("command", "argv"):
                if name in given:
                    self.add_error(name, "Only a command or service task runs a command.")
            self.instance.process = None
            return
        if kind == TaskKind.COMMAND:
            defaults = service_defaults()
            for name in SERVICE_FORM_FIELDS:
                if name in given and given.pop(name) != defaults[name]:
                    self.add_error(name, "Applies to service tasks only.")
            if data.get("callable"):
                self.add_error("callable", "A command task runs its command or argv: leave this empty.")
            if "supports_cancel" in self.fields and not data.get("supports_cancel"):
                self.add_error("supports_cancel", "A command run can always be cancelled.")
            if data.get("supports_dry_run"):
                self.add_error("supports_dry_run", "A command task cannot be told it is a dry run.")
            if "parameters" in self.fields and "parameters" not in self.errors:
                try:
                    data["parameters"] = normalize_spec(self.instance.pk or "new", data.get("parameters"), tokens=True)
                except DefinitionError as error:
                    self.add_error("parameters", f"{error.field}: {error.message}.")
        if any(name in self.errors for name in SETTINGS_FORM_FIELDS):
            return  # a value the field could not even read; the check would only guess
        task_id = self.instance.pk or data.get("id") or "new"
        if kind == TaskKind.SERVICE:
            given["compose"] = (self.instance.process or {}).get("compose")  # the importers' to write
            settings, errors = validate_service(task_id, given)
            if not any(error.field.startswith("depends_on") for error in errors):
                kinds, depends_on = selectors.service_dependencies()
                kinds[task_id], depends_on[task_id] = TaskKind.SERVICE, settings["depends_on"]
                errors += dependency_errors(depends_on, kinds=kinds, through=task_id)
        else:
            settings, errors = validate_process(task_id, given)
        for error in errors:
            name = re.split(r"[.\[]", error.field, maxsplit=1)[0]
            where = error.field[len(name):]  # "[1]" (an item), ".NAME" (an env entry, a health check's field) or ""
            where = f"item {where[1:-1]}" if where.startswith("[") else where[1:]
            message = f"{where}: {error.message}" if where else error.message
            self.add_error(name if name in self.fields else None, _sentence(message))
        if not errors:
            self.instance.process = settings

    def _process_given(self, data: dict[str, Any]) -> dict[str, Any]:
        """The process and service fields filled in; the rest are left to the checks' defaults.
        The shell as offered is given only with a command (argv runs without one)."""
        given = {name: data[name] for name in SETTINGS_FORM_FIELDS if data.get(name) not in (None, "", {})}
        if given.get("shell") == DEFAULT_SHELL and "command" not in given:
            del given["shell"]
        return given


def _sentence(message: str) -> str:
    """A check's clause as a form error: capitalised, with a full stop."""
    return message[0].upper() + message[1:] + "."


def _checked(check: Any, value: Any) -> Any:
    """``check``'s stored value, or its message as the field's error."""
    try:
        return check(value)
    except rules.InvalidValue as error:
        raise forms.ValidationError(error.sentence()) from None


class SuggestionsInput(forms.TextInput):
    """A free-text input offering the declared choices (a ``<datalist>``), for ``allow_custom``."""

    def __init__(self, suggestions: list[str], attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs)
        self.suggestions = suggestions

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        context["widget"]["attrs"]["list"] = self.list_id(name, attrs)
        return context

    def render(self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None) -> SafeString:
        options = format_html_join("", '<option value="{}">', ((choice,) for choice in self.suggestions))
        return format_html('{}<datalist id="{}">{}</datalist>', super().render(name, value, attrs, renderer),
                           self.list_id(name, attrs), options)

    @staticmethod
    def list_id(name: str, attrs: dict[str, Any] | None) -> str:
        return f"{(attrs or {}).get('id') or name}-choices"


PARAMETER_PREFIX = "param_"


class RunNowForm(forms.Form):
    """One field per declared parameter, typed by the spec: a select for closed choices, free text
    with suggestions for open ones, a number input, a checkbox. The form only shapes input; the
    values are checked (and defaulted) by ``services.trigger``, the one door every caller uses,
    and its errors are put back on the fields."""

    required_css_class = "required"

    def __init__(self, task: Task, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.task = task
        for item in task.parameters:
            self.fields[PARAMETER_PREFIX + item["key"]] = parameter_field(item)
        if task.supports_dry_run:
            self.fields["dry_run"] = forms.BooleanField(
                required=False, label="Dry run", help_text="Report what would be done without doing it.")
        self.fields["force"] = forms.BooleanField(
            required=False, label="Run even if the overlap policy would skip or queue it",
            help_text=f"This task's policy: {task.get_on_overlap_display()}, at most {task.max_concurrent} at once.")

    def parameter_values(self) -> dict[str, Any]:
        """The values given (empty ones left out, so the declared defaults apply)."""
        return {name.removeprefix(PARAMETER_PREFIX): value for name, value in self.cleaned_data.items()
                if name.startswith(PARAMETER_PREFIX) and value not in ("", None)}

    def add_parameter_errors(self, errors: list[dict[str, Any]]) -> None:
        for error in errors:
            name = PARAMETER_PREFIX + error["location"].rsplit(".", 1)[-1]
            self.add_error(name if name in self.fields else None, error["message"])


def parameter_field(item: dict[str, Any]) -> forms.Field:
    """The form field of one parameter spec item (tasks_app.parameters)."""
    options: dict[str, Any] = {
        "label": item["key"], "required": item["required"], "help_text": item["description"],
        "initial": item["default"],
    }
    if item["type"] == "boolean":
        return forms.BooleanField(**{**options, "required": False})
    choices = [str(choice) for choice in item["choices"]]
    if choices and not item["allow_custom"]:
        blank = [] if item["required"] else [("", "(default)" if item["default"] in (None, "") else f"(default: {item['default']})")]
        return forms.ChoiceField(**options, choices=blank + [(choice, choice) for choice in choices])
    if item["type"] == "number":
        return forms.CharField(**options, widget=forms.NumberInput(attrs={"step": "any"}))
    widget = SuggestionsInput(choices) if choices else forms.TextInput()
    return forms.CharField(**options, widget=widget, strip=False)


class ApiKeyCreationForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=Scope.choices, widget=forms.CheckboxSelectMultiple,
                                       help_text="Each scope implies the ones listed before it.")

    class Meta:
        model = ApiKey
        fields = ("name", "scopes", "expires_at", "owner")
