"""The plugin's own hook (``barmap.testing.plugin`` registers it): a conftest.py or plugin
of the user's implements it to set the session guest up before its state is saved."""

from __future__ import annotations

import pytest

from barmap.config import MachineConfig
from barmap.guest.machine import Machine


@pytest.hookspec(firstresult=True)
def pytest_barmap_configure(config: MachineConfig) -> MachineConfig | None:
    """The session guest's configuration: return a changed one (``dataclasses.replace``),
    e.g. the barmap device posing as your card (``BarmapDevice.props``: vendor-id,
    device-id, BAR sizes...) or files of yours in the guest (``files``); None keeps it."""


def pytest_barmap_prepare(vm: Machine) -> None:
    """Called once per session (per xdist worker) with the booted session guest, its
    drivers loaded, before the state every ``barmap_vm`` test starts from is saved."""
