"""The API's own documentation pages, rendered by a real browser that may not leave loopback."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect


@pytest.mark.parametrize(("page", "rendered"), [("/api/docs/", ".swagger-ui .info .title"),
                                                  ("/api/redoc/", "#redoc-container h1")])
def test_swagger_and_redoc_render_from_this_server_alone(serve, admin_page, page, rendered):
    requested: list[str] = []
    admin_page.on("request", lambda request: requested.append(request.url))
    admin_page.goto(page)
    expect(admin_page.locator(rendered).first).to_contain_text("Taskdeck API")
    elsewhere = [url for url in requested if not url.removeprefix("blob:").startswith(serve.base_url)]
    assert not elsewhere, f"{page} asked for {elsewhere}"
