"""Unit tests set the environment they test; the guest architecture `make` exports for the
guests (BARMAP_GUEST_ARCH, and GUEST_ARCH for the scripts they run) is not theirs."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_guest_arch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BARMAP_GUEST_ARCH", raising=False)
    monkeypatch.delenv("GUEST_ARCH", raising=False)
