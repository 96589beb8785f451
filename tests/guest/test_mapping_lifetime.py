"""Mappings that cannot outlive their device or module, and cache modes that tell the truth.

The races of ``mmap()`` against removal, for every strategy, are the atlas's
(``test_atlas.py``); here: rmmod refused while mapped, unplug and sysfs remove giving
SIGBUS, the memory types the PAT records, partial unmaps, PMDs.
"""

from __future__ import annotations

import re
import time

import pytest
import tool

from barmap.guest import checks
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


@pytest.mark.x86_only(
    "x86's PAT memtype list; arm64 keeps a mapping's attributes in its PTE (MAIR index)"
)
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


@pytest.mark.x86_only(
    "x86's PAT memtype list; arm64 keeps a mapping's attributes in its PTE (MAIR index)"
)
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


# -- the device or the module going while mapped ------------------------------


def test_rmmod_while_mapped_is_refused(barmap_vm: Machine) -> None:
    vm = barmap_vm
    tool.start_holder(vm, 120)
    status, output = vm.run("rmmod barmap")
    assert status != 0, "rmmod succeeded with a live mapping"
    assert "barmap" in output
    assert re.search(r"^barmap\s", vm.run("lsmod").output, re.M), "module gone anyway"
    # the holder's mappings are untouched by the refused rmmod
    assert vm.run("kill -0 $HOLD").status == 0
    assert vm.run("kill $HOLD; wait $HOLD").status == 128 + 15  # SIGTERM, as sent
    vm.run("rmmod barmap", check=True)
    assert not re.search(r"^barmap\s", vm.run("lsmod").output, re.M)
    checks.load_module(vm)
    assert checks.run_tool(vm, "bar", args="--sizes page").passed
    tool.assert_dmesg_clean(vm)


def test_rmmod_refusal_leaves_the_mapping_working(barmap_vm: Machine) -> None:
    vm = barmap_vm
    tool.start_holder(vm, 60)
    assert vm.run("rmmod barmap").status != 0
    # the refusal done, the holder checks its words now (SIGUSR1 ends its hold)
    assert vm.run("kill -USR1 $HOLD; wait $HOLD", timeout=30).status == 0
    hold = parse_kv(vm.run("tail -n 1 /tmp/hold.log").output.strip())
    assert hold == {"hold": "done", "verdict": "PASS"}
    vm.run("rmmod barmap", check=True)
    checks.load_module(vm)
    tool.assert_dmesg_clean(vm)


def test_hot_unplug_while_mapped_gives_sigbus(barmap_vm: Machine) -> None:
    vm = barmap_vm
    tool.start_holder(vm, 60)
    site = vm.qmp.plug_site("barmap0")
    vm.qmp.device_del("barmap0")
    tool.wait_event(vm, "DEVICE_DELETED", "barmap0")
    assert vm.run("test -e /dev/barmap0").status != 0
    # the holder's next access to the zapped mapping (now: SIGUSR1 ends its hold) must
    # fault, not read stale memory
    assert vm.run("kill -USR1 $HOLD; wait $HOLD", timeout=60).status == 128 + 7  # SIGBUS
    assert "hold=done" not in vm.run("cat /tmp/hold.log").output
    tool.assert_dmesg_clean(vm)

    # plugging a device back in gives a working /dev/barmap0
    vm.qmp.device_add("barmap", "barmap0", size=1 << 20, **site)
    deadline = time.monotonic() + 20
    while vm.run("test -c /dev/barmap0").status != 0:
        assert time.monotonic() < deadline, "no /dev/barmap0 after device_add"
        time.sleep(0.2)
    assert int(tool.info(vm)["bar_size"]) == 1 << 20
    result = checks.run_tool(vm, "bar", seed=0x91A6)
    assert result.passed and result.bytes_checked == 1 << 20, result.detail
    view = checks.host_view_check(vm, seed=0x91A6)
    assert view.passed, view.detail
    tool.assert_dmesg_clean(vm)


def test_sysfs_remove_while_mapped(barmap_vm: Machine) -> None:
    vm = barmap_vm
    status, output = vm.run("barmap-check unplug --seed 0x0ff", timeout=120)
    got = {kv["unplug"]: kv["outcome"] for kv in tool.records(output) if "unplug" in kv}
    assert got == {
        "remove": "ok",
        "bar-read": "signal=SIGBUS",
        "buffer-read": "signal=SIGBUS",
        "buffer-write": "signal=SIGBUS",
        "ioctl-info": "errno=ENODEV",
        "ioctl-alloc": "errno=ENODEV",
        "mmap": "errno=ENODEV",
        "bad-ioctl": "errno=ENOTTY",
        "close": "ok",
        "rescan-reopen": "ok",
    }, output
    assert status == 0
    assert checks.run_tool(vm, "bar", args="--sizes page").passed
    tool.assert_dmesg_clean(vm)


# -- the cache mode the page attributes record -------------------------------


@pytest.mark.x86_only(
    "x86's PAT memtype list; arm64 keeps a mapping's attributes in its PTE (MAIR index)"
)
@pytest.mark.parametrize("strategy", ["bar", "bar-remap"])
@pytest.mark.parametrize(
    ("cache", "memtype"), [("uc", "uncached-minus"), ("wc", "write-combining")]
)
def test_cache_mode_reaches_the_page_attributes(
    barmap_vm: Machine, strategy: str, cache: str, memtype: str
) -> None:
    """SET_CACHE decides the memory type the kernel's PAT records for the BAR mapping."""
    addr, _ = barmap_vm.qmp.barmap_bar("barmap0")
    pat = "/sys/kernel/debug/x86/pat_memtype_list"
    needle = f"[mem 0x{addr:016x}-"
    assert needle not in barmap_vm.run(f"cat {pat}", check=True).output  # nothing mapped yet
    barmap_vm.run(
        f"barmap-check hold --strategy {strategy} --cache {cache} --size 4 > /tmp/hold.log 2>&1 &"
    )
    lines: list[str] = []
    for _ in range(40):
        lines = [ln for ln in barmap_vm.run(f"cat {pat}").output.splitlines() if needle in ln]
        if lines:
            break
        barmap_vm.run("sleep 0.1")
    assert lines and all(ln.endswith(memtype) for ln in lines), lines
    barmap_vm.run("kill -USR1 $!; wait", timeout=30)  # seen: the holder may stop holding
    assert parse_kv(barmap_vm.run("cat /tmp/hold.log").output.strip())["verdict"] == "PASS"
