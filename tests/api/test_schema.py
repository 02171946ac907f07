"""The OpenAPI document itself: valid, free of generator warnings, and the routes of API.md exactly."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from django.core.management import call_command

# API.md's routes (services belong to a later issue), as the schema must list them.
ROUTES = {
    ("get", "/api/health"), ("get", "/api/events"),
    ("get", "/api/tasks"), ("get", "/api/tasks/{id}"), ("post", "/api/tasks/{id}/run"),
    ("post", "/api/tasks/{id}/cancel"), ("put", "/api/tasks/{id}/enabled"), ("put", "/api/tasks/{id}/interval"),
    ("put", "/api/tasks/{id}/schedule"), ("get", "/api/tasks/{id}/history"),
    ("post", "/api/tasks/{id}/start"), ("post", "/api/tasks/{id}/stop"), ("post", "/api/tasks/{id}/restart"),
    ("get", "/api/runs"), ("get", "/api/runs/{run_id}"), ("post", "/api/runs/{run_id}/cancel"),
    ("get", "/api/runs/{run_id}/activity"), ("get", "/api/runs/{run_id}/log"), ("get", "/api/runs/{run_id}/log/stream"),
    ("delete", "/api/runs/{run_id}"),
}


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Generated as `manage.py spectacular --validate --fail-on-warn` does: any warning fails."""
    path = Path(tmp_path_factory.mktemp("schema")) / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(path))
    return yaml.safe_load(path.read_text())


def test_the_schema_lists_the_routes_of_the_contract_without_trailing_slashes(schema: dict) -> None:
    routes = {(method, path) for path, operations in schema["paths"].items() for method in operations
              if method in {"get", "post", "put", "patch", "delete"}}
    assert routes == ROUTES


@pytest.mark.parametrize("component", ["Task", "Run", "Activity", "Policy", "Progress", "Parameter", "RunQueued",
                                       "Process", "Compose"])
def test_every_field_of_a_contract_object_is_required(schema: dict, component: str) -> None:
    """Clients may rely on every documented field being present (null where API.md says so)."""
    body = schema["components"]["schemas"][component]
    assert set(body["required"]) == set(body["properties"])


@pytest.mark.parametrize(("component", "field", "enum"), [
    ("Run", "status", "RunStatusEnum"), ("Run", "trigger", "RunTriggerEnum"), ("Task", "kind", "TaskKindEnum"),
    ("Task", "trigger", "TaskTriggerEnum"), ("Task", "status", "TaskStatusEnum"),
    ("Policy", "on_overlap", "OverlapPolicyEnum"), ("Policy", "catch_up", "CatchUpEnum"),
    ("Process", "log_on_full", "LogOnFullEnum"),
])
def test_closed_sets_of_values_are_enums(schema: dict, component: str, field: str, enum: str) -> None:
    documented = schema["components"]["schemas"][component]["properties"][field]
    assert {"$ref": f"#/components/schemas/{enum}"} in documented.get("allOf", [documented])


def test_run_end_reason_is_an_enum_or_null(schema: dict) -> None:
    end_reason = schema["components"]["schemas"]["Run"]["properties"]["end_reason"]
    assert {"$ref": "#/components/schemas/EndReasonEnum"} in end_reason["oneOf"]
    assert "timeout" in schema["components"]["schemas"]["EndReasonEnum"]["enum"]


def test_the_log_documents_its_size_header(schema: dict) -> None:
    ok = schema["paths"]["/api/runs/{run_id}/log"]["get"]["responses"]["200"]
    assert ok["headers"]["X-Log-Size"]["schema"] == {"type": "integer"}
    assert "text/plain" in ok["content"]


def test_a_task_has_its_process_settings_or_null_and_a_run_its_pid_and_exit_signal(schema: dict) -> None:
    schemas = schema["components"]["schemas"]
    process = schemas["Task"]["properties"]["process"]
    assert process["nullable"] and {"$ref": "#/components/schemas/Process"} in process["allOf"]
    assert list(schemas["Process"]["properties"]) == [
        "command", "argv", "shell", "working_dir", "user", "umask", "env", "env_file", "secrets_file", "exit_codes",
        "stop_signal", "graceful_stop", "log_max_size", "log_on_full",
        "instances", "autostart", "restart", "restart_backoff", "restart_delay", "start_retries", "healthy_after",
        "depends_on", "priority", "health_check", "compose"]
    assert schemas["LogOnFullEnum"]["enum"] == ["drop_old", "drop_new", "kill_task"]
    service = schemas["Process"]["properties"]
    assert all(service[name]["nullable"] for name in ("instances", "autostart", "depends_on", "health_check"))  # commands
    assert {"$ref": "#/components/schemas/RestartPolicyEnum"} in service["restart"]["oneOf"]
    assert {"$ref": "#/components/schemas/RetryBackoffEnum"} in service["restart_backoff"]["oneOf"]
    assert schemas["RestartPolicyEnum"]["enum"] == ["never", "on_failure", "always"]
    assert {"$ref": "#/components/schemas/HealthCheck"} in service["health_check"]["allOf"]
    assert {"$ref": "#/components/schemas/Compose"} in service["compose"]["allOf"]
    health_check = schemas["HealthCheck"]  # exactly one of command and http, as API.md writes it
    assert (set(health_check["properties"]), set(health_check["required"])) == (
        {"command", "http", "interval", "timeout", "retries"}, {"interval", "timeout", "retries"})
    run = schemas["Run"]["properties"]
    assert (run["exit_signal"]["type"], run["exit_signal"]["nullable"]) == ("string", True)
    assert (run["pid"]["type"], run["pid"]["nullable"]) == ("integer", True)


def test_the_log_stream_is_an_event_stream_resumable_by_offset(schema: dict) -> None:
    operation = schema["paths"]["/api/runs/{run_id}/log/stream"]["get"]
    assert "text/event-stream" in operation["responses"]["200"]["content"]
    assert {(parameter["in"], parameter["name"]) for parameter in operation["parameters"]} >= {
        ("path", "run_id"), ("query", "offset"), ("header", "Last-Event-ID")}
    for status in ("400", "401", "403", "404"):
        assert "application/problem+json" in operation["responses"][status]["content"]
