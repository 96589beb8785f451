"""The uncompressed ELF ``vmlinux`` inside a bzImage, for direct PVH boot.

A distribution ``vmlinuz`` is a bzImage: real-mode setup, a decompressor and
the compressed kernel.  Under TCG the emulated decompressor is most of a boot
(XZ: ~3 s of a ~5 s boot here).  A kernel built with ``CONFIG_PVH=y`` carries
an ELF note (``Xen``, type 18, XEN_ELFNOTE_PHYS32_ENTRY) with a 32-bit entry
point, and QEMU's ``-kernel`` boots such an ELF directly, skipping setup and
decompressor alike.

The payload is found the way the boot protocol describes it (setup header
``payload_offset``/``payload_length``, protocol 2.08+), not by scanning for
magic bytes, and its compression is read from its first bytes: gzip, XZ,
LZMA and bzip2 with Python's standard library, ZSTD, LZ4 and LZO with the
``zstd``/``lz4``/``lzop`` programs.  The kernel appends the uncompressed size
as a little-endian u32; the result is checked against it.

Standard library only, runnable before the venv exists (``scripts/kernel.sh``)::

    python3 harness/barmap/build/vmlinux.py VMLINUZ OUT     # exit 0: OUT is a PVH vmlinux
                                                      # exit 3: no PVH entry (OUT not written)
    python3 harness/barmap/build/vmlinux.py --check FILE    # exit 0 if FILE is a PVH ELF
"""

from __future__ import annotations

import bz2
import lzma
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

ELF_MAGIC = b"\x7fELF"
PT_NOTE = 4
XEN_ELFNOTE_PHYS32_ENTRY = 18
NO_PVH = 3  # exit status: a valid kernel, but it cannot be booted through PVH


class VmlinuxError(Exception):
    """The image is not a kernel this module can unpack (the message says why)."""


def _gzip(data: bytes) -> bytes:
    return zlib.decompressobj(wbits=31).decompress(data)


def _xz(data: bytes) -> bytes:
    return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data)


def _lzma(data: bytes) -> bytes:
    return lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(data)


def _bzip2(data: bytes) -> bytes:
    return bz2.BZ2Decompressor().decompress(data)


def _program(*argv: str) -> object:
    def run(data: bytes) -> bytes:
        if shutil.which(argv[0]) is None:
            raise VmlinuxError(f"the payload needs `{argv[0]}` to unpack: install it")
        proc = subprocess.run(argv, input=data, capture_output=True, check=False)
        if proc.returncode != 0 and not proc.stdout:
            raise VmlinuxError(f"{argv[0]}: {proc.stderr.decode(errors='replace').strip()}")
        return proc.stdout

    return run


# magic -> (name, unpack); the kernel's own list (scripts/extract-vmlinux)
COMPRESSIONS: tuple[tuple[bytes, str, object], ...] = (
    (b"\x1f\x8b\x08", "gzip", _gzip),
    (b"\xfd7zXZ\x00", "xz", _xz),
    (b"BZh", "bzip2", _bzip2),
    (b"\x5d\x00\x00", "lzma", _lzma),
    (b"\x28\xb5\x2f\xfd", "zstd", _program("zstd", "-dcq")),
    (b"\x02\x21\x4c\x18", "lz4", _program("lz4", "-dcq")),
    (b"\x89LZO", "lzo", _program("lzop", "-dcq")),
)


def payload(image: bytes) -> bytes:
    """The compressed kernel of a bzImage, with its appended size (boot protocol 2.08+)."""
    if len(image) < 0x250 or image[0x202:0x206] != b"HdrS":
        raise VmlinuxError("not a bzImage (no HdrS setup header)")
    version = struct.unpack_from("<H", image, 0x206)[0]
    if version < 0x208:
        raise VmlinuxError(f"boot protocol {version >> 8}.{version & 0xFF} has no payload fields")
    setup_sects = image[0x1F1] or 4
    start = (setup_sects + 1) * 512
    offset, length = struct.unpack_from("<II", image, 0x248)
    data = image[start + offset : start + offset + length]
    if len(data) != length or length < 8:
        raise VmlinuxError("payload_offset/payload_length point outside the image")
    return data


def decompress(data: bytes) -> tuple[str, bytes]:
    """(compression name, the uncompressed kernel) of a payload with its appended u32 size."""
    expected = struct.unpack_from("<I", data, len(data) - 4)[0]
    for magic, name, unpack in COMPRESSIONS:
        if data.startswith(magic):
            try:
                out = unpack(data[:-4])  # type: ignore[operator]
            except (OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
                raise VmlinuxError(f"{name} payload does not unpack: {exc}") from None
            if len(out) != expected:
                raise VmlinuxError(f"{name}: {len(out)} bytes unpacked, the image says {expected}")
            return name, out
    raise VmlinuxError(f"unknown payload compression (first bytes {data[:6].hex()})")


def pvh_entry(elf: bytes) -> int | None:
    """The PVH entry point of an ELF64 kernel (its XEN_ELFNOTE_PHYS32_ENTRY note), or None."""
    if not elf.startswith(ELF_MAGIC):
        raise VmlinuxError("not an ELF file")
    if elf[4] != 2 or elf[5] != 1:
        raise VmlinuxError("not a little-endian ELF64 file")
    phoff = struct.unpack_from("<Q", elf, 0x20)[0]
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from(
            "<IIQQQQ", elf, phoff + i * phentsize
        )
        if p_type != PT_NOTE:
            continue
        pos, end = p_offset, p_offset + p_filesz
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", elf, pos)
            name = elf[pos + 12 : pos + 12 + namesz].rstrip(b"\0")
            desc = pos + 12 + (namesz + 3) // 4 * 4
            if name == b"Xen" and ntype == XEN_ELFNOTE_PHYS32_ENTRY and descsz >= 4:
                fmt = "<Q" if descsz >= 8 else "<I"
                return int(struct.unpack_from(fmt, elf, desc)[0])
            pos = desc + (descsz + 3) // 4 * 4
    return None


def extract(image_path: Path, out: Path) -> tuple[str, int | None]:
    """Write the vmlinux of ``image_path`` to ``out`` if it has a PVH entry.

    Returns (compression, PVH entry or None); ``out`` is written atomically and
    only for a PVH kernel.  An ELF ``image_path`` is taken as it is.
    """
    image = image_path.read_bytes()
    if image.startswith(ELF_MAGIC):
        name, elf = "none", image
    else:
        name, elf = decompress(payload(image))
    entry = pvh_entry(elf)
    if entry is not None:
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_bytes(elf)
        os.replace(tmp, out)
    return name, entry


def main(argv: list[str]) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="vmlinux.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="only check that IMAGE is a PVH ELF")
    p.add_argument("image", type=Path, help="a bzImage (vmlinuz) or an ELF vmlinux")
    p.add_argument("out", type=Path, nargs="?", help="where to write the vmlinux")
    args = p.parse_args(argv)
    try:
        if args.check:
            entry = pvh_entry(args.image.read_bytes())
            name = "none"
        elif args.out is None:
            p.error("OUT is required unless --check")
        else:
            name, entry = extract(args.image, args.out)
    except (OSError, VmlinuxError) as exc:
        print(f"vmlinux.py: {args.image}: {exc}", file=sys.stderr)
        return 1
    if entry is None:
        print(f"vmlinux.py: {args.image}: no PVH entry note (CONFIG_PVH off)", file=sys.stderr)
        return NO_PVH
    what = "PVH ELF" if args.check else f"{name} payload -> {args.out}"
    print(f"vmlinux.py: {args.image}: {what}, PVH entry {entry:#x}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
