"""One real `serve` for the live-event tests of this package that need one (``clients.serving``)."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from .clients import Live, serving


@pytest.fixture(scope="package")
def live(process_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with serving(process_env, tmp_path_factory.mktemp("live")) as started:
        yield started
