"""Driving barmap-check from a guest test: its records, the driver's info and counters, a
background holder of mappings, QMP events, and dmesg's verdict on the kernel."""

from __future__ import annotations

import json
import re
import time

from barmap.guest import checks
from barmap.guest.checks import parse_kv
from barmap.guest.machine import Machine

KERNEL_FAILURE = re.compile(r"BUG:|WARNING:|Oops|Call Trace|general protection|Kernel panic")


def records(output: str) -> list[dict[str, str]]:
    """The tool's ``key=value`` result lines (mismatch details and notes are indented)."""
    return [parse_kv(ln) for ln in output.splitlines() if ln and not ln[0].isspace() and "=" in ln]


def json_records(output: str) -> list[dict[str, object]]:
    start = output.index("[")
    return json.loads(output[start:])  # type: ignore[no-any-return]


def info(vm: Machine, dev: str = "/dev/barmap0") -> dict[str, str]:
    return parse_kv(vm.run(f"barmap-check info --dev {dev}", check=True).output.strip())


def sysfs(vm: Machine, attr: str, minor: int = 0) -> str:
    return vm.run(f"cat /sys/class/barmap/barmap{minor}/{attr}", check=True).output.strip()


def assert_dmesg_clean(vm: Machine) -> None:
    dmesg = vm.run("dmesg", check=True).output
    bad = [ln for ln in dmesg.splitlines() if KERNEL_FAILURE.search(ln)]
    assert not bad, "kernel failure in dmesg:\n" + "\n".join(bad[:20])


def xorshift_words(seed: int, count: int) -> bytes:
    """The tool's ``random`` pattern: xorshift64* seeded with ``seed | 1``, low 32 bits."""
    mask = (1 << 64) - 1
    state = (seed | 1) & mask
    out = bytearray(4 * count)
    for i in range(count):
        state ^= state >> 12
        state ^= (state << 25) & mask
        state ^= state >> 27
        out[4 * i : 4 * i + 4] = ((state * 0x2545F4914F6CDD1D) & 0xFFFFFFFF).to_bytes(4, "little")
    return bytes(out)


def wait_event(vm: Machine, name: str, device: str, timeout: float = 20.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        vm.qmp.poll_events()
        for ev in vm.qmp.events:
            if ev.get("event") == name and ev.get("data", {}).get("device") == device:
                return ev
        time.sleep(0.1)
    raise AssertionError(f"no {name} event for {device} within {timeout} s: {vm.qmp.events}")


def start_holder(vm: Machine, seconds: int, dev: str = "/dev/barmap0") -> None:
    """``barmap-check hold`` in the background (pid in $HOLD), back once both mappings exist."""
    vm.run(f"barmap-check hold --dev {dev} --size {seconds} > /tmp/hold.log 2>&1 & HOLD=$!")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        n = vm.run(f"grep -c {dev} /proc/$HOLD/maps").output.strip()
        if n.isdigit() and int(n) >= 2:  # the BAR and the DMA buffer
            return
        time.sleep(0.2)
    raise AssertionError("the holder never mapped the BAR and its buffer")


def reload(vm: Machine, params: str = "") -> None:
    vm.run("rmmod barmap", check=True)
    vm.run(f"insmod {checks.MODULE_PATH} {params}".strip(), check=True)
    vm.run("test -c /dev/barmap0", check=True)
