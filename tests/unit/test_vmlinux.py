"""The ELF vmlinux inside a bzImage: payload location, compression, size check, PVH note.

The images are built here the way the kernel's build lays them out (setup
header fields, compressed payload, appended size), around a minimal ELF64
whose PT_NOTE holds (or lacks) the Xen PHYS32_ENTRY note; one more test runs on
the distro kernel in the cache when there is one.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from barmap.build import paths
from barmap.build.artifacts import read_env_file
from barmap.build.vmlinux import NO_PVH, VmlinuxError, decompress, extract, main, payload, pvh_entry


def note(name: bytes, ntype: int, desc: bytes) -> bytes:
    pad = lambda b: b + b"\0" * (-len(b) % 4)  # noqa: E731
    return struct.pack("<III", len(name), len(desc), ntype) + pad(name) + pad(desc)


def elf(notes: bytes, body: bytes = b"\x90" * 4096) -> bytes:
    """An ELF64 header, one PT_NOTE program header, the notes and a body."""
    phoff, phentsize = 64, 56
    notes_off = phoff + phentsize
    header = b"\x7fELF" + bytes([2, 1, 1]) + b"\0" * 9
    header += struct.pack("<HHIQQQIHHHHHH", 2, 0x3E, 1, 0x1000000, phoff, 0, 0, 64,
                          phentsize, 1, 64, 0, 0)  # fmt: skip
    ph = struct.pack("<IIQQQQQQ", 4, 4, notes_off, 0, 0, len(notes), len(notes), 4)
    return header + ph + notes + body


PVH_ELF = elf(note(b"Xen\0", 18, struct.pack("<Q", 0x1000850)) + note(b"GNU\0", 3, b"id"))
PLAIN_ELF = elf(note(b"GNU\0", 3, b"build-id"))


def bzimage(kernel: bytes, compress: Callable[[bytes], bytes], setup_sects: int = 3) -> bytes:
    """setup sectors with a 2.15 HdrS header, then a decompressor stub and the payload."""
    data = compress(kernel) + struct.pack("<I", len(kernel))
    setup = bytearray((setup_sects + 1) * 512)
    setup[0x1F1] = setup_sects
    setup[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", setup, 0x206, 0x020F)
    stub = b"\xcc" * 1000  # the decompressor's code, before the payload
    struct.pack_into("<II", setup, 0x248, len(stub), len(data))
    return bytes(setup) + stub + data + b"\0" * 100


COMPRESSORS = {
    "gzip": gzip.compress,
    "xz": lambda b: lzma.compress(b, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32),
    "lzma": lambda b: lzma.compress(b, format=lzma.FORMAT_ALONE),
    "bzip2": bz2.compress,
}


@pytest.mark.parametrize("name", sorted(COMPRESSORS))
def test_each_compression_unpacks_to_the_same_elf(name: str, tmp_path: Path) -> None:
    image = tmp_path / "vmlinuz"
    image.write_bytes(bzimage(PVH_ELF, COMPRESSORS[name]))
    assert decompress(payload(image.read_bytes())) == (name, PVH_ELF)
    out = tmp_path / "vmlinux"
    assert extract(image, out) == (name, 0x1000850)
    assert out.read_bytes() == PVH_ELF


def test_setup_sects_zero_means_four(tmp_path: Path) -> None:
    image = bytearray(bzimage(PVH_ELF, gzip.compress, setup_sects=4))
    image[0x1F1] = 0
    assert decompress(payload(bytes(image)))[1] == PVH_ELF


def test_a_kernel_without_pvh_is_not_written(tmp_path: Path) -> None:
    image = tmp_path / "vmlinuz"
    image.write_bytes(bzimage(PLAIN_ELF, gzip.compress))
    out = tmp_path / "vmlinux"
    assert extract(image, out) == ("gzip", None)
    assert not out.exists()
    assert main([str(image), str(out)]) == NO_PVH


def test_an_elf_is_taken_as_it_is(tmp_path: Path) -> None:
    image = tmp_path / "vmlinux.in"
    image.write_bytes(PVH_ELF)
    assert extract(image, tmp_path / "out") == ("none", 0x1000850)
    assert main(["--check", str(image)]) == 0
    image.write_bytes(PLAIN_ELF)
    assert main(["--check", str(image)]) == NO_PVH


@pytest.mark.parametrize(
    "image, message",
    [
        (b"MZ" + b"\0" * 0x400, "not a bzImage"),
        (bzimage(PVH_ELF, gzip.compress)[:0x206] + b"\x07\x02" + b"\0" * 0x100, "boot protocol"),
    ],
)
def test_not_a_kernel(image: bytes, message: str) -> None:
    with pytest.raises(VmlinuxError, match=message):
        payload(image)


def test_truncated_payload_and_wrong_size_are_errors(tmp_path: Path) -> None:
    good = bytearray(bzimage(PVH_ELF, gzip.compress))
    data = payload(bytes(good))
    with pytest.raises(VmlinuxError, match=r"unpack|bytes"):
        decompress(data[: len(data) // 2] + data[-4:])
    with pytest.raises(VmlinuxError, match="the image says"):
        decompress(data[:-4] + struct.pack("<I", len(PVH_ELF) + 1))
    with pytest.raises(VmlinuxError, match="unknown payload compression"):
        decompress(b"\x11\x22\x33\x44" + data[4:])
    with pytest.raises(VmlinuxError, match="not an ELF"):
        pvh_entry(b"\0" * 64)
    image = tmp_path / "broken"
    image.write_bytes(b"MZ")
    assert main([str(image), str(tmp_path / "out")]) == 1


def test_the_distro_kernel_has_a_pvh_vmlinux(tmp_path: Path) -> None:
    """The cached Debian kernel (when `make kernel` ran) unpacks and carries the PVH note."""
    kenv = paths.kernel_env()
    if not kenv.is_file():
        pytest.skip(f"no cached kernel ({kenv})")
    env = read_env_file(kenv)
    name, entry = extract(Path(env["VMLINUZ"]), tmp_path / "vmlinux")
    assert entry is not None, f"{env['VMLINUZ']} ({name}) has no PVH entry"
    assert env.get("VMLINUX"), "kernel.sh did not record the vmlinux"
    assert Path(env["VMLINUX"]).read_bytes() == (tmp_path / "vmlinux").read_bytes()
