#!/usr/bin/env python3
"""The uncompressed arm64 ``Image`` of a Debian arm64 vmlinuz, for QEMU's -kernel.

    scripts/arm64-image.py VMLINUZ OUT

Debian's arm64 vmlinuz is the Image gzipped (6.1) or an EFI zboot image (a PE file whose
payload is the compressed Image: QEMU 7.2 cannot load those).  Either is unpacked to
OUT; a plain Image is copied.  The result must carry the arm64 Image magic.
"""

from __future__ import annotations

import gzip
import lzma
import shutil
import struct
import subprocess
import sys
from pathlib import Path

ARM64_MAGIC = b"ARM\x64"  # at offset 56 of an arm64 Image header


def unpack(data: bytes, how: str) -> bytes:
    if how == "gzip":
        return gzip.decompress(data)
    if how in ("xz", "lzma"):
        return lzma.decompress(data)
    if how == "zstd" and shutil.which("zstd"):
        return subprocess.run(["zstd", "-qdc"], input=data, capture_output=True, check=True).stdout
    raise ValueError(f"a {how}-compressed payload (this script unpacks gzip, xz, zstd)")


def image_of(data: bytes) -> bytes:
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    if data[:2] == b"MZ" and data[4:8] == b"zimg":
        # EFI zboot header: payload offset and size, then the compression's name
        offset, size = struct.unpack_from("<II", data, 8)
        how = data[24:32].rstrip(b"\0").decode()
        return unpack(data[offset : offset + size], how)
    return data


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    src, out = Path(argv[0]), Path(argv[1])
    try:
        image = image_of(src.read_bytes())
    except (OSError, ValueError, EOFError, lzma.LZMAError, subprocess.CalledProcessError) as exc:
        print(f"arm64-image: {src}: {exc}", file=sys.stderr)
        return 1
    if image[56:60] != ARM64_MAGIC:
        print(f"arm64-image: {src} holds no arm64 Image (no ARM\\x64 magic)", file=sys.stderr)
        return 1
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(image)
    tmp.replace(out)
    print(f"arm64-image: {out} ({len(image) >> 20} MiB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
