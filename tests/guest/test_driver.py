"""The guest driver, complete: every strategy, path, refusal, lifetime rule and fault, end to end.

Each test drives ``barmap-check`` (guest-driver/tools/check/) in a real
guest and parses its ``key=value`` (or ``--json``) records; where it can, it
also checks from the host (QMP ``pmemsave``) that the bytes really went where
the guest says they went.  Expectations come from guest-driver/README.md, not
from the tool's own idea of what should happen.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from barmap.abi import reg, uapi
from barmap.config import BarmapDevice, MachineConfig, Reservation
from barmap.guest import checks
from barmap.guest.checks import parse_kv
from barmap.guest.machine import Machine

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
MATRIX_RESERVATION = Reservation(base=0x30000000, size=MATRIX_OBJECT)

# Inside the PCI window of a 1 GiB pc guest (40000000-febfffff) but with no
# BAR, no RAM, nothing: QEMU's unassigned memory (reads 0, writes dropped).
NOTHING_BASE = 0x80000000
NOTHING_SIZE = 0x100000

KERNEL_FAILURE = re.compile(r"BUG:|WARNING:|Oops|Call Trace|general protection|Kernel panic")


# -- helpers ------------------------------------------------------------------


def _records(output: str) -> list[dict[str, str]]:
    """The tool's ``key=value`` result lines (mismatch details and notes are indented)."""
    return [parse_kv(ln) for ln in output.splitlines() if ln and not ln[0].isspace() and "=" in ln]


def _json(output: str) -> list[dict[str, object]]:
    start = output.index("[")
    return json.loads(output[start:])  # type: ignore[no-any-return]


def _info(vm: Machine, dev: str = "/dev/barmap0") -> dict[str, str]:
    return parse_kv(vm.run(f"barmap-check info --dev {dev}", check=True).output.strip())


def _sysfs(vm: Machine, attr: str, minor: int = 0) -> str:
    return vm.run(f"cat /sys/class/barmap/barmap{minor}/{attr}", check=True).output.strip()


def _assert_dmesg_clean(vm: Machine) -> None:
    dmesg = vm.run("dmesg", check=True).output
    bad = [ln for ln in dmesg.splitlines() if KERNEL_FAILURE.search(ln)]
    assert not bad, "kernel failure in dmesg:\n" + "\n".join(bad[:20])


def _xorshift_words(seed: int, count: int) -> bytes:
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


def _wait_event(vm: Machine, name: str, device: str, timeout: float = 20.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        vm.qmp.poll_events()
        for ev in vm.qmp.events:
            if ev.get("event") == name and ev.get("data", {}).get("device") == device:
                return ev
        time.sleep(0.1)
    raise AssertionError(f"no {name} event for {device} within {timeout} s: {vm.qmp.events}")


def _start_holder(vm: Machine, seconds: int, dev: str = "/dev/barmap0") -> None:
    """``barmap-check hold`` in the background (pid in $HOLD), back once both mappings exist."""
    vm.run(f"barmap-check hold --dev {dev} --size {seconds} > /tmp/hold.log 2>&1 & HOLD=$!")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        n = vm.run(f"grep -c {dev} /proc/$HOLD/maps").output.strip()
        if n.isdigit() and int(n) >= 2:  # the BAR and the DMA buffer
            return
        time.sleep(0.2)
    raise AssertionError("the holder never mapped the BAR and its buffer")


def _reload(vm: Machine, params: str = "") -> None:
    vm.run("rmmod barmap", check=True)
    vm.run(f"insmod {checks.MODULE_PATH} {params}".strip(), check=True)
    vm.run("test -c /dev/barmap0", check=True)


# -- a VM with small objects, for the full matrix -------------------------------


@pytest.fixture(scope="module")
def matrix_vm(
    barmap_config: MachineConfig, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Machine]:
    """A guest whose BAR2 and reserved region are 1 MiB, so "whole" stays cheap."""
    config = replace(
        barmap_config,
        devices=(BarmapDevice(id="barmap0", size=MATRIX_OBJECT),),
        reservation=MATRIX_RESERVATION,
    )
    with Machine(config, log_dir=tmp_path_factory.mktemp("matrix-vm")) as vm:
        checks.load_module(vm)
        yield vm
        _assert_dmesg_clean(vm)


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
    info = _info(vm)
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
    recs = [r for r in _records(output) if r.get("strategy") == strategy]
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
            addr = MATRIX_RESERVATION.base
            assert int(info["reserved_phys"], 16) == addr
        want = _xorshift_words(int(last["seed"], 16), whole // 4)
        data = vm.qmp.read_phys(addr, whole)
        assert data == want, f"host view of {strategy} differs from the tool's last pattern"


# -- 2. cross-path --------------------------------------------------------------


def test_cross_path_both_directions(barmap_vm: Machine) -> None:
    vm = barmap_vm
    bar_size = int(_info(vm)["bar_size"])
    dma_before = int(_sysfs(vm, "dma_count"))
    irq_before = int(_sysfs(vm, "irq_count"))
    status, output = vm.run("barmap-check cross --seed 0xc0055", timeout=120)
    assert status == 0, output
    recs = [r for r in _records(output) if "cross" in r]
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
    assert int(_sysfs(vm, "dma_count")) - dma_before == total
    assert int(_sysfs(vm, "irq_count")) - irq_before >= total  # one completion IRQ per transfer


# -- 3. the seed question: reserved RAM, nothing decoding, a dead link --------------


def test_memmap_reserved_ram_reads_back_what_was_written(barmap_vm: Machine) -> None:
    vm = barmap_vm
    r = vm.config.reservation
    assert r is not None
    assert f"memmap={r.size:#x}${r.base:#x}" in vm.run("cat /proc/cmdline").output
    iomem = vm.run("cat /proc/iomem", check=True).output
    assert re.search(rf"^{r.base:08x}-{r.base + r.size - 1:08x} : Reserved$", iomem, re.M), iomem
    info = _info(vm)
    assert int(info["reserved_phys"], 16) == r.base and int(info["reserved_size"]) == r.size

    seed = 0x7E5E0ED1
    result = checks.run_tool(vm, "reserved", seed=seed)
    assert result.passed, result.detail
    assert result.bytes_checked == r.size and result.mismatches == 0
    # the host sees the same bytes in guest RAM: remap_pfn_range mapped the real pages
    assert vm.qmp.read_phys(r.base, r.size) == checks.pattern(r.size, seed)


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

    _reload(vm, f"reserved_base={NOTHING_BASE:#x} reserved_size={NOTHING_SIZE:#x}")
    info = _info(vm)
    assert int(info["reserved_phys"], 16) == NOTHING_BASE
    assert int(info["reserved_size"]) == NOTHING_SIZE

    status, output = vm.run(
        "barmap-check check --strategy reserved --sizes page,whole --seed 0x5eed --json"
    )
    assert status == 1, output
    recs = _json(output)
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
    _reload(vm, f"reserved_base={r.base:#x} reserved_size={r.size:#x}")
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
    recs = _json(output)
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
    _assert_dmesg_clean(vm)


def test_rmmod_while_mapped_is_refused(barmap_vm: Machine) -> None:
    vm = barmap_vm
    _start_holder(vm, 120)
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
    _assert_dmesg_clean(vm)


def test_rmmod_refusal_leaves_the_mapping_working(barmap_vm: Machine) -> None:
    vm = barmap_vm
    _start_holder(vm, 60)
    assert vm.run("rmmod barmap").status != 0
    # the refusal done, the holder checks its words now (SIGUSR1 ends its hold)
    assert vm.run("kill -USR1 $HOLD; wait $HOLD", timeout=30).status == 0
    hold = parse_kv(vm.run("tail -n 1 /tmp/hold.log").output.strip())
    assert hold == {"hold": "done", "verdict": "PASS"}
    vm.run("rmmod barmap", check=True)
    checks.load_module(vm)
    _assert_dmesg_clean(vm)


def test_hot_unplug_while_mapped_gives_sigbus(barmap_vm: Machine) -> None:
    vm = barmap_vm
    _start_holder(vm, 60)
    site = vm.qmp.plug_site("barmap0")
    vm.qmp.device_del("barmap0")
    _wait_event(vm, "DEVICE_DELETED", "barmap0")
    assert vm.run("test -e /dev/barmap0").status != 0
    # the holder's next access to the zapped mapping (now: SIGUSR1 ends its hold) must
    # fault, not read stale memory
    assert vm.run("kill -USR1 $HOLD; wait $HOLD", timeout=60).status == 128 + 7  # SIGBUS
    assert "hold=done" not in vm.run("cat /tmp/hold.log").output
    _assert_dmesg_clean(vm)

    # plugging a device back in gives a working /dev/barmap0
    vm.qmp.device_add("barmap", "barmap0", size=1 << 20, **site)
    deadline = time.monotonic() + 20
    while vm.run("test -c /dev/barmap0").status != 0:
        assert time.monotonic() < deadline, "no /dev/barmap0 after device_add"
        time.sleep(0.2)
    assert int(_info(vm)["bar_size"]) == 1 << 20
    result = checks.run_tool(vm, "bar", seed=0x91A6)
    assert result.passed and result.bytes_checked == 1 << 20, result.detail
    view = checks.host_view_check(vm, seed=0x91A6)
    assert view.passed, view.detail
    _assert_dmesg_clean(vm)


def test_sysfs_remove_while_mapped(barmap_vm: Machine) -> None:
    vm = barmap_vm
    status, output = vm.run("barmap-check unplug --seed 0x0ff", timeout=120)
    got = {kv["unplug"]: kv["outcome"] for kv in _records(output) if "unplug" in kv}
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
    _assert_dmesg_clean(vm)


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
            info = _info(vm, dev)
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
            verdicts = [kv["verdict"] for kv in _records(output) if "cross" in kv]
            assert status == 0 and verdicts == ["PASS", "PASS"], output
        _assert_dmesg_clean(vm)


# -- 6. seeded random sequence ---------------------------------------------------

RANDOM_OPS = 100_000
OP_NAMES = ("info", "alloc", "free", "mmap", "munmap", "dma", "set_cache", "bad_ioctl",
            "touch", "mremap", "ioctl_null", "mmap_private")  # fmt: skip


def test_random_ops_match_the_model(barmap_vm: Machine) -> None:
    vm = barmap_vm
    seed = 0xB16B00B5
    status, output = vm.run(f"barmap-check --random-ops {RANDOM_OPS} --seed {seed:#x}", timeout=900)
    recs = [r for r in _records(output) if "random_ops" in r]
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
    _assert_dmesg_clean(vm)


# -- 7. device faults as the driver sees them ------------------------------------


def _cross_json(vm: Machine) -> list[dict[str, object]]:
    return _json(vm.run("barmap-check cross --seed 0xfa17 --json", timeout=120).output)


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
    timeouts = int(_sysfs(vm, "dma_timeouts"))
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
    assert int(_sysfs(vm, "dma_timeouts")) - timeouts == 2
    _assert_dmesg_clean(vm)


def test_dma_recovers_after_the_lost_interrupt_fault_is_cleared(barmap_vm: Machine) -> None:
    vm = barmap_vm
    vm.qmp.qom_set(QOM_PATH, "fault-irq-lost", True)
    assert all(r.get("error") == "ETIMEDOUT" for r in _cross_json(vm))
    vm.qmp.qom_set(QOM_PATH, "fault-irq-lost", False)
    recs = _cross_json(vm)
    outcomes = [(r["cross"], r.get("error", r["verdict"])) for r in recs]
    assert outcomes == [("bar-to-buf", "PASS"), ("buf-to-bar", "PASS")]
