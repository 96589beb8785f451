"""barmap-why names each cause of a mapping that reads 0xff (or 0x00), each produced for real.

One guest of its own: 512 MiB of RAM, two memmap= reservations (one beyond RAM, where
nothing decodes; one low in RAM, for the driver's wrong-PFN pitfall), the driver loaded
and reloaded with each region.  Each test makes its cause happen, asks barmap-why, and
checks the keyword on its last line (and in --json).
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from barmap.config import MachineConfig
from barmap.guest import checks
from barmap.guest.machine import Machine

pytestmark = pytest.mark.guest

BEYOND_RAM = 0x30000000  # above the guest's 512 MiB: nothing there
LOW = 0x8000000  # 128 MiB, inside RAM, above the kernel, reserved; as a PFN it still fits the CPU
PCI_HOLE = 0x80000000  # in the PCI window, in no BAR
UNRESERVED_RAM = 0xC000000  # 192 MiB: plain System RAM
PCI_COMMAND, PM_PMCSR = 0x04, 0x04


@pytest.fixture(scope="module")
def vm(barmap_config: MachineConfig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Machine]:
    config = dataclasses.replace(
        barmap_config,
        memory_mb=512,
        reservation=None,
        append=(*barmap_config.append, f"memmap=0x1000000${BEYOND_RAM:#x}",
                f"memmap=0x100000${LOW:#x}"),
    )  # fmt: skip
    with Machine(config, log_dir=tmp_path_factory.mktemp("why")) as machine:
        yield machine


def _load(vm: Machine, params: str = "") -> None:
    """The driver loaded afresh with ``params``, no holder left from before."""
    checks.release(vm)
    vm.run("rmmod barmap 2>/dev/null; true")
    vm.run(f"insmod {checks.MODULE_PATH} {params}", check=True)
    vm.run("test -c /dev/barmap0", check=True)


def _why(vm: Machine, args: str) -> tuple[str, dict[str, Any]]:
    """barmap-why's cause from its last text line, checked against its --json."""
    status, text = vm.run(f"barmap-why {args}")
    last = text.strip().splitlines()[-1]
    m = re.fullmatch(r"cause: (\S+)", last)
    assert m, text
    report = checks.why(vm, args)
    assert report.cause == m.group(1), (text, report)
    assert status == report.status == (0 if m.group(1) == "ok" else 1), text
    return report.cause, {"facts": report.facts, "not_checked": report.not_checked}


def _hold(vm: Machine, strategy: str) -> dict[str, str]:
    h = checks.hold(vm, strategy)
    return {"pid": str(h.pid), "io": hex(h.io), "buf": hex(h.buf)}


def _bdf(vm: Machine) -> str:
    return vm.run("basename $(readlink /sys/class/barmap/barmap0/device)").output.strip()


@pytest.fixture
def bar_holder(vm: Machine) -> Iterator[dict[str, str]]:
    _load(vm)
    yield _hold(vm, "bar")
    checks.release(vm)


def test_a_working_bar_mapping_is_ok(vm: Machine, bar_holder: dict[str, str]) -> None:
    cause, report = _why(vm, f"--pid {bar_holder['pid']} --addr {bar_holder['io']}")
    assert cause == "ok", report
    assert "(mixed)" in report["facts"]["sample"]  # the holder's 0xc0ffee, no uniform bytes
    assert "barmap" in report["facts"]["owner"]


def test_memory_decode_off(vm: Machine, bar_holder: dict[str, str]) -> None:
    bdf = _bdf(vm)
    command = checks.config_read(vm, bdf, PCI_COMMAND, 2)
    checks.config_write(vm, bdf, PCI_COMMAND, command & ~2, 2)
    try:
        cause, report = _why(vm, f"--pid {bar_holder['pid']} --addr {bar_holder['io']}")
    finally:
        checks.config_write(vm, bdf, PCI_COMMAND, command, 2)
    assert cause == "memory-decode-off", report
    assert "memory OFF" in report["facts"]["command"]
    assert _why(vm, f"--pid {bar_holder['pid']} --addr {bar_holder['io']}")[0] == "ok"


def _pm_cap(vm: Machine, bdf: str) -> int:
    """The offset of the device's PM capability (the device has one)."""
    offset = checks.config_read(vm, bdf, 0x34, 1)
    for _ in range(48):
        if not offset:
            break
        if checks.config_read(vm, bdf, offset, 1) == 0x01:
            return offset
        offset = checks.config_read(vm, bdf, offset + 1, 1)
    raise AssertionError(f"{bdf} has no PM capability")


def test_device_in_d3hot(vm: Machine, bar_holder: dict[str, str]) -> None:
    bdf = _bdf(vm)
    pm = _pm_cap(vm, bdf)
    checks.config_write(vm, bdf, pm + PM_PMCSR, 3, 2)  # D3hot
    try:
        cause, report = _why(vm, f"--pid {bar_holder['pid']} --addr {bar_holder['io']}")
        sample = report["facts"]["sample"]
    finally:
        checks.config_write(vm, bdf, pm + PM_PMCSR, 0, 2)  # back to D0
    assert cause == "device-d3", report
    assert "all 0xff" in sample, report  # the BAR answers all-ones in D3hot
    assert _why(vm, f"--pid {bar_holder['pid']} --addr {bar_holder['io']}")[0] == "ok"


def test_dead_link(vm: Machine, bar_holder: dict[str, str]) -> None:
    vm.qmp.set_fault("barmap0", "all-ones", True)
    try:
        cause, report = _why(vm, f"--pid {bar_holder['pid']} --addr {bar_holder['io']}")
    finally:
        vm.qmp.set_fault("barmap0", "all-ones", False)
    assert cause == "link-down", report
    assert "all 0xff" in report["facts"]["sample"]
    assert "all-ones" in report["facts"]["config"]


def test_device_removed(vm: Machine, bar_holder: dict[str, str]) -> None:
    bdf = _bdf(vm)
    vm.run(f"echo 1 > /sys/bus/pci/devices/{bdf}/remove", check=True)
    try:
        cause, report = _why(vm, f"--pid {bar_holder['pid']} --addr {bar_holder['io']}")
    finally:
        vm.run("echo 1 > /sys/bus/pci/rescan", check=True)
    assert cause == "device-removed", report
    assert "(deleted)" in report["facts"]["mapping"]


@pytest.mark.x86_only(
    "addresses of x86's layout (memmap= in low RAM, q35's PCI hole and root port windows)"
)
@pytest.mark.parametrize("base", [BEYOND_RAM, PCI_HOLE], ids=["beyond-ram", "pci-hole"])
def test_nothing_decodes(vm: Machine, base: int) -> None:
    _load(vm, f"reserved_base={base:#x} reserved_size=0x100000")
    h = _hold(vm, "reserved-remap")
    cause, report = _why(vm, f"--pid {h['pid']} --addr {h['io']}")
    assert cause == "nothing-decodes", report
    assert "all 0x00" in report["facts"]["sample"], report  # QEMU's unassigned memory, x86


@pytest.mark.x86_only(
    "addresses of x86's layout (memmap= in low RAM, q35's PCI hole and root port windows)"
)
def test_a_reservation_in_ram_is_ok(vm: Machine) -> None:
    _load(vm, f"reserved_base={LOW:#x} reserved_size=0x100000")
    h = _hold(vm, "reserved-remap")
    cause, report = _why(vm, f"--pid {h['pid']} --addr {h['io']}")
    assert cause == "ok", report
    assert report["facts"]["firmware"] == "System RAM"


@pytest.mark.x86_only(
    "addresses of x86's layout (memmap= in low RAM, q35's PCI hole and root port windows)"
)
def test_an_unreserved_range_is_ram(vm: Machine) -> None:
    cause, report = _why(vm, f"--phys {UNRESERVED_RAM:#x}")
    assert cause == "region-is-ram", report
    assert report["facts"]["owner"].startswith("System RAM")


def test_a_bar_a_driver_holds_is_refused_by_dev_mem(vm: Machine) -> None:
    _load(vm)
    info = checks.parse_kv(vm.run("barmap-check info", check=True).output.strip())
    cause, report = _why(vm, f"--phys {info['bar_phys']}")
    assert cause == "strict-devmem", report
    # and once no driver holds it, /dev/mem maps it: the same address is fine
    vm.run("rmmod barmap", check=True)
    try:
        cause, report = _why(vm, f"--phys {info['bar_phys']}")
    finally:
        _load(vm)
    assert cause == "ok", report


@pytest.mark.x86_only(
    "addresses of x86's layout (memmap= in low RAM, q35's PCI hole and root port windows)"
)
def test_a_wrong_pfn(vm: Machine) -> None:
    """The driver's pitfall: reserved-remap given the region's address where its PFN goes."""
    _load(vm, f"reserved_base={LOW:#x} reserved_size=0x100000 pitfall_wrong_pfn=1")
    h = _hold(vm, "reserved-remap")
    cause, report = _why(vm, f"--pid {h['pid']} --addr {h['io']} --expect-phys {LOW:#x}")
    assert cause == "wrong-pfn", report
    assert "physical address" in report["facts"]["why"]
    _load(vm)


@pytest.mark.x86_only(
    "addresses of x86's layout (memmap= in low RAM, q35's PCI hole and root port windows)"
)
def test_a_bar_the_kernel_left_unassigned(vm: Machine) -> None:
    """A 4 GiB BAR hot-plugged behind a root port whose window has no room for it."""
    site = vm.qmp.free_plug_site()
    vm.qmp.device_add("barmap", "big", size=4 << 30, **site)
    try:
        deadline = time.monotonic() + 20
        while "failed to assign" not in (log := vm.run("dmesg | grep 'BAR 2'").output):
            assert time.monotonic() < deadline, log
            time.sleep(0.2)
        bdf = re.findall(r"pci (\S+): BAR 2 .*failed to assign", log)[-1]
        cause, report = _why(vm, f"--device {bdf} --bar 2")
        assert cause == "bar-unassigned", report
        assert "assign" in report["facts"].get("kernel", ""), report
    finally:
        vm.qmp.device_del("big")
        vm.qmp.event_wait("DEVICE_DELETED", {"device": "big"}, timeout=60)


def test_bad_arguments_are_one_line_and_exit_2(vm: Machine) -> None:
    for args in ("", "--phys", "--phys zz", "--pid 1", "--bogus 1", "--pid 999999 --addr 0x1000",
                 "--pid 1 --addr 0x10"):  # fmt: skip
        status, out = vm.run(f"barmap-why {args} 2>&1")
        assert status == 2, (args, out)
        assert len(out.strip().splitlines()) == 1, (args, out)
