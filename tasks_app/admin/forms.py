"""Admin forms: a task's schedule and policy, the run-now form built from a task's parameters,
and API-key creation. Values are checked by the same code as the API's; errors land on fields."""
from __future__ import annotations

from typing import Any

from django import forms
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from tasks_app.models import ApiKey, Scope, Task
from tasks_app.scheduling import rules


class TaskForm(forms.ModelForm):
    """The schedule fields checked as the API and the definitions file check them."""

    class Meta:
        model = Task
        fields = "__all__"

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
        return data


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
