"""virt's device tree with barmap's reserved memory in it, for ``-dtb``.

QEMU generates virt's tree, so it is dumped (``-machine dumpdtb=``) from the options the
guest boots with (memory, CPU, GIC), decompiled with ``dtc``, given these nodes and
compiled again:

* ``/reserved-memory/barmap@ADDR``: ``compatible = "barmap,reserved"``, ``no-map``: the
  driver's reserved strategies (it finds the node when no ``reserved_base=`` is given);
* ``/reserved-memory/barmap-dma@ADDR``: a ``shared-dma-pool``, ``no-map``, that the
  device's node names in ``memory-region``: ``of_reserved_mem_device_init()`` makes the
  driver's coherent buffers come from it;
* ``PCIE/pci@1,0/barmap@0,0``: the device behind the root port at 00:01.0.

Standard library only, so ``scripts/boot-arm64.sh`` runs it too, before any venv::

    PYTHONPATH=harness python3 -m barmap.qemu.devicetree OUT.dtb QEMU -M virt,... [...]

(the regions: barmap.config's VIRT_RESERVATION and DT_POOL, or BARMAP_DT_RESERVED and
BARMAP_DT_POOL as ADDR:SIZE, hex).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path


class DeviceTreeError(Exception):
    """One line: what went wrong making the tree."""


def _cells(n: int) -> str:
    return f"0x{n >> 32:x} 0x{n & 0xFFFFFFFF:x}"


def barmap_nodes(pcie: str, reserved: tuple[int, int], pool: tuple[int, int]) -> str:
    """The DTS overlaying QEMU's tree: the two regions and the device's node."""
    (rbase, rsize), (pbase, psize) = reserved, pool
    return f"""
/ {{
	reserved-memory {{
		#address-cells = <2>;
		#size-cells = <2>;
		ranges;
		barmap@{rbase:x} {{
			compatible = "barmap,reserved";
			reg = <{_cells(rbase)} {_cells(rsize)}>;
			no-map;
		}};
		barmap_pool: barmap-dma@{pbase:x} {{
			compatible = "shared-dma-pool";
			reg = <{_cells(pbase)} {_cells(psize)}>;
			no-map;
		}};
	}};
	{pcie} {{
		/* the root port at 00:01.0 (reg: devfn << 8), the device at 0.0 of its bus */
		pci@1,0 {{
			reg = <0x800 0x0 0x0 0x0 0x0>;
			#address-cells = <3>;
			#size-cells = <2>;
			device_type = "pci";
			ranges;
			barmap@0,0 {{
				reg = <0x10000 0x0 0x0 0x0 0x0>;
				memory-region = <&barmap_pool>;
			}};
		}};
	}};
}};
"""


def _run(cmd: Sequence[str], what: str) -> None:
    try:
        r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DeviceTreeError(f"{what}: {exc}") from None
    if r.returncode:
        last = (r.stderr or r.stdout).strip().splitlines()[-1:] or [f"status {r.returncode}"]
        raise DeviceTreeError(f"{what}: {last[0]}")


def virt_dtb(
    qemu: str | Path,
    machine: Sequence[str],
    out: Path,
    reserved: tuple[int, int],
    pool: tuple[int, int],
) -> Path:
    """``out``: the tree QEMU gives ``machine`` (its -M, -cpu, -m, -smp...) plus barmap's."""
    with tempfile.TemporaryDirectory() as tmp:
        dtb, dts = Path(tmp) / "virt.dtb", Path(tmp) / "virt.dts"
        _run([str(qemu), *machine, "-machine", f"dumpdtb={dtb}", "-display", "none",
              "-nodefaults"], "QEMU could not dump its device tree")  # fmt: skip
        _run(["dtc", "-q", "-I", "dtb", "-O", "dts", "-o", str(dts), str(dtb)], "dtc")
        text = dts.read_text()
        m = re.search(r"^\t([a-z]+@[0-9a-f]+) \{[^{}]*?compatible = \"pci-host-ecam-generic\"",
                      text, re.M)  # fmt: skip
        if not m:
            raise DeviceTreeError("no pci-host-ecam-generic node in QEMU's tree")
        dts.write_text(text + barmap_nodes(m.group(1), reserved, pool))
        out.parent.mkdir(parents=True, exist_ok=True)
        _run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", str(out), str(dts)], "dtc refused")
    return out


def _region(text: str) -> tuple[int, int]:
    base, _, size = text.partition(":")
    return int(base, 16), int(size, 16)


def main(argv: list[str]) -> int:
    import os

    from barmap.config import DT_POOL, VIRT_RESERVATION

    if len(argv) < 3:
        print("usage: devicetree OUT.dtb QEMU -M virt,... [...]", file=sys.stderr)
        return 2
    out, qemu, *machine = argv
    env = os.environ.get
    try:
        reserved = _region(env("BARMAP_DT_RESERVED") or
                           f"{VIRT_RESERVATION.base:x}:{VIRT_RESERVATION.size:x}")  # fmt: skip
        pool = _region(env("BARMAP_DT_POOL") or f"{DT_POOL.base:x}:{DT_POOL.size:x}")
        print(virt_dtb(qemu, machine, Path(out), reserved, pool))
    except (DeviceTreeError, ValueError) as exc:
        print(f"devicetree: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
