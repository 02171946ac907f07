"""API tests go through a real HTTP server (pytest-django's live_server) with `requests`."""
from __future__ import annotations

import io
import itertools
from collections import Counter
from typing import Any

import pytest
import requests
from django.core.management import call_command

_names = itertools.count(1)

#: Cases each fuzzer sent (schemathesis by operation, the Hypothesis fuzzers by route family);
#: printed at the end of the session, so ``make fuzz`` says how many cases it ran.
FUZZ_CASES: Counter[str] = Counter()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FUZZ_CASES:
        terminalreporter.write_sep("-", f"fuzzed cases: {sum(FUZZ_CASES.values())}")
        for name, count in sorted(FUZZ_CASES.items()):
            terminalreporter.write_line(f"{count:7d}  {name}")


def make_key(*scopes: str, **options: Any) -> str:
    """A key made by the management command (the key is the last line of its output)."""
    out = io.StringIO()
    call_command("create_api_key", name=options.pop("name", f"key-{next(_names)}"), scopes=",".join(scopes),
                 stdout=out, **options)
    return out.getvalue().strip().splitlines()[-1]


class Api:
    def __init__(self, base: str) -> None:
        self.base = base
        self.session = requests.Session()

    def request(self, method: str, path: str, *, key: str | None = None, **kwargs: Any) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if key:
            headers["X-API-Key"] = key
        return self.session.request(method, self.base + path, headers=headers, timeout=10, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)


@pytest.fixture
def api(live_server) -> Api:
    return Api(live_server.url)


def assert_problem(response: requests.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == f"/api/problems/{slug}" and body["status"] == status
    assert body["title"] and body["detail"] and body["instance"]
    assert "Traceback" not in response.text
    return body
