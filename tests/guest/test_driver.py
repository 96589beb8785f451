"""The guest driver, complete: every strategy, path, refusal, lifetime rule and fault, end to end.

Each test drives ``barmap-check`` (guest-driver/tools/check/) in a real
guest and parses its ``key=value`` (or ``--json``) records; where it can, it
also checks from the host (QMP ``pmemsave``) that the bytes really went where
the guest says they went.  Expectations come from guest-driver/README.md, not
from the tool's own idea of what should happen.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import tool

from barmap.abi import reg, uapi
from barmap.config import BarmapDevice, MachineConfig, Reservation
from barmap.guest import checks
from barmap.guest.checks import parse_kv
from barmap.guest.machine import Machine

X86_ONLY = pytest.mark.x86_only("memmap= and x86 QEMU's unassigned memory reading 0x00")
pytestmark = pytest.mark.guest

PAGE = 4096
QOM_PATH = "/machine/peripheral/barmap0"
PATTERNS = ("offset", "walk", "55aa", "random")
WIDTHS = ("8", "16", "32", "64", "memcpy")
SIZE_NAMES = ("1", "1024", "1025", "page", "whole")
BUF_SIZE_MAX = uapi()["BARMAP_BUF_SIZE_MAX"]
DMA_MAX_LEN = reg("DMA_MAX_LEN")

# The full pattern x width x size matrix writes "whole" 20 times per run: a
# 16 MiB object takes ~20 s per run under TCG, 1 MiB objects well under 2 s.
MATRIX_OBJECT = 1 << 20

# Inside the PCI window of a 1 GiB pc guest (40000000-febfffff) but with no
# BAR, no RAM, nothing: QEMU's unassigned memory (reads 0, writes dropped).
NOTHING_BASE = 0x80000000
NOTHING_SIZE = 0x100000

# -- a VM with small objects, for the full matrix -------------------------------


@pytest.fixture(scope="module")
def matrix_vm(
    barmap_config: MachineConfig, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Machine]:
    """A guest whose BAR2 and reserved region are 1 MiB, so "whole" stays cheap."""
    config = replace(
        barmap_config,
        devices=(BarmapDevice(id="barmap0", size=MATRIX_OBJECT),),
        # the architecture's reservation (memmap= on x86, the device tree's on virt), smaller
        reservation=replace(barmap_config.reservation or Reservation(), size=MATRIX_OBJECT),
    )
    with Machine(config, log_dir=tmp_path_factory.mktemp("matrix-vm")) as vm:
        checks.load_module(vm)
        yield vm
        tool.assert_dmesg_clean(vm)


# -- 1. every strategy, cache mode, pattern, width and size ----------------------


@pytest.mark.parametrize(
    ("strategy", "cache"),
    [
        (strategy, cache)
        for strategy in ("bar", "bar-remap", "reserved", "reserved-remap")
        for cache in ("uc", "wc")
    ]
    + [("dma", "uc")],
)
def test_full_matrix_passes(matrix_vm: Machine, strategy: str, cache: str) -> None:
    vm = matrix_vm
    info = tool.info(vm)
    obj = strategy.removesuffix("-remap")
    whole = {
        "bar": int(info["bar_size"]),
        "reserved": int(info["reserved_size"]),
        "dma": MATRIX_OBJECT,
    }[obj]
    assert whole == MATRIX_OBJECT
    seed = 0x51DE0000 + len(strategy) * 16 + len(cache)
    size_arg = f" --size {MATRIX_OBJECT}" if strategy == "dma" else ""
    cmd = (
        f"barmap-check check --strategy {strategy} --cache {cache} --pattern all "
        f"--width all --sizes all --seed {seed:#x}{size_arg}"
    )
    status, output = vm.run(cmd, timeout=300)
    assert status == 0, output[-2000:]
    recs = [r for r in tool.records(output) if r.get("strategy") == strategy]
    passes = [r for r in recs if "summary" not in r]
    summary = [r for r in recs if "summary" in r]

    sizes = {"1": 1, "1024": 1024, "1025": 1025, "page": PAGE, "whole": whole}
    expected = {(p, w, sizes[s]) for p, w, s in itertools.product(PATTERNS, WIDTHS, SIZE_NAMES)}
    assert len(passes) == len(PATTERNS) * len(WIDTHS) * len(SIZE_NAMES) == 100
    got = [(r["pattern"], r["width"], int(r["bytes"])) for r in passes]
    assert set(got) == expected and len(got) == len(set(got))
    for r in passes:
        assert "error" not in r, r
        assert r["mismatches"] == "0", r
        assert r["verdict"] == "PASS", r
    assert len({r["seed"] for r in passes}) == len(passes), "every pass gets its own seed"

    assert len(summary) == 1
    s = summary[0]
    assert int(s["passes"]) == len(passes)
    assert int(s["bytes"]) == sum(b for _, _, b in got)
    assert s["mismatches"] == "0" and s["verdict"] == "PASS"

    if obj in ("bar", "reserved"):
        # The last pass wrote the seeded random pattern over the whole object
        # through a MAP_SHARED mapping: the host must read exactly that.
        last = passes[-1]
        assert (last["pattern"], last["width"], int(last["bytes"])) == ("random", "memcpy", whole)
        if obj == "bar":
            addr, size = vm.qmp.barmap_bar("barmap0")
            assert int(info["bar_phys"], 16) == addr and size == whole
        else:
            addr = vm.config.reservation.base if vm.config.reservation else 0
            assert int(info["reserved_phys"], 16) == addr
        want = tool.xorshift_words(int(last["seed"], 16), whole // 4)
        data = vm.qmp.read_phys(addr, whole)
        assert data == want, f"host view of {strategy} differs from the tool's last pattern"


def test_bar_strategy_round_trips_the_whole_bar(barmap_vm: Machine) -> None:
    _, bar_size = barmap_vm.qmp.barmap_bar("barmap0")
    result = checks.run_tool(barmap_vm, "bar")
    assert result.passed, result.detail
    assert result.bytes_checked == bar_size
    assert result.mismatches == 0


def test_host_sees_what_the_guest_wrote_into_the_bar(barmap_vm: Machine) -> None:
    seed = 0x1234ABCD
    assert checks.run_tool(barmap_vm, "bar", seed=seed).passed
    view = checks.host_view_check(barmap_vm, seed=seed)
    assert view.passed, view.detail
    # the host check can fail: the same bytes against another seed's pattern
    other = checks.host_view_check(barmap_vm, seed=seed ^ 0xFF)
    assert not other.passed
    assert other.mismatches == other.bytes_checked // 4


def test_guest_and_host_agree_on_the_bar_address(barmap_vm: Machine) -> None:
    addr, size = barmap_vm.qmp.barmap_bar("barmap0")
    info = parse_kv(barmap_vm.run("barmap-check info", check=True).output.strip())
    assert int(info["bar_phys"], 0) == addr
    assert int(info["bar_size"], 0) == size


# -- 2. cross-path --------------------------------------------------------------


def test_cross_path_both_directions(barmap_vm: Machine) -> None:
    vm = barmap_vm
    bar_size = int(tool.info(vm)["bar_size"])
    dma_before = int(tool.sysfs(vm, "dma_count"))
    irq_before = int(tool.sysfs(vm, "irq_count"))
    status, output = vm.run("barmap-check cross --seed 0xc0055", timeout=120)
    assert status == 0, output
    recs = [r for r in tool.records(output) if "cross" in r]
    assert [r["cross"] for r in recs] == ["bar-to-buf", "buf-to-bar"]
    length = min(bar_size, BUF_SIZE_MAX)
    for r in recs:
        assert r["verdict"] == "PASS", r
        assert "error" not in r, r
        assert int(r["bytes"]) == length
        assert r["mismatches"] == "0"
        assert int(r["dmas"]) == math.ceil(length / DMA_MAX_LEN)
        st = int(r["dma_status"], 16)
        assert st & reg("DMA_STATUS_DONE") and not st & reg("DMA_STATUS_ERROR"), hex(st)
    total = sum(int(r["dmas"]) for r in recs)
    assert int(tool.sysfs(vm, "dma_count")) - dma_before == total
    assert int(tool.sysfs(vm, "irq_count")) - irq_before >= total  # one completion IRQ per transfer


# -- 3. the seed question: reserved RAM, nothing decoding, a dead link --------------


@X86_ONLY
def test_memmap_reserved_ram_reads_back_what_was_written(barmap_vm: Machine) -> None:
    vm = barmap_vm
    r = vm.config.reservation
    assert r is not None
    assert f"memmap={r.size:#x}${r.base:#x}" in vm.run("cat /proc/cmdline").output
    iomem = vm.run("cat /proc/iomem", check=True).output
    assert re.search(rf"^{r.base:08x}-{r.base + r.size - 1:08x} : Reserved$", iomem, re.M), iomem
    info = tool.info(vm)
    assert int(info["reserved_phys"], 16) == r.base and int(info["reserved_size"]) == r.size

    seed = 0x7E5E0ED1
    result = checks.run_tool(vm, "reserved", seed=seed)
    assert result.passed, result.detail
    assert result.bytes_checked == r.size and result.mismatches == 0
    # the host sees the same bytes in guest RAM: remap_pfn_range mapped the real pages
    assert vm.qmp.read_phys(r.base, r.size) == checks.pattern(r.size, seed)


@X86_ONLY
def test_region_nothing_decodes_reads_zero_and_the_tool_says_so(barmap_vm: Machine) -> None:
    vm = barmap_vm
    # nothing there: not RAM, no BAR, QEMU reads zeros
    iomem = vm.run("cat /proc/iomem", check=True).output
    for line in iomem.splitlines():
        lo, _, rest = line.strip().partition("-")
        hi, _, name = rest.partition(" : ")
        if int(lo, 16) <= NOTHING_BASE <= int(hi, 16):
            assert name.startswith("PCI Bus"), f"{NOTHING_BASE:#x} is claimed: {line}"
    assert vm.qmp.read_phys(NOTHING_BASE, PAGE) == bytes(PAGE)

    tool.reload(vm, f"reserved_base={NOTHING_BASE:#x} reserved_size={NOTHING_SIZE:#x}")
    info = tool.info(vm)
    assert int(info["reserved_phys"], 16) == NOTHING_BASE
    assert int(info["reserved_size"]) == NOTHING_SIZE

    status, output = vm.run(
        "barmap-check check --strategy reserved --sizes page,whole --seed 0x5eed --json"
    )
    assert status == 1, output
    recs = tool.json_records(output)
    assert len(recs) == 3  # two passes and the summary
    assert recs[2]["summary"] == "1" and recs[2]["verdict"] == "FAIL"
    for rec in recs[:2]:
        # the mmap itself "works" (the seed question's trap): no error, just wrong data
        assert "error" not in rec, rec
        assert rec["verdict"] == "FAIL"
        assert 0 < int(rec["mismatches"]) <= int(rec["bytes"])  # type: ignore[call-overload]
        note = str(rec.get("note", ""))
        assert "all reads returned 0x00" in note and "not decoded" in note, rec
    # it was the address that read nothing: the memmap= region works with the same module
    r = vm.config.reservation
    assert r is not None
    tool.reload(vm, f"reserved_base={r.base:#x} reserved_size={r.size:#x}")
    assert checks.run_tool(vm, "reserved", args="--sizes page").passed


def test_dead_link_reads_all_ones_and_recovers_with_the_old_data(barmap_vm: Machine) -> None:
    vm = barmap_vm
    addr, size = vm.qmp.barmap_bar("barmap0")
    before = 0x0DDBA11
    assert checks.run_tool(vm, "bar", seed=before).passed

    vm.qmp.qom_set(QOM_PATH, "fault-all-ones", True)
    assert vm.qmp.qom_get(QOM_PATH, "fault-all-ones") is True
    status, output = vm.run(
        "barmap-check check --strategy bar --sizes 1024,page,whole --seed 0xbadf00d --json"
    )
    assert status == 1, output
    recs = tool.json_records(output)
    assert len(recs) == 4  # three passes and the summary
    for rec in recs[:3]:
        assert rec["verdict"] == "FAIL" and "error" not in rec, rec
        note = str(rec.get("note", ""))
        assert "all reads returned 0xff" in note and "dead link" in note, rec
    assert recs[3]["verdict"] == "FAIL" and recs[3]["summary"] == "1"
    assert vm.qmp.read_phys(addr, PAGE) == b"\xff" * PAGE  # the host sees the dead link too

    vm.qmp.qom_set(QOM_PATH, "fault-all-ones", False)
    assert vm.qmp.qom_get(QOM_PATH, "fault-all-ones") is False
    # the pattern written before the fault is still there; the writes during it were dropped
    view = checks.host_view_check(vm, seed=before)
    assert view.passed, view.detail
    assert view.bytes_checked == size
    assert checks.run_tool(vm, "bar", seed=0x600D).passed


# -- 4. hostile userspace -----------------------------------------------------

# From guest-driver/README.md ("case | result" and the lifetime rules).
HOSTILE_EXPECTED = {
    "bar-past-end": "errno=EINVAL",
    "unknown-buffer-id": "errno=EINVAL",
    "id-gap": "errno=EINVAL",
    "id-above-max": "errno=EINVAL",
    "map-private": "errno=EINVAL",
    "map-private-readonly": "errno=EINVAL",
    "bad-ioctl": "errno=ENOTTY",
    "alloc-zero": "errno=EINVAL",
    "alloc-too-big": "errno=EINVAL",
    "alloc-bad-kind": "errno=EINVAL",
    "alloc-exhaust": "errno=ENOSPC",
    "free-unknown": "errno=EINVAL",
    "free-while-mapped": "errno=EBUSY",
    "free-while-partly-mapped": "errno=EBUSY",
    "set-cache-2": "errno=EINVAL",
    "dma-valid": "outcome=ok",
    "dma-len-0": "errno=EINVAL",
    "dma-len-above-max": "errno=EINVAL",
    "dma-bar-past-end": "errno=EINVAL",
    "dma-bar-off-wraps": "errno=EINVAL",
    "dma-buf-off-wraps": "errno=EINVAL",
    "dma-bad-dir": "errno=EINVAL",
    "dma-bad-timeout": "errno=EINVAL",
    "buffer-past-end": "errno=EINVAL",
    "reserved": "outcome=ok",
    "reserved-past-end": "errno=EINVAL",
    "readonly-fd-prot-read": "outcome=ok",
    "readonly-fd-info": "outcome=ok",
    "readonly-fd-alloc": "errno=EBADF",
    "readonly-fd-free": "errno=EBADF",
    "readonly-fd-dma": "errno=EBADF",
    "readonly-fd-set-cache": "errno=EBADF",
    "mremap-grow": "errno=EFAULT",
    "mremap-grow-in-place": "errno=EFAULT",
    "mremap-grow-buffer": "errno=EFAULT",
    "mremap-shrink-buffer": "outcome=ok",
    "madvise-dontneed": "errno=EINVAL",
    "fork-write-bar": "outcome=shared",
    "fork-write-buffer": "outcome=shared",
    "close-before-munmap": "outcome=ok",
    "access-after-munmap": "outcome=signal=SIGSEGV",
    "read-syscall": "errno=EINVAL",
    "write-syscall": "errno=EINVAL",
}


def test_hostile_matrix_gets_the_documented_errno_or_signal(barmap_vm: Machine) -> None:
    vm = barmap_vm
    status, output = vm.run("barmap-check hostile --seed 0x4057113", timeout=120)
    lines = [ln for ln in output.splitlines() if ln.startswith("case=")]
    got: dict[str, str] = {}
    for ln in lines:
        kv = parse_kv(ln)
        outcome = f"errno={kv['errno']}" if "errno" in kv else f"outcome={kv.get('outcome')}"
        got[kv["case"]] = outcome
        assert ln.split()[-1] == "ok", f"the tool failed its own case: {ln}"
    assert len(got) == len(lines), "a case was reported twice"
    missing = set(HOSTILE_EXPECTED) - set(got)
    assert not missing, f"the tool did not try {sorted(missing)}"
    wrong = {c: (got[c], e) for c, e in HOSTILE_EXPECTED.items() if got[c] != e}
    assert not wrong, f"case: (got, documented) {wrong}"
    summary = re.search(r"^(\d+) passed, (\d+) failed$", output, re.M)
    assert summary, output[-500:]
    assert (int(summary.group(1)), int(summary.group(2))) == (len(lines), 0)
    assert status == 0
    tool.assert_dmesg_clean(vm)


@pytest.mark.parametrize(
    ("case", "errno"),
    [
        ("bar-past-end", "EINVAL"),
        ("unknown-buffer-id", "EINVAL"),
        ("map-private", "EINVAL"),
        ("bad-ioctl", "ENOTTY"),
        ("free-while-mapped", "EBUSY"),
        ("mremap-grow", "EFAULT"),
    ],
)
def test_bad_mappings_are_refused_with_an_errno(barmap_vm: Machine, case: str, errno: str) -> None:
    refusals = _refusals(barmap_vm)
    assert case in refusals, f"the tool did not try {case}"
    assert refusals[case] == errno


_cache: dict[int, dict[str, str]] = {}


def _refusals(vm: Machine) -> dict[str, str]:
    """The tool's refusal matrix, run once per VM: case -> errno name it got."""
    if id(vm) not in _cache:
        output = vm.run("barmap-check probe-refusals").output
        _cache[id(vm)] = {
            kv["refusal"]: kv.get("errno", "none")
            for kv in map(parse_kv, output.splitlines())
            if "refusal" in kv
        }
    return _cache[id(vm)]


# -- 5. several devices --------------------------------------------------------


def test_several_devices_each_pass(barmap_config: MachineConfig, tmp_path: Path) -> None:
    devices = (
        BarmapDevice(id="barmap0", size=1 << 20),
        BarmapDevice(id="barmap1", size=2 << 20),
        BarmapDevice(id="barmap2", size=4 << 20),
    )
    config = replace(barmap_config, devices=devices)
    with Machine(config, log_dir=tmp_path) as vm:
        checks.load_module(vm)
        nodes = sorted(vm.run("ls /dev", check=True).output.split())
        nodes = [n for n in nodes if n.startswith("barmap")]
        assert nodes == ["barmap0", "barmap1", "barmap2"]
        bars = {d.id: vm.qmp.barmap_bar(d.id) for d in devices}
        qdev_of: dict[str, str] = {}
        for minor, node in enumerate(nodes):
            dev = f"/dev/{node}"
            info = tool.info(vm, dev)
            assert int(info["minor"]) == minor
            qdev = next(q for q, (a, _) in bars.items() if a == int(info["bar_phys"], 16))
            assert int(info["bar_size"]) == bars[qdev][1]
            qdev_of[dev] = qdev
        assert sorted(qdev_of.values()) == ["barmap0", "barmap1", "barmap2"]
        seeds = {dev: 0xD0000 + minor for minor, dev in enumerate(qdev_of)}
        for dev, seed in seeds.items():
            result = checks.run_tool(vm, "bar", device=dev, seed=seed)
            assert result.passed, f"{dev} bar: {result.detail}"
            assert result.bytes_checked == bars[qdev_of[dev]][1]
        # each BAR kept its own pattern: no device node reaches another device's BAR
        for dev, seed in seeds.items():
            view = checks.host_view_check(vm, qdev_of[dev], seed=seed)
            assert view.passed, f"{dev}: {view.detail}"
        for dev, seed in seeds.items():
            for strategy in ("dma", "reserved"):
                result = checks.run_tool(vm, strategy, device=dev, seed=seed)
                assert result.passed, f"{dev} {strategy}: {result.detail}"
            status, output = vm.run(f"barmap-check cross --dev {dev} --seed {seed}")
            verdicts = [kv["verdict"] for kv in tool.records(output) if "cross" in kv]
            assert status == 0 and verdicts == ["PASS", "PASS"], output
        tool.assert_dmesg_clean(vm)


# -- 6. seeded random sequence ---------------------------------------------------

RANDOM_OPS = 100_000
OP_NAMES = ("info", "alloc", "free", "mmap", "munmap", "dma", "set_cache", "bad_ioctl",
            "touch", "mremap", "ioctl_null", "mmap_private")  # fmt: skip


def test_random_ops_match_the_model(barmap_vm: Machine) -> None:
    vm = barmap_vm
    seed = 0xB16B00B5
    status, output = vm.run(f"barmap-check --random-ops {RANDOM_OPS} --seed {seed:#x}", timeout=900)
    recs = [r for r in tool.records(output) if "random_ops" in r]
    assert len(recs) == 1, output[-2000:]
    r = recs[0]
    assert int(r["random_ops"]) == RANDOM_OPS
    assert int(r["seed"], 16) == seed
    assert r["unexpected"] == "0", output[-2000:]
    assert r["verdict"] == "PASS"
    counts = {name: int(r[name]) for name in OP_NAMES}
    assert all(counts.values()), counts  # every kind of call was made
    # ops that found nothing to work on are skipped; the final frees add at most 64
    assert 0.9 * RANDOM_OPS <= sum(counts.values()) <= RANDOM_OPS + 64, counts
    assert status == 0
    tool.assert_dmesg_clean(vm)


# -- 7. device faults as the driver sees them ------------------------------------


def _cross_json(vm: Machine) -> list[dict[str, object]]:
    return tool.json_records(vm.run("barmap-check cross --seed 0xfa17 --json", timeout=120).output)


def test_injected_dma_error_is_eio_with_the_device_code(barmap_vm: Machine) -> None:
    vm = barmap_vm
    vm.qmp.qom_set(QOM_PATH, "fault-dma-error", True)
    recs = _cross_json(vm)
    assert [r["cross"] for r in recs] == ["bar-to-buf", "buf-to-bar"]
    injected = reg("DMA_ERR_INJECTED")
    assert injected == 6
    for rec in recs:
        assert rec["error"] == "EIO" and rec["verdict"] == "FAIL", rec
        st = int(str(rec["dma_status"]), 16)
        assert st & reg("DMA_STATUS_ERROR"), hex(st)
        code = (st & reg("DMA_STATUS_ERR_MASK")) >> reg("DMA_STATUS_ERR_SHIFT")
        assert code == injected, hex(st)
        assert f"device reported DMA error {injected}" in str(rec.get("note")), rec
    vm.qmp.qom_set(QOM_PATH, "fault-dma-error", False)
    recs = _cross_json(vm)
    assert all(r["verdict"] == "PASS" for r in recs), recs


def test_lost_interrupt_is_etimedout(barmap_vm: Machine) -> None:
    vm = barmap_vm
    timeouts = int(tool.sysfs(vm, "dma_timeouts"))
    vm.qmp.qom_set(QOM_PATH, "fault-irq-lost", True)
    recs = _cross_json(vm)
    assert [r["cross"] for r in recs] == ["bar-to-buf", "buf-to-bar"]
    for rec in recs:
        assert rec["error"] == "ETIMEDOUT" and rec["verdict"] == "FAIL", rec
        assert rec["dmas"] == 1  # the first transfer already timed out
        st = int(str(rec["dma_status"]), 16)
        # the device did finish: only the interrupt went missing
        assert st & reg("DMA_STATUS_DONE") and not st & reg("DMA_STATUS_ERROR"), hex(st)
        assert "no completion interrupt" in str(rec.get("note")), rec
    assert int(tool.sysfs(vm, "dma_timeouts")) - timeouts == 2
    tool.assert_dmesg_clean(vm)


def test_dma_recovers_after_the_lost_interrupt_fault_is_cleared(barmap_vm: Machine) -> None:
    vm = barmap_vm
    vm.qmp.qom_set(QOM_PATH, "fault-irq-lost", True)
    assert all(r.get("error") == "ETIMEDOUT" for r in _cross_json(vm))
    vm.qmp.qom_set(QOM_PATH, "fault-irq-lost", False)
    recs = _cross_json(vm)
    outcomes = [(r["cross"], r.get("error", r["verdict"])) for r in recs]
    assert outcomes == [("bar-to-buf", "PASS"), ("buf-to-bar", "PASS")]
