"""The guest tests' architecture: a test of what only x86 has says so with
``@pytest.mark.x86_only("why")`` and is skipped, with that reason, on other guests."""

from __future__ import annotations

import pytest

from barmap.build.paths import guest_arch


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    arch = config.getoption("--barmap-arch") or guest_arch()
    if arch == "x86_64":
        return
    for item in items:
        mark = item.get_closest_marker("x86_only")
        if mark is not None:
            why = mark.args[0] if mark.args else "x86 only"
            item.add_marker(pytest.mark.skip(reason=f"x86_64 only: {why}"))
