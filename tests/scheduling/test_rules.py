"""One check for cron strings, intervals and time zones (scheduling/rules.py), and every door using it."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tasks_app import services
from tasks_app.admin.forms import TaskForm
from tasks_app.exceptions import InvalidSchedule
from tasks_app.scheduling import rules
from tasks_app.scheduling.rules import InvalidValue, check_cron, check_interval, check_timezone

from ..factories import make_task


def test_cron_strings_are_normalised_and_must_fire(clock):
    clock.current = datetime(2026, 5, 4, tzinfo=UTC)
    assert check_cron("  */5   * * *  * ") == "*/5 * * * *"
    assert check_cron("@weekly") == "@weekly" and check_cron("0 0 29 2 *") == "0 0 29 2 *"
    for bad in ("0 0 30 2 *", "* * * * * *", "61 * * * *", "", "@sometimes", "* * * *"):
        with pytest.raises(InvalidValue) as caught:
            check_cron(bad)
        assert caught.value.field == "cron_string" and "5-field cron expression" in caught.value.message()
    with pytest.raises(InvalidValue, match="is 127 characters long; at most 120 fit"):
        check_cron("0 0 * * " + ",".join(["1"] * 60))


def test_intervals_are_whole_numbers_from_one_to_ten_years():
    assert check_interval(3650, "days") == (3650, "days")
    assert check_interval(1, "minutes") == (1, "minutes")
    for interval, unit, field, words in ((0, "hours", "interval", "at least 1"), (1.5, "hours", "interval", "whole number"),
                                         (True, "hours", "interval", "whole number"), ("6", "hours", "interval", "whole number"),
                                         (3700, "days", "interval", "longer than 10 years"),
                                         (10**30, "minutes", "interval", "longer than 10 years"),
                                         (5, "weeks", "interval_unit", "not a unit")):
        with pytest.raises(InvalidValue) as caught:
            check_interval(interval, unit)
        assert (caught.value.field, words in caught.value.message()) == (field, True), caught.value.message()


def test_time_zones_are_iana_names():
    assert check_timezone("Asia/Kolkata") == "Asia/Kolkata"
    for bad in ("Mars/Olympus", "", "europe/paris" if rules.is_valid_timezone("Europe/Paris") else "x",
                "../../etc/passwd", "A" * 65, None, 5):
        with pytest.raises(InvalidValue) as caught:
            check_timezone(bad)
        assert caught.value.field == "timezone"


def test_the_caller_words_the_value_its_own_way():
    with pytest.raises(InvalidValue) as caught:
        check_timezone("Mars/Olympus")
    assert caught.value.message() == "unknown time zone 'Mars/Olympus' (like UTC or Europe/Paris)"
    assert caught.value.message('"Mars/Olympus"') == 'unknown time zone "Mars/Olympus" (like UTC or Europe/Paris)'


@pytest.mark.django_db
def test_the_admin_form_caps_intervals_like_every_other_door():
    task = make_task(id="every", interval=10, interval_unit="minutes")
    data = {field: value for field, value in TaskForm(instance=task).initial.items() if value is not None}
    form = TaskForm({**data, "parameters": "[]", "definition": "{}", "overrides": "[]", "interval": 3700,
                     "interval_unit": "days"}, instance=task)
    assert not form.is_valid()
    assert form.errors["interval"] == ["3700 is longer than 10 years."]


@pytest.mark.django_db
def test_the_services_check_with_the_same_rules_and_locate_each_error():
    make_task(id="every", interval=10, interval_unit="minutes")
    make_task(id="nightly", cron_string="0 3 * * *")
    with pytest.raises(InvalidSchedule) as caught:
        services.set_interval("every", interval=3700, unit="days")
    assert caught.value.errors[0]["location"] == "body.interval"
    with pytest.raises(InvalidSchedule) as caught:
        services.set_interval("every", interval=5, unit="weeks")
    assert caught.value.errors[0]["location"] == "body.unit"
    with pytest.raises(InvalidSchedule) as caught:
        services.set_schedule("nightly", cron_string="61 * * * *", timezone="Mars/Olympus")
    assert [error["location"] for error in caught.value.errors] == ["body.cron_string", "body.timezone"]
    assert services.set_schedule("nightly", cron_string=" 30  2 * * * ", timezone="Europe/Paris").cron_string == "30 2 * * *"
