"""exdrv on barmap's device posing as its card: the probe, the mapping, the host's view."""

from __future__ import annotations

from barmap import Machine
from barmap.guest.checks import parse_kv
from barmap.pattern import pattern


def _bdf(vm: Machine) -> str:
    return vm.run(
        "basename $(readlink /sys/bus/pci/drivers/exdrv/0000:*)", check=True
    ).output.strip()


def test_the_card_is_there_and_exdrv_holds_it(barmap_vm: Machine) -> None:
    bdf = _bdf(barmap_vm)
    ids = barmap_vm.run(f"cat /sys/bus/pci/devices/{bdf}/vendor /sys/bus/pci/devices/{bdf}/device",
                        check=True).output.split()  # fmt: skip
    assert ids == ["0x10ee", "0x7024"]
    assert barmap_vm.run("test -c /dev/exdrv").status == 0
    assert "barmap" not in barmap_vm.run("lsmod").output  # barmap.ko stays out of it


def test_the_mapping_reads_back_and_the_host_sees_it(barmap_vm: Machine) -> None:
    out = barmap_vm.run("exdrv-peek 0x100000 0x5eed1234", check=True).output
    assert parse_kv(out.strip())["mismatches"] == "0", out
    addr, size = barmap_vm.qmp.barmap_bar("barmap0")
    assert size == 4 << 20
    assert barmap_vm.qmp.read_phys(addr, 4096) == pattern(4096, 0x5EED1234)
