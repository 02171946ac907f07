"""The API's own documentation pages, rendered by a real browser that may not leave loopback."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect


@pytest.mark.parametrize(("page", "rendered"), [("/api/docs/", ".swagger-ui .info .title"),
                                                  ("/api/redoc/", "#redoc-container h1")])
def test_swagger_and_redoc_render_from_this_server_alone(serve, admin_page, page, rendered):
    answered: list[str] = []
    failed: dict[str, str] = {}
    admin_page.on("requestfinished", lambda request: answered.append(request.url))
    admin_page.on("requestfailed", lambda request: failed.update({request.url: request.failure or ""}))
    admin_page.goto(page)
    expect(admin_page.locator(rendered).first).to_contain_text("Taskdeck API")
    admin_page.wait_for_load_state("networkidle")
    # Redoc's bundle asks a CDN for a logo; the page's Content-Security-Policy stops it in the
    # browser (chromium may still announce the request), so nothing from outside is ever loaded.
    elsewhere = [url for url in answered if not url.removeprefix("blob:").startswith(serve.base_url)]
    assert not elsewhere, f"{page} loaded {elsewhere}"
    # Anything it asked for outside was stopped by the policy, not merely unreachable from here.
    outside = {url: why for url, why in failed.items() if not url.removeprefix("blob:").startswith(serve.base_url)}
    assert all("CSP" in why.upper() for why in outside.values()), outside
