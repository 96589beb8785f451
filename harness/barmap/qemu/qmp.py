"""QMP helpers on top of ``qemu.qmp``'s synchronous client: the host's view of the VM."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qemu.qmp.legacy import QEMUMonitorProtocol

from barmap.abi import reg
from barmap.errors import EventTimeout


def event_matches(data: Mapping[str, Any], match: Mapping[str, Any] | None) -> bool:
    """Whether an event's ``data`` holds every key of ``match`` with its value (recursively)."""
    for key, want in (match or {}).items():
        if key not in data:
            return False
        got = data[key]
        if isinstance(want, Mapping):
            if not isinstance(got, Mapping) or not event_matches(got, want):
                return False
        elif got != want:
            return False
    return True


# QEMU's generic pcie-root-port (1b36:000c)
PCIE_ROOT_PORT_DEVICE_ID = 0x000C


class Monitor:
    """A connected QMP session.

    Every event received is kept in ``events`` (for reports); ``event_wait``
    hands out each one at most once.
    """

    def __init__(self, qmp: QEMUMonitorProtocol, scratch_dir: Path) -> None:
        self._qmp = qmp
        self._scratch = scratch_dir
        self.events: list[dict[str, Any]] = []
        self._taken: set[int] = set()  # indices into events that event_wait returned

    def cmd(self, name: str, **args: Any) -> Any:
        """Run one QMP command; its ``return`` value, or ``qemu.qmp.ExecuteError``."""
        result = self._qmp.cmd(name, **args)
        self.poll_events()
        return result

    def hmp(self, command: str) -> str:
        """A human monitor command (``info pci``, ``info mtree``...) and its text."""
        return str(self.cmd("human-monitor-command", **{"command-line": command}))

    def poll_events(self) -> list[dict[str, Any]]:
        new = self._qmp.get_events(wait=False)
        self._qmp.clear_events()
        self.events.extend(new)
        return new

    def event_wait(
        self, name: str, match: Mapping[str, Any] | None = None, timeout: float = 60.0
    ) -> dict[str, Any]:
        """The first event ``name`` whose ``data`` holds ``match`` and that no earlier
        ``event_wait`` returned, waiting up to ``timeout`` seconds for it.

        Raises EventTimeout (with the events seen) when none comes.
        """
        deadline = time.monotonic() + timeout
        while True:
            self.poll_events()
            for i, event in enumerate(self.events):
                if (
                    i not in self._taken
                    and event.get("event") == name
                    and event_matches(event.get("data", {}), match)
                ):
                    self._taken.add(i)
                    return event
            left = deadline - time.monotonic()
            if left <= 0:
                seen = [e.get("event") for e in self.events]
                raise EventTimeout(
                    f"no {name} event matching {match or {}} within {timeout:g} s "
                    f"(events seen: {seen})"
                )
            try:
                self.events.extend(self._qmp.get_events(wait=float(left)))
            except asyncio.TimeoutError:
                pass

    def pci_devices(self) -> list[dict[str, Any]]:
        """Every PCI function QEMU has, behind bridges and root ports too."""
        return [dev for dev, _ in self._pci_tree()]

    def _pci_tree(self) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
        """(device, the bridge it sits behind or None) for every PCI function."""
        out: list[tuple[dict[str, Any], dict[str, Any] | None]] = []

        def walk(devices: list[dict[str, Any]], parent: dict[str, Any] | None) -> None:
            for dev in devices:
                out.append((dev, parent))
                walk(dev.get("pci_bridge", {}).get("devices", []), dev)

        for bus in self.cmd("query-pci"):
            walk(bus["devices"], None)
        return out

    def plug_site(self, qdev_id: str) -> dict[str, str]:
        """Where ``qdev_id`` is plugged, as device_add properties that plug a device there
        again: its root port (``bus``) behind a bridge, else its slot on bus 0 (``addr``)."""
        for dev, parent in self._pci_tree():
            if dev.get("qdev_id") == qdev_id:
                if parent is not None and parent.get("qdev_id"):
                    return {"bus": parent["qdev_id"]}
                return {"addr": f"{dev['slot']:02x}.{dev['function']:x}"}
        raise KeyError(f"no PCI device with id {qdev_id!r}")

    def free_plug_site(self) -> dict[str, str]:
        """device_add properties for a new device: an empty root port (q35), or {} (pc:
        QEMU takes the next free slot of bus 0)."""
        ports = [
            dev for dev, _ in self._pci_tree()
            if dev.get("id", {}).get("device") == PCIE_ROOT_PORT_DEVICE_ID
        ]  # fmt: skip
        if not ports:
            return {}
        for port in ports:
            if not port.get("pci_bridge", {}).get("devices") and port.get("qdev_id"):
                return {"bus": port["qdev_id"]}
        raise KeyError("every root port holds a device: no free place to plug one")

    def barmap_bar(self, qdev_id: str, bar: int | None = None) -> tuple[int, int]:
        """(guest-physical address, size) of a barmap device's BAR, from QEMU's PCI state."""
        bar = reg("MEM_BAR") if bar is None else bar
        for dev in self.pci_devices():
            if dev.get("qdev_id") != qdev_id:
                continue
            for region in dev.get("regions", []):
                if region.get("bar") == bar:
                    return int(region["address"]), int(region["size"])
            raise KeyError(f"{qdev_id} has no BAR {bar}")
        raise KeyError(f"no PCI device with id {qdev_id!r}")

    def read_phys(self, addr: int, size: int) -> bytes:
        """Guest-physical memory as the host sees it (``pmemsave``), not via the guest."""
        fd, name = tempfile.mkstemp(prefix="pmem-", dir=self._scratch)
        os.close(fd)
        try:
            self.cmd("pmemsave", val=addr, size=size, filename=name)
            return Path(name).read_bytes()
        finally:
            os.unlink(name)

    def qom_get(self, path: str, prop: str) -> Any:
        return self.cmd("qom-get", path=path, property=prop)

    def qom_set(self, path: str, prop: str, value: Any) -> None:
        self.cmd("qom-set", path=path, property=prop, value=value)

    def set_fault(self, qdev_id: str, fault: str, on: bool = True) -> None:
        """Flip a barmap fault mode (``all-ones``, ``no-decode``, ``dma-error``, ``irq-lost``)."""
        self.qom_set(f"/machine/peripheral/{qdev_id}", f"fault-{fault}", on)

    def device_add(self, driver: str, qdev_id: str, **props: Any) -> None:
        self.cmd("device_add", driver=driver, id=qdev_id, **props)

    def device_del(self, qdev_id: str) -> None:
        self.cmd("device_del", id=qdev_id)

    def close(self) -> None:
        self._qmp.close()
