"""``make demo``: the seed question's story in one table.

Every mapping strategy of the driver reads back its pattern and barmap-why calls it
``ok``; the host reads BAR2 itself; then the ways a mapping "works" and reads nothing:
an address nothing decodes (0x00 under QEMU), a dead link (0xff), memory decode off.
Each failure row passes when barmap-why names its cause.
"""

from __future__ import annotations

from dataclasses import dataclass

from barmap.guest import checks
from barmap.guest.machine import Machine

# in the PCI window, in no BAR: where the question's remap_pfn_range() read nothing (x86:
# 0x00 from QEMU's unassigned memory; virt: all-ones from the PCIe host's 32-bit window)
NOTHING_THERE = {"x86_64": 0x80000000, "arm64": 0x3E000000}
PCI_COMMAND = 0x04


@dataclass(frozen=True)
class Row:
    case: str
    bytes_checked: int | str
    mismatches: int | str
    reads: str
    cause: str
    verdict: str


def _sample(report: checks.WhyReport) -> str:
    sample = report.facts.get("sample", "")
    return sample[sample.rfind("(") + 1 : -1] if sample.endswith(")") else sample or "-"


def _held(vm: Machine, strategy: str, *, buffer: bool = False) -> checks.WhyReport:
    h = checks.hold(vm, strategy, seconds=60)
    try:
        return checks.why(vm, f"--pid {h.pid} --addr {h.buf if buffer else h.io:#x}")
    finally:
        checks.release(vm)


def working(vm: Machine, strategies: list[str]) -> list[Row]:
    rows = []
    for st in strategies:
        # BAR2 whole, for the host's read of it below; 1 MiB of each other object
        result = checks.run_tool(vm, st, args="" if st == "bar" else "--size 1M")
        view = checks.host_view_check(vm) if st == "bar" else None
        report = _held(vm, st)
        ok = result.passed and report.cause == "ok"
        reads = "its pattern" if result.passed else f"{result.mismatches} bytes wrong"
        rows.append(Row(st, result.bytes_checked, result.mismatches, reads, report.cause,
                        "PASS" if ok else "FAIL"))  # fmt: skip
        if view:
            rows.append(Row("host-view (QMP)", view.bytes_checked, view.mismatches,
                            "the guest's pattern" if view.passed else "other bytes", "-",
                            view.verdict))  # fmt: skip
    return rows


def _failure(vm: Machine, case: str, strategy: str, expected: str) -> Row:
    report = _held(vm, strategy)
    verdict = "PASS" if report.cause == expected else "FAIL"
    return Row(case, "-", "-", _sample(report), report.cause, verdict)


def failures(vm: Machine) -> list[Row]:
    rows = []
    r = vm.config.reservation
    normal = f"reserved_base={r.base:#x} reserved_size={r.size:#x}" if r else ""
    # remap_pfn_range() of an address nothing decodes: the mmap "works"
    nothing = NOTHING_THERE[vm.config.arch]
    checks.reload_module(vm, f"reserved_base={nothing:#x} reserved_size=0x100000")
    rows.append(_failure(vm, "nothing decodes it", "reserved-remap", "nothing-decodes"))
    checks.reload_module(vm, normal)
    # a dead link: BARs and config space answer all-ones
    vm.qmp.set_fault("barmap0", "all-ones", True)
    try:
        rows.append(_failure(vm, "dead link (fault-all-ones)", "bar", "link-down"))
    finally:
        vm.qmp.set_fault("barmap0", "all-ones", False)
    # Memory Space Enable off in COMMAND
    bdf = vm.run("basename $(readlink /sys/class/barmap/barmap0/device)").output.strip()
    command = checks.config_read(vm, bdf, PCI_COMMAND, 2)
    checks.config_write(vm, bdf, PCI_COMMAND, command & ~2, 2)
    try:
        rows.append(_failure(vm, "memory decode off", "bar", "memory-decode-off"))
    finally:
        checks.config_write(vm, bdf, PCI_COMMAND, command, 2)
    return rows
