"""Per-run files for the guest, as an uncompressed cpio archive placed before the initramfs.

Linux unpacks every cpio archive concatenated in the initrd, so the per-run SSH
keys reach the guest without rebuilding the image.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


def _entry(name: str, mode: int, data: bytes, ino: int) -> bytes:
    encoded = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0)
    header = b"070701" + b"".join(f"{f:08x}".encode() for f in fields)
    out = header + encoded
    out += b"\0" * (-len(out) % 4)
    out += data + b"\0" * (-len(data) % 4)
    return out


def cpio_archive(files: dict[str, tuple[int, bytes]], dirs: dict[str, int]) -> bytes:
    """A newc archive of ``dirs`` (path -> mode) and ``files`` (path -> (mode, bytes))."""
    chunks: list[bytes] = []
    ino = 1
    for path, mode in sorted(dirs.items()):
        chunks.append(_entry(path.lstrip("/"), stat.S_IFDIR | mode, b"", ino))
        ino += 1
    for path, (mode, data) in sorted(files.items()):
        chunks.append(_entry(path.lstrip("/"), stat.S_IFREG | mode, data, ino))
        ino += 1
    chunks.append(_entry("TRAILER!!!", 0, b"", 0))
    blob = b"".join(chunks)
    return blob + b"\0" * (-len(blob) % 512)


def initrd_with_overlay(base: Path, overlay: bytes, out: Path) -> Path:
    """Write ``overlay`` followed by the ``base`` initramfs to ``out``."""
    with open(out, "wb") as dst:
        dst.write(overlay)
        dst.write(base.read_bytes())
    return out


def files_overlay(files: tuple[tuple[Path, str], ...]) -> bytes:
    """An archive of host files at their guest paths (the directories made as needed)."""
    if not files:
        return b""
    dirs: dict[str, int] = {}
    for _, guest in files:
        parent = str(Path(guest).parent)
        while parent not in ("/", ""):
            dirs[parent] = 0o755
            parent = str(Path(parent).parent)
    return cpio_archive({g: (0o755 if os.access(h, os.X_OK) else 0o644, Path(h).read_bytes())
                         for h, g in files}, dirs)  # fmt: skip
