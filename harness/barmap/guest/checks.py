"""The guest checks: load the module, run barmap-check per strategy, verify from the host."""

from __future__ import annotations

import json
import re
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from barmap.errors import CommandFailed
from barmap.guest.machine import Machine
from barmap.pattern import DEFAULT_SEED, pattern

MODULE_PATH = "/lib/modules/barmap.ko"
TOOL = "barmap-check"
STRATEGIES = ("bar", "bar-remap", "dma")


def parse_kv(line: str) -> dict[str, str]:
    """``key=value key=value`` tokens of one tool output line."""
    out: dict[str, str] = {}
    for token in shlex.split(line):
        key, sep, value = token.partition("=")
        if sep:
            out[key] = value
    return out


@dataclass
class CheckResult:
    strategy: str
    bytes_checked: int
    mismatches: int
    verdict: str
    detail: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.verdict == "PASS"


def insmod_command(vm: Machine, *, reserved: bool = True) -> str:
    """The guest command that loads the driver, given the machine's reservation."""
    params = ""
    r = vm.config.reservation
    if reserved and r is not None:
        params = f" reserved_base={r.base:#x} reserved_size={r.size:#x}"
    return f"insmod {MODULE_PATH}{params}"


def load_module(vm: Machine, *, reserved: bool = True, device: str = "/dev/barmap0") -> None:
    vm.run(insmod_command(vm, reserved=reserved), check=True)
    vm.run(f"test -c {device}", check=True)


def insmod(vm: Machine, ko: str, params: str = "", *, expect_bound: str | None = None) -> list[str]:
    """Load a module of the guest's (``ko``: its guest path) and return what the kernel
    said about it.  CommandFailed, quoting those lines, when insmod fails, when a probe of
    the driver failed (insmod succeeds anyway), or when ``expect_bound`` (a guest BDF) is
    not bound to it afterwards."""
    name = Path(ko).stem.replace("-", "_")
    before = int(vm.run("dmesg | wc -l", check=True).output.strip() or 0)
    status, out = vm.run(f"insmod {ko} {params}".rstrip())
    said = vm.run(f"dmesg | tail -n +{before + 1}").output.splitlines()
    mine = [ln for ln in said if name in ln or (expect_bound and expect_bound in ln)
            or ("probe" in ln and "failed" in ln)]  # fmt: skip
    problem = ""
    if status != 0:
        problem = f"insmod {ko} failed (status {status}): {out.strip()}"
    elif any(re.search(r"probe.*failed|failed with error", ln) for ln in mine):
        problem = f"{name} loaded, but a probe failed"
    elif expect_bound:
        driver = vm.run(f"basename $(readlink /sys/bus/pci/devices/{expect_bound}/driver)"
                        " 2>/dev/null").output.strip()  # fmt: skip
        if driver.replace("-", "_") != name:
            problem = f"{name} loaded, but {expect_bound} is bound to {driver or 'no driver'}"
    if problem:
        quoted = "\n".join(mine[-20:]) or "(the kernel said nothing about it)"
        raise CommandFailed(f"{problem}; the kernel said:\n{quoted}", command=f"insmod {ko}",
                            status=status, output=out, **vm.error_kw())  # fmt: skip
    return mine


def reload_module(vm: Machine, params: str = "") -> None:
    """The driver loaded afresh with ``params`` (no holder left to keep the old one)."""
    release(vm)
    vm.run("rmmod barmap 2>/dev/null; true")
    vm.run(f"insmod {MODULE_PATH} {params}".rstrip(), check=True)
    vm.run("test -c /dev/barmap0", check=True)


def tool_tables(vm: Machine) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(rows, scenarios) as the guest tool declares them (``barmap-check atlas --scenarios
    list``): each row's name, API, whether the driver has it."""
    out = vm.run(f"{TOOL} atlas --scenarios list", check=True).output
    items = [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")]
    return [i for i in items if "row" in i], [i for i in items if "scenario" in i]


def config_read(vm: Machine, bdf: str, offset: int, width: int) -> int:
    """``width`` bytes of a PCI device's config space at ``offset`` (what setpci reads)."""
    out = vm.run(
        f"od -An -tu1 -j{offset} -N{width} /sys/bus/pci/devices/{bdf}/config", check=True
    ).output.split()
    return sum(int(b) << (8 * i) for i, b in enumerate(out))


def config_write(vm: Machine, bdf: str, offset: int, value: int, width: int) -> None:
    """Write ``width`` bytes of ``value`` (little endian) at ``offset`` of a device's config
    space, as ``setpci`` does (the guest's busybox has no setpci)."""
    octal = "".join(f"\\{(value >> (8 * i)) & 0xFF:03o}" for i in range(width))
    vm.run(
        f"printf '{octal}' | dd of=/sys/bus/pci/devices/{bdf}/config bs=1 seek={offset}"
        f" count={width} conv=notrunc 2>/dev/null",
        check=True,
    )


@dataclass(frozen=True)
class Holder:
    """A ``barmap-check hold`` in the guest's background ($HOLD): its pid and mappings."""

    pid: int
    io: int  # a page of the strategy held
    buf: int  # a page of a coherent buffer (the same page for a row of the kernel's own)


def hold(vm: Machine, strategy: str, *, seconds: int = 120, device: str = "/dev/barmap0") -> Holder:
    """Hold a page of ``strategy`` (and of a buffer) mapped until ``release``."""
    release(vm)
    # the log emptied by this shell before the holder starts: never an earlier holder's line
    vm.run(
        f": > /tmp/hold.log; {TOOL} hold --dev {device} --strategy {strategy}"
        f" --size {seconds} >> /tmp/hold.log 2>&1 & HOLD=$!"
    )
    pid = int(vm.run("echo $HOLD", check=True).output.strip())
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        first = vm.run("head -n 1 /tmp/hold.log").output.strip()
        if first.startswith("hold=mapped"):
            kv = parse_kv(first)
            if int(kv["pid"]) != pid:
                why = f"/tmp/hold.log is of process {kv['pid']}, not {pid}"
                raise CommandFailed(why, command="barmap-check hold", status=1, output=first)
            return Holder(pid, int(kv["io"], 16), int(kv["buf"], 16))
        if vm.run("kill -0 $HOLD 2>/dev/null").status:
            break
        time.sleep(0.05)
    raise CommandFailed(
        f"barmap-check hold --strategy {strategy} did not map: "
        + vm.run("cat /tmp/hold.log").output.strip()[-300:],
        command="barmap-check hold", status=1, output="",
    )  # fmt: skip


def release(vm: Machine) -> None:
    """End the holder, if any."""
    vm.run("kill $HOLD 2>/dev/null; wait $HOLD 2>/dev/null; unset HOLD; true")


@dataclass(frozen=True)
class WhyReport:
    """barmap-why's answer: its cause keyword, what it found, what it could not check."""

    cause: str
    facts: dict[str, str]
    not_checked: list[str]
    status: int


def why(vm: Machine, args: str) -> WhyReport:
    """Run ``barmap-why ARGS --json`` in the guest."""
    status, out = vm.run(f"barmap-why {args} --json")
    try:
        report = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise CommandFailed(
            f"barmap-why {args}: no report (status {status}): {out.strip()[-300:]}",
            command=f"barmap-why {args}", status=status, output=out,
        ) from None  # fmt: skip
    return WhyReport(report["cause"], report["facts"], report["not_checked"], status)


def run_tool(
    vm: Machine,
    strategy: str,
    *,
    device: str = "/dev/barmap0",
    args: str = "",
    seed: int = DEFAULT_SEED,
    timeout: float = 300.0,
) -> CheckResult:
    """One ``barmap-check`` run for ``strategy``: its summary line, or its only result line."""
    cmd = f"{TOOL} --dev {device} --strategy {strategy} --seed {seed:#x} {args}".strip()
    status, output = vm.run(cmd, timeout=timeout)
    results = [parse_kv(ln) for ln in output.splitlines() if ln.startswith("strategy=")]
    results = [kv for kv in results if kv.get("strategy") == strategy]
    summary = [kv for kv in results if kv.get("summary")]
    if not results:
        return CheckResult(
            strategy, 0, 0, "FAIL", f"no result line (status {status}): {output.strip()[-400:]}"
        )
    kv = (summary or results)[-1]
    return CheckResult(
        strategy=strategy,
        bytes_checked=int(kv.get("bytes", "0")),
        mismatches=int(kv.get("mismatches", "0")),
        verdict=kv.get("verdict", "FAIL") if status == 0 else "FAIL",
        detail="" if status == 0 else output.strip()[-400:],
        extra=kv,
    )


def host_view_check(vm: Machine, qdev_id: str = "barmap0", seed: int = DEFAULT_SEED) -> CheckResult:
    """Read BAR2 from the host (QMP pmemsave) and compare it with the tool's pattern."""
    addr, size = vm.qmp.barmap_bar(qdev_id)
    data = vm.qmp.read_phys(addr, size)
    want = pattern(size, seed)
    bad = sum(1 for i in range(0, size, 4) if data[i : i + 4] != want[i : i + 4])
    detail = f"BAR2 at {addr:#x}, {size} bytes read by the host"
    if bad:
        first = next(i for i in range(0, size, 4) if data[i : i + 4] != want[i : i + 4])
        detail += (
            f"; first mismatch at {first:#x}: "
            f"expected {want[first : first + 4].hex()} got {data[first : first + 4].hex()}"
        )
    return CheckResult("host-view", size, bad, "PASS" if bad == 0 else "FAIL", detail)
