"""A short atlas (``barmap.runs.atlas``) on the suite's kernel, each cell against what it must be.

The full one is ``make atlas`` (both kernels, 200 race cycles per removal path); this one
runs every cell once, with CYCLES cycles per race cell (10; 50 with ``BARMAP_SOAK=1``, as
the pipeline runs it; the debug kernel's race_cycles() if fewer), and asserts the verdict
of each.  A verdict that changes is either a
kernel that behaves differently (say so here) or a regression.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from knobs import race_cycles, soak

from barmap.build.paths import kernel_suite
from barmap.config import MachineConfig
from barmap.runs import atlas

X86_ONLY = pytest.mark.x86_only(
    "its expected table is x86's (PAT cache modes, intel-iommu for vfio)"
)
pytestmark = [
    pytest.mark.guest,
    X86_ONLY,
]

CYCLES = min(50 if soak() else 10, race_cycles())

IO_FAULT = ("bar", "reserved")
IO_EAGER = ("bar-remap", "bar-iomap", "reserved-remap")
BUFFERS = ("dma", "dma-wc", "dma-pages", "dma-noncontig", "ram-remap", "pages-insert",
           "pages-fault", "vmalloc", "dmabuf")  # fmt: skip
PAGES = ("pages-insert", "pages-fault", "vmalloc")  # struct pages in the user's page tables
REFS = ("vfio", "resource2")
ROWS = (*IO_FAULT, *IO_EAGER, *BUFFERS, *REFS)
DMA = ("bar", "bar-remap", "bar-iomap", *BUFFERS)  # what the device's engine reaches
REVOKED = tuple(r for r in ROWS if r not in ("dmabuf", *REFS))


def _kernel_at_least(release: str, major: int, minor: int) -> bool:
    m = re.match(r"(\d+)\.(\d+)", release)
    assert m, release
    return (int(m.group(1)), int(m.group(2))) >= (major, minor)


def expected(row: str, scenario: str, release: str) -> tuple[str, str | None]:
    """(verdict, errno or signal or value) the cell must have on kernel ``release``."""
    pages = row in PAGES
    if scenario in ("readback", "host-view", "fork", "mremap-move", "mprotect"):
        return "ok", None
    if scenario in ("dma-read", "dma-write"):
        return ("ok", None) if row in DMA else ("n/a", None)
    if scenario in ("ptrace", "proc-mem"):
        return ("refused", "EIO") if row in ("dmabuf", "vfio") else ("ok", None)
    if scenario in ("process-vm", "o-direct-read", "o-direct-write", "vmsplice"):
        return ("ok", None) if pages else ("refused", "EFAULT")
    if scenario == "io-uring":
        if not pages:
            return "refused", "EFAULT"
        # 6.1 refuses every file-backed page; 6.12 pins them
        return ("ok", None) if _kernel_at_least(release, 6, 12) else ("refused", "EOPNOTSUPP")
    if scenario in ("munmap-part", "mremap-shrink"):
        return ("refused", "EINVAL") if row in IO_EAGER else ("ok", None)
    if scenario == "mremap-grow":
        return "refused", "EFAULT"
    if scenario == "unplug":
        if row in REVOKED:
            return "revoked", "SIGBUS"
        return {"dmabuf": ("kept", None), "vfio": ("blocked", None),
                "resource2": ("wrong", None)}[row]  # fmt: skip
    if scenario in ("race-sysfs", "race-host"):
        # sysfs resource2 is never revoked at removal: a mapping survives until a driver
        # claims the range again (IO_STRICT_DEVMEM's revoke_iomem), which the driver's
        # probe of the re-added device may or may not do first
        return {"dmabuf": ("kept", None), "vfio": ("n/a", None),
                "resource2": ("ok|wrong", None)}.get(row, ("ok", None))  # fmt: skip
    if scenario == "rmmod":
        return ("n/a", None) if row == "resource2" else ("refused", "EAGAIN")
    if scenario == "huge":
        pmd = row in (*IO_FAULT, "vfio") and _kernel_at_least(release, 6, 12)
        return "info", "PMD" if pmd else "PTE"
    if scenario == "cache-mode":
        return "info", "WB" if row in BUFFERS else "UC-"
    if scenario == "cache-wc":
        return ("info", "WC") if row in (*IO_FAULT, *IO_EAGER) else ("n/a", None)
    if scenario in ("bandwidth", "map-cost"):
        return "info", None
    raise AssertionError(f"no expectation for {scenario}")


def _scenarios() -> list[str]:
    return ["readback", "host-view", "dma-read", "dma-write", "fork", "ptrace", "proc-mem",
            "process-vm", "o-direct-read", "o-direct-write", "io-uring", "vmsplice",
            "munmap-part", "mremap-move", "mremap-shrink", "mremap-grow", "mprotect", "huge",
            "cache-mode", "cache-wc", "bandwidth", "map-cost", "unplug", "race-sysfs",
            "race-host", "rmmod"]  # fmt: skip


def test_every_cell_is_what_it_must_be(barmap_config: MachineConfig, tmp_path: Path) -> None:
    """One atlas run (one test: xdist would run a module fixture once per worker), every
    cell against ``expected``, and the races real: each cycle had a mapping when the
    device went, and the BAR came back at the same address, so a surviving mapping would
    have reached the next device."""
    result = atlas.run({kernel_suite(): barmap_config}, atlas.Plan(cycles=CYCLES),
                       log_dir=tmp_path)  # fmt: skip
    rows = [r["row"] for r in result["rows"]]
    assert sorted(rows) == sorted(ROWS)
    assert [s["scenario"] for s in result["scenarios"]] == _scenarios()
    assert len(result["cells"]) == len(rows) * len(_scenarios())
    cells = {(c["row"], c["scenario"]): c for c in result["cells"]}
    release = result["kernels"][0]["kernel"]
    wrong = {}
    for scenario in _scenarios():
        for row in ROWS:
            cell = cells[(row, scenario)]
            verdict, what = expected(row, scenario, release)
            got = cell.get("errno") or cell.get("signal") or cell.get("value", "")
            if cell["verdict"] not in verdict.split("|") or (what and not got.startswith(what)):
                wrong[(row, scenario)] = (cell["verdict"], got, cell.get("detail", ""))
    assert not wrong, wrong
    for scenario in ("race-sysfs", "race-host"):
        for row in REVOKED:
            detail = dict(kv.split("=") for kv in cells[(row, scenario)]["detail"].split())
            assert int(detail["mapped"]) == int(detail["cycles"]) == CYCLES, (row, detail)
            if row in ("bar", "bar-remap", "bar-iomap"):
                assert int(detail["same_address"]) > CYCLES // 2, (row, detail)
