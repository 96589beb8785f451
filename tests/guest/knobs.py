"""The guest tests' own knobs, read from the environment by the tests that use them.

Map/unplug cycles per removal path in the race tests (BARMAP_RACE_CYCLES overrides):
enough within ``make test`` to catch a regression to the eager strategy (docs/atlas.md
has the rates), 200 in the pipeline's soak (BARMAP_SOAK=1, ``.ci/run``); on the debug
kernel the sanitizers watch every cycle and 20 cover each path.
"""

from __future__ import annotations

import os

from barmap.build.paths import kernel_flavor

RACE_CYCLES = {"distro": 50, "debug": 20}
SOAK_RACE_CYCLES = {"distro": 200, "debug": 20}


def soak() -> bool:
    """BARMAP_SOAK=1: the long runs of the tests that count (the pipeline's)."""
    value = os.environ.get("BARMAP_SOAK", "").strip()
    if value not in ("", "0", "1"):
        raise ValueError(f"BARMAP_SOAK={value!r}: 1 for the long runs, 0 or unset for not")
    return value == "1"


def race_cycles() -> int:
    """BARMAP_RACE_CYCLES, else the kernel flavor's default (its soak with BARMAP_SOAK=1)."""
    value = os.environ.get("BARMAP_RACE_CYCLES", "").strip()
    if not value:
        return (SOAK_RACE_CYCLES if soak() else RACE_CYCLES)[kernel_flavor()]
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"BARMAP_RACE_CYCLES={value!r} is not a positive whole number")
    return int(value)
