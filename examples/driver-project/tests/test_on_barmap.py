"""A driver project's own test against the barmap device (docs/ci.md).

Runs with barmap's venv (the `barmap` pytest plugin gives `barmap_artifacts`):
    pytest examples/driver-project/tests
In a pipeline, the barmap action runs it as its `run:` command.  It boots the
guest with SSH, copies a file of this project into it (a driver's .ko would go
the same way, then `insmod`), and checks the barmap device through the guest's
sysfs and through the host's view of BAR2.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from barmap import Machine
from barmap.abi import reg
from barmap.artifacts import Artifacts


def test_barmap_device_is_there_and_takes_our_files(barmap_artifacts: Artifacts,
                                                    tmp_path: Path) -> None:  # fmt: skip
    payload = tmp_path / "payload.bin"
    payload.write_bytes(bytes(range(256)) * 16)
    config = barmap_artifacts.machine_config(ssh=True)
    with Machine(config) as vm:
        vm.ssh().put(payload, "/tmp/payload.bin")
        status, out = vm.run("md5sum /tmp/payload.bin")
        assert status == 0
        assert out.split()[0] == hashlib.md5(payload.read_bytes()).hexdigest()
        status, out = vm.run(
            "for d in /sys/bus/pci/devices/*; do echo $(cat $d/vendor) $(cat $d/device); done"
        )
        ids = f"{reg('BARMAP_PCI_VENDOR_ID'):#06x} {reg('BARMAP_PCI_DEVICE_ID'):#06x}"
        assert ids in out
