"""Mappings that cannot outlive their device, and cache modes that tell the truth.

The races of ``mmap()`` against removal, for every strategy, are the atlas's
(``test_atlas.py``); here: the memory types the PAT records, partial unmaps, PMDs.
"""

from __future__ import annotations

import re
import time

import pytest

from barmap.guest.checks import parse_kv
from barmap.guest.machine import Machine

pytestmark = pytest.mark.guest

PAT = "/sys/kernel/debug/x86/pat_memtype_list"
PAT_RECORD = re.compile(r"\[mem 0x([0-9a-f]+)-0x([0-9a-f]+)\] (\S+)")


def _race_result(output: str) -> dict[str, str]:
    lines = [parse_kv(ln) for ln in output.splitlines() if ln.startswith("race=")]
    assert len(lines) == 1, output[-2000:]
    return lines[0]


def _pat_records(vm: Machine, start: int, size: int) -> list[str]:
    """PAT memtype records that overlap [start, start + size)."""
    out = []
    for line in vm.run(f"cat {PAT}", check=True).output.splitlines():
        m = PAT_RECORD.search(line)
        if m and int(m.group(1), 16) < start + size and int(m.group(2), 16) > start:
            out.append(line.strip())
    return out


def _bar(vm: Machine) -> tuple[int, int]:
    info = parse_kv(vm.run("barmap-check info", check=True).output.strip())
    return int(info["bar_phys"], 16), int(info["bar_size"])


def _assert_no_memtype_left(vm: Machine) -> None:
    """Nothing mapped any more: no PAT record on BAR2, no bookkeeping complaint."""
    start, size = _bar(vm)
    assert _pat_records(vm, start, size) == []
    assert "invalid memtype" not in vm.run("dmesg", check=True).output


def test_uc_mapping_is_refused_while_wc_is_in_force(barmap_vm: Machine) -> None:
    """Issue 9 case 3: a UC request never silently gets another holder's WC."""
    vm = barmap_vm
    start, size = _bar(vm)
    vm.run("barmap-check hold --cache wc --size 30 > /tmp/hold.log 2>&1 & HOLD=$!")
    deadline = time.monotonic() + 20
    while parse_kv(vm.run("barmap-check info").output.strip()).get("bar_mode") != "wc":
        assert time.monotonic() < deadline, "the holder never mapped the BAR"
        time.sleep(0.1)
    records = _pat_records(vm, start, size)
    assert records and all(r.endswith("write-combining") for r in records), records
    for strategy in ("bar", "bar-remap"):
        status, out = vm.run(f"barmap-check check --strategy {strategy} --cache uc --sizes page")
        rec = parse_kv(next(ln for ln in out.splitlines() if ln.startswith("strategy=")))
        assert rec.get("error") == "EBUSY" and status != 0, out
    assert _pat_records(vm, start, size) == records  # nothing downgraded, nothing added
    vm.run("kill $HOLD; wait $HOLD")
    _assert_no_memtype_left(vm)
    # and with the holder gone, UC is free again
    status, out = vm.run("barmap-check check --strategy bar,bar-remap --cache uc --sizes page")
    assert status == 0, out


def test_partial_munmap_leaves_no_memtype_behind(barmap_vm: Machine) -> None:
    """Issue 9 case 4: partial munmap / mremap shrink, then WC still gets WC."""
    vm = barmap_vm
    status, out = vm.run("barmap-check hostile")
    cases = {kv["case"]: kv for kv in map(parse_kv, out.splitlines()) if "case" in kv}
    got = {
        name: cases[name].get("errno", cases[name].get("outcome"))
        for name in ("munmap-part-bar", "mremap-shrink-bar", "munmap-part-bar-remap",
                     "mremap-shrink-bar-remap")
    }  # fmt: skip
    assert got == {
        "munmap-part-bar": "ok",  # fault-time: no PAT record per VMA, splits fine
        "mremap-shrink-bar": "ok",
        "munmap-part-bar-remap": "EINVAL",  # eager: .may_split refuses
        "mremap-shrink-bar-remap": "EINVAL",
    }
    assert status == 0, out
    _assert_no_memtype_left(vm)
    start, size = _bar(vm)
    vm.run(
        "barmap-check hold --strategy bar-remap --cache wc --size 30 > /tmp/hold.log 2>&1 & HOLD=$!"
    )
    deadline = time.monotonic() + 20
    while not (records := _pat_records(vm, start, size)):
        assert time.monotonic() < deadline, "the holder never mapped the BAR"
        time.sleep(0.1)
    assert all(r.endswith("write-combining") for r in records), records
    vm.run("kill $HOLD; wait $HOLD")
    _assert_no_memtype_left(vm)


def test_fault_time_bar_maps_2mib_at_a_time_where_the_kernel_can(barmap_vm: Machine) -> None:
    """``.huge_fault``: a PMD per 2 MiB on 6.12..6.16, a PTE per page on 6.1; eager: no faults."""
    vm = barmap_vm
    release = vm.run("uname -r", check=True).output.strip()
    m = re.match(r"(\d+)\.(\d+)", release)
    assert m, release
    huge = (6, 12) <= (int(m.group(1)), int(m.group(2))) < (6, 17)
    r = parse_kv(vm.run("barmap-check faults --strategy bar", check=True).output.strip())
    pages, count = int(r["pages"]), int(r["count"])
    assert pages * 4096 == _bar(vm)[1]
    if huge:
        assert int(r["address"], 16) % (2 << 20) == 0, r  # placed for PMDs
        assert count <= pages // 512 + 4, r
    else:
        assert count >= pages, r
    eager = parse_kv(vm.run("barmap-check faults --strategy bar-remap", check=True).output.strip())
    assert int(eager["count"]) < 4, eager  # io_remap_pfn_range filled every PTE in mmap()
