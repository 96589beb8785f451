"""The mapping atlas: every strategy through ``barmap-check atlas``'s scenario matrix.

Each kernel gets two guests, q35 both: one without an IOMMU for the driver's rows and
sysfs ``resource2`` (a second barmap device that no driver holds), one with
intel-iommu for ``vfio`` (that device bound to vfio-pci).  The guest tool runs the
cells; the host answers its ``@atlas`` lines: the frames of a host-view cell are read
with QMP ``pmemsave`` and checked here, and a ``race-host`` cycle is a QMP
``device_del`` and ``device_add``.  The result is one JSON document (``Atlas``).
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
import subprocess
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from barmap.config import BarmapDevice, MachineConfig
from barmap.guest.checks import TOOL, load_module, tool_tables
from barmap.guest.machine import Machine
from barmap.pattern import DEFAULT_SEED, pattern

REF_ID = "barmap-ref"  # the device the kernel's own rows (vfio, resource2) map
IOMMU_ROWS = ("vfio",)
RACES = ("race-sysfs", "race-host")
PROMPT = re.compile(r"@atlas (\S+) ([^\r\n]*)\r?\n")
# what vfio-pci's row needs, in load order (vfio_virqfd is a module of 6.1 only)
VFIO_MODULES = ("irqbypass", "vfio", "vfio_virqfd", "vfio_iommu_type1", "vfio-pci-core", "vfio-pci")
NO_DRIVER = "barmap-atlas-none"  # a driver_override no driver answers to


@dataclass(frozen=True)
class Plan:
    """What one atlas run covers."""

    rows: tuple[str, ...] = ()  # empty: every row
    scenarios: tuple[str, ...] = ()  # empty: every scenario
    cycles: int = 200  # per race cell
    seed: int = DEFAULT_SEED


@dataclass
class Pass:
    """One guest of one kernel and the cells it ran."""

    suite: str
    iommu: bool
    rows: list[str]
    cells: list[dict[str, Any]] = field(default_factory=list)
    kernel: str = ""
    accel: str = ""
    machine: str = ""
    seconds: float = 0.0


def _bdf(dev: dict[str, Any]) -> str:
    return f"0000:{dev['bus']:02x}:{dev['slot']:02x}.{dev['function']:x}"


def guest_bdf(vm: Machine, qdev_id: str) -> str:
    """The PCI address the guest sees for a device of the VM."""
    for dev in vm.qmp.pci_devices():
        if dev.get("qdev_id") == qdev_id:
            return _bdf(dev)
    raise KeyError(f"no PCI device {qdev_id!r}")


class HostAnswers:
    """The host's side of a run: host-view reads and QMP removals."""

    def __init__(self, vm: Machine, suite: str, seed: int) -> None:
        self.vm = vm
        self.suite = suite
        self.seed = seed
        self.host_cells: dict[str, dict[str, Any]] = {}
        self.rng = random.Random(seed)
        self._sites: dict[str, tuple[str, dict[str, str], int]] = {}

    def __call__(self, m: re.Match[str]) -> str | None:
        kind, args = m.group(1), dict(kv.split("=", 1) for kv in m.group(2).split())
        if kind == "host-view":
            self.host_cells[args["row"]] = self.host_view(args)
            return "\n"
        if kind == "race":
            self.replug(args["bdf"])
        return None

    def host_view(self, args: dict[str, str]) -> dict[str, Any]:
        seed = int(args["seed"], 16)
        frames = [int(p, 16) for p in args["pfns"].split(",") if p]
        bad = 0
        for i, pfn in enumerate(frames):
            got = self.vm.qmp.read_phys(pfn * 4096, 4096)
            want = pattern(4096, seed, offset=i * 4096)
            bad += sum(a != b for a, b in zip(got, want, strict=True))
        contiguous = all(b == a + 1 for a, b in zip(frames, frames[1:], strict=False))
        where = "contiguous" if contiguous else "scattered"
        if bad:
            return {
                "verdict": "wrong",
                "value": f"{bad} of {4096 * len(frames)} bytes differ"
                f" in the {len(frames)} frames ({where})",
            }
        return {
            "verdict": "ok",
            "value": f"{len(frames)} frames ({where}) hold the pattern",
            "detail": f"first frame {frames[0]:#x}",
        }

    def replug(self, bdf: str) -> None:
        """One race-host cycle: the device at bdf goes (QMP) and comes back where it was."""
        if bdf not in self._sites:
            qdev = next(d["qdev_id"] for d in self.vm.qmp.pci_devices() if _bdf(d) == bdf)
            _, size = self.vm.qmp.barmap_bar(qdev)
            self._sites[bdf] = (qdev, self.vm.qmp.plug_site(qdev), size)
        qdev, site, size = self._sites[bdf]
        time.sleep(self.rng.random() * 0.003)  # somewhere inside the child's mmap loop
        self.vm.qmp.device_del(qdev)
        self.vm.qmp.event_wait("DEVICE_DELETED", {"device": qdev}, timeout=60)
        self.vm.qmp.device_add("barmap", qdev, size=size, **site)


def prepare(vm: Machine, iommu: bool) -> None:
    """The driver, a RAM disk for O_DIRECT, and the reference device in its state."""
    load_module(vm)
    vm.run("insmod /lib/modules/extra/brd.ko rd_nr=1 rd_size=4096 && test -b /dev/ram0", check=True)
    bdf = guest_bdf(vm, REF_ID)
    dev = f"/sys/bus/pci/devices/{bdf}"
    if iommu:
        for m in VFIO_MODULES:
            vm.run(f"test ! -f /lib/modules/extra/{m}.ko || insmod /lib/modules/extra/{m}.ko")
        driver = "vfio-pci"
    else:
        driver = NO_DRIVER
    vm.run(f"echo {driver} > {dev}/driver_override", check=True)
    vm.run(f"test ! -e {dev}/driver || echo {bdf} > {dev}/driver/unbind", check=True)
    vm.run(f"echo {bdf} > /sys/bus/pci/drivers_probe")
    if iommu:
        vm.run(f'test "$(basename $(readlink {dev}/driver))" = vfio-pci', check=True)


def _cells(output: str, suite: str, kernel: str) -> list[dict[str, Any]]:
    cells = []
    for line in output.splitlines():
        if line.startswith('{"row"'):
            cell = json.loads(line)
            cell.update(suite=suite, kernel=kernel)
            cells.append(cell)
    return cells


def run_pass(
    config: MachineConfig,
    p: Pass,
    plan: Plan,
    log_dir: Path | None,
    progress: Callable[[str], None],
) -> tuple[Pass, list[dict[str, Any]], list[dict[str, Any]]]:
    """Boot one guest, run its rows' cells; (the pass, the tool's rows, its scenarios)."""
    t0 = time.monotonic()
    with Machine(config, log_dir=log_dir) as vm:
        prepare(vm, p.iommu)
        p.kernel = vm.run("uname -r", check=True).output.strip()
        p.accel = vm.accel
        p.machine = config.machine
        rows, scenarios = tool_tables(vm)
        names = [
            s["scenario"]
            for s in scenarios
            if not plan.scenarios or s["scenario"] in plan.scenarios
        ]
        host = HostAnswers(vm, p.suite, plan.seed)
        # the cheap cells first, each race cell on its own (a long command apiece)
        batches = [[n for n in names if n not in RACES]] + [[n] for n in names if n in RACES]
        for batch in batches:
            if not batch:
                continue
            cmd = (
                f"{TOOL} atlas --strategy {','.join(p.rows)} --scenarios {','.join(batch)}"
                f" --count {plan.cycles} --seed {plan.seed:#x}"
            )
            progress(f"{p.suite}{' iommu' if p.iommu else ''}: {', '.join(batch)[:60]}")
            result = vm.converse(cmd, PROMPT, host, timeout=600)
            p.cells.extend(_cells(result.output, p.suite, p.kernel))
        for cell in p.cells:
            if cell["scenario"] == "host-view" and cell["row"] in host.host_cells:
                cell.update(host.host_cells[cell["row"]])
    p.seconds = round(time.monotonic() - t0, 1)
    return p, rows, scenarios


def qemu_version(qemu: Path) -> str:
    out = subprocess.run([str(qemu), "--version"], capture_output=True, text=True).stdout
    return out.splitlines()[0] if out else ""


def atlas_configs(base: MachineConfig) -> tuple[MachineConfig, MachineConfig | None]:
    """(the guest for the driver's rows, the guest with intel-iommu for vfio-pci's: q35's,
    so None on virt, where vfio's row says n/a)."""
    devices = (BarmapDevice(id="barmap0"), BarmapDevice(id=REF_ID))
    machine = "q35" if base.arch == "x86_64" else base.machine
    direct = dataclasses.replace(base, machine=machine, iommu=False, devices=devices)
    return direct, dataclasses.replace(direct, iommu=True) if machine == "q35" else None


def run(
    configs: dict[str, MachineConfig],
    plan: Plan,
    *,
    log_dir: Path | None = None,
    workers: int = 2,
    progress: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """The atlas of each kernel suite in ``configs`` (suite -> its base config)."""
    jobs: list[tuple[MachineConfig, Pass]] = []
    for suite, base in configs.items():
        direct, iommu = atlas_configs(base)
        main_rows = [r for r in plan.rows if r not in IOMMU_ROWS] or ["all"]
        if not plan.rows or main_rows != ["all"]:
            jobs.append((direct, Pass(suite, False, main_rows)))
        vfio_rows = [r for r in IOMMU_ROWS if not plan.rows or r in plan.rows]
        if vfio_rows and iommu is not None:
            jobs.append((iommu, Pass(suite, True, vfio_rows)))
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [
            pool.submit(
                run_pass,
                cfg,
                p,
                plan,
                log_dir / f"{p.suite}-{'iommu' if p.iommu else 'direct'}" if log_dir else None,
                progress,
            )
            for cfg, p in jobs
        ]
        done = [f.result() for f in futures]
    rows_meta, scenarios_meta = done[0][1], done[0][2]
    cells: list[dict[str, Any]] = []
    qemu = {suite: qemu_version(cfg.qemu) for suite, cfg in configs.items()}
    iommu_suites = {p.suite for p, _, _ in done if p.iommu}
    for p, _, _ in done:
        # a pass's own rows only: the driver guest's vfio cells say n/a, the iommu one's are
        # real (a suite without an iommu pass, on virt, keeps the n/a ones)
        alone = p.suite not in iommu_suites
        mine = [c for c in p.cells if p.iommu == (c["row"] in IOMMU_ROWS) or alone]
        for c in mine:
            c["qemu"] = qemu[p.suite]
        cells.extend(mine)
    return {
        "generated": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "seconds": round(time.monotonic() - t0, 1),
        "cycles": plan.cycles,
        "kernels": [
            {
                "suite": p.suite,
                "kernel": p.kernel,
                "iommu": p.iommu,
                "seconds": p.seconds,
                "qemu": qemu[p.suite],
                "machine": p.machine,
                "accel": p.accel,
            }
            for p, _, _ in done
        ],
        "rows": rows_meta,
        "scenarios": scenarios_meta,
        "cells": _ordered(cells, rows_meta, scenarios_meta),
    }


def _ordered(
    cells: list[dict[str, Any]], rows: Sequence[dict[str, Any]], scenarios: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    order_r = {r["row"]: i for i, r in enumerate(rows)}
    order_s = {s["scenario"]: i for i, s in enumerate(scenarios)}
    return sorted(
        cells, key=lambda c: (c["suite"], order_r.get(c["row"], 99), order_s.get(c["scenario"], 99))
    )
