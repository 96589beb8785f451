"""The per-run initrd overlay: a newc archive that the real cpio (as the kernel) unpacks."""

from __future__ import annotations

import gzip
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from barmap.guest.overlay import cpio_archive, initrd_with_overlay

FILES = {
    "/root/.ssh/authorized_keys": (0o600, b"ssh-ed25519 AAAA barmap\n"),
    "/etc/dropbear/key": (0o600, bytes(range(256)) * 3 + b"odd"),  # binary, unaligned length
    "/etc/empty": (0o644, b""),
}
DIRS = {"/root": 0o700, "/root/.ssh": 0o700, "/etc": 0o755, "/etc/dropbear": 0o700}

needs_cpio = pytest.mark.skipif(shutil.which("cpio") is None, reason="cpio is not installed")


@needs_cpio
def test_cpio_unpacks_every_file_and_directory_with_its_mode(tmp_path: Path) -> None:
    archive = cpio_archive(FILES, DIRS)
    assert len(archive) % 512 == 0
    out = tmp_path / "root"
    out.mkdir()
    subprocess.run(["cpio", "-idm", "--quiet", "--no-absolute-filenames"], input=archive,
                   cwd=out, check=True, capture_output=True)  # fmt: skip
    for path, (mode, data) in FILES.items():
        f = out / path.lstrip("/")
        assert f.read_bytes() == data
        assert stat.S_IMODE(f.stat().st_mode) == mode, path
    for path, mode in DIRS.items():
        assert stat.S_IMODE((out / path.lstrip("/")).stat().st_mode) == mode, path
    listing = subprocess.run(["cpio", "-t", "--quiet"], input=archive, capture_output=True,
                             check=True).stdout.decode().split()  # fmt: skip
    assert sorted(listing) == sorted(p.lstrip("/") for p in [*FILES, *DIRS])


@needs_cpio
def test_the_overlay_comes_first_and_the_base_follows_untouched(tmp_path: Path) -> None:
    base = tmp_path / "base.cpio.gz"
    base.write_bytes(gzip.compress(cpio_archive({"/init": (0o755, b"#!/bin/sh\n")}, {})))
    overlay = cpio_archive(FILES, DIRS)
    out = initrd_with_overlay(base, overlay, tmp_path / "initrd.img")
    blob = out.read_bytes()
    assert blob == overlay + base.read_bytes()
