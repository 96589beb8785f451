"""The barmap device poses as this project's card, and the tool goes into the guest."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

from barmap.config import MachineConfig

HERE = Path(__file__).resolve().parents[1]
TOOL = HERE / "tool" / "exdrv-peek"
# the card: an FPGA board's IDs, its BAR2 4 MiB, 32-bit, not prefetchable
CARD = (("vendor-id", "0x10ee"), ("device-id", "0x7024"), ("subsystem-vendor-id", "0x10ee"),
        ("subsystem-id", "0x0007"), ("bar2-64bit", "off"), ("bar2-prefetch", "off"))  # fmt: skip


def pytest_barmap_configure(config: MachineConfig) -> MachineConfig:
    subprocess.run(["make", "-s", "-C", str(HERE), "tool"], check=True)
    card = replace(config.devices[0], size=4 << 20, props=(*config.devices[0].props, *CARD))
    return replace(config, devices=(card,), files=(*config.files, (TOOL, "/usr/bin/exdrv-peek")))
