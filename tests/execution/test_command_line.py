"""tasks_app/execution/command_line.py: argv items and the environment of a command run, checked
through real processes where it matters (a value with shell metacharacters stays one item)."""
import os

import pytest

from tasks_app.execution.command_line import SpawnRefused, as_text, build, parameter_items, token
from tasks_app.platform import groups

PRINT_ARGS = 'printf "[%s]\\n" "$@"'
HOSTILE = ['a b', '$(touch /tmp/taskdeck-pwned)', '"; rm -rf / #', "it's", "`id`", "*", "\n"]


def spec(key, kind, type_="string"):
    return {"key": key, "kind": kind, "type": type_}


def run_for_output(line) -> str:
    process = groups.spawn(line.argv, env=line.env)
    output, _ = process.communicate(timeout=10)
    return output.decode()


def test_parameters_render_by_kind_in_declared_order_never_into_the_shell_text():
    parameters = [spec("target", "arg"), spec("--max-depth", "option", "number"), spec("v", "flag", "boolean"),
                  spec("quiet", "flag", "boolean"), spec("REGION", "env"), spec("name", "option")]
    values = {"target": "var/library", "--max-depth": 2.0, "v": True, "quiet": False, "REGION": "eu", "name": ""}
    assert parameter_items(parameters, values) == (["var/library", "--max-depth", "2", "--v"], {"REGION": "eu"})
    assert token("-v") == "-v" and token("depth") == "--depth" and as_text(True) == "true" and as_text(2.5) == "2.5"


@pytest.mark.parametrize("process", [{"command": PRINT_ARGS}, {"argv": ["/bin/sh", "-c", PRINT_ARGS, "sh"]}])
def test_hostile_values_reach_the_program_as_one_item_each(process, tmp_path):
    parameters = [spec(f"p{index}", "arg") for index in range(len(HOSTILE))]
    line = build(process, parameters=parameters, values={f"p{index}": value for index, value in enumerate(HOSTILE)},
                 run_env={})
    assert run_for_output(line) == "".join(f"[{value}]\n" for value in HOSTILE)
    assert not os.path.exists("/tmp/taskdeck-pwned")


def test_the_environment_is_layered_in_the_documented_order(tmp_path):
    env_file = tmp_path / "app.env"
    env_file.write_text("A=env_file\nB=env_file\nC=env_file\nD=env_file\nE=env_file\n")
    secrets = tmp_path / "secrets.env"
    secrets.write_text("C=secret\nD=secret\nE=secret\n")
    settings = {"command": "env", "env_file": str(env_file), "env": {"B": "inline", "C": "inline"},
                "secrets_file": str(secrets)}
    line = build(settings, parameters=[spec("D", "env")], values={"D": "parameter"},
                 run_env={"E": "taskdeck", "TASKDECK_RUN_ID": "r1"}, worker_env={"A": "worker", "PATH": os.defpath})
    assert {key: line.env[key] for key in "ABCDE"} == {"A": "env_file", "B": "inline", "C": "secret", "D": "parameter",
                                                        "E": "taskdeck"}
    assert line.argv == ["/bin/sh", "-c", "env", "sh"]
    assert "D=parameter" in run_for_output(line).splitlines()


def test_a_secrets_file_that_cannot_be_read_is_named_without_its_contents(tmp_path):
    secrets = tmp_path / "secrets.env"
    secrets.write_text("TOKEN=hunter2-planted\nthis line is not a variable hunter2-planted\n")
    with pytest.raises(SpawnRefused) as refused:
        build({"command": "true", "secrets_file": str(secrets)}, parameters=[], values={}, run_env={})
    assert "secrets_file" in str(refused.value) and "line 2" in str(refused.value)
    assert "hunter2" not in str(refused.value)
    with pytest.raises(SpawnRefused, match="cannot be read"):
        build({"command": "true", "secrets_file": str(tmp_path / "missing.env")}, parameters=[], values={}, run_env={})


def test_a_missing_working_directory_refuses_the_spawn(tmp_path):
    with pytest.raises(SpawnRefused, match="working_dir"):
        build({"command": "true", "working_dir": str(tmp_path / "nowhere")}, parameters=[], values={}, run_env={})
