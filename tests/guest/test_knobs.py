"""The guest tests' knobs (knobs.py): no guest needed."""

from __future__ import annotations

import knobs
import pytest


def test_race_cycles_follow_the_kernel_flavor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BARMAP_RACE_CYCLES", raising=False)
    monkeypatch.delenv("BARMAP_KERNEL_FLAVOR", raising=False)
    monkeypatch.delenv("BARMAP_SOAK", raising=False)
    assert knobs.race_cycles() == knobs.RACE_CYCLES["distro"]
    monkeypatch.setenv("BARMAP_SOAK", "1")
    assert knobs.race_cycles() == knobs.SOAK_RACE_CYCLES["distro"] == 200
    monkeypatch.setenv("BARMAP_KERNEL_FLAVOR", "debug")
    assert knobs.race_cycles() == knobs.SOAK_RACE_CYCLES["debug"] < 200
    monkeypatch.setenv("BARMAP_RACE_CYCLES", "7")
    assert knobs.race_cycles() == 7
    for bad in ("0", "-3", "many"):
        monkeypatch.setenv("BARMAP_RACE_CYCLES", bad)
        with pytest.raises(ValueError, match="not a positive whole number"):
            knobs.race_cycles()
    monkeypatch.setenv("BARMAP_SOAK", "yes")
    with pytest.raises(ValueError, match="BARMAP_SOAK='yes'"):
        knobs.soak()
