"""Debuggers reach the driver's mappings: /proc/PID/mem (ptrace PEEK/POKE's path) on a BAR
and a DMA buffer mapping reads what the process sees and writes where the device sees it.

``barmap-check hold`` maps one BAR page and one buffer page, stores 0xc0ffee at the start
of each and sleeps.  Another process then reads and writes its memory through
/proc/PID/mem, as gdb's ``x/16x`` and ``set *p = ...`` do (access_process_vm: the
mapping's ``.access``).
"""

from __future__ import annotations

import re

from barmap.guest.machine import Machine
from barmap.pattern import pattern

DEV_MAP = re.compile(r"^([0-9a-f]+)-[0-9a-f]+ \S+ ([0-9a-f]+) \S+ \d+\s+/dev/barmap0$", re.M)
BUF_OFFSET = 16 << 12  # buffer id 16 (BARMAP_BUF_ID_FIRST) << PAGE_SHIFT
CHUNK = 256


def _mappings(vm: Machine, pid: int) -> dict[int, int]:
    """file offset -> start address of the process's /dev/barmap0 mappings."""
    for _ in range(50):
        maps = vm.run(f"cat /proc/{pid}/maps").output
        found = {int(off, 16): int(start, 16) for start, off in DEV_MAP.findall(maps)}
        if len(found) >= 2:
            return found
        vm.run("sleep 0.1")
    raise AssertionError(f"hold never mapped the BAR and a buffer:\n{maps}")


def _peek(vm: Machine, pid: int, addr: int, size: int = CHUNK) -> bytes:
    out = vm.run(
        f"dd if=/proc/{pid}/mem bs={size} skip={addr // size} count=1 2>/dev/null | od -An -tx1 -v"
    ).output
    return bytes.fromhex("".join(out.split()))


def _poke(vm: Machine, pid: int, addr: int, data: bytes) -> None:
    octal = "".join(f"\\{b:03o}" for b in data)
    vm.run(f"printf '{octal}' > /tmp/poke", check=True)
    vm.run(
        f"dd if=/tmp/poke of=/proc/{pid}/mem bs={len(data)} seek={addr // len(data)}"
        " count=1 conv=notrunc",
        check=True,
    )


def test_proc_mem_reads_and_writes_bar_and_buffer_mappings(barmap_vm: Machine) -> None:
    vm = barmap_vm
    pid = int(vm.run("barmap-check hold --size 30 > /tmp/hold.log 2>&1 & echo $!").output)
    maps = _mappings(vm, pid)
    bar, buf = maps[0], maps[BUF_OFFSET]
    bar_phys, _ = vm.qmp.barmap_bar("barmap0")

    # what the process stored is what a debugger reads
    assert _peek(vm, pid, bar)[:4] == (0xC0FFEE).to_bytes(4, "little")
    assert _peek(vm, pid, buf)[:4] == (0xC0FFEE).to_bytes(4, "little")

    # a debugger's write lands in the device (seen from the host) and reads back
    data = pattern(CHUNK, 0xDEB6, offset=CHUNK)
    _poke(vm, pid, bar + CHUNK, data)
    assert vm.qmp.read_phys(bar_phys + CHUNK, CHUNK) == data
    assert _peek(vm, pid, bar + CHUNK) == data
    data = pattern(CHUNK, 0xB0F, offset=CHUNK)
    _poke(vm, pid, buf + CHUNK, data)
    assert _peek(vm, pid, buf + CHUNK) == data

    vm.run(f"kill {pid}; wait", timeout=30)
