"""``barmap bench``: where a boot's time goes, snapshot and bandwidth figures, as JSON.

Benchmarks measure; no test asserts a time.  Boot phases are taken on the host,
as a user waits for them (``Machine.boot_phases``), for each way the kernel can
boot, in interleaved rounds so that a busy machine slows both alike; the
figures are medians.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

from barmap.config import MachineConfig
from barmap.guest import checks
from barmap.guest.machine import Machine


def boot_rounds(
    configs: dict[str, MachineConfig], rounds: int, log_dir: Path
) -> dict[str, list[dict[str, float]]]:
    """Boot each config ``rounds`` times (interleaved); the phases of every boot.

    The order turns by one each round: on this project's CI machine back-to-back boots
    alternate between fast and ~0.15 s slower (the host's doing, the same for any
    config), so a fixed order would give one path all the slow turns.
    """
    out: dict[str, list[dict[str, float]]] = {name: [] for name in configs}
    names = list(configs)
    for i in range(rounds):
        turn = i % len(names) if names else 0
        for name in names[turn:] + names[:turn]:
            config = configs[name]
            with Machine(config, log_dir=log_dir / f"boot-{name}-{i}") as vm:
                out[name].append(vm.boot_phases())
    return out


def medians(samples: list[dict[str, float]]) -> dict[str, float]:
    """The median of each phase over the boots that reached it."""
    keys = [k for k in samples[0] if all(k in s for s in samples)] if samples else []
    return {k: round(statistics.median(s[k] for s in samples), 3) for k in keys}


def boot_report(configs: dict[str, MachineConfig], rounds: int, log_dir: Path) -> dict[str, Any]:
    """Per boot path: the kernel, every round's phases and their medians; PVH/bzImage ratios."""
    runs = boot_rounds(configs, rounds, log_dir)
    report: dict[str, Any] = {
        name: {
            "kernel": str(configs[name].kernel),
            "rounds": runs[name],
            "median": medians(runs[name]),
        }
        for name in configs
    }
    if "pvh" in report and "bzimage" in report:
        pvh, bz = report["pvh"]["median"], report["bzimage"]["median"]
        report["pvh_to_bzimage"] = {
            k: round(pvh[k] / bz[k], 3) for k in ("init_done", "shell") if pvh.get(k) and bz.get(k)
        }
    return report


def machine_report(config: MachineConfig, repeat: int, log_dir: Path) -> dict[str, Any]:
    """Snapshot save/restore times and the guest tool's mmap bandwidth, on one VM."""
    with Machine(config, log_dir=log_dir / "machine") as vm:
        phases = vm.boot_phases()
        checks.load_module(vm)
        state = vm.rundir / "bench.state"
        save = vm.save_state(state)
        restores = [vm.restore_state(state) for _ in range(repeat)]
        output = vm.run("barmap-check bench --json", timeout=600, check=True).output
        bandwidth = json.loads(output)  # the tool's --json output is one array
        vm.check_crash()
        ram = next((b for b in bandwidth if b.get("bench") == "malloc"), None)
        return {
            "accel": vm.accel,
            "boot_phases": phases,
            "snapshot_save_seconds": round(save, 3),
            "snapshot_restore_seconds": [round(r, 3) for r in restores],
            "bandwidth": bandwidth,
            "bandwidth_vs_ram": _vs_ram(bandwidth, ram),
        }


def _vs_ram(bandwidth: list[dict[str, Any]], ram: dict[str, Any] | None) -> dict[str, Any]:
    """Each mapping's write/read MB/s as a ratio to plain memory's in the same run."""
    if not ram or not ram["write_MBps"] or not ram["read_MBps"]:
        return {}
    return {
        b["bench"]: {
            "write": round(b["write_MBps"] / ram["write_MBps"], 3),
            "read": round(b["read_MBps"] / ram["read_MBps"], 3),
        }
        for b in bandwidth
        if "bench" in b
    }


def quiet_config(config: MachineConfig) -> MachineConfig:
    """A config for timing boots: no SSH, nothing extra the harness would add."""
    return replace(config, ssh=False, gdb_port=None)
