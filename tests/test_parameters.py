import pytest

from tasks_app.exceptions import DefinitionError, InvalidParameters
from tasks_app.parameters import normalize_spec, resolve

SPEC = normalize_spec("t", [
    {"key": "platforms", "type": "string", "choices": ["gba", "n64"], "default": "gba"},
    {"key": "limit", "type": "number", "required": True},
    {"key": "verbose", "type": "boolean"},
    {"key": "label", "type": "string", "choices": ["a"], "allow_custom": True},
])


def test_defaults_fill_what_is_not_given():
    assert resolve(SPEC, {"limit": 3}) == {"platforms": "gba", "limit": 3, "verbose": False, "label": ""}


def test_values_are_typed_from_strings_as_the_command_line_sends_them():
    values = resolve(SPEC, {"limit": "2.5", "verbose": "yes", "platforms": "n64"})
    assert values["limit"] == 2.5 and values["verbose"] is True and values["platforms"] == "n64"


def test_every_bad_field_is_reported_with_its_location():
    with pytest.raises(InvalidParameters) as caught:
        resolve(SPEC, {"platforms": "psx", "verbose": "maybe", "extra": 1})
    locations = {error["location"]: error for error in caught.value.errors}
    assert set(locations) == {
        "body.parameters.platforms", "body.parameters.limit", "body.parameters.verbose", "body.parameters.extra",
    }
    assert locations["body.parameters.platforms"]["value"] == "psx"
    assert "gba, n64" in locations["body.parameters.platforms"]["message"]


def test_allow_custom_accepts_values_outside_the_choices():
    assert resolve(SPEC, {"limit": 1, "label": "custom"})["label"] == "custom"


@pytest.mark.parametrize("raw, field", [
    ("not a list", "parameters"),
    ([{"type": "string"}], "parameters[0].key"),
    ([{"key": "a", "type": "date"}], "parameters[0].type"),
    ([{"key": "a"}, {"key": "a"}], "parameters[1].key"),
    ([{"key": "a", "type": "number", "default": "many"}], "parameters[0].default"),
    ([{"key": "a", "colour": "red"}], "parameters[0].colour"),
])
def test_bad_specs_name_the_field(raw, field):
    with pytest.raises(DefinitionError) as caught:
        normalize_spec("scan", raw)
    assert caught.value.field == field
    assert "'scan'" in str(caught.value)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "ten", [], True])
def test_numbers_must_be_finite_numbers(value):
    with pytest.raises(InvalidParameters) as caught:
        resolve(SPEC, {"limit": value})
    assert caught.value.errors[0]["location"] == "body.parameters.limit"


def test_command_tasks_may_key_options_and_flags_by_their_token():
    spec = normalize_spec("du", [{"key": "--max-depth", "type": "number"}, {"key": "-v", "type": "boolean"}], tokens=True)
    assert [(item["key"], item["kind"]) for item in spec] == [("--max-depth", "option"), ("-v", "flag")]
    for raw in ([{"key": "--max-depth"}], [{"key": "-"}], [{"key": "---x"}]):
        with pytest.raises(DefinitionError):
            normalize_spec("scan", raw, tokens=raw[0]["key"] != "--max-depth")
    with pytest.raises(DefinitionError) as caught:
        normalize_spec("du", [{"key": "--target", "kind": "env"}], tokens=True)
    assert caught.value.field == "parameters[0].key"
