"""Guest-less tests of the barmap QEMU device, through qtest.

Every test starts its own QEMU (``-accel qtest -M pc``, a few tens of ms)
with a barmap at 00:04.0 (see bmdev.py), has its BARs placed by the qtest PCI
allocator and enables memory decoding and bus mastering.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bmdev import Barmap

from barmap.build.artifacts import find_qemu
from barmap.build.paths import guest_arch


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    binary = find_qemu()
    arch = guest_arch()
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.device)
            if arch != "x86_64":
                # the device's own suite: one model, driven through pc/q35's config ports
                item.add_marker(pytest.mark.skip(
                    reason=f"the device suite runs on x86_64's QEMU (qtest on pc/q35), not"
                    f" for GUEST_ARCH={arch}"))  # fmt: skip
            elif not binary.exists():
                item.add_marker(
                    pytest.mark.skip(
                        reason=f"no QEMU at {binary} (run scripts/qemu.sh or set BARMAP_QEMU)"
                    )
                )


@pytest.fixture
def make_dev() -> Iterator[Any]:
    """Factory: ``make_dev("size=64K", args=[...])`` -> started Barmap; all closed at the end."""
    devs: list[Barmap] = []

    def make(
        props: str = "", args: list[str] | None = None, setup: bool = True, machine: str = "pc"
    ) -> Barmap:
        d = Barmap(props, args, setup=setup, machine=machine)
        devs.append(d)
        return d.start()

    yield make
    for d in devs:
        d.close()


@pytest.fixture
def dev(make_dev: Any) -> Barmap:
    """The default device: 16 MiB BAR2."""
    return make_dev()
